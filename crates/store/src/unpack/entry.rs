//! Per-entry extraction: dispatch on the entry type, whiteouts, metadata.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use tar::{EntryType, Header};

use super::fsops::{clean, Components, Root};
use super::{read_error, DevicePolicy, UnpackOptions, UnpackStats, Whiteouts};
use crate::{Error, Result};

pub(super) const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub(super) const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
pub(super) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Largest size the 11-digit octal ustar field can hold.
const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// Longest path inside a layer or an ADDed archive, in bytes. A path is
/// used under the store's own directories (`<root>/snapshots/<id>/…`) by
/// tools that take whole paths (the kernel's PATH_MAX is 4096); past this
/// the archive is refused with a clear error rather than stored in a form
/// that `save`, `verify` or an export cannot read back. It also bounds
/// nesting: at most 1,536 levels of one-letter directories.
pub const MAX_PATH_LEN: usize = 3072;

/// The first and last bytes of a long entry name, for messages.
fn cut_name(name: &str) -> String {
    if name.len() <= 200 {
        return name.to_string();
    }
    let head: String = name.chars().take(80).collect();
    let tail: String = name
        .chars()
        .rev()
        .take(80)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…{tail}")
}

type Entry<'a, R> = tar::Entry<'a, R>;

/// Counts the bytes the tar reader has taken from the stream.
pub(super) struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn entry_name<R: Read>(entry: &Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).into_owned()
}

/// Past [`crate::archive::RATIO_CHECK_AFTER`], the files of an archive may
/// add up to at most [`crate::archive::MAX_COMPRESSION_RATIO`] times the tar
/// bytes they take: the bound of compressed streams, applied to sparse maps.
/// `Err` is the reason of the `Error::InvalidArchive` the caller makes (it
/// knows the entry's name), hence a plain `String`.
fn check_expansion(logical: u64, read: u64) -> std::result::Result<(), String> {
    use crate::archive::{MAX_COMPRESSION_RATIO, RATIO_CHECK_AFTER};
    if logical > RATIO_CHECK_AFTER && logical / read.max(1) > MAX_COMPRESSION_RATIO {
        return Err(format!(
            "the archive's files expand more than {MAX_COMPRESSION_RATIO} times the archive \
             (a sparse file of {logical} bytes or more from {read} bytes of tar)"
        ));
    }
    Ok(())
}

pub(super) struct Unpacker<'o> {
    root: Root,
    opts: &'o UnpackOptions,
    hit: Rc<Cell<bool>>,
    stats: UnpackStats,
    /// Paths (and their ancestors) this layer created.
    written: HashSet<Components>,
    /// Paths this layer whited out.
    whited_out: HashSet<Components>,
    dir_times: Vec<(Components, u64)>,
}

/// One entry's facts, read before its data.
pub(super) struct Item {
    pub(super) name: String,
    pub(super) comps: Components,
    pub(super) kind: EntryType,
    pub(super) header: Header,
    pub(super) xattrs: Vec<(String, Vec<u8>)>,
    pub(super) link: Option<Vec<u8>>,
}

/// Why a PAX `size` record of `pax` cannot stand beside the ustar size
/// `ustar` (CVE-2025-62518: readers that disagree on where the data ends
/// see different files), or `None` when it may: equal, or a ustar size of 0
/// for a file too large for the octal field.
pub(crate) fn pax_size_conflict(pax: u64, ustar: u64) -> Option<String> {
    if pax == ustar || (ustar == 0 && pax > USTAR_MAX_SIZE) {
        return None;
    }
    Some(format!("PAX size {pax} disagrees with header size {ustar}"))
}

/// A numeric header field, read as Go's archive/tar reads it (and so
/// Docker): a field of only NULs and spaces is 0, where the tar crate
/// refuses it. Writers that leave uid/gid/mode unset produce such fields.
fn numeric(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|b| matches!(b, 0 | b' ')) {
        return Ok(0);
    }
    parsed
}

