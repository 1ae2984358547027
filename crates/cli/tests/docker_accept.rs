//! Acceptance by a real Docker engine: images `rbk save` writes (the
//! busybox base and an image rbk built) are loaded with `docker load`, run
//! with `docker run`, and keep their layers (diff ids) exactly. The engine
//! is a private dockerd (see `support/docker.rs`); without one the tests
//! fail, saying why.

use std::fs;
use std::path::Path;

use serde_json::Value;

mod support;

use support::docker::{engine, Docker};
use support::{context, ok, stdout, store};

fn scratch(name: &str) -> std::path::PathBuf {
    support::scratch(&format!("accept-{name}"))
}

/// The diff ids rbk records for `image`.
fn rbk_layers(root: &Path, image: &str) -> Vec<String> {
    let inspect: Value = serde_json::from_slice(&ok(root, &["inspect", image]).stdout).unwrap();
    layers_of(&inspect[0])
}

/// The diff ids Docker records for `image`.
fn docker_layers(docker: &Docker, image: &str) -> Vec<String> {
    let inspect: Value =
        serde_json::from_slice(&docker.ok(&["image", "inspect", image]).stdout).unwrap();
    layers_of(&inspect[0])
}

fn layers_of(inspect: &Value) -> Vec<String> {
    inspect["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// `rbk save` of `image` loaded into Docker.
fn hand_over(root: &Path, dir: &Path, docker: &Docker, image: &str) {
    let archive = dir.join("image.tar");
    ok(root, &["save", "-o", archive.to_str().unwrap(), image]);
    let loaded = docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&loaded.stdout);
    assert!(said.contains(image), "docker load said: {said}");
}

fn docker_run(docker: &Docker, image: &str, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm", "--network", "none", image];
    all.extend_from_slice(args);
    String::from_utf8(docker.ok(&all).stdout).unwrap()
}

#[test]
fn docker_runs_the_base_image_rbk_saved() {
    let docker = engine();
    let dir = scratch("base");
    let root = store(&dir);
    // A name of its own: tests share one engine.
    ok(&root, &["tag", "rbk-busybox:latest", "accept-base:1"]);
    hand_over(&root, &dir, docker, "accept-base:1");

    let passwd = docker_run(docker, "accept-base:1", &["cat", "/etc/passwd"]);
    assert!(passwd.contains("app:x:1000:1000"), "{passwd}");
    let bin = docker_run(docker, "accept-base:1", &["ls", "/bin"]);
    assert!(bin.lines().any(|l| l == "busybox"), "{bin}");
    assert_eq!(
        docker_layers(docker, "accept-base:1"),
        rbk_layers(&root, "accept-base:1")
    );
}

#[test]
fn docker_runs_an_image_rbk_built() {
    let docker = engine();
    let dir = scratch("built");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 COPY hello.txt /app/\n\
                 RUN mkdir /app/d && echo built > /app/d/x && ln -s d/x /app/link && rm /etc/group\n\
                 USER app\n\
                 WORKDIR /app\n\
                 CMD [\"cat\", \"hello.txt\"]\n",
            ),
            ("hello.txt", "hello from rbk\n"),
        ],
    );
    ok(
        &root,
        &[
            "build",
            "--progress=plain",
            "-t",
            "accept-built:1",
            ctx.to_str().unwrap(),
        ],
    );
    hand_over(&root, &dir, docker, "accept-built:1");

    // CMD, WORKDIR and USER came through.
    assert_eq!(
        docker_run(docker, "accept-built:1", &[]),
        "hello from rbk\n"
    );
    assert_eq!(
        docker_run(docker, "accept-built:1", &["id", "-u"]),
        "1000\n"
    );
    assert_eq!(
        docker_run(docker, "accept-built:1", &["cat", "/app/link"]),
        "built\n"
    );
    // The RUN's deletion is a whiteout Docker applies.
    let etc = docker_run(docker, "accept-built:1", &["ls", "/etc"]);
    assert!(!etc.lines().any(|l| l == "group"), "{etc}");
    assert!(etc.lines().any(|l| l == "passwd"), "{etc}");
    assert_eq!(
        docker_layers(docker, "accept-built:1"),
        rbk_layers(&root, "accept-built:1")
    );

    // And Docker saves back what rbk gave it: same config digest (image id).
    let rbk_id: Value =
        serde_json::from_slice(&ok(&root, &["inspect", "accept-built:1"]).stdout).unwrap();
    let docker_id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", "accept-built:1"]);
    assert_eq!(
        stdout_of(&docker_id).trim(),
        rbk_id[0]["Id"].as_str().unwrap()
    );
    let _ = fs::remove_dir_all(&dir);
}

fn stdout_of(out: &std::process::Output) -> String {
    stdout(out)
}
