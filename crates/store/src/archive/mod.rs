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

use crate::{BlobRead, BlobWrite, Digest, Error, Result, Store};

pub use load::{load_archive, LoadedImage};
pub use rootfs::{import_rootfs, rootfs_config, ImportedLayer};
pub use save::{save_archive, save_archive_file, save_index_archive, ArchiveFormat, SavedImage};

/// Reads `reader` through the tar header/entry machinery so that a stream
/// which is not a tar archive is an error. Returns the number of entries.
fn check_tar(reader: impl Read, what: &str) -> Result<u64> {
    let mut archive = tar::Archive::new(reader);
    let mut n = 0;
    let entries = archive.entries().map_err(|e| bad(what, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(what, &e))?;
        // Checked before the tar reader skips the data by the PAX size,
        // which would turn the rest into noise: name what is wrong.
        if let Some(reason) = pax_size_conflict(&mut entry) {
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            return Err(bad(what, &format!("entry {name:?}: {reason}")));
        }
        io::copy(&mut entry, &mut io::sink()).map_err(|e| bad(what, &e))?;
        n += 1;
    }
    Ok(n)
}

/// Why the entry's PAX `size` record disagrees with its header, if it has
/// one that does.
fn pax_size_conflict<R: Read>(entry: &mut tar::Entry<'_, R>) -> Option<String> {
    let ustar = entry.header().entry_size().ok()?;
    let extensions = entry.pax_extensions().ok()??;
    let pax = extensions
        .flatten()
        .find(|e| e.key() == Ok("size"))
        .map(|e| e.value().ok().and_then(|v| v.parse::<u64>().ok()))?;
    match pax {
        Some(pax) => crate::unpack::pax_size_conflict(pax, ustar),
        None => Some("bad PAX size".into()),
    }
}

fn bad(what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::InvalidImageArchive {
        reason: format!("{what}: {e}"),
    }
}

/// No stream rbk imports may expand more than this many times its
/// compressed size. gzip cannot exceed about 1032:1, so no gzip stream is
/// ever refused; zstd (or nested compression) beyond it is treated as a
/// decompression bomb (docs/security.md C11).
pub const MAX_COMPRESSION_RATIO: u64 = 1100;
/// The ratio is checked only past this many decompressed bytes, so small
/// streams of zeros stay acceptable; a bomb is stopped after at most this much work.
pub const RATIO_CHECK_AFTER: u64 = 256 << 20;

/// [`crate::unpack::decompress`] (which bounds the expansion ratio, see
/// [`MAX_COMPRESSION_RATIO`]) with the total of [`UnpackOptions`] applied:
/// a read past it fails with an error that says so.
///
/// [`UnpackOptions`]: crate::UnpackOptions
fn decompress_bounded<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    Ok(Box::new(Bounded {
        inner: crate::unpack::decompress(reader)?,
        produced: 0,
        max_bytes: crate::UnpackOptions::default().max_bytes,
    }))
}

struct Bounded<'a> {
    inner: Box<dyn Read + 'a>,
    produced: u64,
    max_bytes: u64,
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        if self.produced > self.max_bytes {
            return Err(io::Error::other(format!(
                "decompressed stream exceeds the limit of {} bytes (decompression bomb?)",
                self.max_bytes
            )));
        }
        Ok(n)
    }
}

/// The sha256 of a stored layer after decompression (its diff_id).
fn diff_id_of(store: &Store, digest: &Digest) -> Result<Digest> {
    let reader = decompress_bounded(store.open_verified(digest)?)
        .map_err(|e| bad(&format!("layer {digest}"), &e))?;
    let mut hasher = crate::Sha256Writer::new();
    let mut reader = reader;
    io::copy(&mut reader, &mut hasher).map_err(|e| bad(&format!("layer {digest}"), &e))?;
    Ok(hasher.finish())
}

/// Validates the stored layer `layer` the way the first build would use
/// it, for `load` and `import` (issue 20, defect 10): `check` (which is
/// [`check_layer`] or [`check_layer_unpacked_later`]), with its errors
/// worded as an archive's, naming `what` and the layer.
fn validate_layer(
    store: &Store,
    layer: &crate::Descriptor,
    diff_id: &Digest,
    what: &str,
    check: fn(&Store, &crate::Descriptor, &Digest) -> Result<()>,
) -> Result<()> {
    match check(store, layer, diff_id) {
        Ok(()) => Ok(()),
        // The blob was hashed as it was stored, moments ago: when it still
        // hashes to its diff id, what failed is the tar inside it (a
        // truncated archive, say), not a mismatch.
        Err(Error::CorruptLayer { digest, reason })
            if diff_id_of(store, &layer.digest).is_ok_and(|d| d == *diff_id) =>
        {
            Err(bad(
                what,
                &format!("layer {digest}: invalid layer archive: {reason}"),
            ))
        }
        Err(Error::CorruptLayer { digest, reason }) => Err(bad(
            what,
            &format!("layer {digest} does not match its diff id {diff_id} in the config: {reason}"),
        )),
        Err(
            e @ (Error::InvalidArchive { .. }
            | Error::ArchiveTooLarge { .. }
            | Error::ArchiveRead { .. }),
        ) => Err(bad(
            what,
            &format!("layer {}: {}", layer.digest, crate::verify::chain(&e)),
        )),
        Err(e) => Err(e),
    }
}

