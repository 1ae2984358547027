//! A big store made quickly (the `testsuite` feature): thousands of images
//! and cache records over tiny real layers, for the scale tests and
//! `cargo xtask bench scale`.
//!
//! Every document is real (a layer is an uncompressed tar whose digest is
//! its diff id, its snapshot is that tar unpacked by the store's own
//! unpacker, a config names its layers), so every command reads it as it
//! reads a built store. What is
//! fake is the durability: files are written without fsync, and the image
//! index is written once at the end instead of once per tag, and the cache
//! records in one transaction. A snapshot can
//! carry a sparse file so that the store is big in logical bytes and tiny on
//! disk.
//!
//! The layout, and what `rbk prune` must do with it:
//!
//! - every image has two layers, a base shared by all and one of its own;
//! - `tagged` images are tagged `synthetic/img-N:latest`, `untagged` ones
//!   are kept untagged (prune deletes them with their config, manifest,
//!   layer and snapshot);
//! - cache records: the first half name layers of tagged images (prune
//!   keeps them), the rest name *cache-only* layers that no image uses
//!   (prune deletes the records, the layers and their snapshots).
//!
//! [`Synthetic`] lists each set, so a test compares what prune deleted
//! with what it had to delete.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::image::{ImageConfig, ImagePlatform, RootFs};
use crate::{CacheRecord, Descriptor, Digest, Error, Layer, Reference, Result, Store};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// How big a synthetic store to make.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// Images tagged `synthetic/img-N:latest`.
    pub tagged: usize,
    /// Images kept untagged (dangling).
    pub untagged: usize,
    /// Cache records (half over tagged images' layers, half cache-only).
    pub cache_records: usize,
    /// Distinct cache-only layers the dangling records share.
    pub cache_only_layers: usize,
    /// Logical bytes of a sparse file in each snapshot (0: none). The file
    /// is not in the layer, so a full `system verify` reports every such
    /// snapshot; `--quick` and every other command take it as it is.
    pub sparse_bytes: u64,
}

/// What was made, by fate under `rbk prune`.
#[derive(Debug, Default, Clone)]
pub struct Synthetic {
    /// The tagged references with their image ids.
    pub tagged: Vec<(Reference, Digest)>,
    /// The untagged image ids.
    pub untagged: Vec<Digest>,
    /// Blobs reachable from tagged images.
    pub live_blobs: BTreeSet<Digest>,
    /// Blobs only untagged images or dangling records reach.
    pub dead_blobs: BTreeSet<Digest>,
    /// Snapshots tagged images use.
    pub live_snapshots: BTreeSet<Digest>,
    /// Snapshots only untagged images or dangling records use.
    pub dead_snapshots: BTreeSet<Digest>,
    /// Records over tagged images' layers.
    pub kept_records: BTreeSet<Digest>,
    /// Records over cache-only layers.
    pub dangling_records: BTreeSet<Digest>,
}

impl Synthetic {
    /// Every snapshot made (live and dead).
    pub fn snapshot_count(&self) -> usize {
        self.live_snapshots.len() + self.dead_snapshots.len()
    }
}

impl Store {
    /// Fills this (empty) store as `spec` says; see the module docs.
    pub fn make_synthetic(&self, spec: &SyntheticSpec) -> Result<Synthetic> {
        let mut made = Synthetic::default();
        fs::create_dir_all(self.blobs_dir()).map_err(Error::io("creating", self.blobs_dir()))?;
        fs::create_dir_all(self.snapshots_dir())
            .map_err(Error::io("creating", self.snapshots_dir()))?;
        let base = self.synthetic_layer("base", spec.sparse_bytes)?;
        made.live_blobs.insert(base.blob.digest);
        made.live_snapshots.insert(base.diff_id);
        let mut tagged_layers = Vec::new();
        let mut images = BTreeMap::new();
        let mut untagged = BTreeMap::new();
        for n in 0..spec.tagged + spec.untagged {
            let live = n < spec.tagged;
            let own = self.synthetic_layer(&format!("image {n}"), spec.sparse_bytes)?;
            let (manifest, id, blobs) = self.synthetic_image(n, &base, &own)?;
            let (set, snaps) = if live {
                (&mut made.live_blobs, &mut made.live_snapshots)
            } else {
                (&mut made.dead_blobs, &mut made.dead_snapshots)
            };
            set.extend(blobs);
            snaps.insert(own.diff_id);
            if live {
                let reference: Reference = format!("synthetic/img-{n}:latest").parse()?;
                images.insert(reference.to_string(), manifest);
                made.tagged.push((reference, id));
                tagged_layers.push(own);
            } else {
                untagged.insert(id, manifest);
                made.untagged.push(id);
            }
        }
        let cache_only = (0..spec.cache_only_layers.max(1))
            .map(|n| self.synthetic_layer(&format!("cache {n}"), spec.sparse_bytes))
            .collect::<Result<Vec<_>>>()?;
        let keep = if tagged_layers.is_empty() {
            0
        } else {
            spec.cache_records / 2
        };
        let mut records = Vec::with_capacity(spec.cache_records);
        for n in 0..spec.cache_records {
            let key = Digest::sha256_of(format!("synthetic cache key {n}").as_bytes());
            let own = if n < keep {
                made.kept_records.insert(key);
                tagged_layers[n % tagged_layers.len()].clone()
            } else {
                made.dangling_records.insert(key);
                let layer = cache_only[n % cache_only.len()].clone();
                made.dead_blobs.insert(layer.blob.digest);
                made.dead_snapshots.insert(layer.diff_id);
                layer
            };
            let record = CacheRecord::new(vec![base.clone(), own], format!("RUN step {n}"));
            records.push((key, record));
        }
        // One transaction for all of them.
        self.cache_put_all(&records)?;
        self.update_images(|db| {
            db.images.extend(images);
            db.untagged.extend(untagged);
            Ok(())
        })?;
        Ok(made)
    }

