//! [`Execute`]: what the scheduler needs from whoever solves vertices.
//!
//! # Lifecycle
//!
//! For each vertex of a [`crate::Dag`], once all of its inputs are solved,
//! the [`crate::Scheduler`] calls, on one of its worker threads:
//!
//! 1. [`Execute::cached`] with the vertex and its inputs' outputs (skipped
//!    when the vertex's metadata says `ignore_cache`). `Ok(Some(out))` is a
//!    cache hit: the vertex is reported as [`crate::Event::Cached`] and
//!    `execute` is not called.
//! 2. otherwise [`Execute::execute`], reported as `Started` and then
//!    `Completed` or `Failed`. The executor may send `Log` and `Progress`
//!    events through its [`ExecContext`] and should stop early when
//!    [`ExecContext::is_cancelled`] turns true (another vertex failed, or
//!    the caller cancelled the build).
//!
//! Each vertex is solved at most once per run. `inputs[i]` is the output of
//! the vertex that `vertex.op().inputs()[i]` points at.
//!
//! # Example
//!
//! An executor where every vertex outputs the number of vertices below it
//! (counting repeats):
//!
//! ```
//! use rbk_graph::{DagVertex, ExecContext, Execute};
//!
//! struct Count;
//!
//! impl Execute for Count {
//!     type Output = u64;
//!     type Error = std::convert::Infallible;
//!
//!     fn execute(&self, _v: &DagVertex, inputs: &[u64], _ctx: &ExecContext<'_>) -> Result<u64, Self::Error> {
//!         Ok(1 + inputs.iter().sum::<u64>())
//!     }
//! }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::dag::DagVertex;
use crate::report::{Event, LogStream, Reporter};

/// Solves vertices. Implemented by `rbk-exec` for real ops, and by toy
/// executors in tests.
pub trait Execute: Sync {
    /// A vertex's result (a snapshot reference, a number in tests). Cloned
    /// once per user of the vertex.
    type Output: Clone + Send + Sync;
    /// Why a vertex failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A cached result for this vertex, if any. The default never hits.
    fn cached(
        &self,
        vertex: &DagVertex,
        inputs: &[Self::Output],
    ) -> Result<Option<Self::Output>, Self::Error> {
        let _ = (vertex, inputs);
        Ok(None)
    }

    /// Solves the vertex.
    fn execute(
        &self,
        vertex: &DagVertex,
        inputs: &[Self::Output],
        ctx: &ExecContext<'_>,
    ) -> Result<Self::Output, Self::Error>;
}

/// A shared cancellation flag. Cloning shares it; once cancelled it stays
/// cancelled.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything watching this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What an executor may use while solving one vertex.
pub struct ExecContext<'a> {
    pub(crate) vertex: usize,
    pub(crate) digest: crate::Digest,
    pub(crate) reporter: &'a dyn Reporter,
    pub(crate) cancel: &'a CancelToken,
}

impl ExecContext<'_> {
    /// True when the executor should stop: another vertex failed or the
    /// build was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The build's cancellation token, to hand to a thread that waits on a
    /// process and must kill it on cancel.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The digest of the vertex being solved.
    pub fn digest(&self) -> crate::Digest {
        self.digest
    }

    /// Reports output of the vertex's process.
    pub fn log(&self, stream: LogStream, data: &[u8]) {
        self.reporter.event(Event::Log {
            vertex: self.vertex,
            digest: self.digest,
            stream,
            data: data.to_vec(),
        });
    }

    /// Reports a warning that does not stop the vertex.
    pub fn warn(&self, message: &str) {
        self.reporter.event(Event::Warning {
            vertex: self.vertex,
            digest: self.digest,
            message: message.to_string(),
        });
    }

    /// Reports progress of a named part of the work.
    pub fn progress(&self, name: &str, current: u64, total: Option<u64>) {
        self.reporter.event(Event::Progress {
            vertex: self.vertex,
            digest: self.digest,
            name: name.to_string(),
            current,
            total,
        });
    }
}
