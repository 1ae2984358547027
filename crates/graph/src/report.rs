//! Progress as an event stream: the scheduler and executors send [`Event`]s
//! to a [`Reporter`]; the CLI renders them. Libraries never print.

use std::sync::Mutex;
use std::time::Duration;

use crate::Digest;

/// Which output stream a [`Event::Log`] chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// Something that happened to one vertex. `vertex` is its index in the
/// [`crate::Dag`] (look up its description there); `digest` identifies it
/// across runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The executor started solving the vertex.
    Started {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
    },
    /// The vertex's result came from the cache; it was not run.
    Cached {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
    },
    /// Output of the vertex's process.
    Log {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
        /// Which stream.
        stream: LogStream,
        /// The bytes, as written (not necessarily whole lines).
        data: Vec<u8>,
    },
    /// Progress of a long step (a pull, a context transfer).
    Progress {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
        /// What is progressing (`layer sha256:…`, `context`).
        name: String,
        /// Done so far.
        current: u64,
        /// Total, when known.
        total: Option<u64>,
    },
    /// The vertex was solved.
    Completed {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
        /// Time from start to end of the executor's work.
        duration: Duration,
    },
    /// The vertex failed; the build stops.
    Failed {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
        /// Time from start to failure.
        duration: Duration,
        /// The error, rendered with its causes (`a: b: c`).
        error: String,
    },
    /// The vertex was running when the build was cancelled, and stopped.
    Cancelled {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
    },
    /// Something the user should know that does not stop the build (e.g.
    /// the machine lacks overlayfs and a slower way is used), found while
    /// solving the vertex.
    Warning {
        /// Dag index.
        vertex: usize,
        /// Vertex digest.
        digest: Digest,
        /// The warning, one line, without a `warning:` prefix.
        message: String,
    },
}

impl Event {
    /// The Dag index of the vertex the event is about.
    pub fn vertex(&self) -> usize {
        match self {
            Event::Started { vertex, .. }
            | Event::Cached { vertex, .. }
            | Event::Log { vertex, .. }
            | Event::Progress { vertex, .. }
            | Event::Completed { vertex, .. }
            | Event::Failed { vertex, .. }
            | Event::Cancelled { vertex, .. }
            | Event::Warning { vertex, .. } => *vertex,
        }
    }

    /// The digest of the vertex the event is about.
    pub fn digest(&self) -> Digest {
        match self {
            Event::Started { digest, .. }
            | Event::Cached { digest, .. }
            | Event::Log { digest, .. }
            | Event::Progress { digest, .. }
            | Event::Completed { digest, .. }
            | Event::Failed { digest, .. }
            | Event::Cancelled { digest, .. }
            | Event::Warning { digest, .. } => *digest,
        }
    }
}

/// Receives progress events. Called from the scheduler's worker threads,
/// concurrently: keep `event` quick (hand the event to a channel or a lock).
pub trait Reporter: Send + Sync {
    /// Called once per event.
    fn event(&self, event: Event);
}

/// Drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn event(&self, _event: Event) {}
}

/// Keeps every event in memory, in arrival order (for tests and for
/// rendering after the fact).
#[derive(Debug, Default)]
pub struct RecordingReporter {
    events: Mutex<Vec<Event>>,
}

impl RecordingReporter {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Reporter for RecordingReporter {
    fn event(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

impl<R: Reporter + ?Sized> Reporter for &R {
    fn event(&self, event: Event) {
        (**self).event(event);
    }
}
