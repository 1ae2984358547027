//! `rbk save`: images to a docker-archive (as Docker ≥ 25 writes it: blobs
//! under `blobs/sha256/`, `manifest.json`, plus the OCI `index.json` and
//! `oci-layout`) or to a plain OCI archive.

use std::collections::BTreeSet;
use std::io::{self, Write};

use serde::Serialize;

use crate::image::{Image, OCI_INDEX};
use crate::{BlobRead, Descriptor, Digest, Error, Reference, Result, Store};

/// Which archive [`save_archive`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// What `docker save` writes and `docker load` reads (it is also a
    /// valid OCI archive).
    Docker,
    /// An OCI image layout in a tar (`oci-layout`, `index.json`, `blobs/`).
    Oci,
}

/// An image to save, with the names to record for it.
#[derive(Debug, Clone)]
pub struct SavedImage {
    /// The image.
    pub image: Image,
    /// Its names (may be empty).
    pub references: Vec<Reference>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// [`save_archive`] into the file `path`, by the rules of
/// [`crate::output`]: a new or regular file is written beside and renamed
/// into place (a failed or killed save leaves no half-written archive); a
/// device or FIFO is written in place; a directory is an error.
pub fn save_archive_file(
    store: &Store,
    images: &[SavedImage],
    format: ArchiveFormat,
    path: &std::path::Path,
) -> Result<()> {
    let mut out = io::BufWriter::new(crate::output::OutputFile::create(path)?);
    save_archive(store, images, format, &mut out)?;
    out.into_inner()
        .map_err(|e| Error::io("writing", path)(e.into_error()))?
        .commit()
}

/// Writes `images` as an archive to `out`, streaming each blob once,
/// however many images share it. Blob files are copied without being hashed
/// again (they were verified when committed, and `rbk system verify` checks
/// for bit rot); packed blobs are re-packed and verified as they stream.
pub fn save_archive(
    store: &Store,
    images: &[SavedImage],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut written = BTreeSet::new();
    for dir in ["blobs/", "blobs/sha256/"] {
        append_dir(&mut tar, dir)?;
    }
    for saved in images {
        append_image_blobs(store, &mut tar, &mut written, &saved.image)?;
    }
    append_file(&mut tar, "index.json", &to_json(&oci_index(images))?)?;
    if format == ArchiveFormat::Docker {
        append_file(
            &mut tar,
            "manifest.json",
            &to_json(&docker_manifest(images))?,
        )?;
    }
    append_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut out = tar.into_inner().map_err(write_err)?;
    out.flush().map_err(write_err)
}

/// Appends `image`'s manifest, config and layers, skipping blobs already in
/// `written` (shared by several images).
fn append_image_blobs<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    written: &mut BTreeSet<Digest>,
    image: &Image,
) -> Result<()> {
    let m = &image.manifest;
    for desc in [&image.descriptor, &m.config].into_iter().chain(&m.layers) {
        if written.insert(desc.digest) {
            append_blob(store, tar, desc)?;
        }
    }
    Ok(())
}

/// Writes an OCI archive whose `index.json` names one image index (a
/// multi-platform image): the index, and every manifest, config and layer
/// of `images` (the images it lists) and of the attestation manifests it
/// lists, each blob once. `references` name the
/// index, as [`save_archive`] names images. [`ArchiveFormat::Docker`] adds
/// a `manifest.json` naming the host's image (else the first), which is
/// what `docker load` takes from a multi-platform archive.
pub fn save_index_archive(
    store: &Store,
    index: &Descriptor,
    images: &[Image],
    references: &[Reference],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut written = BTreeSet::new();
    for dir in ["blobs/", "blobs/sha256/"] {
        append_dir(&mut tar, dir)?;
    }
    for image in images {
        append_image_blobs(store, &mut tar, &mut written, image)?;
    }
    // The index keeps its bytes, so the attestation manifests it lists go
    // with it (BuildKit's provenance and SBOM beside the images).
    if let Some(list) = store.read_index(index)? {
        for blob in store.attestation_blobs(&list)?.unwrap_or_default() {
            if written.insert(blob.digest) {
                append_blob(store, &mut tar, &blob)?;
            }
        }
    }
    append_blob(store, &mut tar, index)?;
    let top = oci_index(&[SavedImage {
        image: Image {
            descriptor: index.clone(),
            ..images
                .first()
                .cloned()
                .ok_or_else(|| Error::InvalidDocument {
                    what: format!("index {}", index.digest),
                    reason: "lists no image".into(),
                })?
        },
        references: references.to_vec(),
    }]);
    append_file(&mut tar, "index.json", &to_json(&top)?)?;
    if format == ArchiveFormat::Docker {
        let host = crate::image::ImagePlatform::host();
        let shown = images
            .iter()
            .find(|i| i.config.architecture == host.architecture)
            .or(images.first());
        let saved: Vec<SavedImage> = shown
            .map(|image| SavedImage {
                image: image.clone(),
                references: references.to_vec(),
            })
            .into_iter()
            .collect();
        append_file(
            &mut tar,
            "manifest.json",
            &to_json(&docker_manifest(&saved))?,
        )?;
    }
    append_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut out = tar.into_inner().map_err(write_err)?;
    out.flush().map_err(write_err)
}

