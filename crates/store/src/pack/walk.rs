//! Walking an overlay-format directory and writing its OCI layer tar.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::header::{padding, write_header, Entry, Kind, BLOCK};
use super::PackOptions;
use crate::{Error, Result};

/// Size of the read buffer and of the output buffer.
const BUFFER: usize = 1 << 20;
/// Linux caps an xattr list and an xattr value at 64 KiB each.
const XATTR_MAX: usize = 64 << 10;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Directory levels walked through an fd each (held while the level's
/// children are written); deeper levels use full paths.
const MAX_FD_DEPTH: usize = 64;
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

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
pub(super) fn write_unbuffered(dir: &Path, out: impl Write, options: &PackOptions) -> Result<()> {
    let mut writer = TarWriter {
        out,
        buf: vec![0; BUFFER],
        scratch: vec![0; 2 * XATTR_MAX],
        links: HashMap::new(),
        epoch: options.source_date_epoch,
        dir_mtimes: true,
    };
    writer.walk_root(dir)?;
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
    writer.walk_root(dir)?;
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
    /// Writes the tree at `root`: its entries, not the root itself.
    fn walk_root(&mut self, root: &Path) -> Result<()> {
        // The root may be reached through a symlink, as `read_dir` allowed.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::open(root, flags, Mode::empty()).map_err(io_err("opening", root))?;
        self.walk(root, At::Fd(fd.as_fd()), &[], 0)
    }

    /// Writes the entries below `dir`, whose archive name is `prefix`
    /// (empty or ending in `/`), children in byte order of their names.
    /// `at` reaches the children: the directory's fd, or (deeper than
    /// [`MAX_FD_DEPTH`]) their full paths.
    fn walk(&mut self, dir: &Path, at: At<'_>, prefix: &[u8], depth: usize) -> Result<()> {
        let mut names = list(dir, at)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let child = at.child(&name, &path);
            let st = rfs::statat(child.0, child.1, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("inspecting", &path))?;
            let mut archive_name = prefix.to_vec();
            archive_name.extend_from_slice(name.as_bytes());
            self.entry(&path, child, archive_name, &st, depth)?;
        }
        Ok(())
    }

    /// Writes one path (and, for a directory, everything below it);
    /// `child` reaches it from its parent.
    fn entry(
        &mut self,
        path: &Path,
        child: (BorrowedFd<'_>, &Path),
        name: Vec<u8>,
        st: &Stat,
        depth: usize,
    ) -> Result<()> {
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::CharacterDevice && st.st_rdev == 0 {
            return self.whiteout(path, &name, st);
        }
        if base_name(&name).starts_with(WHITEOUT_PREFIX) {
            return Err(layer_error(
                path,
                "names starting with .wh. are whiteouts in OCI layers and cannot be stored",
            ));
        }
        if kind == FileType::Socket {
            return Ok(()); // tar cannot carry sockets; Docker skips them too
        }
        match kind {
            FileType::Directory => self.directory(path, child, name, st, depth),
            FileType::RegularFile => {
                let file = open_file(child).map_err(Error::io("reading file for layer", path))?;
                let xattrs = read_xattrs(path, Xattr::Fd(file.as_fd()), &mut self.scratch)?;
                let entry = self.base_entry(name, st, xattrs.kept);
                if self.hard_link(path, &entry, st)? {
                    return Ok(());
                }
                let mut entry = entry;
                entry.size = u64::try_from(st.st_size).unwrap_or(0);
                self.write(path, &entry)?;
                self.content(path, file, entry.size)
            }
            _ => {
                let xattrs = read_xattrs(path, Xattr::Path(path), &mut self.scratch)?;
                let mut entry = self.base_entry(name, st, xattrs.kept);
                if self.hard_link(path, &entry, st)? {
                    return Ok(());
                }
                special(path, &mut entry, st)?;
                self.write(path, &entry)
            }
        }
    }

    /// A directory's entry, its opaque marker, then its children.
    fn directory(
        &mut self,
        path: &Path,
        child: (BorrowedFd<'_>, &Path),
        name: Vec<u8>,
        st: &Stat,
        depth: usize,
    ) -> Result<()> {
        // An fd per level, up to a depth that keeps far below the fd limit;
        // below it, full paths (as deep trees are rare).
        let fd = match depth < MAX_FD_DEPTH {
            true => Some(
                rfs::openat(child.0, child.1, DIR_FLAGS, Mode::empty())
                    .map_err(io_err("opening", path))?,
            ),
            false => None,
        };
        let source = match &fd {
            Some(fd) => Xattr::Fd(fd.as_fd()),
            None => Xattr::Path(path),
        };
        let xattrs = read_xattrs(path, source, &mut self.scratch)?;
        let mut entry = self.base_entry(name, st, xattrs.kept);
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
        let at = match &fd {
            Some(fd) => At::Fd(fd.as_fd()),
            None => At::Paths,
        };
        self.walk(path, at, &entry.name, depth + 1)
    }

    /// Writes a hardlink entry when `st` is an inode met before in this
    /// tree (and remembers its first name otherwise); whether it did.
    fn hard_link(&mut self, path: &Path, entry: &Entry, st: &Stat) -> Result<bool> {
        if st.st_nlink <= 1 {
            return Ok(false);
        }
        #[allow(clippy::unnecessary_cast)] // the types differ by architecture
        let key = (st.st_dev as u64, st.st_ino as u64);
        if let Some(first) = self.links.get(&key) {
            let mut link = entry.clone();
            link.kind = Kind::HardLink;
            link.link = first.clone();
            self.write(path, &link)?;
            return Ok(true);
        }
        self.links.insert(key, entry.name.clone());
        Ok(false)
    }

    /// The metadata every entry kind shares; `kind` starts as regular.
    fn base_entry(&self, name: Vec<u8>, st: &Stat, xattrs: BTreeMap<Vec<u8>, Vec<u8>>) -> Entry {
        let mut entry = Entry::new(name, Kind::Regular, self.mtime(st));
        entry.mode = st.st_mode & 0o7777;
        entry.uid = u64::from(st.st_uid);
        entry.gid = u64::from(st.st_gid);
        entry.xattrs = xattrs;
        entry
    }

    /// An overlay whiteout (char device 0/0) as the OCI `.wh.NAME` file.
    fn whiteout(&mut self, path: &Path, name: &[u8], st: &Stat) -> Result<()> {
        let base = base_name(name);
        let mut out = name[..name.len() - base.len()].to_vec();
        out.extend_from_slice(WHITEOUT_PREFIX);
        out.extend_from_slice(base);
        let entry = Entry::new(out, Kind::Regular, self.mtime(st));
        self.write(path, &entry)
    }

    #[allow(clippy::unnecessary_cast)] // the type differs by architecture
    fn mtime(&self, st: &Stat) -> i64 {
        let mtime = st.st_mtime as i64;
        match self.epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    fn write(&mut self, path: &Path, entry: &Entry) -> Result<()> {
        write_header(&mut self.out, entry).map_err(Error::io("writing layer entry", path))
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
fn special(path: &Path, entry: &mut Entry, st: &Stat) -> Result<()> {
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind == FileType::Symlink {
        entry.kind = Kind::Symlink;
        let target = fs::read_link(path).map_err(Error::io("reading link", path))?;
        entry.link = target.into_os_string().into_vec();
    } else if kind == FileType::Fifo {
        entry.kind = Kind::Fifo;
    } else {
        entry.kind = if kind == FileType::CharacterDevice {
            Kind::CharDevice
        } else {
            Kind::BlockDevice
        };
        entry.dev_major = rfs::major(st.st_rdev);
        entry.dev_minor = rfs::minor(st.st_rdev);
    }
    Ok(())
}

/// Opens the regular file `child` for reading, without following a
/// symlink or blocking (should it have become a FIFO since its stat).
fn open_file(child: (BorrowedFd<'_>, &Path)) -> std::io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rfs::openat(child.0, child.1, flags | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME needs ownership or CAP_FOWNER; retry without it.
        Err(Errno::PERM) => rfs::openat(child.0, child.1, flags, Mode::empty())?,
        other => other?,
    };
    Ok(File::from(fd))
}

/// The names in a directory, reached through its fd or its path.
fn list(dir: &Path, at: At<'_>) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    match at {
        At::Fd(fd) => {
            for entry in rfs::Dir::read_from(fd).map_err(io_err("listing", dir))? {
                let entry = entry.map_err(io_err("listing", dir))?;
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(OsString::from_vec(name.to_vec()));
                }
            }
        }
        At::Paths => {
            for entry in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
                names.push(entry.map_err(Error::io("listing", dir))?.file_name());
            }
        }
    }
    Ok(names)
}

/// How the walk reaches a directory's children: relative to the
/// directory's fd (one path component to resolve, not the whole path for
/// each of three calls per file), or by full path.
#[derive(Clone, Copy)]
enum At<'a> {
    Fd(BorrowedFd<'a>),
    Paths,
}

impl<'a> At<'a> {
    /// The (directory fd, name) that reaches child `name` at `path`.
    fn child<'p>(self, name: &'p OsString, path: &'p Path) -> (BorrowedFd<'a>, &'p Path) {
        match self {
            At::Fd(fd) => (fd, Path::new(name)),
            At::Paths => (rfs::CWD, path),
        }
    }
}

/// Where xattrs are read from: an open fd, or a path (not followed).
#[derive(Clone, Copy)]
enum Xattr<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a Path),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::io(op, path)(e.into())
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
fn read_xattrs(path: &Path, from: Xattr<'_>, scratch: &mut [u8]) -> Result<Xattrs> {
    let (list, value) = scratch.split_at_mut(XATTR_MAX);
    let listed = match from {
        Xattr::Fd(fd) => rfs::flistxattr(fd, &mut list[..]),
        Xattr::Path(p) => rfs::llistxattr(p, &mut list[..]),
    };
    let len = match listed {
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
                out.opaque = get_xattr(path, from, name, value)? == b"y";
                continue;
            }
            // overlayfs's other bookkeeping (origin, impure…).
            Some(_) => continue,
            None => {}
        }
        match name {
            n if n.starts_with(b"user.") || n == b"security.capability" => {
                let value = get_xattr(path, from, name, value)?;
                out.kept.insert(name.to_vec(), value.to_vec());
            }
            _ => {}
        }
    }
    Ok(out)
}

fn get_xattr<'a>(
    path: &Path,
    from: Xattr<'_>,
    name: &[u8],
    value: &'a mut [u8],
) -> Result<&'a [u8]> {
    let name = std::ffi::OsStr::from_bytes(name);
    let got = match from {
        Xattr::Fd(fd) => rfs::fgetxattr(fd, name, &mut value[..]),
        Xattr::Path(p) => rfs::lgetxattr(p, name, &mut value[..]),
    };
    let n = got.map_err(|e| Error::io("reading xattr of", path)(e.into()))?;
    Ok(&value[..n])
}

fn layer_error(path: &Path, reason: &str) -> Error {
    Error::Pack {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
