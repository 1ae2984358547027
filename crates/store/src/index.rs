//! The image index: normalised reference → manifest descriptor.
//!
//! The source of truth is `db/images.json`; after every change `index.json`
//! (the OCI layout's index) is regenerated from it so that skopeo and umoci
//! see the same images. Both are replaced atomically under the store lock;
//! readers take no lock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_small, write_atomic};
use crate::{Digest, Error, Reference, Result, Store};

/// The OCI annotation naming a manifest in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation carrying the full image name.
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";
const MAX_INDEX_FILE: u64 = 64 << 20;

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type, e.g. `application/vnd.oci.image.manifest.v1+json`.
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// Optional annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ImageDb {
    version: u32,
    images: BTreeMap<String, Descriptor>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciIndex {
    schema_version: u32,
    media_type: String,
    manifests: Vec<Descriptor>,
}

impl Store {
    /// Points `reference` at `manifest` (replacing what it pointed at).
    /// The blob need not be checked here: callers commit blobs first.
    pub fn tag(&self, reference: &Reference, manifest: Descriptor) -> Result<()> {
        self.update_images(|db| {
            db.images.insert(reference.to_string(), manifest);
            Ok(())
        })
    }

    /// Removes `reference`, returning what it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Descriptor> {
        let mut removed = None;
        self.update_images(|db| {
            removed = db.images.remove(&reference.to_string());
            Ok(())
        })?;
        removed.ok_or_else(|| Error::ImageNotFound {
            reference: reference.to_string(),
        })
    }

    /// The manifest `reference` points at.
    pub fn resolve(&self, reference: &Reference) -> Result<Descriptor> {
        let db = self.read_images()?;
        db.images
            .get(&reference.to_string())
            .cloned()
            .ok_or_else(|| Error::ImageNotFound {
                reference: reference.to_string(),
            })
    }

    /// Every tagged image, sorted by reference.
    pub fn images(&self) -> Result<Vec<(Reference, Descriptor)>> {
        let db = self.read_images()?;
        let mut out = Vec::with_capacity(db.images.len());
        for (name, desc) in db.images {
            out.push((name.parse()?, desc));
        }
        Ok(out)
    }

    fn read_images(&self) -> Result<ImageDb> {
        let path = self.db_dir().join("images.json");
        match read_small(&path, MAX_INDEX_FILE) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
            }
            Err(e) if e.is_not_found() => Ok(ImageDb {
                version: 1,
                images: BTreeMap::new(),
            }),
            Err(e) => Err(e),
        }
    }

    fn update_images(&self, change: impl FnOnce(&mut ImageDb) -> Result<()>) -> Result<()> {
        let _lock = self.lock()?;
        let mut db = self.read_images()?;
        change(&mut db)?;
        db.version = 1;
        let path = self.db_dir().join("images.json");
        let bytes =
            serde_json::to_vec_pretty(&db).map_err(|source| Error::Json { path, source })?;
        write_atomic(&self.db_dir(), "images.json", &bytes)?;
        self.write_oci_index(&db)
    }

    /// Regenerates `index.json` from the image db. Caller holds the lock.
    pub(crate) fn write_oci_index(&self, db: &ImageDb) -> Result<()> {
        let manifests = db
            .images
            .iter()
            .map(|(name, desc)| {
                let mut desc = desc.clone();
                desc.annotations
                    .insert(REF_NAME_ANNOTATION.to_string(), name.clone());
                desc.annotations
                    .insert(CONTAINERD_NAME_ANNOTATION.to_string(), name.clone());
                desc
            })
            .collect();
        let index = OciIndex {
            schema_version: 2,
            media_type: "application/vnd.oci.image.index.v1+json".to_string(),
            manifests,
        };
        let path = self.root().join("index.json");
        let bytes =
            serde_json::to_vec_pretty(&index).map_err(|source| Error::Json { path, source })?;
        write_atomic(self.root(), "index.json", &bytes)
    }
}
