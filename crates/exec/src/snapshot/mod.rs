//! Snapshotters: making a solved filesystem, a stack of the store's
//! snapshot directories, visible as one directory.
//!
//! # Vocabulary
//!
//! - A *snapshot* is a committed layer unpacked in the store, in overlay
//!   format (a 0/0 character device is a whiteout, `trusted.overlay.opaque`
//!   marks a directory that hides what is below). The *lowers* of a view
//!   are snapshot directories, lowest first ([`lower_dirs`]).
//! - A *view* ([`View`]) is a directory showing the stack. A read-only view
//!   ([`Snapshotter::view`]) is what a `COPY --from` or a bind mount reads;
//!   a writable view ([`Snapshotter::writable`]) is the root of a `RUN` or
//!   the destination of a file op.
//! - The *upper dir* of a [`WorkDir`] is where a writable view's changes end
//!   up, in overlay format, once the view is committed
//!   ([`Snapshotter::commit`]); [`crate::commit_layer`] turns it into a
//!   layer.
//!
//! # Lifecycle
//!
//! ```text
//! lowers ──view──────▶ View (read-only) ──drop / close──▶ (unmounted)
//! lowers ──writable──▶ View (writable)  ──commit──▶ upper dir holds the diff
//!                                       └─close───▶ changes thrown away
//! ```
//!
//! # Implementations
//!
//! - [`OverlaySnapshotter`] (`overlay.rs`): an overlayfs mount; the upper
//!   dir *is* the diff, so `commit` unmounts and only moves the diff under
//!   a new root directory (a mount copied into another namespace can keep
//!   the old one "in use", which overlayfs refuses or warns about when it
//!   is stacked as a lower dir).
//! - [`CopySnapshotter`] (`copy.rs`): the snapshots applied into a fresh
//!   directory; `commit` walks the view against the stat of its base and
//!   writes the same overlay-format upper dir. For machines without
//!   overlayfs; slower.
//! - [`AutoSnapshotter`]: overlay until the first overlay mount is refused
//!   with `EPERM`, `ENODEV` or `EINVAL` (overlayfs unavailable here), copy
//!   from then on, with one warning ([`Snapshotter::take_warning`]) that the
//!   solver reports as an [`rbk_graph::Event::Warning`].
//!
//! Which one a build uses is a setting: [`SnapshotterChoice`] in
//! [`crate::SolveOptions`]. The choice lives in the solver, never in
//! process-wide state.
//!
//! # Example
//!
//! ```no_run
//! # fn demo(store: &rbk_store::Store, lowers: Vec<std::path::PathBuf>) -> rbk_exec::Result<()> {
//! use rbk_exec::{Snapshotter, SnapshotterChoice};
//!
//! let snapshotter = SnapshotterChoice::Copy.build();
//! let work = store.work_dir()?;
//! let root = snapshotter.writable(&lowers, &work)?;
//! std::fs::write(root.path().join("hello"), "hi\n").unwrap();
//! snapshotter.commit(root)?; // work.upper() now holds /hello
//! # Ok(()) }
//! ```

mod copy;
mod overlay;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

use rbk_store::{Layer, WorkDir};
use rustix::io::Errno;

pub use copy::CopySnapshotter;
pub use overlay::OverlaySnapshotter;

use crate::mount::MountGuard;
use crate::{Error, Result, SolveStore};

/// The diff id of the empty layer, which stands for "this step changed
/// nothing" (see `solve`).
pub(crate) use rbk_store::image::EMPTY_LAYER_DIFF_ID;

/// overlayfs stacks at most this many lower dirs (the kernel's
/// `OVL_MAX_STACK`); a deeper stack is refused before anything is mounted
/// (docs/security.md A14) instead of failing in mount(2) with a bare EINVAL.
pub(crate) const MAX_LOWER_DIRS: usize = 500;

/// Makes views of stacks of snapshots (see the module docs for the
/// vocabulary and lifecycle). Implemented in this crate only: a [`View`]'s
/// state is private to it.
pub trait Snapshotter: Send + Sync {
    /// A read-only view of `lowers` (lowest first) at `target`, an empty
    /// directory. With no lowers, `target` itself is the (empty) view.
    fn view(&self, lowers: &[PathBuf], target: &Path) -> Result<View>;

    /// A writable view of `lowers` at `work.merged()`, whose changes reach
    /// `work.upper()` when it is committed. With no lowers, the upper dir
    /// itself is the view (there is nothing to stack).
    fn writable(&self, lowers: &[PathBuf], work: &WorkDir) -> Result<View>;

    /// Ends a writable view keeping its changes: afterwards the upper dir of
    /// its work dir holds the difference from its lowers in overlay format.
    fn commit(&self, view: View) -> Result<()>;

    /// Ends a view, throwing away what was written to it (unmounting it if
    /// it is mounted). Dropping a view does the same.
    fn close(&self, view: View) {
        drop(view);
    }

