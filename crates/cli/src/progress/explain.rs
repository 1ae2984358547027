//! `--explain`: why a step missed the cache, as the first input that differs
//! from the most recent build of the same Dockerfile and target, in the
//! user's terms (BuildKit cannot say: buildkit#2567). The inputs are
//! compared in the order a user reads a step: its own text, the build args
//! and environment it runs with, the base image, the context files it
//! copies, and last its parents.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::record::{Fingerprint, Record, Step};

/// The context files a COPY selected: path to digest.
pub(crate) type Files = BTreeMap<String, String>;

/// The file list of a COPY's fingerprint in a record (kept beside it);
/// `None` when it is lost, and then the files are not compared.
pub(crate) type FileList<'a> = dyn Fn(&Record, &Fingerprint) -> Option<Arc<Files>> + 'a;

/// The reason of each step of `current` that ran although it could have
/// come from the cache, by step position. `file_list` reads the list of
/// context files a COPY selected, only for steps that ran.
pub(crate) fn reasons(
    current: &Record,
    previous: Option<&Record>,
    file_list: &FileList<'_>,
) -> BTreeMap<usize, String> {
    let by_digest: HashMap<&str, &Step> = current
        .steps
        .iter()
        .map(|s| (s.digest.as_str(), s))
        .collect();
    let mut out = BTreeMap::new();
    for (i, step) in current.steps.iter().enumerate() {
        let Some(f) = &step.inputs_of else { continue };
        if step.cached || step.start.is_none() || step.canceled {
            continue;
        }
        let reason = match previous {
            None => match f.kind.as_str() {
                "exec" | "file" | "merge" => {
                    Some("no earlier build of this Dockerfile and target".to_string())
                }
                _ => None,
            },
            Some(prev) => explain(step, f, current, prev, &by_digest, file_list),
        };
        if let Some(reason) = reason {
            out.insert(i, reason);
        }
    }
    out
}

fn explain(
    step: &Step,
    f: &Fingerprint,
    current: &Record,
    prev: &Record,
    by_digest: &HashMap<&str, &Step>,
    file_list: &FileList<'_>,
) -> Option<String> {
    if f.kind == "source" {
        // A FROM that ran: only worth a word when it resolved elsewhere.
        return image_changed(step, f, prev);
    }
    if !matches!(f.kind.as_str(), "exec" | "file" | "merge") {
        return None;
    }
    let Some((old, old_f)) = counterpart(step, f, prev) else {
        return Some("no earlier build of this Dockerfile ran this step".to_string());
    };
    if normalized(&f.text) != normalized(&old_f.text) {
        return Some(match f.line {
            Some(line) => format!("instruction text changed (line {line})"),
            None => "instruction text changed".to_string(),
        });
    }
    if let Some(reason) = env_changed(&f.env, &old_f.env, current, prev) {
        return Some(reason);
    }
    let parents: Vec<&Step> = step
        .inputs
        .iter()
        .filter_map(|d| by_digest.get(d.as_str()).copied())
        .collect();
    for parent in &parents {
        if let Some(pf) = &parent.inputs_of {
            if let Some(reason) = image_changed(parent, pf, prev) {
                return Some(reason);
            }
        }
    }
    // Equal names are equal lists; only a changed selection is read.
    let same_list = f.files_ref.is_some() && f.files_ref == old_f.files_ref;
    if !same_list {
        let lists = file_list(current, f).zip(file_list(prev, old_f));
        if let Some(reason) = lists.and_then(|(now, before)| files_changed(&now, &before)) {
            return Some(reason);
        }
    }
    for parent in &parents {
        let ran = !parent.cached && parent.start.is_some();
        let is_step = parent
            .inputs_of
            .as_ref()
            .is_some_and(|pf| pf.kind != "source");
        if ran && is_step {
            return Some(format!(
                "parent step re-ran (#{} {})",
                parent.number, parent.name
            ));
        }
    }
    Some(match old.digest == step.digest {
        true => "no cache record for this step (pruned since, or never stored)".to_string(),
        false => "the step's definition changed".to_string(),
    })
}

/// The same step in the previous build: the same vertex digest, else the
/// same kind at the same place (`stage n`).
fn counterpart<'a>(
    step: &Step,
    f: &Fingerprint,
    prev: &'a Record,
) -> Option<(&'a Step, &'a Fingerprint)> {
    let with = |s: &'a Step| s.inputs_of.as_ref().map(|pf| (s, pf));
    prev.steps
        .iter()
        .find(|s| s.digest == step.digest)
        .and_then(with)
        .or_else(|| {
            prev.steps
                .iter()
                .filter_map(with)
                .find(|(_, pf)| pf.slot == f.slot && pf.kind == f.kind)
        })
}

fn image_changed(step: &Step, f: &Fingerprint, prev: &Record) -> Option<String> {
    let (reference, now) = f.image.as_ref()?;
    let before = prev
        .steps
        .iter()
        .find(|s| s.digest == step.digest)
        .and_then(|s| s.inputs_of.as_ref())
        .and_then(|pf| pf.image.as_ref())
        .map(|(_, resolved)| resolved.clone())?;
    if before == *now {
        return None;
    }
    let short = |r: &str| {
        r.strip_prefix("docker.io/library/")
            .unwrap_or(r)
            .to_string()
    };
    Some(format!(
        "base image {} now resolves to {}",
        short(reference),
        now.as_deref().unwrap_or("nothing in the store")
    ))
}

