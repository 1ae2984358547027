//! File ops against real directories: Docker's COPY/ADD rules, metadata,
//! and hostile sources and destinations. Needs root (chown, mknod,
//! `security.*` xattrs); a test that needs it fails loudly without it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use rbk_exec::{apply_file_actions, CopySource, Error, IncludeAll, PathFilter};
use rbk_graph::op::{CopyAction, FileAction, Owner};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (chown, mknod, xattrs); run it as root"
    );
}

/// Builds a tree from lines: `dir/`, `file=contents`, `link->target`.
fn build(root: &Path, spec: &[&str]) {
    for line in spec {
        if let Some((path, target)) = line.split_once("->") {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            symlink(target, path).unwrap();
        } else if let Some(dir) = line.strip_suffix('/') {
            fs::create_dir_all(root.join(dir)).unwrap();
        } else {
            let (path, contents) = line.split_once('=').unwrap();
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
    }
}

/// The tree at `root` in `build`'s notation, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(entry.path()).unwrap();
            out.push(format!("{name}->{}", target.display()));
        } else if meta.is_dir() {
            out.push(format!("{name}/"));
            walk(&entry.path(), &format!("{name}/"), out);
        } else if meta.is_file() {
            let contents = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push(format!("{name}={contents}"));
        } else {
            out.push(format!("{name}?"));
        }
    }
}

/// A COPY as the Dockerfile frontend lowers it.
fn cp(src: &str, dest: &str) -> CopyAction {
    CopyAction {
        from: 0,
        src: src.into(),
        dest: dest.into(),
        owner: None,
        mode: None,
        follow_symlinks: true,
        dir_contents_only: true,
        allow_wildcard: true,
        allow_empty_wildcard: false,
        create_dest_path: true,
        auto_extract: false,
        parents: false,
        exclude: Vec::new(),
    }
}

fn with(mut action: CopyAction, edit: impl FnOnce(&mut CopyAction)) -> CopyAction {
    edit(&mut action);
    action
}

/// Runs `actions` with `ctx` as input 0 (the local context, `filter`).
fn run_with(ctx: &Path, dest: &Path, filter: &dyn PathFilter, actions: &[FileAction]) -> Result<(), Error> {
    let inputs = [CopySource {
        root: ctx,
        filter,
        reset_owner: true,
    }];
    apply_file_actions(dest, &inputs, actions)
}

struct Case {
    name: &'static str,
    ctx: &'static [&'static str],
    base: &'static [&'static str],
    action: CopyAction,
    want: &'static [&'static str],
}

