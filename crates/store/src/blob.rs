//! Content-addressed blobs: three small traits and the helpers around them.
//!
//! # Vocabulary and lifecycle
//!
//! A *blob* is an immutable byte string named by its sha256 [`Digest`].
//! Consumers take the narrowest trait they need:
//!
//! - [`BlobRead`]: `open`, `info`, `exists` (plus the provided
//!   [`open_verified`](BlobRead::open_verified) and
//!   [`read_bounded`](BlobRead::read_bounded)).
//! - [`BlobWrite`]: `ingest` starts a write. If the caller already knows the
//!   digest it passes it, and the store either answers
//!   [`Ingestion::Exists`] (nothing to do) or hands out an [`Ingest`] that
//!   holds the per-digest lock, so two writers of the same blob never clash:
//!   the second waits, then finds the blob present. Bytes are hashed and
//!   counted while they stream in; [`Ingest::commit`] checks them against the
//!   expected digest and size and publishes the blob atomically. A mismatch is
//!   an error and the staged bytes are discarded, never resumed. Dropping an
//!   `Ingest` without committing discards it too.
//! - [`BlobAdmin`]: `walk` and `delete`, for GC and fsck.
//!
//! ```
//! use rbk_store::{BlobRead, BlobWrite, Digest, MemStore};
//!
//! let store = MemStore::new();
//! let info = store.put_bytes(b"hello").unwrap();
//! assert_eq!(info.digest, Digest::sha256_of(b"hello"));
//! assert_eq!(store.read_bounded(&info.digest, 1024).unwrap(), b"hello");
//! ```

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::{Digest, Error, Result, Sha256Writer};

/// The largest JSON document (manifest, index, config) rbk accepts: 4 MiB.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// What the store knows about a committed blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Read access to blobs.
pub trait BlobRead {
    /// Opens the blob for reading. Fails with [`Error::BlobNotFound`] if absent.
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>>;

    /// The blob's size. Fails with [`Error::BlobNotFound`] if absent.
    fn info(&self, digest: &Digest) -> Result<BlobInfo>;

    /// Whether the blob is present.
    fn exists(&self, digest: &Digest) -> Result<bool> {
        match self.info(digest) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens the blob behind a [`VerifyingReader`]: the bytes are re-hashed as
    /// they are read and the read that reaches EOF fails if they do not match.
    fn open_verified(&self, digest: &Digest) -> Result<VerifyingReader<Box<dyn Read + Send + '_>>> {
        let info = self.info(digest)?;
        Ok(VerifyingReader::new(
            self.open(digest)?,
            *digest,
            Some(info.size),
        ))
    }

    /// Reads a whole blob into memory, verified, failing with
    /// [`Error::TooLarge`] past `limit` bytes (use [`MAX_DOCUMENT_SIZE`] for
    /// JSON documents).
    fn read_bounded(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let info = self.info(digest)?;
        if info.size > limit {
            return Err(Error::TooLarge {
                what: format!("blob {digest}"),
                limit,
            });
        }
        read_to_end_bounded(
            self.open_verified(digest)?,
            limit,
            &format!("blob {digest}"),
        )
    }
}

/// Reads `reader` to its end, failing with [`Error::TooLarge`] past `limit`
/// bytes. Verification errors from a [`VerifyingReader`] come back as
/// [`Error::DigestMismatch`] / [`Error::SizeMismatch`].
pub fn read_to_end_bounded(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut limited = reader.take(limit.saturating_add(1));
    limited
        .read_to_end(&mut buf)
        .map_err(|e| unwrap_verify_error(e, what))?;
    if buf.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(buf)
}

fn unwrap_verify_error(e: io::Error, what: &str) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(Ok(inner)) = e.into_inner().map(|b| b.downcast::<Error>()) {
            return *inner;
        }
        return Error::Io {
            op: "reading",
            path: what.into(),
            source: io::Error::other("verification failed"),
        };
    }
    Error::Io {
        op: "reading",
        path: what.into(),
        source: e,
    }
}

/// The answer to [`BlobWrite::ingest`].
pub enum Ingestion<'a> {
    /// The blob is already committed: nothing to write.
    Exists(BlobInfo),
    /// Write the bytes here, then [`commit`](Ingest::commit).
    Write(Box<dyn Ingest + 'a>),
}