/// Checks the stored layer `layer` against the `diff_id` an image config
/// gives it, the way the first build would use it: unpacked into its
/// snapshot by the confined extractor, verified against its digest and
/// `diff_id` as it streams. `import` and `pull` call it for every layer
/// they take (`load` through [`check_layer_unpacked_later`]), so that a
/// layer whose bytes lie about their diff id, or that the extractor
/// refuses, fails there and not at the first build.
///
/// When the snapshot exists already (the layer is known), only the diff id
/// is checked: a different blob may not claim it. Rootless (in a user
/// namespace that does not map every id) the unpack is tried too, so the
/// first build does not pay for it; when it fails for another reason than
/// a wrong diff id the layer is only hashed: such a process may store an
/// image it cannot unpack (device nodes, owners outside its ranges), which
/// fails at first use instead.
///
/// Errors: [`Error::CorruptLayer`] when the layer does not match `diff_id`
/// (or its own digest), the extractor's errors ([`Error::InvalidArchive`],
/// [`Error::ArchiveTooLarge`], [`Error::ArchiveRead`]) when it refuses the
/// layer; no snapshot is committed then.
pub fn check_layer(store: &Store, layer: &crate::Descriptor, diff_id: &Digest) -> Result<()> {
    if store.has_snapshot(diff_id) {
        return check_diff_id(store, layer, diff_id);
    }
    match store.ensure_snapshot(layer, diff_id) {
        Ok(_) => Ok(()),
        Err(error @ Error::CorruptLayer { .. }) => Err(error),
        Err(_) if !maps_every_id() => check_diff_id(store, layer, diff_id),
        Err(error) => Err(error),
    }
}

/// [`check_layer`] for a blob this process has just stored (and so
/// hashed), without making its snapshot when the extractor's dry run can
/// tell that the layer unpacks: `rbk load` then costs about what writing
/// the archive does, and the first build unpacks the layer (verifying it
/// again as it does). The dry run refuses what the extractor would refuse,
/// with the same errors; when it cannot tell (symlinks on paths, xattrs,
/// device nodes; see `unpack::check`), or rbk is not root in the initial
/// user namespace, this is [`check_layer`].
fn check_layer_unpacked_later(
    store: &Store,
    layer: &crate::Descriptor,
    diff_id: &Digest,
) -> Result<()> {
    if store.has_snapshot(diff_id) {
        return check_diff_id(store, layer, diff_id);
    }
    if rustix::process::geteuid().is_root() && maps_every_id() {
        let options = crate::UnpackOptions::default()
            .verify(layer.digest, layer.size, *diff_id)
            .blob_verified(true);
        let reader = store.open(&layer.digest)?;
        if crate::check_layer_stream(reader, &options)? == crate::UnpackVerdict::Unpacks {
            return Ok(());
        }
    }
    check_layer(store, layer, diff_id)
}

/// Checks by hashing alone that the blob of `layer` unpacks to `diff_id`.
fn check_diff_id(store: &Store, layer: &crate::Descriptor, diff_id: &Digest) -> Result<()> {
    if layer.digest == *diff_id {
        return Ok(()); // verified when the blob was stored
    }
    let actual = diff_id_of(store, &layer.digest)?;
    if actual != *diff_id {
        return Err(Error::CorruptLayer {
            digest: layer.digest,
            reason: format!("it unpacks to {actual}, but the config says {diff_id}"),
        });
    }
    Ok(())
}

/// Whether this process's user namespace maps every id (the initial one,
/// as root runs in), so that any valid layer can be unpacked.
fn maps_every_id() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
}

/// How a stored layer blob is compressed, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
    /// xz or bzip2: Docker loads them, but no manifest media type names them.
    Legacy,
}

impl Compression {
    /// The OCI layer media type for this compression; `None` for
    /// [`Compression::Legacy`], which must be decompressed first.
    fn layer_media_type(self) -> Option<&'static str> {
        match self {
            Compression::None => Some(crate::image::OCI_LAYER),
            Compression::Gzip => Some(crate::image::OCI_LAYER_GZIP),
            Compression::Zstd => Some(crate::image::OCI_LAYER_ZSTD),
            Compression::Legacy => None,
        }
    }
}

/// The compression of a stored blob.
fn sniff_compression(store: &Store, digest: &Digest) -> Result<Compression> {
    let mut head = [0u8; 6];
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
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0xfd, b'7', b'z', b'X', b'Z', 0] | [b'B', b'Z', b'h', ..] => Compression::Legacy,
        _ => Compression::None,
    })
}

/// Stores the decompressed form of a stored layer (bounded like every
/// other unpack) and returns it: the blob whose digest is the diff id.
fn decompressed_copy(store: &Store, digest: &Digest) -> Result<crate::BlobInfo> {
    let what = format!("layer {digest}");
    let mut reader =
        decompress_bounded(store.open_verified(digest)?).map_err(|e| bad(&what, &e))?;
    store.put(&mut reader, None).map_err(|e| match e {
        Error::Io { source, .. } => bad(&what, &source),
        other => other,
    })
}
