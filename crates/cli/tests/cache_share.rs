//! The build cache shared between machines: `--cache-to` / `--cache-from`
//! with the local (OCI layout) transport. Two stores stand for two CI
//! runners. Real builds with runc; these tests need root, runc and
//! /usr/bin/busybox.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

mod support;

use support::{context, ok, ran, runner_build, scratch, stderr, store_named, tripwire_runtime};

const DOCKERFILE: &str = "FROM rbk-busybox AS builder\n\
     COPY lib.txt /src/lib.txt\n\
     RUN cat /src/lib.txt > /out-lib && echo built > /built\n\
     COPY app.txt /src/app.txt\n\
     RUN cat /src/lib.txt /src/app.txt > /out-app\n\
     FROM rbk-busybox\n\
     COPY --from=builder /out-app /app\n\
     RUN cat /app > /app-seen\n";

/// A runner's build (see [`runner_build`]), waited for.
fn build(root: &Path, ctx: &Path, extra: &[&str]) -> Output {
    runner_build(root, ctx, extra).output().unwrap()
}

fn iid(root: &Path) -> String {
    fs::read_to_string(root.with_extension("iid")).unwrap()
}

fn steps(log: &str) -> Vec<String> {
    ran(log)
        .into_iter()
        .filter(|l| l.contains("RUN") || l.contains("COPY"))
        .collect()
}

/// The cache config of the layout at `dir` (through index.json → manifest).
fn cache_config(dir: &Path) -> serde_json::Value {
    let read = |d: &str| -> serde_json::Value {
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.rbk.buildcache.config.v1+json"
    );
    read(manifest["config"]["digest"].as_str().unwrap())
}

fn descriptions(config: &serde_json::Value) -> Vec<String> {
    config["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap().to_string())
        .collect()
}

/// The travelling blob of the top layer of the record whose step matches.
fn top_blob(config: &serde_json::Value, step: &str) -> String {
    let record = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["description"].as_str().unwrap().contains(step))
        .unwrap();
    let top = record["layers"].as_array().unwrap().last().unwrap();
    let layer = &config["layers"][top.as_u64().unwrap() as usize];
    layer["blob"]["digest"].as_str().unwrap().to_string()
}

/// Runner B's store: empty but for the same base image as runner A's (as
/// two runners pulling one base from a registry).
fn runner_b(dir: &Path, a: &Path) -> PathBuf {
    support::store_like(dir, "runner-b", a)
}

fn has_blob(root: &Path, digest: &str) -> bool {
    root.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
        .exists()
}

/// Runner A builds and exports (max and min); returns the context and the
/// two cache directories.
fn runner_a(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let a = store_named(dir, "runner-a");
    let ctx = context(
        dir,
        &[
            ("Dockerfile", DOCKERFILE),
            ("lib.txt", "lib\n"),
            ("app.txt", "app v1\n"),
        ],
    );
    let max = dir.join("cache-max");
    let min = dir.join("cache-min");
    let to_max = format!("type=local,dest={},mode=max", max.display());
    let to_min = format!("type=local,dest={}", min.display());
    let out = build(&a, &ctx, &["--cache-to", &to_max, "--cache-to", &to_min]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        steps(&stderr(&out))
            .iter()
            .filter(|s| s.contains("RUN"))
            .count(),
        3,
        "runner A builds cold: {}",
        stderr(&out)
    );
    (a, ctx, max, min)
}