/// An in-progress blob write. Bytes go in through [`Write`]; dropping it
/// without committing discards them.
pub trait Ingest: Write + Send {
    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Verifies and publishes the blob. `expected` is the digest promised
    /// when the ingest began (if any), or one given now; `size`, if given,
    /// must equal the bytes written. On mismatch the staged bytes are deleted.
    fn commit(self: Box<Self>, expected: Option<Digest>, size: Option<u64>) -> Result<BlobInfo>;
}

/// Write access to blobs.
pub trait BlobWrite {
    /// Starts writing a blob. With `expected`, waits for any other writer of
    /// the same digest and returns [`Ingestion::Exists`] if it is present.
    fn ingest(&self, expected: Option<Digest>) -> Result<Ingestion<'_>>;

    /// Streams `reader` into the store, verifying against `expected` (digest
    /// and optional size) when given. Reads at most `size + 1` bytes when a
    /// size is given, so an over-long source fails rather than fills the disk.
    fn put(
        &self,
        reader: &mut dyn Read,
        expected: Option<(Digest, Option<u64>)>,
    ) -> Result<BlobInfo> {
        let mut ingest = match self.ingest(expected.map(|e| e.0))? {
            Ingestion::Exists(info) => return Ok(info),
            Ingestion::Write(w) => w,
        };
        let size = expected.and_then(|e| e.1);
        let mut limited = reader.take(size.map_or(u64::MAX, |s| s.saturating_add(1)));
        copy_large(&mut limited, &mut ingest).map_err(|source| Error::Io {
            op: "streaming blob",
            path: "<ingest>".into(),
            source,
        })?;
        ingest.commit(expected.map(|e| e.0), size)
    }

    /// Stores `bytes` and returns their digest and size.
    fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let digest = Digest::sha256_of(bytes);
        self.put(&mut &bytes[..], Some((digest, Some(bytes.len() as u64))))
    }
}

/// Buffer of [`copy_large`].
const COPY_BUFFER: usize = 1 << 20;

/// `io::copy` with a 1 MiB buffer: a blob of a GiB is 1,000 reads and
/// writes, not 130,000 (`io::copy`'s 8 KiB). Readers handed a buffer this
/// large read past their own buffering (a `BufReader` over a file reads the
/// file directly).
fn copy_large(reader: &mut dyn Read, writer: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Administration of blobs: enumeration and deletion (GC, fsck).
pub trait BlobAdmin {
    /// Calls `f` for every committed blob, in no particular order.
    fn walk(&self, f: &mut dyn FnMut(BlobInfo) -> Result<()>) -> Result<()>;

    /// Deletes a blob. Fails with [`Error::BlobNotFound`] if absent.
    fn delete(&self, digest: &Digest) -> Result<()>;
}

/// Hashes and counts bytes as they pass through; the read that reaches EOF
/// fails (with an [`io::Error`] wrapping [`Error::DigestMismatch`] or
/// [`Error::SizeMismatch`]) if they do not match. With a known size it never
/// reads more than `size + 1` bytes from the inner reader.
pub struct VerifyingReader<R> {
    inner: io::Take<R>,
    hasher: Option<Sha256Writer>,
    expected: Digest,
    size: Option<u64>,
    seen: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// The wrapped reader, unverified.
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    /// Wraps `inner`, which must yield exactly the bytes of `expected`.
    pub fn new(inner: R, expected: Digest, size: Option<u64>) -> Self {
        let limit = size.map_or(u64::MAX, |s| s.saturating_add(1));
        VerifyingReader {
            inner: inner.take(limit),
            hasher: Some(Sha256Writer::new()),
            expected,
            size,
            seen: 0,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        if let Some(size) = self.size.filter(|s| *s != self.seen) {
            let e = Error::SizeMismatch {
                digest: Some(self.expected),
                expected: size,
                actual: self.seen,
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        let actual = hasher.finish();
        if actual != self.expected {
            let e = Error::DigestMismatch {
                expected: self.expected,
                actual,
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.hasher.is_none() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        self.seen += n as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if self.size.is_some_and(|s| self.seen > s) {
            self.check()?;
        }
        Ok(n)
    }
}
