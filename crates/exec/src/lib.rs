//! Solving build-graph vertices against the store: context transfer, `RUN`
//! steps in containers, file ops, snapshots and layer diffs.
//!
//! Main pieces (one module each):
//! - `users`: `USER`/`--chown` names resolved through the root's own
//!   `/etc/passwd` and `/etc/group`, read fd-relative and bounded.
//! - `layer`: [`commit_layer`] turns an overlay upper directory into an OCI
//!   layer tar in the store plus its snapshot; [`compress_layer`] makes the
//!   gzip or zstd form for export.
//!
//! Every mount(2), namespace call and OCI-runtime invocation of the workspace
//! lives in this crate.
#![deny(missing_docs)]

mod error;
mod filter;
mod inroot;
mod layer;
mod pathglob;
mod users;

pub use error::{Error, Result};
pub use filter::{IncludeAll, PathFilter};
pub use inroot::open_root;
pub use layer::{
    commit_layer, compress_layer, write_layer_tar, Compression, LayerOptions, LAYER_TAR,
};
pub use pathglob::{has_wildcard, match_component, match_path, BadPattern};
pub use users::{resolve_owner, resolve_user, Ids};
