//! The interop matrix, into rbk: images made by Docker (`docker build` with
//! the classic builder and with BuildKit, `docker import`, `docker commit`,
//! and one `docker push`ed to a registry),
//! by Buildah (`buildah bud --format oci|docker`, `buildah commit`) and
//! copied by skopeo (to a docker-archive, an OCI archive, an OCI layout
//! directory and a registry) come into rbk through `rbk load` or `rbk pull`.
//! rbk then builds on each: `FROM` it, `COPY --from` it and a `RUN` inside
//! it that sees the image's files, `ENV` and `WORKDIR`; the result keeps the
//! image's layers. One test per row, so that a failure names the pair.
//!
//! Every source image starts from the busybox rootfs of `support`. The tools
//! are the real ones: a private dockerd shared by this binary
//! (`support/docker.rs`), buildah and skopeo with storage of their own per
//! test (`support/tools.rs`), a real `docker-registry` per test. A tool that
//! cannot start fails its rows.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

mod support;

use support::docker::{engine, Docker};
use support::registry::Registry;
use support::tools::Tool;
use support::{ok, stdout};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("interop-in-{name}"))
}

/// What a source image holds: `/data/marker` with `marker` in it, `ENV
/// MARK=mark`, `workdir` as its working directory, and `etc`: what `ls /data`
/// lists, then `group` or `no-group` for `/etc/group`.
struct Source<'a> {
    marker: &'a str,
    mark: &'a str,
    workdir: &'a str,
    etc: &'a str,
}

/// The step every layered source runs: `/etc/group` and any earlier `/data`
/// removed, then the marker in a new `/data`. The tool's layer holds a
/// whiteout (and, over an earlier `/data`, an opaque directory or one
/// whiteout per entry), which rbk must apply.
fn source_step(marker: &str) -> String {
    format!("rm -rf /data /etc/group && mkdir -p /data && echo {marker} > /data/marker")
}

/// What the check sees after [`source_step`]: `ls /data`, whether
/// `/etc/group` is there.
const LAYERED_ETC: &str = "marker no-group";

/// The Dockerfile every source is built from (Docker and Buildah alike).
fn source_dockerfile(base: &str, src: &Source) -> String {
    format!(
        "FROM {base}\n\
         ENV MARK={mark}\n\
         RUN mkdir -p /data/old && echo old > /data/old/file\n\
         RUN {step}\n\
         WORKDIR {workdir}\n",
        mark = src.mark,
        step = source_step(src.marker),
        workdir = src.workdir,
    )
}

/// The base rootfs plus `data/marker` holding `marker`, as a tarball.
fn marked_tarball(dir: &Path, marker: &str) -> PathBuf {
    let path = dir.join("marked-rootfs.tar");
    let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
    let mut base = tar::Archive::new(fs::File::open(support::base_tarball()).unwrap());
    for entry in base.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let path = entry.path().unwrap().into_owned();
        if header.entry_type() == tar::EntryType::Symlink {
            let target = entry.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut header, &path, &target).unwrap();
        } else {
            b.append_data(&mut header, &path, &mut entry).unwrap();
        }
    }
    let mut h = support::header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "data/", std::io::empty()).unwrap();
    support::file(
        &mut b,
        "data/marker",
        0o644,
        format!("{marker}\n").as_bytes(),
    );
    b.into_inner().unwrap().sync_all().unwrap();
    path
}

/// The `RootFS.Layers` (diff ids) and `Id` rbk reports for `image`.
fn rbk_inspect(root: &Path, image: &str) -> (Vec<String>, String) {
    let inspect: Value = serde_json::from_slice(&ok(root, &["inspect", image]).stdout).unwrap();
    let layers = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no RootFS.Layers for {image}: {inspect}"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    (layers, inspect[0]["Id"].as_str().unwrap().to_string())
}

