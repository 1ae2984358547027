//! The copy snapshotter (rbk's "native" one): stacking snapshots by copying
//! them, for machines where overlayfs cannot be mounted (a container without
//! `CAP_SYS_ADMIN`, a kernel without overlay).
//!
//! It is chosen with [`SnapshotterChoice::Copy`](super::SnapshotterChoice)
//! (the CLI's `RBK_SNAPSHOTTER=native`), or by the automatic snapshotter
//! when its first overlay mount fails with `EPERM`, `ENODEV` or `EINVAL`
//! (see `snapshot/mod.rs`).
//!
//! - A view is a fresh directory into which the lower snapshots (overlay
//!   format) are applied in order: a 0/0 character device deletes what is
//!   below, a directory with `trusted.overlay.opaque=y` replaces it. Modes,
//!   owners, times, xattrs (but `trusted.overlay.*`), symlinks and the
//!   hardlinks inside one snapshot are kept; data is copied plainly.
//! - A writable view remembers the stat of every entry of its base in
//!   memory. After the step, a walking diff of the view against it writes
//!   the upper dir in overlay format — new or changed entries (type, mode,
//!   owner, size, mtime, rdev, symlink target or xattrs differ) copied with
//!   their ancestors, deleted ones as 0/0 character devices, a directory
//!   made where a non-directory was marked opaque (as overlayfs does) — and
//!   the normal layer commit takes it from there.
//!
//! A file rewritten with the same size and the same mtime (to the
//! nanosecond) is not seen as changed; overlayfs would copy it up.
//!
//! Every walk is fd-relative with `O_NOFOLLOW`: a symlink in a snapshot or
//! written by a RUN is copied as a link, never followed (docs/security.md rule 1).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{
    AtFlags, Dir, FileType, Mode, OFlags, Stat, Timespec, Timestamps, XattrFlags, CWD,
};
use rustix::io::Errno;

use rbk_store::WorkDir;

use super::{Snapshotter, View, ViewState};
use crate::{Error, Result};

/// Views made by applying snapshots into a directory; a writable view's
/// changes found by a walking diff against its base.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopySnapshotter;

impl Snapshotter for CopySnapshotter {
    fn view(&self, lowers: &[PathBuf], target: &Path) -> Result<View> {
        apply(lowers, target)?;
        Ok(View::dir(target.to_path_buf()))
    }

    fn writable(&self, lowers: &[PathBuf], work: &WorkDir) -> Result<View> {
        if lowers.is_empty() {
            return Ok(View::dir(work.upper()));
        }
        let merged = work.merged();
        if !merged.exists() {
            std::fs::create_dir(&merged)
                .map_err(|e| Error::io("creating directory", &merged, e))?;
        }
        apply(lowers, &merged)?;
        let base = scan(&merged)?;
        Ok(View::copied(merged, base, work.upper()))
    }

    fn commit(&self, view: View) -> Result<()> {
        match view.state {
            ViewState::Copied { base, upper } => diff(&base, &view.path, &upper),
            ViewState::Dir | ViewState::Mounted { .. } => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        "copy"
    }
}

/// The stat of one entry of a base tree, as far as the diff compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    size: i64,
    mtime: (i64, i64),
    rdev: u64,
    link: Option<Vec<u8>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Meta {
    fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
}

/// A base tree in memory: every entry's stat, and each directory's names.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    entries: HashMap<PathBuf, Meta>,
    children: HashMap<PathBuf, BTreeSet<OsString>>,
}

pub(super) fn io(op: &'static str, path: &Path, e: Errno) -> Error {
    Error::io(op, path, e.into())
}

pub(super) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("opening directory", shown, e))
}

pub(super) fn open_root(path: &Path) -> Result<OwnedFd> {
    open_dir(CWD, path.as_os_str(), path)
}

