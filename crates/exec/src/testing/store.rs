//! [`MemSolveStore`]: a [`SolveStore`] whose blobs, cache records, images
//! and failed steps live in memory, for solver tests without an on-disk
//! [`rbk_store::Store`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rbk_graph::Platform;
use rbk_store::pack::{write_layer_tar, PackOptions};
use rbk_store::{
    unpack_layer, BlobAdmin, BlobInfo, BlobRead, BlobWrite, CacheRecord, Descriptor, Digest,
    FailedStep, Ingestion, Layer, MemStore, Reference, UnpackOptions, WorkDir,
};

use crate::{Error, Result, SolveStore};

/// A [`SolveStore`] for tests: blobs in a [`MemStore`], the build cache,
/// images and failed steps in maps. Only what must be directories for the
/// snapshotter (snapshots, work dirs, the solver's own [`root`]) is on
/// disk, in a temporary directory removed on drop. A committed layer's tar
/// is packed into memory at once (the on-disk store re-packs it on demand
/// instead; the bytes are the same).
///
/// Images ([`add_image`](MemSolveStore::add_image)) are found by their
/// normalised reference only, whatever the platform asked for.
///
/// [`root`]: SolveStore::root
pub struct MemSolveStore {
    blobs: MemStore,
    cache: Mutex<BTreeMap<Digest, CacheRecord>>,
    images: Mutex<BTreeMap<String, Vec<Layer>>>,
    failed: Mutex<Vec<FailedStep>>,
    /// Held while a snapshot is unpacked, so a layer is unpacked once.
    unpacking: Mutex<()>,
    /// The solver's own directory (`<dir>/root`).
    root: PathBuf,
    dir: tempfile::TempDir,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The store crate's error for a failed filesystem call.
fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> rbk_store::Error {
    let path = path.to_path_buf();
    move |source| rbk_store::Error::Io { op, path, source }
}

impl MemSolveStore {
    /// An empty store, its directories in a new temporary directory.
    pub fn new() -> Result<MemSolveStore> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", "a temp dir", e))?;
        for sub in ["root", "root/db", "snapshots", "tmp", "trash"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).map_err(|e| Error::io("creating directory", &path, e))?;
        }
        Ok(MemSolveStore {
            blobs: MemStore::new(),
            cache: Mutex::default(),
            images: Mutex::default(),
            failed: Mutex::default(),
            unpacking: Mutex::default(),
            root: dir.path().join("root"),
            dir,
        })
    }

    /// The blobs.
    pub fn blobs(&self) -> &MemStore {
        &self.blobs
    }

    /// Every cache key recorded, sorted.
    pub fn cache_keys(&self) -> Vec<Digest> {
        lock(&self.cache).keys().copied().collect()
    }

    /// The failed steps kept, in order.
    pub fn failed_steps(&self) -> Vec<FailedStep> {
        lock(&self.failed).clone()
    }

    /// Makes `reference` name an image of `layers` (their blobs should be
    /// in the store).
    pub fn add_image(&self, reference: &str, layers: Vec<Layer>) -> Result<()> {
        let parsed = parse_reference(reference)?;
        lock(&self.images).insert(parsed.to_string(), layers);
        Ok(())
    }

    fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.path().join("snapshots").join(diff_id.hex())
    }
}

impl BlobRead for MemSolveStore {
    fn open(&self, digest: &Digest) -> rbk_store::Result<Box<dyn std::io::Read + Send + '_>> {
        self.blobs.open(digest)
    }

    fn info(&self, digest: &Digest) -> rbk_store::Result<BlobInfo> {
        self.blobs.info(digest)
    }
}

impl BlobWrite for MemSolveStore {
    fn ingest(&self, expected: Option<Digest>) -> rbk_store::Result<Ingestion<'_>> {
        self.blobs.ingest(expected)
    }
}

impl BlobAdmin for MemSolveStore {
    fn walk(&self, f: &mut dyn FnMut(BlobInfo) -> rbk_store::Result<()>) -> rbk_store::Result<()> {
        self.blobs.walk(f)
    }

    fn delete(&self, digest: &Digest) -> rbk_store::Result<()> {
        self.blobs.delete(digest)
    }
}

impl SolveStore for MemSolveStore {
    fn root(&self) -> &Path {
        &self.root
    }

    fn work_dir(&self) -> rbk_store::Result<WorkDir> {
        WorkDir::create(&self.dir.path().join("tmp"), &self.dir.path().join("trash"))
    }

    fn commit_packed(&self, dir: &Path, options: &PackOptions) -> rbk_store::Result<BlobInfo> {
        let mut tar = Vec::new();
        write_layer_tar(dir, &mut tar, options)?;
        let info = self.blobs.put_bytes(&tar)?;
        self.commit_snapshot(dir, &info.digest)?;
        Ok(info)
    }

    fn commit_snapshot(&self, dir: &Path, diff_id: &Digest) -> rbk_store::Result<PathBuf> {
        let path = self.snapshot_path(diff_id);
        if path.is_dir() {
            // Identical content is kept once.
            fs::remove_dir_all(dir).map_err(io_error("removing", dir))?;
            return Ok(path);
        }
        fs::rename(dir, &path).map_err(io_error("committing snapshot", &path))?;
        Ok(path)
    }

    fn has_snapshot(&self, diff_id: &Digest) -> bool {
        self.snapshot_path(diff_id).is_dir()
    }

    fn ensure_snapshot(&self, blob: &Descriptor, diff_id: &Digest) -> rbk_store::Result<PathBuf> {
        let _unpacking = lock(&self.unpacking);
        let path = self.snapshot_path(diff_id);
        if path.is_dir() {
            return Ok(path);
        }
        let tmp = self.dir.path().join("snapshots").join(".unpack");
        let options = UnpackOptions::default().verify(blob.digest, blob.size, *diff_id);
        unpack_layer(self.blobs.open(&blob.digest)?, &tmp, &options)?;
        self.commit_snapshot(&tmp, diff_id)
    }

    fn cache_get(&self, key: &Digest) -> rbk_store::Result<Option<CacheRecord>> {
        Ok(lock(&self.cache).get(key).cloned())
    }

    fn cache_put(&self, key: &Digest, record: &CacheRecord) -> rbk_store::Result<()> {
        lock(&self.cache).insert(*key, record.clone());
        Ok(())
    }

    fn keep_failed_step(&self, step: &FailedStep, _upper: &Path) -> rbk_store::Result<()> {
        // The upper dir is left to its work dir, which removes it.
        lock(&self.failed).push(step.clone());
        Ok(())
    }

    fn image_layers(&self, reference: &str, _platform: Option<&Platform>) -> Result<Vec<Layer>> {
        let parsed = parse_reference(reference)?;
        lock(&self.images)
            .get(&parsed.to_string())
            .cloned()
            .ok_or_else(|| Error::ImageNotFound {
                reference: parsed.familiar(),
            })
    }
}

fn parse_reference(reference: &str) -> Result<Reference> {
    reference.parse().map_err(|source| Error::InvalidReference {
        reference: reference.to_string(),
        source,
    })
}
