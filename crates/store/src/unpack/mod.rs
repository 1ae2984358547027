//! Safe extraction of layer tarballs into snapshot directories.
//!
//! [`unpack_layer`] reads a tar stream (plain, gzip or zstd, detected by magic
//! bytes and decompressed in-process), and creates every entry with
//! fd-relative syscalls confined to the destination (see `fsops`): `..` and
//! absolute names are clamped to the root, symlinks met in parent paths are
//! resolved inside the root, the final component is never followed, hardlink
//! targets resolve inside the root, and `.`, `/` or empty names can never
//! replace the root. The extraction happens in a temporary directory next to
//! `dest` and is renamed into place only when the whole stream succeeded, so a
//! failure leaves nothing behind.
//!
//! # Whiteouts
//!
//! OCI whiteouts describe deletions in *lower* layers. With
//! [`Whiteouts::Overlay`] (the default; snapshots are overlayfs lower dirs)
//! they are converted to overlayfs's representation: `.wh.NAME` becomes a
//! character device 0/0 named `NAME`, and `.wh..wh..opq` sets the xattr
//! `trusted.overlay.opaque=y` on its directory, which hides the lower
//! layers' contents but not this layer's siblings, whatever their order.
//! With [`Whiteouts::Apply`] (flattening layers into one tree with
//! [`unpack_layer_onto`]) they delete from the destination directly — an opaque marker removes only what this layer did
//! not itself write. Invalid whiteouts (`.wh.`, `.wh..`, `.wh...`, whiteouts
//! that are not regular files, a whiteout and an entry of the same name in one
//! layer) reject the archive. Other `.wh..wh.*` names (aufs metadata) are
//! skipped. xattrs in `trusted.overlay.*` carried by the archive are dropped
//! so a layer cannot forge overlay metadata.
//!
//! # Metadata
//!
//! Owners (when [`UnpackOptions::chown`] is on, the default for root), modes
//! including setuid bits (applied after chown), mtimes (directories' at the
//! end) and `SCHILY.xattr.*` xattrs are kept. Symlinks keep their owner and
//! mtime but not xattrs. Device nodes follow [`DevicePolicy`].
//!
//! # Limits and malformed archives
//!
//! The decompressed stream is capped by [`UnpackOptions::max_bytes`] and the
//! entry count by [`UnpackOptions::max_entries`]. A PAX `size` that disagrees
//! with the ustar size is rejected (CVE-2025-62518), except the legitimate
//! case of a ustar size of 0 for a file too large for the octal field. An
//! empty (0-byte) stream is not a tar archive; an archive of only the two
//! zero end blocks is a valid empty layer.

mod check;
pub use check::{check_layer_stream, UnpackVerdict};
mod entry;
pub(crate) use entry::pax_size_conflict;
pub use entry::MAX_PATH_LEN;
mod fsops;

use std::cell::Cell;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{self as rfs, Mode};

use crate::fsutil::unique_name;
use crate::{Digest, Error, Result, VerifyingReader};

/// How OCI whiteout entries are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Whiteouts {
    /// Convert to overlayfs whiteouts (char device 0/0, opaque xattr).
    #[default]
    Overlay,
    /// Delete the named paths from the destination.
    Apply,
    /// Not whiteouts at all: `.wh.` names are ordinary files (a tar that
    /// is not a layer, as `rbk cp` takes).
    Keep,
}

/// What to do with character and block device entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DevicePolicy {
    /// Create them (needs CAP_MKNOD); the default, as Docker does.
    #[default]
    Create,
    /// Skip them, counting them in [`UnpackStats::skipped`].
    Skip,
    /// Reject the archive.
    Reject,
}