#[test]
fn a_fleet_shares_its_cache_through_a_directory() {
    let dir = scratch("cache-fleet");
    let (a, ctx, max, min) = runner_a(&dir);
    assert!(max.join("oci-layout").is_file());
    let config = cache_config(&max);

    // mode=min keeps only the final stage's chain.
    let all = descriptions(&config);
    let few = descriptions(&cache_config(&min));
    assert!(few.len() < all.len(), "min {few:?} vs max {all:?}");
    assert!(all.iter().any(|d| d.contains("/out-lib")), "{all:?}");
    assert!(!few.iter().any(|d| d.contains("/src/")), "{few:?}");
    assert!(few.iter().any(|d| d.contains("cat /app")), "{few:?}");

    // Runner B: only the base image, and a runtime that must not be used.
    let b = runner_b(&dir, &a);
    let (tripwire, mark) = tripwire_runtime(&dir);
    let from = format!("type=local,src={}", max.display());
    let out = build(
        &b,
        &ctx,
        &[
            "--cache-from",
            &from,
            "--runtime",
            tripwire.to_str().unwrap(),
        ],
    );
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(!mark.exists(), "runner B started a container: {log}");
    assert_eq!(steps(&log), Vec::<String>::new(), "{log}");
    assert!(
        log.matches("CACHED").count() >= 6,
        "every step is CACHED: {log}"
    );
    assert_eq!(iid(&a), iid(&b), "the same image");
    // Lazy: the builder stage's layers were never fetched.
    let builder_top = top_blob(&config, "/out-lib");
    assert!(!has_blob(&b, &builder_top), "{builder_top} was fetched");
    ok(&b, &["system", "verify"]);

    // The exported cache is reused: exporting again rewrites no blob.
    let stamp = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    let blob = max.join("blobs/sha256").join(&builder_top[7..]);
    let before = stamp(&blob);
    let out = build(
        &a,
        &ctx,
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stamp(&blob), before);

    // One source file changes: B runs the steps from the COPY reading it on.
    fs::write(ctx.join("app.txt"), "app v2\n").unwrap();
    let out = build(&b, &ctx, &["--cache-from", &from]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let reran = steps(&log);
    assert_eq!(reran.len(), 4, "{reran:?}\n{log}");
    assert!(reran[0].contains("COPY app.txt"), "{reran:?}");
    assert!(reran.iter().any(|s| s.contains("/out-app")), "{reran:?}");
    assert!(reran.iter().any(|s| s.contains("COPY --from")), "{reran:?}");
    assert!(
        !reran.iter().any(|s| s.contains("COPY lib.txt")),
        "{reran:?}"
    );
    assert!(!reran.iter().any(|s| s.contains("/out-lib")), "{reran:?}");
    let image = String::from_utf8(ok(&b, &["images", "-q"]).stdout).unwrap();
    assert!(!image.is_empty());
    ok(&b, &["system", "verify"]);
}

#[test]
fn a_corrupt_cache_blob_never_lands_in_the_store() {
    let dir = scratch("cache-corrupt");
    let (a, ctx, max, _min) = runner_a(&dir);
    let config = cache_config(&max);
    // Corrupt the final step's layer (B needs it for the image).
    let top = top_blob(&config, "cat /app");
    let path = max.join("blobs/sha256").join(&top[7..]);
    let len = fs::metadata(&path).unwrap().len() as usize;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, vec![b'x'; len]).unwrap();

    let b = runner_b(&dir, &a);
    let from = format!("type=local,src={}", max.display());
    let out = build(&b, &ctx, &["--cache-from", &from]);
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains(&max.display().to_string()),
        "names the cache: {log}"
    );
    assert!(log.contains(&top), "names the blob: {log}");
    assert!(!has_blob(&b, &top), "the corrupt blob landed");
    ok(&b, &["system", "verify"]);
}

#[test]
fn an_unreadable_cache_is_a_warning_and_the_build_goes_on() {
    let dir = scratch("cache-missing");
    let b = store_named(&dir, "runner-b");
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", "FROM rbk-busybox\nRUN echo hi > /hi\n"),
            ("x", ""),
        ],
    );
    let missing = dir.join("no-such-cache");
    let garbled = dir.join("garbled");
    fs::create_dir_all(&garbled).unwrap();
    fs::write(garbled.join("index.json"), "{not json").unwrap();
    for cache in [&missing, &garbled] {
        let from = format!("type=local,src={}", cache.display());
        let out = build(&b, &ctx, &["--cache-from", &from]);
        let log = stderr(&out);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("WARNING: --cache-from"), "{log}");
        assert!(log.contains(&cache.display().to_string()), "{log}");
    }
    // A bad spec is an error.
    let out = build(&b, &ctx, &["--cache-to", "type=local"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs dest=DIR"), "{}", stderr(&out));
}

#[test]
fn a_fleet_shares_its_cache_through_a_registry() {
    let dir = scratch("cache-fleet-registry");
    let registry = support::registry::Registry::start(&dir.join("registry"), None);
    let a = store_named(&dir, "runner-a");
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", DOCKERFILE),
            ("lib.txt", "lib\n"),
            ("app.txt", "app v1\n"),
        ],
    );
    let cache = format!("{}/fleet/cache:main", registry.host);
    let to = format!("type=registry,ref={cache},mode=max");
    let out = build(&a, &ctx, &["--cache-to", &to]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(steps(&stderr(&out)).len(), 6, "{}", stderr(&out));

    // Runner B: empty store but for the base, a runtime that must not run.
    let b = runner_b(&dir, &a);
    let (tripwire, mark) = tripwire_runtime(&dir);
    let from = format!("type=registry,ref={cache}");
    let out = build(
        &b,
        &ctx,
        &[
            "--cache-from",
            &from,
            "--runtime",
            tripwire.to_str().unwrap(),
        ],
    );
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(!mark.exists(), "runner B started a container: {log}");
    assert_eq!(steps(&log), Vec::<String>::new(), "{log}");
    assert_eq!(iid(&a), iid(&b), "the same image");
    ok(&b, &["system", "verify"]);

    // One source file changes: only the steps from its COPY on run again.
    fs::write(ctx.join("app.txt"), "app v2\n").unwrap();
    let out = build(&b, &ctx, &["--cache-from", &from]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let reran = steps(&log);
    assert_eq!(reran.len(), 4, "{reran:?}\n{log}");
    assert!(reran[0].contains("COPY app.txt"), "{reran:?}");

    // A cache reference nothing was pushed to is a warning, not a failure.
    let missing = format!("type=registry,ref={}/fleet/none:x", registry.host);
    let out = build(&b, &ctx, &["--cache-from", &missing]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WARNING: --cache-from"),
        "{}",
        stderr(&out)
    );
}
