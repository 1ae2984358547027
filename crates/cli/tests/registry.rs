//! `rbk push`, `pull`, `login`, `build --push` and FROM-from-a-registry,
//! against a real `docker-registry` on 127.0.0.1 — and faults: registry
//! down, wrong credentials, corrupt blobs, 500/429 and cut-off bodies (from
//! a fault-injecting proxy in front of the real registry), a platform the
//! image does not have.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::registry::{free_port, push_descriptor, Fault, FaultProxy, Registry};
use support::{context, scratch, stderr, stdout};

/// `rbk` with its own docker config dir (never the user's).
fn rbk(root: &Path, docker_config: &Path, args: &[&str]) -> Output {
    support::command(root, args)
        .env("DOCKER_CONFIG", docker_config)
        .output()
        .unwrap()
}

fn ok(root: &Path, docker_config: &Path, args: &[&str]) -> Output {
    let out = rbk(root, docker_config, args);
    assert!(
        out.status.success(),
        "rbk {args:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn fails(root: &Path, docker_config: &Path, args: &[&str]) -> String {
    let out = rbk(root, docker_config, args);
    assert!(
        !out.status.success(),
        "rbk {args:?} should fail:\n{}",
        stdout(&out)
    );
    stderr(&out)
}

fn image_id(root: &Path, cfg: &Path, image: &str) -> String {
    let out = ok(root, cfg, &["inspect", "-f", "{{.Id}}", image]);
    stdout(&out).trim().to_string()
}

fn pulled_digest(out: &Output) -> String {
    let text = stdout(out);
    text.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no Digest line in:\n{text}"))
        .to_string()
}

fn pushed_digest(out: &Output) -> String {
    let text = stdout(out);
    text.lines()
        .find_map(|l| l.split_once(": digest: "))
        .map(|(_, rest)| rest.split(' ').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no digest line in:\n{text}"))
}

fn verify_passes(root: &Path, cfg: &Path) {
    ok(root, cfg, &["system", "verify"]);
}

/// A store with the busybox base pushed to `host` as `NAME:1`.
fn pushed_base(dir: &Path, host: &str, name: &str) -> (PathBuf, PathBuf, String) {
    let cfg = dir.join("docker-config");
    let root = support::store_named(dir, "src");
    let image = format!("{host}/{name}:1");
    ok(&root, &cfg, &["tag", "rbk-busybox:latest", &image]);
    ok(&root, &cfg, &["push", &image]);
    (root, cfg, image)
}

#[test]
fn push_rmi_pull_gives_identical_digests_and_second_push_sends_nothing() {
    let dir = scratch("reg-roundtrip");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let root = support::store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nRUN echo hello > /hello\nCOPY f /f\n",
            ),
            ("f", "data\n"),
        ],
    );
    let image = format!("{}/app:1", reg.host);
    ok(
        &root,
        &cfg,
        &["build", "-q", "-t", &image, ctx.to_str().unwrap()],
    );
    let id = image_id(&root, &cfg, &image);

    let first = ok(&root, &cfg, &["push", &image]);
    let digest = pushed_digest(&first);
    assert!(
        stdout(&first).contains("pushed 4 blobs"),
        "{}",
        stdout(&first)
    );
    let second = ok(&root, &cfg, &["push", &image]);
    assert!(
        stdout(&second).contains("pushed 0 blobs (0 bytes), 4 already present"),
        "{}",
        stdout(&second)
    );
    assert_eq!(pushed_digest(&second), digest);
    // Another repository of the same registry: blobs are mounted, not sent.
    let copy = format!("{}/copy:1", reg.host);
    ok(&root, &cfg, &["tag", &image, &copy]);
    let third = ok(&root, &cfg, &["push", &copy]);
    assert!(
        stdout(&third).contains("pushed 0 blobs (0 bytes), 0 already present, 4 mounted"),
        "{}",
        stdout(&third)
    );

    ok(&root, &cfg, &["rmi", &image]);
    let pulled = ok(&root, &cfg, &["pull", &image]);
    assert_eq!(pulled_digest(&pulled), digest);
    assert!(stdout(&pulled).contains("Status: Downloaded newer image"));
    assert_eq!(image_id(&root, &cfg, &image), id);
    let again = ok(&root, &cfg, &["pull", &image]);
    assert!(
        stdout(&again).contains("Status: Image is up to date"),
        "{}",
        stdout(&again)
    );

    // A store that never saw it: pull, then build FROM an image only in the registry.
    let empty = dir.join("empty");
    let pulled = ok(&empty, &cfg, &["pull", &image]);
    assert_eq!(pulled_digest(&pulled), digest);
    assert_eq!(image_id(&empty, &cfg, &image), id);
    verify_passes(&empty, &cfg);

    let other = dir.join("other");
    let ctx2 = dir.join("ctx2");
    std::fs::create_dir_all(&ctx2).unwrap();
    std::fs::write(
        ctx2.join("Dockerfile"),
        format!("FROM {image}\nRUN cat /hello /f > /both\n"),
    )
    .unwrap();
    let derived = format!("{}/derived:1", reg.host);
    ok(
        &other,
        &cfg,
        &[
            "build",
            "-q",
            "-t",
            &derived,
            "--push",
            ctx2.to_str().unwrap(),
        ],
    );
    ok(&other, &cfg, &["inspect", &image]);
    // Pulling the base, unpacking it and packing the new layer each took a
    // per-digest lock file in ingest/, and each removed its own.
    nothing_half_stored(&other, &[]);
    // --push sent the new layer and config, and found the base layers there.
    let fresh = dir.join("fresh");
    ok(&fresh, &cfg, &["pull", &derived]);
    verify_passes(&fresh, &cfg);
}