/// The permission bits of an entry (an empty mode field is 0).
pub(super) fn mode_of(item: &Item) -> Result<u32> {
    let raw = &item.header.as_old().mode;
    let mode = numeric(raw, item.header.mode().map(u64::from))
        .map_err(|e| invalid(&item.name, format!("bad mode: {e}")))?;
    Ok(mode as u32 & 0o7777)
}

/// The owner of an entry, as numeric ids (empty fields are 0).
pub(super) fn owner_ids(item: &Item) -> Result<(Uid, Gid)> {
    let range = |v: io::Result<u64>, what: &str| -> Result<u32> {
        let v = v.map_err(|e| invalid(&item.name, format!("bad {what}: {e}")))?;
        u32::try_from(v).map_err(|_| invalid(&item.name, format!("{what} {v} out of range")))
    };
    let old = item.header.as_old();
    let uid = range(numeric(&old.uid, item.header.uid()), "uid")?;
    let gid = range(numeric(&old.gid, item.header.gid()), "gid")?;
    Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
}

pub(super) fn invalid(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidArchive {
        entry: name.to_string(),
        reason: reason.into(),
    }
}

fn extract(op: &'static str, name: &str) -> impl FnOnce(io::Error) -> Error {
    let entry = name.to_string();
    move |source| Error::Extract { op, entry, source }
}

/// Why `uid:gid` cannot be given: outside the ids this process's user
/// namespace maps (rootless rbk), read from `/proc/self/uid_map`.
fn unmapped_owner(uid: u32, gid: u32) -> String {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let ranges: Vec<String> = map
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(|n| n.parse::<u64>().ok());
            let (inner, _, count) = (f.next()??, f.next()??, f.next()??);
            Some(match count {
                1 => inner.to_string(),
                _ => format!("{inner}-{}", inner + count - 1),
            })
        })
        .collect();
    format!(
        "owner {uid}:{gid} is outside the ids this user namespace maps ({}): rootless rbk \
         needs subordinate ids covering it in /etc/subuid and /etc/subgid \
         (usermod --add-subuids/--add-subgids)",
        ranges.join(", ")
    )
}

fn errno(op: &'static str, name: &str) -> impl FnOnce(Errno) -> Error {
    let f = extract(op, name);
    move |e| f(e.into())
}

/// Reads the tar `stream` entry by entry under the limits of `opts`
/// (entry count, logical bytes, expansion), describes each entry and hands
/// it to `f` with its number (from 1), then drains what follows the end-of-archive blocks, so a
/// gzip/zstd checksum is verified and trailing garbage is an error, as in
/// Go's readers. The extractor and the dry run (`super::check`) share it,
/// so both read an archive alike.
pub(super) fn walk<S: Read>(
    stream: S,
    opts: &UnpackOptions,
    hit: &Cell<bool>,
    mut f: impl FnMut(u64, Item, &mut Entry<'_, CountingReader<S>>) -> Result<()>,
) -> Result<u64> {
    let read = Rc::new(Cell::new(0u64));
    let stream = CountingReader {
        inner: stream,
        count: read.clone(),
    };
    let mut archive = tar::Archive::new(stream);
    let read_err = |entries: u64, e| read_error(hit, opts, entries, e);
    let entries = archive.entries().map_err(|e| read_err(0, e))?;
    let (mut logical, mut n) = (0u64, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| read_err(n, e))?;
        n += 1;
        if n > opts.max_entries {
            let limit = opts.max_entries;
            return Err(invalid(
                "",
                format!("archive has more than {limit} entries"),
            ));
        }
        // A GNU sparse entry's size is its logical size: a few KB of
        // sparse map can describe gigabytes of zeros, which the stream
        // limits never see. Count files by what they will occupy.
        // Compared with the tar bytes read so far plus what this
        // entry's data takes in the stream (not yet read).
        logical += entry.size();
        let stored = entry.header().entry_size().unwrap_or(0);
        if logical > opts.max_bytes {
            let limit = opts.max_bytes;
            return Err(Error::ArchiveTooLarge { limit });
        }
        check_expansion(logical, read.get() + stored)
            .map_err(|reason| invalid(&cut_name(&entry_name(&entry)), reason))?;
        let item = describe(&mut entry, |e| read_err(n, e))?;
        f(n, item, &mut entry)?;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| read_err(n, e))?;
    Ok(n)
}

