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
    /// Rootless rbk could not set up or use its user namespace; the
    /// message says what to do (which package, sysctl or `usermod` line).
    #[error("{message}")]
    Rootless {
        /// What failed and how to fix it.
        message: String,
        /// The OS error, when there was one.
        #[source]
        source: Option<io::Error>,
    },
    /// An op's arguments are invalid (bad `--chmod`, a numeric id out of
    /// range, a bad pattern, a hostname…): the build asked for something
    /// that cannot be.
    #[error("{0}")]
    Invalid(String),
    /// The build asks for something this version of rbk does not do (a
    /// mount type it does not know).
    #[error("{0}")]
    Unsupported(String),
    /// A vertex does not fit its op (an exec without a root filesystem, a
    /// mount or base naming an input that is not there): the definition the
    /// frontend produced is malformed.
    #[error("{0}")]
    MalformedOp(String),
    /// An image the build names is not in the store.
    #[error("image {reference} not found in the store (load it with `rbk load` or `rbk import`)")]
    ImageNotFound {
        /// The reference, in its familiar form.
        reference: String,
    },
    /// An image reference that does not parse.
    #[error("invalid image reference {reference:?}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// Why it does not parse.
        #[source]
        source: rbk_store::Error,
    },
    /// An image in the store contradicts itself (layer and diff id counts
    /// differ), or a document rbk would write cannot be made.
    #[error("image {reference}: {reason}")]
    CorruptImage {
        /// The image (reference or id) or document concerned.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A local source the build reads was not handed to the solver.
    #[error("no local source named {name:?} was given")]
    MissingLocal {
        /// Its name (`context`, a named context).
        name: String,
    },
    /// A required `RUN --mount=type=secret` has no value.
    #[error("secret {id}: not found (rbk build --secret id={id},src=FILE)")]
    MissingSecret {
        /// The secret's id.
        id: String,
    },
    /// A required `RUN --mount=type=ssh` has no agent socket.
    #[error("no SSH agent socket was given for ssh mount id {id:?} (rbk build --ssh {id}=PATH)")]
    MissingSsh {
        /// The mount's id.
        id: String,
    },
    /// A filesystem is deeper than overlayfs can stack.
    #[error(
        "the filesystem of this step has {layers} layers, more than overlayfs can \
         stack ({max} including rbk's init layer for RUN steps): \
         merge some RUN, COPY or ADD instructions"
    )]
    TooManyLayers {
        /// The number of lower dirs asked for.
        layers: usize,
        /// The most overlayfs stacks.
        max: usize,
    },
    /// A mount failed in a way an errno alone does not explain (the new
    /// mount API's overlay of many layers).
    #[error("{0}")]
    Mount(String),
    /// Something rbk keeps in its store is not what it wrote (an entry of
    /// the init layer of the wrong type).
    #[error("{what} {}: {reason}", path.display())]
    Corrupt {
        /// What it is, e.g. "init layer".
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What is wrong, and what to do about it.
        reason: String,
    },
    /// The OCI runtime spec of a RUN could not be made.
    #[error("{0}")]
    OciSpec(String),
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
    /// A remote source (`ADD <url>`, `ADD <git url>`) could not be fetched
    /// or is not what the build pinned.
    #[error("{url}: {reason}")]
    Remote {
        /// The URL, userinfo redacted.
        url: String,
        /// What went wrong.
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
    /// A layer blob of a `--cache-from` source could not be fetched (the
    /// transport failed, not the blob's verification): the build can go on
    /// without that source (see [`Error::is_cache_fetch`]).
    #[error("build cache {name}: fetching layer blob {digest}: {reason}")]
    CacheFetch {
        /// The cache (its directory or reference).
        name: String,
        /// The blob that could not be fetched.
        digest: rbk_store::Digest,
        /// What the transport said.
        reason: String,
    },
}

impl Error {
    /// Whether this is a "not there" error: a path, an image, a local
    /// source, a secret or an SSH agent the build names is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::ImageNotFound { .. }
                | Error::MissingLocal { .. }
                | Error::MissingSecret { .. }
                | Error::MissingSsh { .. }
        )
    }

    /// Whether a `--cache-from` source failed to deliver a layer blob
    /// halfway through a build: nothing unverified was kept, and building
    /// without that source is the way on.
    pub fn is_cache_fetch(&self) -> bool {
        matches!(self, Error::CacheFetch { .. })
    }

    /// Whether the build asks for something rbk does not support.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported(_))
    }

    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
