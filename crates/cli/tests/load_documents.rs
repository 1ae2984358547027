//! `rbk load` of image documents that are wrong where it matters (docs/security.md
//! rules 4-6): each fails with an error naming the field and the digest,
//! and tags nothing. Also the lenient side: docker-archive layers compressed
//! with xz or bzip2, which `docker load` takes.
//!
//! The archives start as `rbk save` output of the busybox base; each case
//! edits one document and re-hashes what points at it, so only the intended
//! rule is broken.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest as _;

mod support;

use support::{ok, rbk, stderr, stdout};

/// An archive as path → bytes, in entry order.
type Entries = BTreeMap<String, Vec<u8>>;

fn read_archive(path: &Path) -> Entries {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = Entries::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e.path().unwrap().to_str().unwrap().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

fn write_archive(entries: &Entries, path: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        support::file(&mut b, name, 0o644, bytes);
    }
    b.finish().unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())
}

/// A store with the base image, and its OCI archive's entries.
fn saved_base(dir: &Path) -> (PathBuf, Entries) {
    let root = support::store(dir);
    let archive = dir.join("base.tar");
    let path = archive.to_str().unwrap();
    ok(
        &root,
        &["save", "--format", "oci", "-o", path, "rbk-busybox"],
    );
    (root, read_archive(&archive))
}

/// The OCI archive's single manifest, as JSON.
fn manifest(entries: &Entries) -> Value {
    let index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    serde_json::from_slice(&entries[&blob_path(digest)]).unwrap()
}

/// Stores `bytes` as a blob and returns its digest.
fn put_blob(entries: &mut Entries, bytes: Vec<u8>) -> String {
    let digest = sha256(&bytes);
    entries.insert(blob_path(&digest), bytes);
    digest
}

/// Replaces the manifest with `manifest` (its bytes as given) and points
/// index.json at it.
fn set_manifest_bytes(entries: &mut Entries, bytes: Vec<u8>) -> String {
    let size = bytes.len();
    let digest = put_blob(entries, bytes);
    let mut index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    index["manifests"][0]["digest"] = digest.clone().into();
    index["manifests"][0]["size"] = size.into();
    entries.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    digest
}

/// Replaces the config with `bytes` and re-points the manifest at it.
/// Returns the new config digest.
fn set_config_bytes(entries: &mut Entries, bytes: Vec<u8>) -> String {
    let mut m = manifest(entries);
    let size = bytes.len();
    let digest = put_blob(entries, bytes);
    m["config"]["digest"] = digest.clone().into();
    m["config"]["size"] = size.into();
    set_manifest_bytes(entries, serde_json::to_vec(&m).unwrap());
    digest
}

fn config(entries: &Entries) -> Value {
    let digest = manifest(entries)["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    serde_json::from_slice(&entries[&blob_path(&digest)]).unwrap()
}

/// Loads `entries` into a new store beside `base` (a store that holds the
/// blobs would take them without reading) and expects a failure whose
/// message holds every one of `expect`, with no tag made.
fn assert_refused(dir: &Path, base: &Path, case: &str, entries: &Entries, expect: &[&str]) {
    let root = &base.with_file_name(format!("fresh-{case}"));
    let path = dir.join(format!("{case}.tar"));
    write_archive(entries, &path);
    let out = rbk(root, &["load", "-i", path.to_str().unwrap()]);
    let text = stderr(&out);
    assert!(!out.status.success(), "{case}: load succeeded");
    for needle in expect {
        assert!(text.contains(needle), "{case}: {needle:?} not in: {text}");
    }
    assert!(text.contains("no image was tagged"), "{case}: {text}");
    assert_eq!(
        stdout(&ok(root, &["images", "-q", "--no-trunc"])),
        "",
        "{case}: an image was tagged"
    );
    ok(root, &["system", "verify"]);
}

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("load-docs-{name}"))
}