    /// A one-file layer tar named by `text`, stored uncompressed, and its
    /// snapshot (with a sparse file of `sparse` bytes when not 0).
    fn synthetic_layer(&self, text: &str, sparse: u64) -> Result<Layer> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(text.len() as u64);
        header.set_mtime(1_700_000_000);
        let io = |e| Error::io("building a synthetic layer", "<memory>")(e);
        tar.append_data(&mut header, "layer.txt", text.as_bytes())
            .map_err(io)?;
        let bytes = tar.into_inner().map_err(io)?;
        let digest = self.synthetic_blob(&bytes)?;
        let blob = descriptor(LAYER_TAR, digest, bytes.len() as u64);
        // Unpacked as any layer is, so `system verify` finds it faithful.
        let snapshot = self.ensure_snapshot(&blob, &digest)?;
        if sparse > 0 {
            let pad = snapshot.join("sparse");
            let f = fs::File::create(&pad).map_err(Error::io("creating", &pad))?;
            f.set_len(sparse).map_err(Error::io("extending", &pad))?;
        }
        Ok(Layer {
            diff_id: digest,
            blob,
        })
    }

    /// Config and manifest of image `n` over `base` and `own`: the
    /// manifest's descriptor, the image id and every blob it reaches.
    fn synthetic_image(
        &self,
        n: usize,
        base: &Layer,
        own: &Layer,
    ) -> Result<(Descriptor, Digest, Vec<Digest>)> {
        let platform = ImagePlatform::host();
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            created: Some("2023-11-14T22:13:20Z".into()),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![base.diff_id, own.diff_id],
            },
            extra: [("synthetic".to_string(), serde_json::json!(n))].into(),
            ..ImageConfig::default()
        };
        let config_bytes = json(&config)?;
        let config = descriptor(
            OCI_CONFIG,
            self.synthetic_blob(&config_bytes)?,
            config_bytes.len() as u64,
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [base.blob, own.blob],
        });
        let manifest_bytes = json(&manifest)?;
        let digest = self.synthetic_blob(&manifest_bytes)?;
        let blobs = vec![digest, config.digest, own.blob.digest];
        let manifest = descriptor(OCI_MANIFEST, digest, manifest_bytes.len() as u64);
        Ok((manifest, config.digest, blobs))
    }

    /// Writes `bytes` as a blob without the ingest protocol's fsyncs.
    fn synthetic_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(bytes);
        write_file(&self.blob_path(&digest), bytes)?;
        Ok(digest)
    }
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        annotations: BTreeMap::new(),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidDocument {
        what: "synthetic document".into(),
        reason: e.to_string(),
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(Error::io("writing", path))
}

/// A store in a temp dir with `tagged` and `untagged` synthetic images and
/// no cache records: the fixture of the index and summary tests.
#[cfg(test)]
pub(crate) fn store_of(tagged: usize, untagged: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    let spec = SyntheticSpec {
        tagged,
        untagged,
        cache_records: 0,
        cache_only_layers: 1,
        sparse_bytes: 0,
    };
    store.make_synthetic(&spec).unwrap();
    (dir, store)
}
