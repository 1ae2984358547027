//! The build cache shared between machines (`--cache-to`, `--cache-from`).
//!
//! # Format
//!
//! An exported cache is an ordinary OCI image manifest, so any transport
//! that moves manifests and blobs (an OCI layout directory, a registry)
//! moves it unchanged:
//!
//! - `config` has the media type [`CACHE_CONFIG`]: a JSON document listing
//!   the cache records (key → indexes into `layers`, plus the step's
//!   description) and, for every layer, its diff id, the descriptor of the
//!   blob as the exporting store held it (`stored`) and the descriptor of the
//!   blob that travels (`blob`);
//! - `layers` are the travelling blobs, one per distinct layer, in the
//!   config's order: store layers are uncompressed, so they leave compressed
//!   (gzip by default, through [`compress_layer`]); an already compressed
//!   layer (a base image's) travels as it is.
//!
//! # Trust
//!
//! A cache source is trusted for its key → layers mapping, as BuildKit's
//! is: whoever can write the cache can choose what a key's step produced.
//! It is not trusted for bytes: every blob is ingested against its digest,
//! a compressed blob is decompressed into the store only against the
//! uncompressed digest the config promises (which must be the diff id), and
//! a blob stored compressed has its diff id checked before it is kept —
//! so a snapshot named by a diff id always holds that content, and nothing
//! unverified ever lands in the store.

mod format;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

use rbk_store::{BlobWrite, CacheRecord, Descriptor, Digest, Ingestion, Layer, Store};

use crate::layer::{compress_layer, remember_compressed, Compression, LAYER_TAR};
use crate::{Error, Result, SolveStore};

pub use format::CACHE_CONFIG;
use format::{CacheConfig, ConfigLayer, ConfigRecord};

/// Which records an export keeps (BuildKit's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Only the steps of the exported image's own chain: the target stage
    /// and the stages it is built `FROM`, not stages it only copies from.
    #[default]
    Min,
    /// Every step of the build, intermediate stages included.
    Max,
}

/// Where cache records come from besides the local store. The solver asks
/// the sources, in order, about a key the store does not have.
pub trait CacheSource: Send + Sync {
    /// The record for `key`, if the source has one. Its layers' `blob`s are
    /// the descriptors to give [`fetch_blob`](CacheSource::fetch_blob).
    fn lookup(&self, key: &Digest) -> Option<CacheRecord>;

    /// Makes `blob` (a layer blob of a record this source returned) present
    /// in `store`, verified. Called only when the solver needs its content.
    fn fetch_blob(&self, store: &dyn SolveStore, blob: &Descriptor) -> Result<()>;
}

/// Copies a travelling blob into a store. It must ingest the bytes against
/// the descriptor's digest and size (`BlobWrite::put` with
/// `Some((digest, Some(size)))` does), so that nothing unverified lands.
pub type BlobFetcher = Box<dyn Fn(&dyn BlobWrite, &Descriptor) -> Result<()> + Send + Sync>;

/// A [`SolveStore`] seen as only a [`BlobWrite`], for a [`BlobFetcher`]
/// (without trait upcasting, which needs a newer Rust than the workspace's
/// `rust-version`).
struct Writer<'a>(&'a dyn SolveStore);

impl BlobWrite for Writer<'_> {
    fn ingest(&self, expected: Option<Digest>) -> rbk_store::Result<Ingestion<'_>> {
        self.0.ingest(expected)
    }
}

/// A cache exported elsewhere, read back: its parsed config plus a way to
/// fetch its blobs.
pub struct ImportedCache {
    name: String,
    layers: Vec<ConfigLayer>,
    records: HashMap<Digest, ConfigRecord>,
    /// Index into `layers` by the stored blob's digest.
    by_stored: HashMap<Digest, usize>,
    fetch: BlobFetcher,
}

impl ImportedCache {
    /// Parses a cache config (the blob a cache manifest's `config` names,
    /// already verified against its digest) and checks it is consistent.
    pub fn new(config_bytes: &[u8], fetch: BlobFetcher) -> Result<Self> {
        Self::named("(imported)", config_bytes, fetch)
    }