/// The names in a directory, sorted (so hardlink targets are chosen the
/// same way every time).
pub(super) fn names(dir: &OwnedFd, shown: &Path) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    let d = Dir::read_from(dir).map_err(|e| io("listing", shown, e))?;
    for entry in d {
        let entry = entry.map_err(|e| io("listing", shown, e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn lstat(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io("stat", shown, e))
}

/// `/proc/self/fd/N/NAME`: the entry `name` of the open directory `dir`, for
/// the xattr calls that have no `*at` form (the `l*` calls do not follow
/// the last component, and the fd pins the directory).
fn fd_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// The xattrs of an entry, but overlayfs' own.
pub(super) fn xattrs(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let path = fd_path(dir, name);
    let mut list = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(&path, &mut list[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(BTreeMap::new()),
        Err(e) => return Err(io("listing xattrs of", shown, e)),
    };
    let mut out = BTreeMap::new();
    let mut value = vec![0u8; 65536];
    for key in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        if rbk_store::overlay_xattrs().is_overlay(key) {
            continue;
        }
        let key_c = CString::new(key).expect("xattr names have no NUL");
        match rustix::fs::lgetxattr(&path, key_c.as_c_str(), &mut value[..]) {
            Ok(len) => {
                out.insert(key.to_vec(), value[..len].to_vec());
            }
            Err(Errno::NODATA) => {}
            Err(e) => return Err(io("reading xattrs of", shown, e)),
        }
    }
    Ok(out)
}

fn is_opaque(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(
            fd_path(dir, name),
            rbk_store::overlay_xattrs().opaque,
            &mut value[..]
        ),
        Ok(1) if value[0] == b'y'
    )
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn meta(dir: BorrowedFd<'_>, name: &OsStr, st: &Stat, shown: &Path) -> Result<Meta> {
    let kind = FileType::from_raw_mode(st.st_mode);
    let link = if kind == FileType::Symlink {
        let target = rustix::fs::readlinkat(dir, name, Vec::new())
            .map_err(|e| io("reading link", shown, e))?;
        Some(target.into_bytes())
    } else {
        None
    };
    Ok(Meta {
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == FileType::Directory {
            0
        } else {
            st.st_size
        },
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        rdev: st.st_rdev,
        link,
        xattrs: xattrs(dir, name, shown)?,
    })
}

/// Removes the entry `name` of `dir`, a whole tree if it is a directory;
/// nothing if there is none.
fn remove(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io("stat", shown, e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = open_dir(dir, name, shown)?;
        for child in names(&sub, shown)? {
            remove(sub.as_fd(), &child, &shown.join(&child))?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    }
    .map_err(|e| io("removing", shown, e))
}

/// Owner, mode, xattrs and times of `src` given to the entry `name` of
/// `dir` (in that order: chown clears setuid bits and capabilities).
pub(super) fn set_meta(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &Stat,
    x: &BTreeMap<Vec<u8>, Vec<u8>>,
    shown: &Path,
) -> Result<()> {
    let kind = FileType::from_raw_mode(st.st_mode);
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io("changing the owner of", shown, e))?;
    if kind != FileType::Symlink {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| io("changing the mode of", shown, e))?;
    }
    if !x.is_empty() {
        let path = fd_path(dir, name);
        for (key, value) in x {
            let key = CString::new(key.clone()).expect("xattr names have no NUL");
            rustix::fs::lsetxattr(&path, key.as_c_str(), value, XattrFlags::empty())
                .map_err(|e| io("setting xattrs of", shown, e))?;
        }
    }
    let time = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: time(st.st_atime, st.st_atime_nsec as i64),
        last_modification: time(st.st_mtime, st.st_mtime_nsec as i64),
    };
    rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io("setting the times of", shown, e))
}

