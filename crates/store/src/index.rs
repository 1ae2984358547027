//! The image index: normalised reference → manifest descriptor.
//!
//! The source of truth is `db/images.json`; after every change `index.json`
//! (the OCI layout's index) is regenerated from it so that skopeo and umoci
//! see the same images. Both are replaced atomically under the store lock;
//! readers take no lock.
//!
//! Besides tagged images, `images.json` keeps *untagged* ones (Docker's
//! dangling images, `<none>:<none>`): a build without `-t` records its result
//! there, keyed by image id, so that it can be inspected, tagged, saved or
//! built upon by id until `rbk prune` or `rbk rmi` removes it. Tagging an
//! untagged image moves it to the tagged map. Untagged images are GC roots
//! but are not written to `index.json` (an OCI layout names its images).
//!
//! [`Store::find_image`] resolves a name the way Docker does: a reference
//! first, then a full or short image id, with or without `sha256:`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_small, write_atomic};
use crate::image::Image;
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
    pub(crate) images: BTreeMap<String, Descriptor>,
    /// Untagged images: image id → manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) untagged: BTreeMap<Digest, Descriptor>,
    /// Docker's `RepoDigests`: image id → `repository@digest` of the
    /// manifests it was pulled as or pushed as, sorted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) repo_digests: BTreeMap<Digest, Vec<String>>,
}

/// An image found by [`Store::find_image`].
#[derive(Debug, Clone)]
pub struct FoundImage {
    /// The image.
    pub image: Image,
    /// Every reference tagged to this image id, sorted.
    pub references: Vec<Reference>,
    /// The reference the name was, when it named the image by reference
    /// rather than by id.
    pub named: Option<Reference>,
    /// Whether the image is (also) kept untagged.
    pub untagged: bool,
}

