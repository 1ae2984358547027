//! `rbk build -`: the context as a tar archive on stdin (plain, gzip,
//! bzip2, xz, zstd; the Dockerfile at the root or at `-f` inside it), a
//! lone Dockerfile on stdin, and `-f -` beside a context directory. The
//! unpacked context lives under the store's tmp/ only during the build.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

use support::{command, context, file, header, stderr, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("stdin-{name}"))
}

/// `rbk build ARGS` with `input` on stdin.
fn build_with_stdin(root: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = command(root, &[&["build", "--progress=plain"], args].concat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input); // rbk may stop reading early on errors
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn tmp_is_empty(root: &Path) {
    let left: Vec<_> = fs::read_dir(root.join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "left under tmp/: {left:?}");
}

#[test]
fn a_context_archive_on_stdin_in_every_compression() {
    let dir = scratch("archive");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "sub/Build.df",
                "FROM rbk-busybox\nCOPY a.txt /a.txt\nRUN cp /a.txt /b.txt\n",
            ),
            ("Dockerfile", "FROM rbk-busybox\nCOPY a.txt /root.txt\n"),
            ("a.txt", "from the archive\n"),
        ],
    );
    let tarball = dir.join("ctx.tar");
    let status = Command::new("tar")
        .args([
            "-C",
            ctx.to_str().unwrap(),
            "-cf",
            tarball.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    for tool in ["cat", "gzip", "bzip2", "xz", "zstd"] {
        let data = match tool {
            "cat" => fs::read(&tarball).unwrap(),
            tool => {
                Command::new(tool)
                    .args(["-c", tarball.to_str().unwrap()])
                    .output()
                    .unwrap()
                    .stdout
            }
        };
        let out_dir = dir.join(format!("out-{tool}"));
        let spec = format!("type=local,dest={}", out_dir.display());
        let out = build_with_stdin(&root, &["-f", "sub/Build.df", "-o", &spec, "-"], &data);
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        assert_eq!(
            fs::read_to_string(out_dir.join("b.txt")).unwrap(),
            "from the archive\n",
            "{tool}"
        );
        tmp_is_empty(&root);
    }
    // Without -f: the Dockerfile at the archive's root.
    let spec = format!("type=local,dest={}", dir.join("out-root").display());
    let out = build_with_stdin(&root, &["-o", &spec, "-"], &fs::read(&tarball).unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("out-root/root.txt").is_file());
    // -f must stay inside the archive.
    let out = build_with_stdin(
        &root,
        &["-f", "../Dockerfile", "-"],
        &fs::read(&tarball).unwrap(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("must be inside the context archive"),
        "{}",
        stderr(&out)
    );
    tmp_is_empty(&root);
}

#[test]
fn a_lone_dockerfile_on_stdin_has_an_empty_context() {
    let dir = scratch("lone");
    let root = store(&dir);
    let out_dir = dir.join("out");
    let spec = format!("type=local,dest={}", out_dir.display());
    let out = build_with_stdin(
        &root,
        &["-o", &spec, "-"],
        b"FROM rbk-busybox\nCOPY . /ctx/\nRUN ls -A /ctx > /listing\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(out_dir.join("listing")).unwrap(), "");
    tmp_is_empty(&root);
    // Both from stdin cannot be.
    let out = build_with_stdin(&root, &["-f", "-", "-"], b"FROM rbk-busybox\n");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot both come from stdin"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dockerfile_on_stdin_with_a_context_directory() {
    let dir = scratch("dash-f");
    let root = store(&dir);
    let ctx = context(&dir, &[("a.txt", "ctx file\n")]);
    let out_dir = dir.join("out");
    let spec = format!("type=local,dest={}", out_dir.display());
    let out = build_with_stdin(
        &root,
        &["-f", "-", "-o", &spec, ctx.to_str().unwrap()],
        b"FROM rbk-busybox\nCOPY a.txt /a.txt\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(out_dir.join("a.txt")).unwrap(),
        "ctx file\n"
    );
}

/// A hostile archive: entries that climb out with `..` or are absolute,
/// and a symlink out followed by a file through it. Nothing lands outside
/// the context, and the unpacked context is gone afterwards.
#[test]
fn a_hostile_context_archive_stays_confined() {
    let dir = scratch("hostile");
    let root = store(&dir);
    let mut b = tar::Builder::new(Vec::new());
    file(
        &mut b,
        "Dockerfile",
        0o644,
        b"FROM rbk-busybox\nCOPY . /ctx/\n",
    );
    for name in ["../escape-dotdot", "/tmp/rbk-stdin-escape-abs"] {
        let mut h = header(tar::EntryType::Regular, 0o644, 2);
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &b"x\n"[..]).unwrap();
    }
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, "out", dir.to_str().unwrap()).unwrap();
    let mut h = header(tar::EntryType::Regular, 0o644, 2);
    let raw = &mut h.as_old_mut().name;
    raw[..14].copy_from_slice(b"out/via-link-x");
    h.set_cksum();
    b.append(&h, &b"x\n"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let out = build_with_stdin(&root, &["-"], &data);
    let log = stderr(&out);
    // Confined or refused; either way nothing escaped.
    assert!(!Path::new("/tmp/rbk-stdin-escape-abs").exists(), "{log}");
    assert!(!dir.join("via-link-x").exists(), "{log}");
    assert!(!root.join("tmp/escape-dotdot").exists(), "{log}");
    let work_parent_escape = fs::read_dir(root.join("tmp")).unwrap().count();
    assert_eq!(work_parent_escape, 0, "{log}");
    assert!(!dir.join("escape-dotdot").exists(), "{log}");
}
