//! Garbage collection: mark from the roots, sweep the rest, clear orphans.
//!
//! # Roots
//!
//! - the image index: each tagged or untagged manifest, its config and its
//!   layers (an index's child manifests, when present, likewise);
//! - the build-cache index: every record's layer blobs;
//! - snapshots whose diff id appears in a live image config's
//!   `rootfs.diff_ids` or in a cache record.
//!
//! Packed blobs (`db/packed/`, see `packed.rs`) are blobs like the files:
//! a dead one loses its record, and a live one keeps its snapshot.
//!
//! Everything else under `blobs/sha256/` and `snapshots/` is moved to
//! `trash/` by rename; [`Store::empty_trash`] deletes it later (the caller
//! decides when: bulk deletion is slow on this machine's ext4 and must stay
//! off the hot path).
//!
//! # Leases
//!
//! A process that writes blobs or snapshots before they are reachable from a
//! root (a build, `rbk load`, `rbk import`) holds a *lease*: a shared flock on
//! `db/gc.lock`, taken with [`Store::lease`] for its whole life. GC and image
//! deletion take the same lock exclusively, waiting for every lease to end,
//! so content in use is never swept (docs/security.md F9). Locks are flocks, so a
//! killed process releases its lease (F8).
//!
//! Lock order: `db/gc.lock` before `db/lock` (the index lock), never the
//! reverse.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::image::{self, Document};
use crate::lock::FileLock;
use crate::{
    BlobAdmin, BlobInfo, BlobRead, Digest, Error, Layer, Reference, Result, Store,
    MAX_DOCUMENT_SIZE,
};

/// What is reachable from the roots.
#[derive(Debug, Default, Clone)]
pub struct LiveSet {
    /// Blobs reachable from tagged images.
    pub image_blobs: BTreeSet<Digest>,
    /// Blobs reachable from cache records only or also from images.
    pub cache_blobs: BTreeSet<Digest>,
    /// Diff ids of live snapshots.
    pub snapshots: BTreeSet<Digest>,
    /// For each live diff id whose layer blob is known, that blob (the
    /// first met): what `system verify` unpacks to check the snapshot.
    pub layers: BTreeMap<Digest, BlobInfo>,
}

impl LiveSet {
    /// Whether `digest` is reachable from any root.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.image_blobs.contains(digest) || self.cache_blobs.contains(digest)
    }

    /// Marks the layers of a cache record (or of a failed step) live.
    fn add_cache_layers<'a>(&mut self, layers: impl IntoIterator<Item = &'a Layer>) {
        for layer in layers {
            self.cache_blobs.insert(layer.blob.digest);
            self.snapshots.insert(layer.diff_id);
            let blob = BlobInfo {
                digest: layer.blob.digest,
                size: layer.blob.size,
            };
            self.layers.entry(layer.diff_id).or_insert(blob);
        }
    }

    /// Both sets; where both know a diff id's layer, `self`'s (the first
    /// met) stays.
    fn merge(mut self, other: LiveSet) -> LiveSet {
        self.image_blobs.extend(other.image_blobs);
        self.cache_blobs.extend(other.cache_blobs);
        self.snapshots.extend(other.snapshots);
        for (diff_id, blob) in other.layers {
            self.layers.entry(diff_id).or_insert(blob);
        }
        self
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// Unreferenced blobs moved to the trash.
    pub blobs: Vec<BlobInfo>,
    /// Unreferenced snapshots moved to the trash, with their sizes.
    pub snapshots: Vec<(Digest, u64)>,
    /// Orphans cleared first.
    pub orphans: OrphanReport,
    /// Cache records removed by [`Store::prune`].
    pub cache: Vec<Digest>,
    /// Untagged images removed by [`Store::prune`] (their ids).
    pub images: Vec<Digest>,
    /// Directories of `RUN --mount=type=cache` contents and of remote-source
    /// downloads and clones removed by [`Store::prune`] with `all`, with
    /// their sizes.
    pub source_caches: Vec<(PathBuf, u64)>,
    /// Failed build steps (kept for `rbk debug step`) dropped by
    /// [`Store::prune`].
    pub failed_steps: usize,
}

impl GcReport {
    /// Bytes reclaimed: blobs, snapshots and orphans.
    pub fn reclaimed(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum::<u64>()
            + self.snapshots.iter().map(|s| s.1).sum::<u64>()
            + self.source_caches.iter().map(|s| s.1).sum::<u64>()
            + self.orphans.bytes
    }
}

