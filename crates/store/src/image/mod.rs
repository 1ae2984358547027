//! Image documents: OCI and Docker schema-2 manifests and indexes, and the
//! image config, with strict, bounded parsing (docs/security.md rules 5, 6).
//!
//! A document is read at most [`MAX_DOCUMENT_SIZE`](crate::MAX_DOCUMENT_SIZE)
//! bytes, must be a JSON object, must not carry both `manifests` and `layers`
//! (CVE-2021-41190), and its `mediaType`, when present, must agree with the
//! media type of the descriptor that pointed at it.
//!
//! Elsewhere rbk reads documents the way Docker and containerd do: a JSON
//! `null` anywhere in a document means the field is absent (Docker writes
//! `"Env": null`, `"Volumes": null`, `"Labels": null`, … for every empty
//! field of a config it made), and unknown fields are accepted. Unknown fields of the
//! image config survive a parse/serialise round trip (`extra` maps), but rbk
//! never re-serialises a config it did not write: loaded blobs keep their
//! bytes and so their digests.

mod config;
mod platforms;
mod time;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{BlobRead, BlobWrite, Descriptor, Digest, Error, Reference, Result, Store};

pub use config::{ContainerConfig, Empty, Healthcheck, History, ImageConfig, RootFs};
pub use platforms::{is_index_media_type, ImagePlatform};
pub use time::{format_rfc3339, parse_rfc3339};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema-2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The diff id of the empty layer: a tar of nothing but its two zero
/// end blocks (1,024 bytes), what a step that changed nothing commits.
pub const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
/// Docker zstd layer (containerd's name for it; BuildKit writes it with
/// `compression=zstd` and Docker media types).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker schema-1 manifests, signed and unsigned (refused: deprecated
/// since Docker 1.10, and their history-embedded configs cannot keep their
/// digests).
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// The annotation BuildKit puts on the attestation manifests it adds to an
/// index (platform `unknown/unknown`), and its value there.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// See [`REFERENCE_TYPE_ANNOTATION`].
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// Whether `media_type` is a layer type rbk can unpack.
pub fn is_layer_media_type(media_type: &str) -> bool {
    [
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_ZSTD,
    ]
    .contains(&media_type)
}

/// Whether `media_type` is a foreign (Windows base) or non-distributable
/// layer: its content lives elsewhere, so rbk cannot use the image.
fn is_foreign_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.docker.image.rootfs.foreign.")
        || media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

/// An image manifest (OCI or Docker schema 2; the JSON shapes agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_MANIFEST`] or [`DOCKER_MANIFEST`]; optional in OCI documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// Optional annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One entry of an [`Index`]: a descriptor plus its optional platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The manifest's descriptor.
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// The platform it targets (`architecture`, `os`, `variant`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<BTreeMap<String, serde_json::Value>>,
}

