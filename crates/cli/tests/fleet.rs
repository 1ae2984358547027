//! A fleet of runners on one registry (issue 19), CI-sized: three runners,
//! each with its own store, build the same repository against one loopback
//! `docker-registry` with `--cache-from`/`--cache-to type=registry,mode=max`.
//! `cargo xtask bench fleet` runs eight and times them; this checks:
//!
//! - after the first runner, no runner runs a cached RUN (a tripwire
//!   runtime proves no container starts);
//! - the registry receives each unique blob once (uploads counted in its
//!   log);
//! - concurrent exports to one ref never leave a manifest that points at a
//!   missing blob;
//! - a runner whose cache import fails halfway falls back to building.
//!
//! Real builds with runc: root, runc and /usr/bin/busybox are needed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;

mod support;

use support::registry::{Fault, FaultProxy, Registry};
use support::{
    context, ran, runner_build, scratch, stderr, store_like, store_named, tripwire_runtime,
};

const DOCKERFILE: &str = "FROM rbk-busybox AS deps\n\
     COPY lib.txt /src/lib.txt\n\
     RUN cat /src/lib.txt > /deps && seq 1 2000 > /deps-list\n\
     FROM deps AS builder\n\
     COPY app.txt /src/app.txt\n\
     RUN cat /deps /src/app.txt > /out-app\n\
     FROM rbk-busybox\n\
     COPY --from=builder /out-app /app\n\
     RUN cat /app > /app-seen\n";

/// A runner's build (see [`runner_build`]), started (not waited for).
fn spawn_build(root: &Path, ctx: &Path, extra: &[&str]) -> Child {
    runner_build(root, ctx, extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a build and returns its log; the build must succeed.
fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "build failed:\n{log}");
    log
}

fn iid(root: &Path) -> String {
    fs::read_to_string(root.with_extension("iid")).unwrap()
}

fn runs(log: &str) -> Vec<String> {
    ran(log).into_iter().filter(|l| l.contains("RUN")).collect()
}

/// Completed blob uploads in the registry's log (`PUT …/blobs/uploads/…
/// ?digest=…` answered 201), counted by digest.
fn uploads(registry: &Registry) -> BTreeMap<String, usize> {
    let log = fs::read_to_string(&registry.log).unwrap();
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let put = line.contains("http.request.method=PUT")
            && line.contains("/blobs/uploads/")
            && line.contains("http.response.status=201");
        if !put {
            continue;
        }
        let Some(at) = line.find("digest=sha256") else {
            continue;
        };
        let hex: String = line[at + "digest=sha256".len()..]
            .trim_start_matches(':')
            .trim_start_matches("%3A")
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        *counts.entry(format!("sha256:{hex}")).or_insert(0) += 1;
    }
    counts
}

/// The manifest the registry keeps for `repo:tag`, read from its storage.
fn stored_manifest(registry: &Registry, repo: &str, tag: &str) -> serde_json::Value {
    let link = registry
        .storage
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags")
        .join(tag)
        .join("current/link");
    let digest = fs::read_to_string(&link).unwrap();
    serde_json::from_slice(&fs::read(registry.blob_file(digest.trim())).unwrap()).unwrap()
}

/// Every blob `manifest` names is in the registry.
fn assert_complete(registry: &Registry, manifest: &serde_json::Value) {
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap()];
    for layer in manifest["layers"].as_array().unwrap() {
        digests.push(layer["digest"].as_str().unwrap());
    }
    for digest in digests {
        assert!(
            registry.blob_file(digest).is_file(),
            "the cache manifest names {digest}, which the registry does not have"
        );
    }
}

/// The travelling blob of the layer the record of `step` adds.
fn step_blob(registry: &Registry, manifest: &serde_json::Value, step: &str) -> String {
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(registry.blob_file(config)).unwrap()).unwrap();
    let record = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["description"].as_str().unwrap().contains(step))
        .unwrap_or_else(|| panic!("no record of {step}: {config}"));
    let top = record["layers"].as_array().unwrap().last().unwrap();
    let layer = &config["layers"][top.as_u64().unwrap() as usize];
    layer["blob"]["digest"].as_str().unwrap().to_string()
}

