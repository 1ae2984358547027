//! Inline cache (`--cache-to type=inline`, `--cache-from IMAGE`).
//!
//! rbk's own format, not BuildKit's (whose `moby.buildkit.cache.v0` config
//! field is undocumented): the image carries the label [`LABEL`], the
//! base64 of an rbk cache config (the same document a registry cache's
//! manifest names) holding the records of the final image's steps
//! (`mode=min`). Its layers are the image's own layers as a push sends
//! them (compressed the same way, so the same digests), so a later build
//! given `--cache-from IMAGE` fetches what a cached step needs from the
//! image's repository, and only then.

use base64::Engine as _;
use rbk_exec::{export_cache, CacheMode, Compression, Solver};
use rbk_graph::Dag;
use rbk_store::{BlobRead, Store, MAX_DOCUMENT_SIZE};

use crate::cache::CacheTransport;
use crate::error::BoxError;
use crate::{Error, Result};

/// The image label holding the inline cache.
pub const LABEL: &str = "rbk.cache.v0";

/// How `--cache-to` and messages name it.
pub(crate) const INLINE: &str = "type=inline";

/// The label to put on the image: the cache config of the solved final
/// image's steps, its layers compressed as `compression`.
pub(crate) fn label(
    store: &Store,
    solver: &Solver<'_>,
    dag: &Dag,
    compression: Compression,
) -> Result<(String, String)> {
    let records = solver.cache_records(dag, CacheMode::Min)?;
    let manifest = export_cache(store, &records, compression)?;
    let manifest = store.read_bounded(&manifest.digest, MAX_DOCUMENT_SIZE)?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest)
        .map_err(|e| Error::Invalid(format!("reading the cache manifest just written: {e}")))?;
    let config = manifest["config"]["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| Error::Invalid("the cache manifest names no config".into()))?;
    let bytes = store.read_bounded(&config, MAX_DOCUMENT_SIZE)?;
    Ok((
        LABEL.to_string(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// The cache config an image's config carries, or why there is none.
pub(crate) fn config_of_image(
    image_config: &[u8],
    reference: &str,
) -> std::result::Result<Vec<u8>, BoxError> {
    let config: serde_json::Value = serde_json::from_slice(image_config)?;
    let Some(encoded) = config["config"]["Labels"][LABEL].as_str() else {
        return Err(format!(
            "{reference} is an image without an inline cache (build it with --cache-to type=inline)"
        )
        .into());
    };
    Ok(base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("{reference}: the {LABEL} label is not base64: {e}"))?)
}

/// `--cache-to type=inline`: its work is done when the image is committed.
#[derive(Clone, Copy, Debug)]
pub struct InlineCache;

impl CacheTransport for InlineCache {
    fn describe(&self) -> String {
        INLINE.to_string()
    }

    fn import(&self, _store: &Store) -> std::result::Result<rbk_exec::ImportedCache, BoxError> {
        Err("type=inline is only for --cache-to; --cache-from takes the image (IMAGE or type=registry,ref=IMAGE)".into())
    }

    fn export(
        &self,
        _store: &Store,
        _manifest: &rbk_store::Descriptor,
    ) -> std::result::Result<(), BoxError> {
        Ok(())
    }
}