impl IndexEntry {
    /// Whether this entry is an attestation manifest (SBOM/provenance) that
    /// BuildKit adds beside the images: never a platform's image.
    pub fn is_attestation(&self) -> bool {
        self.descriptor
            .annotations
            .get(REFERENCE_TYPE_ANNOTATION)
            .is_some_and(|t| t == ATTESTATION_MANIFEST)
    }
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_INDEX`] or [`DOCKER_LIST`]; optional in OCI documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<IndexEntry>,
    /// Optional annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A parsed manifest-or-index document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image manifest.
    Manifest(Manifest),
    /// An index or manifest list.
    Index(Index),
}

fn invalid(what: &str, reason: impl Into<String>) -> Error {
    Error::InvalidDocument {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Checks the size and shape shared by every document and returns its
/// object, with every `null` member removed (see the module docs).
fn parse_object(bytes: &[u8], what: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    if bytes.len() as u64 > crate::MAX_DOCUMENT_SIZE {
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit: crate::MAX_DOCUMENT_SIZE,
        });
    }
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            drop_nulls(&mut map);
            Ok(map)
        }
        Ok(_) => Err(invalid(what, "not a JSON object")),
        Err(e) => Err(invalid(what, e.to_string())),
    }
}

/// Removes `null` members from `map` and from every object nested in it
/// (inside arrays too). Iterative: the depth is whatever the input is,
/// bounded only by serde_json's own nesting limit.
fn drop_nulls(map: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::Value;
    map.retain(|_, v| !v.is_null());
    let mut pending: Vec<&mut Value> = map.values_mut().collect();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(inner) => {
                inner.retain(|_, v| !v.is_null());
                pending.extend(inner.values_mut());
            }
            Value::Array(items) => pending.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Parses a manifest or index. `media_type` is the type the referring
/// descriptor claimed (if any); the document must agree with it.
pub fn parse_document(bytes: &[u8], media_type: Option<&str>, what: &str) -> Result<Document> {
    let map = parse_object(bytes, what)?;
    if map.contains_key("manifests") && (map.contains_key("layers") || map.contains_key("config")) {
        return Err(invalid(
            what,
            "has both \"manifests\" and \"layers\"/\"config\"",
        ));
    }
    let own = match map.get("mediaType") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid(what, "mediaType is not a string")),
    };
    if let (Some(own), Some(claimed)) = (own.as_deref(), media_type) {
        if own != claimed {
            return Err(invalid(
                what,
                format!("mediaType {own:?} differs from the descriptor's {claimed:?}"),
            ));
        }
    }
    let kind = own.as_deref().or(media_type);
    let schema1 = kind.is_some_and(|k| DOCKER_SCHEMA1.contains(&k))
        || map.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1);
    if schema1 {
        return Err(invalid(
            what,
            "is a Docker schema-1 manifest, which rbk does not support (deprecated since \
             Docker 1.10; push the image again with a current docker or convert it with \
             `skopeo copy --format v2s2`)",
        ));
    }
    let is_index = match kind {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => return Err(invalid(what, format!("unsupported media type {other:?}"))),
        None => map.contains_key("manifests"),
    };
    let value = serde_json::Value::Object(map);
    let doc = if is_index {
        Document::Index(serde_json::from_value(value).map_err(|e| invalid(what, e.to_string()))?)
    } else {
        let m: Manifest =
            serde_json::from_value(value).map_err(|e| invalid(what, e.to_string()))?;
        check_manifest(&m, what)?;
        Document::Manifest(m)
    };
    Ok(doc)
}

fn check_manifest(m: &Manifest, what: &str) -> Result<()> {
    if m.schema_version != 2 {
        return Err(invalid(what, format!("schemaVersion {}", m.schema_version)));
    }
    if m.config.media_type != OCI_CONFIG && m.config.media_type != DOCKER_CONFIG {
        return Err(invalid(
            what,
            format!("unsupported config media type {:?}", m.config.media_type),
        ));
    }
    if let Some(layer) = m
        .layers
        .iter()
        .find(|l| !is_layer_media_type(&l.media_type))
    {
        let reason = if is_foreign_layer(&layer.media_type) {
            format!(
                "layer {} is a foreign/non-distributable layer ({:?}), whose content is not \
                 in the image; rbk cannot use it",
                layer.digest, layer.media_type
            )
        } else {
            format!(
                "unsupported layer media type {:?} (layer {})",
                layer.media_type, layer.digest
            )
        };
        return Err(invalid(what, reason));
    }
    Ok(())
}

/// The blobs an attestation manifest names (its config and statements),
/// read loosely: its layers are in-toto statements, not filesystem layers,
/// so [`parse_document`] refuses it as an image.
pub fn attestation_parts(bytes: &[u8], what: &str) -> Result<Vec<Descriptor>> {
    #[derive(Deserialize)]
    struct Parts {
        config: Descriptor,
        #[serde(default)]
        layers: Option<Vec<Descriptor>>,
    }
    let map = parse_object(bytes, what)?;
    let parts: Parts = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| invalid(what, e.to_string()))?;
    let mut out = vec![parts.config];
    out.extend(parts.layers.unwrap_or_default());
    Ok(out)
}

/// Parses an image config (bounded, strict JSON).
pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig> {
    let map = parse_object(bytes, what)?;
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| invalid(what, e.to_string()))
}

/// An image as stored: its manifest descriptor, manifest and config.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's descriptor (what the image index points at).
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl Image {
    /// The image's layers, base first: each blob with its diff id.
    pub fn layers(&self) -> Vec<crate::Layer> {
        self.manifest
            .layers
            .iter()
            .zip(&self.config.rootfs.diff_ids)
            .map(|(blob, diff_id)| crate::Layer {
                diff_id: *diff_id,
                blob: blob.clone(),
            })
            .collect()
    }

    /// The image id, as Docker shows it: the config's digest.
    pub fn id(&self) -> Digest {
        self.manifest.config.digest
    }

    /// The sum of the layer and config sizes.
    pub fn size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

impl Store {
    /// Stores `config` and a manifest over `layers` (already committed), and
    /// returns the manifest's descriptor. Does not tag.
    pub fn put_image(&self, config: &ImageConfig, layers: Vec<Descriptor>) -> Result<Descriptor> {
        let bytes = to_json(config)?;
        if bytes.len() as u64 > crate::MAX_DOCUMENT_SIZE {
            // Refused before anything is stored: no reader (rbk's, a
            // registry's) would take it back.
            return Err(Error::TooLarge {
                what: format!(
                    "the image config ({} bytes, {} history entries)",
                    bytes.len(),
                    config.history.len()
                ),
                limit: crate::MAX_DOCUMENT_SIZE,
            });
        }
        let info = self.put_bytes(&bytes)?;
        let config = Descriptor {
            media_type: OCI_CONFIG.to_string(),
            digest: info.digest,
            size: info.size,
            annotations: BTreeMap::new(),
        };
        self.put_manifest(config, layers)
    }

    /// Stores an OCI manifest over an already committed config and layers,
    /// and returns its descriptor. Does not tag.
    pub fn put_manifest(&self, config: Descriptor, layers: Vec<Descriptor>) -> Result<Descriptor> {
        if config.size > crate::MAX_DOCUMENT_SIZE {
            return Err(Error::TooLarge {
                what: format!("image config {} ({} bytes)", config.digest, config.size),
                limit: crate::MAX_DOCUMENT_SIZE,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config,
            layers,
            annotations: BTreeMap::new(),
        };
        let info = self.put_bytes(&to_json(&manifest)?)?;
        Ok(Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: info.digest,
            size: info.size,
            annotations: BTreeMap::new(),
        })
    }

    /// Reads and checks the manifest `descriptor` points at, and its config.
    pub fn read_image(&self, descriptor: &Descriptor) -> Result<Image> {
        let what = format!("manifest {}", descriptor.digest);
        let bytes = self.read_bounded(&descriptor.digest, crate::MAX_DOCUMENT_SIZE)?;
        let manifest = match parse_document(&bytes, Some(&descriptor.media_type), &what)? {
            Document::Manifest(m) => m,
            // An index tagged in the store (a multi-platform image) stands
            // for its host entry here; see `platforms.rs`.
            Document::Index(index) => {
                return match self.default_entry(&index) {
                    Some(entry) if !is_index_media_type(&entry.media_type) => {
                        self.read_image(&entry)
                    }
                    _ => Err(invalid(&what, "is an index without an image manifest")),
                }
            }
        };
        let cfg = &manifest.config;
        let bytes = self
            .read_bounded(&cfg.digest, crate::MAX_DOCUMENT_SIZE)
            .map_err(|e| match e {
                // Name the document, not just a blob (a config of 100k LABELs).
                Error::TooLarge { limit, .. } => Error::TooLarge {
                    what: format!(
                        "image config {} ({} bytes, of manifest {})",
                        cfg.digest, cfg.size, descriptor.digest
                    ),
                    limit,
                },
                e => e,
            })?;
        let config = parse_config(&bytes, &format!("config {}", cfg.digest))?;
        Ok(Image {
            descriptor: descriptor.clone(),
            manifest,
            config,
        })
    }

    /// The image `reference` is tagged as.
    pub fn image(&self, reference: &Reference) -> Result<Image> {
        self.read_image(&self.resolve(reference)?)
    }
}

/// Serialises a document rbk writes (compact JSON).
fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Json {
        path: "<image document>".into(),
        source,
    })
}
