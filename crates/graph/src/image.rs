//! The image configuration a stage accumulates, as Docker writes it: the
//! store's model of the config document's `config` object,
//! [`ContainerConfig`] (re-exported under its own name, so the Dockerfile
//! frontend, the executor and the CLI share one type; the whole document is
//! `rbk_store::image::ImageConfig`), and history entries.
//! It rides along with a [`crate::Definition`] as metadata: it is not part
//! of any vertex digest, and the executor writes it into the final image.

pub use rbk_store::image::{ContainerConfig, Empty, Healthcheck, History};
