//! The on-disk store: its root directory and layout (documented on [`Store`]).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fsutil::{sync_dir, write_atomic};
use crate::lock::FileLock;
use crate::{Digest, Error, Result};

/// Subdirectories created by [`Store::open`].
const DIRS: [&str; 7] = [
    "blobs",
    "blobs/sha256",
    "ingest",
    "snapshots",
    "trash",
    "db",
    "db/packed",
];

/// An opened store root. Cheap to clone; all state lives on disk, shared
/// safely by concurrent processes through file locks.
///
/// # On-disk layout
///
/// ```text
/// <root>/                      0700, owned by the user running rbk (docs/security.md F12)
///   oci-layout                 {"imageLayoutVersion":"1.0.0"}  ┐ an OCI image layout:
///   index.json                 tagged manifests, mirrored      │ skopeo `oci:<root>:<ref>`
///   blobs/sha256/<hex>         committed blobs, mode 0444      ┘ and umoci read it directly
///   ingest/<id>                blobs being written (deleted on mismatch or abort)
///   ingest/<hex>.lock          per-digest flock: one writer per blob at a time
///   ingest/<hex>.snap.lock     per-layer flock: one unpacker per snapshot at a time
///                              (both removed by their holder, see `lock.rs`)
///   snapshots/<name>/          unpacked layers (overlay lower dirs, overlay whiteouts)
///   trash/                     dead entries moved here by rename, deleted later (`Store::empty_trash_within`)
///   db/lock                    store-wide flock, held while index files change
///   db/images.json             rbk's image index: normalised reference → descriptor
///   db/trash.lock              held by the one process emptying trash/
///   db/gc.lock                 leases (shared flock) vs GC and rmi (exclusive), see `Store::lease`
///   db/cache.sqlite            build-cache records (SQLite; `cache.sqlite-journal` beside it; see `cache.rs`)
///   db/packed/<hex>.json       packed blobs: served by re-packing snapshots/<hex>/ (see `Store::commit_packed`)
///   tmp/                       work dirs of running steps, and extractions (`.unpack-*`, renamed
///                              into snapshots/ on success; orphans cleared by `Store::clean_orphans`)
/// ```
///
/// `index.json` is derived from `db/images.json` and rewritten after each
/// change under the store lock; each entry carries the annotations
/// `org.opencontainers.image.ref.name` and `io.containerd.image.name`, both set
/// to the full normalised reference (`docker.io/library/app:latest`).
/// Every file rbk replaces is written to a temporary name, fsynced, renamed
/// and its directory fsynced, so a crash leaves either the old or the new
/// version.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// This process's connection to `db/cache.sqlite`, opened on first use.
    pub(crate) cache_index: crate::cache::CacheIndex,
    /// This process's parse of `db/images.json`, reused while unchanged.
    pub(crate) images_memo: crate::index::ImagesMemo,
}