#[test]
fn login_with_right_and_wrong_credentials() {
    let dir = scratch("reg-login");
    let reg = Registry::start(&dir.join("registry"), Some(("alice", "s3cret")));
    let cfg = dir.join("docker-config");
    let root = support::store(&dir);
    let image = format!("{}/private:1", reg.host);
    ok(&root, &cfg, &["tag", "rbk-busybox:latest", &image]);

    let err = fails(&root, &cfg, &["push", &image]);
    assert!(err.contains("denied access"), "{err}");
    let err = fails(
        &root,
        &cfg,
        &["login", "-u", "alice", "-p", "wrong", &reg.host],
    );
    assert!(
        err.contains("denied access") && err.contains(&reg.host),
        "{err}"
    );
    assert!(
        !cfg.join("config.json").exists(),
        "nothing written on failure"
    );

    let out = ok(
        &root,
        &cfg,
        &["login", "-u", "alice", "-p", "s3cret", &reg.host],
    );
    assert!(stdout(&out).contains("Login Succeeded"));
    let text = std::fs::read_to_string(cfg.join("config.json")).unwrap();
    assert!(text.contains(&reg.host), "{text}");
    ok(&root, &cfg, &["push", &image]);
    let empty = dir.join("empty");
    ok(&empty, &cfg, &["pull", &image]);

    ok(&root, &cfg, &["logout", &reg.host]);
    let err = fails(&dir.join("empty2"), &cfg, &["pull", &image]);
    assert!(err.contains("denied access"), "{err}");
}

#[test]
fn registry_down_is_a_clear_error() {
    let dir = scratch("reg-down");
    let cfg = dir.join("docker-config");
    let host = format!("127.0.0.1:{}", free_port());
    let err = fails(&dir.join("root"), &cfg, &["pull", &format!("{host}/app:1")]);
    assert!(
        err.contains("cannot connect to registry") && err.contains(&host),
        "{err}"
    );
}

