//! Manifest, index and config parsing: valid documents, ambiguity and size
//! limits (docs/security.md D1, D3), and the store's image helpers.

use rbk_store::image::{self, Document, ImageConfig, OCI_INDEX, OCI_MANIFEST};
use rbk_store::{BlobWrite, Descriptor, Digest, Error, Store, MAX_DOCUMENT_SIZE};

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn manifest_json() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":0}},
        "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D}","size":0}}]}}"#
    )
}

#[test]
fn parses_a_valid_manifest_and_index() {
    let doc = image::parse_document(manifest_json().as_bytes(), Some(OCI_MANIFEST), "m").unwrap();
    let Document::Manifest(m) = doc else {
        panic!("expected a manifest, got {doc:?}")
    };
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.config.digest, D.parse::<Digest>().unwrap());

    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3,
        "platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    );
    let Document::Index(i) = image::parse_document(index.as_bytes(), None, "i").unwrap() else {
        panic!("expected an index")
    };
    assert_eq!(i.manifests[0].descriptor.size, 3);
    assert_eq!(i.manifests[0].platform.as_ref().unwrap()["os"], "linux");
}

#[test]
fn rejects_a_document_with_both_manifests_and_layers() {
    let mut v: serde_json::Value = serde_json::from_str(&manifest_json()).unwrap();
    v["manifests"] = serde_json::json!([]);
    let bytes = serde_json::to_vec(&v).unwrap();
    for claimed in [None, Some(OCI_MANIFEST), Some(OCI_INDEX)] {
        let err = image::parse_document(&bytes, claimed, "m").unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }
}

#[test]
fn rejects_a_media_type_that_disagrees_with_the_descriptor() {
    let err = image::parse_document(manifest_json().as_bytes(), Some(OCI_INDEX), "m").unwrap_err();
    assert!(matches!(err, Error::InvalidDocument { .. }), "{err}");
    assert!(err.to_string().contains("differs"), "{err}");
}

#[test]
fn rejects_unknown_layer_media_types_and_non_objects() {
    let bad = manifest_json().replace("tar+gzip", "tar+lz4");
    let err = image::parse_document(bad.as_bytes(), None, "m").unwrap_err();
    assert!(
        err.to_string().contains("unsupported layer media type"),
        "{err}"
    );
    assert!(image::parse_document(b"[1,2]", None, "m").is_err());
    assert!(image::parse_document(b"{\"schemaVersion\":", None, "m").is_err());
}

#[test]
fn rejects_oversize_documents() {
    let mut big = manifest_json().into_bytes();
    big.pop();
    big.resize(big.len() + MAX_DOCUMENT_SIZE as usize, b' ');
    big.push(b'}');
    let err = image::parse_document(&big, None, "m").unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(matches!(
        image::parse_config(&big, "c"),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn config_keeps_unknown_fields_through_a_round_trip() {
    let text = format!(
        r#"{{"architecture":"amd64","os":"linux","docker_version":"25.0",
        "config":{{"Cmd":["sh"],"Env":["A=1"],"Healthcheck":{{"Test":["NONE"]}},"Tty":false}},
        "rootfs":{{"type":"layers","diff_ids":["{D}"]}},
        "history":[{{"created_by":"x","empty_layer":true}}]}}"#
    );
    let cfg = image::parse_config(text.as_bytes(), "c").unwrap();
    assert_eq!(
        cfg.config.as_ref().unwrap().cmd.as_deref(),
        Some(&["sh".to_string()][..])
    );
    let again: ImageConfig = serde_json::from_slice(&serde_json::to_vec(&cfg).unwrap()).unwrap();
    assert_eq!(again, cfg);
    assert_eq!(again.extra["docker_version"], "25.0");
    // Healthcheck is modelled; unknown fields of the object are kept.
    let runtime = again.config.unwrap();
    assert_eq!(runtime.healthcheck.unwrap().test, ["NONE"]);
    assert_eq!(runtime.extra["Tty"], false);
}

#[test]
fn put_image_then_read_it_back_through_a_tag() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    let layer = store.put_bytes(b"not really a tar").unwrap();
    let cfg = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: image::RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.digest],
        },
        ..Default::default()
    };
    let layers = vec![Descriptor {
        media_type: image::OCI_LAYER.into(),
        digest: layer.digest,
        size: layer.size,
        annotations: Default::default(),
    }];
    let desc = store.put_image(&cfg, layers).unwrap();
    let r = "app:1".parse().unwrap();
    store.tag(&r, desc.clone()).unwrap();
    let img = store.image(&r).unwrap();
    assert_eq!(img.descriptor, desc);
    assert_eq!(img.config, cfg);
    assert_eq!(img.size(), layer.size + img.manifest.config.size);
}

