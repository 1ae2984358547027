//! Walking an overlay-format directory and writing its OCI layer tar.
//!
//! The walk is bound by system calls, not bytes: a `RUN` that writes 50,000
//! small files makes a layer of 50,000 headers. So each entry costs as few
//! calls, and as short lookups, as the tar allows:
//!
//! - a directory is listed and its entries inspected through an fd of it
//!   (`statx` of one name instead of the whole path from `/`), down to
//!   [`MAX_FD_DEPTH`] below the root; deeper ones go by path, so that a deep
//!   tree never holds more than that many fds open;
//! - the xattrs of a directory or a file the walk opens anyway come from
//!   its fd; only the rest are listed by path (there is no `llistxattrat`
//!   without `unsafe`);
//! - an empty regular file is never opened, there is nothing to read;
//! - long listings are inspected on two threads (`inspect.rs`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::header::{padding, write_header, Entry, Kind, BLOCK};
use super::inspect::{inspect, read_xattrs, At, Meta, Xattrs, BATCH};
use super::resume::{file_identity, Boundary, Pending, Resume, Track};
use super::PackOptions;
use crate::{Error, Result};

/// Size of the read buffer and of the output buffer.
const BUFFER: usize = 1 << 20;
/// Directory levels below the root walked through an open fd.
const MAX_FD_DEPTH: usize = 64;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Where the walk writes its tar; a tracked pack's sink also takes its
/// checkpoints and where hashing resumes (`resume.rs`), which others never
/// receive.
pub(super) trait Sink: Write {
    /// A checkpoint after `entries` entries, at the current position.
    fn mark(&mut self, _entries: u64, _chain: [u8; 32]) -> io::Result<()> {
        Ok(())
    }

    /// The tar starts after the last pack's checkpoint `from` (sent before
    /// any bytes).
    fn resume(&mut self, _from: usize) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Sink for BufWriter<W> {}

/// Writes the OCI layer tar of the overlay-format directory `dir` to `out`
/// (the rules are in the docs of the `pack` module). The walk recurses
/// once per directory level, so it runs on a thread with a stack for
/// trees as deep as a path may be (`crate::WALK_STACK`), never on the
/// caller's: a 1,400-level tree overflowed an 8 MiB main thread.
pub fn write_layer_tar(dir: &Path, out: impl Write + Send, options: &PackOptions) -> Result<()> {
    std::thread::scope(|scope| {
        let walk = std::thread::Builder::new()
            .name("rbk-pack".into())
            .stack_size(crate::WALK_STACK)
            .spawn_scoped(scope, || {
                write_unbuffered(dir, BufWriter::with_capacity(BUFFER, out), options)
            })
            .map_err(Error::io("starting a tree walk for", dir))?;
        walk.join().unwrap_or_else(|_| {
            Err(Error::io("walking", dir)(std::io::Error::other(
                "the walk panicked",
            )))
        })
    })
}

/// [`write_layer_tar`] for an `out` that buffers by itself: headers arrive
/// as many small writes.
pub(super) fn write_unbuffered(dir: &Path, out: impl Sink, options: &PackOptions) -> Result<()> {
    write_tracked_or_not(dir, out, options, None)
}

/// [`write_unbuffered`] with checkpoints, resuming from `resume`'s prefix
/// (see `resume.rs`).
pub(super) fn write_tracked(
    dir: &Path,
    out: impl Sink,
    options: &PackOptions,
    resume: Option<Resume<'_>>,
) -> Result<()> {
    write_tracked_or_not(dir, out, options, Some(Track::new(resume)))
}

fn write_tracked_or_not(
    dir: &Path,
    out: impl Sink,
    options: &PackOptions,
    track: Option<Track<'_>>,
) -> Result<()> {
    let writer = TarWriter {
        out,
        buf: vec![0; BUFFER],
        scratch: Vec::new(),
        links: HashMap::new(),
        epoch: options.source_date_epoch,
        dir_mtimes: true,
        track,
    };
    writer.run(dir)
}

/// The digest of the tar of `dir` with every directory's mtime written as
/// 0: what two unpacks of one layer agree on. The extractor gives parent
/// directories the archive does not list the time they were made, so those
/// differ between unpacks (as in containerd); everything else is the
/// archive's.
pub(super) fn content_digest_here(dir: &Path) -> Result<crate::Digest> {
    let mut hasher = crate::Sha256Writer::new();
    let writer = TarWriter {
        out: BufWriter::with_capacity(BUFFER, &mut hasher),
        buf: vec![0; BUFFER],
        scratch: Vec::new(),
        links: HashMap::new(),
        epoch: None,
        dir_mtimes: false,
        track: None,
    };
    writer.run(dir)?;
    Ok(hasher.finish())
}

struct TarWriter<'r, W: Sink> {
    out: W,
    buf: Vec<u8>,
    /// Room for a long xattr list or value, grown when one is met.
    scratch: Vec<u8>,
    /// First archive name of each multiply-linked inode, by (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
    epoch: Option<i64>,
    /// Whether directories carry their mtime (else 0).
    dir_mtimes: bool,
    /// A tracked pack's identities and prefix (`resume.rs`).
    track: Option<Track<'r>>,
}

