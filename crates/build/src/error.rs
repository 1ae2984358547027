//! The engine's one error type.

/// A boxed error from a provider or transport (their implementations are
/// the caller's, with error types of their own).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in a build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Dockerfile (or `.dockerignore`) does not parse or lower; `text`
    /// is the file, so the caller can show the offending lines.
    #[error("{error}")]
    Dockerfile {
        /// The file's text.
        text: String,
        /// The parser's error, with its location.
        error: rbk_parser::Error,
    },
    /// A step failed, or an image a step needs could not be had. `text`
    /// and `location` point at the Dockerfile lines it came from; the cause
    /// (the executor's error, with its own causes) is the source.
    #[error("failed to solve{}", context.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Step {
        /// The Dockerfile's text.
        text: String,
        /// The step's lines, when known.
        location: Option<rbk_parser::Location>,
        /// What was being done, when more than solving the step: which
        /// platform's step failed, or which image could not be resolved.
        context: Option<String>,
        /// What went wrong.
        #[source]
        source: BoxError,
        /// The vertex of the `RUN` step that exited non-zero, when that is
        /// what failed (its state is kept for `rbk debug step`).
        failed_run: Option<Box<rbk_store::Digest>>,
    },
    /// `# check=error=true` and the build checks found something: BuildKit's
    /// `lint violation found for rules: …`, with the findings to show.
    #[error("{message}")]
    Checks {
        /// The message.
        message: String,
        /// What was found.
        findings: Vec<rbk_parser::checks::Finding>,
        /// Problems with the check configuration (unknown rule names).
        notes: Vec<String>,
    },
    /// The request asks for something rbk cannot do or that is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Reading an input of the build (the Dockerfile, `.dockerignore`).
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A build context that is not a local directory (stdin, a URL, a git
    /// repository) could not be read or fetched.
    #[error("{what}")]
    Context {
        /// What was being done, naming the context.
        what: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// An output could not be written.
    #[error("{what}")]
    Output {
        /// Which output.
        what: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A `--cache-to` export failed (one marked `ignore-error` only warns).
    #[error("--cache-to {what}")]
    CacheExport {
        /// Which cache.
        what: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Pulling or pushing an image failed.
    #[error("{what}")]
    Registry {
        /// What was being done, naming the image.
        what: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// A `--cache-from` source failed to deliver a layer blob mid-build;
    /// [`Engine::run`](crate::Engine::run) builds again without it.
    #[error("{0}")]
    CacheFetch(String),
    /// From the build graph.
    #[error(transparent)]
    Graph(#[from] rbk_graph::Error),
    /// From solving or committing.
    #[error(transparent)]
    Exec(#[from] rbk_exec::Error),
    /// From the store.
    #[error(transparent)]
    Store(#[from] rbk_store::Error),
}

impl Error {
    /// The digest of the `RUN` step whose failure this is, when the store
    /// kept that step's state for `rbk debug step`.
    pub fn kept_failed_step(&self, store: &rbk_store::Store) -> Option<rbk_store::Digest> {
        let Error::Step {
            failed_run: Some(digest),
            ..
        } = self
        else {
            return None;
        };
        let kept = store
            .failed_steps()
            .ok()?
            .iter()
            .any(|s| s.digest == **digest);
        kept.then_some(**digest)
    }
}

/// The error chain of `err` on one line, `a: b: c` (a cause whose text
/// already ends the line is not repeated), for messages that are plain
/// strings: warnings, and errors of types that carry no source.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
