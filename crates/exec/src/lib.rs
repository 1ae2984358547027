//! Solving build-graph vertices against the store: context transfer, `RUN`
//! steps in containers, file ops, snapshots and layer diffs.
//!
//! Main pieces (one module each):
//! - `fileop`: COPY/ADD/mkdir/mkfile/rm with Docker's semantics, fd-relative
//!   inside their roots ([`apply_file_actions`], [`CopySource`]).
//! - `users`: `USER`/`--chown` names resolved through the root's own
//!   `/etc/passwd` and `/etc/group`, read fd-relative and bounded.
//!
//! Every mount(2), namespace call and OCI-runtime invocation of the workspace
//! lives in this crate.
#![deny(missing_docs)]

mod error;
mod fileop;
mod filter;
mod inroot;
mod pathglob;
mod users;

pub use error::{Error, Result};
pub use fileop::{apply_file_actions, CopySource};
pub use filter::{IncludeAll, PathFilter};
pub use inroot::open_root;
pub use pathglob::{has_wildcard, match_component, match_path, BadPattern};
pub use users::{resolve_owner, resolve_user, Ids};
