//! Each plan vertex's inputs in the user's terms ([`Fingerprint`]), for the
//! build record and `--explain`. The context files a COPY selects are read
//! from the context index the build itself scanned; only when the build
//! never scanned the context (it failed first) is the context walked here,
//! after the build, when the stat cache makes the walk a run of `stat`
//! calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rbk_exec::{ContextIndex, PathFilter, StatCache};
use rbk_graph::{Dag, FileAction, Op, SourceOp};
use rbk_parser::Dockerignore;

use super::explain::Files;
use super::record::{self, slot, Fingerprint, Record};

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
                        f.files_ref = files_ref(dag, v.inputs(), &op.actions, index);
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
    ContextIndex::scan_loading_cache(sources.context, &filter, || {
        StatCache::load(sources.store, sources.context)
    })
    .ok()
    .map(|(index, _)| Arc::new(index))
}

/// The copies of a file op that read the context.
fn context_copies<'a>(
    dag: &'a Dag,
    inputs: &'a [usize],
    actions: &'a [FileAction],
) -> impl Iterator<Item = &'a rbk_graph::CopyAction> + 'a {
    actions.iter().filter_map(move |action| {
        let FileAction::Copy(copy) = action else {
            return None;
        };
        let input = inputs.get(copy.from as usize)?;
        let from_context = matches!(
            dag.vertex(*input).op(),
            Op::Source(SourceOp::Local { name, .. }) if name == "context"
        );
        from_context.then_some(copy)
    })
}

/// The name of the list of context entries the file op's copies select
/// (see [`record::file_list_path`]): a digest of the selections, so an
/// unchanged selection keeps its name without the list being built.
fn files_ref(
    dag: &Dag,
    inputs: &[usize],
    actions: &[FileAction],
    index: &ContextIndex,
) -> Option<String> {
    let mut h = rbk_store::Sha256Writer::new();
    h.update(b"rbk-file-list-v1\0");
    let mut any = false;
    for copy in context_copies(dag, inputs, actions) {
        any = true;
        h.update(copy.src.as_bytes());
        h.update(&[
            0,
            u8::from(copy.allow_wildcard),
            u8::from(copy.follow_symlinks),
        ]);
        // A missing source selects nothing, which its own mark tells apart.
        match index.selection_digest(&copy.src, copy.allow_wildcard, copy.follow_symlinks) {
            Ok(d) => h.update(d.as_bytes()),
            Err(_) => h.update(b"unreadable"),
        }
    }
    any.then(|| h.finish().hex().to_string())
}

/// Each context entry the file op's copies select, with its digest.
fn copied_files(
    dag: &Dag,
    inputs: &[usize],
    actions: &[FileAction],
    index: &ContextIndex,
) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for copy in context_copies(dag, inputs, actions) {
        let selected = index.selected_entries(&copy.src, copy.allow_wildcard, copy.follow_symlinks);
        for (path, digest) in selected.unwrap_or_default() {
            files.insert(path, digest.to_string());
        }
    }
    files
}

/// Makes `build_dir` hold the file list of every fingerprint that names
/// one: hard-linked from the previous build's directory when it has it (an
/// unchanged selection), else listed from the context and written. Returns
/// the lists it wrote, by name, for `--explain` to compare without reading
/// them back.
pub(crate) fn write_file_lists(
    dag: &Dag,
    sources: &Sources<'_>,
    prints: &[Fingerprint],
    build_dir: &Path,
    previous_dir: Option<&Path>,
) -> std::io::Result<HashMap<String, Arc<Files>>> {
    let mut written = HashMap::new();
    let mut index = None;
    for (v, f) in dag.vertices().iter().zip(prints) {
        let (Op::File(op), Some(files_ref)) = (v.op(), &f.files_ref) else {
            continue;
        };
        let Some(path) = record::file_list_path(build_dir, files_ref) else {
            continue;
        };
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap_or(build_dir))?;
        let earlier = previous_dir.and_then(|d| record::file_list_path(d, files_ref));
        if earlier.is_some_and(|e| std::fs::hard_link(e, &path).is_ok()) {
            continue;
        }
        let index = match &mut index {
            Some(index) => index,
            None => index.insert(context_index(sources)),
        };
        let Some(index) = index else {
            continue;
        };
        let files = copied_files(dag, v.inputs(), &op.actions, index);
        let tmp = path.with_extension("json.tmp");
        // Streamed: the list of a monorepo COPY is megabytes of JSON.
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer(&mut out, &files).map_err(std::io::Error::other)?;
        std::io::Write::flush(&mut out)?;
        drop(out);
        std::fs::rename(&tmp, &path)?;
        written.insert(files_ref.clone(), Arc::new(files));
    }
    Ok(written)
}

