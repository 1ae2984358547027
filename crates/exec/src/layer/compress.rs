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
//! A gzip chunk that would not shrink (random bytes, media already
//! compressed) is written as deflate "stored" blocks instead of being
//! squeezed for nothing: level 6 runs at ~30 MB/s per core on such data,
//! stored blocks at memory speed, and the output is under 0.1% larger.
//! Which chunks those are is decided by compressing a sample of each
//! ([`worth_compressing`]), from the chunk's bytes alone, so the output still
//! depends only on the input.
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
/// A gzip chunk is sampled in this many slices of [`SAMPLE`] bytes, spread
/// evenly over it.
const SAMPLES: usize = 8;
const SAMPLE: usize = 16 << 10;
/// A slice "compresses" when level 6 saves at least 1/50 (2%) of it.
const MIN_SAVING: usize = 50;
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
                let (level, capacity) = match worth_compressing(data)? {
                    true => (flate2::Compression::new(GZIP_LEVEL), data.len() / 2),
                    // 5 bytes per stored block, and the gzip frame.
                    false => (
                        flate2::Compression::none(),
                        data.len() + data.len() / 1000 + 64,
                    ),
                };
                let out = Vec::with_capacity(capacity);
                let mut encoder = flate2::GzBuilder::new().write(out, level);
                encoder.write_all(data)?;
                encoder.finish()
            }
            Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
        }
    }
}

/// Whether level-6 deflate saves at least 2% on any of [`SAMPLES`] slices
/// of `data`; a chunk too small to sample is always compressed. Depends only
/// on the bytes, so a chunk is stored or compressed the same way everywhere.
fn worth_compressing(data: &[u8]) -> io::Result<bool> {
    if data.len() < SAMPLES * SAMPLE {
        return Ok(true);
    }
    let stride = data.len() / SAMPLES;
    for i in 0..SAMPLES {
        let slice = &data[i * stride..][..SAMPLE];
        let out = Vec::with_capacity(SAMPLE + 64);
        let level = flate2::Compression::new(GZIP_LEVEL);
        let mut encoder = flate2::write::DeflateEncoder::new(out, level);
        encoder.write_all(slice)?;
        let saved = SAMPLE.saturating_sub(encoder.finish()?.len());
        if saved * MIN_SAVING >= SAMPLE {
            return Ok(true);
        }
    }
    Ok(false)
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// `len` bytes of xorshift64*: incompressible, the same everywhere.
    fn random(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn gunzip(member: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(member)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The first deflate block of a gzip member (after the 10-byte header
    /// GzBuilder writes) is stored when its BTYPE bits are 00.
    fn first_block_is_stored(member: &[u8]) -> bool {
        member[10] & 0b110 == 0
    }

    #[test]
    fn a_chunk_that_does_not_shrink_is_stored_reproducibly() {
        let data = random(CHUNK, 7);
        let member = Compression::Gzip.compress_chunk(&data).unwrap();
        assert!(first_block_is_stored(&member));
        assert!(
            member.len() <= data.len() + data.len() / 1000 + 64,
            "{} for {}",
            member.len(),
            data.len()
        );
        assert_eq!(gunzip(&member), data);
        // The bytes themselves are pinned: a stored chunk's digest must not
        // change between runs, machines or versions of this code.
        assert_eq!(
            Digest::sha256_of(&member).to_string(),
            "sha256:a4b6fd9cca77c00629d4da8d60cd54f19d3bf864f68641c579f0ec564eaa7186",
            "{} bytes",
            member.len()
        );
    }

    #[test]
    fn a_chunk_with_one_compressible_slice_is_compressed() {
        let mut data = random(CHUNK, 11);
        // Zeros where the fifth sample slice lies: that slice shrinks.
        let at = 4 * (CHUNK / SAMPLES);
        data[at..at + SAMPLE].fill(0);
        let member = Compression::Gzip.compress_chunk(&data).unwrap();
        // Stored, the member would be longer than the chunk; level 6 takes
        // the zeros out (and stores the random blocks around them itself).
        assert!(member.len() < data.len() - SAMPLE / 2);
        assert_eq!(gunzip(&member), data);
        let text: Vec<u8> = (0..CHUNK).map(|i| b"layer "[i % 6]).collect();
        let member = Compression::Gzip.compress_chunk(&text).unwrap();
        assert!(member.len() < text.len() / 100);
        assert_eq!(gunzip(&member), text);
    }
}