    /// A warning about the machine to report once (the automatic
    /// snapshotter's fallback to copying); `None` when there is nothing new.
    fn take_warning(&self) -> Option<String> {
        None
    }

    /// A short name for messages: `overlay`, `copy`, `auto`.
    fn name(&self) -> &'static str;
}

/// Which [`Snapshotter`] a build uses (a setting; the CLI maps
/// `RBK_SNAPSHOTTER=native` to [`SnapshotterChoice::Copy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotterChoice {
    /// Overlay, falling back to copying (with a warning) when the first
    /// overlay mount is refused because overlayfs is unavailable.
    #[default]
    Auto,
    /// Overlay only: a refused mount is an error.
    Overlay,
    /// Copying only (rbk's "native" snapshotter).
    Copy,
}

impl SnapshotterChoice {
    /// A fresh snapshotter of this kind.
    pub fn build(self) -> Box<dyn Snapshotter> {
        match self {
            SnapshotterChoice::Auto => Box::new(AutoSnapshotter::default()),
            SnapshotterChoice::Overlay => Box::new(OverlaySnapshotter),
            SnapshotterChoice::Copy => Box::new(CopySnapshotter),
        }
    }
}

/// A directory showing a stack of snapshots; unmounted on drop when it is a
/// mount.
#[derive(Debug)]
#[must_use = "a writable view's changes reach its upper dir only when it is committed"]
pub struct View {
    path: PathBuf,
    state: ViewState,
}

#[derive(Debug)]
enum ViewState {
    /// A directory shown as it is (nothing mounted, nothing to diff).
    Dir,
    /// An overlay mount; its upper dir, if any, is already the diff.
    Mounted {
        guard: MountGuard,
        upper: Option<PathBuf>,
    },
    /// A writable copy: its base tree, and the upper dir the diff goes to.
    Copied { base: copy::Tree, upper: PathBuf },
}

impl View {
    /// A directory shown as it is (the build context, an empty root).
    pub(crate) fn dir(path: PathBuf) -> View {
        View {
            path,
            state: ViewState::Dir,
        }
    }

    fn mounted(path: PathBuf, guard: MountGuard, upper: Option<PathBuf>) -> View {
        View {
            path,
            state: ViewState::Mounted { guard, upper },
        }
    }