/// Copies one non-directory entry `name` (stat `st`) from `src` into `dst`
/// (where nothing of that name exists). Files with several links are
/// linked to the first copy made in this walk (`links`: inode → the copy's
/// directory fd and name).
fn copy_leaf(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    name: &OsStr,
    st: &Stat,
    links: &mut HashMap<(u64, u64), (Arc<OwnedFd>, OsString)>,
    dst_fd: &Arc<OwnedFd>,
    shown: &Path,
) -> Result<()> {
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::Directory && st.st_nlink > 1 {
        if let Some((dir, first)) = links.get(&(st.st_dev, st.st_ino)) {
            return rustix::fs::linkat(dir.as_fd(), first, dst, name, AtFlags::empty())
                .map_err(|e| io("linking", shown, e));
        }
        links.insert(
            (st.st_dev, st.st_ino),
            (dst_fd.clone(), name.to_os_string()),
        );
    }
    match kind {
        FileType::RegularFile => {
            let from = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io("opening", shown, e))?;
            let to = rustix::fs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| io("creating", shown, e))?;
            let (mut from, mut to) = (File::from(from), File::from(to));
            // std's copy between two files uses copy_file_range/sendfile.
            std::io::copy(&mut from, &mut to).map_err(|e| Error::io("copying", shown, e))?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())
                .map_err(|e| io("reading link", shown, e))?;
            rustix::fs::symlinkat(target.as_c_str(), dst, name)
                .map_err(|e| io("creating link", shown, e))?;
        }
        _ => {
            rustix::fs::mknodat(
                dst,
                name,
                kind,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                st.st_rdev,
            )
            .map_err(|e| io("creating node", shown, e))?;
        }
    }
    set_meta(dst, name, st, &xattrs(src, name, shown)?, shown)
}

/// Applies the overlay-format directory `src` onto `dst` (whiteouts and
/// opaque directories delete what they hide; a snapshot's own 0/0 devices
/// are never copied). With `whiteouts` false, `src` is copied as it is.
fn apply_dir(
    src: &OwnedFd,
    dst: &Arc<OwnedFd>,
    shown: &Path,
    whiteouts: bool,
    links: &mut HashMap<(u64, u64), (Arc<OwnedFd>, OsString)>,
) -> Result<()> {
    for name in names(src, shown)? {
        let path = shown.join(&name);
        let st = lstat(src.as_fd(), &name, &path)?;
        if whiteouts && is_whiteout(&st) {
            remove(dst.as_fd(), &name, &path)?;
            continue;
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let existing = rustix::fs::statat(dst.as_fd(), &name, AtFlags::SYMLINK_NOFOLLOW).ok();
            let keep = existing.is_some_and(|e| {
                FileType::from_raw_mode(e.st_mode) == FileType::Directory
                    && !(whiteouts && is_opaque(src.as_fd(), &name))
            });
            if !keep {
                remove(dst.as_fd(), &name, &path)?;
                rustix::fs::mkdirat(dst.as_fd(), &name, Mode::from_raw_mode(0o700))
                    .map_err(|e| io("creating directory", &path, e))?;
            }
            let sub_src = open_dir(src.as_fd(), &name, &path)?;
            let sub_dst = Arc::new(open_dir(dst.as_fd(), &name, &path)?);
            apply_dir(&sub_src, &sub_dst, &path, whiteouts, links)?;
            set_meta(
                dst.as_fd(),
                &name,
                &st,
                &xattrs(src.as_fd(), &name, &path)?,
                &path,
            )?;
        } else {
            remove(dst.as_fd(), &name, &path)?;
            copy_leaf(src.as_fd(), dst.as_fd(), &name, &st, links, dst, &path)?;
        }
    }
    Ok(())
}

/// Applies the snapshots `lowers` (lowest first) into the empty directory
/// `target`.
pub(super) fn apply(lowers: &[PathBuf], target: &Path) -> Result<()> {
    let dst = Arc::new(open_root(target)?);
    for lower in lowers {
        let src = open_root(lower)?;
        // Hardlinks are kept within one snapshot only.
        let mut links = HashMap::new();
        apply_dir(&src, &dst, Path::new("/"), true, &mut links)?;
    }
    Ok(())
}

/// Records the stat of every entry under `root`.
pub(super) fn scan(root: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    let fd = open_root(root)?;
    scan_dir(&fd, PathBuf::new(), &mut tree)?;
    Ok(tree)
}

