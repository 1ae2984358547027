//! Solving build-graph vertices against the store: context transfer, `RUN`
//! steps in containers, file ops, snapshots and layer diffs.
//!
//! The main types: [`Solver`] (implements [`rbk_graph::Execute`], so the
//! graph's scheduler drives it) configured by [`SolveOptions`], running
//! `RUN` steps through a [`Runtime`] ([`Runc`]) and showing filesystems
//! through a [`Snapshotter`] chosen by [`SnapshotterChoice`].
//!
//! # Where to start reading
//!
//! 1. `solve/mod.rs`: the [`Solver`], what a result ([`Solved`]) is, and the
//!    cache lookup in front of every op (`solve/key.rs` says what a cache
//!    key covers; `solve/remote.rs` adds `--cache-from` hits, fetched
//!    lazily; `solve/store.rs` is [`SolveStore`], all the solver asks of a
//!    store, which [`rbk_store::Store`] implements).
//! 2. `ops/`: what each op kind does, one place per kind — `source.rs`,
//!    `exec/` (`RUN`: `exec/solve.rs`, then the container machinery:
//!    `Runtime`, `runc.rs`, `spec.rs`…), `file/` (`COPY`/`ADD`/mkdir/rm:
//!    `file/solve.rs`, then [`apply_file_actions`] on plain directories) and
//!    `merge.rs`.
//! 3. `snapshot/`: the [`Snapshotter`] trait with its `overlay` and `copy`
//!    implementations and the automatic fallback between them.
//! 4. `layer/`: [`commit_layer`] turns an upper dir into a layer (its
//!    snapshot, with the OCI tar packed from it on demand);
//!    [`compress_layer`] makes the gzip or zstd form for export.
//!    `image.rs`: [`commit_image`] writes config and manifest.
//!
//! Around them: `context/` ([`ContextIndex`], the content identity of the
//! build context, with its [`StatCache`]), `users.rs` (`USER`/`--chown`
//! names through the root's own `/etc/passwd` and `/etc/group`),
//! `inroot.rs` (fd-relative path resolution), `mount.rs` (the mount(2)
//! calls), `remote_cache/` (the shared cache format) and, behind the
//! `testing` feature, `testing/` ([`testing::FakeRuntime`], a recording
//! runtime, and [`testing::MemSolveStore`], an in-memory store, for tests
//! without root).
//!
//! Every mount(2), namespace call and OCI-runtime invocation of the workspace
//! lives in this crate. It reads no environment variable and keeps no
//! process-wide settings: what a build wants comes in [`SolveOptions`] and
//! [`Runc::new`]'s arguments; warnings leave as [`rbk_graph::Event`]s.
//!
//! Errors: everything public returns [`Error`]. The few private helpers
//! that return `Result<_, String>` (the runtime's id and version checks,
//! the entitlement check, the remote cache's config parser and
//! decompressor choice) give the message of the variant their caller makes
//! (`Error::Runtime` naming the binary, `Error::Cache` naming the cache),
//! which they cannot name themselves.
#![deny(missing_docs)]

mod container;
mod context;
mod error;
mod filter;
mod image;
mod inroot;
mod layer;
mod mount;
mod ops;
mod pathglob;
mod recover;
mod remote;
mod remote_cache;
mod sealed;
mod snapshot;
mod solve;
#[cfg(feature = "testing")]
pub mod testing;
pub mod userns;
mod users;

pub use container::{
    container_changes, container_layer, copy, copy_tar_in, current_owner, exec_in_container,
    export_container, failed_step_mounts, is_alive, locate, monitor_container, pause_container,
    prepare_container, read_log, reap_containers, signal_container, spawn_foreground,
    write_source_tar, Change, Copied, CopyOptions, CopyRoot, ExecRequest, Foreground, Located,
    LogEntry, LogStream, PreparedContainer, StepMounts, CAPABILITIES, UNKNOWN_EXIT,
};
pub use context::{ContextIndex, StatCache};
pub use error::{Error, Result};
pub use filter::{IncludeAll, PathFilter, Within};
pub use image::{commit_image, ImageSpec};
pub use inroot::open_root;
pub use layer::{
    commit_layer, compress_layer, write_layer_tar, Compression, LayerOptions, LAYER_TAR,
};
pub use mount::{mount, MountGuard};
pub use ops::exec::{
    ensure_init_layer, BindMount, Entitlements, OutputStream, RunRequest, Runc, Runtime, TmpfsMount,
};
pub use ops::exec::{Secret, MAX_SECRET_SIZE};
pub use ops::file::{apply_file_actions, apply_file_actions_with, CopySource, FileOpOptions};
pub use pathglob::{has_wildcard, match_component, match_path, BadPattern};
pub use recover::recover_store;
pub use remote::{checkout_git_url, fetch_url, HttpClient, RemoteSettings};
pub use remote_cache::{
    export_cache, BlobFetcher, CacheMode, CacheSource, ImportedCache, CACHE_CONFIG,
};
pub use snapshot::{
    AutoSnapshotter, CopySnapshotter, OverlaySnapshotter, Snapshotter, SnapshotterChoice, View,
};
pub use solve::{result_chain, LocalDir, LocalScans, SolveOptions, SolveStore, Solved, Solver};
pub use users::{resolve_owner, resolve_user, Ids};