    fn copied(path: PathBuf, base: copy::Tree, upper: PathBuf) -> View {
        View {
            path,
            state: ViewState::Copied { base, upper },
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn is_copied(&self) -> bool {
        matches!(self.state, ViewState::Copied { .. })
    }
}

const UNDECIDED: u8 = 0;
const OVERLAY: u8 = 1;
const COPY: u8 = 2;

/// Overlay until overlayfs proves unavailable, then copying (see the module
/// docs). The decision is this snapshotter's own state: one per solver.
#[derive(Debug, Default)]
pub struct AutoSnapshotter {
    mode: AtomicU8,
    warning: Mutex<Option<String>>,
}

impl AutoSnapshotter {
    fn copying(&self) -> bool {
        self.mode.load(Ordering::SeqCst) == COPY
    }

    /// Records that an overlay mount worked: later failures are real errors.
    fn overlay_worked(&self) {
        let _ = self
            .mode
            .compare_exchange(UNDECIDED, OVERLAY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether the failed overlay mount `err` switches to copying: only an
    /// "overlay is not available here" errno before any mount worked does.
    fn fall_back(&self, err: &Error) -> bool {
        let Error::Io { source, .. } = err else {
            return false;
        };
        let unavailable = [Errno::PERM, Errno::NODEV, Errno::INVAL]
            .iter()
            .any(|e| source.raw_os_error() == Some(e.raw_os_error()));
        if !unavailable {
            return false;
        }
        match self
            .mode
            .compare_exchange(UNDECIDED, COPY, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                *self.warning.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!(
                    "overlayfs is not available ({source}); using the native \
                     (copying) snapshotter, which is slower"
                ));
                true
            }
            Err(mode) => mode == COPY,
        }
    }

    /// `attempt`'s view, unless overlayfs turns out to be unavailable: then
    /// `fallback`'s.
    fn either(
        &self,
        attempt: impl FnOnce() -> Result<View>,
        fallback: impl FnOnce() -> Result<View>,
    ) -> Result<View> {
        if self.copying() {
            return fallback();
        }
        match attempt() {
            Ok(view) => {
                self.overlay_worked();
                Ok(view)
            }
            Err(e) if self.fall_back(&e) => fallback(),
            Err(e) => Err(e),
        }
    }
}

impl Snapshotter for AutoSnapshotter {
    fn view(&self, lowers: &[PathBuf], target: &Path) -> Result<View> {
        if lowers.is_empty() {
            return Ok(View::dir(target.to_path_buf()));
        }
        self.either(
            || OverlaySnapshotter.view(lowers, target),
            || CopySnapshotter.view(lowers, target),
        )
    }

    fn writable(&self, lowers: &[PathBuf], work: &WorkDir) -> Result<View> {
        if lowers.is_empty() {
            return Ok(View::dir(work.upper()));
        }
        self.either(
            || OverlaySnapshotter.writable(lowers, work),
            || CopySnapshotter.writable(lowers, work),
        )
    }

    fn commit(&self, view: View) -> Result<()> {
        if view.is_copied() {
            CopySnapshotter.commit(view)
        } else {
            OverlaySnapshotter.commit(view)
        }
    }

    fn take_warning(&self) -> Option<String> {
        self.warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn name(&self) -> &'static str {
        "auto"
    }
}

/// Refuses a stack of more than [`MAX_LOWER_DIRS`] lower dirs.
pub(crate) fn check_depth(lowers: usize) -> Result<()> {
    if lowers > MAX_LOWER_DIRS {
        return Err(Error::TooManyLayers {
            layers: lowers,
            max: MAX_LOWER_DIRS,
        });
    }
    Ok(())
}

/// Whether `layer` is the empty layer.
pub(crate) fn is_empty_layer(layer: &Layer) -> bool {
    layer.diff_id.to_string() == EMPTY_LAYER_DIFF_ID
}

/// The snapshot directories of `layers` (lowest first), unpacking any that
/// are not yet; empty layers are skipped. A layer that appears more than
/// once (`COPY a /x` twice) is one directory, which overlayfs refuses to
/// stack twice ("conflicting lowerdir path"): only its topmost place is
/// kept. That merges the same: everything the lower copy holds or hides,
/// the upper copy holds or hides too, above whatever lies between.
pub(crate) fn lower_dirs(store: &dyn SolveStore, layers: &[Layer]) -> Result<Vec<PathBuf>> {
    let mut seen = std::collections::HashSet::new();
    let mut top_down = Vec::new();
    for layer in layers.iter().rev().filter(|l| !is_empty_layer(l)) {
        if seen.insert(layer.diff_id) {
            top_down.push(layer);
        }
    }
    top_down
        .into_iter()
        .rev()
        .map(|l| Ok(store.ensure_snapshot(&l.blob, &l.diff_id)?))
        .collect()
}

/// Creates an empty directory `name` inside `work` for a read-only view.
pub(crate) fn view_dir(work: &WorkDir, name: &str) -> Result<PathBuf> {
    let path = work.path().join(name);
    std::fs::create_dir(&path).map_err(|e| Error::io("creating directory", &path, e))?;
    Ok(path)
}

/// The empty layer, its blob and (empty) snapshot written to the store if
/// they are not there yet.
pub(crate) fn empty_layer(store: &dyn SolveStore) -> Result<Layer> {
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
    use super::*;

    #[test]
    fn the_empty_layer_digest_is_that_of_two_zero_blocks() {
        let d = rbk_store::Digest::sha256_of(&[0u8; 1024]);
        assert_eq!(d.to_string(), EMPTY_LAYER_DIFF_ID);
    }

    #[test]
    fn stacks_deeper_than_overlayfs_allows_are_refused() {
        assert!(check_depth(1).is_ok());
        assert!(check_depth(MAX_LOWER_DIRS).is_ok());
        let err = check_depth(MAX_LOWER_DIRS + 1).unwrap_err().to_string();
        assert!(err.contains("501 layers") && err.contains("500"), "{err}");
    }

    fn io_error(errno: Errno) -> Error {
        Error::io("mounting overlay", "/x", errno.into())
    }

    #[test]
    fn the_first_refused_overlay_mount_switches_to_copying_with_one_warning() {
        let auto = AutoSnapshotter::default();
        assert!(!auto.fall_back(&io_error(Errno::NOENT)));
        assert!(auto.take_warning().is_none());
        assert!(auto.fall_back(&io_error(Errno::PERM)));
        assert!(auto.copying());
        let warning = auto.take_warning().expect("a warning");
        assert!(warning.contains("overlayfs is not available"), "{warning}");
        assert!(auto.take_warning().is_none(), "the warning is given once");
        assert!(auto.fall_back(&io_error(Errno::NODEV)));
        assert!(auto.take_warning().is_none());
    }

    #[test]
    fn after_a_working_overlay_mount_failures_are_errors() {
        let auto = AutoSnapshotter::default();
        auto.overlay_worked();
        assert!(!auto.fall_back(&io_error(Errno::PERM)));
        assert!(!auto.copying());
        assert!(auto.take_warning().is_none());
    }

    #[test]
    fn each_snapshotter_decides_for_itself() {
        let (a, b) = (AutoSnapshotter::default(), AutoSnapshotter::default());
        assert!(a.fall_back(&io_error(Errno::PERM)));
        assert!(a.copying() && !b.copying());
    }
}
