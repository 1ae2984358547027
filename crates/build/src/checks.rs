//! Build checks at the engine level: the parser's rules over the planned
//! Dockerfile, filtered by its `# check=` configuration, plus what needs the
//! context directory (`LargeContextSentForSmallCopy`).

use std::path::Path;

use rbk_parser::checks::{context_advice, ContextUse, Finding, Origin};
use rbk_parser::instructions::{CopySource, Instruction};
use rbk_parser::Dockerignore;

/// What the checks found for one Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// The findings `# check=` leaves, in line order (BuildKit's and rbk's).
    pub findings: Vec<Finding>,
    /// Problems with the check configuration itself (unknown rule names).
    pub notes: Vec<String>,
    /// Under `# check=error=true`, BuildKit's error for the findings.
    pub violation: Option<String>,
}

impl CheckReport {
    /// The findings a normal build shows: BuildKit's rules only (rbk's
    /// advice is for `--check` and `rbk analyze`).
    pub fn buildkit(&self) -> Vec<Finding> {
        self.findings
            .iter()
            .filter(|f| f.rule.origin == Origin::BuildKit)
            .cloned()
            .collect()
    }
}

/// `LargeContextSentForSmallCopy` for `context` with `excludes` applied, and
/// the COPY/ADD sources of `stages` (instructions as written).
pub(crate) fn context_finding(
    context: &Path,
    excludes: &[String],
    commands: &[&Instruction],
) -> Option<Finding> {
    let ignore = Dockerignore::from_patterns(excludes).ok()?;
    let mut sources: Vec<String> = Vec::new();
    for ins in commands {
        let (Instruction::Copy(c) | Instruction::Add(c)) = ins else {
            continue;
        };
        if c.from.is_some() {
            continue;
        }
        for s in &c.sources {
            if let CopySource::Path(p) = s {
                sources.push(p.clone());
            }
        }
    }
    // A source that is the whole context, or that we cannot read statically, uses everything.
    if sources
        .iter()
        .any(|s| s.contains('$') || matches!(s.trim_end_matches('/'), "." | "" | "./*" | "*"))
    {
        return None;
    }
    let used_by = Dockerignore::from_patterns(&sources).ok()?;
    let mut usage = ContextUse::default();
    walk(context, "", &ignore, &used_by, &mut usage);
    context_advice(usage)
}

fn walk(
    dir: &Path,
    rel: &str,
    ignore: &Dockerignore,
    used_by: &Dockerignore,
    usage: &mut ContextUse,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let Ok(meta) = entry.metadata() else { continue };
        let excluded = ignore.is_excluded(&path);
        if meta.is_dir() {
            if !excluded || ignore.may_reinclude_under(&path) {
                walk(&entry.path(), &path, ignore, used_by, usage);
            }
            continue;
        }
        if excluded {
            continue;
        }
        usage.sent += meta.len();
        usage.files += 1;
        // The COPY sources as patterns: a path "matches" when it or a parent does.
        if used_by.is_excluded(&path) {
            usage.used += meta.len();
        }
    }
}