/// What [`Store::clean_orphans`] found.
#[derive(Debug, Default, Clone)]
pub struct OrphanReport {
    /// Leftovers moved to the trash: partial ingests, stale lock files,
    /// work dirs, interrupted extractions, temporary index files.
    pub removed: Vec<PathBuf>,
    /// Paths under `tmp/` left alone because something is mounted there
    /// (the exec crate unmounts those).
    pub mounted: Vec<PathBuf>,
    /// Bytes the removed leftovers occupied.
    pub bytes: u64,
}

impl Store {
    /// Bytes under the committed snapshot of `diff_id`, if it exists
    /// (a directory walk: for reports, not the hot path).
    pub fn snapshot_size(&self, diff_id: &Digest) -> Option<u64> {
        self.has_snapshot(diff_id)
            .then(|| disk_usage(&self.snapshot_path(diff_id)))
    }

    /// Takes a lease: a shared lock on `db/gc.lock` that keeps GC (and image
    /// deletion) away while held. Hold it for as long as the process writes
    /// content that no root references yet.
    pub fn lease(&self) -> Result<FileLock> {
        FileLock::shared(&self.gc_lock_path())
    }

    /// Takes `db/gc.lock` exclusively, waiting for every lease to end.
    pub fn gc_lock(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.gc_lock_path())
    }

    /// Takes `db/gc.lock` exclusively if no lease is held right now;
    /// `None` (at once) otherwise.
    pub fn try_gc_lock(&self) -> Result<Option<FileLock>> {
        FileLock::try_exclusive(&self.gc_lock_path())
    }

    fn gc_lock_path(&self) -> PathBuf {
        self.db_dir().join("gc.lock")
    }

    /// Marks everything reachable from the image and cache indexes. A
    /// missing or unreadable manifest or config marks what it can (the
    /// image's own descriptor at least); `system verify` reports the damage.
    pub fn live_set(&self) -> Result<LiveSet> {
        let mut live = self.image_live_set()?;
        // Failed build steps kept for `rbk debug step` keep their layers.
        for step in self.failed_steps()? {
            live.add_cache_layers(step.all_layers());
        }
        for (_, record) in self.cache_records()? {
            live.add_cache_layers(&record.layers);
        }
        Ok(live)
    }

    /// What the tagged and untagged images reach. Each image's documents
    /// are read once, the images in parallel (10,000 images are 20,000
    /// small files to read and parse).
    fn image_live_set(&self) -> Result<LiveSet> {
        let db = self.read_images()?;
        let roots: Vec<_> = db.images.values().chain(db.untagged.values()).collect();
        Ok(roots
            .par_iter()
            .map(|desc| {
                let mut live = LiveSet::default();
                self.mark_manifest(&desc.digest, Some(&desc.media_type), &mut live, 0);
                live
            })
            .reduce(LiveSet::default, LiveSet::merge))
    }

    fn mark_manifest(&self, digest: &Digest, media: Option<&str>, live: &mut LiveSet, depth: u32) {
        live.image_blobs.insert(*digest);
        let Ok(bytes) = self.read_bounded(digest, MAX_DOCUMENT_SIZE) else {
            return;
        };
        match image::parse_document(&bytes, media, &format!("manifest {digest}")) {
            Ok(Document::Manifest(m)) => {
                live.image_blobs.insert(m.config.digest);
                live.image_blobs.extend(m.layers.iter().map(|l| l.digest));
                let config = self
                    .read_bounded(&m.config.digest, MAX_DOCUMENT_SIZE)
                    .and_then(|b| image::parse_config(&b, "config"));
                if let Ok(config) = config {
                    for (diff_id, layer) in config.rootfs.diff_ids.iter().zip(&m.layers) {
                        let blob = BlobInfo {
                            digest: layer.digest,
                            size: layer.size,
                        };
                        live.layers.entry(*diff_id).or_insert(blob);
                    }
                    live.snapshots.extend(config.rootfs.diff_ids);
                }
            }
            // Nesting deeper than a few levels is not a real image: stop.
            Ok(Document::Index(index)) if depth < 4 => {
                for entry in index.manifests {
                    let d = entry.descriptor;
                    self.mark_manifest(&d.digest, Some(&d.media_type), live, depth + 1);
                }
            }
            // An attestation manifest (in-toto statements for layers): its
            // blobs live as long as the index that lists it.
            Err(_) => {
                if let Ok(parts) = image::attestation_parts(&bytes, "attestation manifest") {
                    live.image_blobs.extend(parts.iter().map(|p| p.digest));
                }
            }
            _ => {}
        }
    }

    /// Collects garbage: waits for every lease, clears orphans, then moves
    /// every blob and snapshot that no root reaches to the trash. Call
    /// [`Store::empty_trash`] afterwards to free the space.
    pub fn gc(&self) -> Result<GcReport> {
        let _gc = self.gc_lock()?;
        self.gc_locked()
    }

    /// [`Store::gc`] after dropping every untagged image (`docker image
    /// prune`) and build-cache records: with `all`, every record (BuildKit's
    /// `prune --all`); otherwise the *dangling* ones — records whose blobs
    /// are not all part of a tagged image, and records that are unreadable
    /// or whose content is gone. Records are dropped under the GC lock, so a
    /// running build never loses a record it read.
    ///
    /// Everything is read once: the images' documents, the records, the
    /// blob and snapshot directories. The live set is what the images reach
    /// plus the records that stay (failed steps are dropped first, so they
    /// keep nothing), which is what a [`Store::live_set`] after the drops
    /// would find.
    pub fn prune(&self, all: bool) -> Result<GcReport> {
        let _gc = self.gc_lock()?;
        let mut images = Vec::new();
        // An image a container was made from stays, as docker keeps it.
        let in_use: BTreeSet<Digest> = self.containers()?.into_iter().map(|c| c.image).collect();
        self.update_images(|db| {
            let (keep, drop): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut db.untagged)
                .into_iter()
                .partition(|(id, _)| in_use.contains(id));
            db.untagged = keep;
            images = drop.into_keys().collect();
            Ok(())
        })?;
        // Failed build steps are kept for `rbk debug step` until a prune.
        let failed_steps = self.remove_failed_steps()?;
        // Orphans first: a stale packed record is not a blob a record has.
        let orphans = self.clean_orphans_locked(true)?;
        let mut live = self.image_live_set()?;
        let blobs = self.blob_list()?;
        let present: HashSet<Digest> = blobs.iter().map(|b| b.digest).collect();
        let snapshots: HashSet<Digest> = self.snapshots()?.into_iter().collect();
        let mut dropped = Vec::new();
        for (key, record) in self.cache_records()? {
            // Complete as `cache_get` checks it: every blob and snapshot there.
            let keep = !all
                && record.layers.iter().all(|l| {
                    live.image_blobs.contains(&l.blob.digest)
                        && present.contains(&l.blob.digest)
                        && snapshots.contains(&l.diff_id)
                });
            if keep {
                live.add_cache_layers(&record.layers);
            } else {
                dropped.push(key);
            }
        }
        // The records are dropped (SQLite, user CPU) while the dead files
        // are moved (renames, system CPU), on two threads. The order does
        // not matter: a record whose blob or snapshot is gone is never
        // returned (`cache_get` checks them), and a prune killed before the
        // drop commits drops such records the next time (see `keep` above).
        let (dropping, swept) = std::thread::scope(|threads| {
            let dropping = threads.spawn(|| self.cache_remove_all(&dropped));
            let swept = self.sweep(&live, blobs, snapshots);
            (dropping.join(), swept)
        });
        dropping.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        let mut report = swept?;
        report.orphans = orphans;
        report.cache = dropped;
        report.images = images;
        report.failed_steps = failed_steps;
        if all {
            report.source_caches = self.drop_source_caches()?;
        }
        Ok(report)
    }

    /// Moves the cache-mount contents (`cache-mounts/`) and the remote
    /// download and clone caches (`remote/`) to the trash, as BuildKit's
    /// `prune --all` drops its cache-mount and source records. Called under
    /// the GC lock: no build holds a lease, so none of them is in use.
    fn drop_source_caches(&self) -> Result<Vec<(PathBuf, u64)>> {
        let mut dropped = Vec::new();
        for name in ["cache-mounts", "remote"] {
            let dir = self.root().join(name);
            if !dir.exists() {
                continue;
            }
            let bytes = disk_usage(&dir);
            self.move_to_trash(&dir)?;
            dropped.push((dir, bytes));
        }
        Ok(dropped)
    }

    fn gc_locked(&self) -> Result<GcReport> {
        let orphans = self.clean_orphans_locked(true)?;
        let live = self.live_set()?;
        let snapshots = self.snapshots()?.into_iter().collect();
        let mut report = self.sweep(&live, self.blob_list()?, snapshots)?;
        report.orphans = orphans;
        Ok(report)
    }

    /// Every blob, as [`BlobAdmin::walk`] lists them.
    fn blob_list(&self) -> Result<Vec<BlobInfo>> {
        let mut blobs = Vec::new();
        self.walk(&mut |info| {
            blobs.push(info);
            Ok(())
        })?;
        Ok(blobs)
    }

    /// Moves to the trash each of `blobs` and `snapshots` (what the store
    /// holds) that `live` does not reach.
    fn sweep(
        &self,
        live: &LiveSet,
        blobs: Vec<BlobInfo>,
        snapshots: HashSet<Digest>,
    ) -> Result<GcReport> {
        // Listed once: which dead blobs have a packed record to move too
        // (most have none, and a rename that fails costs as much as two
        // path lookups: 55,000 of them in a prune of half a big store).
        let packed: HashSet<Digest> = self.packed_records()?.into_iter().collect();
        let keep = keep_packed(live, &packed);
        let dead_blobs = blobs.into_iter().filter(|b| !live.has_blob(&b.digest));
        let blobs = self.trash_blobs(dead_blobs.collect(), &packed)?;
        let mut dead: Vec<Digest> = snapshots
            .into_iter()
            .filter(|d| !keep.contains(d))
            .collect();
        dead.sort();
        let snapshots = self.trash_snapshots(dead)?;
        Ok(GcReport {
            blobs,
            snapshots,
            ..GcReport::default()
        })
    }

    /// Moves each of `dead` to the trash: its file, and its record if
    /// `packed` (every packed record, listed under the GC lock) has one.
    fn trash_blobs(&self, dead: Vec<BlobInfo>, packed: &HashSet<Digest>) -> Result<Vec<BlobInfo>> {
        for info in &dead {
            self.trash_blob_as(&info.digest, packed.contains(&info.digest))?;
        }
        if !dead.is_empty() {
            crate::fsutil::sync_dir(&self.blobs_dir())?;
        }
        Ok(dead)
    }

    /// The live snapshots plus those that live packed blobs are packed
    /// from (normally the same set: a built layer's blob digest is its diff
    /// id).
    fn snapshots_to_keep(&self, live: &LiveSet) -> Result<BTreeSet<Digest>> {
        Ok(keep_packed(live, &self.packed_records()?))
    }

    /// Moves the snapshots `dead` to the trash, with their sizes (measured
    /// first, in parallel: a directory walk each).
    fn trash_snapshots(&self, dead: Vec<Digest>) -> Result<Vec<(Digest, u64)>> {
        let sized: Vec<(Digest, u64)> = dead
            .into_par_iter()
            .map(|diff_id| (diff_id, disk_usage(&self.snapshot_path(&diff_id))))
            .collect();
        for (diff_id, _) in &sized {
            self.move_to_trash(&self.snapshot_path(diff_id))?;
        }
        Ok(sized)
    }

    /// Clears what killed processes left behind, under the exclusive GC lock
    /// (so no live process can be using it): everything in `ingest/` except
    /// lock files another process holds, everything in `tmp/` except paths
    /// something is still mounted on (extractions included), the
    /// `snapshots/.unpack-*` extractions of older versions, and the
    /// temporary files of interrupted atomic writes in `db/` and the root.
    pub fn clean_orphans(&self) -> Result<OrphanReport> {
        let _gc = self.gc_lock()?;
        self.clean_orphans_locked(true)
    }

    /// [`Store::clean_orphans`] for a caller that already holds the GC
    /// lock (from [`Store::gc_lock`] or [`Store::try_gc_lock`]): taking it
    /// again would wait for the caller itself. This is the scan every build
    /// start runs, so it skips the older versions' extractions in
    /// `snapshots/`: finding them lists one entry per layer (50,000 in a
    /// big store, the larger part of a cached build's start-up). `rbk
    /// prune` clears them and `system verify` lists them.
    pub fn clean_orphans_holding(&self, _gc: &FileLock) -> Result<OrphanReport> {
        self.clean_orphans_locked(false)
    }

    /// Lists the leftovers [`Store::clean_orphans`] would clear, without the
    /// lock and without touching them (for `system verify`). Per-digest lock
    /// files are not listed: they are empty, and only a killed writer (or an
    /// rbk older than temporary locks, which left one per write) leaves one.
    pub fn orphans(&self) -> Result<Vec<PathBuf>> {
        let candidates = self.orphan_candidates(true)?.into_iter();
        Ok(candidates.filter(|c| !c.1).map(|c| c.0).collect())
    }

    /// `old_extractions`: also `snapshots/.unpack-*` (see
    /// [`Store::clean_orphans_holding`]).
    fn clean_orphans_locked(&self, old_extractions: bool) -> Result<OrphanReport> {
        let mounts = mount_points();
        let mut report = OrphanReport::default();
        // Candidates sit in a handful of directories: each is resolved once,
        // not each of the (maybe 50,000) lock files in `ingest/`.
        let mut resolved_dirs: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for (path, is_lock) in self.orphan_candidates(old_extractions)? {
            // A lock file someone holds belongs to a live writer. Lock files
            // are empty and nothing is mounted on one: no walk, no lookup.
            let _held = if is_lock {
                match FileLock::try_exclusive(&path)? {
                    Some(lock) => Some(lock),
                    None => continue,
                }
            } else {
                // mountinfo paths are absolute and resolved; the root may
                // be neither.
                let resolved = resolve_in_dir(&path, &mut resolved_dirs);
                if mounts.iter().any(|m| m.starts_with(&resolved)) {
                    report.mounted.push(path);
                    continue;
                }
                None
            };
            let size = if is_lock { 0 } else { disk_usage(&path) };
            match self.move_to_trash(&path) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
            report.bytes += size;
            report.removed.push(path);
        }
        Ok(report)
    }

    /// `(path, is_lock_file)` for every orphan candidate; the
    /// `snapshots/.unpack-*` of older versions only with `old_extractions`.
    fn orphan_candidates(&self, old_extractions: bool) -> Result<Vec<(PathBuf, bool)>> {
        let mut out = Vec::new();
        for path in list(&self.ingest_dir())? {
            let is_lock = path.extension().is_some_and(|e| e == "lock");
            out.push((path, is_lock));
        }
        for path in list(&self.root().join("tmp"))? {
            out.push((path, false));
        }
        for path in self.stale_packed_records()? {
            out.push((path, false));
        }
        let mut temp_files = vec![
            (self.db_dir(), ".images.json.tmp-"),
            (self.root().to_path_buf(), ".index.json.tmp-"),
            (self.root().to_path_buf(), ".oci-layout.tmp-"),
        ];
        if old_extractions {
            temp_files.push((self.snapshots_dir(), ".unpack-"));
        }
        for (dir, prefix) in temp_files {
            out.extend(list_prefixed(&dir, prefix)?.into_iter().map(|p| (p, false)));
        }
        Ok(out)
    }
}

