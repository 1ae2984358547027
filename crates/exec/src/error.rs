//! The exec crate's one error type.

use std::io;
use std::path::PathBuf;

/// Convenience alias for results of solving.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while solving a vertex. Variants name the
/// path, user or command involved; the cause is the error's `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done, e.g. "creating directory".
        op: &'static str,
        /// The path it was done to (inside the root it belongs to, when it
        /// belongs to one).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A path named by the build does not exist where it must.
    #[error("{what} {path:?}: not found")]
    NotFound {
        /// What the path is, e.g. "source file".
        what: &'static str,
        /// The path as the build named it.
        path: String,
    },
    /// A user or group name could not be resolved inside the root.
    #[error("unable to find {kind} {name}: no matching entries in {file} file")]
    UnknownUser {
        /// `user` or `group`.
        kind: &'static str,
        /// The name as written.
        name: String,
        /// `passwd` or `group`.
        file: &'static str,
    },
    /// An op's arguments are invalid (bad `--chmod`, a numeric id out of range…).
    #[error("{0}")]
    Invalid(String),
    /// A process in a container exited unsuccessfully.
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    ProcessFailed {
        /// The command line, joined with spaces.
        command: String,
        /// The exit code (128 + signal for a signalled process).
        code: i32,
    },
    /// The OCI runtime could not be used.
    #[error("runtime {runtime}: {message}")]
    Runtime {
        /// The runtime binary.
        runtime: String,
        /// What went wrong.
        message: String,
    },
    /// The store failed.
    #[error("store")]
    Store(#[from] rbk_store::Error),
    /// A directory cannot be turned into a layer faithfully (an overlay
    /// redirect, a name reserved for whiteouts, a file changing while read).
    #[error("cannot make a layer of {path}: {reason}")]
    Layer {
        /// The offending path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A shared build cache (`--cache-from`, `--cache-to`) is unusable: a
    /// malformed cache config, a blob that does not verify, a failed fetch.
    #[error("build cache {name}: {reason}")]
    Cache {
        /// The cache (its directory or reference) or the blob concerned.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
