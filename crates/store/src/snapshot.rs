//! Snapshots: layers unpacked once, ready to be stacked as overlay lower dirs.
//!
//! # Vocabulary
//!
//! A *committed* snapshot is the unpacked content of one layer, in overlay
//! format (whiteouts as 0/0 character devices, opaque directories marked with
//! `trusted.overlay.opaque=y`), at `snapshots/<diff-id hex>/`. It holds that
//! layer's changes only, so a filesystem of N layers is N lower dirs, top
//! first ([`overlay_mount`]). Snapshots are named by the layer's *diff id*
//! (the digest of its uncompressed tar) rather than by chain id: an overlay
//! lower dir's meaning does not depend on what lies beneath it, so two chains
//! that share a layer share its snapshot, and identical layer content is on
//! disk once however many images or builds produced it.
//!
//! An *active* snapshot is a writable directory pair (upper, work) made by
//! [`Store::work_dir`]; when the step that wrote to it succeeds, the upper
//! dir is turned into a committed snapshot by [`Store::commit_snapshot`].
//! Committed snapshots are never modified; they are removed only by GC.
//!
//! A snapshot is also the *only* copy of a layer rbk built: its blob is
//! *packed* ([`Store::commit_packed`]), served by re-packing the snapshot
//! through [`pack`](crate::pack), so a built layer is on disk once and not
//! as a tar beside its snapshot. That is why committed snapshots must never
//! change: a changed snapshot makes its blob unreadable (the re-packed bytes
//! fail verification). Layers that came in as archives keep their blob
//! files and are unpacked into snapshots as before.
//!
//! # Crash safety
//!
//! Work dirs and extractions live under `tmp/` (`tmp/.unpack-*`; older
//! versions extracted into `snapshots/.unpack-*`); a committed snapshot
//! appears by one `rename`, so after a crash a snapshot is either whole or
//! absent, and leftovers are cleared by [`Store::clean_orphans`] under the
//! GC lock. Extractions stay out of `snapshots/` so that finding them at a
//! build's start lists `tmp/` (a few entries), not one entry per layer.
//!
//! Killing a process loses nothing: the page cache outlives it. A power
//! loss is another matter, decided on purpose: snapshot *contents* are not
//! fsynced (RUN steps write through overlayfs mounted `volatile`, and COPY
//! does not sync what it writes; syncing would flush the whole filesystem,
//! 20–180 ms per step on this machine, and a 1 GiB COPY would wait for the
//! disk), as BuildKit's overlay snapshotter does not sync them either. What
//! such a crash can leave — a snapshot with missing data under a packed
//! record — is found by `rbk system verify` (it re-packs and re-hashes), and
//! removed with `rbk rmi` / `rbk prune`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil::{sync_dir, unique_name};
use crate::{unpack_layer, BlobRead, Descriptor, Digest, Error, Result, Store, UnpackOptions};

/// A mount description, as containerd's snapshotters return them: what
/// `exec` hands to mount(2). The store itself never mounts anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `overlay` or `bind`.
    pub fstype: String,
    /// The mount source (`overlay` for overlay mounts).
    pub source: PathBuf,
    /// Mount options (`lowerdir=…`, `upperdir=…`, `ro`, …).
    pub options: Vec<String>,
}

/// Present when the kernel's overlayfs has the `index` feature (Linux
/// 4.13 and later, once the module is loaded). A distribution may turn the
/// feature on by default; rbk's mounts turn it off, as Docker's overlay2
/// and containerd's snapshotter do. With it on, overlayfs refuses to stack
/// a directory still in use as another mount's upper dir (`EBUSY`) and
/// keeps an index of copied-up hardlinks in the work dir: behaviour that
/// would then depend on the machine's default.
const OVERLAY_INDEX_PARAMETER: &str = "/sys/module/overlay/parameters/index";