fn copy_cases() -> Vec<Case> {
    vec![
        Case { name: "file to a new path", ctx: &["a=A"], base: &[], action: cp("a", "/b"), want: &["b=A"] },
        Case { name: "trailing slash means into", ctx: &["a=A"], base: &[], action: cp("/a", "/d/"), want: &["d/", "d/a=A"] },
        Case { name: "existing dir means into", ctx: &["a=A"], base: &["d/"], action: cp("a", "/d"), want: &["d/", "d/a=A"] },
        Case { name: "existing file is replaced", ctx: &["a=A"], base: &["f=old"], action: cp("a", "/f"), want: &["f=A"] },
        Case {
            name: "dir contents, merged",
            ctx: &["dir/x=1", "dir/s/y=2"],
            base: &["out/old=o", "out/s/z=3"],
            action: cp("dir", "/out/"),
            want: &["out/", "out/old=o", "out/s/", "out/s/y=2", "out/s/z=3", "out/x=1"],
        },
        Case {
            name: "dir itself without contents-only",
            ctx: &["dir/x=1"],
            base: &[],
            action: with(cp("dir", "/out/"), |c| c.dir_contents_only = false),
            want: &["out/", "out/dir/", "out/dir/x=1"],
        },
        Case {
            name: "wildcard matches go into a dir",
            ctx: &["h1.txt=1", "h2.txt=2", "g=3"],
            base: &[],
            action: cp("h*", "/w"),
            want: &["w/", "w/h1.txt=1", "w/h2.txt=2"],
        },
        Case { name: "single wildcard match is a file", ctx: &["h1.txt=1", "g=3"], base: &[], action: cp("g*", "/single"), want: &["single=3"] },
        Case {
            name: "wildcard in a middle component",
            ctx: &["a1/f=1", "a2/f=2", "b/f=3"],
            base: &[],
            action: cp("a?/f", "/m/"),
            want: &["m/", "m/f=2"],
        },
        Case {
            name: "symlinks inside a dir stay symlinks",
            ctx: &["dir/l->../a", "dir/abs->/etc/passwd", "a=A"],
            base: &[],
            action: cp("dir", "/o"),
            want: &["o/", "o/abs->/etc/passwd", "o/l->../a"],
        },
        Case { name: "final symlink followed", ctx: &["a=A", "ln->a"], base: &[], action: cp("ln", "/f"), want: &["f=A"] },
        Case {
            name: "final symlink kept",
            ctx: &["a=A", "ln->a"],
            base: &[],
            action: with(cp("ln", "/f"), |c| c.follow_symlinks = false),
            want: &["f->a"],
        },
        Case {
            name: "dest symlink followed inside the root",
            ctx: &["a=A"],
            base: &["run/", "var/run->/run"],
            action: cp("a", "/var/run/"),
            want: &["run/", "run/a=A", "var/", "var/run->/run"],
        },
        Case {
            name: "nested dest symlink to a dir is merged into",
            ctx: &["root/var/run/x=1"],
            base: &["run/", "var/run->../run"],
            action: cp("root", "/"),
            want: &["run/", "run/x=1", "var/", "var/run->../run"],
        },
        Case {
            name: "parents keep the source path",
            ctx: &["x/a.txt=1", "x/b.md=2"],
            base: &[],
            action: with(cp("x/*.txt", "/p"), |c| c.parents = true),
            want: &["p/", "p/x/", "p/x/a.txt=1"],
        },
        Case {
            name: "parents pivot",
            ctx: &["x/sub/c=1"],
            base: &[],
            action: with(cp("x/./sub/c", "/p/"), |c| c.parents = true),
            want: &["p/", "p/sub/", "p/sub/c=1"],
        },
        Case {
            name: "exclude files and whole dirs",
            ctx: &["dir/a.md=1", "dir/b.txt=2", "dir/skip/c.txt=3", "dir/keep/d.txt=4"],
            base: &[],
            action: with(cp("dir", "/o"), |c| c.exclude = vec!["*.md".into(), "skip".into()]),
            want: &["o/", "o/b.txt=2", "o/keep/", "o/keep/d.txt=4"],
        },
        Case {
            name: "exclude against wildcard matches",
            ctx: &["hom.txt=1", "home.md=2"],
            base: &[],
            action: with(cp("hom*", "/o/"), |c| c.exclude = vec!["*.txt".into()]),
            want: &["o/", "o/home.md=2"],
        },
        Case {
            name: "dotdot cannot climb out",
            ctx: &["etc/passwd=inside"],
            base: &[],
            action: cp("../../etc/passwd", "/p"),
            want: &["p=inside"],
        },
        Case {
            name: "symlinked dir resolves inside the context",
            ctx: &["link->/etc", "etc/passwd=inside"],
            base: &[],
            action: cp("link/passwd", "/p"),
            want: &["p=inside"],
        },
        Case { name: "empty wildcard allowed", ctx: &["a=1"], base: &[], action: with(cp("z*", "/o/"), |c| c.allow_empty_wildcard = true), want: &[] },
    ]
}

#[test]
fn copy_rules_table() {
    require_root();
    for case in copy_cases() {
        let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        build(ctx.path(), case.ctx);
        build(dest.path(), case.base);
        run_with(ctx.path(), dest.path(), &IncludeAll, &[FileAction::Copy(case.action)])
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        assert_eq!(listing(dest.path()), case.want, "{}", case.name);
    }
}
