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

/// `<logs>/.latest/<sha256 of Dockerfile path and target>`: the id of the
/// last build of that Dockerfile and target, so that [`previous`] reads one
/// record instead of every record of the store (issue 19: with a history
/// of builds, reading them all was a large part of a no-op rebuild). It
/// holds no record, so [`all`] passes over it.
const LATEST_DIR: &str = ".latest";

/// The directory of a build's COPY file lists (see [`file_list_path`]).
const FILE_LISTS_DIR: &str = "files";

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
    /// Records of older rbk versions hold the list here; new records name
    /// it by `files_ref` instead and keep it beside the record.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) files: BTreeMap<String, String>,
    /// A COPY from the context: the name of its file list
    /// ([`file_list_path`]), a digest of the selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) files_ref: Option<String>,
}

/// Where a build keeps the file list of a COPY, named by its `files_ref`.
/// A list is a JSON map of path to digest, written once per selection and
/// hard-linked into the next build's directory while the selection is
/// unchanged: a monorepo COPY selects 200,000 entries, and listing them in
/// every record made a no-op rebuild write and read back megabytes.
pub(crate) fn file_list_path(build_dir: &Path, files_ref: &str) -> Option<PathBuf> {
    let is_hex = files_ref.len() == 64 && files_ref.bytes().all(|b| b.is_ascii_hexdigit());
    is_hex.then(|| {
        build_dir
            .join(FILE_LISTS_DIR)
            .join(format!("{files_ref}.json"))
    })
}

/// The file list of `f` (see [`Fingerprint::files`]) in build directory
/// `build_dir`: empty when it names none, `None` when it names a list that
/// cannot be read (pruned, or cut short), so that `--explain` never
/// reports every file of a lost list as added.
pub(crate) fn file_list(build_dir: &Path, f: &Fingerprint) -> Option<BTreeMap<String, String>> {
    let Some(files_ref) = f.files_ref.as_deref() else {
        return Some(f.files.clone());
    };
    let bytes = std::fs::read(file_list_path(build_dir, files_ref)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Record {
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{RECORD_FILE}.tmp"));
        // Compact: a monorepo COPY's record lists every file it selected,
        // and indenting them doubled the bytes written and read back.
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
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
            let record = read(&dir)?;
            Some((dir, record))
        })
        .collect();
    out.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    out
}

/// The most recent build of the same Dockerfile and target: the one its
/// `.latest` pointer names, or, when that is missing, unreadable or names
/// no matching record (pruned, an older rbk, a torn write), the newest
/// match among all records.
pub(crate) fn previous(logs: &Path, dockerfile_path: &str, target: Option<&str>) -> Option<Record> {
    let same = |r: &Record| r.dockerfile_path == dockerfile_path && r.target.as_deref() == target;
    let pointed = std::fs::read_to_string(latest_file(logs, dockerfile_path, target))
        .ok()
        .filter(|id| is_build_id(id))
        .and_then(|id| read(&logs.join(&id)).filter(|r| r.id == id && same(r)));
    pointed.or_else(|| all(logs).into_iter().rev().map(|(_, r)| r).find(same))
}

/// Points the `.latest` file of `record`'s Dockerfile and target at it,
/// unless it already names a later build (two builds ending at once).
/// Written to a temporary file and renamed, so a reader sees the old id or
/// the new one; what a crash may leave instead, [`previous`] passes over.
pub(crate) fn point_latest(logs: &Path, record: &Record) -> std::io::Result<()> {
    let file = latest_file(logs, &record.dockerfile_path, record.target.as_deref());
    if let Ok(current) = std::fs::read_to_string(&file) {
        if is_build_id(&current) && current > record.id {
            return Ok(());
        }
    }
    let dir = logs.join(LATEST_DIR);
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, record.id.as_bytes())?;
    tmp.persist(&file).map_err(|e| e.error)?;
    Ok(())
}

fn latest_file(logs: &Path, dockerfile_path: &str, target: Option<&str>) -> PathBuf {
    let mut key = dockerfile_path.as_bytes().to_vec();
    if let Some(target) = target {
        key.push(0);
        key.extend_from_slice(target.as_bytes());
    }
    let name = rbk_store::Digest::sha256_of(&key).hex();
    logs.join(LATEST_DIR).join(name)
}