#[test]
fn corrupt_blob_in_the_registry_never_lands_in_the_store() {
    let dir = scratch("reg-corrupt");
    let reg = Registry::start(&dir.join("registry"), None);
    let (src, cfg, image) = pushed_base(&dir, &reg.host, "corrupt");
    let manifest = ok(&src, &cfg, &["inspect", "-f", "{{json .RootFS}}", &image]);
    let _ = manifest;
    // Flip bytes of the (only) layer blob the registry holds, keeping its size.
    let pulled = dir.join("probe");
    let out = ok(&pulled, &cfg, &["pull", &image]);
    let digest = pulled_digest(&out);
    let store = rbk_store::Store::open(&pulled).unwrap();
    let m = store
        .read_image(&store.resolve(&image.parse().unwrap()).unwrap())
        .unwrap();
    assert_eq!(m.descriptor.digest.to_string(), digest);
    let layer = m.manifest.layers[0].digest.to_string();
    let file = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let root = dir.join("victim");
    let err = fails(&root, &cfg, &["pull", &image]);
    assert!(
        err.contains("does not match digest") && err.contains(&layer),
        "{err}"
    );
    verify_passes(&root, &cfg);
    let images = ok(&root, &cfg, &["images"]);
    assert!(!stdout(&images).contains("corrupt"), "{}", stdout(&images));
    let store = rbk_store::Store::open(&root).unwrap();
    use rbk_store::BlobRead;
    assert!(!store.exists(&layer.parse().unwrap()).unwrap());
    drop(store);
    nothing_half_stored(&root, &[]);
}

/// What a failed pull must not leave in `root`: partial ingests, their
/// per-digest lock files, and snapshots of the refused layer.
fn nothing_half_stored(root: &Path, layer_diff_ids: &[rbk_store::Digest]) {
    let store = rbk_store::Store::open(root).unwrap();
    let partial: Vec<_> = std::fs::read_dir(store.ingest_dir())
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(partial.is_empty(), "ingests left behind: {partial:?}");
    for diff_id in layer_diff_ids {
        assert!(!store.has_snapshot(diff_id), "snapshot {diff_id} was made");
    }
}

