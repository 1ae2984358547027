//! [`BlobRead`], [`BlobWrite`] and [`BlobAdmin`] for the on-disk [`Store`].

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::blob::{BlobAdmin, BlobInfo, BlobRead, BlobWrite, Ingest, Ingestion};
use crate::fsutil::{nofollow, sync_dir, unique_name};
use crate::lock::FileLock;
use crate::{Digest, Error, Result, Sha256Writer, Store, VerifyingReader};

/// `<layout>/blobs/sha256/<hex>` of any OCI image layout directory (the
/// store's own, or a cache directory written by `--cache-to type=local`).
pub fn layout_blob_path(layout: &std::path::Path, digest: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

impl Store {
    /// `<root>/blobs/sha256/<hex>`. The digest is a validated type, so the
    /// path cannot escape the blobs directory.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        layout_blob_path(self.root(), digest)
    }

    fn not_found(&self, digest: &Digest) -> impl FnOnce(io::Error) -> Error + '_ {
        let digest = *digest;
        move |e| match e.kind() {
            io::ErrorKind::NotFound => Error::BlobNotFound { digest },
            _ => Error::Io {
                op: "opening blob",
                path: self.blob_path(&digest),
                source: e,
            },
        }
    }
}

impl BlobRead for Store {
    /// A blob file, or a packed blob's re-packed tar (already verified: see
    /// `packed.rs`).
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        match self.open_blob_file(digest)? {
            Some(file) => Ok(Box::new(file)),
            None => match self.open_packed(digest)? {
                Some(reader) => Ok(Box::new(reader)),
                None => Err(Error::BlobNotFound { digest: *digest }),
            },
        }
    }

    fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        match fs::symlink_metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() => {
                return Ok(BlobInfo {
                    digest: *digest,
                    size: meta.len(),
                })
            }
            Ok(_) => return Err(Error::BlobNotFound { digest: *digest }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.not_found(digest)(e)),
        }
        self.packed_info(digest)?
            .ok_or(Error::BlobNotFound { digest: *digest })
    }

    /// Like the provided method, but a packed blob is hashed once, not twice.
    fn open_verified(&self, digest: &Digest) -> Result<VerifyingReader<Box<dyn Read + Send + '_>>> {
        let info = self.info(digest)?;
        let reader: Box<dyn Read + Send + '_> = match self.open_blob_file(digest)? {
            Some(file) => Box::new(file),
            None => match self.open_packed(digest)? {
                Some(packed) => Box::new(packed.into_inner()),
                None => return Err(Error::BlobNotFound { digest: *digest }),
            },
        };
        Ok(VerifyingReader::new(reader, *digest, Some(info.size)))
    }
}

impl Store {
    /// The committed blob file of `digest`, or `None` if the blob has no
    /// file (absent, or packed from its snapshot). Unverified: a file was
    /// verified when it was committed and is read-only since (`system
    /// verify` looks for bit rot). For copying whole blobs fast (a `File`
    /// lets `std::io::copy` use `copy_file_range`).
    pub fn open_blob_file(&self, digest: &Digest) -> Result<Option<File>> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(nofollow())
            .open(self.blob_path(digest));
        match opened {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.not_found(digest)(e)),
        }
    }
}

impl BlobWrite for Store {
    fn ingest(&self, expected: Option<Digest>) -> Result<Ingestion<'_>> {
        let (name, lock) = match expected {
            Some(d) => {
                let lock = self.ingest_lock(&d, "lock")?;
                if let Ok(info) = self.info(&d) {
                    return Ok(Ingestion::Exists(info));
                }
                (d.hex(), Some(lock))
            }
            None => (unique_name("tmp-"), None),
        };
        let path = self.ingest_dir().join(name);
        // Truncate: a leftover from a killed writer is never resumed (docs/security.md rule 4).
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nofollow())
            .open(&path)
            .map_err(Error::io("creating ingest file", &path))?;
        let ingest = FsIngest {
            store: self,
            file,
            path,
            hasher: Hasher::Inline(Sha256Writer::new()),
            written: 0,
            written_back: 0,
            expected,
            done: false,
            _lock: lock,
        };
        Ok(Ingestion::Write(Box::new(ingest)))
    }
}

impl BlobAdmin for Store {
    fn walk(&self, f: &mut dyn FnMut(BlobInfo) -> Result<()>) -> Result<()> {
        let dir = self.blobs_dir();
        for entry in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse().ok())
            else {
                continue; // not a blob name: ignored, never trusted
            };
            let meta = entry
                .metadata()
                .map_err(Error::io("inspecting", entry.path()))?;
            if meta.is_file() {
                f(BlobInfo {
                    digest,
                    size: meta.len(),
                })?;
            }
        }
        self.walk_packed(f)
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        let had_record = self.remove_packed_record(digest)?;
        match fs::remove_file(self.blob_path(digest)) {
            Ok(()) => sync_dir(&self.blobs_dir()),
            Err(e) if had_record && e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.not_found(digest)(e)),
        }
    }
}

