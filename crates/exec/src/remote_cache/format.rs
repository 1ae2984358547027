//! The cache config document (see the module docs of `remote_cache`).

use std::collections::HashSet;

use rbk_store::image::is_layer_media_type;
use rbk_store::{Descriptor, Digest, MAX_DOCUMENT_SIZE};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The media type of a cache manifest's config.
pub const CACHE_CONFIG: &str = "application/vnd.rbk.buildcache.config.v1+json";

/// The version this code writes and reads.
pub(super) const SCHEMA_VERSION: u32 = 1;

/// The config: layers, then records pointing into them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CacheConfig {
    pub(super) schema_version: u32,
    pub(super) layers: Vec<ConfigLayer>,
    pub(super) records: Vec<ConfigRecord>,
}

/// One distinct layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ConfigLayer {
    /// The uncompressed digest.
    #[serde(rename = "diffID")]
    pub(super) diff_id: Digest,
    /// The blob as the exporting store kept it (what image manifests and
    /// cache records name).
    pub(super) stored: Descriptor,
    /// The blob that travels (a manifest layer).
    pub(super) blob: Descriptor,
}

/// One cache record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ConfigRecord {
    pub(super) key: Digest,
    /// Indexes into [`CacheConfig::layers`], lowest layer first.
    pub(super) layers: Vec<usize>,
    #[serde(default)]
    pub(super) description: String,
}

impl CacheConfig {
    /// Parses and checks a config: bounded, known version, indexes in
    /// range, layer media types, and stored/travelling blobs that agree
    /// with the diff id (an uncompressed stored blob *is* the diff id; a
    /// compressed one travels as it is). `Err` is the reason of the
    /// [`crate::Error::Cache`] the caller makes (it knows which cache),
    /// hence a plain `String`.
    pub(super) fn parse(bytes: &[u8]) -> std::result::Result<CacheConfig, String> {
        if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
            return Err(format!(
                "cache config is larger than {MAX_DOCUMENT_SIZE} bytes"
            ));
        }
        let config: CacheConfig =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid cache config: {e}"))?;
        if config.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "cache config version {} is not supported (this rbk reads version {SCHEMA_VERSION})",
                config.schema_version
            ));
        }
        for layer in &config.layers {
            for d in [&layer.stored, &layer.blob] {
                if !is_layer_media_type(&d.media_type) {
                    return Err(format!(
                        "layer {} has media type {:?}, not a layer type",
                        d.digest, d.media_type
                    ));
                }
            }
            let stored_plain = layer.stored.media_type.ends_with(".tar");
            if stored_plain && layer.stored.digest != layer.diff_id {
                return Err(format!(
                    "uncompressed layer {} does not match its diff id {}",
                    layer.stored.digest, layer.diff_id
                ));
            }
            if !stored_plain && layer.stored != layer.blob {
                return Err(format!(
                    "compressed layer {} travels as a different blob {}",
                    layer.stored.digest, layer.blob.digest
                ));
            }
        }
        let mut keys = HashSet::new();
        for record in &config.records {
            if !keys.insert(record.key) {
                return Err(format!("record {} appears twice", record.key));
            }
            if let Some(bad) = record.layers.iter().find(|&&i| i >= config.layers.len()) {
                return Err(format!(
                    "record {} names layer {bad}, but there are {}",
                    record.key,
                    config.layers.len()
                ));
            }
        }
        Ok(config)
    }

    pub(super) fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Cache {
            name: "cache config".into(),
            reason: e.to_string(),
        })
    }
}