    /// Like [`new`](ImportedCache::new), with a name (a directory or a
    /// reference) that errors about this cache mention.
    pub fn named(name: &str, config_bytes: &[u8], fetch: BlobFetcher) -> Result<Self> {
        let config = CacheConfig::parse(config_bytes).map_err(|reason| Error::Cache {
            name: name.to_string(),
            reason,
        })?;
        let by_stored = config
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.stored.digest, i))
            .collect();
        let records = config.records.into_iter().map(|r| (r.key, r)).collect();
        Ok(ImportedCache {
            name: name.to_string(),
            layers: config.layers,
            records,
            by_stored,
            fetch,
        })
    }

    /// How many records the cache holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the cache holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The cache's name, as given to [`named`](ImportedCache::named).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fetcher's failure: a blob that does not verify stays an error
    /// ([`Error::Cache`]); any other failure to deliver it is
    /// [`Error::CacheFetch`], which the engine answers by building
    /// without this cache.
    fn fetch_error(&self, e: Error, travelling: &Descriptor) -> Error {
        let verification = match &e {
            Error::Store(s) => s.is_mismatch(),
            Error::Cache { .. } => true,
            _ => false,
        };
        match e {
            Error::CacheFetch { .. } => e,
            e if verification => self.error(format!(
                "fetching layer blob {}: {}",
                travelling.digest,
                error_chain(&e)
            )),
            e => Error::CacheFetch {
                name: self.name.clone(),
                digest: travelling.digest,
                reason: error_chain(&e),
            },
        }
    }

    fn error(&self, reason: String) -> Error {
        Error::Cache {
            name: self.name.clone(),
            reason,
        }
    }
}

impl CacheSource for ImportedCache {
    fn lookup(&self, key: &Digest) -> Option<CacheRecord> {
        let record = self.records.get(key)?;
        let layers = record
            .layers
            .iter()
            .map(|&i| Layer {
                diff_id: self.layers[i].diff_id,
                blob: self.layers[i].stored.clone(),
            })
            .collect();
        Some(CacheRecord::new(layers, record.description.clone()))
    }

    fn fetch_blob(&self, store: &dyn SolveStore, blob: &Descriptor) -> Result<()> {
        if store.exists(&blob.digest)? {
            return Ok(());
        }
        let layer = self
            .by_stored
            .get(&blob.digest)
            .map(|&i| &self.layers[i])
            .ok_or_else(|| self.error(format!("has no layer blob {}", blob.digest)))?;
        let travelling = &layer.blob;
        let fetched_now = !store.exists(&travelling.digest)?;
        (self.fetch)(&Writer(store), travelling).map_err(|e| self.fetch_error(e, travelling))?;
        // The fetcher promised a verified ingest; a wrong size here means it
        // did not keep that promise, and nothing is built on such a blob.
        let info = store.info(&travelling.digest)?;
        if info.size != travelling.size {
            return Err(self.error(format!(
                "layer blob {} has {} bytes, the cache says {}",
                travelling.digest, info.size, travelling.size
            )));
        }
        if layer.stored.digest == travelling.digest {
            // Stored compressed: the blob is what the store keeps; its diff
            // id (which names the snapshot) must be checked before it is.
            let actual = uncompressed_digest(store, travelling)?;
            if actual != layer.diff_id {
                if fetched_now {
                    let _ = store.delete(&travelling.digest);
                }
                return Err(self.error(format!(
                    "layer blob {} uncompresses to {actual}, not to its diff id {}",
                    travelling.digest, layer.diff_id
                )));
            }
            return Ok(());
        }
        // Stored uncompressed: decompress into the store against the
        // uncompressed digest (= the diff id, checked when parsing).
        let reader = decompressor(&travelling.media_type, store.open(&travelling.digest)?)
            .map_err(|reason| self.error(format!("layer blob {}: {reason}", travelling.digest)))?;
        let mut reader = reader;
        store
            .put(
                &mut reader,
                Some((layer.stored.digest, Some(layer.stored.size))),
            )
            .map_err(|e| {
                self.error(format!(
                    "layer blob {} does not uncompress to {}: {}",
                    travelling.digest,
                    layer.stored.digest,
                    error_chain(&e)
                ))
            })?;
        if let Some(compression) = compression_of(&travelling.media_type) {
            remember_compressed(store, &layer.stored.digest, compression, travelling)?;
        }
        Ok(())
    }
}

