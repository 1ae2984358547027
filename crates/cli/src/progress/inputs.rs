//! Each plan vertex's inputs in the user's terms ([`Fingerprint`]), for the
//! build record and `--explain`. The context files a COPY selects are read
//! through the executor's context index after the build, when its stat
//! cache makes the scan a walk of `stat` calls.

use std::collections::BTreeMap;
use std::path::Path;

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
                        .find_image(reference)
                        .ok()
                        .map(|found| found.image.id().to_string());
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
fn context_index(sources: &Sources<'_>) -> Option<ContextIndex> {
    let filter = Ignore(Dockerignore::from_patterns(sources.excludes).ok()?);
    let cache = StatCache::load(sources.store, sources.context);
    ContextIndex::scan_lazy(sources.context, &filter, Some(&cache)).ok()
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