/// Past this many bytes an ingest hashes on a thread of its own, so that
/// sha256 overlaps reading the source and writing the file (small blobs are
/// not worth a thread).
const THREADED_HASH_AFTER: u64 = 8 << 20;
/// An ingest starts writeback of what it wrote every this many bytes.
const WRITEBACK_EVERY: u64 = 32 << 20;
/// Chunks queued for the hashing thread; each is at most one `write`.
const HASH_QUEUE: usize = 8;

/// The sha256 of an ingest: inline at first, then on a thread.
enum Hasher {
    Inline(Sha256Writer),
    Threaded {
        tx: SyncSender<Vec<u8>>,
        /// Returns emptied buffers for reuse.
        free: Receiver<Vec<u8>>,
        thread: std::thread::JoinHandle<Sha256Writer>,
    },
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Inline(h) => h.update(bytes),
            Hasher::Threaded { tx, free, .. } => {
                let mut chunk = free.try_recv().unwrap_or_default();
                chunk.clear();
                chunk.extend_from_slice(bytes);
                // The thread only stops when `tx` is dropped.
                let _ = tx.send(chunk);
            }
        }
    }

    /// Moves the hashing onto a thread (once).
    fn go_threaded(&mut self) {
        let Hasher::Inline(inline) = self else {
            return;
        };
        let mut hasher = inline.clone();
        let (tx, rx) = sync_channel::<Vec<u8>>(HASH_QUEUE);
        let (free_tx, free) = sync_channel::<Vec<u8>>(HASH_QUEUE);
        let spawned = std::thread::Builder::new().spawn(move || {
            for chunk in rx {
                hasher.update(&chunk);
                let _ = free_tx.try_send(chunk);
            }
            hasher
        });
        // Without a thread, hashing simply stays inline.
        if let Ok(thread) = spawned {
            *self = Hasher::Threaded { tx, free, thread };
        }
    }

    fn finish(self) -> io::Result<Digest> {
        match self {
            Hasher::Inline(h) => Ok(h.finish()),
            Hasher::Threaded { tx, thread, .. } => {
                drop(tx);
                let hasher = thread
                    .join()
                    .map_err(|_| io::Error::other("the hashing thread panicked"))?;
                Ok(hasher.finish())
            }
        }
    }
}

/// A blob being written to `<root>/ingest/<id>`.
struct FsIngest<'a> {
    store: &'a Store,
    file: File,
    path: PathBuf,
    hasher: Hasher,
    written: u64,
    /// Bytes handed to early writeback so far.
    written_back: u64,
    expected: Option<Digest>,
    done: bool,
    _lock: Option<FileLock>,
}

impl Write for FsIngest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if self.written >= THREADED_HASH_AFTER {
            self.hasher.go_threaded();
        }
        if self.written - self.written_back >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl FsIngest<'_> {
    /// Starts writing the bytes since the last call to disk, without waiting,
    /// so the fsync at commit finds little left to do and the disk works
    /// while the source is still being read. On Linux, `POSIX_FADV_DONTNEED`
    /// starts writeback of the dirty pages of the range (it then drops only
    /// pages already clean, so little of the page cache is lost). Only a
    /// hint: errors are ignored, the fsync at commit is what makes the blob
    /// durable.
    fn start_writeback(&mut self) {
        let len = std::num::NonZeroU64::new(self.written - self.written_back);
        let _ = rustix::fs::fadvise(
            &self.file,
            self.written_back,
            len,
            rustix::fs::Advice::DontNeed,
        );
        self.written_back = self.written;
    }
}

impl Ingest for FsIngest<'_> {
    fn written(&self) -> u64 {
        self.written
    }

    fn commit(
        mut self: Box<Self>,
        expected: Option<Digest>,
        size: Option<u64>,
    ) -> Result<BlobInfo> {
        self.file
            .sync_all()
            .map_err(Error::io("syncing ingest file", &self.path))?;
        let hasher = std::mem::replace(&mut self.hasher, Hasher::Inline(Sha256Writer::new()));
        let info = verify(
            hasher
                .finish()
                .map_err(Error::io("hashing ingest file", &self.path))?,
            self.written,
            [self.expected, expected],
            size,
        )?;
        let dest = self.store.blob_path(&info.digest);
        if dest.exists() {
            return Ok(info); // Drop removes the staged copy // already committed by another writer: success
        }
        fs::set_permissions(&self.path, Permissions::from_mode(0o444))
            .map_err(Error::io("making blob read-only", &self.path))?;
        fs::rename(&self.path, &dest).map_err(Error::io("committing blob", &dest))?;
        self.done = true;
        sync_dir(&self.store.blobs_dir())?;
        Ok(info)
    }
}

fn verify(
    actual: Digest,
    written: u64,
    expected: [Option<Digest>; 2],
    size: Option<u64>,
) -> Result<BlobInfo> {
    if let Some(size) = size.filter(|s| *s != written) {
        let digest = expected[0].or(expected[1]);
        return Err(Error::SizeMismatch {
            digest,
            expected: size,
            actual: written,
        });
    }
    if let Some(expected) = expected.into_iter().flatten().find(|e| *e != actual) {
        return Err(Error::DigestMismatch { expected, actual });
    }
    Ok(BlobInfo {
        digest: actual,
        size: written,
    })
}

impl Drop for FsIngest<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Aborted or failed verification: the staged bytes are discarded.
            let _ = fs::remove_file(&self.path);
        }
    }
}