/// Whether `id` can be a build's directory name (what a pointer holds):
/// never a path out of `logs`.
fn is_build_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The record in build directory `dir`, if it holds a readable one.
fn read(dir: &Path) -> Option<Record> {
    let bytes = std::fs::read(dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, dockerfile_path: &str, target: Option<&str>) -> Record {
        Record {
            id: id.to_string(),
            started: "2026-12-07T05:00:00Z".to_string(),
            duration: 0.5,
            dockerfile: "Dockerfile".to_string(),
            dockerfile_path: dockerfile_path.to_string(),
            target: target.map(String::from),
            build_args: BTreeMap::new(),
            result: "ok".to_string(),
            error: None,
            image: None,
            tags: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Saves `r` as a build does: its record, then the pointer.
    fn save(logs: &Path, r: &Record) {
        r.save(&logs.join(&r.id)).unwrap();
        point_latest(logs, r).unwrap();
    }

    fn previous_id(logs: &Path, path: &str, target: Option<&str>) -> Option<String> {
        previous(logs, path, target).map(|r| r.id)
    }

    #[test]
    fn previous_follows_the_pointer_of_each_dockerfile_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path();
        save(
            logs,
            &record("20261207T050000000001Z-1", "/a/Dockerfile", None),
        );
        save(
            logs,
            &record("20261207T050000000002Z-2", "/b/Dockerfile", None),
        );
        save(
            logs,
            &record("20261207T050000000003Z-3", "/a/Dockerfile", Some("t")),
        );
        save(
            logs,
            &record("20261207T050000000004Z-4", "/a/Dockerfile", None),
        );
        let id = |p, t| previous_id(logs, p, t);
        assert_eq!(
            id("/a/Dockerfile", None).unwrap(),
            "20261207T050000000004Z-4"
        );
        assert_eq!(
            id("/b/Dockerfile", None).unwrap(),
            "20261207T050000000002Z-2"
        );
        assert_eq!(
            id("/a/Dockerfile", Some("t")).unwrap(),
            "20261207T050000000003Z-3"
        );
        assert_eq!(id("/c/Dockerfile", None), None);
        // The pointers are no records: `all` lists the four builds only.
        assert_eq!(all(logs).len(), 4);
        // A pointer is not moved back by a build that ended later but
        // started earlier.
        point_latest(
            logs,
            &record("20261207T050000000000Z-9", "/a/Dockerfile", None),
        )
        .unwrap();
        assert_eq!(
            id("/a/Dockerfile", None).unwrap(),
            "20261207T050000000004Z-4"
        );
    }

    /// A record of an older rbk lists its files inline, and is read as
    /// before; a `files_ref` that is not a digest never names a path.
    #[test]
    fn file_lists_are_read_inline_or_beside_the_record_and_refs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let old: Fingerprint =
            serde_json::from_str(r#"{"kind":"file","stage":null,"slot":"s","line":2,"text":"COPY . /","env":[],"image":null,"files":{"a.txt":"sha256:00"}}"#)
                .unwrap();
        assert_eq!(file_list(dir.path(), &old).unwrap()["a.txt"], "sha256:00");
        let hex = "ab".repeat(32);
        let path = file_list_path(dir.path(), &hex).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"b.txt":"sha256:11"}"#).unwrap();
        let new = Fingerprint {
            files_ref: Some(hex),
            ..Default::default()
        };
        assert_eq!(file_list(dir.path(), &new).unwrap()["b.txt"], "sha256:11");
        std::fs::write(&path, r#"{"b.txt":"#).unwrap();
        assert_eq!(file_list(dir.path(), &new), None, "a list cut short");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file_list(dir.path(), &new), None, "a list pruned");
        let json = serde_json::to_string(&new).unwrap();
        assert!(
            !json.contains("\"files\""),
            "no inline list is written: {json}"
        );
        for bad in ["../../etc/passwd", "", &"g".repeat(64)] {
            assert!(file_list_path(dir.path(), bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_garbage_or_stale_pointer_falls_back_to_reading_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path();
        let older = record("20261207T050000000001Z-1", "/a/Dockerfile", None);
        let newer = record("20261207T050000000002Z-2", "/a/Dockerfile", None);
        save(logs, &older);
        save(logs, &newer);
        let other = record("20261207T050000000003Z-3", "/b/Dockerfile", None);
        save(logs, &other);
        let pointer = latest_file(logs, "/a/Dockerfile", None);
        let garbage: [&[u8]; 7] = [
            b"",
            b"\xff\xfe\x00garbage",
            b"../../../etc",
            b"20261207T050000000002Z-2\n",
            b".latest",
            // A build that was pruned, and a build of another Dockerfile.
            b"20261207T040000000000Z-7",
            b"20261207T050000000003Z-3",
        ];
        for bytes in garbage {
            std::fs::write(&pointer, bytes).unwrap();
            let found = previous_id(logs, "/a/Dockerfile", None);
            assert_eq!(found.as_deref(), Some(newer.id.as_str()), "{bytes:?}");
        }
        std::fs::remove_file(&pointer).unwrap();
        assert_eq!(previous_id(logs, "/a/Dockerfile", None).unwrap(), newer.id);
        // A good pointer is trusted: no record is read but the one it names.
        std::fs::write(&pointer, older.id.as_bytes()).unwrap();
        assert_eq!(previous_id(logs, "/a/Dockerfile", None).unwrap(), older.id);
        // A pointer to a record whose file is torn.
        std::fs::write(logs.join(&older.id).join(RECORD_FILE), b"{\"id\":").unwrap();
        std::fs::write(&pointer, older.id.as_bytes()).unwrap();
        assert_eq!(previous_id(logs, "/a/Dockerfile", None).unwrap(), newer.id);
    }
}