/// Reads names, PAX size check and xattrs for one entry.
fn describe<R: Read>(
    entry: &mut Entry<'_, R>,
    read_err: impl Fn(io::Error) -> Error,
) -> Result<Item> {
    let raw = entry.path_bytes().into_owned();
    let name = String::from_utf8_lossy(&raw).into_owned();
    if raw.is_empty() {
        return Err(invalid(&name, "empty file name"));
    }
    let header = entry.header().clone();
    let ustar_size = header
        .entry_size()
        .map_err(|e| invalid(&name, format!("bad size field: {e}")))?;
    let mut xattrs = Vec::new();
    let exts = entry.pax_extensions().map_err(&read_err)?;
    for ext in exts.into_iter().flatten() {
        let ext = ext.map_err(&read_err)?;
        let Ok(key) = ext.key() else { continue };
        if key == "size" {
            let pax: u64 = ext
                .value()
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid(&name, "bad PAX size"))?;
            if let Some(reason) = pax_size_conflict(pax, ustar_size) {
                return Err(invalid(&name, reason));
            }
        } else if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
            xattrs.push((x.to_string(), ext.value_bytes().to_vec()));
        }
    }
    let link = entry.link_name_bytes().map(|l| l.into_owned());
    let comps = clean(&raw);
    let length = comps.iter().map(|c| c.len() + 1).sum::<usize>();
    if length > MAX_PATH_LEN {
        let reason = format!(
            "path is {length} bytes long, more than the {MAX_PATH_LEN} rbk accepts \
             (it could not be read back under the store's own path; docs/security.md C15)"
        );
        return Err(invalid(&cut_name(&name), reason));
    }
    Ok(Item {
        comps,
        name,
        kind: header.entry_type(),
        header,
        xattrs,
        link,
    })
}

impl<'o> Unpacker<'o> {
    pub(super) fn new(root: Root, opts: &'o UnpackOptions, hit: Rc<Cell<bool>>) -> Self {
        Unpacker {
            root,
            opts,
            hit,
            stats: UnpackStats::default(),
            written: HashSet::new(),
            whited_out: HashSet::new(),
            dir_times: Vec::new(),
        }
    }

    fn read_err(&self, e: io::Error) -> Error {
        read_error(&self.hit, self.opts, self.stats.entries, e)
    }

    pub(super) fn run(&mut self, stream: impl Read) -> Result<UnpackStats> {
        let (opts, hit) = (self.opts, self.hit.clone());
        walk(stream, opts, &hit, |n, item, entry| {
            self.stats.entries = n;
            self.entry(item, entry)
        })?;
        self.finish_dir_times();
        Ok(self.stats.clone())
    }

