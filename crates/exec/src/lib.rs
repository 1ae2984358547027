//! Solving build-graph vertices against the store: context transfer, `RUN`
//! steps in containers, file ops, snapshots and layer diffs.
//!
//! Main pieces (one module each):
//! - `context`: [`ContextIndex`], the content identity of the build context
//!   (a checksum per COPY source for cache keys), and its [`StatCache`].
//! - `users`: `USER`/`--chown` names resolved through the root's own
//!   `/etc/passwd` and `/etc/group`, read fd-relative and bounded.
//!
//! Every mount(2), namespace call and OCI-runtime invocation of the workspace
//! lives in this crate.
#![deny(missing_docs)]

mod context;
mod error;
mod filter;
mod inroot;
mod pathglob;
mod users;

pub use context::{ContextIndex, StatCache};
pub use error::{Error, Result};
pub use filter::{IncludeAll, PathFilter};
pub use inroot::open_root;
pub use pathglob::{has_wildcard, match_component, match_path, BadPattern};
pub use users::{resolve_owner, resolve_user, Ids};
