//! Solving build-graph vertices against the store: context transfer, `RUN`
//! steps in containers, file ops, snapshots and layer diffs.
//!
//! Main pieces (one module each):
//! - `fileop`: COPY/ADD/mkdir/mkfile/rm with Docker's semantics, fd-relative
//!   inside their roots ([`apply_file_actions`], [`CopySource`]).
//! - `context`: [`ContextIndex`], the content identity of the build context
//!   (a checksum per COPY source for cache keys), and its [`StatCache`].
//! - `users`: `USER`/`--chown` names resolved through the root's own
//!   `/etc/passwd` and `/etc/group`, read fd-relative and bounded.
//! - `run`: `RUN` steps in containers: [`mount`] of the store's overlay
//!   descriptions, the [init layer](ensure_init_layer), and the [`Runtime`]
//!   trait with its [`Runc`] implementation taking a [`RunRequest`].
//! - `layer`: [`commit_layer`] turns an overlay upper directory into a
//!   layer: its snapshot, with the OCI layer tar packed from it on demand
//!   (no tar file is kept); [`compress_layer`] makes the gzip or zstd form
//!   for export.
//!
//! Every mount(2), namespace call and OCI-runtime invocation of the workspace
//! lives in this crate.
#![deny(missing_docs)]

mod context;
mod error;
mod fileop;
mod filter;
mod image;
mod inroot;
mod layer;
mod pathglob;
mod recover;
mod remote_cache;
mod run;
mod solve;
mod users;

pub use context::{ContextIndex, StatCache};
pub use error::{Error, Result};
pub use fileop::{apply_file_actions, CopySource};
pub use fileop::{apply_file_actions_with, FileOpOptions};
pub use filter::{IncludeAll, PathFilter};
pub use image::{commit_image, ImageSpec};
pub use inroot::open_root;
pub use layer::{
    commit_layer, compress_layer, write_layer_tar, Compression, LayerOptions, LAYER_TAR,
};
pub use pathglob::{has_wildcard, match_component, match_path, BadPattern};
pub use recover::recover_store;
pub use remote_cache::{
    export_cache, BlobFetcher, CacheMode, CacheSource, ImportedCache, CACHE_CONFIG,
};
pub use run::{
    ensure_init_layer, mount, BindMount, TmpfsMount, Entitlements, MountGuard, OutputStream, RunRequest, Runc,
    Runtime,
};
pub use run::{Secret, MAX_SECRET_SIZE};
pub use solve::{result_chain, LocalDir, SolveOptions, Solved, Solver};
pub use users::{resolve_owner, resolve_user, Ids};