/// Options for [`unpack_layer`], built by chaining setters on `default()`.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub(crate) whiteouts: Whiteouts,
    pub(crate) devices: DevicePolicy,
    pub(crate) chown: bool,
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: u64,
    pub(crate) verify: Option<(Digest, u64, Digest)>,
    pub(crate) blob_verified: bool,
    pub(crate) strip_setid: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            whiteouts: Whiteouts::default(),
            devices: DevicePolicy::default(),
            chown: rustix::process::geteuid().is_root(),
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            verify: None,
            blob_verified: false,
            strip_setid: false,
        }
    }
}

impl UnpackOptions {
    /// How whiteouts are represented (default [`Whiteouts::Overlay`]).
    pub fn whiteouts(mut self, w: Whiteouts) -> Self {
        self.whiteouts = w;
        self
    }

    /// What to do with device nodes (default [`DevicePolicy::Create`]).
    pub fn devices(mut self, d: DevicePolicy) -> Self {
        self.devices = d;
        self
    }

    /// Whether to apply the archive's uid/gid (default: when running as root).
    pub fn chown(mut self, chown: bool) -> Self {
        self.chown = chown;
        self
    }

    /// Cap on decompressed bytes read from the stream (default 64 GiB).
    pub fn max_bytes(mut self, limit: u64) -> Self {
        self.max_bytes = limit;
        self
    }

    /// Checks the stream while it is unpacked: the compressed bytes must be
    /// the blob `digest` of `size` bytes and the tar stream must hash to
    /// `diff_id`. A mismatch fails the extraction with
    /// [`Error::CorruptLayer`] naming the blob, and nothing is committed.
    pub fn verify(mut self, digest: Digest, size: u64, diff_id: Digest) -> Self {
        self.verify = Some((digest, size, diff_id));
        self
    }

    /// With [`UnpackOptions::verify`]: the blob's bytes were hashed as
    /// they were stored moments ago, so only the diff id is checked (an
    /// uncompressed layer whose diff id is its digest is not hashed again).
    pub fn blob_verified(mut self, verified: bool) -> Self {
        self.blob_verified = verified;
        self
    }

    /// Clears setuid and setgid bits (default: kept), for trees written
    /// onto the host rather than into a snapshot.
    pub fn strip_setid(mut self, strip: bool) -> Self {
        self.strip_setid = strip;
        self
    }

    /// Cap on the number of entries (default 4,000,000).
    pub fn max_entries(mut self, limit: u64) -> Self {
        self.max_entries = limit;
        self
    }
}

/// What an extraction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackStats {
    /// Entries read from the archive.
    pub entries: u64,
    /// Regular files created.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hardlinks created.
    pub hardlinks: u64,
    /// Device nodes and FIFOs created.
    pub special: u64,
    /// Whiteouts (including opaque markers) applied or converted.
    pub whiteouts: u64,
    /// Entries or attributes skipped by policy.
    pub skipped: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Device nodes skipped by [`DevicePolicy::Skip`] (also in `skipped`).
    pub devices_skipped: u64,
    /// Entries whose setuid/setgid bits were cleared.
    pub stripped: u64,
}

/// Extracts the layer `reader` into `dest`, which must not exist yet (its
/// parent must). On error nothing is left at `dest` or beside it.
pub fn unpack_layer(
    reader: impl Read,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if fs::symlink_metadata(dest).is_ok() {
        let source = io::Error::from(io::ErrorKind::AlreadyExists);
        return Err(Error::Io {
            op: "unpacking into existing",
            path: dest.to_path_buf(),
            source,
        });
    }
    let work = parent.join(unique_name(".unpack-"));
    fs::create_dir(&work).map_err(Error::io("creating extraction directory", &work))?;
    let result = unpack_in_work_dir(reader, &work, options);
    let result = result.and_then(|stats| {
        fs::rename(work.join("rootfs"), dest)
            .map_err(Error::io("renaming extraction into place", dest))?;
        crate::fsutil::sync_dir(parent)?;
        Ok(stats)
    });
    let _ = fs::remove_dir_all(&work);
    result
}

