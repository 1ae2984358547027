//! Manifest, index and config parsing: valid documents, ambiguity and size
//! limits (security.md D1, D3), and the store's image helpers.

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
        "config":{{"Cmd":["sh"],"Env":["A=1"],"Healthcheck":{{"Test":["NONE"]}}}},
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
    assert!(again.config.unwrap().extra.contains_key("Healthcheck"));
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
