//! `rbk load`: docker-archive (`docker save`) and OCI archives, plain or
//! compressed, streamed entry by entry into the blob store.

use std::collections::BTreeMap;
use std::io::Read;

use rayon::prelude::*;
use serde::Deserialize;

use super::bad;
use crate::image::{self, Document, Image};
use crate::{BlobInfo, BlobRead, BlobWrite, Descriptor, Digest, Error, Reference, Result, Store};

/// One image found in an archive and stored.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The names it was tagged with (none for an untagged image).
    pub references: Vec<Reference>,
    /// Its manifest's descriptor.
    pub descriptor: Descriptor,
    /// Its image id (config digest).
    pub id: Digest,
}

/// Small JSON files read whole; every other regular file is a blob.
const DOCUMENTS: [&str; 4] = ["manifest.json", "index.json", "repositories", "oci-layout"];
const WHAT: &str = "image archive";

/// What the streaming pass found.
#[derive(Default)]
struct Contents {
    documents: BTreeMap<String, Vec<u8>>,
    files: BTreeMap<String, BlobInfo>,
    links: BTreeMap<String, String>,
}

impl Contents {
    /// The blob stored for archive path `path` (following symlinks that
    /// legacy `docker save` writes for shared layers).
    fn file(&self, path: &str) -> Result<BlobInfo> {
        let mut path = clean(path);
        for _ in 0..8 {
            if let Some(info) = self.files.get(&path) {
                return Ok(*info);
            }
            let Some(target) = self.links.get(&path) else {
                break;
            };
            path = resolve_link(&path, target);
        }
        Err(bad(WHAT, &format!("{path:?} is missing from the archive")))
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

fn resolve_link(from: &str, target: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Loads every image in the archive `reader`, then tags them (an image
/// without a name is kept untagged). Fails with a
/// clear error, having tagged nothing, on a truncated or corrupt archive, a
/// digest mismatch, a missing blob or an unknown media type. Blobs committed
/// before the failure stay untagged (GC reclaims them).
pub fn load_archive(store: &Store, reader: impl Read) -> Result<Vec<LoadedImage>> {
    let contents = read_entries(store, reader)?;
    let images = if contents.documents.contains_key("manifest.json") {
        docker_images(store, &contents)?
    } else if contents.documents.contains_key("index.json") {
        oci_images(store, &contents)?
    } else {
        return Err(bad(WHAT, &"neither manifest.json nor index.json found"));
    };
    for img in &images {
        // An image the archive names nothing is kept as `<none>`, as
        // `docker load` keeps it, findable by the id it reports.
        if img.references.is_empty() {
            store.keep_untagged(img.id, img.descriptor.clone())?;
        }
        for r in &img.references {
            store.tag(r, img.descriptor.clone())?;
        }
    }
    Ok(images)
}

fn read_entries(store: &Store, reader: impl Read) -> Result<Contents> {
    let stream = super::decompress_bounded(reader).map_err(|e| bad(WHAT, &e))?;
    let mut archive = tar::Archive::new(stream);
    let mut contents = Contents::default();
    for entry in archive.entries().map_err(|e| bad(WHAT, &e))? {
        let mut entry = entry.map_err(|e| bad(&format!("{WHAT} (truncated?)"), &e))?;
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry.link_name_bytes().unwrap_or_default();
            contents
                .links
                .insert(path, String::from_utf8_lossy(&target).into());
        } else if kind.is_file() {
            let size = entry.size();
            if DOCUMENTS.contains(&path.as_str()) {
                // A second copy would silently win over the first: the
                // archive says two things about what it holds.
                if contents.documents.contains_key(&path) {
                    return Err(bad(
                        WHAT,
                        &format!("{path} appears more than once in the archive"),
                    ));
                }
                let what = format!("{WHAT} entry {path}");
                let bytes =
                    crate::read_to_end_bounded(&mut entry, crate::MAX_DOCUMENT_SIZE, &what)?;
                check_len(&path, bytes.len() as u64, size)?;
                contents.documents.insert(path, bytes);
            } else {
                let info = store_entry(store, &path, &mut entry, size)?;
                contents.files.insert(path, info);
            }
        }
    }
    Ok(contents)
}

fn check_len(path: &str, got: u64, want: u64) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(bad(
        WHAT,
        &format!("entry {path} is truncated ({got} of {want} bytes)"),
    ))
}

/// Stores one file. `blobs/sha256/<hex>` entries are verified against their
/// name; others get their digest computed.
fn store_entry(store: &Store, path: &str, reader: &mut dyn Read, size: u64) -> Result<BlobInfo> {
    let expected = path
        .strip_prefix("blobs/sha256/")
        .map(|hex| format!("sha256:{hex}").parse::<Digest>())
        .transpose()
        .map_err(|e| bad(&format!("{WHAT} entry {path}"), &e))?;
    let info = store
        .put(reader, expected.map(|d| (d, Some(size))))
        .map_err(|e| match e {
            Error::Io { source, .. } => bad(&format!("{WHAT} entry {path} (truncated?)"), &source),
            other => other,
        })?;
    check_len(path, info.size, size)?;
    Ok(info)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn parse_tags(tags: &[String]) -> Result<Vec<Reference>> {
    tags.iter().map(|t| t.parse()).collect()
}

fn docker_images(store: &Store, contents: &Contents) -> Result<Vec<LoadedImage>> {
    let bytes = &contents.documents["manifest.json"];
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidDocument {
            what: "manifest.json".into(),
            reason: e.to_string(),
        })?;
    let oci = contents
        .documents
        .contains_key("index.json")
        .then(|| oci_manifests(store, contents))
        .transpose()?
        .unwrap_or_default();
    let mut out = Vec::new();
    for entry in entries {
        let config = contents.file(&entry.config)?;
        let layers = entry
            .layers
            .iter()
            .map(|l| contents.file(l))
            .collect::<Result<Vec<_>>>()?;
        let layer_digests: Vec<Digest> = layers.iter().map(|l| l.digest).collect();
        let existing = oci.iter().find(|(img, _)| {
            img.id() == config.digest
                && img
                    .manifest
                    .layers
                    .iter()
                    .map(|l| l.digest)
                    .eq(layer_digests.iter().copied())
        });
        let descriptor = match existing {
            // A multi-platform image is tagged as its index (all platforms).
            Some((_, Some(index))) => index.clone(),
            Some((img, None)) => Descriptor {
                annotations: BTreeMap::new(),
                ..img.descriptor.clone()
            },
            None => docker_manifest(store, config, &layers)?,
        };
        let image = store.read_image(&descriptor)?;
        check_layers(store, &image)?;
        out.push(LoadedImage {
            references: parse_tags(entry.repo_tags.as_deref().unwrap_or_default())?,
            id: image.id(),
            descriptor,
        });
    }
    Ok(out)
}

/// An OCI manifest for a docker-archive image. Layers compressed with xz
/// or bzip2 (which `docker load` takes) are stored decompressed, as Docker
/// keeps them, since no manifest media type names those codecs.
fn docker_manifest(store: &Store, config: BlobInfo, layers: &[BlobInfo]) -> Result<Descriptor> {
    let mut descs = Vec::with_capacity(layers.len());
    for l in layers {
        let compression = super::sniff_compression(store, &l.digest)?;
        let (media_type, blob) = match compression.layer_media_type() {
            Some(media_type) => (media_type, *l),
            None => (
                image::OCI_LAYER,
                super::decompressed_copy(store, &l.digest)?,
            ),
        };
        descs.push(Descriptor {
            media_type: media_type.to_string(),
            digest: blob.digest,
            size: blob.size,
            annotations: BTreeMap::new(),
        });
    }
    let config = Descriptor {
        media_type: image::OCI_CONFIG.to_string(),
        digest: config.digest,
        size: config.size,
        annotations: BTreeMap::new(),
    };
    store.put_manifest(config, descs)
}

/// Every layer is present with its promised size, the config's diff_ids
/// match the layers' uncompressed contents, and every layer unpacks as the
/// first build will unpack it (told by the extractor's dry run, or by
/// unpacking it into its snapshot where the dry run cannot tell).
fn check_layers(store: &Store, image: &Image) -> Result<()> {
    let diff_ids = &image.config.rootfs.diff_ids;
    if diff_ids.len() != image.manifest.layers.len() {
        return Err(bad(
            WHAT,
            &format!(
                "image {} has {} layers but its config lists {} diff_ids",
                image.id(),
                image.manifest.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    // Layer by layer on all cores (a compressed layer is inflated and
    // hashed here); the first failing layer in the image's order is the
    // error, whichever finished first.
    let checked: Vec<Result<()>> = image
        .manifest
        .layers
        .par_iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let info = store.info(&layer.digest)?;
            if info.size != layer.size {
                return Err(Error::SizeMismatch {
                    digest: Some(layer.digest),
                    expected: layer.size,
                    actual: info.size,
                });
            }
            super::validate_layer(
                store,
                layer,
                diff_id,
                WHAT,
                super::check_layer_unpacked_later,
            )
        })
        .collect();
    checked.into_iter().collect()
}

/// The images `index.json` names, each read and checked; for an entry that
/// is a multi-platform index, the host's image and the index itself when
/// the archive holds every image it lists (it is then what gets tagged, so
/// `save`/`load` keep all platforms).
fn oci_manifests(store: &Store, contents: &Contents) -> Result<Vec<(Image, Option<Descriptor>)>> {
    let bytes = &contents.documents["index.json"];
    let Document::Index(index) =
        image::parse_document(bytes, Some(image::OCI_INDEX), "index.json")?
    else {
        return Err(bad(WHAT, &"index.json is not an image index"));
    };
    let mut out = Vec::new();
    for entry in index.manifests {
        if entry.is_attestation() {
            continue;
        }
        let mut d = entry.descriptor;
        let mut whole = None;
        if d.media_type == image::OCI_INDEX || d.media_type == image::DOCKER_LIST {
            whole = complete_index(store, &d)?;
            // A multi-platform image (or one with attestations, as BuildKit
            // writes it): load the host's platform, named as the index is.
            let annotations = std::mem::take(&mut d.annotations);
            d = Descriptor {
                annotations,
                ..host_manifest(store, &d)?
            };
        }
        if !store.exists(&d.digest)? {
            return Err(bad(WHAT, &format!("manifest blob {} is missing", d.digest)));
        }
        let image = store.read_image(&d)?;
        check_layers(store, &image)?;
        out.push((image, whole));
    }
    Ok(out)
}

/// `index` (annotations dropped) when the store now has every image it
/// lists (attestations aside), each with its layers.
fn complete_index(store: &Store, index: &Descriptor) -> Result<Option<Descriptor>> {
    if !store.exists(&index.digest)? {
        return Ok(None);
    }
    let Some(nested) = store.read_index(index)? else {
        return Ok(None);
    };
    for (child, _) in store.index_platforms(&nested) {
        if !store.exists(&child.digest)? {
            return Ok(None);
        }
        let Ok(image) = store.read_image(&child) else {
            return Ok(None);
        };
        if check_layers(store, &image).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(Descriptor {
        annotations: BTreeMap::new(),
        ..index.clone()
    }))
}

/// The host platform's image manifest in the nested index `index`.
fn host_manifest(store: &Store, index: &Descriptor) -> Result<Descriptor> {
    let what = format!("index {}", index.digest);
    if !store.exists(&index.digest)? {
        return Err(bad(WHAT, &format!("{what} is missing")));
    }
    let bytes = store.read_bounded(&index.digest, crate::MAX_DOCUMENT_SIZE)?;
    let Document::Index(nested) = image::parse_document(&bytes, Some(&index.media_type), &what)?
    else {
        return Err(bad(WHAT, &format!("{what} is not an index")));
    };
    let arch = super::rootfs::host_architecture();
    let field = |entry: &image::IndexEntry, key: &str| -> String {
        entry
            .platform
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    nested
        .manifests
        .iter()
        .find(|e| {
            !e.is_attestation() && field(e, "os") == "linux" && field(e, "architecture") == arch
        })
        .map(|e| e.descriptor.clone())
        .ok_or_else(|| bad(WHAT, &format!("{what} has no image for linux/{arch}")))
}

fn oci_images(store: &Store, contents: &Contents) -> Result<Vec<LoadedImage>> {
    let images = oci_manifests(store, contents)?;
    let mut out = Vec::new();
    for (image, whole) in images {
        let mut descriptor = image.descriptor.clone();
        let name = descriptor
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| {
                descriptor
                    .annotations
                    .get(crate::REF_NAME_ANNOTATION)
                    .filter(|n| n.contains(['/', ':']))
            })
            .cloned();
        descriptor.annotations.clear();
        let descriptor = whole.unwrap_or(descriptor);
        out.push(LoadedImage {
            references: name.map(|n| n.parse()).transpose()?.into_iter().collect(),
            id: image.id(),
            descriptor,
        });
    }
    Ok(out)
}
