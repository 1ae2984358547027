//! The interop matrix, out of rbk: rbk's images — the busybox base made by
//! `rbk import` and an image rbk built on it — go to the real tools and run
//! there: `docker load` and `docker pull` (from a registry rbk pushed to) +
//! `docker run`, `podman load`/`pull` + `podman run`, `buildah pull` +
//! `buildah run`, `skopeo inspect`/`copy`, `umoci unpack` + `runc run`.
//! Each run prints what the image's CMD (and ENTRYPOINT, USER, WORKDIR,
//! ENV) should make it print. One test per row, so that a failure names the
//! pair.
//!
//! A private dockerd is shared by this binary (`support/docker.rs`); buildah
//! and podman get storage of their own per test (`support/tools.rs`); each
//! registry row starts its own `docker-registry`. A tool that cannot start
//! fails its rows.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod support;

use support::docker::engine;
use support::registry::Registry;
use support::tools::{Tool, PODMAN_ULIMITS};
use support::{ok, stdout};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("interop-out-{name}"))
}

/// What the base image's CMD prints.
const BASE_SAYS: &str = "rbk base says hi\n";
/// What the built image prints: its file, the RUN's addition, then the
/// ENV, USER and WORKDIR it runs with.
const BUILT_SAYS: &str = "hello from rbk\nbuilt by rbk\nhi from 1000 in /app\n";

/// A store under `dir/root` with rbk's two images: `interop-out-base:1`
/// (imported, with a CMD) and `interop-out-built:1` (built on it).
fn rbk_images(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    ok(
        &root,
        &[
            "import",
            "--change",
            "CMD [\"echo\", \"rbk base says hi\"]",
            support::base_tarball().to_str().unwrap(),
            "interop-out-base:1",
        ],
    );
    let ctx = support::context(
        dir,
        &[
            (
                "Dockerfile",
                "FROM interop-out-base:1\n\
                 COPY hello.txt /app/\n\
                 RUN echo 'built by rbk' >> /app/hello.txt && chown -R app /app\n\
                 USER app\n\
                 WORKDIR /app\n\
                 ENV GREETING=hi\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD [\"cat hello.txt && echo $GREETING from $(id -u) in $(pwd)\"]\n",
            ),
            ("hello.txt", "hello from rbk\n"),
        ],
    );
    let built = support::build(&root, &ctx, &["-t", "interop-out-built:1"]);
    assert!(
        built.status.success(),
        "rbk build failed:\n{}",
        support::stderr(&built)
    );
    root
}

/// `rbk save [--format FORMAT] -o dir/NAME IMAGES...`.
fn rbk_save(root: &Path, dir: &Path, name: &str, format: &str, images: &[&str]) -> PathBuf {
    let archive = dir.join(name);
    let mut args = vec!["save", "--format", format, "-o", archive.to_str().unwrap()];
    args.extend_from_slice(images);
    ok(root, &args);
    archive
}

/// rbk's two images pushed to `registry` as `HOST/interop/{base,built}:1`;
/// returns their names and the digests `rbk push` reported.
fn rbk_push(root: &Path, registry: &Registry) -> [(String, String); 2] {
    ["base", "built"].map(|which| {
        let name = format!("{}/interop/{which}:1", registry.host);
        ok(root, &["tag", &format!("interop-out-{which}:1"), &name]);
        let out = ok(root, &["push", &name]);
        let said = format!("{}{}", stdout(&out), support::stderr(&out));
        let digest = said
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("rbk push of {name} named no digest: {said}"))
            .to_string();
        (name, digest)
    })
}

/// The names in `Loaded image: NAME` lines.
fn loaded(said: &str) -> Vec<String> {
    said.lines()
        .filter_map(|l| l.trim().strip_prefix("Loaded image: "))
        .map(str::to_string)
        .collect()
}

/// The one loaded name that ends with `suffix`.
fn named<'a>(names: &'a [String], suffix: &str) -> &'a str {
    names
        .iter()
        .find(|n| n.ends_with(suffix))
        .unwrap_or_else(|| panic!("nothing loaded as {suffix}: {names:?}"))
}

// ---------------------------------------------------------------- Docker

fn docker_run(image: &str) -> String {
    let out = engine().ok(&["run", "--rm", "--network", "none", image]);
    stdout(&out)
}