impl<W: Sink> TarWriter<'_, W> {
    /// The whole tar of `dir`.
    fn run(mut self, dir: &Path) -> Result<()> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir, flags, Mode::empty())
            .map_err(|e| Error::io("opening", dir)(e.into()))?;
        self.walk(&mut dir.to_path_buf(), Some(fd), &[], 0)?;
        self.finish(dir)
    }

    /// Writes the entries below `dir` (open as `fd`, or not held), whose
    /// archive name is `prefix` (empty or ending in `/`) and which lies
    /// `depth` levels below the root, children in byte order of their names.
    fn walk(
        &mut self,
        dir: &mut PathBuf,
        fd: Option<OwnedFd>,
        prefix: &[u8],
        depth: usize,
    ) -> Result<()> {
        let listing = |e: Errno| Error::io("listing", dir.as_path())(e.into());
        let (mut names, handle) = match fd {
            Some(fd) => {
                let mut handle = Dir::new(fd).map_err(listing)?;
                (list_fd(&mut handle).map_err(listing)?, Some(handle))
            }
            None => (list_path(dir)?, None),
        };
        let fd = match &handle {
            Some(handle) => Some(handle.fd().map_err(listing)?),
            None => None,
        };
        names.sort_by(|a, b| a.to_bytes().cmp(b.to_bytes()));
        for batch in names.chunks(BATCH) {
            let metas = inspect(dir, fd, batch);
            for (name, meta) in batch.iter().zip(metas) {
                dir.push(OsStr::from_bytes(name.to_bytes()));
                let result =
                    meta.and_then(|meta| self.child(dir, fd, name, meta, prefix, depth + 1));
                dir.pop();
                result?;
            }
        }
        Ok(())
    }

    /// Writes one entry of a directory (and, for a directory, everything
    /// below it); `path` is its full path, `depth` its level.
    fn child(
        &mut self,
        path: &mut PathBuf,
        dir: Option<BorrowedFd<'_>>,
        name: &CStr,
        meta: Meta,
        prefix: &[u8],
        depth: usize,
    ) -> Result<()> {
        let at = At {
            path: path.as_path(),
            dir,
            name,
        };
        let stat = meta.stat;
        let mut archive_name = Vec::with_capacity(prefix.len() + name.to_bytes().len() + 1);
        archive_name.extend_from_slice(prefix);
        archive_name.extend_from_slice(name.to_bytes());
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::CharacterDevice && stat.st_rdev == 0 {
            return self.whiteout(at.path, &archive_name, &stat);
        }
        if base_name(&archive_name).starts_with(WHITEOUT_PREFIX) {
            return Err(layer_error(
                at.path,
                "names starting with .wh. are whiteouts in OCI layers and cannot be stored",
            ));
        }
        match kind {
            FileType::Socket => Ok(()), // tar cannot carry sockets; Docker skips them too
            FileType::Directory => {
                // Opened here when the walk holds its parent and it is not
                // too deep: listed, inspected and read through this fd.
                let fd = match dir {
                    Some(_) if depth <= MAX_FD_DEPTH => Some(
                        at.open(OFlags::RDONLY | OFlags::DIRECTORY)
                            .map_err(at.io("opening"))?,
                    ),
                    _ => None,
                };
                let xattrs = read_xattrs(&at, fd.as_ref().map(AsFd::as_fd), &mut self.scratch)?;
                let prefix = self.directory(at.path, archive_name, &stat, xattrs)?;
                self.walk(path, fd, &prefix, depth)
            }
            _ => self.non_directory(&at, archive_name, &stat, meta.xattrs),
        }
    }

    /// Writes a directory's entry and its opaque marker; returns the prefix
    /// of its children's names.
    fn directory(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        stat: &Stat,
        xattrs: Xattrs,
    ) -> Result<Vec<u8>> {
        let mut entry = self.base_entry(name, stat, xattrs.kept);
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
        Ok(entry.name)
    }

    /// Writes a file, link, FIFO or device: a hardlink entry when its inode
    /// was met before under another name. `read` holds its xattrs when the
    /// batch read them (see `inspect::opened`).
    fn non_directory(
        &mut self,
        at: &At<'_>,
        name: Vec<u8>,
        stat: &Stat,
        read: Option<Result<Xattrs>>,
    ) -> Result<()> {
        let kind = FileType::from_raw_mode(stat.st_mode);
        #[allow(clippy::unnecessary_cast)] // the types differ by architecture
        let key = (stat.st_dev as u64, stat.st_ino as u64);
        let first = match stat.st_nlink > 1 {
            true => self.links.get(&key).cloned(),
            false => None,
        };
        let size = stat.st_size as u64;
        let content = kind == FileType::RegularFile && first.is_none() && size > 0;
        if content && self.track.as_ref().is_some_and(Track::in_prefix) {
            if self.track.as_ref().is_some_and(|t| t.linked(key)) {
                if stat.st_nlink > 1 {
                    self.links.insert(key, name.clone());
                }
                return self.defer_file(at.path, name, stat, key);
            }
            self.end_prefix()?;
        }
        let file = match content {
            true => Some(at.open_file()?),
            false => None,
        };
        let xattrs = match (&file, read) {
            (Some(file), _) => read_xattrs(at, Some(file.as_fd()), &mut self.scratch)?,
            (None, Some(read)) => read?,
            (None, None) => read_xattrs(at, None, &mut self.scratch)?,
        };
        let mut entry = self.base_entry(name, stat, xattrs.kept);
        if let Some(first) = first {
            entry.kind = Kind::HardLink;
            entry.link = first;
            return self.write(at.path, &entry);
        }
        if stat.st_nlink > 1 {
            self.links.insert(key, entry.name.clone());
        }
        if kind == FileType::RegularFile {
            entry.size = size;
            return match file {
                Some(file) => self.write_file(at.path, &entry, key, file),
                None => self.write(at.path, &entry), // empty: no content, no padding
            };
        }
        special(at, &mut entry, stat)?;
        self.write(at.path, &entry)
    }

    /// The metadata every entry kind shares; `kind` starts as regular.
    fn base_entry(&self, name: Vec<u8>, stat: &Stat, xattrs: BTreeMap<Vec<u8>, Vec<u8>>) -> Entry {
        let mut entry = Entry::new(name, Kind::Regular, self.mtime(stat));
        entry.mode = stat.st_mode & 0o7777;
        entry.uid = u64::from(stat.st_uid);
        entry.gid = u64::from(stat.st_gid);
        entry.xattrs = xattrs;
        entry
    }

    /// An overlay whiteout (char device 0/0) as the OCI `.wh.NAME` file.
    fn whiteout(&mut self, path: &Path, name: &[u8], stat: &Stat) -> Result<()> {
        let base = base_name(name);
        let mut out = name[..name.len() - base.len()].to_vec();
        out.extend_from_slice(WHITEOUT_PREFIX);
        out.extend_from_slice(base);
        let entry = Entry::new(out, Kind::Regular, self.mtime(stat));
        self.write(path, &entry)
    }

    #[allow(clippy::unnecessary_cast)] // the type differs by architecture
    fn mtime(&self, stat: &Stat) -> i64 {
        let mtime = stat.st_mtime as i64;
        match self.epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    /// Writes an entry without content (in a tracked pack's prefix, keeps
    /// it for later).
    fn write(&mut self, path: &Path, entry: &Entry) -> Result<()> {
        let io = |e| Error::io("writing layer entry", path)(e);
        let Some(track) = &mut self.track else {
            return write_header(&mut self.out, entry).map_err(io);
        };
        let mut header = Vec::with_capacity(BLOCK);
        write_header(&mut header, entry).map_err(io)?;
        track.identity(&header);
        match track.in_prefix() {
            true => track.defer(Pending::Header(header)),
            false => self.out.write_all(&header).map_err(io)?,
        }
        self.end_entry(path)
    }

    /// Writes a regular file with content: its header and its bytes.
    fn write_file(
        &mut self,
        path: &Path,
        entry: &Entry,
        key: (u64, u64),
        file: File,
    ) -> Result<()> {
        if let Some(track) = &mut self.track {
            track.identity(&file_identity(entry, key));
        }
        write_header(&mut self.out, entry)
            .map_err(|e| Error::io("writing layer entry", path)(e))?;
        self.content(path, file, entry.size)?;
        self.end_entry(path)
    }

    /// Keeps a linked file of the prefix for later, unread.
    fn defer_file(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        stat: &Stat,
        key: (u64, u64),
    ) -> Result<()> {
        let mut entry = self.base_entry(name, stat, BTreeMap::new());
        entry.size = stat.st_size as u64;
        let Some(track) = &mut self.track else {
            return Ok(());
        };
        track.identity(&file_identity(&entry, key));
        track.defer(Pending::File {
            path: path.to_path_buf(),
            name: entry.name,
            stat: *stat,
        });
        self.end_entry(path)
    }

    /// The end of an entry of a tracked pack: a checkpoint to record, or
    /// the end of the prefix.
    fn end_entry(&mut self, path: &Path) -> Result<()> {
        let io = |e| Error::io("writing layer", path)(e);
        let Some(track) = &mut self.track else {
            return Ok(());
        };
        match track.end_entry() {
            Boundary::None if track.exhausted() => self.end_prefix(),
            Boundary::None => Ok(()),
            Boundary::Mark(entries, chain) => self.out.mark(entries, chain).map_err(io),
            Boundary::Mismatch(entries, chain) => {
                self.end_prefix()?;
                self.out.mark(entries, chain).map_err(io)
            }
        }
    }

    /// Ends a tracked pack's prefix: hashing resumes from the last
    /// checkpoint that matched, and the entries since are written.
    fn end_prefix(&mut self) -> Result<()> {
        let Some((matched, pending)) = self.track.as_mut().and_then(Track::end_prefix) else {
            return Ok(());
        };
        let io = |e| Error::io("writing layer", Path::new("."))(e);
        if let Some(from) = matched {
            self.out.resume(from).map_err(io)?;
        }
        for entry in pending {
            match entry {
                Pending::Header(header) => self.out.write_all(&header).map_err(io)?,
                Pending::File { path, name, stat } => self.replay_file(&path, name, &stat)?,
            }
        }
        Ok(())
    }

    /// Writes a linked file the prefix deferred, now read: it must still
    /// be the inode the walk saw.
    fn replay_file(&mut self, path: &Path, name: Vec<u8>, stat: &Stat) -> Result<()> {
        let base = std::ffi::CString::new(base_name(&name))
            .map_err(|_| layer_error(path, "a NUL in a name"))?;
        let at = At {
            path,
            dir: None,
            name: &base,
        };
        let file = at.open_file()?;
        let now = rustix::fs::fstat(&file).map_err(at.io("inspecting"))?;
        if (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino) {
            return Err(layer_error(
                path,
                "file replaced while the layer was packed",
            ));
        }
        let xattrs = read_xattrs(&at, Some(file.as_fd()), &mut self.scratch)?;
        let mut entry = self.base_entry(name, stat, xattrs.kept);
        entry.size = stat.st_size as u64;
        write_header(&mut self.out, &entry)
            .map_err(|e| Error::io("writing layer entry", path)(e))?;
        self.content(path, file, entry.size)
    }

    /// Streams exactly `size` bytes of `file` (at `path`), then the padding.
    fn content(&mut self, path: &Path, mut file: File, size: u64) -> Result<()> {
        let io = |e| Error::io("reading file for layer", path)(e);
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = file.read(&mut self.buf[..want]).map_err(io)?;
            if n == 0 {
                return Err(layer_error(path, "file shrank while it was being read"));
            }
            self.out
                .write_all(&self.buf[..n])
                .map_err(|e| Error::io("writing layer", path)(e))?;
            left -= n as u64;
        }
        let zeros = [0u8; BLOCK];
        self.out
            .write_all(&zeros[..padding(size)])
            .map_err(|e| Error::io("writing layer", path)(e))
    }

    /// The end-of-archive marker (two zero blocks), then a flush.
    fn finish(mut self, dir: &Path) -> Result<()> {
        self.end_prefix()?;
        let io = |e| Error::io("writing layer", dir)(e);
        self.out.write_all(&[0u8; 2 * BLOCK]).map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// The names in the directory `handle` reads, `.` and `..` left out.
fn list_fd(handle: &mut Dir) -> rustix::io::Result<Vec<CString>> {
    let mut names = Vec::new();
    while let Some(entry) = handle.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The names in directory `dir`, listed by path (below [`MAX_FD_DEPTH`]).
fn list_path(dir: &Path) -> Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir)(e))? {
        let name = entry.map_err(|e| Error::io("listing", dir)(e))?.file_name();
        // A name read from a directory holds no NUL.
        let name =
            CString::new(name.as_bytes()).map_err(|_| layer_error(dir, "a NUL in a name"))?;
        names.push(name);
    }
    Ok(names)
}