/// What [`Store::remove_reference`] did.
#[derive(Debug, Clone)]
pub struct Removal {
    /// The reference removed (`None` for an untagged image).
    pub reference: Option<Reference>,
    /// The image id it pointed at.
    pub id: Digest,
    /// True when that was the image's last reference and the image was deleted.
    pub deleted: bool,
    /// Blobs of the image that nothing else used, moved to the trash.
    pub blobs: Vec<BlobInfo>,
    /// Snapshots of its layers that nothing else used, moved to the trash.
    pub snapshots: Vec<Digest>,
}

impl Store {
    /// Removes `reference`. If no other reference names the same image id,
    /// the image's manifest, config and layer blobs, and its layers'
    /// snapshots, that no other image or cache record uses are moved to the
    /// trash, under the exclusive GC lock (so no running build loses a base
    /// layer). Call [`Store::empty_trash`] afterwards to free the space.
    pub fn remove_reference(&self, reference: &Reference) -> Result<Removal> {
        let _gc = self.gc_lock()?;
        let desc = self.untag(reference)?;
        self.delete_unused(Some(reference.clone()), desc)
    }

    /// Removes the untagged entry of image `id` and deletes the image as
    /// [`Store::remove_reference`] does when nothing else names it.
    pub fn remove_untagged(&self, id: &Digest) -> Result<Removal> {
        let _gc = self.gc_lock()?;
        let desc = self
            .forget_untagged(id)?
            .ok_or_else(|| Error::ImageNotFound {
                reference: id.to_string(),
            })?;
        self.delete_unused(None, desc)
    }

