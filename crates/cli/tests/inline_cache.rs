//! Inline cache and image-manifest registry caches through a real
//! docker-registry between two stores (issue 16): `--cache-to type=inline`
//! puts the cache in the pushed image, `--cache-from IMAGE` reuses its steps
//! in a fresh store, an image without one is a warning, and
//! `image-manifest=true` caches are one OCI manifest.

use std::path::{Path, PathBuf};

mod support;

use support::registry::Registry;
use support::tools::Tool;
use support::{build, context, ok, ran, stderr, stdout, store_named};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("inline-cache-{name}"))
}

const DOCKERFILE: &str =
    "FROM rbk-busybox\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nCOPY f /f\n";

fn stamp(root: &Path, image: &str) -> String {
    stdout(&ok(root, &["run", "--rm", image, "cat", "/stamp"]))
}

#[test]
fn an_inline_cache_travels_with_the_image() {
    let dir = scratch("inline");
    let reg = Registry::start(&dir.join("registry"), None);
    let first = store_named(&dir, "first");
    let ctx = context(&dir, &[("Dockerfile", DOCKERFILE), ("f", "data\n")]);
    let image = format!("{}/app:1", reg.host);
    let out = build(
        &first,
        &ctx,
        &["-t", &image, "--cache-to", "type=inline", "--push"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let label = stdout(&ok(
        &first,
        &[
            "inspect",
            "-f",
            "{{index .Config.Labels \"rbk.cache.v0\"}}",
            &image,
        ],
    ));
    assert!(label.trim().len() > 40, "no inline cache label: {label:?}");

    // A fresh store reuses the RUN step from the pushed image.
    let second = store_named(&dir, "second");
    let out = build(&second, &ctx, &["-t", "local:1", "--cache-from", &image]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        !ran(&log).iter().any(|s| s.contains("RUN")),
        "the RUN step ran again:\n{log}"
    );
    assert!(log.contains("CACHED"), "{log}");
    assert_eq!(stamp(&second, "local:1"), stamp(&first, &image));

    // An image without an inline cache is a warning; the build goes on.
    let plain = format!("{}/plain:1", reg.host);
    let out = build(&first, &ctx, &["-t", &plain, "--push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let third = store_named(&dir, "third");
    let out = build(&third, &ctx, &["--cache-from", &plain]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(&format!("WARNING: --cache-from type=registry ({plain}): {plain} is an image without an inline cache (build it with --cache-to type=inline) (building without it)")),
        "{log}"
    );
    assert!(ran(&log).iter().any(|s| s.contains("RUN")), "{log}");

    let out = build(&third, &ctx, &["--cache-from", "type=inline"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("type=inline is only for --cache-to"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn image_manifest_registry_caches_are_one_manifest() {
    let dir = scratch("image-manifest");
    let reg = Registry::start(&dir.join("registry"), None);
    let first = store_named(&dir, "first");
    let ctx = context(&dir, &[("Dockerfile", DOCKERFILE), ("f", "data\n")]);
    let cache = format!("{}/cache:main", reg.host);
    let spec =
        format!("type=registry,ref={cache},mode=max,image-manifest=true,oci-mediatypes=true");
    let out = build(&first, &ctx, &["--cache-to", &spec]);
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{cache}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    assert!(
        manifest["layers"].as_array().is_some_and(|l| !l.is_empty()),
        "{manifest}"
    );

    let second = store_named(&dir, "second");
    let out = build(
        &second,
        &ctx,
        &["--cache-from", &format!("type=registry,ref={cache}")],
    );
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(!ran(&log).iter().any(|s| s.contains("RUN")), "{log}");
}
