//! The overlay snapshotter: a view is an overlayfs mount of the lower
//! snapshots, and a writable view's upper dir is already its diff (under a
//! new root directory once committed: see [`fresh_root`]).

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rbk_store::{overlay_mount, WorkDir};
use rustix::fs::{AtFlags, Mode};

use super::copy::{io, lstat, names, open_dir, open_root, set_meta, xattrs};
use super::{check_depth, Snapshotter, View, ViewState};
use crate::mount::mount;
use crate::Result;

/// Views as overlayfs mounts; a refused mount is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct OverlaySnapshotter;

impl Snapshotter for OverlaySnapshotter {
    fn view(&self, lowers: &[PathBuf], target: &Path) -> Result<View> {
        if lowers.is_empty() {
            return Ok(View::dir(target.to_path_buf()));
        }
        check_depth(lowers.len())?;
        let guard = mount(&overlay_mount(lowers, None), target)?;
        Ok(View::mounted(target.to_path_buf(), guard, None))
    }

    fn writable(&self, lowers: &[PathBuf], work: &WorkDir) -> Result<View> {
        if lowers.is_empty() {
            return Ok(View::dir(work.upper()));
        }
        check_depth(lowers.len())?;
        let (upper, workdir, merged) = (work.upper(), work.work(), work.merged());
        let m = overlay_mount(lowers, Some((&upper, &workdir)));
        // `volatile`: overlayfs otherwise syncs the whole upper filesystem
        // when it is unmounted — every dirty page of the machine's root
        // filesystem, which cost 20–180 ms per step here. The upper dir
        // becomes a snapshot whose durability is the store's business
        // (blobs and records are fsynced there), and a killed process loses
        // no page-cache data. Kernels before 5.10 do not know the option:
        // mount without it (and report that attempt's error).
        let mut fast = m.clone();
        fast.options.push("volatile".into());
        let guard = match mount(&fast, &merged) {
            Ok(guard) => guard,
            Err(_) => mount(&m, &merged)?,
        };
        Ok(View::mounted(merged, guard, Some(upper)))
    }

    fn commit(&self, view: View) -> Result<()> {
        let ViewState::Mounted { guard, upper } = view.state else {
            return Ok(());
        };
        drop(guard); // unmounted: the upper dir is the diff
        match upper {
            Some(upper) => fresh_root(&upper),
            None => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        "overlay"
    }
}

/// Gives the upper dir `upper` of an unmounted overlay a new root: its
/// entries are moved into a new directory of the same name, which gets the
/// old root's owner, mode, xattrs and times.
///
/// overlayfs marks the upper dir's inode "in use" for as long as the
/// mount's superblock lives, and a copy of the mount in another mount
/// namespace (a container being set up beside this build, with every mount
/// of the moment copied into it) keeps it alive after rbk's own unmount.
/// Stacking the same directory as a lower meanwhile made the kernel warn
/// ("lowerdir is in-use as upperdir/workdir", with two builds at once);
/// with overlay's `index` feature on (rbk's own mounts turn it off where
/// the kernel knows the option) the mount is refused with `EBUSY`. The
/// mark belongs to the root inode only: the new root has none.
fn fresh_root(upper: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (upper.parent(), upper.file_name()) else {
        return Ok(());
    };
    let old_name = OsStr::new("upper.unmounted");
    let old_path = parent.join(old_name);
    let parent = open_root(parent)?;
    rustix::fs::renameat(&parent, name, &parent, old_name).map_err(|e| io("renaming", upper, e))?;
    rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
        .map_err(|e| io("creating directory", upper, e))?;
    // Read before the moves, which change the old root's times.
    let st = lstat(parent.as_fd(), old_name, &old_path)?;
    let x = xattrs(parent.as_fd(), old_name, &old_path)?;
    let old = open_dir(parent.as_fd(), old_name, &old_path)?;
    let new = open_dir(parent.as_fd(), name, upper)?;
    for entry in names(&old, &old_path)? {
        rustix::fs::renameat(&old, &entry, &new, &entry)
            .map_err(|e| io("moving", &upper.join(&entry), e))?;
    }
    set_meta(parent.as_fd(), name, &st, &x, upper)?;
    // Empty now; were it left, the work dir's removal takes it.
    let _ = rustix::fs::unlinkat(&parent, old_name, AtFlags::REMOVEDIR);
    Ok(())
}