#[test]
fn a_diff_ids_count_that_does_not_match_the_layers_is_refused() {
    let dir = scratch("diff-ids");
    let (root, mut entries) = saved_base(&dir);
    let mut cfg = config(&entries);
    let first = cfg["rootfs"]["diff_ids"][0].clone();
    cfg["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(first);
    let id = set_config_bytes(&mut entries, serde_json::to_vec(&cfg).unwrap());
    assert_refused(&dir, &root, "diff-ids", &entries, &["diff_ids", &id]);
}

#[test]
fn a_layer_that_does_not_unpack_to_its_diff_id_is_refused() {
    let dir = scratch("diff-id-value");
    let (root, mut entries) = saved_base(&dir);
    let mut cfg = config(&entries);
    let wrong = sha256(b"something else");
    cfg["rootfs"]["diff_ids"][0] = wrong.clone().into();
    set_config_bytes(&mut entries, serde_json::to_vec(&cfg).unwrap());
    let layer = manifest(&entries)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_refused(&dir, &root, "diff-id-value", &entries, &[&layer, &wrong]);
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
    let dir = scratch("digest");
    let (root, mut entries) = saved_base(&dir);
    let layer = manifest(&entries)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = entries.get_mut(&blob_path(&layer)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    assert_refused(
        &dir,
        &root,
        "digest",
        &entries,
        &["digest mismatch", &layer],
    );
}

#[test]
fn a_config_that_is_not_json_is_refused() {
    let dir = scratch("config-json");
    let (root, mut entries) = saved_base(&dir);
    let id = set_config_bytes(&mut entries, b"{\"architecture\": \"amd64\", oops".to_vec());
    assert_refused(&dir, &root, "config-json", &entries, &["config", &id]);
}

#[test]
fn an_unknown_layer_media_type_is_refused() {
    let dir = scratch("media-type");
    let (root, mut entries) = saved_base(&dir);
    let mut m = manifest(&entries);
    m["layers"][0]["mediaType"] = "application/vnd.example.layer.v1.tar+lz4".into();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let digest = set_manifest_bytes(&mut entries, serde_json::to_vec(&m).unwrap());
    assert_refused(
        &dir,
        &root,
        "media-type",
        &entries,
        &["media type", "vnd.example.layer", &layer, &digest],
    );
}

#[test]
fn an_archive_with_two_index_documents_is_refused() {
    let dir = scratch("duplicate-index");
    let (root, entries) = saved_base(&dir);
    // The second index.json names nothing: taking either copy silently
    // would load a different set of images.
    let path = dir.join("duplicate.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (name, bytes) in &entries {
        support::file(&mut b, name, 0o644, bytes);
    }
    let empty = br#"{"schemaVersion":2,"manifests":[]}"#;
    support::file(&mut b, "index.json", 0o644, empty);
    b.finish().unwrap();
    let fresh = root.with_file_name("fresh-duplicate");
    let out = rbk(&fresh, &["load", "-i", path.to_str().unwrap()]);
    let text = stderr(&out);
    assert!(!out.status.success(), "load succeeded: {text}");
    assert!(text.contains("index.json appears more than once"), "{text}");
    ok(&fresh, &["system", "verify"]);
}

#[test]
fn a_manifest_over_the_size_bound_is_refused() {
    let dir = scratch("oversize");
    let (root, mut entries) = saved_base(&dir);
    let mut bytes = serde_json::to_vec(&manifest(&entries)).unwrap();
    bytes.pop();
    bytes.extend(std::iter::repeat_n(b' ', 5 << 20));
    bytes.push(b'}');
    let digest = set_manifest_bytes(&mut entries, bytes);
    assert_refused(
        &dir,
        &root,
        "oversize",
        &entries,
        &["exceeds the limit", &digest],
    );
}

#[test]
fn a_schema1_manifest_is_refused_saying_so() {
    let dir = scratch("schema1");
    let (root, mut entries) = saved_base(&dir);
    let doc = br#"{"schemaVersion":1,"name":"library/x","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let digest = set_manifest_bytes(&mut entries, doc.to_vec());
    let mut index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    index["manifests"][0]["mediaType"] =
        "application/vnd.docker.distribution.manifest.v1+prettyjws".into();
    entries.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    assert_refused(&dir, &root, "schema1", &entries, &["schema-1", &digest]);
}

/// A docker-archive whose layer is compressed by `compress`: loads, the
/// layer is stored decompressed (its digest is the diff id, as in Docker's
/// store) and the image id is unchanged.
fn compressed_layer_loads(name: &str, compress: fn(&[u8]) -> Vec<u8>) {
    let dir = scratch(name);
    let root = support::store(&dir);
    let archive = dir.join("base.tar");
    ok(
        &root,
        &["save", "-o", archive.to_str().unwrap(), "rbk-busybox"],
    );
    let mut entries = read_archive(&archive);
    let docker: Value = serde_json::from_slice(&entries["manifest.json"]).unwrap();
    let layer = docker[0]["Layers"][0].as_str().unwrap().to_string();
    let plain = entries.remove(&layer).unwrap();
    let packed = compress(&plain);
    assert_ne!(packed, plain);
    let renamed = format!("{name}/layer.tar");
    entries.insert(renamed.clone(), packed);
    let mut docker = docker.clone();
    docker[0]["Layers"][0] = renamed.into();
    docker[0]["RepoTags"] = serde_json::json!([format!("{name}:1")]);
    entries.insert("manifest.json".into(), serde_json::to_vec(&docker).unwrap());
    entries.remove("index.json");
    let edited = dir.join("edited.tar");
    write_archive(&entries, &edited);

    let other = dir.join("other");
    ok(&other, &["load", "-i", edited.to_str().unwrap()]);
    let id = |root: &Path, image: &str| stdout(&ok(root, &["images", "-q", "--no-trunc", image]));
    assert_eq!(id(&other, &format!("{name}:1")), id(&root, "rbk-busybox"));
    let inspect: Value =
        serde_json::from_slice(&ok(&other, &["inspect", &format!("{name}:1")]).stdout).unwrap();
    assert_eq!(
        inspect[0]["RootFS"]["Layers"][0].as_str().unwrap(),
        sha256(&plain)
    );
    ok(&other, &["system", "verify"]);
}

#[test]
fn docker_archive_layers_compressed_with_xz_load() {
    compressed_layer_loads("xz", |bytes| {
        let mut w = liblzma::write::XzEncoder::new(Vec::new(), 1);
        w.write_all(bytes).unwrap();
        w.finish().unwrap()
    });
}

#[test]
fn docker_archive_layers_compressed_with_bzip2_load() {
    compressed_layer_loads("bzip2", |bytes| {
        let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        w.write_all(bytes).unwrap();
        w.finish().unwrap()
    });
}

#[test]
fn a_foreign_layer_is_refused_naming_it() {
    let dir = scratch("foreign");
    let (root, mut entries) = saved_base(&dir);
    let mut m = manifest(&entries);
    // What a Windows base image's manifest holds: a layer whose content is
    // elsewhere (`urls`), which no archive or registry carries.
    m["layers"][0]["mediaType"] =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
    m["layers"][0]["urls"] = serde_json::json!(["https://example.invalid/layer"]);
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let digest = set_manifest_bytes(&mut entries, serde_json::to_vec(&m).unwrap());
    assert_refused(
        &dir,
        &root,
        "foreign",
        &entries,
        &["foreign/non-distributable layer", &layer, &digest],
    );
}

/// The base image under an index that also lists a BuildKit attestation
/// manifest (platform `unknown/unknown`, listed first here so that taking
/// the first entry would be wrong), as `docker buildx build --provenance`
/// writes it. Returns the index's digest.
fn with_attestation(entries: &mut Entries) -> String {
    // Its layers gzip-compressed, as an exporter writes them.
    // The archive keeps only what the new documents name.
    let mut m = manifest(entries);
    let old: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    entries.remove(&blob_path(old["manifests"][0]["digest"].as_str().unwrap()));
    for layer in m["layers"].as_array_mut().unwrap() {
        let plain = entries
            .remove(&blob_path(layer["digest"].as_str().unwrap()))
            .unwrap();
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(&plain).unwrap();
        let packed = w.finish().unwrap();
        layer["size"] = packed.len().into();
        layer["digest"] = put_blob(entries, packed).into();
        layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    }
    set_manifest_bytes(entries, serde_json::to_vec(&m).unwrap());
    let top: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let image = &top["manifests"][0];
    let statement = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": "_", "digest": {"sha256": image["digest"].as_str().unwrap().trim_start_matches("sha256:")}}],
        "predicate": {"buildType": "https://mobyproject.org/buildkit@v1"}
    }))
    .unwrap();
    let statement_size = statement.len();
    let statement_digest = put_blob(entries, statement);
    let att_config = serde_json::to_vec(&serde_json::json!({
        "architecture": "unknown", "os": "unknown", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [statement_digest]}
    }))
    .unwrap();
    let att_config_size = att_config.len();
    let att_config_digest = put_blob(entries, att_config);
    let att = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": att_config_digest, "size": att_config_size},
        "layers": [{
            "mediaType": "application/vnd.in-toto+json", "digest": statement_digest, "size": statement_size,
            "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
        }]
    }))
    .unwrap();
    let att_size = att.len();
    let att_digest = put_blob(entries, att);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": att_digest, "size": att_size,
                "annotations": {
                    "vnd.docker.reference.digest": image["digest"],
                    "vnd.docker.reference.type": "attestation-manifest"
                },
                "platform": {"architecture": "unknown", "os": "unknown"}
            },
            {
                "mediaType": image["mediaType"], "digest": image["digest"], "size": image["size"],
                "platform": {"architecture": "amd64", "os": "linux"}
            }
        ]
    }))
    .unwrap();
    let index_size = index.len();
    let index_digest = put_blob(entries, index);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index_size,
            "annotations": {
                "io.containerd.image.name": "docker.io/library/attested:1",
                "org.opencontainers.image.ref.name": "1"
            }
        }]
    });
    entries.insert("index.json".into(), serde_json::to_vec(&top).unwrap());
    index_digest
}

