//! Each plan vertex's inputs in the user's terms ([`Fingerprint`]), for the
//! build record and `--explain`. The context files a COPY selects are read
//! from the context index the build itself scanned; only when the build
//! never scanned the context (it failed first) is the context walked here,
//! after the build, when the stat cache makes the walk a run of `stat`
//! calls.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rbk_exec::{ContextIndex, PathFilter, StatCache};
use rbk_graph::{Dag, FileAction, Op, SourceOp};
use rbk_parser::Dockerignore;

use super::record::{slot, Fingerprint};

/// What a fingerprint needs besides the plan.
pub(crate) struct Sources<'a> {
    pub(crate) dockerfile_text: &'a str,
    pub(crate) store: &'a rbk_store::Store,
    pub(crate) context: &'a Path,
    /// `.dockerignore` patterns.
    pub(crate) excludes: &'a [String],
    /// The context as the build scanned it, when it did (with these
    /// `excludes`).
    pub(crate) scanned: Option<Arc<ContextIndex>>,
}

struct Ignore(Dockerignore);

impl PathFilter for Ignore {
    fn is_excluded(&self, path: &str) -> bool {
        self.0.is_excluded(path)
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        self.0.may_reinclude_under(dir)
    }
}

/// One fingerprint per dag index.
pub(crate) fn fingerprints(dag: &Dag, sources: &Sources<'_>) -> Vec<Fingerprint> {
    let lines: Vec<&str> = sources.dockerfile_text.lines().collect();
    // Only a plan that reads the context pays for the walk.
    let reads_context = dag
        .vertices()
        .iter()
        .any(|v| matches!(v.op(), Op::Source(SourceOp::Local { name, .. }) if name == "context"));
    let index = reads_context.then(|| context_index(sources)).flatten();
    dag.vertices()
        .iter()
        .map(|v| {
            let meta = v.meta();
            let text = meta.span.as_ref().map_or_else(String::new, |span| {
                let from = (span.start_line as usize).saturating_sub(1);
                let to = (span.end_line as usize).min(lines.len());
                lines
                    .get(from..to)
                    .map(|l| l.join("\n"))
                    .unwrap_or_default()
            });
            let mut f = Fingerprint {
                kind: v.op().kind().to_string(),
                stage: meta.stage.clone(),
                slot: slot(v.label()),
                line: meta.span.as_ref().map(|s| s.start_line),
                text,
                ..Default::default()
            };
            match v.op() {
                Op::Exec(op) => f.env = op.env.to_vec(),
                Op::Source(SourceOp::Image { reference, .. }) => {
                    let resolved = sources
                        .store
                        .resolve_image(reference)
                        .ok()
                        .map(|(_, image)| image.id().to_string());
                    f.image = Some((reference.clone(), resolved));
                }
                Op::File(op) => {
                    if let Some(index) = &index {
                        f.files = copied_files(dag, v.inputs(), &op.actions, index);
                    }
                }
                _ => {}
            }
            f
        })
        .collect()
}

/// The context as the build saw it (its `.dockerignore` applied).
fn context_index(sources: &Sources<'_>) -> Option<Arc<ContextIndex>> {
    if let Some(index) = &sources.scanned {
        return Some(Arc::clone(index));
    }
    let filter = Ignore(Dockerignore::from_patterns(sources.excludes).ok()?);
    let cache = StatCache::load(sources.store, sources.context);
    ContextIndex::scan_lazy(sources.context, &filter, Some(&cache))
        .ok()
        .map(Arc::new)
}

/// Each context entry the file op's copies select, with its digest.
fn copied_files(
    dag: &Dag,
    inputs: &[usize],
    actions: &[FileAction],
    index: &ContextIndex,
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for action in actions {
        let FileAction::Copy(copy) = action else {
            continue;
        };
        let Some(input) = inputs.get(copy.from as usize) else {
            continue;
        };
        let from_context = matches!(
            dag.vertex(*input).op(),
            Op::Source(SourceOp::Local { name, .. }) if name == "context"
        );
        if !from_context {
            continue;
        }
        let selected = index.selected_entries(&copy.src, copy.allow_wildcard, copy.follow_symlinks);
        for (path, digest) in selected.unwrap_or_default() {
            files.insert(path, digest.to_string());
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The build record's files from the build's own scan are what a second
    /// walk after the build gave (the record and `--explain` unchanged).
    #[test]
    fn fingerprints_from_the_builds_scan_equal_a_second_walk() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        for (path, text) in [
            ("src/main.rs", "fn main() {}\n"),
            ("src/lib/a.rs", "a\n"),
            ("src/lib/b.rs", "b\n"),
            ("src/target/out.o", "o\n"),
            ("src/target/keep.txt", "k\n"),
            ("notes.txt", "n\n"),
            ("big.log", "l\n"),
        ] {
            let path = ctx.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let excludes: Vec<String> = ["**/target", "!src/target/keep.txt", "*.log"]
            .map(String::from)
            .into();
        let dockerfile = rbk_build::Dockerfile {
            name: "Dockerfile".into(),
            path: None,
            text: "FROM scratch\nCOPY src/ /src/\nCOPY *.txt /t/\nCOPY . /all/\n".into(),
        };
        let planned = rbk_build::plan(
            rbk_build::PlanOptions {
                dockerfile: &dockerfile,
                context: &ctx,
                lower: Default::default(),
                no_cache_stages: &[],
            },
            None,
        )
        .unwrap();
        let store = rbk_store::Store::open(&dir.path().join("root")).unwrap();
        let mut sources = Sources {
            dockerfile_text: &dockerfile.text,
            store: &store,
            context: &ctx,
            excludes: &excludes,
            scanned: None,
        };
        let walked = fingerprints(&planned.dag, &sources);
        let filter = Ignore(Dockerignore::from_patterns(&excludes).unwrap());
        let scanned = ContextIndex::scan_lazy(&ctx, &filter, None).unwrap();
        // What the build's COPY hashed: the whole visible context.
        scanned.digest().unwrap();
        sources.scanned = Some(Arc::new(scanned));
        let reused = fingerprints(&planned.dag, &sources);
        let files: Vec<_> = walked.iter().flat_map(|f| f.files.keys()).collect();
        assert!(
            files.iter().any(|f| *f == "src/target/keep.txt"),
            "{files:?}"
        );
        assert!(!files
            .iter()
            .any(|f| f.ends_with(".o") || f.ends_with(".log")));
        assert!(files.iter().any(|f| *f == "notes.txt"), "{files:?}");
        assert_eq!(walked, reused);
    }
}
