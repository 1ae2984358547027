//! Cache-mount export (`--cache-to …,cache-mounts=true`): the contents of
//! the `RUN --mount=type=cache` directories the build used, by id, travel
//! as layers of a companion artifact beside the cache (the cache's tag with
//! [`SUFFIX`]): an OCI manifest whose config lists `{id, layer digest}`
//! and whose layers (gzip) are the directories packed with the same
//! deterministic packer as image layers — an unchanged directory packs to
//! the same blob, which a registry already has, so it is not uploaded again.
//!
//! `--cache-from` with a registry cache seeds each cache directory the
//! store does not have yet from that artifact, before any step runs. The
//! contents never enter image layers: cache mounts are bind mounts.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use rbk_exec::{compress_layer, write_layer_tar, Compression, LayerOptions};
use rbk_graph::{Dag, MountKind, Op};
use rbk_store::image::OCI_MANIFEST;
use rbk_store::{
    BlobRead, BlobWrite, Descriptor, Digest, Layer, Store, UnpackOptions, MAX_DOCUMENT_SIZE,
};
use serde_json::{json, Value};

use crate::error::BoxError;
use crate::{Error, Result};

/// The companion tag's suffix.
pub(crate) const SUFFIX: &str = "-cache-mounts";
/// The companion's config media type.
pub(crate) const CONFIG_TYPE: &str = "application/vnd.rbk.cache-mounts.v1+json";

/// Where the store keeps the cache directory of `id` (as the solver names it).
fn dir_of(store: &Store, id: &str) -> PathBuf {
    store
        .root()
        .join("cache-mounts")
        .join(Digest::sha256_of(id.as_bytes()).hex())
}

/// The cache ids the graph's RUN steps mount.
fn ids(dag: &Dag) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in dag.vertices() {
        if let Op::Exec(op) = v.op() {
            for m in &op.mounts {
                if let MountKind::Cache { id, .. } = &m.kind {
                    out.insert(id.clone());
                }
            }
        }
    }
    out
}

/// Packs the cache directories `dag` used into a companion manifest in the
/// store; `None` when there are none.
pub(crate) fn pack(
    store: &Store,
    dag: &Dag,
    compression: Compression,
) -> Result<Option<Descriptor>> {
    let mut entries = Vec::new();
    let mut layers = Vec::new();
    for id in ids(dag) {
        let dir = dir_of(store, &id);
        if !dir.is_dir() {
            continue;
        }
        let work = store.work_dir()?;
        let tar_path = work.upper().join("cache.tar");
        let file = fs::File::create(&tar_path).map_err(|e| Error::Io {
            what: "creating",
            path: tar_path.display().to_string(),
            source: e,
        })?;
        write_layer_tar(
            &dir,
            std::io::BufWriter::new(file),
            &LayerOptions::default(),
        )?;
        let file = fs::File::open(&tar_path).map_err(|e| Error::Io {
            what: "reading",
            path: tar_path.display().to_string(),
            source: e,
        })?;
        let info = store.put(&mut std::io::BufReader::new(file), None)?;
        let tar = Layer {
            diff_id: info.digest,
            blob: Descriptor {
                media_type: rbk_exec::LAYER_TAR.to_string(),
                digest: info.digest,
                size: info.size,
                annotations: Default::default(),
            },
        };
        let mut blob = compress_layer(store, &tar, compression)?;
        blob.annotations
            .insert("rbk.cache-mount.id".into(), id.clone());
        entries.push(
            json!({"id": id, "digest": blob.digest.to_string(), "diffID": tar.diff_id.to_string()}),
        );
        layers.push(blob);
    }
    if layers.is_empty() {
        return Ok(None);
    }
    let config = serde_json::to_vec(&json!({"mounts": entries}))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let config = store.put_bytes(&config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": config.digest.to_string(), "size": config.size},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    let info = store.put_bytes(&bytes)?;
    Ok(Some(Descriptor {
        media_type: OCI_MANIFEST.to_string(),
        digest: info.digest,
        size: info.size,
        annotations: Default::default(),
    }))
}

/// The error of a failed export of the companion `manifest`, naming the
/// cache mount whose blob failed (every mount when the error names no blob)
/// and, when the registry refused the upload as too large (HTTP 413), what
/// to do about it.
pub(crate) fn export_error(
    store: &Store,
    manifest: &Descriptor,
    error: &(dyn std::error::Error + 'static),
) -> BoxError {
    let text = crate::error::chain(error);
    let mounts: Vec<(String, String, u64)> = store
        .read_bounded(&manifest.digest, MAX_DOCUMENT_SIZE)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|m| {
            m["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    (
                        l["annotations"]["rbk.cache-mount.id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        l["digest"].as_str().unwrap_or_default().to_string(),
                        l["size"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let failed: Vec<&(String, String, u64)> = match mounts
        .iter()
        .filter(|m| text.contains(&m.1))
        .collect::<Vec<_>>()
    {
        some if !some.is_empty() => some,
        _ => mounts.iter().collect(),
    };
    let named: Vec<String> = failed
        .iter()
        .map(|(id, digest, size)| {
            format!(
                "cache mount {id:?} ({digest}, {:.1} MiB)",
                *size as f64 / (1024.0 * 1024.0)
            )
        })
        .collect();
    let mut too_large = false;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(c) = cause {
        too_large |= c
            .downcast_ref::<rbk_registry::Error>()
            .is_some_and(rbk_registry::Error::is_too_large);
        cause = c.source();
    }
    let hint = match too_large {
        true => " (the registry refuses uploads this large, HTTP 413: raise its limit, e.g. nginx's client_max_body_size, or export to this registry without cache-mounts=true)",
        false => "",
    };
    format!("exporting {}{hint}: {text}", named.join(", ")).into()
}

/// Seeds the cache directories the store lacks from the companion manifest
/// `manifest` (in the store, with its blobs); returns the ids seeded.
pub(crate) fn seed(
    store: &Store,
    manifest: &Descriptor,
) -> std::result::Result<Vec<String>, BoxError> {
    let bytes = store.read_bounded(&manifest.digest, MAX_DOCUMENT_SIZE)?;
    let m: Value = serde_json::from_slice(&bytes)?;
    let config_digest: Digest = m["config"]["digest"].as_str().ok_or("no config")?.parse()?;
    let config: Value =
        serde_json::from_slice(&store.read_bounded(&config_digest, MAX_DOCUMENT_SIZE)?)?;
    let mut seeded = Vec::new();
    for entry in config["mounts"].as_array().ok_or("no mounts list")? {
        let id = entry["id"].as_str().ok_or("a mount without an id")?;
        let digest: Digest = entry["digest"]
            .as_str()
            .ok_or("a mount without a digest")?
            .parse()?;
        let dir = dir_of(store, id);
        if dir.exists() {
            continue; // the local cache wins
        }
        let base = dir.parent().ok_or("no cache-mounts dir")?;
        fs::create_dir_all(base)?;
        let fresh = base.join(format!(".seed-{}-{}", digest.hex(), std::process::id()));
        let blob = store.open_verified(&digest)?;
        rbk_store::unpack_layer(
            rbk_store::decompress(blob)?,
            &fresh,
            &UnpackOptions::default(),
        )?;
        // Never over a directory a concurrent build made meanwhile.
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &fresh,
            rustix::fs::CWD,
            &dir,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => seeded.push(id.to_string()),
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Box::new(std::io::Error::from(e))),
        }
        if fresh.exists() {
            let _ = fs::remove_dir_all(&fresh);
        }
    }
    Ok(seeded)
}