/// Extracts the layer `reader` on top of the existing directory `dest`, for
/// flattening several layers into one tree (use [`Whiteouts::Apply`]).
/// Unlike [`unpack_layer`] this is not atomic: on error `dest` may hold part
/// of the layer. The same confinement rules apply.
pub fn unpack_layer_onto(
    reader: impl Read,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = parent.join(unique_name(".unpack-"));
    fs::create_dir(&work).map_err(Error::io("creating extraction directory", &work))?;
    let result = (|| {
        let open = |path: &Path| {
            rfs::openat(rfs::CWD, path, fsops::dir_flags(), Mode::empty())
                .map_err(|e| Error::io("opening extraction directory", path)(e.into()))
        };
        let root = fsops::Root::new(open(dest)?, Some(open(&work)?));
        extract_into(reader, root, options)
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

/// Extracts the tar `reader` into the open directory `dest` (docker cp's
/// rules): the same confinement as [`unpack_layer`] with `dest` as the
/// root, existing entries replaced by entries of the same kind only (a
/// directory is never replaced by a file, nor a file by a directory), and
/// nothing written outside `dest`, so `dest` can be a directory of a
/// running container. Not atomic: on error `dest` may hold part of it.
pub fn unpack_into(
    reader: impl Read,
    dest: OwnedFd,
    options: &UnpackOptions,
) -> Result<UnpackStats> {
    extract_into(reader, fsops::Root::new(dest, None), options)
}

fn extract_into(
    reader: impl Read,
    root: fsops::Root,
    options: &UnpackOptions,
) -> Result<UnpackStats> {
    let hit = Rc::new(Cell::new(false));
    let limited = tar_stream(reader, options, &hit)?;
    entry::Unpacker::new(root, options, hit).run(limited)
}

/// The decompressed tar stream of `reader`, verified against
/// [`UnpackOptions::verify`] when set, and capped at `max_bytes`.
fn tar_stream<'a>(
    reader: impl Read + 'a,
    options: &UnpackOptions,
    hit: &Rc<Cell<bool>>,
) -> Result<Limit<Box<dyn Read + 'a>>> {
    let stream: Box<dyn Read + 'a> = match options.verify {
        Some((digest, size, diff_id)) => {
            let blob: Box<dyn Read + 'a> = match options.blob_verified {
                true => Box::new(reader),
                false => Box::new(VerifyingReader::new(reader, digest, Some(size))),
            };
            let (stream, compressed) =
                decompress_detected(blob).map_err(|source| read_error(hit, options, 0, source))?;
            // An uncompressed layer's diff id is its digest: the blob's
            // verifier already hashes every byte of the tar stream, and a
            // second sha256 pass would cost as much again.
            if !compressed && digest == diff_id {
                stream
            } else {
                Box::new(VerifyingReader::new(stream, diff_id, None))
            }
        }
        None => decompress(reader).map_err(|source| read_error(hit, options, 0, source))?,
    };
    // The cap applies to the decompressed tar stream: that is what a bomb inflates.
    Ok(Limit {
        inner: stream,
        remaining: options.max_bytes,
        hit: hit.clone(),
    })
}