/// The file lists of `previous` (kept in `previous_dir`) that no
/// fingerprint of this build names: the selections that changed, which
/// `--explain` compares. Read while this build's lists are written.
pub(crate) fn changed_lists(
    previous: &Record,
    previous_dir: &Path,
    prints: &[Fingerprint],
) -> HashMap<String, Arc<Files>> {
    let now: HashSet<&str> = prints
        .iter()
        .filter_map(|f| f.files_ref.as_deref())
        .collect();
    previous
        .steps
        .iter()
        .filter_map(|step| step.inputs_of.as_ref())
        .filter_map(|f| {
            let name = f.files_ref.as_deref().filter(|r| !now.contains(r))?;
            let files = record::file_list(previous_dir, f)?;
            Some((name.to_string(), Arc::new(files)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The plan of a Dockerfile `text` over context `ctx`.
    fn plan(ctx: &Path, text: &str) -> (rbk_build::Dockerfile, rbk_build::Planned) {
        let dockerfile = rbk_build::Dockerfile {
            name: "Dockerfile".into(),
            path: None,
            text: text.into(),
        };
        let planned = rbk_build::plan(
            rbk_build::PlanOptions {
                dockerfile: &dockerfile,
                context: ctx,
                lower: Default::default(),
                no_cache_stages: &[],
            },
            None,
        )
        .unwrap();
        (dockerfile, planned)
    }

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
        let (dockerfile, planned) = plan(
            &ctx,
            "FROM scratch\nCOPY src/ /src/\nCOPY *.txt /t/\nCOPY . /all/\n",
        );
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
        let build_dir = dir.path().join("build");
        write_file_lists(&planned.dag, &sources, &walked, &build_dir, None).unwrap();
        let files: Vec<String> = walked
            .iter()
            .flat_map(|f| record::file_list(&build_dir, f).unwrap().into_keys())
            .collect();
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

    /// A build whose selection is unchanged links the previous build's
    /// list instead of listing the context again; an edited file gives the
    /// COPY a new list, which names the new content.
    #[test]
    fn an_unchanged_selection_shares_its_list_and_an_edit_makes_a_new_one() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("src")).unwrap();
        fs::write(ctx.join("src/a.txt"), "a\n").unwrap();
        fs::write(ctx.join("other.txt"), "o\n").unwrap();
        let store = rbk_store::Store::open(&dir.path().join("root")).unwrap();
        let build = |n: usize, previous: Option<&Path>| {
            let (dockerfile, planned) =
                plan(&ctx, "FROM scratch\nCOPY src /src\nCOPY other.txt /o\n");
            let sources = Sources {
                dockerfile_text: &dockerfile.text,
                store: &store,
                context: &ctx,
                excludes: &[],
                scanned: None,
            };
            let prints = fingerprints(&planned.dag, &sources);
            let build_dir = dir.path().join(format!("b{n}"));
            write_file_lists(&planned.dag, &sources, &prints, &build_dir, previous).unwrap();
            let lists: Vec<_> = prints
                .into_iter()
                .filter_map(|f| {
                    let path = record::file_list_path(&build_dir, f.files_ref.as_deref()?)?;
                    let ino = fs::metadata(&path).unwrap().ino();
                    Some((record::file_list(&build_dir, &f).unwrap(), ino))
                })
                .collect();
            (build_dir, lists)
        };
        let (first_dir, first) = build(1, None);
        assert_eq!(first.len(), 2, "one list per COPY from the context");
        let (second_dir, second) = build(2, Some(&first_dir));
        assert_eq!(
            first, second,
            "unchanged: the same lists, linked (same inodes)"
        );
        fs::write(ctx.join("src/a.txt"), "edited\n").unwrap();
        let (_, third) = build(3, Some(&second_dir));
        assert_ne!(third[0], second[0], "the edited COPY has a new list");
        assert_ne!(third[0].0["src/a.txt"], second[0].0["src/a.txt"]);
        assert_eq!(third[1], second[1], "the other COPY still shares its list");
    }
}