/// Runner `n`'s store, with the first runner's base image.
fn runner(dir: &Path, first: &Path, n: usize) -> PathBuf {
    store_like(dir, &format!("runner-{n}"), first)
}

#[test]
fn three_runners_share_one_registry_cache() {
    let dir = scratch("fleet-three-runners");
    let registry = Registry::start_logging(&dir.join("registry"), None, "info");
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", DOCKERFILE),
            ("lib.txt", "lib\n"),
            ("app.txt", "app v1\n"),
        ],
    );
    let cache = format!("{}/fleet/cache:main", registry.host);
    let from = format!("type=registry,ref={cache}");
    let to = format!("type=registry,ref={cache},mode=max");
    let flags = ["--cache-from", from.as_str(), "--cache-to", to.as_str()];

    // The first runner finds no cache (a warning) and builds everything.
    let first = store_named(&dir, "runner-1");
    let log = finish(spawn_build(&first, &ctx, &flags));
    assert_eq!(runs(&log).len(), 3, "{log}");

    // Two more runners at once, with a runtime that must not start.
    let (tripwire, mark) = tripwire_runtime(&dir);
    let mut cached = flags.to_vec();
    cached.extend(["--runtime", tripwire.to_str().unwrap()]);
    let others: Vec<PathBuf> = (2..=3).map(|n| runner(&dir, &first, n)).collect();
    let children: Vec<Child> = others
        .iter()
        .map(|root| spawn_build(root, &ctx, &cached))
        .collect();
    for child in children {
        let log = finish(child);
        assert_eq!(runs(&log), Vec::<String>::new(), "{log}");
    }
    assert!(!mark.exists(), "a cached runner started a container");
    for root in &others {
        assert_eq!(iid(root), iid(&first), "every runner makes the same image");
    }
    let counts = uploads(&registry);
    assert!(counts.len() >= 4, "uploads seen in the log: {counts:?}");
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "blobs uploaded more than once: {repeated:?}"
    );
    let manifest = stored_manifest(&registry, "fleet/cache", "main");
    assert_complete(&registry, &manifest);

    // A runner whose import fails halfway (one layer blob answers 500)
    // falls back to building the steps it could not fetch.
    let broken = step_blob(&registry, &manifest, "RUN cat /app");
    let needle = format!("GET /v2/fleet/cache/blobs/{broken}");
    let proxy = FaultProxy::start(&registry.host, move |line| {
        if line.starts_with(&needle) {
            Fault::Status(500)
        } else {
            Fault::Forward
        }
    });
    let through_proxy = format!("type=registry,ref={}/fleet/cache:main", proxy.host);
    let fourth = runner(&dir, &first, 4);
    let log = finish(spawn_build(
        &fourth,
        &ctx,
        &["--cache-from", &through_proxy],
    ));
    assert!(
        runs(&log).iter().any(|s| s.contains("RUN cat /app")),
        "the step whose layer could not be fetched ran: {log}"
    );
    assert!(log.contains("WARNING: --cache-from"), "{log}");
    assert_eq!(iid(&fourth), iid(&first), "the same image, built");
    drop(proxy);

    // Three runners export different results to one ref at once: whichever
    // manifest wins, every blob it names is there.
    let children: Vec<Child> = [first.clone(), others[0].clone(), others[1].clone()]
        .iter()
        .enumerate()
        .map(|(n, root)| {
            let ctx = dir.join(format!("ctx-{n}"));
            fs::create_dir_all(&ctx).unwrap();
            fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
            fs::write(ctx.join("lib.txt"), format!("lib of runner {n}\n")).unwrap();
            fs::write(ctx.join("app.txt"), format!("app of runner {n}\n")).unwrap();
            spawn_build(root, &ctx, &flags)
        })
        .collect();
    for child in children {
        finish(child);
    }
    let manifest = stored_manifest(&registry, "fleet/cache", "main");
    assert_complete(&registry, &manifest);
    let repeated: Vec<_> = uploads(&registry)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        repeated.is_empty(),
        "blobs uploaded more than once: {repeated:?}"
    );
    drop(registry);
    let _ = fs::remove_dir_all(&dir);
}
