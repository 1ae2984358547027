//! Image import and export formats: rootfs tarballs (`rbk import`),
//! docker-archive and OCI archives (`rbk load`, `rbk save`).
//!
//! Everything streams: layers go from the archive into the blob store (or
//! from the store into the archive) without being held in memory; only JSON
//! documents, bounded by [`MAX_DOCUMENT_SIZE`](crate::MAX_DOCUMENT_SIZE), are
//! read whole. A load tags nothing until every blob of every image in the
//! archive is committed and verified.

mod load;
mod rootfs;
mod save;

use std::io::{self, Read};

use crate::{BlobRead, Digest, Error, Result, Store};

pub use load::{load_archive, LoadedImage};
pub use rootfs::{import_rootfs, rootfs_config, ImportedLayer};
pub use save::{save_archive, ArchiveFormat, SavedImage};

/// Reads `reader` through the tar header/entry machinery so that a stream
/// which is not a tar archive is an error. Returns the number of entries.
fn check_tar(reader: impl Read, what: &str) -> Result<u64> {
    let mut archive = tar::Archive::new(reader);
    let mut n = 0;
    let entries = archive.entries().map_err(|e| bad(what, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(what, &e))?;
        io::copy(&mut entry, &mut io::sink()).map_err(|e| bad(what, &e))?;
        n += 1;
    }
    Ok(n)
}

fn bad(what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::InvalidImageArchive {
        reason: format!("{what}: {e}"),
    }
}

/// The sha256 of a stored layer after decompression (its diff_id).
fn diff_id_of(store: &Store, digest: &Digest) -> Result<Digest> {
    let reader = crate::unpack::decompress(store.open_verified(digest)?)
        .map_err(|e| bad(&format!("layer {digest}"), &e))?;
    let mut hasher = crate::Sha256Writer::new();
    let mut reader = reader;
    io::copy(&mut reader, &mut hasher).map_err(|e| bad(&format!("layer {digest}"), &e))?;
    Ok(hasher.finish())
}

/// The layer media type matching the compression of a stored blob.
fn sniff_layer_media_type(store: &Store, digest: &Digest) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let mut reader = store.open(digest)?;
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io("reading blob", digest.to_string())(e)),
        }
    }
    Ok(match head[..n] {
        [0x1f, 0x8b, ..] => crate::image::OCI_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => crate::image::OCI_LAYER_ZSTD,
        _ => crate::image::OCI_LAYER,
    })
}
