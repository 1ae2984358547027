use std::sync::Arc;

use rbk_store::{BlobRead, BlobWrite, CacheRecord, Descriptor, Digest, Layer, Store};

use super::*;

/// A store with one uncompressed layer (a tar holding one file).
fn store_with_layer(dir: &std::path::Path, name: &str) -> (Store, Layer) {
    let store = Store::open(&dir.join(name)).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    tar.append_data(&mut h, "f", &b"abc"[..]).unwrap();
    let bytes = tar.into_inner().unwrap();
    let info = store.put_bytes(&bytes).unwrap();
    let layer = Layer {
        diff_id: info.digest,
        blob: Descriptor {
            media_type: LAYER_TAR.into(),
            digest: info.digest,
            size: info.size,
            annotations: Default::default(),
        },
    };
    (store, layer)
}

/// Exports one record from `a` and imports its config with a fetcher that
/// copies blobs out of `a` (after `tamper` has had its say).
fn round_trip(
    a: Arc<Store>,
    layer: &Layer,
    tamper: fn(&Descriptor, Vec<u8>) -> Vec<u8>,
) -> (ImportedCache, Digest) {
    let key = Digest::sha256_of(b"key");
    let records = [(key, CacheRecord::new(vec![layer.clone()], "RUN x"))];
    let manifest = export_cache(&a, &records, Compression::Gzip).unwrap();
    let bytes = a.read_bounded(&manifest.digest, 1 << 20).unwrap();
    let manifest: rbk_store::image::Manifest = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(manifest.config.media_type, CACHE_CONFIG);
    assert_eq!(manifest.layers.len(), 1);
    assert!(manifest.layers[0].media_type.ends_with("gzip"));
    let config = a.read_bounded(&manifest.config.digest, 1 << 20).unwrap();
    let fetch: BlobFetcher = Box::new(move |store: &dyn BlobWrite, d: &Descriptor| {
        let bytes = tamper(d, a.read_bounded(&d.digest, 1 << 30).unwrap());
        store.put(&mut &bytes[..], Some((d.digest, Some(d.size))))?;
        Ok(())
    });
    (ImportedCache::named("test", &config, fetch).unwrap(), key)
}

#[test]
fn a_record_travels_compressed_and_arrives_as_it_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (a, layer) = store_with_layer(dir.path(), "a");
    let (cache, key) = round_trip(Arc::new(a), &layer, |_, b| b);
    assert_eq!(cache.len(), 1);
    let record = cache.lookup(&key).unwrap();
    assert_eq!(record.layers, vec![layer.clone()]);
    assert_eq!(record.description, "RUN x");
    assert!(cache.lookup(&Digest::sha256_of(b"other")).is_none());
    let b = Store::open(&dir.path().join("b")).unwrap();
    cache.fetch_blob(&b, &layer.blob).unwrap();
    assert_eq!(b.info(&layer.blob.digest).unwrap().size, layer.blob.size);
    b.read_bounded(&layer.blob.digest, 1 << 20).unwrap(); // verifies
}

#[test]
fn a_tampered_blob_fails_and_lands_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (a, layer) = store_with_layer(dir.path(), "a");
    let (cache, _) = round_trip(Arc::new(a), &layer, |_, mut b| {
        let last = b.len() - 1;
        b[last] ^= 1;
        b
    });
    let b = Store::open(&dir.path().join("b")).unwrap();
    let e = cache.fetch_blob(&b, &layer.blob).unwrap_err().to_string();
    assert!(
        e.contains("build cache test") && e.contains("fetching layer blob"),
        "{e}"
    );
    let mut count = 0;
    rbk_store::BlobAdmin::walk(&b, &mut |_| {
        count += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(count, 0, "nothing landed");
}

#[test]
fn inconsistent_configs_are_refused() {
    let d = |s: &[u8], t: &str| Descriptor {
        media_type: t.into(),
        digest: Digest::sha256_of(s),
        size: 1,
        annotations: Default::default(),
    };
    let layer = |diff: Digest, stored: Descriptor, blob: Descriptor| serde_json::json!({"diffID": diff, "stored": stored, "blob": blob});
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let cases = [
        (
            serde_json::json!({"schemaVersion": 2, "layers": [], "records": []}),
            "version 2",
        ),
        (
            serde_json::json!({"schemaVersion": 1, "layers": [
                layer(Digest::sha256_of(b"x"), d(b"y", LAYER_TAR), d(b"z", gz))
            ], "records": []}),
            "does not match its diff id",
        ),
        (
            serde_json::json!({"schemaVersion": 1, "layers": [], "records": [
                {"key": Digest::sha256_of(b"k"), "layers": [0]}
            ]}),
            "names layer 0",
        ),
        (
            serde_json::json!({"schemaVersion": 1, "layers": [
                layer(Digest::sha256_of(b"x"), d(b"x", "text/plain"), d(b"z", gz))
            ], "records": []}),
            "not a layer type",
        ),
    ];
    for (config, want) in cases {
        let bytes = serde_json::to_vec(&config).unwrap();
        let err = ImportedCache::new(&bytes, Box::new(|_: &dyn BlobWrite, _: &Descriptor| Ok(())))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
}
