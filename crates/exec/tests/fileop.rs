//! File ops against real directories: Docker's COPY/ADD rules, metadata,
//! and hostile sources and destinations. Needs root (chown, mknod,
//! `security.*` xattrs); a test that needs it fails loudly without it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use rbk_exec::{
    apply_file_actions, apply_file_actions_with, CopySource, Error, FileOpOptions, IncludeAll,
    PathFilter,
};
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
fn run_with(
    ctx: &Path,
    dest: &Path,
    filter: &dyn PathFilter,
    actions: &[FileAction],
) -> Result<(), Error> {
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
        Case {
            name: "file to a new path",
            ctx: &["a=A"],
            base: &[],
            action: cp("a", "/b"),
            want: &["b=A"],
        },
        Case {
            name: "trailing slash means into",
            ctx: &["a=A"],
            base: &[],
            action: cp("/a", "/d/"),
            want: &["d/", "d/a=A"],
        },
        Case {
            name: "existing dir means into",
            ctx: &["a=A"],
            base: &["d/"],
            action: cp("a", "/d"),
            want: &["d/", "d/a=A"],
        },
        Case {
            name: "existing file is replaced",
            ctx: &["a=A"],
            base: &["f=old"],
            action: cp("a", "/f"),
            want: &["f=A"],
        },
        Case {
            name: "dir contents, merged",
            ctx: &["dir/x=1", "dir/s/y=2"],
            base: &["out/old=o", "out/s/z=3"],
            action: cp("dir", "/out/"),
            want: &[
                "out/",
                "out/old=o",
                "out/s/",
                "out/s/y=2",
                "out/s/z=3",
                "out/x=1",
            ],
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
        Case {
            name: "single wildcard match is a file",
            ctx: &["h1.txt=1", "g=3"],
            base: &[],
            action: cp("g*", "/single"),
            want: &["single=3"],
        },
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
        Case {
            name: "final symlink followed",
            ctx: &["a=A", "ln->a"],
            base: &[],
            action: cp("ln", "/f"),
            want: &["f=A"],
        },
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
            ctx: &[
                "dir/a.md=1",
                "dir/b.txt=2",
                "dir/skip/c.txt=3",
                "dir/keep/d.txt=4",
            ],
            base: &[],
            action: with(cp("dir", "/o"), |c| {
                c.exclude = vec!["*.md".into(), "skip".into()]
            }),
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
        Case {
            name: "empty wildcard allowed",
            ctx: &["a=1"],
            base: &[],
            action: with(cp("z*", "/o/"), |c| c.allow_empty_wildcard = true),
            want: &[],
        },
    ]
}