/// Issue 10: attestation entries of an index are skipped when the image
/// for a platform is chosen (the load, `FROM`) and kept when the index is
/// copied (`save`, `push`): the index keeps its bytes and digest.
#[test]
fn attestation_manifests_are_skipped_for_the_platform_and_kept_in_copies() {
    let dir = scratch("attested");
    let (root, mut entries) = saved_base(&dir);
    let index_digest = with_attestation(&mut entries);
    let archive = dir.join("attested.tar");
    write_archive(&entries, &archive);
    let other = dir.join("other");
    ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    let id = |root: &Path, image: &str| stdout(&ok(root, &["images", "-q", "--no-trunc", image]));
    assert_eq!(id(&other, "attested:1"), id(&root, "rbk-busybox"));
    // A build on it runs the image's own binaries.
    let ctx = support::context(
        &dir,
        &[("Dockerfile", "FROM attested:1\nRUN echo built-on > /on\n")],
    );
    ok(&other, &support::build_args(&ctx, &["-t", "on-attested"]));

    // save keeps the index with its attestation, and every blob it names.
    let saved = dir.join("saved.tar");
    ok(
        &other,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            saved.to_str().unwrap(),
            "attested:1",
        ],
    );
    let out = read_archive(&saved);
    let top: Value = serde_json::from_slice(&out["index.json"]).unwrap();
    assert_eq!(
        top["manifests"][0]["digest"],
        index_digest.as_str(),
        "{top}"
    );
    for (name, bytes) in &entries {
        if name.starts_with("blobs/") {
            assert_eq!(out.get(name), Some(bytes), "{name} not kept as it was");
        }
    }
    let third = dir.join("third");
    ok(&third, &["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(id(&third, "attested:1"), id(&root, "rbk-busybox"));
    ok(&third, &["system", "verify"]);

    // push sends the same index, attestation included.
    let registry = support::registry::Registry::start(&dir.join("registry"), None);
    let name = format!("{}/attested:1", registry.host);
    ok(&other, &["tag", "attested:1", &name]);
    let pushed = stdout(&ok(&other, &["push", &name]));
    assert!(
        pushed.contains(&format!("digest: {index_digest} ")),
        "{pushed}"
    );
    let raw = support::tools::Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert_eq!(sha256(&raw.stdout), index_digest);
    let att = top_entry_digest(&raw.stdout, 0);
    let att = support::tools::Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/attested@{att}", registry.host),
    ]);
    let att: Value = serde_json::from_slice(&att.stdout).unwrap();
    let statement = att["layers"][0]["digest"].as_str().unwrap();
    assert!(registry.blob_file(statement).is_file(), "{att}");
    ok(&other, &["system", "verify"]);

    // `pull --all-platforms` brings the attestation too, so the index is
    // the registry's; a plain pull takes the amd64 image.
    let pulled = dir.join("pulled");
    ok(&pulled, &["pull", "--all-platforms", &name]);
    let resaved = dir.join("resaved.tar");
    ok(
        &pulled,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            resaved.to_str().unwrap(),
            &name,
        ],
    );
    let top: Value = serde_json::from_slice(&read_archive(&resaved)["index.json"]).unwrap();
    assert_eq!(
        top["manifests"][0]["digest"],
        index_digest.as_str(),
        "{top}"
    );
    ok(&pulled, &["system", "verify"]);
    let plain = dir.join("plain");
    ok(&plain, &["pull", &name]);
    assert_eq!(id(&plain, &name), id(&root, "rbk-busybox"));
}