/// Fills in a symlink's target or a device's numbers (a FIFO needs neither).
fn special(at: &At<'_>, entry: &mut Entry, stat: &Stat) -> Result<()> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Symlink => {
            entry.kind = Kind::Symlink;
            entry.link = at.read_link()?;
        }
        FileType::Fifo => entry.kind = Kind::Fifo,
        kind => {
            entry.kind = if kind == FileType::CharacterDevice {
                Kind::CharDevice
            } else {
                Kind::BlockDevice
            };
            entry.dev_major = rustix::fs::major(stat.st_rdev);
            entry.dev_minor = rustix::fs::minor(stat.st_rdev);
        }
    }
    Ok(())
}

/// The last component of an archive name.
fn base_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b'/') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

pub(super) fn layer_error(path: &Path, reason: &str) -> Error {
    Error::Pack {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rustix::fs as rfs;

    use super::*;

    /// An entry as read back: name, type flag, content, kept xattrs.
    type Seen = (String, u8, Vec<u8>, Vec<(String, Vec<u8>)>);

    /// Name, type flag, content and user xattrs of each entry of `tar`.
    fn entries(tar: &[u8]) -> Vec<Seen> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut xattrs = Vec::new();
            if let Some(pax) = entry.pax_extensions().unwrap() {
                for record in pax {
                    let record = record.unwrap();
                    let key = record.key().unwrap().to_string();
                    if key.starts_with("SCHILY.xattr.") {
                        xattrs.push((key, record.value_bytes().to_vec()));
                    }
                }
            }
            let name = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
            let kind = entry.header().entry_type().as_byte();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.push((name, kind, content, xattrs));
        }
        out
    }

    /// Levels past the ones walked through an fd each are walked by path:
    /// both give every entry, in order, with its content and xattrs.
    #[test]
    fn a_tree_deeper_than_the_fd_levels_packs_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let levels = MAX_FD_DEPTH + 6;
        let mut dir = tmp.path().to_path_buf();
        for i in 0..levels {
            dir.push("d");
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("f"), format!("level {i}")).unwrap();
            let value = i.to_string();
            let none = rfs::XattrFlags::empty();
            rfs::setxattr(dir.join("f"), "user.rbk", value.as_bytes(), none).unwrap();
            std::os::unix::fs::symlink("f", dir.join("l")).unwrap();
        }
        let mut tar = Vec::new();
        write_layer_tar(tmp.path(), &mut tar, &PackOptions::default()).unwrap();
        let seen = entries(&tar);
        // Each directory's "d" sorts before its "f" and "l": all the
        // directories first, then the files and links from the bottom up.
        let mut want = Vec::new();
        for i in 0..levels {
            want.push(("d/".repeat(i + 1), b'5'));
        }
        for i in (0..levels).rev() {
            let prefix = "d/".repeat(i + 1);
            want.push((format!("{prefix}f"), b'0'));
            want.push((format!("{prefix}l"), b'2'));
        }
        let names: Vec<(String, u8)> = seen.iter().map(|e| (e.0.clone(), e.1)).collect();
        assert_eq!(names, want);
        for (name, _, content, xattrs) in seen.iter().filter(|e| e.1 == b'0') {
            let level = name.matches("d/").count() - 1;
            assert_eq!(content, format!("level {level}").as_bytes(), "{name}");
            let xattr = (
                "SCHILY.xattr.user.rbk".to_string(),
                level.to_string().into_bytes(),
            );
            assert_eq!(xattrs, &vec![xattr], "{name}");
        }
    }
}
