//! The mounts of a failed build step made again for `rbk debug step`:
//! host directories (cache mounts, a local context) bound as they were,
//! tmpfs mounts empty, and mounts of another stage's or image's files as
//! read-only overlay views of its layers. Secrets and ssh agents were never
//! kept, so they are not there.

use std::path::PathBuf;

use rbk_store::{ContainerMount, FailedStep, FailedStepMountKind, Store};

use crate::ops::exec::resolve_inside;
use crate::snapshot::{lower_dirs, OverlaySnapshotter, Snapshotter, View};
use crate::{Error, Result};

/// A failed step's mounts as container mounts, and the views they need
/// (unmounted when this is dropped).
#[derive(Debug)]
pub struct StepMounts {
    /// The mounts, in the step's order.
    pub mounts: Vec<ContainerMount>,
    /// Mounts that could not be made again (a host directory that is gone),
    /// as `target: why`.
    pub skipped: Vec<String>,
    // Views before their directories: fields drop in order.
    _views: Vec<View>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Makes `step`'s mounts again (see the module docs).
pub fn failed_step_mounts(store: &Store, step: &FailedStep) -> Result<StepMounts> {
    let mut made = StepMounts {
        mounts: Vec::new(),
        skipped: Vec::new(),
        _views: Vec::new(),
        _dirs: Vec::new(),
    };
    for m in &step.mounts {
        let (kind, source) = match &m.kind {
            FailedStepMountKind::Tmpfs { size } => {
                made.mounts.push(ContainerMount {
                    kind: "tmpfs".into(),
                    source: String::new(),
                    target: m.target.clone(),
                    readonly: false,
                    size: *size,
                });
                continue;
            }
            FailedStepMountKind::Host { path } => {
                if !std::path::Path::new(path).exists() {
                    made.skipped.push(format!("{}: {path} is gone", m.target));
                    continue;
                }
                ("bind", PathBuf::from(path))
            }
            FailedStepMountKind::Layers { layers, source } => {
                let tmp = store.root().join("tmp");
                std::fs::create_dir_all(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
                let dir = tempfile::Builder::new()
                    .prefix("step-mount-")
                    .tempdir_in(&tmp)
                    .map_err(|e| Error::io("creating a directory in", &tmp, e))?;
                let view = OverlaySnapshotter.view(&lower_dirs(store, layers)?, dir.path())?;
                let path = resolve_inside(view.path(), source)?;
                made._dirs.push(dir);
                made._views.push(view);
                ("bind", path)
            }
        };
        made.mounts.push(ContainerMount {
            kind: kind.into(),
            source: source.to_string_lossy().into_owned(),
            target: m.target.clone(),
            readonly: m.readonly,
            size: 0,
        });
    }
    Ok(made)
}
