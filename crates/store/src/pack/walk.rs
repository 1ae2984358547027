//! Walking an overlay-format directory and writing its OCI layer tar.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

use super::header::{padding, write_header, Entry, Kind, BLOCK};
use super::PackOptions;
use crate::{Error, Result};

/// Size of the read buffer and of the output buffer.
const BUFFER: usize = 1 << 20;
/// Linux caps an xattr list and an xattr value at 64 KiB each.
const XATTR_MAX: usize = 64 << 10;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Writes the OCI layer tar of the overlay-format directory `dir` to `out`
/// (the rules are in the docs of the `pack` module).
pub fn write_layer_tar(dir: &Path, out: impl Write, options: &PackOptions) -> Result<()> {
    write_unbuffered(dir, BufWriter::with_capacity(BUFFER, out), options)
}

/// [`write_layer_tar`] for an `out` that buffers by itself: headers arrive
/// as many small writes.
pub(super) fn write_unbuffered(dir: &Path, out: impl Write, options: &PackOptions) -> Result<()> {
    let mut writer = TarWriter {
        out,
        buf: vec![0; BUFFER],
        scratch: vec![0; 2 * XATTR_MAX],
        links: HashMap::new(),
        epoch: options.source_date_epoch,
        dir_mtimes: true,
    };
    writer.walk(dir, &[])?;
    writer.finish(dir)
}

/// The digest of the tar of `dir` with every directory's mtime written as
/// 0: what two unpacks of one layer agree on. The extractor gives parent
/// directories the archive does not list the time they were made, so those
/// differ between unpacks (as in containerd); everything else is the
/// archive's.
pub(super) fn content_digest_here(dir: &Path) -> Result<crate::Digest> {
    let mut hasher = crate::Sha256Writer::new();
    let mut writer = TarWriter {
        out: BufWriter::with_capacity(BUFFER, &mut hasher),
        buf: vec![0; BUFFER],
        scratch: vec![0; 2 * XATTR_MAX],
        links: HashMap::new(),
        epoch: None,
        dir_mtimes: false,
    };
    writer.walk(dir, &[])?;
    writer.finish(dir)?;
    Ok(hasher.finish())
}

struct TarWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Room for one xattr list and one value, reused for every path.
    scratch: Vec<u8>,
    /// First archive name of each multiply-linked inode, by (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
    epoch: Option<i64>,
    /// Whether directories carry their mtime (else 0).
    dir_mtimes: bool,
}

/// The xattrs of one path that matter for the layer.
#[derive(Default)]
struct Xattrs {
    kept: BTreeMap<Vec<u8>, Vec<u8>>,
    opaque: bool,
}