/// Writes `records` as a cache into `store`: the travelling layer blobs
/// (compressed with `compression` as they leave the store), the config and
/// the manifest. Returns the manifest's descriptor; push or copy it with
/// everything it references. Every record's layers must be in the store.
pub fn export_cache(
    store: &Store,
    records: &[(Digest, CacheRecord)],
    compression: Compression,
) -> Result<Descriptor> {
    let mut layers: Vec<ConfigLayer> = Vec::new();
    let mut index: HashMap<Digest, usize> = HashMap::new();
    let mut out: BTreeMap<Digest, ConfigRecord> = BTreeMap::new();
    for (key, record) in records {
        let mut indexes = Vec::with_capacity(record.layers.len());
        for layer in &record.layers {
            let i = match index.get(&layer.diff_id) {
                Some(&i) => i,
                None => {
                    let blob = compress_layer(store, layer, compression)?;
                    layers.push(ConfigLayer {
                        diff_id: layer.diff_id,
                        stored: layer.blob.clone(),
                        blob,
                    });
                    index.insert(layer.diff_id, layers.len() - 1);
                    layers.len() - 1
                }
            };
            indexes.push(i);
        }
        out.insert(
            *key,
            ConfigRecord {
                key: *key,
                layers: indexes,
                description: record.description.clone(),
            },
        );
    }
    let travelling: Vec<Descriptor> = layers.iter().map(|l| l.blob.clone()).collect();
    let config = CacheConfig {
        schema_version: format::SCHEMA_VERSION,
        layers,
        records: out.into_values().collect(),
    };
    let bytes = config.to_json()?;
    let info = store.put_bytes(&bytes)?;
    let config = Descriptor {
        media_type: CACHE_CONFIG.into(),
        digest: info.digest,
        size: info.size,
        annotations: Default::default(),
    };
    Ok(store.put_manifest(config, travelling)?)
}

/// The compression a layer media type names, if rbk can make it.
fn compression_of(media_type: &str) -> Option<Compression> {
    if media_type.ends_with("gzip") {
        Some(Compression::Gzip)
    } else if media_type.ends_with("zstd") {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// A reader of the uncompressed bytes of a layer blob of `media_type`.
/// `Err` is the reason of the [`Error::Cache`] each caller makes (it knows
/// which cache and blob), hence a plain `String`.
fn decompressor<'a>(
    media_type: &str,
    raw: Box<dyn Read + Send + 'a>,
) -> std::result::Result<Box<dyn Read + 'a>, String> {
    if media_type.ends_with("gzip") {
        // rbk writes one gzip member per chunk: read them all.
        Ok(Box::new(flate2::read::MultiGzDecoder::new(raw)))
    } else if media_type.ends_with("zstd") {
        let decoder = zstd::stream::read::Decoder::new(raw).map_err(|e| e.to_string())?;
        Ok(Box::new(decoder))
    } else if media_type.ends_with(".tar") || media_type == LAYER_TAR {
        Ok(raw)
    } else {
        Err(format!("unsupported layer media type {media_type:?}"))
    }
}

/// The sha256 of the uncompressed content of the stored blob `blob`.
fn uncompressed_digest(store: &dyn SolveStore, blob: &Descriptor) -> Result<Digest> {
    let what = || std::path::PathBuf::from(format!("blob {}", blob.digest));
    let mut reader =
        decompressor(&blob.media_type, store.open(&blob.digest)?).map_err(|reason| {
            Error::Cache {
                name: format!("blob {}", blob.digest),
                reason,
            }
        })?;
    let mut hasher = rbk_store::Sha256Writer::new();
    io::copy(&mut reader, &mut hasher).map_err(|e| Error::io("decompressing", what(), e))?;
    Ok(hasher.finish())
}

/// An error and its causes on one line (the cache errors carry a reason
/// string, so the chain must not be lost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests;