/// The mount of `lowers` (lowest layer first) with an optional writable
/// `(upper, work)` pair on top. With no upper dir and a single lower, a
/// read-only bind mount is returned (overlay needs two lowers without an
/// upper).
pub fn overlay_mount(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Mount {
    if upper.is_none() && lowers.len() == 1 {
        return Mount {
            fstype: "bind".into(),
            source: lowers[0].clone(),
            options: vec!["rbind".into(), "ro".into()],
        };
    }
    let lowerdir: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| escape_overlay_path(p))
        .collect();
    let mut options = vec![format!("lowerdir={}", lowerdir.join(":"))];
    if let Some((upper, work)) = upper {
        options.push(format!("upperdir={}", escape_overlay_path(upper)));
        options.push(format!("workdir={}", escape_overlay_path(work)));
    }
    if crate::overlay_xattrs().userxattr {
        // Rootless: overlayfs keeps its attributes in user.overlay.*.
        options.push("userxattr".into());
    }
    if Path::new(OVERLAY_INDEX_PARAMETER).exists() {
        options.push("index=off".into());
    }
    Mount {
        fstype: "overlay".into(),
        source: PathBuf::from("overlay"),
        options,
    }
}

/// Overlay splits options on `,` and lower dirs on `:`; both are escaped
/// with a backslash.
fn escape_overlay_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A writable directory on the store's filesystem, for an overlay upper and
/// work dir or a file op's output. Removed (moved to the trash) on drop
/// unless its upper dir was committed.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    trash: PathBuf,
}