fn scan_dir(dir: &OwnedFd, rel: PathBuf, tree: &mut Tree) -> Result<()> {
    let shown = Path::new("/").join(&rel);
    let list = names(dir, &shown)?;
    for name in &list {
        let path = rel.join(name);
        let shown = Path::new("/").join(&path);
        let st = lstat(dir.as_fd(), name, &shown)?;
        let m = meta(dir.as_fd(), name, &st, &shown)?;
        let is_dir = m.kind() == FileType::Directory;
        tree.entries.insert(path.clone(), m);
        if is_dir {
            let sub = open_dir(dir.as_fd(), name, &shown)?;
            scan_dir(&sub, path, tree)?;
        }
    }
    tree.children.insert(rel, list.into_iter().collect());
    Ok(())
}

/// One directory on the way down the view, and its copy in the upper dir
/// once something below needs it.
struct Level {
    name: OsString,
    view: Option<OwnedFd>,
    upper: Option<Arc<OwnedFd>>,
}

/// The diff walk's state.
struct Diff<'a> {
    base: &'a Tree,
    levels: Vec<Level>,
    links: HashMap<(u64, u64), (Arc<OwnedFd>, OsString)>,
}

impl Diff<'_> {
    /// The upper dir's copy of the current directory, made (with its
    /// ancestors) if it is not there yet; its metadata is set when the walk
    /// leaves it.
    fn upper(&mut self, shown: &Path) -> Result<Arc<OwnedFd>> {
        let first = self
            .levels
            .iter()
            .position(|l| l.upper.is_none())
            .unwrap_or(self.levels.len());
        for i in first..self.levels.len() {
            let parent = self.levels[i - 1].upper.clone().expect("the root is made");
            let name = self.levels[i].name.clone();
            rustix::fs::mkdirat(parent.as_fd(), &name, Mode::from_raw_mode(0o700))
                .map_err(|e| io("creating directory", shown, e))?;
            let fd = open_dir(parent.as_fd(), &name, shown)?;
            self.levels[i].upper = Some(Arc::new(fd));
        }
        Ok(self
            .levels
            .last()
            .and_then(|l| l.upper.clone())
            .expect("levels"))
    }

    fn whiteout(&mut self, name: &OsStr, shown: &Path) -> Result<()> {
        let up = self.upper(shown)?;
        rustix::fs::mknodat(
            up.as_fd(),
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .map_err(|e| io("creating whiteout", shown, e))
    }

    /// Diffs the directory at the top of `levels` (path `rel`).
    fn dir(&mut self, rel: &Path) -> Result<()> {
        let shown = Path::new("/").join(rel);
        let view = self
            .levels
            .last()
            .and_then(|l| l.view.as_ref())
            .expect("open");
        let view = view
            .try_clone()
            .map_err(|e| Error::io("duplicating fd", &shown, e))?;
        let list = names(&view, &shown)?;
        let empty = BTreeSet::new();
        let before = self.base.children.get(rel).unwrap_or(&empty);
        for gone in before.iter().filter(|n| list.binary_search(n).is_err()) {
            self.whiteout(gone, &shown.join(gone))?;
        }
        for name in &list {
            let path = rel.join(name);
            let shown = Path::new("/").join(&path);
            let st = lstat(view.as_fd(), name, &shown)?;
            let now = meta(view.as_fd(), name, &st, &shown)?;
            let old = self.base.entries.get(&path);
            if now.kind() == FileType::Directory {
                let was_dir = old.is_some_and(|o| o.kind() == FileType::Directory);
                if !was_dir {
                    // A new directory: all of it goes up; over a
                    // non-directory it is opaque, as overlayfs makes it.
                    let up = self.upper(&shown)?;
                    rustix::fs::mkdirat(up.as_fd(), name, Mode::from_raw_mode(0o700))
                        .map_err(|e| io("creating directory", &shown, e))?;
                    let src = open_dir(view.as_fd(), name, &shown)?;
                    let dst = Arc::new(open_dir(up.as_fd(), name, &shown)?);
                    apply_dir(&src, &dst, &shown, false, &mut self.links)?;
                    let mut x = now.xattrs.clone();
                    if old.is_some() {
                        let opaque = rbk_store::overlay_xattrs().opaque.to_bytes();
                        x.insert(opaque.to_vec(), b"y".to_vec());
                    }
                    set_meta(up.as_fd(), name, &st, &x, &shown)?;
                    continue;
                }
                self.levels.push(Level {
                    name: name.clone(),
                    view: Some(open_dir(view.as_fd(), name, &shown)?),
                    upper: None,
                });
                if old != Some(&now) {
                    self.upper(&shown)?;
                }
                self.dir(&path)?;
                let level = self.levels.pop().expect("pushed");
                if level.upper.is_some() {
                    let up = self
                        .levels
                        .last()
                        .and_then(|l| l.upper.clone())
                        .expect("parent");
                    set_meta(up.as_fd(), name, &st, &now.xattrs, &shown)?;
                }
            } else if old != Some(&now) {
                let up = self.upper(&shown)?;
                copy_leaf(
                    view.as_fd(),
                    up.as_fd(),
                    name,
                    &st,
                    &mut self.links,
                    &up,
                    &shown,
                )?;
            }
        }
        Ok(())
    }
}