/// Configs as Docker 20.10 wrote them (`docker import`, `docker commit`,
/// the classic builder and BuildKit, saved with `docker save`): `null` for
/// every empty field, legacy fields rbk does not model.
#[test]
fn docker_made_configs_with_nulls_parse() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/docker-configs");
    for (name, layers, cmd) in [
        ("imported", 1, None),
        (
            "committed",
            2,
            Some(vec!["sh", "-c", "echo hi > /greeting"]),
        ),
        ("classic", 3, Some(vec!["cat", "/built"])),
        ("buildkit", 3, Some(vec!["cat", "/built"])),
    ] {
        let bytes = std::fs::read(dir.join(format!("{name}.json"))).unwrap();
        assert!(
            String::from_utf8_lossy(&bytes).contains("null"),
            "{name}: the fixture lost its nulls"
        );
        let config = image::parse_config(&bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.rootfs.diff_ids.len(), layers, "{name}");
        assert_eq!(
            (config.os.as_str(), config.architecture.as_str()),
            ("linux", "amd64")
        );
        let runtime = config.config.unwrap_or_default();
        let cmd = cmd.map(|c| c.into_iter().map(String::from).collect::<Vec<_>>());
        assert_eq!(runtime.cmd, cmd, "{name}");
        assert_eq!(runtime.entrypoint, None, "{name}");
        assert!(
            runtime.volumes.is_empty() && runtime.labels.is_empty(),
            "{name}"
        );
        assert!(!runtime.extra.values().any(|v| v.is_null()), "{name}");
    }
}

#[test]
fn null_means_absent_in_manifests_indexes_and_descriptors() {
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":null,"subject":null,
        "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":0,"annotations":null,"urls":null}},
        "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D}","size":0,"annotations":null}}]}}"#
    );
    let Document::Manifest(m) = image::parse_document(manifest.as_bytes(), None, "m").unwrap()
    else {
        panic!("expected a manifest")
    };
    assert!(m.annotations.is_empty() && m.layers[0].annotations.is_empty());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":null,"annotations":null,"unknownField":{{"x":[1,null]}},
        "manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3,"platform":null,"annotations":null}}]}}"#
    );
    let Document::Index(i) = image::parse_document(index.as_bytes(), None, "i").unwrap() else {
        panic!("expected an index")
    };
    assert_eq!(i.manifests[0].platform, None);
    let config = br#"{"architecture":"amd64","os":"linux","config":null,"history":null,
        "rootfs":{"type":"layers","diff_ids":null},"author":null,"created":null}"#;
    let config = image::parse_config(config, "c").unwrap();
    assert!(config.config.is_none() && config.history.is_empty());
    assert!(config.rootfs.diff_ids.is_empty());
}

#[test]
fn schema1_and_foreign_layers_are_refused_by_name() {
    let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}"#;
    for claimed in [
        None,
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    ] {
        let err = image::parse_document(schema1, claimed, "manifest sha256:abc").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("schema-1") && text.contains("sha256:abc"),
            "{text}"
        );
    }
    for foreign in [
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ] {
        let doc = manifest_json().replace("application/vnd.oci.image.layer.v1.tar+gzip", foreign);
        let text = image::parse_document(doc.as_bytes(), None, "m")
            .unwrap_err()
            .to_string();
        assert!(text.contains("foreign") && text.contains(D), "{text}");
    }
    let zstd = manifest_json().replace(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        image::DOCKER_LAYER_ZSTD,
    );
    image::parse_document(zstd.as_bytes(), None, "m").unwrap();
}

#[test]
fn attestation_entries_are_recognised() {
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[
        {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3,"platform":{{"architecture":"amd64","os":"linux"}}}},
        {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3,"platform":{{"architecture":"unknown","os":"unknown"}},
          "annotations":{{"vnd.docker.reference.digest":"{D}","vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
    );
    let Document::Index(i) = image::parse_document(index.as_bytes(), None, "i").unwrap() else {
        panic!("expected an index")
    };
    let flags: Vec<bool> = i.manifests.iter().map(|e| e.is_attestation()).collect();
    assert_eq!(flags, [false, true]);
}
