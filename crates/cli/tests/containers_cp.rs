//! `rbk cp` (issue 13): both directions, docker's rules for a trailing `/`,
//! `DIR/.` and `-` (tar streams), `-a`, `-L`, stopped and running
//! containers, and hostile symlinks in the container that point at the
//! host: every path resolves inside the container's root.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

mod support;

use support::{mounts_under, ok, rbk, stderr, stdout};

/// Fails with what rbk said when it succeeds; its stderr otherwise.
fn fails(root: &Path, args: &[&str]) -> String {
    let out = rbk(root, args);
    assert!(!out.status.success(), "rbk {args:?} succeeded");
    stderr(&out)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn copies_out_of_and_into_a_stopped_container_with_dockers_rules() {
    let dir = support::container_scratch("containers-cp-stopped");
    let root = support::container_store(
        &dir,
        "RUN mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b \
         && ln -s a /data/link-to-a && chmod 4755 /data/a\n",
    );
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    ok(
        &root,
        &[
            "run",
            "--name",
            "c",
            "base:1",
            "sh",
            "-c",
            "echo hi > /hello",
        ],
    );

    // A file: to a new name, over a file, into a directory.
    ok(&root, &["cp", "c:/hello", &h("out")]);
    assert_eq!(read(&host.join("out")), "hi\n");
    std::fs::write(host.join("over"), "old").unwrap();
    ok(&root, &["cp", "c:/hello", &h("over")]);
    assert_eq!(read(&host.join("over")), "hi\n");
    std::fs::create_dir(host.join("into")).unwrap();
    ok(&root, &["cp", "c:hello", &h("into")]);
    assert_eq!(read(&host.join("into/hello")), "hi\n");
    // A directory: into an existing one under its name, its contents with
    // `/.`, and as a new directory.
    ok(&root, &["cp", "c:/data", &h("into")]);
    assert_eq!(read(&host.join("into/data/sub/b")), "b\n");
    std::fs::create_dir(host.join("contents")).unwrap();
    ok(&root, &["cp", "c:/data/.", &h("contents")]);
    assert_eq!(read(&host.join("contents/a")), "a\n");
    assert!(!host.join("contents/data").exists());
    ok(&root, &["cp", "c:/data/", &h("fresh")]);
    assert_eq!(read(&host.join("fresh/sub/b")), "b\n");
    // Symlinks are copied as links; -L copies what they point to.
    let link = host.join("fresh/link-to-a");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("a"));
    ok(&root, &["cp", "-L", "c:/data/link-to-a", &h("followed")]);
    assert_eq!(read(&host.join("followed")), "a\n");
    // Written to the host: setuid cleared unless -a.
    let mode = std::fs::metadata(host.join("fresh/a")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o755, "{mode:o}");
    ok(&root, &["cp", "-a", "c:/data/a", &h("kept")]);
    assert_eq!(
        std::fs::metadata(host.join("kept")).unwrap().mode() & 0o7777,
        0o4755
    );

    // docker's errors.
    let e = fails(&root, &["cp", "c:/hello", &format!("{}/", h("nodir"))]);
    assert!(e.contains("does not exist"), "{e}");
    let e = fails(&root, &["cp", "c:/data", &h("out")]);
    assert!(e.contains("cannot copy a directory to a file"), "{e}");
    std::fs::create_dir_all(host.join("clash/hello")).unwrap();
    let e = fails(&root, &["cp", "c:/hello", &h("clash")]);
    assert!(e.contains("cannot overwrite a directory"), "{e}");
    let e = fails(&root, &["cp", "c:/hello/", &h("x")]);
    assert!(e.contains("not a directory"), "{e}");
    let e = fails(&root, &["cp", "c:/nope", &h("x")]);
    assert!(e.contains("/nope") && e.contains("not found"), "{e}");
    let e = fails(&root, &["cp", "nosuch:/a", &h("x")]);
    assert!(e.contains("No such container"), "{e}");
    let e = fails(&root, &["cp", &h("out"), &h("x")]);
    assert!(e.contains("at least one container"), "{e}");

    // Into the container: a file, a directory, ownership root unless -a.
    std::fs::write(host.join("payload"), "payload\n").unwrap();
    std::os::unix::fs::chown(host.join("payload"), Some(1234), Some(4321)).unwrap();
    std::fs::create_dir_all(host.join("tree/deep")).unwrap();
    std::fs::write(host.join("tree/deep/f"), "deep\n").unwrap();
    ok(&root, &["cp", &h("payload"), "c:/payload"]);
    ok(&root, &["cp", "-a", &h("payload"), "c:/payload-a"]);
    ok(&root, &["cp", &h("tree"), "c:/tmp/"]);
    ok(&root, &["cp", &h("tree/."), "c:/data/sub"]);
    let diff = stdout(&ok(&root, &["diff", "c"]));
    for line in [
        "A /payload",
        "A /payload-a",
        "A /tmp/tree/deep/f",
        "A /data/sub/deep/f",
    ] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line} missing in:\n{diff}"
        );
    }
    ok(&root, &["commit", "c", "cp:1"]);
    let ids = stdout(&ok(
        &root,
        &[
            "run",
            "--rm",
            "cp:1",
            "sh",
            "-c",
            "stat -c %u:%g /payload /payload-a; cat /tmp/tree/deep/f",
        ],
    ));
    assert_eq!(ids, "0:0\n1234:4321\ndeep\n");

    // Tar streams: out to stdout, in from stdin.
    let tar = ok(&root, &["cp", "c:/data", "-"]).stdout;
    let mut names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names[0], "data/");
    assert!(names.contains(&"data/sub/b".to_string()), "{names:?}");
    let mut builder = tar::Builder::new(Vec::new());
    support::file(&mut builder, "streamed/x", 0o644, b"streamed\n");
    support::file(&mut builder, ".wh.kept", 0o644, b"not a whiteout\n");
    let tar = builder.into_inner().unwrap();
    let out = support::rbk_with_stdin(&root, &["cp", "-", "c:/tmp"], &tar);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&support::rbk_with_stdin(
        &root,
        &["cp", "-", "c:/hello"],
        &tar,
    ));
    assert!(e.contains("must be a directory"), "{e}");
    ok(&root, &["cp", "c:/tmp/streamed/x", &h("streamed")]);
    assert_eq!(read(&host.join("streamed")), "streamed\n");
    ok(&root, &["cp", "c:/tmp/.wh.kept", &h("kept-wh")]);
    assert_eq!(read(&host.join("kept-wh")), "not a whiteout\n");
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    ok(&root, &["rm", "c"]);
}

