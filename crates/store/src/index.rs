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
use std::sync::{Arc, Mutex, PoisonError};

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

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
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

/// This process's last parse of `db/images.json`, with the exact bytes it
/// came from, shared by a store's clones. It is reused only while the file
/// holds the same bytes, so a change another process made (always a new
/// file renamed into place) is seen by the next read; what it saves is the
/// parse, which at 10,000 images costs far more than reading the file.
#[derive(Debug, Default, Clone)]
pub(crate) struct ImagesMemo(Arc<Mutex<Option<Parsed>>>);

/// The bytes of `images.json` and what they parse to.
type Parsed = (Vec<u8>, Arc<ImageDb>);

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
        for (name, desc) in &db.images {
            tagged.push((name.parse()?, desc.clone()));
        }
        Ok(ImageList {
            tagged,
            untagged: db.untagged.clone().into_iter().collect(),
            repo_digests: db.repo_digests.clone(),
        })
    }

    /// Every untagged image: `(image id, manifest)`, sorted by id.
    pub fn untagged_images(&self) -> Result<Vec<(Digest, Descriptor)>> {
        Ok(self.read_images()?.untagged.clone().into_iter().collect())
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

    /// The image the tag `name` names, found with one lookup in the index;
    /// `None` when `name` is not a reference tagged in the store (an image
    /// id, say). What [`Store::find_image`] answers for a tag, without the
    /// image's other references, for which it reads every image's summary.
    pub fn find_image_named(&self, name: &str) -> Result<Option<(Reference, Image)>> {
        let Ok(reference) = name.parse::<Reference>() else {
            return Ok(None);
        };
        let db = self.read_images()?;
        let Some(desc) = db.images.get(&reference.to_string()) else {
            return Ok(None);
        };
        Ok(Some((reference, self.read_image(desc)?)))
    }

    /// The image `name` names and the tag it was, as [`Store::find_image`]
    /// finds them but without the image's other references: a tag costs
    /// one lookup ([`Store::find_image_named`]); only an id lists images.
    pub fn resolve_image(&self, name: &str) -> Result<(Option<Reference>, Image)> {
        match self.find_image_named(name) {
            Ok(Some((named, image))) => Ok((Some(named), image)),
            // A damaged tagged image: `find_image` reports it as before.
            Ok(None) | Err(_) => self.find_image(name).map(|f| (f.named, f.image)),
        }
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
        for (name, desc) in &db.images {
            out.push((name.parse()?, desc.clone()));
        }
        Ok(out)
    }

    /// The image index as the file holds it now (parsed once per content,
    /// see [`ImagesMemo`]).
    pub(crate) fn read_images(&self) -> Result<Arc<ImageDb>> {
        let path = self.db_dir().join("images.json");
        let bytes = match read_small(&path, MAX_INDEX_FILE) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Ok(Arc::new(ImageDb {
                    version: 1,
                    ..ImageDb::default()
                }))
            }
            Err(e) => return Err(e),
        };
        let mut memo = self
            .images_memo
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, db)) = memo.as_ref().filter(|(seen, _)| *seen == bytes) {
            return Ok(Arc::clone(db));
        }
        let db: Arc<ImageDb> = Arc::new(
            serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })?,
        );
        *memo = Some((bytes, Arc::clone(&db)));
        Ok(db)
    }

    pub(crate) fn update_images(
        &self,
        change: impl FnOnce(&mut ImageDb) -> Result<()>,
    ) -> Result<()> {
        let _lock = self.lock()?;
        let mut db = Arc::unwrap_or_clone(self.read_images()?);
        change(&mut db)?;
        db.version = 1;
        let path = self.db_dir().join("images.json");
        let bytes =
            serde_json::to_vec_pretty(&db).map_err(|source| Error::Json { path, source })?;
        write_atomic(&self.db_dir(), "images.json", &bytes)?;
        self.write_oci_index(&db)?;
        // The file holds these bytes now: the next read need not parse them.
        let mut memo = self
            .images_memo
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *memo = Some((bytes, Arc::new(db)));
        Ok(())
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

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use crate::synthetic::store_of;

    fn descriptor(n: u8) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::sha256_of(&[n]),
            size: 1,
            annotations: BTreeMap::new(),
        }
    }

    /// The memo never hides a change: another process's rename (another
    /// `Store` here, with its own memo), a file of the same size written by
    /// hand, and a deleted file are all seen by the next read.
    #[test]
    fn the_memo_sees_every_change_made_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mine = Store::open(&root).unwrap();
        let other = Store::open(&root).unwrap();
        let (a, b): (Reference, Reference) = ("app:1".parse().unwrap(), "app:2".parse().unwrap());
        mine.tag(&a, descriptor(1)).unwrap();
        assert_eq!(mine.resolve(&a).unwrap(), descriptor(1));
        let first = mine.read_images().unwrap();
        assert!(
            Arc::ptr_eq(&first, &mine.read_images().unwrap()),
            "parsed once"
        );

        other.tag(&a, descriptor(2)).unwrap();
        other.tag(&b, descriptor(3)).unwrap();
        assert_eq!(mine.resolve(&a).unwrap(), descriptor(2));
        assert_eq!(mine.resolve(&b).unwrap(), descriptor(3));

        // Same length, other content: `app:1` → `app:3`.
        let path = root.join("db/images.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace("/app:1\"", "/app:3\"");
        assert_eq!(edited.len(), text.len());
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        assert!(mine.resolve(&a).unwrap_err().is_not_found());
        assert_eq!(
            mine.resolve(&"app:3".parse().unwrap()).unwrap(),
            descriptor(2)
        );

        std::fs::remove_file(&path).unwrap();
        assert!(mine.images().unwrap().is_empty());
        // A clone shares the memo and sees the same.
        other.tag(&a, descriptor(4)).unwrap();
        assert_eq!(mine.clone().resolve(&a).unwrap(), descriptor(4));
    }

    /// `find_image_named` answers as `find_image` does for every tag, and
    /// nothing for ids or names the store does not have.
    #[test]
    fn find_image_named_agrees_with_find_image() {
        let (_dir, store) = store_of(4, 3);
        let list = store.image_list().unwrap();
        for (reference, _) in &list.tagged {
            for name in [reference.to_string(), reference.familiar()] {
                let (named, image) = store.find_image_named(&name).unwrap().unwrap();
                let found = store.find_image(&name).unwrap();
                assert_eq!(Some(&named), found.named.as_ref());
                assert_eq!(image.id(), found.image.id());
                assert_eq!(image.descriptor, found.image.descriptor);
            }
        }
        for (id, _) in &list.untagged {
            assert!(store.find_image_named(&id.to_string()).unwrap().is_none());
            assert!(store.find_image_named(&id.hex()[..12]).unwrap().is_none());
            assert!(store.find_image(&id.hex()[..12]).is_ok());
        }
        for name in ["synthetic/img-99", "Not A Reference", ""] {
            assert!(store.find_image_named(name).unwrap().is_none(), "{name}");
            assert!(store.resolve_image(name).unwrap_err().is_not_found());
        }
        // `resolve_image` answers for tags and ids alike.
        let (reference, _) = &list.tagged[1];
        let (named, image) = store.resolve_image(&reference.familiar()).unwrap();
        assert_eq!(named.as_ref(), Some(reference));
        let (named, by_id) = store.resolve_image(&image.id().hex()[..12]).unwrap();
        assert_eq!((named, by_id.id()), (None, image.id()));
    }
}
