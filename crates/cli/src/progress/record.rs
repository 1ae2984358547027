//! The build record: what `rbk build ls`, `rbk logs --build`, `rbk build
//! timeline` and `--explain` read back. One `record.json` per build, next
//! to the steps' logs in `<root>/logs/<build id>/`, written when the build
//! ends (also when it failed). It holds every vertex the views showed with
//! its times (seconds from the build's start), cache state and error, and,
//! for the plan's vertices, what `--explain` compares with the previous
//! build of the same Dockerfile and target: the instruction's text and
//! line, the RUN environment (where build args land), the image a `FROM`
//! resolved to, and the digest of each context file a COPY selected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file of a build's record inside its logs directory.
pub(crate) const RECORD_FILE: &str = "record.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) id: String,
    /// RFC 3339.
    pub(crate) started: String,
    pub(crate) duration: f64,
    /// The Dockerfile as the user named it, and its absolute path (what
    /// picks the previous build to compare with).
    pub(crate) dockerfile: String,
    pub(crate) dockerfile_path: String,
    pub(crate) target: Option<String>,
    pub(crate) build_args: BTreeMap<String, String>,
    /// `ok` or `failed`.
    pub(crate) result: String,
    pub(crate) error: Option<String>,
    pub(crate) image: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) steps: Vec<Step>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Step {
    /// `#n` in the views.
    pub(crate) number: usize,
    pub(crate) digest: String,
    pub(crate) name: String,
    pub(crate) inputs: Vec<String>,
    /// Seconds from the build's start; `None` when it never started.
    pub(crate) start: Option<f64>,
    pub(crate) end: Option<f64>,
    pub(crate) cached: bool,
    pub(crate) error: Option<String>,
    pub(crate) canceled: bool,
    /// The log file's name in the build's directory, when it printed.
    pub(crate) log: Option<String>,
    /// Why it missed the cache (`--explain`), when it ran.
    pub(crate) reason: Option<String>,
    /// What `--explain` compares; `None` for the views' own vertices.
    pub(crate) inputs_of: Option<Fingerprint>,
}

/// The inputs of a plan vertex, in the user's terms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    /// `exec`, `file`, `source`, `merge`.
    pub(crate) kind: String,
    pub(crate) stage: Option<String>,
    /// Where the step matches its counterpart in another build:
    /// `stage n` from `[stage n/m]`, else the label.
    pub(crate) slot: String,
    pub(crate) line: Option<u32>,
    /// The Dockerfile lines of the instruction.
    pub(crate) text: String,
    /// A RUN's environment (`KEY=value`).
    pub(crate) env: Vec<String>,
    /// A `FROM`: the reference and what the store resolved it to.
    pub(crate) image: Option<(String, Option<String>)>,
    /// A COPY from the context: each selected entry's digest by path.
    pub(crate) files: BTreeMap<String, String>,
}

impl Record {
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, dir.join(RECORD_FILE))
    }

    /// The step a user named: its number (`3`, `#3`), a digest (or a
    /// prefix of its hex) or a part of its name.
    pub(crate) fn step(&self, wanted: &str) -> Option<&Step> {
        let number = wanted.trim_start_matches('#').parse::<usize>().ok();
        let hex = wanted.trim_start_matches("sha256:");
        self.steps
            .iter()
            .find(|s| Some(s.number) == number)
            .or_else(|| {
                self.steps.iter().find(|s| {
                    hex.len() >= 6 && s.digest.trim_start_matches("sha256:").starts_with(hex)
                })
            })
            .or_else(|| self.steps.iter().find(|s| s.name.contains(wanted)))
    }
}

/// Every readable record under `<root>/logs`, oldest first (ids sort by
/// time). Directories without one (a build still running, or killed) are
/// left out.
pub(crate) fn all(logs: &Path) -> Vec<(PathBuf, Record)> {
    let Ok(dirs) = std::fs::read_dir(logs) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Record)> = dirs
        .filter_map(Result::ok)
        .filter_map(|d| {
            let dir = d.path();
            let bytes = std::fs::read(dir.join(RECORD_FILE)).ok()?;
            let record: Record = serde_json::from_slice(&bytes).ok()?;
            Some((dir, record))
        })
        .collect();
    out.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    out
}

/// The most recent build of the same Dockerfile and target.
pub(crate) fn previous(logs: &Path, dockerfile_path: &str, target: Option<&str>) -> Option<Record> {
    all(logs)
        .into_iter()
        .rev()
        .map(|(_, r)| r)
        .find(|r| r.dockerfile_path == dockerfile_path && r.target.as_deref() == target)
}

/// The slot of a step label: `[build 2/4] RUN make` → `build 2`.
pub(crate) fn slot(label: &str) -> String {
    if let Some(rest) = label.strip_prefix('[') {
        if let Some((inside, _)) = rest.split_once(']') {
            if let Some((head, _)) = inside.rsplit_once('/') {
                return head.to_string();
            }
        }
    }
    label.to_string()
}

/// `rbk prune`: the logs and records of every build but the last of each
/// Dockerfile and target (what `--explain` compares with); with `all`,
/// every one. Returns the directories moved to the trash.
pub(crate) fn prune(store: &rbk_store::Store, all: bool) -> rbk_store::Result<Vec<String>> {
    let records = self::all(&store.root().join("logs"));
    let mut keep = std::collections::HashSet::new();
    if !all {
        let mut seen = std::collections::HashSet::new();
        for (dir, r) in records.iter().rev() {
            if seen.insert((r.dockerfile_path.clone(), r.target.clone())) {
                keep.insert(dir.clone());
            }
        }
    }
    let mut gone = Vec::new();
    for (dir, r) in records {
        if keep.contains(&dir) {
            continue;
        }
        store.move_to_trash(&dir)?;
        gone.push(r.id);
    }
    Ok(gone)
}