impl WorkDir {
    /// A fresh work dir under `tmp` (created if missing), with empty
    /// `upper`, `work` and `merged` subdirectories; on drop it is moved
    /// into `trash` (or deleted when that fails). [`Store::work_dir`] is
    /// this over the store's `tmp/` and `trash/`; other stores that keep
    /// snapshots in directories (test doubles) use it too.
    pub fn create(tmp: &Path, trash: &Path) -> Result<WorkDir> {
        fs::create_dir_all(tmp).map_err(Error::io("creating directory", tmp))?;
        let path = tmp.join(unique_name("w-"));
        for sub in ["", "upper", "work", "merged"] {
            let p = path.join(sub);
            fs::create_dir(&p).map_err(Error::io("creating directory", &p))?;
        }
        Ok(WorkDir {
            path,
            trash: trash.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/upper`, created empty with mode 0755.
    pub fn upper(&self) -> PathBuf {
        self.path.join("upper")
    }

    /// `<dir>/work`, overlay's work dir.
    pub fn work(&self) -> PathBuf {
        self.path.join("work")
    }

    /// `<dir>/merged`, an empty directory to mount the stack on.
    pub fn merged(&self) -> PathBuf {
        self.path.join("merged")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // A rename is cheap on the hot path; the trash is emptied later.
        let dest = self.trash.join(unique_name("work-"));
        if fs::rename(&self.path, &dest).is_err() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

impl Store {
    /// Where the committed snapshot of the layer `diff_id` lives (it may not exist).
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(diff_id.hex())
    }

    /// Whether the layer `diff_id` is unpacked.
    pub fn has_snapshot(&self, diff_id: &Digest) -> bool {
        self.snapshot_path(diff_id).is_dir()
    }

    /// The snapshot of `layer` (whose uncompressed digest is `diff_id`),
    /// unpacked from its blob if it is not yet. Concurrent callers for the
    /// same layer wait for each other, so a layer is unpacked once.
    pub fn ensure_snapshot(&self, layer: &Descriptor, diff_id: &Digest) -> Result<PathBuf> {
        let path = self.snapshot_path(diff_id);
        if path.is_dir() {
            return Ok(path);
        }
        let _lock = self.ingest_lock(diff_id, "snap.lock")?;
        if path.is_dir() {
            return Ok(path);
        }
        let reader = self.open(&layer.digest)?;
        let tmp = self.scratch_path(".unpack-dest-")?;
        // Verified while unpacked: a flipped bit in a stored blob fails here
        // naming it, instead of becoming a snapshot every build then trusts.
        let options = UnpackOptions::default().verify(layer.digest, layer.size, *diff_id);
        unpack_layer(reader, &tmp, &options)?;
        self.commit_snapshot(&tmp, diff_id)
    }

    /// Makes `dir` (on the store's filesystem, in overlay format) the
    /// committed snapshot of `diff_id`. If that snapshot already exists the
    /// new copy is discarded: identical content is kept once.
    pub fn commit_snapshot(&self, dir: &Path, diff_id: &Digest) -> Result<PathBuf> {
        let path = self.snapshot_path(diff_id);
        match fs::rename(dir, &path) {
            Ok(()) => {
                sync_dir(&self.snapshots_dir())?;
                Ok(path)
            }
            Err(e) if path.is_dir() => {
                let _ = e;
                self.discard_duplicate(dir)?;
                Ok(path)
            }
            Err(e) => Err(Error::io("committing snapshot", &path)(e)),
        }
    }

    /// Deletes `dir`, a copy of a snapshot that already exists, at once when
    /// it holds few entries (so that identical content really is on disk
    /// once, even before the trash is emptied: a 200 MiB file is one
    /// unlink); a larger tree goes to the trash by rename, because deleting
    /// many inodes on the hot path slows the next creations on this
    /// machine's ext4 (see the design notes).
    fn discard_duplicate(&self, dir: &Path) -> Result<()> {
        let mut budget = INLINE_DELETE_ENTRIES;
        match remove_bounded(dir, &mut budget) {
            Ok(true) => Ok(()),
            _ => self.move_to_trash(dir).map(drop),
        }
    }

    /// A fresh [`WorkDir`] under `<root>/tmp`, with empty `upper`, `work`
    /// and `merged` subdirectories.
    pub fn work_dir(&self) -> Result<WorkDir> {
        WorkDir::create(&self.root().join("tmp"), &self.trash_dir())
    }

    /// A new name under `tmp/` (created if missing) for an extraction that
    /// is renamed into `snapshots/` when whole (same filesystem).
    pub(crate) fn scratch_path(&self, prefix: &str) -> Result<PathBuf> {
        let tmp = self.root().join("tmp");
        fs::create_dir_all(&tmp).map_err(Error::io("creating directory", &tmp))?;
        Ok(tmp.join(unique_name(prefix)))
    }

    /// Names (diff-id digests) of every committed snapshot.
    pub fn snapshots(&self) -> Result<Vec<Digest>> {
        let dir = self.snapshots_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            let name = entry.file_name();
            if let Ok(d) = format!("sha256:{}", name.to_string_lossy()).parse::<Digest>() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Entries a duplicate snapshot may have to be deleted inline.
const INLINE_DELETE_ENTRIES: usize = 256;

/// Removes `dir` and everything below it unless that takes more than
/// `budget` entries; `Ok(false)` (with `dir` partly emptied) when it would.
/// The budget is checked before anything is deleted at each level.
fn remove_bounded(dir: &Path, budget: &mut usize) -> std::io::Result<bool> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if *budget == 0 {
            return Ok(false);
        }
        *budget -= 1;
        entries.push((entry.path(), entry.file_type()?.is_dir()));
    }
    for (path, is_dir) in entries {
        if is_dir {
            if !remove_bounded(&path, budget)? {
                return Ok(false);
            }
        } else {
            fs::remove_file(&path)?;
        }
    }
    fs::remove_dir(dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_lists_the_top_layer_first_and_escapes() {
        let m = overlay_mount(
            &[PathBuf::from("/s/a"), PathBuf::from("/s/b:c")],
            Some((Path::new("/w/u"), Path::new("/w/w"))),
        );
        assert_eq!(m.fstype, "overlay");
        assert_eq!(
            m.options[..3],
            ["lowerdir=/s/b\\:c:/s/a", "upperdir=/w/u", "workdir=/w/w"]
        );
        let index_off = m.options.iter().any(|o| o == "index=off");
        assert_eq!(index_off, Path::new(OVERLAY_INDEX_PARAMETER).exists());
        let single = overlay_mount(&[PathBuf::from("/s/a")], None);
        assert_eq!(single.fstype, "bind");
    }
}
