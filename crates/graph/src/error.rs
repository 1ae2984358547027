//! The crate's one error type.

use crate::op::NodeId;
use crate::Digest;

/// The executor's error, boxed so that [`Error`] stays free of type parameters.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while building or solving a [`crate::Dag`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A root handed to [`crate::Dag::new`] is not a vertex of the definition.
    #[error("root {node:?} is not a vertex of the definition ({len} vertices)")]
    UnknownRoot {
        /// The root asked for.
        node: NodeId,
        /// How many vertices the definition has.
        len: usize,
    },
    /// A vertex's input does not point at an earlier vertex (the definition
    /// was built by hand rather than with [`crate::Definition::push`]).
    #[error("vertex {node:?} has input {input:?}, which is not an earlier vertex")]
    BadInput {
        /// The vertex with the bad edge.
        node: NodeId,
        /// Where the edge points.
        input: NodeId,
    },
    /// The executor failed on a vertex. The cause is the executor's error.
    #[error("failed to solve vertex {digest}")]
    Vertex {
        /// The failing vertex.
        digest: Digest,
        /// The executor's error.
        #[source]
        source: BoxError,
    },
    /// The executor panicked on a vertex.
    #[error("executor panicked on vertex {digest}: {message}")]
    Panic {
        /// The vertex being solved.
        digest: Digest,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The build was cancelled from outside (see [`crate::CancelToken`])
    /// before any vertex failed.
    #[error("build cancelled")]
    Cancelled,
    /// The scheduler's thread pool could not be started.
    #[error("cannot start the scheduler's thread pool")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
}

impl Error {
    /// True when the build stopped because it was cancelled from outside.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// The digest of the vertex this error is about, if any.
    pub fn vertex_digest(&self) -> Option<Digest> {
        match self {
            Error::Vertex { digest, .. } | Error::Panic { digest, .. } => Some(*digest),
            _ => None,
        }
    }

    /// The executor's error, when it is a `T` (for example to read a RUN
    /// step's exit code).
    pub fn executor_error<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            Error::Vertex { source, .. } => source.downcast_ref::<T>(),
            _ => None,
        }
    }
}
