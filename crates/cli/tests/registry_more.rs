//! More registry behaviour against a real `docker-registry` on 127.0.0.1:
//! a manifest named directly (no index) for another platform, and Docker's
//! per-layer lines of `rbk pull` and `rbk push`.

mod support;

use std::path::Path;
use std::process::Output;

use rbk_store::BlobRead;
use support::registry::{push_descriptor, Registry};
use support::{scratch, stderr, stdout};

/// `rbk` with its own docker config dir (never the user's).
fn rbk(root: &Path, cfg: &Path, args: &[&str]) -> Output {
    support::command(root, args)
        .env("DOCKER_CONFIG", cfg)
        .output()
        .unwrap()
}

fn ok(root: &Path, cfg: &Path, args: &[&str]) -> String {
    let out = rbk(root, cfg, args);
    assert!(
        out.status.success(),
        "rbk {args:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The pushed manifest's layer digests, read from the registry's storage.
fn pushed_layers(reg: &Registry, manifest: &str) -> Vec<String> {
    let bytes = std::fs::read(reg.blob_file(manifest)).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn short(digest: &str) -> &str {
    &digest.strip_prefix("sha256:").unwrap()[..12]
}

/// `TAG: digest: sha256:… size: N` → (digest, N).
fn final_push_line(out: &str, tag: &str) -> (String, u64) {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tag}: digest: ")))
        .unwrap_or_else(|| panic!("no final line in:\n{out}"));
    let (digest, size) = line.split_once(" size: ").unwrap();
    (digest.to_string(), size.parse().unwrap())
}

#[test]
fn manifest_without_index_for_another_platform_is_a_clear_error() {
    let dir = scratch("regmore-platform");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let root = support::store(&dir);
    // The base's layers under a config that says arm64, pushed as a plain
    // manifest (no index to choose from).
    let store = rbk_store::Store::open(&root).unwrap();
    let (manifest, config_desc) = support::registry::arm64_variant(&store);
    let image = format!("{}/armonly:1", reg.host);
    push_descriptor(&store, &cfg, &manifest, &image);

    let empty = dir.join("empty");
    let out = rbk(&empty, &cfg, &["pull", "--platform", "linux/amd64", &image]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is for linux/arm64, not the requested platform linux/amd64"),
        "{err}"
    );
    // Nothing landed: not the config, not a layer, no tag.
    let fresh = rbk_store::Store::open(&empty).unwrap();
    assert!(!fresh.exists(&config_desc.digest).unwrap());
    let base = store.image(&"rbk-busybox:latest".parse().unwrap()).unwrap();
    for layer in &base.manifest.layers {
        assert!(!fresh.exists(&layer.digest).unwrap());
    }
    assert!(!ok(&empty, &cfg, &["images"]).contains("armonly"));
    ok(&empty, &cfg, &["system", "verify"]);

    let out = ok(&empty, &cfg, &["pull", "--platform", "linux/arm64", &image]);
    assert!(
        out.contains(&format!("Digest: {}", manifest.digest)),
        "{out}"
    );
}

#[test]
fn push_and_pull_print_dockers_layer_lines() {
    let dir = scratch("regmore-lines");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let a = support::store_named(&dir, "a");
    let ctx = support::context(
        &dir,
        &[
            ("Dockerfile", "FROM rbk-busybox\nCOPY f /f\nCOPY g /g\n"),
            ("f", "one\n"),
            ("g", "two\n"),
        ],
    );
    let image = format!("{}/lines:v1", reg.host);
    ok(
        &a,
        &cfg,
        &["build", "-q", "-t", &image, ctx.to_str().unwrap()],
    );

    // First push: every layer is sent; the last line names tag, digest, size.
    let first = ok(&a, &cfg, &["push", &image]);
    assert!(
        first.starts_with(&format!(
            "The push refers to repository [{}/lines]\n",
            reg.host
        )),
        "{first}"
    );
    let (digest, size) = final_push_line(&first, "v1");
    assert_eq!(
        std::fs::metadata(reg.blob_file(&digest)).unwrap().len(),
        size
    );
    let layers = pushed_layers(&reg, &digest);
    assert_eq!(layers.len(), 3, "{first}");
    for layer in &layers {
        assert!(
            first.contains(&format!("{}: Pushed\n", short(layer))),
            "{first}"
        );
    }
    // Second push: nothing is sent, each layer says so.
    let second = ok(&a, &cfg, &["push", &image]);
    for layer in &layers {
        assert!(
            second.contains(&format!("{}: Layer already exists\n", short(layer))),
            "{second}"
        );
    }
    assert!(!second.contains(": Pushed"), "{second}");
    assert_eq!(final_push_line(&second, "v1"), (digest.clone(), size));
    // Another repository of the same registry: layers are mounted.
    let copy = format!("{}/copy:v1", reg.host);
    ok(&a, &cfg, &["tag", &image, &copy]);
    let third = ok(&a, &cfg, &["push", &copy]);
    for layer in &layers {
        assert!(
            third.contains(&format!("{}: Mounted from lines\n", short(layer))),
            "{third}"
        );
    }

    // Pull into an empty store: every layer is fetched.
    let b = dir.join("b");
    let pulled = ok(&b, &cfg, &["pull", &image]);
    assert!(pulled.starts_with("v1: Pulling from lines\n"), "{pulled}");
    for layer in &layers {
        assert!(
            pulled.contains(&format!("{}: Pull complete\n", short(layer))),
            "{pulled}"
        );
    }
    assert!(pulled.contains(&format!("Digest: {digest}\n")), "{pulled}");
    // The same layers under another name: the store has them all.
    let again = ok(&b, &cfg, &["pull", &copy]);
    for layer in &layers {
        assert!(
            again.contains(&format!("{}: Already exists\n", short(layer))),
            "{again}"
        );
    }
    assert!(!again.contains("Pull complete"), "{again}");
    ok(&b, &cfg, &["system", "verify"]);
}

#[test]
fn parallelism_knob_is_checked() {
    let dir = scratch("regmore-knob");
    let root = dir.join("root");
    let out = support::command(&root, &["pull", "127.0.0.1:1/x:1"])
        .env("DOCKER_CONFIG", dir.join("cfg"))
        .env("RBK_REGISTRY_PARALLEL", "zero")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("RBK_REGISTRY_PARALLEL=\"zero\": expected a positive number"),
        "{}",
        stderr(&out)
    );
}