    /// Deletes the image of manifest `desc` (just unnamed) unless another
    /// tagged or untagged entry names the same image id. Caller holds the
    /// GC lock.
    fn delete_unused(
        &self,
        reference: Option<Reference>,
        desc: crate::Descriptor,
    ) -> Result<Removal> {
        let image = self.read_image(&desc).ok();
        let id = image.as_ref().map_or(desc.digest, |i| i.id());
        let mut removal = Removal {
            reference,
            id,
            deleted: false,
            blobs: Vec::new(),
            snapshots: Vec::new(),
        };
        let db = self.read_images()?;
        if db.untagged.contains_key(&id) {
            return Ok(removal);
        }
        for other in db.images.values() {
            let other_id = self.read_image(other).map_or(other.digest, |i| i.id());
            if other_id == id {
                return Ok(removal);
            }
        }
        removal.deleted = true;
        let live = self.live_set()?;
        let keep = self.snapshots_to_keep(&live)?;
        let mut mine = vec![desc.digest];
        if let Some(image) = &image {
            mine.push(image.id());
            mine.extend(image.manifest.layers.iter().map(|l| l.digest));
        }
        // Blobs first: a packed blob's size is known only while its
        // snapshot exists.
        for digest in mine {
            if live.has_blob(&digest) || removal.blobs.iter().any(|b| b.digest == digest) {
                continue;
            }
            if let Ok(info) = self.info(&digest) {
                self.trash_blob(&digest)?;
                removal.blobs.push(info);
            }
        }
        for diff_id in image.iter().flat_map(|i| &i.config.rootfs.diff_ids) {
            if !keep.contains(diff_id) && self.has_snapshot(diff_id) {
                self.move_to_trash(&self.snapshot_path(diff_id))?;
                removal.snapshots.push(*diff_id);
            }
        }
        crate::fsutil::sync_dir(&self.blobs_dir())?;
        Ok(removal)
    }
}