#[test]
fn rbk_save_into_docker_load_run() {
    let docker = engine();
    let dir = scratch("docker-load");
    let root = rbk_images(&dir);
    let archive = rbk_save(
        &root,
        &dir,
        "save.tar",
        "docker",
        &["interop-out-base:1", "interop-out-built:1"],
    );
    let out = docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    let names = loaded(&stdout(&out));
    assert!(
        names.contains(&"interop-out-base:1".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"interop-out-built:1".to_string()),
        "{names:?}"
    );
    assert_eq!(docker_run("interop-out-base:1"), BASE_SAYS);
    assert_eq!(docker_run("interop-out-built:1"), BUILT_SAYS);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rbk_push_into_docker_pull_run() {
    let docker = engine();
    let dir = scratch("docker-pull");
    let root = rbk_images(&dir);
    let registry = Registry::start(&dir.join("registry"), None);
    let [(base, base_digest), (built, built_digest)] = rbk_push(&root, &registry);
    for (name, digest) in [(&base, &base_digest), (&built, &built_digest)] {
        docker.ok(&["pull", name]);
        let repo_digests = docker.ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            name,
        ]);
        assert!(
            stdout(&repo_digests).contains(digest.as_str()),
            "docker pulled {name} as {} (rbk pushed {digest})",
            stdout(&repo_digests)
        );
    }
    assert_eq!(docker_run(&base), BASE_SAYS);
    assert_eq!(docker_run(&built), BUILT_SAYS);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- podman

fn podman_run(podman: &Tool, image: &str) -> String {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(&PODMAN_ULIMITS);
    args.push(image);
    podman.text(&args)
}

