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

/// `len` bytes of xorshift64*: nothing gzip can shrink.
fn random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The size of blob `digest` in the registry, and its gzip members
/// decompressed.
fn registry_blob(reg: &Registry, digest: &str) -> (u64, Vec<u8>) {
    use std::io::Read;
    let gz = std::fs::read(reg.blob_file(digest)).unwrap();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    (gz.len() as u64, tar)
}

/// Layers are uploaded while the next is compressed (`push_staged`), and
/// random bytes go as gzip "stored" blocks: the blobs are valid gzip of
/// the layers, the same bytes from another store compressing on one
/// thread, readable by skopeo and by a pull into an empty store; a blob
/// the registry has is not sent again.
#[test]
fn random_layers_push_stored_reproducibly_and_skopeo_reads_them_back() {
    let dir = scratch("regmore-stored");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // Past one 4 MiB chunk, so a layer has a stored and a short member.
    let random = random_bytes((5 << 20) + 1000, 7);
    std::fs::write(ctx.join("r.bin"), &random).unwrap();
    std::fs::write(ctx.join("r2.bin"), random_bytes(3 << 20, 9)).unwrap();
    std::fs::write(ctx.join("t.txt"), "text ".repeat(100_000)).unwrap();
    let df = "FROM scratch\nCOPY r.bin /r.bin\nCOPY t.txt /t.txt\nCOPY r2.bin /r2.bin\n";
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    std::fs::write(
        ctx.join("Dockerfile.more"),
        format!("{df}COPY Dockerfile /d\n"),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let image = format!("{}/stored:1", reg.host);
    let a = dir.join("a");
    ok(&a, &cfg, &["build", "-q", "-t", &image, ctx]);

    let first = ok(&a, &cfg, &["push", &image]);
    assert!(first.contains("pushed 4 blobs"), "{first}");
    let (digest, _) = final_push_line(&first, "1");
    let layers = pushed_layers(&reg, &digest);
    assert_eq!(layers.len(), 3);
    // The random layer: barely bigger or smaller than its tar (stored
    // blocks, but a chunk holding a tar header compresses), and its
    // members decompress to a tar holding the file.
    let (size, tar) = registry_blob(&reg, &layers[0]);
    let len = tar.len() as u64;
    assert!(
        size + 4096 > len && size < len + len / 1000 + 256,
        "{size} of {len}"
    );
    assert!(tar.windows(4096).any(|w| w == &random[(1 << 20)..][..4096]));
    // The text layer is compressed as before.
    let (size, tar) = registry_blob(&reg, &layers[1]);
    assert!(size * 20 < tar.len() as u64, "{size} of {}", tar.len());
    let second = ok(&a, &cfg, &["push", &image]);
    assert!(
        second.contains("pushed 0 blobs (0 bytes), 4 already present"),
        "{second}"
    );

    // Another store, one compressing thread: the same compressed bytes.
    let b = dir.join("b");
    let other = format!("{}/other:1", reg.host);
    ok(&b, &cfg, &["build", "-q", "-t", &other, ctx]);
    let out = support::command(&b, &["push", &other])
        .env("DOCKER_CONFIG", &cfg)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (other_digest, _) = final_push_line(&stdout(&out), "1");
    assert_eq!(pushed_layers(&reg, &other_digest), layers);

    // One more layer on top: only it and the config are sent.
    let more = format!("{}/stored:2", reg.host);
    let more_df = format!("{ctx}/Dockerfile.more");
    ok(&a, &cfg, &["build", "-q", "-t", &more, "-f", &more_df, ctx]);
    let pushed = ok(&a, &cfg, &["push", &more]);
    assert!(pushed.contains("pushed 2 blobs"), "{pushed}");
    assert!(pushed.contains("3 already present"), "{pushed}");

    // skopeo copies it out (checking every blob's digest), and a pull into
    // an empty store checks each layer's diff id.
    let out_dir = dir.join("skopeo-dir");
    support::tools::Tool::skopeo().ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{more}"),
        &format!("dir:{}", out_dir.display()),
    ]);
    for layer in &layers {
        let file = out_dir.join(layer.strip_prefix("sha256:").unwrap());
        assert_eq!(
            std::fs::read(file).unwrap(),
            std::fs::read(reg.blob_file(layer)).unwrap()
        );
    }
    let c = dir.join("c");
    ok(&c, &cfg, &["pull", &more]);
    ok(&c, &cfg, &["system", "verify"]);
}