/// rbk builds on `image` (already in the store at `root`): `FROM` it,
/// `COPY --from` it, `RUN` inside it. Checks what the RUN saw and that the
/// result keeps the image's layers and config.
fn builds_on(root: &Path, dir: &Path, image: &str, src: &Source) {
    let ctx = dir.join("rbk-ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {image} AS src\n\
             FROM {image}\n\
             COPY --from=src /data/marker /copied\n\
             RUN cat /data/marker /copied > /ran && echo \"env=$MARK\" >> /ran && pwd >> /ran \
                 && echo $(ls /data) $(test -e /etc/group && echo group || echo no-group) >> /ran\n"
        ),
    )
    .unwrap();
    let built = support::build(root, &ctx, &["-t", "interop-result:1"]);
    assert!(
        built.status.success(),
        "rbk build on {image} failed:\n{}",
        support::stderr(&built)
    );
    let out = support::export(root, &ctx, dir, &[]);
    let ran = fs::read_to_string(out.join("ran")).unwrap();
    assert_eq!(
        ran,
        format!(
            "{m}\n{m}\nenv={mark}\n{wd}\n{etc}\n",
            m = src.marker,
            mark = src.mark,
            wd = src.workdir,
            etc = src.etc
        ),
        "what the RUN on {image} saw"
    );
    // Its config: ENV and WORKDIR came through.
    let config = support::config(root, "interop-result:1");
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&format!("MARK={}", src.mark).as_str()),
        "{env:?}"
    );
    assert_eq!(config["config"]["WorkingDir"], src.workdir);
    // Its layers: the image's, every one of them as it is (empty ones too,
    // as BuildKit keeps them), then the COPY's and the RUN's.
    let (source_layers, _) = rbk_inspect(root, image);
    let (result_layers, _) = rbk_inspect(root, "interop-result:1");
    let kept = &result_layers[..source_layers.len().min(result_layers.len())];
    assert_eq!(
        kept, source_layers,
        "the result of FROM {image} must start with its layers (all: {result_layers:?})"
    );
    assert_eq!(result_layers.len(), source_layers.len() + 2);
}

/// `rbk load -i archive` into `root`; it must name `image`.
fn rbk_load(root: &Path, archive: &Path, image: &str) {
    let loaded = ok(root, &["load", "-i", archive.to_str().unwrap()]);
    let said = stdout(&loaded);
    assert!(
        said.lines().any(|l| l == format!("Loaded image: {image}")),
        "rbk load of {} said: {said}",
        archive.display()
    );
}

// ---------------------------------------------------------------- Docker

/// The busybox base in this binary's engine, `interop-base:1`.
fn docker_base(docker: &Docker) -> &'static str {
    static BASE: OnceLock<()> = OnceLock::new();
    BASE.get_or_init(|| {
        docker.ok(&[
            "import",
            support::base_tarball().to_str().unwrap(),
            "interop-base:1",
        ]);
    });
    "interop-base:1"
}

/// `docker save` of `image` loaded by rbk into a fresh store under `dir`,
/// with the same image id (the config's bytes kept).
fn docker_to_rbk(docker: &Docker, dir: &Path, image: &str) -> PathBuf {
    let archive = dir.join("docker-save.tar");
    docker.ok(&["save", "-o", archive.to_str().unwrap(), image]);
    let root = dir.join("root");
    rbk_load(&root, &archive, image);
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", image]);
    assert_eq!(
        rbk_inspect(&root, image).1,
        stdout(&id).trim(),
        "rbk must keep the config Docker made byte for byte"
    );
    root
}