#[test]
fn rbk_save_into_podman_load_run() {
    let dir = scratch("podman-load");
    let root = rbk_images(&dir);
    let archive = rbk_save(
        &root,
        &dir,
        "save.tar",
        "docker",
        &["interop-out-base:1", "interop-out-built:1"],
    );
    let podman = Tool::podman(&dir.join("podman"));
    let names = loaded(&podman.text(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(
        podman_run(&podman, named(&names, "/interop-out-base:1")),
        BASE_SAYS
    );
    assert_eq!(
        podman_run(&podman, named(&names, "/interop-out-built:1")),
        BUILT_SAYS
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rbk_push_into_podman_pull_run() {
    let dir = scratch("podman-pull");
    let root = rbk_images(&dir);
    let registry = Registry::start(&dir.join("registry"), None);
    let [(base, _), (built, _)] = rbk_push(&root, &registry);
    let podman = Tool::podman(&dir.join("podman"));
    for name in [&base, &built] {
        podman.ok(&["pull", "--quiet", "--tls-verify=false", name]);
    }
    assert_eq!(podman_run(&podman, &base), BASE_SAYS);
    assert_eq!(podman_run(&podman, &built), BUILT_SAYS);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- buildah

/// `buildah run` in a working container of `image`, with the command its
/// config says (ENTRYPOINT + CMD; buildah run takes it explicitly).
fn buildah_run(buildah: &Tool, image: &str) -> String {
    let inspect: Value =
        serde_json::from_slice(&buildah.ok(&["inspect", "--type", "image", image]).stdout).unwrap();
    let config = &inspect["OCIv1"]["config"];
    let mut argv: Vec<String> = Vec::new();
    for key in ["Entrypoint", "Cmd"] {
        if let Some(words) = config[key].as_array() {
            argv.extend(words.iter().map(|w| w.as_str().unwrap().to_string()));
        }
    }
    let container = buildah.text(&["from", "--quiet", image]);
    let mut args = vec![
        "run",
        "--runtime",
        "runc",
        "--network",
        "none",
        container.trim(),
        "--",
    ];
    args.extend(argv.iter().map(String::as_str));
    let said = buildah.text(&args);
    buildah.ok(&["rm", container.trim()]);
    said
}

#[test]
fn rbk_push_into_buildah_pull_run() {
    let dir = scratch("buildah-pull");
    let root = rbk_images(&dir);
    let registry = Registry::start(&dir.join("registry"), None);
    let [(base, _), (built, _)] = rbk_push(&root, &registry);
    let buildah = Tool::buildah(&dir.join("buildah"));
    for name in [&base, &built] {
        buildah.ok(&["pull", "--quiet", "--tls-verify=false", name]);
    }
    assert_eq!(buildah_run(&buildah, &base), BASE_SAYS);
    assert_eq!(buildah_run(&buildah, &built), BUILT_SAYS);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- skopeo

/// `skopeo inspect [--config|--raw] TRANSPORT` as JSON.
fn skopeo_inspect(flag: Option<&str>, transport: &str) -> Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend(flag);
    args.push(transport);
    serde_json::from_slice(&Tool::skopeo().ok(&args).stdout).unwrap()
}

/// The diff ids rbk records for `image`.
fn rbk_layers(root: &Path, image: &str) -> Value {
    let inspect: Value = serde_json::from_slice(&ok(root, &["inspect", image]).stdout).unwrap();
    inspect[0]["RootFS"]["Layers"].clone()
}

/// What skopeo reads in the built image's config through `transport`.
fn check_built_config(root: &Path, transport: &str) {
    let config = skopeo_inspect(Some("--config"), transport);
    let c = &config["config"];
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"]),
        "{transport}"
    );
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["cat hello.txt && echo $GREETING from $(id -u) in $(pwd)"]),
        "{transport}"
    );
    assert_eq!(c["User"], "app", "{transport}");
    assert_eq!(c["WorkingDir"], "/app", "{transport}");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        rbk_layers(root, "interop-out-built:1"),
        "{transport}"
    );
}

#[test]
fn rbk_images_into_skopeo_inspect() {
    let dir = scratch("skopeo-inspect");
    let root = rbk_images(&dir);
    // From a registry rbk pushed to: the digest rbk reported is the one served.
    let registry = Registry::start(&dir.join("registry"), None);
    let [(base, base_digest), (built, built_digest)] = rbk_push(&root, &registry);
    for (name, digest) in [(&base, &base_digest), (&built, &built_digest)] {
        let inspect = skopeo_inspect(None, &format!("docker://{name}"));
        assert_eq!(inspect["Digest"], digest.as_str(), "{name}");
        assert_eq!(inspect["Os"], "linux");
    }
    check_built_config(&root, &format!("docker://{built}"));
    // From the archives `rbk save` writes, in both formats.
    let docker_archive = rbk_save(
        &root,
        &dir,
        "docker.tar",
        "docker",
        &["interop-out-built:1"],
    );
    check_built_config(
        &root,
        &format!("docker-archive:{}", docker_archive.display()),
    );
    let oci_archive = rbk_save(&root, &dir, "oci.tar", "oci", &["interop-out-built:1"]);
    check_built_config(&root, &format!("oci-archive:{}", oci_archive.display()));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rbk_images_through_skopeo_copy_into_podman_run() {
    let dir = scratch("skopeo-copy");
    let root = rbk_images(&dir);
    let podman = Tool::podman(&dir.join("podman"));
    let storage = podman.storage_transport();
    let skopeo = Tool::skopeo();
    // The built image from a registry rbk pushed to.
    let registry = Registry::start(&dir.join("registry"), None);
    let [_, (built, _)] = rbk_push(&root, &registry);
    skopeo.ok(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{built}"),
        &format!("{storage}localhost/skopeo/built:1"),
    ]);
    // The base from the OCI archive `rbk save --format oci` writes (its
    // ref name is the tag, as containerd writes it).
    let oci_archive = rbk_save(&root, &dir, "oci.tar", "oci", &["interop-out-base:1"]);
    skopeo.ok(&[
        "copy",
        "--quiet",
        &format!("oci-archive:{}:1", oci_archive.display()),
        &format!("{storage}localhost/skopeo/base:1"),
    ]);
    assert_eq!(podman_run(&podman, "localhost/skopeo/base:1"), BASE_SAYS);
    assert_eq!(podman_run(&podman, "localhost/skopeo/built:1"), BUILT_SAYS);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- umoci

/// `umoci unpack` of `tag` in the OCI layout `layout`, run with `runc run`;
/// returns what it printed.
fn umoci_run(dir: &Path, layout: &Path, tag: &str, id: &str) -> String {
    let bundle = dir.join(format!("bundle-{id}"));
    Tool::umoci().ok(&[
        "unpack",
        "--image",
        &format!("{}:{tag}", layout.display()),
        bundle.to_str().unwrap(),
    ]);
    // umoci asks for a terminal; the test has none.
    let spec_path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&fs::read(&spec_path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let runc = Tool::runc(dir);
    let container = format!("rbk-interop-{}-{id}", std::process::id());
    let said = runc.text(&["run", "--bundle", bundle.to_str().unwrap(), &container]);
    let _ = runc.command(&["delete", "--force", &container]).status();
    said
}

#[test]
fn rbk_save_oci_into_umoci_unpack_run() {
    let dir = scratch("umoci");
    let root = rbk_images(&dir);
    let layout = dir.join("layout");
    for (image, id) in [
        ("interop-out-base:1", "base"),
        ("interop-out-built:1", "built"),
    ] {
        let archive = rbk_save(&root, &dir, &format!("{id}.tar"), "oci", &[image]);
        let _ = fs::remove_dir_all(&layout);
        fs::create_dir_all(&layout).unwrap();
        let untar = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(&archive)
            .status()
            .unwrap();
        assert!(untar.success());
        let said = umoci_run(&dir, &layout, "1", id);
        let expected = if id == "base" { BASE_SAYS } else { BUILT_SAYS };
        assert_eq!(said, expected, "{image} unpacked by umoci");
    }
    let hello = fs::read_to_string(dir.join("bundle-built/rootfs/app/hello.txt")).unwrap();
    assert_eq!(hello, "hello from rbk\nbuilt by rbk\n");
    let _ = fs::remove_dir_all(&dir);
}