fn oci_index(images: &[SavedImage]) -> serde_json::Value {
    let mut manifests = Vec::new();
    for saved in images {
        let names: Vec<Option<&Reference>> = if saved.references.is_empty() {
            vec![None]
        } else {
            saved.references.iter().map(Some).collect()
        };
        for r in names {
            let mut d: Descriptor = saved.image.descriptor.clone();
            d.annotations.clear();
            if let Some(r) = r {
                d.annotations
                    .insert("io.containerd.image.name".into(), r.to_string());
                let tag = r.tag().unwrap_or("latest").to_string();
                d.annotations.insert(crate::REF_NAME_ANNOTATION.into(), tag);
            }
            manifests.push(d);
        }
    }
    serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
}

fn docker_manifest(images: &[SavedImage]) -> Vec<DockerEntry> {
    images
        .iter()
        .map(|saved| DockerEntry {
            config: blob_path(&saved.image.manifest.config.digest),
            repo_tags: saved.references.iter().map(Reference::familiar).collect(),
            layers: saved
                .image
                .manifest
                .layers
                .iter()
                .map(|l| blob_path(&l.digest))
                .collect(),
        })
        .collect()
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| Error::Json {
        path: "<archive document>".into(),
        source,
    })
}

fn write_err(e: io::Error) -> Error {
    Error::io("writing archive", "<output>")(e)
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    tar.append_data(&mut h, path, io::empty())
        .map_err(write_err)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
    tar.append_data(&mut h, path, bytes).map_err(write_err)
}

/// Appends one blob. A blob file is copied as is, with `std::io::copy`
/// from the file (which uses `copy_file_range` or `sendfile` when `out` is
/// a file or pipe) and without hashing it again: it was verified when it was
/// committed. A packed blob is re-packed and verified on the way.
fn append_blob<W: Write>(store: &Store, tar: &mut tar::Builder<W>, d: &Descriptor) -> Result<()> {
    let info = store.info(&d.digest)?;
    if info.size != d.size {
        return Err(Error::SizeMismatch {
            digest: Some(d.digest),
            expected: d.size,
            actual: info.size,
        });
    }
    let mut h = header(tar::EntryType::Regular, info.size, 0o444);
    h.set_path(blob_path(&d.digest)).map_err(write_err)?;
    h.set_cksum();
    let out = tar.get_mut();
    out.write_all(h.as_bytes()).map_err(write_err)?;
    // Hashed as it streams: a blob corrupted on disk fails the save naming
    // its digest instead of leaving the store as an archive that lies.
    let copied = io::copy(&mut store.open_verified(&d.digest)?, out).map_err(copy_err)?;
    if copied != info.size {
        return Err(Error::SizeMismatch {
            digest: Some(d.digest),
            expected: info.size,
            actual: copied,
        });
    }
    let pad = (512 - info.size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
        .map_err(write_err)
}

/// A read error of the store (a verification failure) as itself; anything
/// else as a write error.
fn copy_err(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(Ok(inner)) = e.into_inner().map(|b| b.downcast::<Error>()) {
            return *inner;
        }
        return write_err(io::Error::other("verification failed"));
    }
    write_err(e)
}
