//! Issue 13's learning loop through the real binary: `rbk run` a container
//! from an image, change files in it, `rbk diff` the changes, `rbk commit`
//! them to a new image, read its `history`, run that image, and hand it to
//! Docker (`rbk save` → `docker load` → `docker run`).

use std::path::Path;

mod support;

use support::{context, ok, rbk, stderr, stdout};

fn scratch(name: &str) -> std::path::PathBuf {
    support::scratch(&format!("containers-{name}"))
}

/// A store with `base:1`: the busybox base plus an `/etc/motd` and a CMD.
fn base(dir: &Path) -> std::path::PathBuf {
    let root = support::store(dir);
    let ctx = context(
        dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo welcome > /etc/motd\nCMD [\"echo\", \"from cmd\"]\n",
        )],
    );
    ok(&root, &support::build_args(&ctx, &["-t", "base:1"]));
    root
}

#[test]
fn run_diff_commit_history_run_and_docker_agree() {
    let dir = scratch("loop");
    let root = base(&dir);
    let out = rbk(
        &root,
        &[
            "run",
            "--name",
            "c",
            "base:1",
            "sh",
            "-c",
            "echo hi > /hello && rm /etc/motd",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&ok(&root, &["diff", "c"])),
        "C /etc\nD /etc/motd\nA /hello\n"
    );
    let id = stdout(&ok(&root, &["commit", "-m", "add hello", "c", "demo:1"]));
    assert!(id.starts_with("sha256:"), "{id}");
    let history = stdout(&ok(&root, &["history", "--no-trunc", "demo:1"]));
    let top = history.lines().nth(1).unwrap();
    assert!(
        top.contains("sh -c echo hi > /hello && rm /etc/motd") && top.contains("add hello"),
        "{history}"
    );
    assert_eq!(
        stdout(&ok(&root, &["run", "--rm", "demo:1", "cat", "/hello"])),
        "hi\n"
    );
    // The image's CMD when no command is given; the deletion is in the layer.
    assert_eq!(stdout(&ok(&root, &["run", "--rm", "demo:1"])), "from cmd\n");
    let gone = rbk(&root, &["run", "--rm", "demo:1", "cat", "/etc/motd"]);
    assert!(!gone.status.success());
    // --rm left nothing; the first container is listed as exited.
    let ps = stdout(&ok(&root, &["ps", "-a"]));
    assert_eq!(ps.lines().count(), 2, "{ps}");
    let row = ps.lines().nth(1).unwrap();
    assert!(row.contains("Exited (0)") && row.ends_with(" c"), "{ps}");

    let docker = support::docker::engine();
    let archive = dir.join("demo.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "demo:1"]);
    docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    let out = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "demo:1",
        "cat",
        "/hello",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

#[test]
fn exit_codes_names_and_entrypoints_follow_docker() {
    let dir = scratch("rules");
    let root = base(&dir);
    let out = rbk(&root, &["run", "--rm", "base:1", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    ok(&root, &["run", "--name", "taken", "base:1", "true"]);
    let again = rbk(&root, &["run", "--name", "taken", "base:1", "true"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already in use"),
        "{}",
        stderr(&again)
    );
    // --entrypoint replaces the entrypoint and drops the image's CMD.
    let out = ok(
        &root,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "base:1",
            "only",
            "args",
        ],
    );
    assert_eq!(stdout(&out), "only args\n");
    let out = ok(
        &root,
        &[
            "run",
            "--rm",
            "-e",
            "GREETING=hey",
            "-w",
            "/tmp",
            "base:1",
            "sh",
            "-c",
            "echo $GREETING $(pwd)",
        ],
    );
    assert_eq!(stdout(&out), "hey /tmp\n");
    // The image of a container stays until the container is gone or -f.
    let refused = rbk(&root, &["rmi", "base:1"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("is using its referenced image"),
        "{}",
        stderr(&refused)
    );
    ok(&root, &["rm", "taken"]);
    let missing = rbk(&root, &["diff", "taken"]);
    assert!(
        stderr(&missing).contains("No such container: taken"),
        "{}",
        stderr(&missing)
    );
    let missing = rbk(&root, &["run", "--rm", "127.0.0.1:1/nosuch:1"]);
    assert!(!missing.status.success());
}

#[test]
fn export_flattens_the_container_file_system() {
    let dir = scratch("export");
    let root = base(&dir);
    ok(
        &root,
        &[
            "run",
            "--name",
            "c",
            "base:1",
            "sh",
            "-c",
            "echo hi > /hello && rm /etc/motd",
        ],
    );
    let file = dir.join("c.tar");
    ok(&root, &["export", "-o", file.to_str().unwrap(), "c"]);
    let bytes = std::fs::read(&file).unwrap();
    // stdout gets the same bytes (the packer is deterministic).
    assert_eq!(ok(&root, &["export", "c"]).stdout, bytes);
    let mut names = Vec::new();
    let mut hello = String::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name == "hello" {
            std::io::Read::read_to_string(&mut entry, &mut hello).unwrap();
        }
        names.push(name);
    }
    assert_eq!(hello, "hi\n");
    for present in ["bin/busybox", "etc/passwd", "etc/hosts", "proc/", "dev/"] {
        assert!(
            names.iter().any(|n| n == present),
            "{present} missing: {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("motd") || n.contains(".wh.")),
        "{names:?}"
    );
    let missing = rbk(&root, &["export", "-o", file.to_str().unwrap(), "nosuch"]);
    assert!(stderr(&missing).contains("No such container: nosuch"));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "a failed export kept the old file"
    );
}