    fn entry<R: Read>(&mut self, item: Item, entry: &mut Entry<'_, R>) -> Result<()> {
        let Some((base, parent_comps)) = item.comps.split_last() else {
            if item.kind.is_dir() {
                return Ok(()); // "./": the snapshot root keeps the mode rbk gave it
            }
            return Err(invalid(
                &item.name,
                "entry would replace the extraction root",
            ));
        };
        if base.starts_with(WHITEOUT_PREFIX) && self.opts.whiteouts != Whiteouts::Keep {
            return self.whiteout(&item);
        }
        if self.whited_out.contains(&item.comps) {
            return Err(invalid(
                &item.name,
                "entry conflicts with a whiteout in the same layer",
            ));
        }
        let parent = self
            .root
            .open_dir(parent_comps, true)
            .map_err(extract("resolving parent directory", &item.name))?;
        match item.kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(&parent, base, &item, entry)?
            }
            EntryType::Directory => self.dir(&parent, base, &item)?,
            EntryType::Symlink => self.symlink(&parent, base, &item)?,
            EntryType::Link => self.hardlink(&parent, base, &item)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.special(&parent, base, &item)?
            }
            other => {
                return Err(invalid(
                    &item.name,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ))
            }
        }
        // The set is closed under prefixes, so the walk up stops at the
        // first ancestor already in it: O(path) per entry, not O(depth²).
        for n in (1..=item.comps.len()).rev() {
            if !self.written.insert(item.comps[..n].to_vec()) {
                break;
            }
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        parent: &OwnedFd,
        base: &[u8],
        item: &Item,
        entry: &mut Entry<'_, R>,
    ) -> Result<()> {
        let name = &item.name;
        self.root
            .remove(parent, base)
            .map_err(extract("replacing existing entry", name))?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(parent, base, flags, Mode::from_raw_mode(0o600))
            .map_err(errno("creating file", name))?;
        let mut file = File::from(fd);
        let mut buf = vec![0u8; 128 << 10];
        loop {
            let n = entry.read(&mut buf).map_err(|e| self.read_err(e))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(extract("writing file", name))?;
            self.stats.bytes += n as u64;
        }
        self.metadata(file.as_fd(), item, true)?;
        self.stats.files += 1;
        Ok(())
    }

    fn dir(&mut self, parent: &OwnedFd, base: &[u8], item: &Item) -> Result<()> {
        let name = &item.name;
        let existing = Root::kind(parent, base).map_err(extract("inspecting", name))?;
        if existing.is_some_and(|k| k != FileType::Directory) && !self.root.replaces_kinds() {
            return Err(extract("replacing existing entry", name)(io::Error::new(
                io::ErrorKind::NotADirectory,
                "cannot overwrite a non-directory with a directory",
            )));
        }
        if existing != Some(FileType::Directory) {
            // A symlink (or file) of this name is replaced, never followed (docs/security.md C6).
            self.root
                .remove(parent, base)
                .map_err(extract("replacing existing entry", name))?;
            rfs::mkdirat(parent, base, Mode::from_raw_mode(0o700))
                .map_err(errno("creating directory", name))?;
        }
        let fd = rfs::openat(parent, base, super::fsops::dir_flags(), Mode::empty())
            .map_err(errno("opening directory", name))?;
        self.metadata(fd.as_fd(), item, false)?;
        let mtime = item.header.mtime().unwrap_or(0);
        self.dir_times.push((item.comps.clone(), mtime));
        self.stats.dirs += 1;
        Ok(())
    }

    fn symlink(&mut self, parent: &OwnedFd, base: &[u8], item: &Item) -> Result<()> {
        let name = &item.name;
        let target = item
            .link
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(name, "symlink without a target"))?;
        self.root
            .remove(parent, base)
            .map_err(extract("replacing existing entry", name))?;
        rfs::symlinkat(target, parent, base).map_err(errno("creating symlink", name))?;
        self.path_metadata(parent, base, item, false)?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink(&mut self, parent: &OwnedFd, base: &[u8], item: &Item) -> Result<()> {
        let name = &item.name;
        let target = item
            .link
            .as_deref()
            .ok_or_else(|| invalid(name, "hardlink without a target"))?;
        let tcomps = clean(target);
        let Some((tbase, tparent_comps)) = tcomps.split_last() else {
            return Err(invalid(name, "hardlink to the extraction root"));
        };
        if tcomps == item.comps {
            return Err(invalid(name, "hardlink to itself"));
        }
        let tparent = match self.root.open_dir(tparent_comps, false) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(invalid(name, "hardlink target is not in this layer"))
            }
            Err(e) => return Err(extract("resolving hardlink target", name)(e)),
        };
        match Root::kind(&tparent, tbase).map_err(extract("inspecting hardlink target", name))? {
            None => return Err(invalid(name, "hardlink target is not in this layer")),
            Some(FileType::Directory) => return Err(invalid(name, "hardlink to a directory")),
            Some(_) => {}
        }
        self.root
            .remove(parent, base)
            .map_err(extract("replacing existing entry", name))?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, never
        // followed (docs/security.md C3, C4).
        rfs::linkat(&tparent, tbase, parent, base, AtFlags::empty())
            .map_err(errno("creating hardlink", name))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn special(&mut self, parent: &OwnedFd, base: &[u8], item: &Item) -> Result<()> {
        let name = &item.name;
        let file_type = match item.kind {
            EntryType::Fifo => FileType::Fifo,
            EntryType::Char => FileType::CharacterDevice,
            _ => FileType::BlockDevice,
        };
        if file_type != FileType::Fifo {
            match self.opts.devices {
                DevicePolicy::Create => {}
                DevicePolicy::Skip => {
                    self.stats.skipped += 1;
                    self.stats.devices_skipped += 1;
                    return Ok(());
                }
                DevicePolicy::Reject => return Err(invalid(name, "device nodes are not allowed")),
            }
        }
        let major = item.header.device_major().ok().flatten().unwrap_or(0);
        let minor = item.header.device_minor().ok().flatten().unwrap_or(0);
        self.root
            .remove(parent, base)
            .map_err(extract("replacing existing entry", name))?;
        rfs::mknodat(
            parent,
            base,
            file_type,
            Mode::empty(),
            rfs::makedev(major, minor),
        )
        .map_err(|e| match e {
            // Rootless: the kernel lets a user namespace create no device
            // but the 0/0 whiteout. An error rather than a placeholder,
            // because a placeholder would change the layer and so every
            // digest built on it, silently unlike a root build.
            Errno::PERM => invalid(
                name,
                "this device node cannot be created: rootless rbk runs in a user namespace, \
                 where the kernel refuses mknod; use the image as root",
            ),
            e => errno("creating device node", name)(e),
        })?;
        self.path_metadata(parent, base, item, true)?;
        self.stats.special += 1;
        Ok(())
    }

    /// Owner, then mode (so chown cannot clear setuid bits), then xattrs (so
    /// chown cannot clear `security.capability`), then mtime.
    fn metadata(&mut self, fd: BorrowedFd<'_>, item: &Item, mtime: bool) -> Result<()> {
        let name = &item.name;
        if self.opts.chown {
            let (uid, gid) = owner_ids(item)?;
            rfs::fchown(fd, Some(uid), Some(gid)).map_err(|e| match e {
                // EINVAL: an id this (rootless) user namespace has no map for.
                Errno::INVAL => invalid(name, unmapped_owner(uid.as_raw(), gid.as_raw())),
                e => errno("changing owner", name)(e),
            })?;
        }
        let mode = mode_of(item)?;
        let mode = match self.opts.strip_setid && mode & 0o6000 != 0 {
            true => {
                self.stats.stripped += 1;
                mode & !0o6000
            }
            false => mode,
        };
        rfs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(errno("changing mode", name))?;
        for (key, value) in &item.xattrs {
            if crate::overlay_xattrs().is_overlay(key.as_bytes()) {
                self.stats.skipped += 1;
                continue;
            }
            match rfs::fsetxattr(fd, key.as_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::OPNOTSUPP) => self.stats.skipped += 1,
                Err(e) => return Err(errno("setting xattr", name)(e)),
            }
        }
        if mtime {
            rfs::futimens(fd, &times(item.header.mtime().unwrap_or(0)))
                .map_err(errno("setting mtime", name))?;
        }
        Ok(())
    }

    /// Metadata for entries that cannot be opened (symlinks, device nodes).
    fn path_metadata(
        &mut self,
        parent: &OwnedFd,
        base: &[u8],
        item: &Item,
        chmod: bool,
    ) -> Result<()> {
        let name = &item.name;
        if self.opts.chown {
            let (uid, gid) = owner_ids(item)?;
            rfs::chownat(
                parent,
                base,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno("changing owner", name))?;
        }
        if chmod {
            // Only for nodes just created by mknodat in our private directory:
            // fchmodat cannot refuse to follow, but nothing here is a symlink.
            let mode = mode_of(item)?;
            rfs::chmodat(parent, base, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(errno("changing mode", name))?;
        }
        let t = times(item.header.mtime().unwrap_or(0));
        rfs::utimensat(parent, base, &t, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno("setting mtime", name))
    }

    fn whiteout(&mut self, item: &Item) -> Result<()> {
        let name = &item.name;
        let (base, parent_comps) = item
            .comps
            .split_last()
            .ok_or_else(|| invalid(name, "empty whiteout"))?;
        if !matches!(item.kind, EntryType::Regular | EntryType::Continuous) {
            return Err(invalid(name, "whiteouts must be regular files"));
        }
        if base.as_slice() == OPAQUE_MARKER {
            return self.opaque(item, parent_comps);
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            self.stats.skipped += 1; // aufs metadata (.wh..wh.plnk etc.)
            return Ok(());
        }
        let tcomps = whiteout_target(name, parent_comps, base, &self.written)?;
        let target = tcomps.last().map_or(&b""[..], |t| t.as_slice());
        let parent = self
            .root
            .open_dir(parent_comps, true)
            .map_err(extract("resolving whiteout parent", name))?;
        self.root
            .remove(&parent, target)
            .map_err(extract("removing whited-out entry", name))?;
        if self.opts.whiteouts == Whiteouts::Overlay {
            rfs::mknodat(
                &parent,
                target,
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(errno("creating overlay whiteout (char device 0/0)", name))?;
            // The entry's mtime, as for every other entry: packing the
            // snapshot writes the whiteout with its node's mtime, so a node
            // stamped "now" would pack to another diff id than its layer
            // (`system verify` compares the two).
            let t = times(item.header.mtime().unwrap_or(0));
            rfs::utimensat(&parent, target, &t, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno("setting whiteout mtime", name))?;
        }
        self.whited_out.insert(tcomps);
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn opaque(&mut self, item: &Item, dir_comps: &[Vec<u8>]) -> Result<()> {
        let name = &item.name;
        let dir = self
            .root
            .open_dir(dir_comps, true)
            .map_err(extract("resolving opaque directory", name))?;
        match self.opts.whiteouts {
            Whiteouts::Overlay => {
                let opaque = crate::overlay_xattrs().opaque;
                rfs::fsetxattr(&dir, opaque, b"y", XattrFlags::empty())
                    .map_err(errno("marking an opaque directory", name))?;
            }
            Whiteouts::Apply => {
                for child in Root::list(&dir).map_err(extract("listing opaque directory", name))? {
                    let mut comps = dir_comps.to_vec();
                    comps.push(child.clone());
                    if !self.written.contains(&comps) {
                        self.root
                            .remove(&dir, &child)
                            .map_err(extract("clearing opaque directory", name))?;
                    }
                }
            }
            // entry() hands `.wh.` names to file() instead.
            Whiteouts::Keep => return Err(invalid(name, "whiteouts are kept as files here")),
        }
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Directory mtimes are set last: creating children changes them.
    fn finish_dir_times(&mut self) {
        for (comps, mtime) in std::mem::take(&mut self.dir_times) {
            // A directory replaced later in the stream is simply skipped.
            if let Ok(fd) = self.root.open_dir(&comps, false) {
                let _ = rfs::futimens(&fd, &times(mtime));
            }
        }
    }
}

/// The path the whiteout `base` in `parent` deletes, refused when it
/// names the directory itself or its parent, or something this layer
/// wrote (`written`).
pub(super) fn whiteout_target(
    name: &str,
    parent: &[Vec<u8>],
    base: &[u8],
    written: &HashSet<Components>,
) -> Result<Components> {
    let target = &base[WHITEOUT_PREFIX.len()..];
    if target.is_empty() || target == b"." || target == b".." {
        return Err(invalid(
            name,
            "invalid whiteout: it names the directory itself or its parent",
        ));
    }
    let mut tcomps = parent.to_vec();
    tcomps.push(target.to_vec());
    if written.contains(&tcomps) {
        return Err(invalid(
            name,
            "whiteout conflicts with an entry of the same layer",
        ));
    }
    Ok(tcomps)
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