impl Store {
    /// Creates or opens the store at `root`. A missing root is created with
    /// mode 0700. An existing root owned by another user is refused; one that
    /// group or others can access is fixed to 0700 (as Docker and containerd
    /// do for their data roots).
    pub fn open(root: &Path) -> Result<Store> {
        prepare_root(root)?;
        let store = Store {
            root: root.to_path_buf(),
            cache_index: Default::default(),
            images_memo: Default::default(),
        };
        for dir in DIRS {
            let path = root.join(dir);
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("creating directory", path)(e)),
            }
        }
        store.init_layout_files()?;
        Ok(store)
    }

    fn init_layout_files(&self) -> Result<()> {
        if !self.root.join("oci-layout").exists() {
            write_atomic(
                &self.root,
                "oci-layout",
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            )?;
        }
        if !self.root.join("index.json").exists() {
            let _lock = self.lock()?;
            if !self.root.join("index.json").exists() {
                self.write_oci_index(&Default::default())?;
            }
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/blobs/sha256`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    /// `<root>/ingest`.
    pub fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Takes the per-digest lock `ingest/<hex>.<kind>` (`lock` for one
    /// writer per blob, `snap.lock` for one unpacker per layer), removed
    /// again on release.
    pub(crate) fn ingest_lock(&self, digest: &Digest, kind: &str) -> Result<FileLock> {
        let name = format!("{}.{kind}", digest.hex());
        FileLock::exclusive_temporary(&self.ingest_dir().join(name))
    }

    /// `<root>/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `<root>/trash`.
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// `<root>/db`.
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("db")
    }

    /// Takes the store-wide exclusive lock (`db/lock`), blocking until it is
    /// free. Held while the image index changes; released on drop or death.
    pub fn lock(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.db_dir().join("lock"))
    }

    /// Moves `path` (a file or directory inside the store) into `trash/` by
    /// rename, so the caller never deletes in bulk on the hot path.
    pub fn move_to_trash(&self, path: &Path) -> Result<PathBuf> {
        let dest = self.trash_dir().join(crate::fsutil::unique_name("t-"));
        fs::rename(path, &dest).map_err(Error::io("moving to trash", path))?;
        Ok(dest)
    }

    /// Deletes everything in `trash/`, and the rows of dropped cache
    /// records, waiting for any other process that is emptying it. Slow on this machine's ext4 when the trash is large:
    /// call it off the hot path (commands use [`Store::empty_trash_within`]).
    pub fn empty_trash(&self) -> Result<()> {
        let _emptying = FileLock::exclusive(&self.trash_lock_path())?;
        self.delete_trash(None)?;
        self.cache_purge_dropped(None).map(|_| ())
    }

    /// Deletes `trash/` entries, one at a time, then the rows of dropped
    /// cache records, until both are gone (`true`) or `budget` has passed (`false`: the rest waits for a later
    /// call). One process empties the trash at a time (`db/trash.lock`):
    /// if another is at it, returns `false` at once. A process killed
    /// while deleting leaves a half-deleted entry in the trash, which the
    /// next call finishes.
    pub fn empty_trash_within(&self, budget: Duration) -> Result<bool> {
        let Some(_emptying) = FileLock::try_exclusive(&self.trash_lock_path())? else {
            return Ok(false);
        };
        // Files first (they hold the space), then the rows of dropped
        // cache records (see `cache.rs`), deleted as lazily as the files.
        let deadline = Instant::now() + budget;
        Ok(self.delete_trash(Some(deadline))? && self.cache_purge_dropped(Some(deadline))?)
    }

    /// Whether nothing waits to be deleted: `trash/` is empty and no
    /// dropped cache record has a row left.
    pub fn trash_is_empty(&self) -> Result<bool> {
        let dir = self.trash_dir();
        let mut entries = fs::read_dir(&dir).map_err(Error::io("listing", &dir))?;
        Ok(entries.next().is_none() && !self.cache_has_dropped()?)
    }

    fn trash_lock_path(&self) -> PathBuf {
        self.db_dir().join("trash.lock")
    }

    fn delete_trash(&self, deadline: Option<Instant>) -> Result<bool> {
        let dir = self.trash_dir();
        let mut deleted = false;
        // Listed again after each pass: commands keep moving entries in.
        let emptied = 'passes: loop {
            let mut seen = false;
            for entry in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break 'passes false;
                }
                let path = entry.map_err(Error::io("listing", &dir))?.path();
                seen = true;
                let removed = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
                    Ok(_) => fs::remove_file(&path),
                    Err(e) => Err(e),
                };
                match removed {
                    Ok(()) => deleted = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("deleting", &path)(e)),
                }
            }
            if !seen {
                break true;
            }
        };
        if deleted {
            sync_dir(&dir)?;
        }
        Ok(emptied)
    }

    /// The store at `root` if it exists, without creating anything (for a
    /// process that must not bring back a store deleted under it, such as
    /// a background trash emptier).
    pub fn open_existing(root: &Path) -> Result<Option<Store>> {
        let trash = root.join("trash");
        match fs::symlink_metadata(&trash) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("inspecting", trash)(e)),
        }
        owned_root(root)?;
        Ok(Some(Store {
            root: root.to_path_buf(),
            cache_index: Default::default(),
            images_memo: Default::default(),
        }))
    }
}

/// The root's metadata, refused if another user owns it.
fn owned_root(root: &Path) -> Result<fs::Metadata> {
    let meta = fs::metadata(root).map_err(Error::io("inspecting store root", root))?;
    let current = rustix::process::geteuid().as_raw();
    if meta.uid() != current {
        return Err(Error::ForeignOwner {
            path: root.to_path_buf(),
            owner: meta.uid(),
            current,
        });
    }
    Ok(meta)
}

fn prepare_root(root: &Path) -> Result<()> {
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(Error::io("creating directory", parent))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("creating store root", root)(e)),
    }
    let meta = owned_root(root)?;
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .map_err(Error::io("restricting store root to mode 0700", root))?;
    }
    Ok(())
}
