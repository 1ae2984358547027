//! Making a solved filesystem visible as a directory: its snapshots stacked
//! with overlayfs, read-only or with a writable upper dir.

use std::path::{Path, PathBuf};

use rbk_store::{overlay_mount, Layer, Store, WorkDir};

use crate::run::{mount, MountGuard};
use crate::{Error, Result};

/// The diff id of the empty layer (a tar of two zero blocks), which stands
/// for "this step changed nothing" (see `solve`).
pub(super) const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// overlayfs stacks at most this many lower dirs (the kernel's
/// `OVL_MAX_STACK`); a deeper stack is refused before anything is mounted
/// (security A14) instead of failing in mount(2) with a bare EINVAL.
pub(crate) const MAX_LOWER_DIRS: usize = 500;

/// Refuses a stack of more than [`MAX_LOWER_DIRS`] lower dirs.
pub(crate) fn check_depth(lowers: usize) -> Result<()> {
    if lowers > MAX_LOWER_DIRS {
        return Err(Error::Invalid(format!(
            "the filesystem of this step has {lowers} layers, more than overlayfs can \
             stack ({MAX_LOWER_DIRS} including rbk's init layer for RUN steps): \
             merge some RUN, COPY or ADD instructions"
        )));
    }
    Ok(())
}

/// Whether `layer` is the empty layer.
pub(crate) fn is_empty_layer(layer: &Layer) -> bool {
    layer.diff_id.to_string() == EMPTY_LAYER_DIFF_ID
}

/// A mounted view; unmounted on drop.
pub(super) struct View {
    pub(super) path: PathBuf,
    _mount: Option<MountGuard>,
    /// A writable view of the native snapshotter: its base tree and the
    /// upper dir [`View::close`] writes the diff into.
    native: Option<(super::native::Tree, PathBuf)>,
}

impl View {
    /// A directory shown as it is (the build context).
    pub(super) fn unmounted(path: PathBuf) -> View {
        View {
            path,
            _mount: None,
            native: None,
        }
    }

    /// Ends a writable view: unmounts it, or with the native snapshotter
    /// writes what changed into the upper dir.
    pub(super) fn close(mut self) -> Result<()> {
        if let Some((base, upper)) = self.native.take() {
            super::native::diff(&base, &self.path, &upper)?;
        }
        Ok(())
    }
}

/// Mounts `m` at `target`, unless overlayfs is unavailable on the first
/// attempt (`Ok(None)`: use the native snapshotter).
fn mount_or_native(m: &rbk_store::Mount, target: &Path) -> Result<Option<MountGuard>> {
    match mount(m, target) {
        Ok(guard) => {
            super::native::overlay_worked();
            Ok(Some(guard))
        }
        Err(e) if super::native::fall_back(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A native view: `lowers` applied into `target`.
fn native_view(lowers: &[PathBuf], target: &Path) -> Result<View> {
    super::native::apply(lowers, target)?;
    Ok(View::unmounted(target.to_path_buf()))
}

/// A native writable view at `work.merged()`, remembering its base.
fn native_writable(lowers: &[PathBuf], work: &WorkDir) -> Result<View> {
    let merged = work.merged();
    if !merged.exists() {
        std::fs::create_dir(&merged).map_err(|e| Error::io("creating directory", &merged, e))?;
    }
    let mut view = native_view(lowers, &merged)?;
    view.native = Some((super::native::scan(&merged)?, work.upper()));
    Ok(view)
}

/// The snapshot directories of `layers` (lowest first), unpacking any that
/// are not yet; empty layers are skipped.
pub(super) fn lower_dirs(store: &Store, layers: &[Layer]) -> Result<Vec<PathBuf>> {
    layers
        .iter()
        .filter(|l| !is_empty_layer(l))
        .map(|l| Ok(store.ensure_snapshot(&l.blob, &l.diff_id)?))
        .collect()
}

/// Mounts `lowers` read-only at `target` (an
/// empty directory). With nothing to stack, `target` itself is the (empty)
/// view.
pub(super) fn read_only(lowers: Vec<PathBuf>, target: &Path) -> Result<View> {
    if lowers.is_empty() {
        return Ok(View::unmounted(target.to_path_buf()));
    }
    if super::native::enabled() {
        return native_view(&lowers, target);
    }
    check_depth(lowers.len())?;
    let Some(guard) = mount_or_native(&overlay_mount(&lowers, None), target)? else {
        return native_view(&lowers, target);
    };
    Ok(View {
        path: target.to_path_buf(),
        _mount: Some(guard),
        native: None,
    })
}

/// Mounts `lowers` with `work`'s upper dir on top at `work.merged()`. With no
/// lowers the upper dir itself is the view (nothing to stack).
pub(super) fn writable(lowers: &[PathBuf], work: &WorkDir) -> Result<View> {
    if lowers.is_empty() {
        return Ok(View::unmounted(work.upper()));
    }
    if super::native::enabled() {
        return native_writable(lowers, work);
    }
    check_depth(lowers.len())?;
    let (upper, workdir, merged) = (work.upper(), work.work(), work.merged());
    let m = overlay_mount(lowers, Some((&upper, &workdir)));
    // `volatile`: overlayfs otherwise syncs the whole upper filesystem when
    // it is unmounted — every dirty page of the machine's root filesystem,
    // which cost 20–180 ms per step here. The upper dir becomes a snapshot
    // whose durability is the store's business (blobs and records are
    // fsynced there), and a killed process loses no page-cache data. Kernels
    // before 5.10 do not know the option: mount without it.
    let mut fast = m.clone();
    fast.options.push("volatile".into());
    let guard = match mount(&fast, &merged) {
        Ok(guard) => guard,
        Err(_) => match mount_or_native(&m, &merged)? {
            Some(guard) => guard,
            None => return native_writable(lowers, work),
        },
    };
    super::native::overlay_worked();
    Ok(View {
        path: merged,
        _mount: Some(guard),
        native: None,
    })
}

/// Creates an empty directory `name` inside `work` for a read-only view.
pub(super) fn view_dir(work: &WorkDir, name: &str) -> Result<PathBuf> {
    let path = work.path().join(name);
    std::fs::create_dir(&path).map_err(|e| Error::io("creating directory", &path, e))?;
    Ok(path)
}

/// The empty layer, its blob and (empty) snapshot written to the store if
/// they are not there yet.
pub(super) fn empty_layer(store: &Store) -> Result<Layer> {
    use rbk_store::BlobWrite;
    let info = store.put_bytes(&[0u8; 1024])?;
    let diff_id = info.digest;
    if !store.has_snapshot(&diff_id) {
        let work = store.work_dir()?;
        store.commit_snapshot(&work.upper(), &diff_id)?;
    }
    Ok(Layer {
        diff_id,
        blob: rbk_store::Descriptor {
            media_type: crate::solve::OCI_LAYER.into(),
            digest: info.digest,
            size: info.size,
            annotations: Default::default(),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_empty_layer_digest_is_that_of_two_zero_blocks() {
        let d = rbk_store::Digest::sha256_of(&[0u8; 1024]);
        assert_eq!(d.to_string(), super::EMPTY_LAYER_DIFF_ID);
    }

    #[test]
    fn stacks_deeper_than_overlayfs_allows_are_refused() {
        assert!(super::check_depth(1).is_ok());
        assert!(super::check_depth(super::MAX_LOWER_DIRS).is_ok());
        let err = super::check_depth(super::MAX_LOWER_DIRS + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("501 layers") && err.contains("500"), "{err}");
    }
}
