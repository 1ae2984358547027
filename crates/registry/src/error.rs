//! The crate's one error type.

use std::path::PathBuf;

use rbk_store::Digest;

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing answered at the registry's address, even after retries.
    #[error("cannot connect to registry {registry} (is it running, and is the address right?)")]
    Unreachable {
        /// The registry host (and port).
        registry: String,
        /// The transport error of the last attempt.
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// The registry kept failing (5xx, 429, cut-off bodies) until the
    /// retries ran out.
    #[error("{what}: registry {registry} kept failing; gave up after {attempts} attempts")]
    GaveUp {
        /// What was being done.
        what: String,
        /// The registry host (and port).
        registry: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },
    /// The registry refused the request for lack of (valid) credentials.
    #[error("{what}: registry {registry} denied access (wrong or missing credentials; try `rbk login {registry}`)")]
    Unauthorized {
        /// What was being done.
        what: String,
        /// The registry host (and port).
        registry: String,
    },
    /// The manifest or blob does not exist in the registry.
    #[error("{what}: not found in registry {registry}")]
    NotFound {
        /// What was looked up.
        what: String,
        /// The registry host (and port).
        registry: String,
    },
    /// An index has no manifest for the wanted platform.
    #[error("{reference}: no manifest for platform {platform} (the image has: {available})")]
    PlatformNotFound {
        /// The image reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index offers, comma-separated.
        available: String,
    },
    /// A manifest named directly (not through an index) is for another
    /// platform than the one asked for, by its config's `os`/`architecture`.
    #[error("{reference}: the image is for {actual}, not the requested platform {platform} (choose it with --platform {actual})")]
    PlatformMismatch {
        /// The image reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platform the image's config names.
        actual: String,
    },
    /// Content from the registry did not match its digest or size.
    #[error("{what} from registry {registry}: content does not match digest {expected}")]
    Mismatch {
        /// What was fetched.
        what: String,
        /// The registry host (and port).
        registry: String,
        /// The digest that was promised.
        expected: Digest,
        /// What the store (or the size check) found.
        #[source]
        source: Option<Box<rbk_store::Error>>,
    },
    /// A document from the registry or the store is not what was expected.
    #[error("{what}: {reason}")]
    Invalid {
        /// The document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry answered with an error that retrying does not fix.
    #[error("{what}: registry {registry} refused the request")]
    Registry {
        /// What was being done.
        what: String,
        /// The registry host (and port).
        registry: String,
        /// The protocol error.
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// The registry lost a blob upload's session (404 or 416 on its
    /// `PUT`); retried with a new session.
    #[error("{what}: registry {registry} lost the upload session")]
    UploadLost {
        /// What was being uploaded.
        what: String,
        /// The registry host (and port).
        registry: String,
        /// The protocol error.
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// The registry asked to wait longer before retrying (`Retry-After`)
    /// than rbk waits.
    #[error(
        "{what}: registry {registry} asked to retry after {seconds} s, longer than the {limit} s \
         rbk waits; try again later"
    )]
    Throttled {
        /// What was being done.
        what: String,
        /// The registry host (and port).
        registry: String,
        /// The wait asked for.
        seconds: u64,
        /// The longest wait rbk accepts.
        limit: u64,
        /// The refusal.
        #[source]
        source: Box<Error>,
    },
    /// A blob stream broke off (a cut connection or a short body).
    #[error("{what}: transfer from registry {registry} broke off")]
    Transfer {
        /// What was being transferred.
        what: String,
        /// The registry host (and port).
        registry: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The local store failed.
    #[error("{what}")]
    Store {
        /// What was being done.
        what: String,
        /// The store's error.
        #[source]
        source: Box<rbk_store::Error>,
    },
    /// A `--platform` value is malformed.
    #[error("invalid platform {input:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")]
    InvalidPlatform {
        /// The value given.
        input: String,
    },
    /// The docker config file could not be read or written.
    #[error("{op} {path}")]
    Config {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A docker credential helper failed.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    CredentialHelper {
        /// The helper's name.
        helper: String,
        /// The registry asked about.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// The async runtime that drives the HTTP client could not start.
    #[error("starting the registry client's runtime")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// True when the registry does not have what was asked for.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True when the registry (or the proxy in front of it) refused an
    /// upload as too large: HTTP 413.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Error::Registry { source, .. }
            if matches!(**source, oci_client::errors::OciDistributionError::ServerError { code: 413, .. }))
    }

    /// True when content arrived but did not match its digest or size.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Error::Mismatch { .. })
    }

    /// True when the registry refused the credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Unauthorized { .. })
    }

    pub(crate) fn store(what: impl Into<String>, source: rbk_store::Error) -> Error {
        Error::Store {
            what: what.into(),
            source: Box::new(source),
        }
    }
}
