//! Cache-mount export (issue 16, item 7) through a real docker-registry
//! between two stores: `cache-mounts=true` exports the contents of
//! `RUN --mount=type=cache` by id, a fresh runner's `--cache-from` seeds its
//! cache directory before the step runs, an unchanged directory exports the
//! same blob, the contents never enter image layers, a file cache is
//! refused by name, and a registry refusing large blobs (nginx's
//! `client_max_body_size` in front of it) fails the export naming the cache
//! mount while the image stays built.

use std::path::PathBuf;

mod support;

use support::registry::{Nginx, Registry};
use support::tools::Tool;
use support::{build, context, ok, rbk, stderr, stdout, store_named};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("cache-mount-export-{name}"))
}

const DOCKERFILE: &str = "FROM rbk-busybox\nARG RUNNER=a\n\
    RUN --mount=type=cache,id=downloads,target=/cache if [ -f /cache/pkg.tgz ]; then echo HIT > /result; else echo MISS > /result; echo payload-$RUNNER > /cache/pkg.tgz; fi\n";

fn companion_layers(reference: &str) -> Vec<String> {
    let raw = Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["config"]["mediaType"], "application/vnd.rbk.cache-mounts.v1+json",
        "{m}"
    );
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["annotations"]["rbk.cache-mount.id"], "downloads");
            l["digest"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn cache_mounts_travel_between_runners() {
    let dir = scratch("registry");
    let reg = Registry::start(&dir.join("registry"), None);
    let ctx = context(&dir, &[("Dockerfile", DOCKERFILE)]);
    let cache = format!("{}/cache:main", reg.host);
    let to = format!("type=registry,ref={cache},mode=max,cache-mounts=true");

    let first = store_named(&dir, "first");
    let out = build(&first, &ctx, &["-t", "app:1", "--cache-to", &to]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&ok(&first, &["run", "--rm", "app:1", "cat", "/result"])),
        "MISS\n"
    );
    // The cache contents are not in the image.
    let missing = rbk(&first, &["run", "--rm", "app:1", "ls", "/cache/pkg.tgz"]);
    assert!(!missing.status.success(), "the cache file is in the image");
    let exported = companion_layers(&format!("{cache}-cache-mounts"));
    assert_eq!(exported.len(), 1);

    // A second runner (another store, another build arg so the step runs)
    // finds the download in its cache mount.
    let second = store_named(&dir, "second");
    let from = format!("type=registry,ref={cache}");
    let out = build(
        &second,
        &ctx,
        &[
            "-t",
            "app:2",
            "--build-arg",
            "RUNNER=b",
            "--cache-from",
            &from,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&ok(&second, &["run", "--rm", "app:2", "cat", "/result"])),
        "HIT\n"
    );

    // Exporting again with the directory unchanged sends the same blob.
    let out = build(&first, &ctx, &["--no-cache", "--cache-to", &to]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(companion_layers(&format!("{cache}-cache-mounts")), exported);

    // Only registry caches carry cache mounts.
    let local = format!(
        "type=local,dest={},cache-mounts=true",
        dir.join("local-cache").display()
    );
    let out = build(&first, &ctx, &["--no-cache", "--cache-to", &local]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot carry cache mounts (cache-mounts=true needs type=registry)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_registry_refusing_large_blobs_fails_the_export_by_name() {
    let dir = scratch("too-large");
    let reg = Registry::start(&dir.join("registry"), None);
    // The base image's layer (about 1 MB) passes; the cache mount's 4 MiB
    // of random bytes does not.
    let nginx = Nginx::start(&dir.join("nginx"), &reg.host, "2m");
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN --mount=type=cache,id=big,target=/cache dd if=/dev/urandom of=/cache/big bs=1024 count=4096 2>/dev/null && echo built > /result\n",
        )],
    );
    let root = store_named(&dir, "runner");
    let cache = format!("{}/cache:main", nginx.host);
    let to = format!("type=registry,ref={cache},mode=max,cache-mounts=true");
    let out = build(&root, &ctx, &["-t", "big:1", "--cache-to", &to]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cache mount \"big\""),
        "the error names the cache mount: {err}"
    );
    assert!(
        err.contains("the registry refuses uploads this large, HTTP 413"),
        "the error says why and what to do: {err}"
    );
    // Nothing is lost: the image was committed before the export.
    assert_eq!(
        stdout(&ok(&root, &["run", "--rm", "big:1", "cat", "/result"])),
        "built\n"
    );
    // The regular cache reached the registry; only the big blob did not.
    let raw = Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/cache:main", reg.host),
    ]);
    assert!(raw.status.success());
}