impl<W: Write> TarWriter<W> {
    /// Writes the entries below `dir`, whose archive name is `prefix`
    /// (empty or ending in `/`), children in byte order of their names.
    fn walk(&mut self, dir: &Path, prefix: &[u8]) -> Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
            names.push(entry.map_err(Error::io("listing", dir))?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(Error::io("inspecting", &path))?;
            let mut archive_name = prefix.to_vec();
            archive_name.extend_from_slice(name.as_bytes());
            self.entry(&path, archive_name, &meta)?;
        }
        Ok(())
    }

    /// Writes one path (and, for a directory, everything below it).
    fn entry(&mut self, path: &Path, name: Vec<u8>, meta: &Metadata) -> Result<()> {
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            return self.whiteout(path, &name, meta);
        }
        if base_name(&name).starts_with(WHITEOUT_PREFIX) {
            return Err(layer_error(
                path,
                "names starting with .wh. are whiteouts in OCI layers and cannot be stored",
            ));
        }
        if kind.is_socket() {
            return Ok(()); // tar cannot carry sockets; Docker skips them too
        }
        let xattrs = read_xattrs(path, &mut self.scratch)?;
        let mut entry = self.base_entry(name, meta, xattrs.kept);
        if kind.is_dir() {
            entry.kind = Kind::Directory;
            entry.name.push(b'/');
            if !self.dir_mtimes {
                entry.mtime = 0;
            }
            self.write(path, &entry)?;
            if xattrs.opaque {
                let mut marker = entry.name.clone();
                marker.extend_from_slice(OPAQUE_MARKER);
                self.write(path, &Entry::new(marker, Kind::Regular, entry.mtime))?;
            }
            let prefix = entry.name;
            return self.walk(path, &prefix);
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                entry.kind = Kind::HardLink;
                entry.link = first.clone();
                return self.write(path, &entry);
            }
            self.links.insert(key, entry.name.clone());
        }
        if kind.is_file() {
            entry.size = meta.len();
            self.write(path, &entry)?;
            return self.content(path, entry.size);
        }
        special(path, &mut entry, meta)?;
        self.write(path, &entry)
    }

    /// The metadata every entry kind shares; `kind` starts as regular.
    fn base_entry(
        &self,
        name: Vec<u8>,
        meta: &Metadata,
        xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Entry {
        let mut entry = Entry::new(name, Kind::Regular, self.mtime(meta));
        entry.mode = meta.mode() & 0o7777;
        entry.uid = u64::from(meta.uid());
        entry.gid = u64::from(meta.gid());
        entry.xattrs = xattrs;
        entry
    }

    /// An overlay whiteout (char device 0/0) as the OCI `.wh.NAME` file.
    fn whiteout(&mut self, path: &Path, name: &[u8], meta: &Metadata) -> Result<()> {
        let base = base_name(name);
        let mut out = name[..name.len() - base.len()].to_vec();
        out.extend_from_slice(WHITEOUT_PREFIX);
        out.extend_from_slice(base);
        let entry = Entry::new(out, Kind::Regular, self.mtime(meta));
        self.write(path, &entry)
    }

    fn mtime(&self, meta: &Metadata) -> i64 {
        match self.epoch {
            Some(epoch) if meta.mtime() > epoch => epoch,
            _ => meta.mtime(),
        }
    }

    fn write(&mut self, path: &Path, entry: &Entry) -> Result<()> {
        write_header(&mut self.out, entry).map_err(Error::io("writing layer entry", path))
    }

    /// Streams exactly `size` bytes of the file at `path`, then the padding.
    fn content(&mut self, path: &Path, size: u64) -> Result<()> {
        let io = |e| Error::io("reading file for layer", path)(e);
        let flags = (OFlags::NOFOLLOW | OFlags::NOATIME).bits() as i32;
        let mut file = match open(path, flags) {
            // O_NOATIME needs ownership or CAP_FOWNER; retry without it.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                open(path, OFlags::NOFOLLOW.bits() as i32).map_err(io)?
            }
            other => other.map_err(io)?,
        };
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = file.read(&mut self.buf[..want]).map_err(io)?;
            if n == 0 {
                return Err(layer_error(path, "file shrank while it was being read"));
            }
            self.out
                .write_all(&self.buf[..n])
                .map_err(Error::io("writing layer", path))?;
            left -= n as u64;
        }
        let zeros = [0u8; BLOCK];
        self.out
            .write_all(&zeros[..padding(size)])
            .map_err(Error::io("writing layer", path))
    }

    /// The end-of-archive marker (two zero blocks), then a flush.
    fn finish(mut self, dir: &Path) -> Result<()> {
        let io = |e| Error::io("writing layer", dir)(e);
        self.out.write_all(&[0u8; 2 * BLOCK]).map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// Fills in a symlink's target or a device's numbers (a FIFO needs neither).
fn special(path: &Path, entry: &mut Entry, meta: &Metadata) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        entry.kind = Kind::Symlink;
        let target = fs::read_link(path).map_err(Error::io("reading link", path))?;
        entry.link = target.into_os_string().into_vec();
    } else if kind.is_fifo() {
        entry.kind = Kind::Fifo;
    } else {
        entry.kind = if kind.is_char_device() {
            Kind::CharDevice
        } else {
            Kind::BlockDevice
        };
        entry.dev_major = rustix::fs::major(meta.rdev());
        entry.dev_minor = rustix::fs::minor(meta.rdev());
    }
    Ok(())
}

fn open(path: &Path, flags: i32) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// The last component of an archive name.
fn base_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b'/') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Reads the xattrs of `path` (not following a symlink): keeps `user.*` and
/// `security.capability`, notes `trusted.overlay.opaque=y`, drops the rest,
/// and refuses overlay redirects and metacopy files, whose content is not in
/// this directory.
fn read_xattrs(path: &Path, scratch: &mut [u8]) -> Result<Xattrs> {
    let (list, value) = scratch.split_at_mut(XATTR_MAX);
    let len = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Xattrs::default()),
        Err(e) => return Err(Error::io("listing xattrs of", path)(e.into())),
    };
    let mut out = Xattrs::default();
    let overlay = crate::overlay_xattrs();
    for name in list[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let own = name.strip_prefix(overlay.prefix.as_bytes());
        match own {
            Some(b"redirect" | b"metacopy") => {
                let name = String::from_utf8_lossy(name);
                return Err(layer_error(
                    path,
                    &format!("overlay xattr {name} (redirect_dir/metacopy) is not supported"),
                ));
            }
            Some(b"opaque") => {
                out.opaque = get_xattr(path, name, value)? == b"y";
                continue;
            }
            // overlayfs's other bookkeeping (origin, impure…).
            Some(_) => continue,
            None => {}
        }
        match name {
            n if n.starts_with(b"user.") || n == b"security.capability" => {
                let value = get_xattr(path, name, value)?;
                out.kept.insert(name.to_vec(), value.to_vec());
            }
            _ => {}
        }
    }
    Ok(out)
}

fn get_xattr<'a>(path: &Path, name: &[u8], value: &'a mut [u8]) -> Result<&'a [u8]> {
    let name = std::ffi::OsStr::from_bytes(name);
    let n = rustix::fs::lgetxattr(path, name, &mut value[..])
        .map_err(|e| Error::io("reading xattr of", path)(e.into()))?;
    Ok(&value[..n])
}

fn layer_error(path: &Path, reason: &str) -> Error {
    Error::Pack {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