fn top_entry_digest(index: &[u8], n: usize) -> String {
    let index: Value = serde_json::from_slice(index).unwrap();
    index["manifests"][n]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An image the archive gives no name (an OCI layout entry without a
/// reference, as `skopeo copy … oci:DIR` without a tag writes it) is kept
/// as `<none>`, as `docker load` keeps it: listed, and found by its id.
#[test]
fn an_image_without_a_name_is_kept_untagged() {
    let dir = scratch("unnamed");
    let (root, mut entries) = saved_base(&dir);
    let mut index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    index["manifests"][0]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    entries.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
    let archive = dir.join("unnamed.tar");
    write_archive(&entries, &archive);
    let other = dir.join("other");
    let said = stdout(&ok(&other, &["load", "-i", archive.to_str().unwrap()]));
    let id = stdout(&ok(&root, &["images", "-q", "--no-trunc", "rbk-busybox"]));
    assert_eq!(said, format!("Loaded image ID: {id}"));
    let listed = stdout(&ok(
        &other,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    ));
    assert_eq!(listed, format!("<none>:<none> {}\n", &id.trim()[7..19]));
    let ctx = support::context(
        &dir,
        &[(
            "Dockerfile",
            &format!("FROM {}\nRUN true\n", &id.trim()[7..19]),
        )],
    );
    ok(&other, &support::build_args(&ctx, &["-t", "on-unnamed"]));
    ok(&other, &["system", "verify"]);
}

/// How a case compresses a layer.
type Compress = dyn Fn(&[u8]) -> Vec<u8>;

/// Issue 10: the layer media types of Docker and OCI, gzip, zstd and
/// uncompressed, each in an OCI archive: loaded (the image id is the
/// base's: the config is unchanged) and built on with a RUN.
#[test]
fn layers_of_every_docker_and_oci_media_type_load_and_run() {
    let dir = scratch("media-types");
    let (root, entries) = saved_base(&dir);
    let gzip = |b: &[u8]| {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(b).unwrap();
        w.finish().unwrap()
    };
    let zstd = |b: &[u8]| zstd::encode_all(b, 1).unwrap();
    let plain = |b: &[u8]| b.to_vec();
    let cases: [(&str, &str, &Compress); 6] = [
        ("oci-tar", "application/vnd.oci.image.layer.v1.tar", &plain),
        (
            "oci-gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &gzip,
        ),
        (
            "oci-zstd",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &zstd,
        ),
        (
            "docker-tar",
            "application/vnd.docker.image.rootfs.diff.tar",
            &plain,
        ),
        (
            "docker-gzip",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            &gzip,
        ),
        (
            "docker-zstd",
            "application/vnd.docker.image.rootfs.diff.tar.zstd",
            &zstd,
        ),
    ];
    let id = |root: &Path, image: &str| stdout(&ok(root, &["images", "-q", "--no-trunc", image]));
    for (name, media_type, compress) in cases {
        let mut entries = entries.clone();
        let mut m = manifest(&entries);
        for layer in m["layers"].as_array_mut().unwrap() {
            let bytes = compress(&entries[&blob_path(layer["digest"].as_str().unwrap())]);
            layer["size"] = bytes.len().into();
            layer["digest"] = put_blob(&mut entries, bytes).into();
            layer["mediaType"] = media_type.into();
        }
        if media_type.contains("docker") {
            m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
            m["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
        }
        set_manifest_bytes(&mut entries, serde_json::to_vec(&m).unwrap());
        let mut index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
        index["manifests"][0]["mediaType"] = m["mediaType"].clone();
        index["manifests"][0]["annotations"]["io.containerd.image.name"] =
            format!("docker.io/library/{name}:1").into();
        entries.insert("index.json".into(), serde_json::to_vec(&index).unwrap());
        let archive = dir.join(format!("{name}.tar"));
        write_archive(&entries, &archive);
        let store = dir.join(name);
        ok(&store, &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(
            id(&store, &format!("{name}:1")),
            id(&root, "rbk-busybox"),
            "{name}"
        );
        let ctx = support::context(
            &dir.join(format!("ctx-{name}")),
            &[(
                "Dockerfile",
                &format!("FROM {name}:1\nRUN busybox true && echo ran > /ran\n"),
            )],
        );
        ok(&store, &support::build_args(&ctx, &["-t", "on-it"]));
        ok(&store, &["system", "verify"]);
    }
}

/// Issue 10: a base whose config has no history entry for its layer (as
/// tools that write no history leave it) is built on the way BuildKit's
/// exporter builds on it: one entry per unaccounted top layer is appended,
/// with the comment `buildkit.exporter.image.v0`, so every layer has an
/// entry. A step that changed nothing shows `0B` in `rbk history`, as in
/// Docker (the empty layer holds no file).
#[test]
fn a_base_without_history_is_padded_and_empty_layers_show_0b() {
    let dir = scratch("no-history");
    let (root, mut entries) = saved_base(&dir);
    let mut cfg = config(&entries);
    cfg.as_object_mut().unwrap().remove("history");
    set_config_bytes(&mut entries, serde_json::to_vec(&cfg).unwrap());
    let archive = dir.join("no-history.tar");
    write_archive(&entries, &archive);
    let other = dir.join("other");
    ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    let ctx = support::context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo hi > /f\nENV A=1\nRUN true\n",
        )],
    );
    ok(&other, &support::build_args(&ctx, &["-t", "padded"]));
    let built = support::config(&other, "padded");
    let history = built["history"].as_array().unwrap();
    let with_layer = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(with_layer, 3, "one entry per layer: {history:?}");
    let last = history.last().unwrap();
    assert_eq!(last["comment"], "buildkit.exporter.image.v0", "{last}");
    assert!(last["created"].is_string(), "{last}");
    // The padded entry pairs with the top layer: the empty one of RUN true.
    let rows = stdout(&ok(
        &other,
        &["history", "--format", "{{.Size}}|{{.Comment}}", "padded"],
    ));
    assert_eq!(
        rows.lines().next(),
        Some("0B|buildkit.exporter.image.v0"),
        "{rows}"
    );

    // On a base with its history: RUN true's own row shows 0B.
    ok(&root, &support::build_args(&ctx, &["-t", "whole"]));
    let rows = stdout(&ok(
        &root,
        &["history", "--format", "{{.Size}}|{{.CreatedBy}}", "whole"],
    ));
    let top: Vec<&str> = rows.lines().take(3).collect();
    assert_eq!(top[0], "0B|RUN /bin/sh -c true # buildkit", "{rows}");
    assert_eq!(top[1], "0B|ENV A=1", "{rows}");
    assert!(
        !top[2].starts_with("0B") && top[2].ends_with("|RUN /bin/sh -c echo hi > /f # buildkit"),
        "{rows}"
    );
}

/// D6 of security.md: labels and `Volumes` that hold `../` and absolute
/// host paths are data only. The image loads, a build FROM it runs, the
/// values read back verbatim, and nothing is made at the host paths they
/// name.
#[test]
fn labels_and_volumes_with_dotdot_are_data_only() {
    let dir = scratch("d6");
    let (base, mut entries) = saved_base(&dir);
    let host = dir.join("host-side");
    let host_vol = format!("/../../../..{}/vol", host.display());
    let mut cfg = config(&entries);
    cfg["config"]["Volumes"] = serde_json::json!({ host_vol.clone(): {}, "../../up": {} });
    cfg["config"]["Labels"] = serde_json::json!({ "../../k": host_vol.clone() });
    set_config_bytes(&mut entries, serde_json::to_vec(&cfg).unwrap());
    let root = base.with_file_name("fresh-d6");
    let path = dir.join("d6.tar");
    write_archive(&entries, &path);
    ok(&root, &["load", "-i", path.to_str().unwrap()]);
    let id = stdout(&ok(&root, &["images", "-q", "--no-trunc"]))
        .trim()
        .to_string();
    ok(&root, &["tag", &id, "d6:1"]);
    let ctx = support::context(
        &dir,
        &[(
            "Dockerfile",
            "FROM d6:1\nRUN ls -a / > /listing && touch /ran\n",
        )],
    );
    let out = dir.join("out");
    let spec = format!("type=local,dest={}", out.display());
    let built = support::build(&root, &ctx, &["-t", "d6:2", "--output", &spec]);
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(out.join("ran").exists());
    assert!(!host.exists(), "a volume or label made {}", host.display());
    assert!(!out.join("up").exists() && !dir.join("up").exists());
    let inspect = stdout(&ok(&root, &["inspect", "d6:1"]));
    let shown: Value = serde_json::from_str(&inspect).unwrap();
    let config = &shown[0]["Config"];
    assert_eq!(config["Labels"]["../../k"], host_vol.as_str(), "{inspect}");
    assert!(config["Volumes"].get(&host_vol).is_some(), "{inspect}");
    ok(&root, &["system", "verify"]);
}