fn env_changed(
    now: &[String],
    before: &[String],
    current: &Record,
    prev: &Record,
) -> Option<String> {
    let split = |env: &[String]| -> BTreeMap<String, String> {
        env.iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect()
    };
    let (now, before) = (split(now), split(before));
    let keys: Vec<&String> = now.keys().chain(before.keys()).collect();
    let key = keys.into_iter().find(|k| now.get(*k) != before.get(*k))?;
    let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(unset)".to_string());
    let what = match current.build_args.contains_key(key) || prev.build_args.contains_key(key) {
        true => "build arg",
        false => "variable",
    };
    Some(format!(
        "{what} {key} changed: {} → {}",
        show(before.get(key)),
        show(now.get(key))
    ))
}

fn files_changed(now: &Files, before: &Files) -> Option<String> {
    // Both lists are sorted: the first path that differs is where a walk
    // of the two side by side first finds them apart.
    let (mut now, mut before) = (now.iter().peekable(), before.iter().peekable());
    let (path, how) = loop {
        match (now.peek(), before.peek()) {
            (None, None) => return None,
            (Some((path, _)), None) => break (*path, "added"),
            (None, Some((path, _))) => break (*path, "removed"),
            (Some((path, digest)), Some((old_path, old_digest))) => match path.cmp(old_path) {
                Ordering::Less => break (*path, "added"),
                Ordering::Greater => break (*old_path, "removed"),
                Ordering::Equal if digest != old_digest => break (*path, "content"),
                Ordering::Equal => {
                    now.next();
                    before.next();
                }
            },
        }
    };
    let shown = if path.is_empty() { "." } else { path.as_str() };
    Some(format!("context file {shown} changed ({how})"))
}

/// Text compared without trailing blanks.
fn normalized(text: &str) -> Vec<&str> {
    text.lines().map(str::trim_end).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_step(digest: &str, files_ref: &str) -> Step {
        Step {
            number: 2,
            digest: digest.to_string(),
            name: "COPY . /app".to_string(),
            start: Some(0.1),
            end: Some(0.2),
            inputs_of: Some(Fingerprint {
                kind: "file".to_string(),
                slot: "stage 1".to_string(),
                line: Some(2),
                text: "COPY . /app".to_string(),
                files_ref: Some(files_ref.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn build(id: &str, steps: Vec<Step>) -> Record {
        Record {
            id: id.to_string(),
            started: "2026-12-07T05:00:00Z".to_string(),
            duration: 0.5,
            dockerfile: "Dockerfile".to_string(),
            dockerfile_path: "/a/Dockerfile".to_string(),
            target: None,
            build_args: BTreeMap::new(),
            result: "ok".to_string(),
            error: None,
            image: None,
            tags: Vec::new(),
            steps,
        }
    }

    /// A changed selection names the file that differs; when the earlier
    /// build's list is lost, its files are not compared (every file would
    /// read as added) and the reason comes from what is left.
    #[test]
    fn a_lost_file_list_is_not_read_as_every_file_added() {
        let previous = build("1", vec![copy_step("sha256:old", "aa")]);
        let current = build("2", vec![copy_step("sha256:new", "bb")]);
        let lists = |lost: bool| {
            move |r: &Record, _: &Fingerprint| -> Option<Arc<Files>> {
                let mut files = BTreeMap::from([("a.txt".to_string(), "sha256:1".to_string())]);
                match r.id.as_str() {
                    "1" if lost => None,
                    "1" => Some(Arc::new(files)),
                    _ => {
                        files.insert("b.txt".to_string(), "sha256:2".to_string());
                        Some(Arc::new(files))
                    }
                }
            }
        };
        let found = reasons(&current, Some(&previous), &lists(false));
        assert_eq!(found[&0], "context file b.txt changed (added)");
        let lost = reasons(&current, Some(&previous), &lists(true));
        assert_eq!(lost[&0], "the step's definition changed");
    }

    /// The first path that differs in the two sorted lists, and how.
    #[test]
    fn the_first_differing_file_is_named() {
        let list = |entries: &[(&str, &str)]| -> Files {
            entries
                .iter()
                .map(|(p, d)| (p.to_string(), d.to_string()))
                .collect()
        };
        type Entries<'a> = &'a [(&'a str, &'a str)];
        let base = list(&[("a", "1"), ("c", "3"), ("e", "5")]);
        let cases: [(Entries<'_>, Option<&str>); 6] = [
            (&[("a", "1"), ("c", "3"), ("e", "5")], None),
            (
                &[("a", "1"), ("b", "2"), ("c", "3"), ("e", "5")],
                Some("b changed (added)"),
            ),
            (&[("a", "1"), ("e", "5")], Some("c changed (removed)")),
            (
                &[("a", "1"), ("c", "9"), ("e", "5")],
                Some("c changed (content)"),
            ),
            (
                &[("a", "1"), ("c", "3"), ("e", "5"), ("f", "6")],
                Some("f changed (added)"),
            ),
            (
                &[("", "0"), ("a", "1"), ("c", "3")],
                Some(". changed (added)"),
            ),
        ];
        for (now, want) in cases {
            let got = files_changed(&list(now), &base);
            let want = want.map(|w| format!("context file {w}"));
            assert_eq!(got, want, "{now:?}");
        }
        assert_eq!(
            files_changed(&base, &list(&[("a", "1"), ("c", "3")])),
            Some("context file e changed (added)".to_string())
        );
    }
}
