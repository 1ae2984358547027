//! The overlay snapshotter: a view is an overlayfs mount of the lower
//! snapshots, and a writable view's upper dir is already its diff.

use std::path::{Path, PathBuf};

use rbk_store::{overlay_mount, WorkDir};

use super::{check_depth, Snapshotter, View};
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
        Ok(View::mounted(target.to_path_buf(), guard))
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
        Ok(View::mounted(merged, guard))
    }

    fn commit(&self, view: View) -> Result<()> {
        drop(view); // unmounted: the upper dir is the diff
        Ok(())
    }

    fn name(&self) -> &'static str {
        "overlay"
    }
}
