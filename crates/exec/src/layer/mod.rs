//! Layers: an overlay-format directory → a layer in the store, and the
//! compressed forms of layers for export.
//!
//! [`commit_layer`] turns the upper directory of a `RUN` (or the tree a file
//! op wrote) into a [`Layer`] with [`SolveStore::commit_packed`]: the directory's
//! tar is streamed only into a sha256 hasher (the digest is the diff id and
//! the blob digest of the uncompressed layer), and the directory itself
//! becomes the layer's snapshot. No tar file is written: the store serves
//! the blob by re-packing the snapshot when it is read, so a built layer is
//! on disk once. Layers stay uncompressed in the store; [`compress_layer`]
//! makes the gzip or zstd form once, when an image leaves rbk (save, push,
//! `--output`).
//!
//! The tar rules (order, headers, PAX, whiteouts, xattrs, hardlinks) live
//! with the packer in `rbk_store::pack`; [`write_layer_tar`] is that packer
//! with this crate's error type.

mod compress;

use std::io::Write;
use std::path::Path;

use rbk_store::pack::{Checkpoint, PackOptions, Resume};
use rbk_store::{BlobInfo, Descriptor, Layer};

use crate::{Error, Result, SolveStore};

pub(crate) use compress::remember_compressed;
pub use compress::{compress_layer, Compression};

/// The media type of an uncompressed OCI layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// How a layer's tar is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// When set, mtimes later than this (seconds since the epoch) are
    /// clamped to it.
    pub source_date_epoch: Option<i64>,
}

impl LayerOptions {
    fn pack(&self) -> PackOptions {
        PackOptions {
            source_date_epoch: self.source_date_epoch,
        }
    }
}

/// Writes the OCI layer tar of the overlay-format directory `dir` to `out`
/// (the rules are in the docs of `rbk_store::pack`).
pub fn write_layer_tar(dir: &Path, out: impl Write + Send, options: &LayerOptions) -> Result<()> {
    rbk_store::pack::write_layer_tar(dir, out, &options.pack()).map_err(from_pack)
}

/// Turns the overlay-format directory `dir` into a layer: its snapshot, and
/// the uncompressed blob ([`LAYER_TAR`], so the diff id is the blob digest)
/// packed from it (`dir` is consumed and must be on the store's
/// filesystem). Returns `None`, leaving `dir` alone, when the directory is
/// empty.
pub fn commit_layer(
    store: &dyn SolveStore,
    dir: &Path,
    options: &LayerOptions,
) -> Result<Option<Layer>> {
    if is_empty(dir)? {
        return Ok(None);
    }
    let info = store
        .commit_packed(dir, &options.pack())
        .map_err(from_pack)?;
    Ok(Some(layer_of(info)))
}

/// [`commit_layer`] as a tracked pack (an incremental COPY's layer): also
/// the tar's checkpoints, and no reading or hashing of the prefix it shares
/// with the pack `resume` describes.
pub(crate) fn commit_layer_tracked(
    store: &dyn SolveStore,
    dir: &Path,
    options: &LayerOptions,
    resume: Option<Resume<'_>>,
) -> Result<Option<(Layer, Vec<Checkpoint>)>> {
    if is_empty(dir)? {
        return Ok(None);
    }
    let packed = store
        .commit_packed_tracked(dir, &options.pack(), resume)
        .map_err(from_pack)?;
    Ok(Some((layer_of(packed.info), packed.checkpoints)))
}

fn is_empty(dir: &Path) -> Result<bool> {
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    Ok(entries.next().is_none())
}

/// The uncompressed layer whose blob is `info`.
fn layer_of(info: BlobInfo) -> Layer {
    Layer {
        diff_id: info.digest,
        blob: Descriptor {
            media_type: LAYER_TAR.into(),
            digest: info.digest,
            size: info.size,
            annotations: Default::default(),
        },
    }
}

/// A packer refusal is this crate's [`Error::Layer`]; anything else stays a
/// store error.
fn from_pack(e: rbk_store::Error) -> Error {
    match e {
        rbk_store::Error::Pack { path, reason } => Error::Layer { path, reason },
        other => Error::Store(other),
    }
}