/// Writes into the empty directory `upper` the overlay-format difference
/// between `base` (the view as it was before the step) and `view` now.
pub(super) fn diff(base: &Tree, view: &Path, upper: &Path) -> Result<()> {
    let mut walk = Diff {
        base,
        levels: vec![Level {
            name: OsString::new(),
            view: Some(open_root(view)?),
            upper: Some(Arc::new(open_root(upper)?)),
        }],
        links: HashMap::new(),
    };
    walk.dir(Path::new(""))?;
    // The root's own metadata changes are not part of a layer (overlayfs
    // never copies the root up either).
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::Path;

    /// `path kind mode [target]` for every entry under `dir`, sorted; the
    /// opaque xattr shown as `opaque`.
    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let mode = md.mode() & 0o7777;
            let line = if ft.is_dir() {
                let opaque = xattr_opaque(&path);
                walk(root, &path, out);
                format!("{rel} dir {mode:o}{}", if opaque { " opaque" } else { "" })
            } else if ft.is_symlink() {
                format!("{rel} -> {}", fs::read_link(&path).unwrap().display())
            } else if ft.is_char_device() && md.rdev() == 0 {
                format!("{rel} whiteout")
            } else {
                let data = fs::read_to_string(&path).unwrap();
                format!("{rel} file {mode:o} {data}")
            };
            out.push(line);
        }
    }

    fn xattr_opaque(path: &Path) -> bool {
        let mut v = [0u8; 4];
        matches!(
            rustix::fs::lgetxattr(path, c"trusted.overlay.opaque", &mut v[..]),
            Ok(1) if v[0] == b'y'
        )
    }

    fn write(path: &Path, data: &str, mode: u32) {
        fs::write(path, data).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A base snapshot, applied into a view whose base is scanned.
    fn setup(t: &Path) -> (super::Tree, std::path::PathBuf, std::path::PathBuf) {
        let lower = t.join("lower");
        fs::create_dir_all(lower.join("etc/sub")).unwrap();
        fs::create_dir_all(lower.join("gone/deep")).unwrap();
        fs::create_dir_all(lower.join("becomes-file")).unwrap();
        write(&lower.join("etc/keep"), "keep", 0o644);
        write(&lower.join("etc/modify"), "old", 0o644);
        write(&lower.join("etc/delete"), "x", 0o644);
        write(&lower.join("etc/chmod"), "same", 0o644);
        write(&lower.join("etc/sub/deep"), "deep", 0o600);
        write(&lower.join("gone/deep/f"), "f", 0o644);
        write(&lower.join("becomes-file/f"), "f", 0o644);
        write(&lower.join("becomes-dir"), "f", 0o644);
        symlink("keep", lower.join("etc/link")).unwrap();
        let view = t.join("view");
        let upper = t.join("upper");
        fs::create_dir(&view).unwrap();
        fs::create_dir(&upper).unwrap();
        super::apply(&[lower], &view).unwrap();
        let base = super::scan(&view).unwrap();
        (base, view, upper)
    }

    #[test]
    fn an_unchanged_view_gives_an_empty_upper() {
        let t = tempfile::tempdir().unwrap();
        let (base, view, upper) = setup(t.path());
        assert_eq!(listing(&view).len(), 14);
        super::diff(&base, &view, &upper).unwrap();
        assert!(listing(&upper).is_empty(), "{:?}", listing(&upper));
    }

    #[test]
    fn the_walking_diff_writes_an_overlay_format_upper() {
        let t = tempfile::tempdir().unwrap();
        let (base, view, upper) = setup(t.path());
        write(&view.join("etc/new"), "new", 0o640);
        write(&view.join("etc/modify"), "newer", 0o644);
        fs::remove_file(view.join("etc/delete")).unwrap();
        fs::set_permissions(view.join("etc/chmod"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_file(view.join("etc/link")).unwrap();
        symlink("modify", view.join("etc/link")).unwrap();
        fs::remove_dir_all(view.join("gone")).unwrap();
        fs::remove_dir_all(view.join("becomes-file")).unwrap();
        write(&view.join("becomes-file"), "now a file", 0o600);
        fs::remove_file(view.join("becomes-dir")).unwrap();
        fs::create_dir(view.join("becomes-dir")).unwrap();
        write(&view.join("becomes-dir/inner"), "in", 0o644);
        fs::create_dir(view.join("fresh")).unwrap();
        write(&view.join("fresh/a"), "a", 0o644);
        super::diff(&base, &view, &upper).unwrap();
        let mut want = vec![
            "becomes-dir dir 755 opaque",
            "becomes-dir/inner file 644 in",
            "becomes-file file 600 now a file",
            "etc dir 755",
            "etc/chmod file 755 same",
            "etc/delete whiteout",
            "etc/link -> modify",
            "etc/modify file 644 newer",
            "etc/new file 640 new",
            "fresh dir 755",
            "fresh/a file 644 a",
            "gone whiteout",
        ];
        want.sort();
        assert_eq!(listing(&upper), want);
        // Untouched subtrees (etc/sub, etc/keep) stay below.
        assert!(!upper.join("etc/sub").exists() && !upper.join("etc/keep").exists());
    }

    #[test]
    fn applying_honours_whiteouts_opaque_dirs_and_hardlinks() {
        let t = tempfile::tempdir().unwrap();
        let (l1, l2) = (t.path().join("l1"), t.path().join("l2"));
        fs::create_dir_all(l1.join("d")).unwrap();
        write(&l1.join("d/old"), "old", 0o644);
        write(&l1.join("f"), "f", 0o644);
        fs::hard_link(l1.join("f"), l1.join("g")).unwrap();
        fs::create_dir_all(l2.join("d")).unwrap();
        write(&l2.join("d/new"), "new", 0o644);
        rustix::fs::lsetxattr(
            l2.join("d"),
            c"trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l2.join("f").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let view = t.path().join("view");
        fs::create_dir(&view).unwrap();
        super::apply(&[l1, l2], &view).unwrap();
        assert_eq!(
            listing(&view),
            ["d dir 755", "d/new file 644 new", "g file 644 f"]
        );
        // The opaque marker is interpreted, not copied.
        assert!(!xattr_opaque(&view.join("d")));
    }

    #[test]
    fn hardlinks_within_a_snapshot_stay_links() {
        let t = tempfile::tempdir().unwrap();
        let l1 = t.path().join("l1");
        fs::create_dir(&l1).unwrap();
        write(&l1.join("a"), "a", 0o644);
        fs::hard_link(l1.join("a"), l1.join("b")).unwrap();
        let view = t.path().join("view");
        fs::create_dir(&view).unwrap();
        super::apply(&[l1], &view).unwrap();
        let (a, b) = (
            fs::metadata(view.join("a")).unwrap(),
            fs::metadata(view.join("b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
    }
}
