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

/// Writes `images` as an archive to `out`, streaming each blob (verified
/// against its digest as it is read) once, however many images share it.
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
        let m = &saved.image.manifest;
        let all = [&saved.image.descriptor, &m.config]
            .into_iter()
            .chain(&m.layers);
        for desc in all {
            if written.insert(desc.digest) {
                append_blob(store, &mut tar, desc)?;
            }
        }
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
    let reader = store.open_verified(&d.digest)?;
    tar.append_data(&mut h, blob_path(&d.digest), reader)
        .map_err(|e| match e.into_inner().map(|b| b.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => write_err(io::Error::other(other)),
            None => write_err(io::Error::other("writing blob")),
        })
}