fn unpack_in_work_dir(
    reader: impl Read,
    work: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats> {
    let open = |name: &str| -> Result<OwnedFd> {
        let path = work.join(name);
        rfs::mkdirat(rfs::CWD, &path, Mode::from_raw_mode(0o755))
            .and_then(|()| rfs::openat(rfs::CWD, &path, fsops::dir_flags(), Mode::empty()))
            .map_err(|e| Error::io("creating extraction directory", &path)(e.into()))
    };
    let root = fsops::Root::new(open("rootfs")?, Some(open("graveyard")?));
    rfs::fchmod(&root.fd, Mode::from_raw_mode(0o755))
        .map_err(|e| Error::io("setting mode", work.join("rootfs"))(e.into()))?;
    let hit = Rc::new(Cell::new(false));
    let limited = tar_stream(reader, options, &hit)?;
    let mut unpacker = entry::Unpacker::new(root, options, hit);
    unpacker.run(limited)
}

pub(crate) fn read_error(
    hit: &Cell<bool>,
    options: &UnpackOptions,
    entries: u64,
    source: io::Error,
) -> Error {
    if hit.get() {
        return Error::ArchiveTooLarge {
            limit: options.max_bytes,
        };
    }
    // A stored layer was verified when it was committed: a mismatch, a bad
    // checksum or a broken compressed stream now is damage on disk.
    if let Some((digest, ..)) = options.verify {
        let inner = source.get_ref().and_then(|e| e.downcast_ref::<Error>());
        let reason = match inner {
            Some(e) => e.to_string(),
            None => source.to_string(),
        };
        return Error::CorruptLayer { digest, reason };
    }
    Error::ArchiveRead { entries, source }
}

/// Whether `block` is a tar header: not all zeros, with a checksum field
/// matching the sum of its bytes (unsigned, or signed as old tars wrote it).
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() != 512 || block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .map(|b| *b as char)
        .filter(|c| *c != ' ' && *c != '\0')
        .collect();
    let Ok(expected) = i64::from_str_radix(&text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    expected == unsigned || expected == signed
}

/// Detects the compression by magic bytes (gzip, zstd, xz, bzip2, or
/// none) and returns the tar stream; a compressed stream that expands more
/// than [`crate::archive::MAX_COMPRESSION_RATIO`] times fails as it is read.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    decompress_detected(reader).map(|(stream, _)| stream)
}

/// [`decompress`], also telling whether the stream was compressed (when it
/// was not, the tar stream is the input byte for byte).
fn decompress_detected<'a>(reader: impl Read + 'a) -> io::Result<(Box<dyn Read + 'a>, bool)> {
    let consumed = Rc::new(Cell::new(0u64));
    let counted = Counting {
        inner: reader,
        count: consumed.clone(),
    };
    let mut buf = BufReader::with_capacity(64 << 10, counted);
    let head = buf.fill_buf()?;
    if head.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "empty stream is not a tar archive",
        ));
    }
    let decoder: Box<dyn Read + 'a> = match head {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        // Docker's own loader takes xz and bzip2 layers and archives too.
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buf))
        }
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::bufread::MultiBzDecoder::new(buf)),
        _ => return Ok((Box::new(buf), false)),
    };
    let bounded = RatioBound {
        inner: decoder,
        consumed,
        produced: 0,
    };
    Ok((Box::new(bounded), true))
}

/// Counts the compressed bytes a decoder has read.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Fails a decompressed stream that expands more than
/// [`crate::archive::MAX_COMPRESSION_RATIO`] times what it has read, once
/// past [`crate::archive::RATIO_CHECK_AFTER`] bytes. Every path that
/// decompresses (load, import, pull, ADD, build contexts) goes through
/// [`decompress`], so the bound holds on all of them (docs/security.md C11).
struct RatioBound<'a> {
    inner: Box<dyn Read + 'a>,
    consumed: Rc<Cell<u64>>,
    produced: u64,
}

impl Read for RatioBound<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use crate::archive::{MAX_COMPRESSION_RATIO, RATIO_CHECK_AFTER};
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        let consumed = self.consumed.get().max(1);
        if self.produced > RATIO_CHECK_AFTER && self.produced / consumed > MAX_COMPRESSION_RATIO {
            return Err(io::Error::other(format!(
                "decompressed stream expands more than {MAX_COMPRESSION_RATIO} times its \
                 compressed size (decompression bomb?)"
            )));
        }
        Ok(n)
    }
}

/// Fails reads once `remaining` bytes have passed, and records that it did.
struct Limit<R> {
    inner: R,
    remaining: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.remaining.checked_sub(n as u64) {
            Some(rest) => {
                self.remaining = rest;
                Ok(n)
            }
            None => {
                self.hit.set(true);
                Err(io::Error::other("layer size limit exceeded"))
            }
        }
    }
}
