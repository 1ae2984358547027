//! Compressed forms of layer blobs, made once, in parallel, reproducibly.
//!
//! The uncompressed blob is cut into 4 MiB chunks; each chunk becomes one
//! complete gzip member (RFC 1952 allows a file of several members, and Go's
//! `compress/gzip`, containerd and `gzip -d` read them all) or one zstd frame
//! (RFC 8878 likewise). Chunks are compressed on the rayon pool, a window of
//! `2 × threads` at a time while the next window is read, and written in
//! order; so the output depends only on the input and the level, never on the
//! thread count, and memory stays at a few windows of chunks (the window is
//! capped at 16 chunks). The source blob is read unverified: the store
//! verified it when it was committed, and its file is read-only.
//!
//! The result is remembered in `db/compressed/<uncompressed hex>.<gzip|zstd>`,
//! a small file holding the descriptor JSON, replaced atomically. A record
//! whose blob has since been collected is ignored and the blob made again.
//! Two processes compressing the same layer at once both do the work and
//! produce the same bytes; the store keeps one copy.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rbk_store::{BlobRead, BlobWrite, Descriptor, Digest, Ingestion, Layer, Store};

use crate::{Error, Result, SolveStore};

/// Uncompressed bytes per gzip member or zstd frame.
const CHUNK: usize = 4 << 20;
/// gzip level: the usual default (Go's, gzip(1)'s).
const GZIP_LEVEL: u32 = 6;
/// zstd level: the library's default.
const ZSTD_LEVEL: i32 = 3;
/// Most chunks compressed at once: with the window being read meanwhile and
/// the outputs, at most about 3 × 16 × 4 MiB in memory.
const MAX_WINDOW: usize = 16;
/// Largest descriptor record read back.
const MAX_RECORD: u64 = 64 << 10;

/// A layer compression for export, each at a fixed default level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// gzip, level 6 (`application/vnd.oci.image.layer.v1.tar+gzip`).
    Gzip,
    /// zstd, level 3 (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// One self-contained gzip member or zstd frame holding `data`.
    fn compress_chunk(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compression::Gzip => {
                // GzBuilder's header has mtime 0 and no name: reproducible.
                let out = Vec::with_capacity(data.len() / 2);
                let level = flate2::Compression::new(GZIP_LEVEL);
                let mut encoder = flate2::GzBuilder::new().write(out, level);
                encoder.write_all(data)?;
                encoder.finish()
            }
            Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
        }
    }
}

/// The compressed form of `layer` for export, made and stored on the first
/// call and looked up afterwards. A layer whose blob is already compressed
/// (any media type not ending in `.tar`) is returned unchanged.
pub fn compress_layer(
    store: &Store,
    layer: &Layer,
    compression: Compression,
) -> Result<Descriptor> {
    if !layer.blob.media_type.ends_with(".tar") {
        return Ok(layer.blob.clone());
    }
    let record = record_path(&store.db_dir(), &layer.blob.digest, compression);
    if let Some(found) = read_record(store, &record, compression) {
        return Ok(found);
    }
    let info = compress_blob(store, &layer.blob.digest, compression)?;
    let descriptor = Descriptor {
        media_type: compression.media_type().into(),
        digest: info.0,
        size: info.1,
        annotations: Default::default(),
    };
    write_record(&record, &descriptor)?;
    Ok(descriptor)
}

/// Remembers that `compressed` is the `compression` form of the
/// uncompressed blob `uncompressed` (a layer fetched from a shared cache
/// arrives compressed: the next export reuses those bytes, which are the
/// ones this module would make anyway).
pub(crate) fn remember_compressed(
    store: &dyn SolveStore,
    uncompressed: &Digest,
    compression: Compression,
    compressed: &Descriptor,
) -> Result<()> {
    write_record(
        &record_path(&store.db_dir(), uncompressed, compression),
        compressed,
    )
}

/// `<db>/compressed/<hex>.<compression>`.
fn record_path(db: &Path, digest: &Digest, compression: Compression) -> PathBuf {
    let name = format!("{}.{}", digest.hex(), compression.name());
    db.join("compressed").join(name)
}

/// The recorded descriptor, if it is readable, of the right type, and its
/// blob is still present; anything else means "compress again".
fn read_record(store: &Store, path: &PathBuf, compression: Compression) -> Option<Descriptor> {
    let mut bytes = Vec::new();
    let file = fs::File::open(path).ok()?;
    file.take(MAX_RECORD).read_to_end(&mut bytes).ok()?;
    let found: Descriptor = serde_json::from_slice(&bytes).ok()?;
    let info = store.info(&found.digest).ok()?;
    (found.media_type == compression.media_type() && info.size == found.size).then_some(found)
}

fn write_record(path: &PathBuf, descriptor: &Descriptor) -> Result<()> {
    let dir = path.parent().unwrap_or(path);
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    let json = serde_json::to_vec(descriptor)
        .map_err(|e| Error::io("encoding", path, io::Error::other(e)))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io("creating", dir, e))?;
    tmp.write_all(&json)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("replacing", path, e.error))?;
    Ok(())
}

/// Compresses the blob `digest` into a new blob; returns its digest and size.
fn compress_blob(
    store: &Store,
    digest: &Digest,
    compression: Compression,
) -> Result<(Digest, u64)> {
    let source = || PathBuf::from(format!("blob {digest}"));
    let mut reader = store.open(digest)?;
    let mut ingest = match store.ingest(None)? {
        Ingestion::Write(w) => w,
        Ingestion::Exists(info) => return Ok((info.digest, info.size)),
    };
    let window = (2 * rayon::current_num_threads()).clamp(2, MAX_WINDOW);
    let mut batch =
        read_batch(&mut reader, window).map_err(|e| Error::io("reading", source(), e))?;
    if batch.is_empty() {
        batch.push(Vec::new()); // an empty input still needs one valid member
    }
    while !batch.is_empty() {
        let (compressed, next) = rayon::join(
            || {
                batch
                    .par_iter()
                    .map(|chunk| compression.compress_chunk(chunk))
                    .collect::<io::Result<Vec<_>>>()
            },
            || read_batch(&mut reader, window),
        );
        let compressed = compressed.map_err(|e| Error::io("compressing", source(), e))?;
        for chunk in compressed {
            ingest
                .write_all(&chunk)
                .map_err(|e| Error::io("writing compressed", source(), e))?;
        }
        batch = next.map_err(|e| Error::io("reading", source(), e))?;
    }
    let info = ingest.commit(None, None)?;
    Ok((info.digest, info.size))
}

/// Reads up to `count` full chunks (the last may be short); empty at EOF.
fn read_batch(reader: &mut impl Read, count: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut batch = Vec::with_capacity(count);
    while batch.len() < count {
        let mut chunk = Vec::with_capacity(CHUNK);
        reader.by_ref().take(CHUNK as u64).read_to_end(&mut chunk)?;
        let short = chunk.len() < CHUNK;
        if !chunk.is_empty() {
            batch.push(chunk);
        }
        if short {
            break;
        }
    }
    Ok(batch)
}
