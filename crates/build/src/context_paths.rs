//! The parts of the build context a graph reads, so that the build walks
//! and hashes only those: BuildKit's Dockerfile frontend passes the same
//! set to the context's transfer (`FollowPaths`). A COPY of three subtrees
//! of a monorepo then never walks the rest of it (issue 19).
//!
//! The set only narrows what the build *looks at*: COPY keys are digests
//! of what each COPY selects, so they are the same with or without it.

use std::path::Path;

use rbk_graph::{Dag, FileAction, MountKind, Op, SourceOp};

/// The context paths the steps of `dag` read: the sources of COPY and ADD
/// and of `RUN --mount` from the context, each cut before its first
/// component with a wildcard. Empty when something reads the whole
/// context (`COPY . /`, a wildcard in the first component, a bind mount
/// of the root) or reads it in a way not listed here.
pub(crate) fn context_paths(dag: &Dag) -> Vec<String> {
    let is_context = |i: usize| matches!(dag.vertex(i).op(), Op::Source(SourceOp::Local { name, .. }) if name == "context");
    let mut paths = Vec::new();
    for v in dag.vertices() {
        for (slot, _) in v
            .inputs()
            .iter()
            .enumerate()
            .filter(|(_, i)| is_context(**i))
        {
            let slot = slot as u32;
            let read: Option<Vec<&str>> = match v.op() {
                Op::File(op) if op.base != Some(slot) => Some(
                    op.actions
                        .iter()
                        .filter_map(|a| match a {
                            FileAction::Copy(c) if c.from == slot => Some(c.src.as_str()),
                            _ => None,
                        })
                        .collect(),
                ),
                // Input 0 is the root filesystem: a mount is all a RUN
                // may read the context through.
                Op::Exec(op) if slot != 0 => Some(
                    op.mounts
                        .iter()
                        .filter_map(|m| match &m.kind {
                            MountKind::Bind {
                                input: Some(i),
                                source,
                                ..
                            }
                            | MountKind::Cache {
                                input: Some(i),
                                source,
                                ..
                            } if *i == slot => Some(source.as_str()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => None,
            };
            // An input the op holds but no action or mount names is read
            // in a way this does not know: all of the context, then.
            match read {
                Some(read) if !read.is_empty() => paths.extend(read.into_iter().map(cut)),
                _ => return Vec::new(),
            }
        }
    }
    if paths.iter().any(String::is_empty) {
        return Vec::new();
    }
    paths
}

/// `path` relative to the context root, without `.` and `..` components
/// (`..` stops at the root, as the copy resolves it), up to its first
/// component with a wildcard.
fn cut(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ if part.contains(['*', '?', '[', '\\']) => break,
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// `paths` unless one of them goes through a symlink in `context` (or is
/// one): a COPY follows such a link to wherever it points, which the paths
/// do not name, so the whole context is read instead.
pub(crate) fn without_symlinks(context: &Path, paths: Vec<String>) -> Vec<String> {
    let through_link = |p: &String| {
        let mut at = context.to_path_buf();
        p.split('/').any(|part| {
            at.push(part);
            std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
        })
    };
    match paths.iter().any(through_link) {
        true => Vec::new(),
        false => paths,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The context paths of Dockerfile `text`'s pruned graph.
    fn paths_of(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let dockerfile = crate::Dockerfile {
            name: "Dockerfile".into(),
            path: None,
            text: text.into(),
        };
        let options = crate::PlanOptions {
            dockerfile: &dockerfile,
            context: dir.path(),
            lower: Default::default(),
            no_cache_stages: &[],
        };
        let mut paths = context_paths(&crate::plan(options, None).unwrap().dag);
        paths.sort();
        paths
    }

    #[test]
    fn copies_adds_and_mounts_of_the_target_name_their_sources() {
        let text = "FROM scratch AS other\n\
                    COPY unused /u\n\
                    FROM scratch AS base\n\
                    COPY services/svc1 /svc1\n\
                    ADD ./vendor/lib.tar /lib/\n\
                    COPY src/*.rs /src/\n\
                    COPY --from=other /u /u\n\
                    FROM base\n\
                    RUN --mount=type=bind,source=tools/x,target=/x true\n\
                    COPY <<EOF /note\nhello\nEOF\n";
        // `other` is built (COPY --from), so its COPY reads `unused`.
        assert_eq!(
            paths_of(text),
            [
                "services/svc1",
                "src",
                "tools/x",
                "unused",
                "vendor/lib.tar"
            ]
        );
        let pruned = "FROM scratch AS other\nCOPY unused /u\nFROM scratch\nCOPY a/b /b\n";
        assert_eq!(paths_of(pruned), ["a/b"]);
    }

    #[test]
    fn anything_that_reads_the_root_reads_the_whole_context() {
        for text in [
            "FROM scratch\nCOPY a /a\nCOPY . /all\n",
            "FROM scratch\nCOPY a /a\nCOPY *.json /\n",
            "FROM scratch\nCOPY a/.. /x\n",
            "FROM busybox\nCOPY a /a\nRUN --mount=type=bind,target=/ctx true\n",
        ] {
            assert_eq!(paths_of(text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn paths_are_cleaned_and_cut_at_the_first_wildcard() {
        assert_eq!(cut("./a/b/"), "a/b");
        assert_eq!(cut("/a/./b"), "a/b");
        assert_eq!(cut("../../a/x/../b"), "a/b");
        assert_eq!(cut("src/*.rs"), "src");
        assert_eq!(cut("src/[ab]/x"), "src");
        assert_eq!(cut("*.json"), "");
        assert_eq!(cut("."), "");
        assert_eq!(cut("x/./y"), "x/y");
    }

    #[test]
    fn a_path_through_a_symlink_means_the_whole_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let plain = vec!["real/sub".to_string(), "missing/x".to_string()];
        assert_eq!(without_symlinks(dir.path(), plain.clone()), plain);
        let linked = vec!["real/sub".to_string(), "link/sub".to_string()];
        assert!(without_symlinks(dir.path(), linked).is_empty());
        assert!(without_symlinks(dir.path(), vec!["link".into()]).is_empty());
    }
}
