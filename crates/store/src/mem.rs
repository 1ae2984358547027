//! [`MemStore`]: a small in-memory blob store for tests, held to the same
//! conformance suite as the on-disk store.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::blob::{BlobAdmin, BlobInfo, BlobRead, BlobWrite, Ingest, Ingestion};
use crate::{Digest, Error, Result, Sha256Writer};

#[derive(Default)]
struct Inner {
    blobs: BTreeMap<Digest, Arc<Vec<u8>>>,
    writing: std::collections::BTreeSet<Digest>,
}

/// An in-memory [`BlobRead`] + [`BlobWrite`] + [`BlobAdmin`]. Clones share
/// the same content.
#[derive(Clone, Default)]
pub struct MemStore {
    inner: Arc<(Mutex<Inner>, Condvar)>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BlobRead for MemStore {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        let bytes = self
            .lock()
            .blobs
            .get(digest)
            .cloned()
            .ok_or(Error::BlobNotFound { digest: *digest })?;
        Ok(Box::new(io::Cursor::new(ArcBytes(bytes))))
    }

    fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        let guard = self.lock();
        let bytes = guard
            .blobs
            .get(digest)
            .ok_or(Error::BlobNotFound { digest: *digest })?;
        Ok(BlobInfo {
            digest: *digest,
            size: bytes.len() as u64,
        })
    }
}

struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl BlobWrite for MemStore {
    fn ingest(&self, expected: Option<Digest>) -> Result<Ingestion<'_>> {
        if let Some(d) = expected {
            let mut guard = self.lock();
            while guard.writing.contains(&d) {
                guard = self.inner.1.wait(guard).unwrap_or_else(|p| p.into_inner());
            }
            if let Some(bytes) = guard.blobs.get(&d) {
                return Ok(Ingestion::Exists(BlobInfo {
                    digest: d,
                    size: bytes.len() as u64,
                }));
            }
            guard.writing.insert(d);
        }
        let ingest = MemIngest {
            store: self,
            buf: Vec::new(),
            hasher: Sha256Writer::new(),
            expected,
        };
        Ok(Ingestion::Write(Box::new(ingest)))
    }
}

impl BlobAdmin for MemStore {
    fn walk(&self, f: &mut dyn FnMut(BlobInfo) -> Result<()>) -> Result<()> {
        let infos: Vec<BlobInfo> = self
            .lock()
            .blobs
            .iter()
            .map(|(d, b)| BlobInfo {
                digest: *d,
                size: b.len() as u64,
            })
            .collect();
        infos.into_iter().try_for_each(f)
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        self.lock()
            .blobs
            .remove(digest)
            .map(|_| ())
            .ok_or(Error::BlobNotFound { digest: *digest })
    }
}

struct MemIngest<'a> {
    store: &'a MemStore,
    buf: Vec<u8>,
    hasher: Sha256Writer,
    expected: Option<Digest>,
}

impl Write for MemIngest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Ingest for MemIngest<'_> {
    fn written(&self) -> u64 {
        self.buf.len() as u64
    }

    fn commit(
        mut self: Box<Self>,
        expected: Option<Digest>,
        size: Option<u64>,
    ) -> Result<BlobInfo> {
        let actual = std::mem::take(&mut self.hasher).finish();
        let written = self.buf.len() as u64;
        if let Some(size) = size.filter(|s| *s != written) {
            return Err(Error::SizeMismatch {
                digest: expected.or(self.expected),
                expected: size,
                actual: written,
            });
        }
        for e in [self.expected, expected].into_iter().flatten() {
            if e != actual {
                return Err(Error::DigestMismatch {
                    expected: e,
                    actual,
                });
            }
        }
        let bytes = std::mem::take(&mut self.buf);
        self.store
            .lock()
            .blobs
            .entry(actual)
            .or_insert_with(|| Arc::new(bytes));
        Ok(BlobInfo {
            digest: actual,
            size: written,
        })
    }
}

impl Drop for MemIngest<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.expected {
            self.store.lock().writing.remove(&d);
            self.store.inner.1.notify_all();
        }
    }
}
