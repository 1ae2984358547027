//! Failed build steps kept for `rbk debug step`: when a `RUN` exits
//! non-zero, what it wrote (its upper dir, in overlay format) and how it ran
//! are kept under `failed-steps/<vertex hex>/` (`upper/` and `step.json`)
//! until `rbk prune`, so a shell can be opened later in the state the step
//! left. The record names the layers under the upper dir, which GC keeps
//! alive while the record exists. A step that fails again replaces its
//! record. Secret values are never written here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_small, sync_dir, unique_name, write_atomic};
use crate::{Digest, Error, Layer, Result, Store};

/// The most a record may weigh when read back.
const MAX_RECORD: u64 = 4 << 20;

/// How a failed `RUN` step ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStep {
    /// The step's vertex digest (what `rbk debug step` takes).
    pub digest: Digest,
    /// The process's arguments.
    pub args: Vec<String>,
    /// `KEY=VALUE` environment (without values that came from secrets).
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// `user[:group]`, empty for root.
    pub user: String,
    /// `none` or `host`.
    pub network: String,
    /// The hostname it saw.
    pub hostname: String,
    /// The exit code.
    pub code: i32,
    /// When it failed, RFC 3339.
    pub created: String,
    /// The root file system's layers, lowest first (the upper dir goes on
    /// top of them).
    pub layers: Vec<Layer>,
    /// Its mounts, as far as they can be made again.
    pub mounts: Vec<FailedStepMount>,
}

/// A mount of a failed step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStepMount {
    /// Where it appeared in the container.
    pub target: String,
    /// What it was.
    pub kind: FailedStepMountKind,
    /// Mounted read-only.
    pub readonly: bool,
}

/// What a failed step's mount showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FailedStepMountKind {
    /// A host directory (a cache mount, a local context).
    Host {
        /// Its path on the host.
        path: String,
    },
    /// `source` inside the file system made of `layers`.
    Layers {
        /// Lowest first.
        layers: Vec<Layer>,
        /// The path inside them.
        source: String,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Its size limit in bytes (0: the kernel's default).
        size: u64,
    },
}

impl FailedStep {
    /// Every layer the record needs: its root's and its mounts'.
    pub fn all_layers(&self) -> impl Iterator<Item = &Layer> {
        self.layers
            .iter()
            .chain(self.mounts.iter().flat_map(|m| match &m.kind {
                FailedStepMountKind::Layers { layers, .. } => layers.as_slice(),
                _ => &[],
            }))
    }
}

impl Store {
    fn failed_steps_dir(&self) -> PathBuf {
        self.root().join("failed-steps")
    }

    /// The directory of failed step `digest`.
    pub fn failed_step_dir(&self, digest: &Digest) -> PathBuf {
        self.failed_steps_dir().join(digest.hex())
    }

    /// Keeps failed step `step`: moves `upper` (its changes) into the store
    /// and writes its record, replacing an earlier one of the same step.
    pub fn keep_failed_step(&self, step: &FailedStep, upper: &Path) -> Result<()> {
        let base = self.failed_steps_dir();
        std::fs::create_dir_all(&base).map_err(Error::io("creating", &base))?;
        // Made under a temporary name, then renamed: a reader sees a
        // complete record or none.
        let fresh = base.join(unique_name(".new-"));
        std::fs::create_dir(&fresh).map_err(Error::io("creating", &fresh))?;
        let bytes = serde_json::to_vec_pretty(step).map_err(|source| Error::Json {
            path: "step.json".into(),
            source,
        })?;
        let kept = fresh.join("upper");
        let made = std::fs::rename(upper, &kept)
            .map_err(Error::io("moving", upper))
            .and_then(|()| write_atomic(&fresh, "step.json", &bytes));
        if let Err(e) = made {
            let _ = self.move_to_trash(&fresh);
            return Err(e);
        }
        let dir = self.failed_step_dir(&step.digest);
        if dir.exists() {
            self.move_to_trash(&dir)?;
        }
        std::fs::rename(&fresh, &dir).map_err(Error::io("renaming into place", &dir))?;
        sync_dir(&base)
    }

    /// The record of failed step `digest` (a full digest, or a unique
    /// prefix of its hex of at least 4 characters).
    pub fn failed_step(&self, digest: &str) -> Result<FailedStep> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let not_found = || {
            Error::ContainerConflict(format!(
                "no failed step {digest} is kept (`rbk debug step` lists them)"
            ))
        };
        if hex.len() < 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let matches: Vec<FailedStep> = self
            .failed_steps()?
            .into_iter()
            .filter(|s| s.digest.hex().starts_with(hex))
            .collect();
        match matches.len() {
            0 => Err(not_found()),
            1 => Ok(matches.into_iter().next().expect("one")),
            _ => Err(Error::ContainerConflict(format!(
                "failed step {digest} is ambiguous: give more of its digest"
            ))),
        }
    }

    /// Every kept failed step, oldest first; unreadable records are skipped.
    pub fn failed_steps(&self) -> Result<Vec<FailedStep>> {
        let dir = self.failed_steps_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut steps = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path().join("step.json");
            let Ok(bytes) = read_small(&path, MAX_RECORD) else {
                continue;
            };
            if let Ok(step) = serde_json::from_slice::<FailedStep>(&bytes) {
                steps.push(step);
            }
        }
        steps.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(steps)
    }

    /// Drops every kept failed step (their directories go to the trash);
    /// how many there were.
    pub fn remove_failed_steps(&self) -> Result<usize> {
        let dir = self.failed_steps_dir();
        if !dir.exists() {
            return Ok(0);
        }
        let count = std::fs::read_dir(&dir)
            .map_err(Error::io("listing", &dir))?
            .count();
        self.move_to_trash(&dir)?;
        Ok(count)
    }
}
