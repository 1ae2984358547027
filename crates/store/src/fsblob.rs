//! [`BlobRead`], [`BlobWrite`] and [`BlobAdmin`] for the on-disk [`Store`].

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use crate::blob::{BlobAdmin, BlobInfo, BlobRead, BlobWrite, Ingest, Ingestion};
use crate::fsutil::{nofollow, sync_dir, unique_name};
use crate::lock::FileLock;
use crate::{Digest, Error, Result, Sha256Writer, Store, VerifyingReader};

impl Store {
    /// `<root>/blobs/sha256/<hex>`. The digest is a validated type, so the
    /// path cannot escape the blobs directory.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
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
        match self.open_file(digest)? {
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
        let reader: Box<dyn Read + Send + '_> = match self.open_file(digest)? {
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
    /// The blob file of `digest`, or `None` if there is none.
    fn open_file(&self, digest: &Digest) -> Result<Option<File>> {
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
                let lock =
                    FileLock::exclusive(&self.ingest_dir().join(format!("{}.lock", d.hex())))?;
                if let Ok(info) = self.info(&d) {
                    return Ok(Ingestion::Exists(info));
                }
                (d.hex(), Some(lock))
            }
            None => (unique_name("tmp-"), None),
        };
        let path = self.ingest_dir().join(name);
        // Truncate: a leftover from a killed writer is never resumed (rule 0.4).
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
            hasher: Sha256Writer::new(),
            written: 0,
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

/// A blob being written to `<root>/ingest/<id>`.
struct FsIngest<'a> {
    store: &'a Store,
    file: File,
    path: PathBuf,
    hasher: Sha256Writer,
    written: u64,
    expected: Option<Digest>,
    done: bool,
    _lock: Option<FileLock>,
}

impl Write for FsIngest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
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
        let hasher = std::mem::take(&mut self.hasher);
        let info = verify(
            hasher.finish(),
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