/// The whole image index, read once (see [`Store::image_list`]).
#[derive(Debug, Clone, Default)]
pub struct ImageList {
    /// Tagged images, sorted by reference.
    pub tagged: Vec<(Reference, Descriptor)>,
    /// Untagged images: `(image id, manifest)`, sorted by id.
    pub untagged: Vec<(Digest, Descriptor)>,
    /// Docker's `RepoDigests`: image id → `repository@digest` names.
    pub repo_digests: BTreeMap<Digest, Vec<String>>,
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
            db.untagged.retain(|_, d| d.digest != manifest.digest);
            db.images.insert(reference.to_string(), manifest);
            Ok(())
        })
    }

    /// Keeps the image `id` (manifest `manifest`) untagged, unless a
    /// reference already points at that manifest.
    pub fn keep_untagged(&self, id: Digest, manifest: Descriptor) -> Result<()> {
        self.update_images(|db| {
            if !db.images.values().any(|d| d.digest == manifest.digest) {
                db.untagged.insert(id, manifest);
            }
            Ok(())
        })
    }

    /// Drops the untagged entry of image `id`, returning its manifest.
    pub fn forget_untagged(&self, id: &Digest) -> Result<Option<Descriptor>> {
        let mut removed = None;
        self.update_images(|db| {
            removed = db.untagged.remove(id);
            Ok(())
        })?;
        Ok(removed)
    }

    /// Records that image `id` is `repository@digest` in a registry (it was
    /// pulled from or pushed there with that manifest digest), as Docker's
    /// `RepoDigests`. `reference`'s tag is dropped.
    pub fn add_repo_digest(&self, id: Digest, reference: &Reference, digest: Digest) -> Result<()> {
        let entry = format!("{}@{digest}", reference.familiar_name());
        self.update_images(|db| {
            let list = db.repo_digests.entry(id).or_default();
            if !list.contains(&entry) {
                list.push(entry);
                list.sort();
            }
            Ok(())
        })
    }

    /// The `repository@digest` names recorded for image `id`.
    pub fn repo_digests(&self, id: &Digest) -> Result<Vec<String>> {
        Ok(self
            .read_images()?
            .repo_digests
            .get(id)
            .cloned()
            .unwrap_or_default())
    }

    /// Tagged and untagged images and repo digests, from one read of the
    /// index (listing them with [`Store::images`],
    /// [`Store::untagged_images`] and [`Store::repo_digests`] reads it each
    /// time).
    pub fn image_list(&self) -> Result<ImageList> {
        let db = self.read_images()?;
        let mut tagged = Vec::with_capacity(db.images.len());
        for (name, desc) in db.images {
            tagged.push((name.parse()?, desc));
        }
        Ok(ImageList {
            tagged,
            untagged: db.untagged.into_iter().collect(),
            repo_digests: db.repo_digests,
        })
    }

    /// Every untagged image: `(image id, manifest)`, sorted by id.
    pub fn untagged_images(&self) -> Result<Vec<(Digest, Descriptor)>> {
        Ok(self.read_images()?.untagged.into_iter().collect())
    }

    /// Finds `name` as Docker does: as a tagged reference first, then as a
    /// full or short image id (any unique hex prefix, with or without
    /// `sha256:`) among tagged and untagged images. A prefix shared by
    /// several image ids is an error; no match is [`Error::ImageNotFound`].
    pub fn find_image(&self, name: &str) -> Result<FoundImage> {
        let db = self.read_images()?;
        let named = name
            .parse::<Reference>()
            .ok()
            .filter(|r| db.images.contains_key(&r.to_string()));
        let mut ids: Vec<(Option<Reference>, Digest, &Descriptor)> = Vec::new();
        let mut summaries = self.image_summaries();
        for (reference, desc) in &db.images {
            let Ok(summary) = summaries.get(self, desc) else {
                continue; // damaged: `system verify` reports it
            };
            ids.push((Some(reference.parse()?), summary.id, desc));
        }
        // A cache: failing to write it back changes no result.
        let _ = summaries.save(self);
        ids.extend(db.untagged.iter().map(|(id, d)| (None, *id, d)));
        let (id, desc) = match &named {
            Some(r) => {
                let desc = &db.images[&r.to_string()];
                let listed = ids.iter().find(|e| e.2.digest == desc.digest);
                let id = match listed {
                    Some(e) => e.1,
                    None => self.read_image(desc)?.id(), // damaged: its error
                };
                (id, desc)
            }
            None => match id_in_normalized(name) {
                Some(id) => match_id(&ids, id).or_else(|_| match_id(&ids, name))?,
                None => match_id(&ids, name)?,
            },
        };
        let references = ids
            .iter()
            .filter(|e| e.1 == id)
            .filter_map(|e| e.0.clone())
            .collect();
        Ok(FoundImage {
            image: self.read_image(desc)?,
            references,
            named,
            untagged: db.untagged.contains_key(&id),
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

    pub(crate) fn read_images(&self) -> Result<ImageDb> {
        let path = self.db_dir().join("images.json");
        match read_small(&path, MAX_INDEX_FILE) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
            }
            Err(e) if e.is_not_found() => Ok(ImageDb {
                version: 1,
                ..ImageDb::default()
            }),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn update_images(
        &self,
        change: impl FnOnce(&mut ImageDb) -> Result<()>,
    ) -> Result<()> {
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

/// The id inside a name that a Dockerfile frontend normalised as a
/// reference: `docker.io/library/<hex>:latest` (from `FROM <short id>`) or
/// `docker.io/library/sha256:<hex>` (from `FROM sha256:<id>`).
/// Whether `name` could name an image by id (a hex prefix, `sha256:…`, or
/// the frontend's normalised form of either), so that looking it up needs
/// [`Store::find_image`]'s scan of every image rather than one tag.
pub fn looks_like_image_id(name: &str) -> bool {
    let hex = id_in_normalized(name).unwrap_or(name);
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn id_in_normalized(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("docker.io/library/")?;
    let hex = match rest.strip_prefix("sha256:") {
        Some(hex) => hex,
        None => rest.strip_suffix(":latest")?,
    };
    hex.bytes().all(|b| b.is_ascii_hexdigit()).then_some(hex)
}

/// The image whose id starts with `name` (hex, optionally `sha256:`).
fn match_id<'a>(
    ids: &[(Option<Reference>, Digest, &'a Descriptor)],
    name: &str,
) -> Result<(Digest, &'a Descriptor)> {
    let not_found = || Error::ImageNotFound {
        reference: name.to_string(),
    };
    let prefix = name.strip_prefix("sha256:").unwrap_or(name);
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let prefix = prefix.to_ascii_lowercase();
    let matches: Vec<_> = ids
        .iter()
        .filter(|e| e.1.hex().starts_with(&prefix))
        .collect();
    let distinct: std::collections::BTreeSet<Digest> = matches.iter().map(|e| e.1).collect();
    match (distinct.len(), matches.first()) {
        (1, Some(e)) => Ok((e.1, e.2)),
        (0, _) | (_, None) => Err(not_found()),
        (count, _) => Err(Error::AmbiguousImageId {
            prefix: name.to_string(),
            count,
        }),
    }
}

#[cfg(test)]
mod id_shape_tests {
    use super::looks_like_image_id;

    #[test]
    fn only_hex_prefixes_and_their_normalised_forms_look_like_ids() {
        for id in [
            "3d533d2c8e49",
            "sha256:3d533d2c8e49",
            "docker.io/library/3d533d2c8e49:latest",
            "docker.io/library/sha256:3d533d2c8e49",
        ] {
            assert!(looks_like_image_id(id), "{id}");
        }
        for name in [
            "busybox",
            "docker.io/library/busybox:latest",
            "",
            "sha256:",
            "x:1",
        ] {
            assert!(!looks_like_image_id(name), "{name}");
        }
    }
}