#[test]
fn copy_rules_table() {
    require_root();
    for case in copy_cases() {
        let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        build(ctx.path(), case.ctx);
        build(dest.path(), case.base);
        run_with(
            ctx.path(),
            dest.path(),
            &IncludeAll,
            &[FileAction::Copy(case.action)],
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        assert_eq!(listing(dest.path()), case.want, "{}", case.name);
    }
}

fn run(ctx: &Path, dest: &Path, action: CopyAction) -> Result<(), Error> {
    run_with(ctx, dest, &IncludeAll, &[FileAction::Copy(action)])
}

/// Input 0 as a stage or image (owners kept, special files recreated).
fn run_stage(src: &Path, dest: &Path, action: CopyAction) -> Result<(), Error> {
    let inputs = [CopySource {
        root: src,
        filter: &IncludeAll,
        reset_owner: false,
    }];
    apply_file_actions(dest, &inputs, &[FileAction::Copy(action)])
}

fn owner(user: &str, group: &str) -> Option<Owner> {
    Some(Owner {
        user: user.into(),
        group: group.into(),
    })
}

#[test]
fn errors_read_like_buildkit() {
    require_root();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(ctx.path(), &["a=A", "hostlink->/etc"]);
    // The link resolves to the context's own (missing) /etc, never the host's.
    let err = run(ctx.path(), dest.path(), cp("hostlink/passwd", "/p")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = run(ctx.path(), dest.path(), cp("../../etc/passwd", "/p")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = run(ctx.path(), dest.path(), cp("missing.txt", "/x")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "source \"/missing.txt\": not found");
    let err = run(ctx.path(), dest.path(), cp("nothing*", "/x/")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let no_parents = with(cp("a", "/no/such/a"), |c| c.create_dest_path = false);
    let err = run(ctx.path(), dest.path(), no_parents).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    run(
        ctx.path(),
        dest.path(),
        with(cp("a", "/a2"), |c| c.create_dest_path = false),
    )
    .unwrap();
    let err = run(
        ctx.path(),
        dest.path(),
        with(cp("a", "/m"), |c| c.mode = Some("u+q".into())),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(m) if m.contains("u+q")),
        "{err:?}"
    );
    for id in ["4294967296", "2147483648"] {
        let err = run(
            ctx.path(),
            dest.path(),
            with(cp("a", "/c"), |c| c.owner = owner(id, "")),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.contains("out of range")),
            "{id}: {err:?}"
        );
    }
    let err = run(
        ctx.path(),
        dest.path(),
        with(cp("a", "/e"), |c| c.exclude = vec!["[".into()]),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(listing(dest.path()), ["a2=A"]);
}

/// Excludes the listed paths and everything beneath them, except `keep`.
struct Ignore {
    excluded: &'static [&'static str],
    keep: &'static str,
}

impl PathFilter for Ignore {
    fn is_excluded(&self, path: &str) -> bool {
        let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
        self.excluded.iter().any(|p| under(p)) && path != self.keep
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        self.keep.starts_with(&format!("{dir}/"))
    }
}

#[test]
fn filtered_paths_are_invisible() {
    require_root();
    let ctx = tempfile::tempdir().unwrap();
    build(
        ctx.path(),
        &[
            "keep=1",
            "secret.txt=2",
            "sec/inner=3",
            "ln->secret.txt",
            "d/keep=4",
            "d/drop=5",
            "d/e/x=6",
        ],
    );
    let filter = Ignore {
        excluded: &["secret.txt", "sec", "d"],
        keep: "d/keep",
    };
    let dest = tempfile::tempdir().unwrap();
    run_with(
        ctx.path(),
        dest.path(),
        &filter,
        &[FileAction::Copy(cp(".", "/all"))],
    )
    .unwrap();
    assert_eq!(
        listing(dest.path()),
        [
            "all/",
            "all/d/",
            "all/d/keep=4",
            "all/keep=1",
            "all/ln->secret.txt"
        ]
    );
    for src in ["secret.txt", "sec/inner", "ln", "d/drop"] {
        let err = run_with(
            ctx.path(),
            dest.path(),
            &filter,
            &[FileAction::Copy(cp(src, "/x"))],
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{src}: {err:?}");
    }
}

fn set_times(path: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

#[test]
fn stage_metadata_is_kept() {
    require_root();
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(src.path(), &["s/f=F", "s/d/", "s/l->f", "s/h1=H"]);
    let s = src.path().join("s");
    fs::hard_link(s.join("h1"), s.join("h2")).unwrap();
    // chown clears setuid, so owner first.
    std::os::unix::fs::chown(s.join("f"), Some(1234), Some(5678)).unwrap();
    fs::set_permissions(s.join("f"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::lchown(s.join("l"), Some(7), Some(8)).unwrap();
    fs::set_permissions(s.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(s.join("d"), Some(42), Some(43)).unwrap();
    rustix::fs::setxattr(
        s.join("f"),
        "user.rbk",
        b"yes",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        s.join("d"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(s.join("sock")).unwrap();
    set_times(&s.join("f"), 1_000_000_000);
    set_times(&s.join("d"), 1_100_000_000);
    set_times(&s.join("l"), 1_200_000_000);
    run_stage(src.path(), dest.path(), cp("s", "/out")).unwrap();
    let out = dest.path().join("out");
    let f = fs::symlink_metadata(out.join("f")).unwrap();
    assert_eq!(
        (f.mode() & 0o7777, f.uid(), f.gid(), f.mtime()),
        (0o4755, 1234, 5678, 1_000_000_000)
    );
    let d = fs::symlink_metadata(out.join("d")).unwrap();
    assert_eq!(
        (d.mode() & 0o7777, d.uid(), d.gid(), d.mtime()),
        (0o700, 42, 43, 1_100_000_000)
    );
    let l = fs::symlink_metadata(out.join("l")).unwrap();
    assert_eq!((l.uid(), l.gid(), l.mtime()), (7, 8, 1_200_000_000));
    let xattr = rustix::fs::getxattr(out.join("f"), "user.rbk", &mut [0u8; 16]).unwrap();
    assert_eq!(xattr, 3);
    assert!(rustix::fs::getxattr(out.join("d"), "trusted.overlay.opaque", &mut [0u8; 16]).is_err());
    let (h1, h2) = (
        fs::metadata(out.join("h1")).unwrap(),
        fs::metadata(out.join("h2")).unwrap(),
    );
    assert_eq!(h1.ino(), h2.ino());
    assert_ne!(h1.ino(), fs::metadata(s.join("h1")).unwrap().ino());
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(out.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(!out.join("sock").exists());
}

#[test]
fn context_owners_reset_and_fifos_never_block() {
    require_root();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(ctx.path(), &["f=F"]);
    std::os::unix::fs::chown(ctx.path().join("f"), Some(1234), Some(5678)).unwrap();
    let fifo = ctx.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (c, d) = (ctx.path().to_path_buf(), dest.path().to_path_buf());
    std::thread::spawn(move || {
        let all = run(&c, &d, cp(".", "/out"));
        let one = run(&c, &d, cp("fifo", "/one"));
        tx.send((all.is_ok(), one.is_ok())).unwrap();
    });
    let results = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("copying a FIFO blocked");
    assert_eq!(results, (true, true));
    assert_eq!(listing(dest.path()), ["out/", "out/f=F"]);
    let f = fs::metadata(dest.path().join("out/f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (0, 0));
}

/// B3, B4, B7 of security.md: a context directory holding hardlinks, a
/// socket, a device node and a dangling link. Nothing blocks; hardlinked
/// names get the same contents; specials are not copied out of a context
/// (like the FIFO above); the dangling link is kept as a link.
#[test]
fn context_hardlinks_sockets_devices_and_dangling_links() {
    require_root();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(ctx.path(), &["h1=H", "d/dangling->../nowhere"]);
    fs::hard_link(ctx.path().join("h1"), ctx.path().join("d/h2")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(ctx.path().join("sock")).unwrap();
    // A private node with /dev/null's numbers (1, 3), never the real one.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        ctx.path().join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (c, d) = (ctx.path().to_path_buf(), dest.path().to_path_buf());
    std::thread::spawn(move || {
        let all = run(&c, &d, cp(".", "/out"));
        let sock = run(&c, &d, cp("sock", "/one/"));
        let dev = run(&c, &d, cp("null", "/two/"));
        let link = run(&c, &d, cp("d/dangling", "/three/"));
        tx.send([all, sock, dev, link].map(|r| r.map_err(|e| e.to_string())))
            .unwrap();
    });
    let results = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("copying a socket or device blocked");
    let [all, sock, dev, link] = results;
    assert_eq!((all, sock, dev), (Ok(()), Ok(()), Ok(())));
    // Named directly, a dangling link is followed and found missing, by name.
    assert_eq!(link, Err("source \"/d/dangling\": not found".to_string()));
    assert_eq!(
        listing(dest.path()),
        [
            "one/",
            "out/",
            "out/d/",
            "out/d/dangling->../nowhere",
            "out/d/h2=H",
            "out/h1=H",
            "two/"
        ]
    );
    let out = dest.path().join("out");
    let (h1, h2) = (
        fs::metadata(out.join("h1")).unwrap(),
        fs::metadata(out.join("d/h2")).unwrap(),
    );
    // Hardlinks stay one file in the layer, not linked to the context's.
    assert_eq!(h1.ino(), h2.ino());
    assert_ne!(h1.ino(), fs::metadata(ctx.path().join("h1")).unwrap().ino());
}

#[test]
fn chown_and_chmod_apply_to_everything_copied() {
    require_root();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(ctx.path(), &["dir/f=F", "dir/sub/g=G"]);
    fs::set_permissions(ctx.path().join("dir/f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(
        ctx.path().join("dir/sub/g"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::set_permissions(
        ctx.path().join("dir/sub"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(ctx.path().join("dir"), fs::Permissions::from_mode(0o755)).unwrap();
    build(
        dest.path(),
        &[
            "etc/passwd=app:x:1000:1001::/home/app:/bin/sh\n",
            "etc/group=apps:x:1001:\n",
        ],
    );
    let action = with(cp("dir", "/new/deep/"), |c| {
        c.owner = owner("app", "apps");
        c.mode = Some("a+X,o-r".into());
    });
    run(ctx.path(), dest.path(), action).unwrap();
    let check = |path: &str, mode: u32| {
        let m = fs::symlink_metadata(dest.path().join(path)).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, 1000, 1001),
            "{path}"
        );
    };
    check("new", 0o755);
    // The destination of a directory's contents is made like a parent
    // (0755, the --chown owner); --chmod applies to what is copied into it.
    check("new/deep", 0o755);
    check("new/deep/f", 0o640);
    check("new/deep/sub", 0o751);
    check("new/deep/sub/g", 0o711);
    run(
        ctx.path(),
        dest.path(),
        with(cp("dir/f", "/n"), |c| c.owner = owner("1234", "")),
    )
    .unwrap();
    let m = fs::metadata(dest.path().join("n")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 1234, 0o644));
    run(
        ctx.path(),
        dest.path(),
        with(cp("dir/f", "/o"), |c| c.mode = Some("0755".into())),
    )
    .unwrap();
    assert_eq!(
        fs::metadata(dest.path().join("o")).unwrap().mode() & 0o7777,
        0o755
    );
}

/// A tar header block with raw (unchecked) `name` and `link`.
fn raw_header(name: &str, kind: u8, link: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn raw_tar(entries: &[(&str, u8, &str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        out.extend_from_slice(&raw_header(name, *kind, link, data.len()));
        out.extend_from_slice(data.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `pkg/a.txt` = hello, mode 0640, owner 77:88, mtime 1234567.
fn sample_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o640);
    header.set_uid(77);
    header.set_gid(88);
    header.set_mtime(1_234_567);
    builder
        .append_data(&mut header, "pkg/a.txt", &b"hello"[..])
        .unwrap();
    builder.into_inner().unwrap()
}

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "plain" => data.to_vec(),
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        "bzip2" => {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        "xz" => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        _ => zstd::encode_all(data, 1).unwrap(),
    }
}

fn add(src: &str, dest: &str) -> CopyAction {
    with(cp(src, dest), |c| c.auto_extract = true)
}

#[test]
fn add_extracts_archives_by_content() {
    require_root();
    for kind in ["plain", "gzip", "bzip2", "xz", "zstd"] {
        let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::write(
            ctx.path().join("archive.bin"),
            compress(kind, &sample_tar()),
        )
        .unwrap();
        build(dest.path(), &["x/old=o"]);
        run(ctx.path(), dest.path(), add("archive.bin", "/x"))
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(
            listing(dest.path()),
            ["x/", "x/old=o", "x/pkg/", "x/pkg/a.txt=hello"],
            "{kind}"
        );
        let m = fs::metadata(dest.path().join("x/pkg/a.txt")).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
            (0o640, 77, 88, 1_234_567),
            "{kind}"
        );
    }
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(
        ctx.path().join("archive.tgz"),
        compress("gzip", &sample_tar()),
    )
    .unwrap();
    fs::write(ctx.path().join("notatar.tar.gz"), "hello").unwrap();
    fs::write(
        ctx.path().join("text.gz"),
        compress("gzip", b"just text, not a tar"),
    )
    .unwrap();
    fs::write(ctx.path().join("empty.tar"), [0u8; 1024]).unwrap();
    run(
        ctx.path(),
        dest.path(),
        with(add("archive.tgz", "/c/"), |c| c.owner = owner("5", "6")),
    )
    .unwrap();
    let m = fs::metadata(dest.path().join("c/pkg/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (5, 6));
    for name in ["notatar.tar.gz", "text.gz", "empty.tar"] {
        run(ctx.path(), dest.path(), add(name, "/f/")).unwrap();
        assert!(
            fs::metadata(dest.path().join("f").join(name))
                .unwrap()
                .is_file(),
            "{name}"
        );
    }
    // Plain COPY never extracts.
    run(ctx.path(), dest.path(), cp("archive.tgz", "/copied")).unwrap();
    assert!(fs::metadata(dest.path().join("copied")).unwrap().is_file());
    let leftovers: Vec<_> = listing(dest.path())
        .into_iter()
        .filter(|p| p.contains(".rbk-add"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn add_of_a_hostile_tar_stays_confined() {
    require_root();
    let outside = tempfile::tempdir().unwrap();
    let host = outside.path().display().to_string();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tar = raw_tar(&[
        ("../escape.txt", b'0', "", "e"),
        ("/abs-rbk-test.txt", b'0', "", "a"),
        ("evil", b'2', &host, ""),
        ("evil/pwned", b'0', "", "p"),
        ("up", b'2', "../../../../../../../..", ""),
        ("up/tmp/pwned2", b'0', "", "q"),
    ]);
    fs::write(ctx.path().join("evil.tar"), tar).unwrap();
    assert!(!Path::new("/abs-rbk-test.txt").exists());
    let result = run(ctx.path(), dest.path(), add("evil.tar", "/x/"));
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "wrote outside: {result:?}"
    );
    assert!(!Path::new("/abs-rbk-test.txt").exists());
    assert!(!Path::new("/tmp/pwned2").exists());
    let tree = listing(dest.path());
    result.unwrap();
    // `..` and `/` are clamped and links resolve inside the extraction root.
    for want in ["x/escape.txt=e", "x/abs-rbk-test.txt=a", "x/tmp/pwned2=q"] {
        assert!(tree.contains(&want.to_string()), "{want}: {tree:?}");
    }
    let pwned = format!("x{host}/pwned=p");
    assert!(tree.contains(&pwned), "{tree:?}");
    assert!(tree.iter().all(|p| !p.contains(".rbk-add")), "{tree:?}");
}

#[test]
fn hostile_destinations_stay_inside() {
    require_root();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let outside = tempfile::tempdir().unwrap();
    let host = outside.path().display().to_string();
    build(ctx.path(), &["a=A", "dir/b=B"]);
    build(
        dest.path(),
        &[
            &format!("out->{host}"),
            &format!("deep->{host}/sub"),
            &format!("file->{host}/f"),
        ],
    );
    run(ctx.path(), dest.path(), cp("a", "/out/")).unwrap();
    run(ctx.path(), dest.path(), cp("dir", "/deep/x")).unwrap();
    run(ctx.path(), dest.path(), cp("a", "/file")).unwrap();
    let mkfile = FileAction::Mkfile {
        path: "/out/made".into(),
        mode: 0o644,
        data: "m".into(),
        owner: None,
    };
    let mkdir = FileAction::Mkdir {
        path: "/deep/made".into(),
        mode: 0o755,
        make_parents: true,
        owner: None,
    };
    run_with(ctx.path(), dest.path(), &IncludeAll, &[mkfile, mkdir]).unwrap();
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    let inside = dest.path().join(outside.path().strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside.join("a")).unwrap(), "A");
    assert_eq!(fs::read_to_string(inside.join("sub/x/b")).unwrap(), "B");
    assert_eq!(fs::read_to_string(inside.join("f")).unwrap(), "A");
    assert_eq!(fs::read_to_string(inside.join("made")).unwrap(), "m");
    assert!(inside.join("sub/made").is_dir());
}

#[test]
fn mkdir_mkfile_and_rm() {
    require_root();
    let (ctx, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(
        dest.path(),
        &["a/b/c=1", "a/x.log=2", "a/y.log=3", "link->a"],
    );
    let mkdir = |path: &str, parents: bool| FileAction::Mkdir {
        path: path.into(),
        mode: 0o750,
        make_parents: parents,
        owner: None,
    };
    let mkfile = |path: &str, data: &str, owner: Option<Owner>| FileAction::Mkfile {
        path: path.into(),
        mode: 0o600,
        data: data.into(),
        owner,
    };
    let rm = |path: &str, allow_not_found: bool| FileAction::Rm {
        path: path.into(),
        allow_not_found,
    };
    let actions = [
        mkdir("/n/m/o", true),
        mkdir("/a", false),
        mkfile("/link/new.txt", "hi", owner("33", "")),
        mkfile("/a/b/c", "new", None),
        rm("/a/*.log", false),
        rm("/link", false),
        rm("/nothing", true),
        rm("/none*", true),
    ];
    run_with(ctx.path(), dest.path(), &IncludeAll, &actions).unwrap();
    let want = [
        "a/",
        "a/b/",
        "a/b/c=new",
        "a/new.txt=hi",
        "n/",
        "n/m/",
        "n/m/o/",
    ];
    assert_eq!(listing(dest.path()), want);
    for dir in ["n", "n/m", "n/m/o"] {
        assert_eq!(
            fs::metadata(dest.path().join(dir)).unwrap().mode() & 0o7777,
            0o750,
            "{dir}"
        );
    }
    let f = fs::metadata(dest.path().join("a/new.txt")).unwrap();
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o600, 33, 33));
    for bad in [
        mkdir("/q/r", false),
        rm("/nothing", false),
        rm("/none*", false),
        rm("/", false),
        mkfile("/a", "x", None),
    ] {
        let result = run_with(
            ctx.path(),
            dest.path(),
            &IncludeAll,
            std::slice::from_ref(&bad),
        );
        assert!(result.is_err(), "{bad:?}");
    }
    assert_eq!(listing(dest.path()), want);
}

#[test]
fn implicit_directories_get_fixed_times() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, dest) = (tmp.path().join("ctx"), tmp.path().join("dest"));
    build(&ctx, &["f=F", "d/x=X"]);
    build(&dest, &["etc/old=O"]);
    let old = fs::metadata(dest.join("etc")).unwrap().mtime();
    let d_mtime = fs::metadata(ctx.join("d")).unwrap().mtime();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let actions = [
        FileAction::Copy(cp("f", "/a/b/f")),
        FileAction::Copy(cp("f", "/etc/")),
        FileAction::Copy(cp("d", "/new/d")),
        FileAction::Copy(with(cp("d", "/p/"), |c| c.dir_contents_only = false)),
        FileAction::Mkdir {
            path: "/m/n".into(),
            mode: 0o755,
            make_parents: true,
            owner: None,
        },
    ];
    run_with(&ctx, &dest, &IncludeAll, &actions).unwrap();
    let mtime = |p: &str| fs::metadata(dest.join(p)).unwrap().mtime();
    // `new/d` receives d's contents: it is made like a parent, not a copy
    // of d (BuildKit creates it before copying into it).
    for created in ["a", "a/b", "new", "new/d", "m", "m/n"] {
        assert_eq!(mtime(created), 0, "{created} was created by the op");
    }
    assert_eq!(mtime("etc"), old, "an existing directory keeps its time");
    assert_eq!(mtime("p/d"), d_mtime, "a copied directory keeps its own");

    // With SOURCE_DATE_EPOCH, created entries get that time.
    let dest2 = tmp.path().join("dest2");
    fs::create_dir(&dest2).unwrap();
    let inputs = [CopySource {
        root: &ctx,
        filter: &IncludeAll,
        reset_owner: true,
    }];
    let options = FileOpOptions {
        source_date_epoch: Some(1234),
    };
    apply_file_actions_with(&dest2, &inputs, &actions[..1], &options).unwrap();
    assert_eq!(fs::metadata(dest2.join("a/b")).unwrap().mtime(), 1234);
}

#[test]
fn later_sources_replace_earlier_ones_with_parallel_copies() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, dest) = (tmp.path().join("ctx"), tmp.path().join("dest"));
    // Matches in order: a/x (file), b/x (dir), c/x (file), d/x (link).
    build(
        &ctx,
        &["a/x=A", "b/x/in=B", "c/x=C", "d/x->c", "e/x/deep/f=E"],
    );
    fs::create_dir_all(&dest).unwrap();
    // Directories are copied as themselves (not their contents), so every
    // match lands at /out/x.
    let one = |src: &str| FileAction::Copy(with(cp(src, "/out/"), |a| a.dir_contents_only = false));
    run_with(&ctx, &dest, &IncludeAll, &[one("[abc]/x")]).unwrap();
    assert_eq!(fs::read_to_string(dest.join("out/x")).unwrap(), "C");
    run_with(&ctx, &dest, &IncludeAll, &[one("[ce]/x")]).unwrap();
    assert_eq!(
        fs::read_to_string(dest.join("out/x/deep/f")).unwrap(),
        "E",
        "a directory replaced the file"
    );
    let link = with(cp("d/x", "/out/"), |a| a.follow_symlinks = false);
    let many = [one("a/x"), FileAction::Copy(link)];
    run_with(&ctx, &dest, &IncludeAll, &many).unwrap();
    assert_eq!(fs::read_link(dest.join("out/x")).unwrap(), Path::new("c"));
}

/// A tree of several batches (the walk dispatches one every 128
/// directories and copies it beside the walk): every directory still gets
/// its source's mode and mtime after all its files were written, a
/// hardlinked pair met while a batch runs stays one inode, and a later
/// source still replaces files an earlier batch wrote.
#[test]
fn a_tree_of_many_batches_keeps_every_directorys_metadata() {
    require_root();
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dirs = 400;
    for i in 0..dirs {
        let d = src.path().join(format!("s/d{i:03}"));
        fs::create_dir_all(d.join("sub")).unwrap();
        for f in 0..3 {
            fs::write(d.join(format!("f{f}")), format!("{i}/{f}")).unwrap();
        }
        fs::write(d.join("sub/g"), format!("{i}/g")).unwrap();
    }
    let s = src.path().join("s");
    fs::hard_link(s.join("d200/f0"), s.join("d200/h")).unwrap();
    fs::create_dir_all(src.path().join("t/d399")).unwrap();
    fs::write(src.path().join("t/d399/f0"), "T").unwrap();
    // Directory metadata last: writing the files above changed the mtimes.
    for i in 0..dirs {
        let d = s.join(format!("d{i:03}"));
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700 | (i % 8) as u32)).unwrap();
        set_times(&d.join("sub"), 1_000_000_000 + 2 * i as i64 + 1);
        set_times(&d, 1_000_000_000 + 2 * i as i64);
    }
    // A merged directory takes the later source's metadata: the same here.
    let t = src.path().join("t/d399");
    fs::set_permissions(&t, fs::Permissions::from_mode(0o700 | (399 % 8))).unwrap();
    set_times(&t, 1_000_000_000 + 2 * 399);
    run_stage(src.path(), dest.path(), cp("[st]", "/out/")).unwrap();
    let out = dest.path().join("out");
    for i in 0..dirs {
        let d = out.join(format!("d{i:03}"));
        let meta = fs::symlink_metadata(&d).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.mtime()),
            (0o700 | (i % 8) as u32, 1_000_000_000 + 2 * i as i64),
            "d{i:03}"
        );
        let sub = fs::symlink_metadata(d.join("sub")).unwrap().mtime();
        assert_eq!(sub, 1_000_000_000 + 2 * i as i64 + 1, "d{i:03}/sub");
        assert_eq!(
            fs::read_to_string(d.join("sub/g")).unwrap(),
            format!("{i}/g")
        );
        for f in 0..3 {
            let want = match (i, f) {
                (399, 0) => "T".to_string(),
                _ => format!("{i}/{f}"),
            };
            assert_eq!(fs::read_to_string(d.join(format!("f{f}"))).unwrap(), want);
        }
    }
    let (f0, h) = (
        fs::metadata(out.join("d200/f0")).unwrap(),
        fs::metadata(out.join("d200/h")).unwrap(),
    );
    assert_eq!((f0.ino(), f0.nlink()), (h.ino(), 2));
}