/// `docker build` of the source Dockerfile, BuildKit on or off.
fn docker_build(docker: &Docker, dir: &Path, image: &str, src: &Source, buildkit: bool) {
    let ctx = dir.join("docker-ctx");
    fs::create_dir_all(&ctx).unwrap();
    let base = docker_base(docker);
    fs::write(ctx.join("Dockerfile"), source_dockerfile(base, src)).unwrap();
    let out = docker
        .command(&[
            "build",
            "--network",
            "host",
            "-t",
            image,
            ctx.to_str().unwrap(),
        ])
        .env("DOCKER_BUILDKIT", if buildkit { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build (BuildKit {buildkit}) failed:\n{}{}",
        stdout(&out),
        support::stderr(&out)
    );
}

#[test]
fn docker_build_classic_into_rbk_load() {
    let docker = engine();
    let dir = scratch("docker-classic");
    let src = Source {
        marker: "made-by-classic-builder",
        mark: "classic",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    docker_build(docker, &dir, "interop-classic:1", &src, false);
    let root = docker_to_rbk(docker, &dir, "interop-classic:1");
    builds_on(&root, &dir, "interop-classic:1", &src);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn docker_build_buildkit_into_rbk_load() {
    let docker = engine();
    let dir = scratch("docker-buildkit");
    let src = Source {
        marker: "made-by-buildkit",
        mark: "buildkit",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    docker_build(docker, &dir, "interop-buildkit:1", &src, true);
    let root = docker_to_rbk(docker, &dir, "interop-buildkit:1");
    builds_on(&root, &dir, "interop-buildkit:1", &src);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn docker_import_into_rbk_load() {
    let docker = engine();
    let dir = scratch("docker-import");
    let src = Source {
        marker: "made-by-docker-import",
        mark: "import",
        workdir: "/data",
        // One layer, the base rootfs and the marker.
        etc: "marker group",
    };
    let tarball = marked_tarball(&dir, src.marker);
    docker.ok(&[
        "import",
        "--change",
        "ENV MARK=import",
        "--change",
        "WORKDIR /data",
        tarball.to_str().unwrap(),
        "interop-import:1",
    ]);
    let root = docker_to_rbk(docker, &dir, "interop-import:1");
    builds_on(&root, &dir, "interop-import:1", &src);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn docker_commit_into_rbk_load() {
    let docker = engine();
    let dir = scratch("docker-commit");
    let src = Source {
        marker: "made-by-docker-commit",
        mark: "commit",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    let base = docker_base(docker);
    let name = "interop-commit-src";
    let _ = docker.run(&["rm", "-f", name]);
    docker.ok(&[
        "run",
        "--name",
        name,
        "--network",
        "none",
        base,
        "sh",
        "-c",
        &source_step("made-by-docker-commit"),
    ]);
    docker.ok(&[
        "commit",
        "--change",
        "ENV MARK=commit",
        "--change",
        "WORKDIR /data",
        name,
        "interop-commit:1",
    ]);
    docker.ok(&["rm", name]);
    let root = docker_to_rbk(docker, &dir, "interop-commit:1");
    builds_on(&root, &dir, "interop-commit:1", &src);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn docker_push_into_rbk_pull() {
    let docker = engine();
    let dir = scratch("docker-push");
    let src = Source {
        marker: "pushed-by-docker",
        mark: "docker-push",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    docker_build(docker, &dir, "interop-pushed:1", &src, false);
    let registry = Registry::start(&dir.join("registry"), None);
    let image = format!("{}/docker/pushed:1", registry.host);
    docker.ok(&["tag", "interop-pushed:1", &image]);
    docker.ok(&["push", &image]);
    let repo_digest = docker.ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &image,
    ]);
    let repo_digest = stdout(&repo_digest);
    let (_, docker_digest) = repo_digest.trim().split_once('@').unwrap();
    let root = dir.join("root");
    ok(&root, &["pull", &image]);
    builds_on(&root, &dir, &image, &src);

    // Pushed on by rbk, the image Docker made keeps its manifest digest.
    let again = format!("{}/docker/again:1", registry.host);
    ok(&root, &["tag", &image, &again]);
    let pushed = stdout(&ok(&root, &["push", &again]));
    assert!(
        pushed.contains(&format!("digest: {docker_digest} ")),
        "rbk push of {again} (Docker pushed {docker_digest}):\n{pushed}"
    );
    // What rbk built on it goes out with OCI media types only, and Docker
    // runs it.
    let result = format!("{}/docker/result:1", registry.host);
    ok(&root, &["tag", "interop-result:1", &result]);
    ok(&root, &["push", &result]);
    let raw = Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{result}"),
    ]);
    let raw = String::from_utf8(raw.stdout).unwrap();
    assert!(!raw.contains("vnd.docker"), "a mixed manifest: {raw}");
    docker.ok(&["pull", &result]);
    let ran = docker.ok(&["run", "--rm", "--network", "none", &result, "cat", "/ran"]);
    assert_eq!(
        stdout(&ran),
        "pushed-by-docker\npushed-by-docker\nenv=docker-push\n/data\nmarker no-group\n"
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- Buildah

/// The busybox base in `buildah`'s storage as `localhost/interop-base:1`.
fn buildah_base(buildah: &Tool) -> &'static str {
    let container = buildah.text(&["from", "scratch"]);
    let container = container.trim();
    buildah.ok(&[
        "add",
        container,
        support::base_tarball().to_str().unwrap(),
        "/",
    ]);
    buildah.ok(&["commit", "--rm", container, "interop-base:1"]);
    "localhost/interop-base:1"
}

/// `buildah bud --format FORMAT` of the source Dockerfile, as `image`.
fn buildah_bud(buildah: &Tool, dir: &Path, image: &str, src: &Source, format: &str) {
    let ctx = dir.join("buildah-ctx");
    fs::create_dir_all(&ctx).unwrap();
    let base = buildah_base(buildah);
    fs::write(ctx.join("Dockerfile"), source_dockerfile(base, src)).unwrap();
    buildah.ok(&[
        "bud",
        "--runtime",
        "runc",
        "--network",
        "none",
        "--format",
        format,
        "-t",
        image,
        ctx.to_str().unwrap(),
    ]);
}

#[test]
fn buildah_bud_oci_into_rbk_load() {
    let dir = scratch("buildah-bud-oci");
    let buildah = Tool::buildah(&dir.join("buildah"));
    let src = Source {
        marker: "made-by-buildah-bud-oci",
        mark: "bud-oci",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    buildah_bud(&buildah, &dir, "interop-bud-oci:1", &src, "oci");
    let archive = dir.join("bud-oci.tar");
    let dest = format!("oci-archive:{}:interop-bud-oci:1", archive.display());
    buildah.ok(&["push", "--quiet", "interop-bud-oci:1", &dest]);
    let root = dir.join("root");
    rbk_load(&root, &archive, "interop-bud-oci:1");
    builds_on(&root, &dir, "interop-bud-oci:1", &src);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn buildah_bud_docker_into_rbk_load() {
    let dir = scratch("buildah-bud-docker");
    let buildah = Tool::buildah(&dir.join("buildah"));
    let src = Source {
        marker: "made-by-buildah-bud-docker",
        mark: "bud-docker",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    buildah_bud(&buildah, &dir, "interop-bud-docker:1", &src, "docker");
    let archive = dir.join("bud-docker.tar");
    let dest = format!("docker-archive:{}:interop-bud-docker:1", archive.display());
    buildah.ok(&["push", "--quiet", "interop-bud-docker:1", &dest]);
    let root = dir.join("root");
    rbk_load(&root, &archive, "interop-bud-docker:1");
    builds_on(&root, &dir, "interop-bud-docker:1", &src);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn buildah_commit_into_rbk_pull() {
    let dir = scratch("buildah-commit");
    let buildah = Tool::buildah(&dir.join("buildah"));
    let src = Source {
        marker: "made-by-buildah-commit",
        mark: "buildah-commit",
        workdir: "/data",
        etc: LAYERED_ETC,
    };
    let base = buildah_base(&buildah);
    let container = buildah.text(&["from", base]);
    let container = container.trim();
    buildah.ok(&[
        "run",
        "--runtime",
        "runc",
        "--network",
        "none",
        container,
        "--",
        "sh",
        "-c",
        &source_step("made-by-buildah-commit"),
    ]);
    buildah.ok(&[
        "config",
        "--env",
        "MARK=buildah-commit",
        "--workingdir",
        "/data",
        container,
    ]);
    buildah.ok(&["commit", "--rm", container, "interop-buildah-commit:1"]);
    // Through a registry this time: buildah pushes, rbk pulls.
    let registry = Registry::start(&dir.join("registry"), None);
    let image = format!("{}/buildah/commit:1", registry.host);
    let dest = format!("docker://{image}");
    buildah.ok(&[
        "push",
        "--quiet",
        "--tls-verify=false",
        "interop-buildah-commit:1",
        &dest,
    ]);
    let root = dir.join("root");
    ok(&root, &["pull", &image]);
    builds_on(&root, &dir, &image, &src);
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- skopeo

/// The source of the skopeo rows: an image Docker's classic builder built,
/// as `docker save` wrote it (Docker's config, nulls and all), and its image
/// id. Made once. (Not BuildKit's: its empty `WORKDIR` layer has a row of
/// its own above, and the skopeo rows are about the transports.)
fn skopeo_source() -> &'static (PathBuf, String) {
    static SOURCE: OnceLock<(PathBuf, String)> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let docker = engine();
        let dir = scratch("skopeo-source");
        docker_build(docker, &dir, "interop-skopeo-src:1", &SKOPEO_SRC, false);
        let archive = dir.join("source.tar");
        docker.ok(&[
            "save",
            "-o",
            archive.to_str().unwrap(),
            "interop-skopeo-src:1",
        ]);
        let id = docker.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "interop-skopeo-src:1",
        ]);
        (archive, stdout(&id).trim().to_string())
    })
}

const SKOPEO_SRC: Source<'static> = Source {
    marker: "copied-by-skopeo",
    mark: "skopeo",
    workdir: "/data",
    etc: LAYERED_ETC,
};

/// `skopeo copy docker-archive:SOURCE DEST`.
fn skopeo_copy(dest: &str) {
    let (archive, _) = skopeo_source();
    let from = format!("docker-archive:{}", archive.display());
    Tool::skopeo().ok(&["copy", "--quiet", "--dest-tls-verify=false", &from, dest]);
}

/// rbk kept the config skopeo wrote to `transport` byte for byte (skopeo
/// rewrites Docker's config when it converts to OCI).
fn same_config(root: &Path, image: &str, transport: &str) {
    let raw = Tool::skopeo().ok(&["inspect", "--raw", "--tls-verify=false", transport]);
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(rbk_inspect(root, image).1, config, "the config of {image}");
}

#[test]
fn skopeo_copy_docker_archive_into_rbk_load() {
    let dir = scratch("skopeo-docker-archive");
    let archive = dir.join("copy.tar");
    let dest = format!("docker-archive:{}:interop-skopeo-da:1", archive.display());
    skopeo_copy(&dest);
    let root = dir.join("root");
    rbk_load(&root, &archive, "interop-skopeo-da:1");
    // A docker-archive keeps Docker's config: the image id is Docker's.
    assert_eq!(
        rbk_inspect(&root, "interop-skopeo-da:1").1,
        skopeo_source().1
    );
    same_config(&root, "interop-skopeo-da:1", &dest);
    builds_on(&root, &dir, "interop-skopeo-da:1", &SKOPEO_SRC);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn skopeo_copy_oci_archive_into_rbk_load() {
    let dir = scratch("skopeo-oci-archive");
    let archive = dir.join("copy.tar");
    let dest = format!("oci-archive:{}:interop-skopeo-oa:1", archive.display());
    skopeo_copy(&dest);
    let root = dir.join("root");
    rbk_load(&root, &archive, "interop-skopeo-oa:1");
    same_config(&root, "interop-skopeo-oa:1", &dest);
    builds_on(&root, &dir, "interop-skopeo-oa:1", &SKOPEO_SRC);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn skopeo_copy_oci_dir_into_rbk_load() {
    let dir = scratch("skopeo-oci-dir");
    let layout = dir.join("layout");
    let dest = format!("oci:{}:interop-skopeo-dir:1", layout.display());
    skopeo_copy(&dest);
    // An OCI layout directory, tarred, is an OCI archive.
    let archive = dir.join("layout.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    let root = dir.join("root");
    rbk_load(&root, &archive, "interop-skopeo-dir:1");
    same_config(&root, "interop-skopeo-dir:1", &dest);
    builds_on(&root, &dir, "interop-skopeo-dir:1", &SKOPEO_SRC);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn skopeo_copy_registry_into_rbk_pull() {
    let dir = scratch("skopeo-registry");
    let registry = Registry::start(&dir.join("registry"), None);
    let image = format!("{}/skopeo/copied:1", registry.host);
    let dest = format!("docker://{image}");
    skopeo_copy(&dest);
    let root = dir.join("root");
    ok(&root, &["pull", &image]);
    same_config(&root, &image, &dest);
    builds_on(&root, &dir, &image, &SKOPEO_SRC);
    let _ = fs::remove_dir_all(&dir);
}