#[test]
fn hostile_symlinks_in_the_container_stay_inside_it() {
    let dir = support::container_scratch("containers-cp-hostile");
    let root = support::container_store(&dir, "");
    // A host directory with a secret, which the container's links name.
    let secret_dir = dir.join("secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("key"), "host secret\n").unwrap();
    let abs = secret_dir.to_str().unwrap().to_string();
    let rel = format!("../../../../../../../../..{abs}");
    let script = format!(
        "ln -s {abs} /abs && ln -s {rel} /rel && ln -s / /slash && \
         mkdir -p /tmp/w && ln -s {abs}/key /tmp/w/keylink && \
         mkdir -p {abs} && echo container > {abs}/key"
    );
    ok(
        &root,
        &["run", "--name", "h", "base:1", "sh", "-c", &script],
    );
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();

    // Reading through the links gets the container's own files.
    for src in ["h:/abs/key", "h:/rel/key", "h:/slash/abs/key"] {
        ok(&root, &["cp", src, &h("got")]);
        assert_eq!(read(&host.join("got")), "container\n", "{src}");
    }
    ok(&root, &["cp", "-L", "h:/tmp/w/keylink", &h("got")]);
    assert_eq!(read(&host.join("got")), "container\n");
    // Without -L the link itself is copied, pointing where it pointed.
    ok(&root, &["cp", "h:/tmp/w/keylink", &h("link")]);
    assert!(std::fs::symlink_metadata(host.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());

    // Writing through them lands in the container, never on the host.
    std::fs::write(host.join("evil"), "evil\n").unwrap();
    for dest in ["h:/abs/", "h:/rel/", "h:/slash/", "h:/tmp/w/keylink"] {
        ok(&root, &["cp", &h("evil"), dest]);
    }
    let mut names: Vec<_> = std::fs::read_dir(&secret_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["key"], "the host directory changed");
    assert_eq!(read(&secret_dir.join("key")), "host secret\n");
    let inside = stdout(&ok(&root, &["cp", &format!("h:{abs}/key"), "-"]));
    assert!(
        inside.contains("evil"),
        "the file went into the container: {inside}"
    );
    let diff = stdout(&ok(&root, &["diff", "h"]));
    assert!(diff.lines().any(|l| l == "A /evil"), "{diff}");
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    ok(&root, &["rm", "h"]);
}

#[test]
fn copies_with_a_running_container_see_its_volumes() {
    let dir = support::container_scratch("containers-cp-running");
    let root = support::container_store(&dir, "");
    let vol = dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("v"), "in volume\n").unwrap();
    let bind = format!("{}:/vol", vol.display());
    let id = stdout(&ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "r",
            "-v",
            &bind,
            "base:1",
            "sh",
            "-c",
            "mkdir /w; exec sleep 300",
        ],
    ));
    assert_eq!(id.trim().len(), 64);
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "to running\n").unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    // The directory appears once the process runs.
    let mut tries = 0;
    while !rbk(&root, &["exec", "r", "test", "-d", "/w"])
        .status
        .success()
    {
        tries += 1;
        assert!(tries < 100, "the container never made /w");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok(&root, &["cp", &h("f"), "r:/w/"]);
    assert_eq!(
        stdout(&ok(&root, &["exec", "r", "cat", "/w/f"])),
        "to running\n"
    );
    ok(&root, &["cp", "r:/vol/v", &h("v")]);
    assert_eq!(read(&host.join("v")), "in volume\n");
    ok(&root, &["cp", &h("f"), "r:/vol/from-cp"]);
    assert_eq!(read(&vol.join("from-cp")), "to running\n");
    // procfs is neither written nor walked.
    let e = fails(&root, &["cp", &h("f"), "r:/proc/"]);
    assert!(e.contains("procfs"), "{e}");
    ok(&root, &["rm", "-f", "r"]);
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
}
