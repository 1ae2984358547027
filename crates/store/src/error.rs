//! The store's one error type.

use std::io;
use std::path::PathBuf;

use crate::{Digest, DigestError};

/// Convenience alias for results of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store. Variants name the digest, path,
/// reference or archive entry involved; the underlying cause, if any, is the
/// error's [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation on a store path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done, e.g. "creating directory".
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The store root is owned by another user than the one running rbk.
    #[error(
        "store directory {path} is owned by uid {owner}, not by the current user (uid {current})"
    )]
    ForeignOwner {
        /// The offending directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        current: u32,
    },
    /// No blob with this digest is in the store.
    #[error("blob {digest} not found")]
    BlobNotFound {
        /// The digest asked for.
        digest: Digest,
    },
    /// Written or read content does not hash to the expected digest.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller promised.
        expected: Digest,
        /// The digest of the bytes actually seen.
        actual: Digest,
    },
    /// Written or read content does not have the expected size.
    #[error("content size mismatch for {digest:?}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest involved, when known.
        digest: Option<Digest>,
        /// The size the caller promised.
        expected: u64,
        /// The number of bytes seen (for reads, possibly `expected + 1`).
        actual: u64,
    },
    /// A bounded read hit its limit.
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was being read.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A string is not a valid digest.
    #[error("invalid digest")]
    Digest(#[from] DigestError),
    /// An image reference does not follow Docker's reference grammar.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        input: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// No image is tagged with this reference.
    #[error("image {reference} not found")]
    ImageNotFound {
        /// The normalised reference.
        reference: String,
    },
    /// An image index has no manifest for the platform asked for.
    #[error("image index {index} has no image for {platform} (it has: {})", available.join(", "))]
    PlatformNotFound {
        /// The index.
        index: Digest,
        /// The platform asked for.
        platform: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// An image is for another platform than the one asked for.
    #[error("image {image} is for {platform}, not {wanted}")]
    WrongPlatform {
        /// The image's id.
        image: Digest,
        /// Its platform (`os/architecture`).
        platform: String,
        /// The platform asked for.
        wanted: String,
    },
    /// A short image id matches more than one image.
    #[error("image id prefix {prefix:?} is ambiguous: it matches {count} images")]
    AmbiguousImageId {
        /// The prefix as given.
        prefix: String,
        /// How many image ids it matches.
        count: usize,
    },
    /// A JSON document in the store could not be read or written.
    #[error("malformed JSON in {path}")]
    Json {
        /// The document.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest, index or config is malformed, ambiguous or unsupported.
    #[error("invalid image document ({what}): {reason}")]
    InvalidDocument {
        /// Which document (e.g. `manifest sha256:…`, `manifest.json`).
        what: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// An image archive (`rbk load`) or rootfs tarball is malformed,
    /// incomplete or inconsistent; nothing was tagged.
    #[error("invalid image archive: {reason}")]
    InvalidImageArchive {
        /// What is wrong.
        reason: String,
    },
    /// A layer archive is malformed or hostile; nothing was committed.
    #[error("invalid layer archive: entry {entry:?}: {reason}")]
    InvalidArchive {
        /// The entry's path as written in the archive (lossy UTF-8).
        entry: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A stored layer does not match its digest or diff id (bit rot, a
    /// truncated or edited blob); nothing was unpacked from it.
    #[error("layer {digest} is corrupt: {reason} (run `rbk system verify`, then pull or load the image again)")]
    CorruptLayer {
        /// The layer blob's digest.
        digest: Digest,
        /// What did not match.
        reason: String,
    },
    /// Reading or decompressing the layer stream failed.
    #[error("reading layer archive (after {entries} entries)")]
    ArchiveRead {
        /// Entries successfully read before the failure.
        entries: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The uncompressed layer exceeded the configured byte limit.
    #[error("layer archive expands beyond the limit of {limit} bytes (decompression bomb?)")]
    ArchiveTooLarge {
        /// The limit from [`UnpackOptions`](crate::UnpackOptions).
        limit: u64,
    },
    /// Creating an archive entry on disk failed.
    #[error("{op} for layer entry {entry:?}")]
    Extract {
        /// What was being done.
        op: &'static str,
        /// The entry's path as written in the archive.
        entry: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A directory cannot be packed into a layer tar faithfully (an overlay
    /// redirect, a name reserved for whiteouts, a file changing while read).
    #[error("cannot make a layer of {path}: {reason}")]
    Pack {
        /// The offending path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No container has this name or id.
    #[error("No such container: {0}")]
    ContainerNotFound(String),
    /// The build-cache index (`db/cache.sqlite`) could not be read or written.
    #[error("build-cache index {path}")]
    CacheIndex {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A container name is taken, or a container name or id prefix is
    /// ambiguous.
    #[error("{0}")]
    ContainerConflict(String),
    /// `system verify` could not unpack a layer again to check a snapshot
    /// against it because the store's filesystem is full: a fact about the
    /// disk, not damage in the store.
    #[error(
        "no space left to check snapshot {diff_id}: its layer {layer} is unpacked again beside it \
         for the check; free space (`rbk prune`) and verify again, or verify with --quick"
    )]
    NoSpaceToVerify {
        /// The snapshot being checked.
        diff_id: Digest,
        /// The layer blob being unpacked.
        layer: Digest,
        /// The failed unpack (its chain holds the OS error).
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// True when the error means "no such blob or image".
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::BlobNotFound { .. } | Error::ImageNotFound { .. } => true,
            Error::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// True when no container has the name or id asked for.
    pub fn is_container_not_found(&self) -> bool {
        matches!(self, Error::ContainerNotFound(_))
    }

    /// True when content did not match its promised digest or size.
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. }
        )
    }

    /// True when a layer archive was rejected as malformed, hostile or too large.
    pub fn is_invalid_archive(&self) -> bool {
        matches!(
            self,
            Error::InvalidArchive { .. }
                | Error::ArchiveTooLarge { .. }
                | Error::ArchiveRead { .. }
        )
    }

    /// True when the store's filesystem is full (ENOSPC) or the user's
    /// quota is spent (EDQUOT): the operation failed for want of space, not
    /// because anything is damaged.
    pub fn is_disk_full(&self) -> bool {
        is_disk_full(self)
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// True when `err` or any error in its `source` chain is an OS error saying
/// that the filesystem is full (ENOSPC) or a quota is spent (EDQUOT).
/// Callers use it to free space at once (a failed build empties the
/// store's trash) and to tell a full disk from damage (`system verify`).
pub fn is_disk_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT]
                .map(|e| Some(e.raw_os_error()));
            if full.contains(&io.raw_os_error()) {
                return true;
            }
        }
        next = e.source();
    }
    false
}
