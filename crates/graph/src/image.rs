//! The image configuration a stage accumulates, as Docker writes it: the
//! store's model of the `config` object (re-exported, so the Dockerfile
//! frontend, the executor and the CLI share one type) and history entries.
//! It rides along with a [`crate::Definition`] as metadata: it is not part
//! of any vertex digest, and the executor writes it into the final image.

pub use rbk_store::image::{ContainerConfig as ImageConfig, Empty, Healthcheck, History};