/// The live snapshots plus those of the `packed` blobs `live` reaches.
fn keep_packed<'a>(
    live: &LiveSet,
    packed: impl IntoIterator<Item = &'a Digest>,
) -> BTreeSet<Digest> {
    let mut keep = live.snapshots.clone();
    keep.extend(packed.into_iter().filter(|d| live.has_blob(d)));
    keep
}

/// `path` with its directory resolved (symlinks, `..`), as mountinfo names
/// mount points; the directories resolved so far are kept in `dirs`.
fn resolve_in_dir(path: &Path, dirs: &mut BTreeMap<PathBuf, PathBuf>) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    };
    let resolved = dirs
        .entry(dir.to_path_buf())
        .or_insert_with(|| fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()));
    resolved.join(name)
}

/// The entries of `dir`, or none if it does not exist.
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(Error::io("listing", dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// The entries of `dir` whose names start with `prefix`, sorted. Names
/// are checked before a path is built: `snapshots/` holds one entry per
/// layer (50,000 in a big store) and prune scans it.
/// (rustix's `Dir` lends each name; `fs::read_dir` allocates one per entry.)
fn list_prefixed(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::ffi::OsStrExt;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir)(e.into())),
    };
    let entries =
        rustix::fs::Dir::read_from(&fd).map_err(|e| Error::io("listing", dir)(e.into()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir)(e.into()))?;
        let name = entry.file_name().to_bytes();
        if name.starts_with(prefix.as_bytes()) {
            out.push(dir.join(std::ffi::OsStr::from_bytes(name)));
        }
    }
    out.sort();
    Ok(out)
}

/// Bytes allocated under `path` (files counted by length, not following
/// symlinks; unreadable parts count as 0: this is for reports only).
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Every mount point of this process's mount namespace, from
/// `/proc/self/mountinfo` (field 5, with `\ooo` octal escapes decoded).
pub fn mount_points() -> Vec<PathBuf> {
    let Ok(text) = fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .map(unescape_octal)
        .collect()
}

fn unescape_octal(field: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (field[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal(br"/a\040b\134c"), Path::new("/a b\\c"));
        assert_eq!(unescape_octal(br"/x\04"), Path::new("/x\\04"));
        assert!(mount_points().iter().any(|p| p == Path::new("/")));
    }
}
