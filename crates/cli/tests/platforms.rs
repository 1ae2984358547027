//! Multi-platform builds through the binary: `--platform linux/amd64,linux/arm64`
//! on a busybox image index made from Debian's busybox-static packages,
//! arm64 steps emulated by qemu-user-static through binfmt_misc, the index
//! pushed to a real `docker-registry` and read back with skopeo; the
//! cross-compilation pattern (a `$BUILDPLATFORM` stage solved once); the
//! up-front check for an emulator; bad platform lists.

mod support;

use std::path::Path;
use std::process::Output;

use support::platforms::multi_base;
use support::registry::Registry;
use support::tools::Tool;
use support::{ran, scratch, stderr};

/// `rbk` with its own docker config dir (never the user's), and `env`.
fn rbk(root: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = support::command(root, args);
    cmd.env("DOCKER_CONFIG", root.with_extension("docker"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(root: &Path, args: &[&str]) -> Output {
    let out = rbk(root, &[], args);
    assert!(
        out.status.success(),
        "rbk {args:?} failed:\n{}",
        stderr(&out)
    );
    out
}

fn fails(root: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let out = rbk(root, env, args);
    assert!(
        !out.status.success(),
        "rbk {args:?} should fail:\n{}",
        stderr(&out)
    );
    stderr(&out)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The `(os/arch, digest)` entries of an index document.
fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

/// A context under `dir` holding `dockerfile`.
fn context(dir: &Path, dockerfile: &str) -> std::path::PathBuf {
    support::context(dir, &[("Dockerfile", dockerfile)])
}

#[test]
fn two_platforms_build_emulated_and_push_one_index() {
    let dir = scratch("platforms-push");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let registry = Registry::start(&dir.join("registry"), None);
    let ctx = context(&dir, "FROM rbk-busybox:multi\nRUN uname -m > /arch\n");
    let name = format!("{}/multi:1", registry.host);
    let out = dir.join("out");
    let local = format!("type=local,dest={}", out.display());
    let build = ok(
        &root,
        &[
            "build",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &name,
            "--push",
            "-o",
            &local,
            "--metadata-file",
            dir.join("meta.json").to_str().unwrap(),
            "--iidfile",
            dir.join("iid").to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    let log = stderr(&build);
    // Each platform's step is labelled with its platform, as BuildKit does.
    for platform in ["linux/amd64", "linux/arm64"] {
        let label = format!("[{platform} stage-0 2/2] RUN uname -m > /arch");
        assert!(log.contains(&label), "no {label:?} in:\n{log}");
    }
    // The RUN ran natively for amd64 and under qemu for arm64: type=local
    // split the result into one directory per platform, as buildx does.
    assert_eq!(read(&out.join("linux_amd64/arch")), "x86_64\n");
    assert_eq!(read(&out.join("linux_arm64/arch")), "aarch64\n");

    let skopeo = Tool::skopeo();
    let transport = format!("docker://{name}");
    let raw = json(
        &skopeo
            .ok(&["inspect", "--raw", "--tls-verify=false", &transport])
            .stdout,
    );
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    assert_eq!(index_platforms(&raw), ["linux/amd64", "linux/arm64"]);
    for (arch, want) in [("arm64", "arm64"), ("amd64", "amd64")] {
        let shown = json(
            &skopeo
                .ok(&[
                    "inspect",
                    "--tls-verify=false",
                    "--override-arch",
                    arch,
                    &transport,
                ])
                .stdout,
        );
        assert_eq!(shown["Architecture"], want, "{shown}");
    }
    // --metadata-file and --iidfile name the index, as buildx does.
    let meta = json(&std::fs::read(dir.join("meta.json")).unwrap());
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let iid = read(&dir.join("iid"));
    assert_eq!(meta["containerimage.digest"], iid.as_str());
    // One row per tag in `rbk images`, whatever the number of platforms.
    let images = support::stdout(&ok(&root, &["images", "--format", "{{.Repository}}"]));
    let rows = images.lines().filter(|l| l.ends_with("/multi")).count();
    assert_eq!(rows, 1, "{images}");
}

#[test]
fn cross_compilation_runs_the_build_stage_once_and_natively() {
    let dir = scratch("platforms-cross");
    let root = dir.join("root");
    multi_base(&root, &dir);
    // A toy compiler: the shared part ignores the target, the per-target
    // part writes a "binary" naming TARGETARCH and the machine it ran on.
    let ctx = context(
        &dir,
        "FROM --platform=$BUILDPLATFORM rbk-busybox:multi AS build\n\
         RUN echo compiling-shared-part && uname -m > /host\n\
         ARG TARGETARCH\n\
         RUN echo compiling-for-$TARGETARCH && mkdir /out && \
             echo \"$TARGETARCH binary built on $(cat /host)\" > /out/app\n\
         FROM rbk-busybox:multi\n\
         COPY --from=build /out/app /app\n",
    );
    // No emulator at all: the pattern must not need one.
    let no_binfmt = dir.join("no-binfmt");
    std::fs::create_dir_all(&no_binfmt).unwrap();
    let env = [("RBK_BINFMT_MISC_DIR", no_binfmt.as_path())];
    let out = dir.join("out");
    let local = format!("type=local,dest={}", out.display());
    let build = |extra: &[&str]| -> String {
        let mut args = vec!["build", "--progress=plain", "-t", "cross:1", "-o", &local];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let result = rbk(&root, &env, &args);
        assert!(result.status.success(), "{}", stderr(&result));
        stderr(&result)
    };
    let two = ["--platform", "linux/amd64,linux/arm64"];
    let log = build(&two);
    let steps = ran(&log);
    let count = |needle: &str| steps.iter().filter(|s| s.contains(needle)).count();
    assert_eq!(count("compiling-shared-part"), 1, "{steps:#?}\n{log}");
    assert_eq!(count("compiling-for-"), 2, "{steps:#?}");
    assert!(
        log.contains("[linux/amd64 build 2/4] RUN echo compiling-shared-part"),
        "{log}"
    );
    // The per-target step runs on the build platform for each target.
    assert!(
        log.contains("[linux/amd64->arm64 build 4/4] RUN echo compiling-for-"),
        "{log}"
    );
    assert_eq!(
        read(&out.join("linux_amd64/app")),
        "amd64 binary built on x86_64\n"
    );
    assert_eq!(
        read(&out.join("linux_arm64/app")),
        "arm64 binary built on x86_64\n"
    );
    // Two images came out, under one index in the store.
    let db = json(&std::fs::read(root.join("db/images.json")).unwrap());
    let desc = &db["images"]["docker.io/library/cross:1"];
    assert_eq!(desc["mediaType"], "application/vnd.oci.image.index.v1+json");
    let hex = desc["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let index = json(&std::fs::read(root.join("blobs/sha256").join(hex)).unwrap());
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);

    // --no-cache-filter names a stage across platforms: the shared step
    // runs once again, each target's once.
    let log = build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "--no-cache-filter",
        "build",
    ]);
    let steps = ran(&log);
    let count = |needle: &str| steps.iter().filter(|s| s.contains(needle)).count();
    assert_eq!(count("compiling-shared-part"), 1, "{steps:#?}");
    assert_eq!(count("compiling-for-"), 2, "{steps:#?}");
    // Cache keys carry the platform: building arm64 alone reuses
    // everything the pair built, and gets the arm64 result.
    let log = build(&["--platform", "linux/arm64"]);
    assert!(ran(&log).iter().all(|s| !s.contains("compiling")), "{log}");
    assert_eq!(read(&out.join("app")), "arm64 binary built on x86_64\n");
}

#[test]
fn a_foreign_run_without_an_emulator_fails_before_anything_runs() {
    let dir = scratch("platforms-no-emulator");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let ctx = context(&dir, "FROM rbk-busybox:multi\nRUN echo ran-a-step\n");
    let no_binfmt = dir.join("no-binfmt");
    std::fs::create_dir_all(&no_binfmt).unwrap();
    let env = [("RBK_BINFMT_MISC_DIR", no_binfmt.as_path())];
    for platforms in ["linux/arm64", "linux/amd64,linux/arm64"] {
        let args = [
            "build",
            "--progress=plain",
            "--platform",
            platforms,
            ctx.to_str().unwrap(),
        ];
        let err = fails(&root, &env, &args);
        assert!(
            err.contains("cannot run RUN steps for linux/arm64"),
            "{err}"
        );
        assert!(
            err.contains("apt-get install qemu-user-static binfmt-support"),
            "{err}"
        );
        assert!(!err.contains("ran-a-step"), "a step ran:\n{err}");
    }
    // A handler registered without the F flag cannot work in a container.
    std::fs::write(
        no_binfmt.join("qemu-aarch64"),
        "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: \noffset 0\n",
    )
    .unwrap();
    let args = ["build", "--platform", "linux/arm64", ctx.to_str().unwrap()];
    let err = fails(&root, &env, &args);
    assert!(err.contains("lacks the F flag"), "{err}");
}

#[test]
fn bad_platform_lists_are_refused_by_name() {
    let dir = scratch("platforms-bad");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let ctx = context(&dir, "FROM rbk-busybox:multi\nCOPY Dockerfile /\n");
    let c = ctx.to_str().unwrap();
    let err = fails(&root, &[], &["build", "--platform", "linux/z80", c]);
    assert!(err.contains("unknown architecture \"z80\""), "{err}");
    let err = fails(&root, &[], &["build", "--platform", "linux", c]);
    assert!(err.contains("\"linux\" is not os/arch[/variant]"), "{err}");
    let err = fails(&root, &[], &["build", "--platform", "linux/amd64,", c]);
    assert!(err.contains("invalid --platform"), "{err}");
    // A platform the base's index lacks: the error lists what it has.
    let err = fails(
        &root,
        &[],
        &["build", "--platform", "linux/amd64,linux/s390x", c],
    );
    assert!(err.contains("no image for linux/s390x"), "{err}");
    assert!(err.contains("it has: linux/amd64, linux/arm64"), "{err}");
    // A docker-archive holds one image: refused as buildx refuses it.
    let tar = dir.join("img.tar");
    let docker = format!("type=docker,dest={}", tar.display());
    let err = fails(
        &root,
        &[],
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &docker,
            c,
        ],
    );
    assert!(err.contains("manifest lists"), "{err}");
    assert!(!tar.exists());
    // A platform named twice is built once, with a warning.
    let out = ok(
        &root,
        &[
            "build",
            "--platform",
            "linux/arm64,linux/arm64",
            "-t",
            "twice",
            c,
        ],
    );
    assert!(stderr(&out).contains("more than once"), "{}", stderr(&out));
    let config = support::config(&root, "twice");
    assert_eq!(config["architecture"], "arm64");
}

#[test]
fn oci_output_holds_the_index_with_every_platform() {
    let dir = scratch("platforms-oci");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let ctx = context(&dir, "FROM rbk-busybox:multi\nCOPY Dockerfile /\n");
    let tar = dir.join("multi.tar");
    let spec = format!("type=oci,dest={}", tar.display());
    ok(
        &root,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &spec,
            ctx.to_str().unwrap(),
        ],
    );
    let transport = format!("oci-archive:{}", tar.display());
    let raw = json(&Tool::skopeo().ok(&["inspect", "--raw", &transport]).stdout);
    assert_eq!(index_platforms(&raw), ["linux/amd64", "linux/arm64"]);
    let arm = json(
        &Tool::skopeo()
            .ok(&["inspect", "--override-arch", "arm64", &transport])
            .stdout,
    );
    assert_eq!(arm["Architecture"], "arm64");
}

/// The media type the store's tag `name` points at.
fn tagged_type(root: &Path, name: &str) -> String {
    let db = json(&std::fs::read(root.join("db/images.json")).unwrap());
    db["images"][name]["mediaType"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} not tagged: {db}"))
        .to_string()
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn indexes_are_pushed_pulled_inspected_saved_loaded_and_built_on() {
    let dir = scratch("platforms-index");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let registry = Registry::start(&dir.join("registry"), None);
    let name = format!("{}/base:1", registry.host);
    // `rbk push` of a multi-platform image sends the whole index.
    ok(&root, &["tag", "rbk-busybox:multi", &name]);
    ok(&root, &["push", &name]);
    let transport = format!("docker://{name}");
    let raw = json(
        &Tool::skopeo()
            .ok(&["inspect", "--raw", "--tls-verify=false", &transport])
            .stdout,
    );
    assert_eq!(index_platforms(&raw), ["linux/amd64", "linux/arm64"]);

    // `pull --all-platforms` keeps the index; `images` shows one row;
    // `inspect` shows the index and, with --platform, one image.
    let pulled = dir.join("pulled");
    ok(&pulled, &["pull", "--all-platforms", &name]);
    assert_eq!(tagged_type(&pulled, &name), INDEX);
    let rows = support::stdout(&ok(&pulled, &["images", "-q"]));
    assert_eq!(rows.lines().count(), 1, "{rows}");
    let shown = json(&ok(&pulled, &["inspect", &name]).stdout);
    assert_eq!(shown[0]["Descriptor"]["mediaType"], INDEX, "{shown}");
    let platforms: Vec<&str> = shown[0]["Manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    let arch = |platform: &str| {
        let args = [
            "inspect",
            "--platform",
            platform,
            "-f",
            "{{.Architecture}}",
            &name,
        ];
        support::stdout(&ok(&pulled, &args)).trim().to_string()
    };
    assert_eq!(arch("linux/arm64"), "arm64");
    assert_eq!(arch("linux/amd64"), "amd64");
    let err = fails(
        &pulled,
        &[],
        &["inspect", "--platform", "linux/s390x", &name],
    );
    assert!(err.contains("it has: linux/amd64, linux/arm64"), "{err}");

    // save/load keep every platform.
    let archive = dir.join("base.tar");
    ok(&pulled, &["save", "-o", archive.to_str().unwrap(), &name]);
    let loaded = dir.join("loaded");
    ok(&loaded, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(tagged_type(&loaded, &name), INDEX);
    let args = [
        "inspect",
        "--platform",
        "linux/arm64",
        "-f",
        "{{.Architecture}}",
        &name,
    ];
    assert_eq!(support::stdout(&ok(&loaded, &args)).trim(), "arm64");

    // A platform the registry's index lacks: the error lists what it has.
    let err = fails(
        &dir.join("partial"),
        &[],
        &["pull", "--platform", "linux/arm64,linux/s390x", &name],
    );
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");

    // FROM a registry index in a fresh store: each platform's image is
    // pulled, and the name keeps both as an index.
    let fresh = dir.join("fresh");
    let ctx = context(&dir, &format!("FROM {name}\nRUN uname -m > /arch\n"));
    let out = dir.join("out");
    let local = format!("type=local,dest={}", out.display());
    ok(
        &fresh,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &local,
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(read(&out.join("linux_amd64/arch")), "x86_64\n");
    assert_eq!(read(&out.join("linux_arm64/arch")), "aarch64\n");
    assert_eq!(tagged_type(&fresh, &name), INDEX);
}

#[test]
fn a_cache_export_carries_every_platform() {
    let dir = scratch("platforms-cache");
    let first = dir.join("first");
    multi_base(&first, &dir);
    let ctx = context(
        &dir,
        "FROM --platform=$BUILDPLATFORM rbk-busybox:multi AS build\n\
         RUN echo compiling-shared-part > /shared\n\
         ARG TARGETARCH\n\
         RUN echo compiling-for-$TARGETARCH && echo $TARGETARCH > /app\n\
         FROM rbk-busybox:multi\n\
         COPY --from=build /app /app\n\
         RUN cat /app > /copied\n",
    );
    let cache = dir.join("cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let two = "linux/amd64,linux/arm64";
    let c = ctx.to_str().unwrap();
    ok(&first, &["build", "--platform", two, "--cache-to", &to, c]);

    // Another store with the same base (saved and loaded, every platform).
    let archive = dir.join("base.tar");
    ok(
        &first,
        &["save", "-o", archive.to_str().unwrap(), "rbk-busybox:multi"],
    );
    let second = dir.join("second");
    ok(&second, &["load", "-i", archive.to_str().unwrap()]);
    let from = format!("type=local,src={}", cache.display());
    let tar = dir.join("fs.tar");
    let out = format!("type=tar,dest={}", tar.display());
    let build = ok(
        &second,
        &[
            "build",
            "--progress=plain",
            "--platform",
            two,
            "--cache-from",
            &from,
            "-o",
            &out,
            c,
        ],
    );
    let log = stderr(&build);
    let steps = ran(&log);
    assert!(
        steps.iter().all(|s| !s.contains("RUN")),
        "a RUN ran despite the cache: {steps:#?}\n{log}"
    );
    // type=tar: one tarball, a directory per platform.
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut copied = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name.ends_with("copied") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            copied.insert(name.trim_start_matches("./").to_string(), text);
        }
    }
    let want: std::collections::BTreeMap<String, String> = [
        ("linux_amd64/copied".to_string(), "amd64\n".to_string()),
        ("linux_arm64/copied".to_string(), "arm64\n".to_string()),
    ]
    .into();
    assert_eq!(copied, want);
}

#[test]
fn a_step_failing_on_one_platform_names_it() {
    let dir = scratch("platforms-fail");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let ctx = context(
        &dir,
        "FROM rbk-busybox:multi\nRUN test \"$(uname -m)\" = x86_64\n",
    );
    let err = fails(
        &root,
        &[],
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(err.contains("linux/arm64: "), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
}

/// The entries of `index` that are attestation manifests, and the others.
fn split_attestations(
    index: &serde_json::Value,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .partition(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
}

/// Checks that `index` holds the two platforms' images followed by one
/// attestation manifest about each (BuildKit's layout), with the index
/// and descriptor annotations of the build; returns the attestation
/// manifests' digests by the image digest they are about.
fn check_attested_index(index: &serde_json::Value) -> Vec<(String, String)> {
    let (atts, images) = split_attestations(index);
    assert_eq!(
        index_platforms(&serde_json::json!({ "manifests": images })),
        ["linux/amd64", "linux/arm64"],
        "{index}"
    );
    assert_eq!(atts.len(), 2, "{index}");
    let all = index["manifests"].as_array().unwrap();
    assert_eq!(&all[..2], &images[..], "images come first: {index}");
    assert_eq!(
        index["annotations"]["org.opencontainers.image.description"], "two platforms",
        "{index}"
    );
    for image in &images {
        let arm = image["platform"]["architecture"] == "arm64";
        assert_eq!(
            image["annotations"].get("com.example.arm").is_some(),
            arm,
            "manifest-descriptor[linux/arm64] goes to the arm64 entry only: {index}"
        );
    }
    let mut pairs = Vec::new();
    for (att, image) in atts.iter().zip(&images) {
        assert_eq!(
            att["platform"],
            serde_json::json!({"architecture": "unknown", "os": "unknown"})
        );
        assert_eq!(
            att["annotations"]["vnd.docker.reference.digest"], image["digest"],
            "{index}"
        );
        pairs.push((
            image["digest"].as_str().unwrap().to_string(),
            att["digest"].as_str().unwrap().to_string(),
        ));
    }
    pairs
}

#[test]
fn attestations_of_a_multi_platform_build_one_per_platform() {
    let dir = scratch("platforms-attest");
    let root = dir.join("root");
    multi_base(&root, &dir);
    let registry = Registry::start(&dir.join("registry"), None);
    let ctx = support::context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox:multi\nCOPY Cargo.lock /app/\n",
            ),
            (
                "Cargo.lock",
                "version = 3\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n",
            ),
        ],
    );
    let name = format!("{}/attested-multi:1", registry.host);
    let tar = dir.join("multi.tar");
    let oci = format!("type=oci,dest={}", tar.display());
    ok(
        &root,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--sbom=true",
            "--provenance=mode=max",
            "--annotation",
            "index:org.opencontainers.image.description=two platforms",
            "--annotation",
            "manifest-descriptor[linux/arm64]:com.example.arm=yes",
            "--annotation",
            "manifest:com.example.manifest=1",
            "-t",
            &name,
            "--push",
            "-o",
            &oci,
            ctx.to_str().unwrap(),
        ],
    );

    // Pushed: read back from the registry with skopeo.
    let skopeo = Tool::skopeo();
    let repo = format!("docker://{}/attested-multi", registry.host);
    let raw = json(
        &skopeo
            .ok(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{name}"),
            ])
            .stdout,
    );
    for (image, att) in check_attested_index(&raw) {
        let manifest = json(
            &skopeo
                .ok(&[
                    "inspect",
                    "--raw",
                    "--tls-verify=false",
                    &format!("{repo}@{image}"),
                ])
                .stdout,
        );
        assert_eq!(
            manifest["annotations"]["com.example.manifest"], "1",
            "{manifest}"
        );
        let att_manifest = json(
            &skopeo
                .ok(&[
                    "inspect",
                    "--raw",
                    "--tls-verify=false",
                    &format!("{repo}@{att}"),
                ])
                .stdout,
        );
        let layers = att_manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "{att_manifest}");
        for layer in layers {
            let statement = json(
                &std::fs::read(registry.blob_file(layer["digest"].as_str().unwrap())).unwrap(),
            );
            assert_eq!(
                format!(
                    "sha256:{}",
                    statement["subject"][0]["digest"]["sha256"]
                        .as_str()
                        .unwrap()
                ),
                image,
                "each platform's statements are about its own image"
            );
        }
    }

    // The OCI archive holds the same layout and every attestation blob.
    let transport = format!("oci-archive:{}", tar.display());
    let raw = json(&skopeo.ok(&["inspect", "--raw", &transport]).stdout);
    let pairs = check_attested_index(&raw);
    let unpacked = dir.join("unpacked");
    support::untar(&tar, &unpacked);
    let blob = |d: &str| {
        unpacked
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    for (_, att) in &pairs {
        let att_manifest = json(&std::fs::read(blob(att)).unwrap());
        let sbom = json(
            &std::fs::read(blob(att_manifest["layers"][0]["digest"].as_str().unwrap())).unwrap(),
        );
        assert_eq!(sbom["predicateType"], "https://spdx.dev/Document");
        assert_eq!(sbom["predicate"]["packages"][0]["name"], "serde", "{sbom}");
    }

    // The store's tag names the index too; `rbk inspect --attestations`
    // reads every platform's statements.
    let statements = json(&ok(&root, &["inspect", "--attestations", &name]).stdout);
    let platforms: std::collections::BTreeSet<&str> = statements
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["subject"][0]["name"]
                .as_str()
                .unwrap()
                .rsplit("platform=")
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        platforms.into_iter().collect::<Vec<_>>(),
        ["linux%2Famd64", "linux%2Farm64"]
    );
}