/// A registry whose layer matches its digest but not the diff id the
/// image config gives it (issue 20: layers validated at pull time): the
/// pull fails naming the layer and its diff id, before the manifest is
/// stored, so nothing is tagged, no snapshot is made and `system verify`
/// passes. Before, the pull succeeded and only the first build failed.
#[test]
fn a_layer_that_lies_about_its_diff_id_fails_the_pull() {
    use rbk_store::{BlobRead, BlobWrite};
    let dir = scratch("reg-diff-id");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let src = support::store_named(&dir, "src");
    let store = rbk_store::Store::open(&src).unwrap();
    let base = store.image(&"rbk-busybox:latest".parse().unwrap()).unwrap();
    let bytes = store
        .read_bounded(&base.manifest.config.digest, 1 << 22)
        .unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let lie = rbk_store::Digest::sha256_of(b"not what the layer holds");
    let truth: rbk_store::Digest = config["rootfs"]["diff_ids"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    config["rootfs"]["diff_ids"][0] = lie.to_string().into();
    let info = store
        .put_bytes(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    let mut config_desc = base.manifest.config.clone();
    config_desc.digest = info.digest;
    config_desc.size = info.size;
    let manifest = store
        .put_manifest(config_desc, base.manifest.layers.clone())
        .unwrap();
    let image = format!("{}/liar:1", reg.host);
    push_descriptor(&store, &cfg, &manifest, &image);

    let root = dir.join("victim");
    let err = fails(&root, &cfg, &["pull", &image]);
    let layer = base.manifest.layers[0].digest.to_string();
    assert!(
        err.contains(&layer) && err.contains("diff id") && err.contains(&lie.to_string()),
        "{err}"
    );
    verify_passes(&root, &cfg);
    let images = ok(&root, &cfg, &["images"]);
    assert!(!stdout(&images).contains("liar"), "{}", stdout(&images));
    let victim = rbk_store::Store::open(&root).unwrap();
    assert!(!victim.exists(&manifest.digest).unwrap(), "manifest stored");
    nothing_half_stored(&root, &[lie, truth]);
}

/// docs/security.md E2: a registry whose blob body is longer than the
/// manifest's descriptor says (bytes appended to the stored blob) is
/// stopped at the descriptor's size: the pull fails naming the layer and
/// nothing of it stays in the store.
#[test]
fn e2_a_blob_longer_than_its_descriptor_is_refused() {
    let dir = scratch("reg-long-blob");
    let reg = Registry::start(&dir.join("registry"), None);
    let (_, cfg, image) = pushed_base(&dir, &reg.host, "long");
    // The layer as the registry holds it (push may have compressed it).
    let probe = dir.join("probe");
    ok(&probe, &cfg, &["pull", &image]);
    let store = rbk_store::Store::open(&probe).unwrap();
    let m = store.image(&image.parse().unwrap()).unwrap();
    let layer = m.manifest.layers[0].digest.to_string();
    let file = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&file, &bytes).unwrap();

    let root = dir.join("victim");
    let err = fails(&root, &cfg, &["pull", &image]);
    assert!(
        err.contains("does not match digest") && err.contains(&layer),
        "{err}"
    );
    verify_passes(&root, &cfg);
    let victim = rbk_store::Store::open(&root).unwrap();
    use rbk_store::BlobRead;
    assert!(!victim.exists(&layer.parse().unwrap()).unwrap());
    assert!(!victim.exists(&m.descriptor.digest).unwrap());
    nothing_half_stored(&root, &[]);
}

#[test]
fn index_for_another_platform_only_is_a_clear_error() {
    let dir = scratch("reg-platform");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let root = support::store(&dir);
    // An arm64 variant of the base: same layers, config saying arm64, in an index.
    let store = rbk_store::Store::open(&root).unwrap();
    let (manifest, _) = support::registry::arm64_variant(&store);
    use rbk_store::BlobWrite;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": manifest.media_type,
            "digest": manifest.digest.to_string(),
            "size": manifest.size,
            "platform": {"os": "linux", "architecture": "arm64"}
        }]
    });
    let info = store
        .put_bytes(&serde_json::to_vec(&index).unwrap())
        .unwrap();
    let index_desc = rbk_store::Descriptor {
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        digest: info.digest,
        size: info.size,
        annotations: Default::default(),
    };
    let image = format!("{}/multi:1", reg.host);
    let report = push_descriptor(&store, &cfg, &index_desc, &image);
    assert_eq!(report.uploaded, 2, "{report:?}");

    let empty = dir.join("empty");
    let err = fails(&empty, &cfg, &["pull", "--platform", "linux/amd64", &image]);
    assert!(
        err.contains("no manifest for platform linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    verify_passes(&empty, &cfg);
    let out = ok(&empty, &cfg, &["pull", "--platform", "linux/arm64", &image]);
    assert_eq!(pulled_digest(&out), manifest.digest.to_string());
}

/// A rule that fails the first `n` connections whose request line contains
/// `only` with `fault`, then forwards; and the count of such connections.
fn first_n(
    n: usize,
    fault: Fault,
    only: &'static str,
) -> (impl Fn(&str) -> Fault + Send + Sync, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let rule = move |line: &str| {
        if line.contains(only) && seen.fetch_add(1, Ordering::SeqCst) < n {
            fault
        } else {
            Fault::Forward
        }
    };
    (rule, counter)
}

#[test]
fn server_errors_and_cut_bodies_are_retried_then_give_up() {
    let dir = scratch("reg-faults");
    let reg = Registry::start(&dir.join("registry"), None);
    let (_src, cfg, _image) = pushed_base(&dir, &reg.host, "faulty");
    let cases = [
        ("500", first_n(3, Fault::Status(500), "/manifests/")),
        ("429", first_n(3, Fault::Status(429), "/blobs/")),
        ("cut", first_n(2, Fault::Truncate, "GET /v2/faulty/blobs/")),
    ];
    for (name, (rule, seen)) in cases {
        let proxy = FaultProxy::start(&reg.host, rule);
        let root = dir.join(format!("pull-{name}"));
        let out = ok(&root, &cfg, &["pull", &format!("{}/faulty:1", proxy.host)]);
        assert!(stdout(&out).contains("Digest: sha256:"), "{name}");
        let faults = if name == "cut" { 2 } else { 3 };
        assert!(
            seen.load(Ordering::SeqCst) > faults,
            "{name}: the faults were injected and retried"
        );
        verify_passes(&root, &cfg);
    }
    let proxy = FaultProxy::start(&reg.host, |_: &str| Fault::Status(500));
    let root = dir.join("pull-always-500");
    let err = fails(&root, &cfg, &["pull", &format!("{}/faulty:1", proxy.host)]);
    assert!(
        err.contains("gave up after 5 attempts") && err.contains("500"),
        "{err}"
    );
    let images = ok(&root, &cfg, &["images"]);
    assert!(!stdout(&images).contains("faulty"));
}

/// `RepoDigests` (issue 11, item 20): after a push the pusher's image has
/// `repository@<pushed digest>`; after a pull the puller's has the same,
/// and `images --digests` shows it for that repository.
#[test]
fn repo_digests_are_recorded_after_push_and_pull() {
    let dir = scratch("reg-repo-digests");
    let reg = Registry::start(&dir.join("registry"), None);
    let (root, cfg, image) = pushed_base(&dir, &reg.host, "rd");
    let pushed = pushed_digest(&ok(&root, &cfg, &["push", &image]));
    let expected = format!("{}/rd@{pushed}", reg.host);
    let repo_digests = |root: &Path| -> serde_json::Value {
        let out = ok(
            root,
            &cfg,
            &["inspect", "--format", "{{json .RepoDigests}}", &image],
        );
        serde_json::from_str(stdout(&out).trim()).unwrap()
    };
    assert_eq!(repo_digests(&root), serde_json::json!([expected]));

    let empty = dir.join("empty");
    let pulled = ok(&empty, &cfg, &["pull", &image]);
    assert_eq!(pulled_digest(&pulled), pushed);
    assert_eq!(repo_digests(&empty), serde_json::json!([expected]));
    let listed = stdout(&ok(&empty, &cfg, &["images", "--digests", "--no-trunc"]));
    assert!(listed.contains(&pushed), "{listed}");
}

/// F11 of security.md: one image (so the same layers) pushed to two
/// repositories of one registry by two processes at once. Both pushes
/// succeed with the same digest, and each repository then serves an image
/// that pulls and verifies in an empty store.
#[test]
fn one_layer_pushed_to_two_repositories_at_once() {
    let dir = scratch("reg-two-at-once");
    let reg = Registry::start(&dir.join("registry"), None);
    let cfg = dir.join("docker-config");
    let root = support::store(&dir);
    let images: Vec<String> = ["one", "two"]
        .iter()
        .map(|repo| format!("{}/{repo}:1", reg.host))
        .collect();
    for image in &images {
        ok(&root, &cfg, &["tag", "rbk-busybox:latest", image]);
    }
    let pushes: Vec<_> = images
        .iter()
        .map(|image| {
            support::command(&root, &["push", image])
                .env("DOCKER_CONFIG", &cfg)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let digests: Vec<String> = pushes
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
            pushed_digest(&out)
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    for (n, image) in images.iter().enumerate() {
        let empty = dir.join(format!("empty{n}"));
        let pulled = ok(&empty, &cfg, &["pull", image]);
        assert_eq!(pulled_digest(&pulled), digests[0]);
        verify_passes(&empty, &cfg);
    }
    verify_passes(&root, &cfg);
}

/// E8 of security.md, against the real registry behind a fault proxy: the
/// first blob `PUT` of a push is answered 404 (the session is gone) or 416
/// (the range disagrees) after its body was read. The upload starts again
/// with a new session and the image arrives whole (**fixed**: the 4xx
/// failed the push). A registry that loses every session makes the push
/// give up naming the lost session, and no manifest (no tag) is written.
#[test]
fn e8_a_lost_upload_session_restarts_the_upload_and_a_lasting_loss_tags_nothing() {
    let dir = scratch("reg-lost-session");
    let reg = Registry::start(&dir.join("registry"), None);
    let refused = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    let seen = refused.clone();
    let proxy = FaultProxy::start(&reg.host, move |line| {
        if !(line.starts_with("PUT ") && line.contains("/blobs/uploads/")) {
            return Fault::Forward;
        }
        let (slot, code, every) = match line {
            l if l.contains("/v2/lost/") => (0, 404, false),
            l if l.contains("/v2/range/") => (1, 416, false),
            l if l.contains("/v2/lostall/") => (2, 404, true),
            _ => return Fault::Forward,
        };
        match seen[slot].fetch_add(1, Ordering::SeqCst) == 0 || every {
            true => Fault::StatusAfterBody(code),
            false => Fault::Forward,
        }
    });
    let cfg = dir.join("docker-config");
    for repo in ["lost", "range"] {
        // A store per push, so no blob is mounted from the other repository.
        let root = support::store_named(&dir, repo);
        let image = format!("{}/{repo}:1", proxy.host);
        ok(&root, &cfg, &["tag", "rbk-busybox:latest", &image]);
        let out = ok(&root, &cfg, &["push", &image]);
        assert!(stdout(&out).contains("pushed 2 blobs"), "{}", stdout(&out));
        let fresh = dir.join(format!("{repo}-pulled"));
        ok(&fresh, &cfg, &["pull", &format!("{}/{repo}:1", reg.host)]);
        verify_passes(&fresh, &cfg);
    }
    // Each repository's first blob PUT was refused, then every one taken.
    assert!(refused[0].load(Ordering::SeqCst) >= 3, "lost: no restart");
    assert!(refused[1].load(Ordering::SeqCst) >= 3, "range: no restart");

    let root = support::store_named(&dir, "lostall");
    let image = format!("{}/lostall:1", proxy.host);
    ok(&root, &cfg, &["tag", "rbk-busybox:latest", &image]);
    let err = fails(&root, &cfg, &["push", &image]);
    assert!(err.contains("lost the upload session"), "{err}");
    assert!(err.contains("gave up after 5 attempts"), "{err}");
    let err = fails(
        &dir.join("lostall-pulled"),
        &cfg,
        &["pull", &format!("{}/lostall:1", reg.host)],
    );
    assert!(err.contains("not found"), "{err}");
}

/// E10 of security.md: the store names a repository (`ghost`) of the same
/// registry as where its blobs came from, but the registry holds them only
/// in another repository. rbk asks to mount from `ghost`; the real registry
/// refuses (202, an upload session) and rbk uploads the blobs instead: a
/// blob is never taken from a repository that does not hold it, and the
/// pushed image pulls back whole.
#[test]
fn e10_a_refused_mount_falls_back_to_an_upload() {
    let dir = scratch("reg-refused-mount");
    let reg = Registry::start(&dir.join("registry"), None);
    let mounts = Arc::new(AtomicUsize::new(0));
    let asked = mounts.clone();
    let proxy = FaultProxy::start(&reg.host, move |line| {
        if line.starts_with("POST ") && line.contains("mount=") {
            asked.fetch_add(1, Ordering::SeqCst);
        }
        Fault::Forward
    });
    let cfg = dir.join("docker-config");
    // The blobs are in the registry, under `other`, pushed from elsewhere.
    pushed_base(&dir, &reg.host, "other");
    let root = support::store(&dir);
    ok(
        &root,
        &cfg,
        &[
            "tag",
            "rbk-busybox:latest",
            &format!("{}/ghost:1", proxy.host),
        ],
    );
    let image = format!("{}/target:1", proxy.host);
    ok(&root, &cfg, &["tag", "rbk-busybox:latest", &image]);
    let out = ok(&root, &cfg, &["push", &image]);
    let said = stdout(&out);
    assert!(said.contains("pushed 2 blobs"), "{said}");
    assert!(said.contains(", 0 mounted"), "{said}");
    assert!(mounts.load(Ordering::SeqCst) >= 2, "no mount was asked for");
    let fresh = dir.join("pulled");
    ok(&fresh, &cfg, &["pull", &format!("{}/target:1", reg.host)]);
    verify_passes(&fresh, &cfg);
}
