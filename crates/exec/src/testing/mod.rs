//! Test doubles, behind the `testing` feature: solve vertices without root,
//! containers, runc or an on-disk store.
//!
//! - [`FakeRuntime`] is a [`Runtime`](crate::Runtime) that runs nothing. It
//!   records every [`RunRequest`](crate::RunRequest) it is handed
//!   ([`RecordedRun`]), does to the root what it was told for that command
//!   line ([`FakeRun`]: files to write, output to stream, an exit code,
//!   peers to wait for) and checks entitlements as the real runtime does.
//! - [`MemSolveStore`] is a [`SolveStore`](crate::SolveStore) that keeps
//!   blobs, cache records, images and failed steps in memory, and only
//!   snapshots and work dirs in a temporary directory.
//!
//! Combined with [`SnapshotterChoice::Copy`](crate::SnapshotterChoice), a
//! [`Solver`](crate::Solver) over them runs `RUN` steps as any user
//! (deleting files in a step still needs root: the copy snapshotter writes
//! deletions as 0/0 character devices).
//!
//! ```
//! use rbk_exec::testing::{FakeRun, FakeRuntime, MemSolveStore};
//! use rbk_exec::{SnapshotterChoice, SolveOptions, Solver};
//!
//! let runtime = FakeRuntime::new();
//! runtime.on("make", FakeRun::new().write("/out/app", "binary").stdout("built\n"));
//! runtime.on("make test", FakeRun::new().exit(2));
//! let store = MemSolveStore::new().unwrap();
//! let options = SolveOptions {
//!     snapshotter: SnapshotterChoice::Copy,
//!     ..Default::default()
//! };
//! let solver = Solver::new(&store, &runtime, options).unwrap();
//! // … run a DAG with `rbk_graph::Scheduler::new(2).run(&dag, &solver, &reporter)` …
//! assert!(runtime.commands().is_empty());
//! assert!(store.cache_keys().is_empty());
//! # drop(solver);
//! ```

mod runtime;
mod store;

pub use runtime::{FakeRun, FakeRuntime, RecordedRun, PEER_WAIT};
pub use store::MemSolveStore;
