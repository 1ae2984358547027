//! Inspecting the entries of a directory for the packer: `statx` and the
//! xattrs that go into the tar, by name relative to the directory's fd when
//! the walk holds one.
//!
//! Both are system calls on every entry, and they are most of a pack's
//! time when a layer is many small files. So a long listing is inspected in
//! batches of [`BATCH`] names, each split between the packing thread and one
//! scoped helper thread, before the entries are written in order. The
//! helper is a thread of the packer's own, never a rayon worker: the caller
//! of the packer may be one, waiting for the tar (`system verify`).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::walk::layer_error;
use crate::{Error, Result};

/// Linux caps an xattr list and an xattr value at 64 KiB each.
const XATTR_MAX: usize = 64 << 10;
/// The first read of an xattr list or value; longer ones are read again
/// with room for [`XATTR_MAX`]. The kernel allocates as much as the caller
/// offers on every call, and 64 KiB each time costs more than the listing.
const XATTR_FIRST: usize = 1 << 10;
/// Names inspected before their entries are written.
pub(super) const BATCH: usize = 4096;
/// Below this many names a batch is inspected on the packing thread alone:
/// starting a thread costs about as much as inspecting a hundred entries.
const PARALLEL_MIN: usize = 512;

/// The xattrs of one path that matter for the layer.
#[derive(Debug, Default)]
pub(super) struct Xattrs {
    pub(super) kept: BTreeMap<Vec<u8>, Vec<u8>>,
    pub(super) opaque: bool,
}

/// What a batch learns of one entry.
#[derive(Debug)]
pub(super) struct Meta {
    pub(super) stat: Stat,
    /// The xattrs, read by path, of an entry the walk will not open (see
    /// [`opened`]); `None` for the others.
    pub(super) xattrs: Option<Result<Xattrs>>,
}

/// Whether the walk opens the entry of `stat` anyway, and so reads its
/// xattrs through that fd: a directory, or a regular file with content
/// (unless it is a hardlink met before, which the walk decides).
pub(super) fn opened(stat: &Stat) -> bool {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => true,
        FileType::RegularFile => stat.st_size > 0,
        _ => false,
    }
}

/// Whether the entry of `stat` needs no xattrs at all: a whiteout (an
/// overlay char device 0/0) or a socket, which the tar leaves out.
fn without_xattrs(stat: &Stat) -> bool {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::CharacterDevice => stat.st_rdev == 0,
        FileType::Socket => true,
        _ => false,
    }
}

/// Where one entry is: its full path (for messages, and for the calls made
/// by path), and its directory's fd with its name there when the walk holds
/// that fd.
pub(super) struct At<'a> {
    pub(super) path: &'a Path,
    pub(super) dir: Option<BorrowedFd<'a>>,
    pub(super) name: &'a CStr,
}

impl At<'_> {
    pub(super) fn io(&self, op: &'static str) -> impl FnOnce(Errno) -> Error + '_ {
        move |e| Error::io(op, self.path)(e.into())
    }

    fn stat(&self) -> Result<Stat> {
        match self.dir {
            Some(dir) => rustix::fs::statat(dir, self.name, AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::lstat(self.path),
        }
        .map_err(self.io("inspecting"))
    }

    pub(super) fn open(&self, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match self.dir {
            Some(dir) => rustix::fs::openat(dir, self.name, flags, Mode::empty()),
            None => rustix::fs::open(self.path, flags, Mode::empty()),
        }
    }

    /// The file, opened for reading without touching its atime where the
    /// caller may (O_NOATIME needs ownership or CAP_FOWNER), and without
    /// blocking, should it have become a FIFO since its stat.
    pub(super) fn open_file(&self) -> Result<File> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK;
        let fd = match self.open(flags | OFlags::NOATIME) {
            Err(Errno::PERM | Errno::ACCESS) => self.open(flags),
            other => other,
        };
        Ok(File::from(fd.map_err(self.io("reading file for layer"))?))
    }

    pub(super) fn read_link(&self) -> Result<Vec<u8>> {
        let target = match self.dir {
            Some(dir) => rustix::fs::readlinkat(dir, self.name, Vec::new()),
            None => rustix::fs::readlinkat(rustix::fs::CWD, self.path, Vec::new()),
        };
        Ok(target.map_err(self.io("reading link"))?.into_bytes())
    }
}

/// Inspects `names` of directory `dir` (open as `fd` when the walk holds
/// it), in order; a long batch on two threads.
pub(super) fn inspect(
    dir: &Path,
    fd: Option<BorrowedFd<'_>>,
    names: &[CString],
) -> Vec<Result<Meta>> {
    if names.len() < PARALLEL_MIN {
        return inspect_here(dir, fd, names);
    }
    let (mine, theirs) = names.split_at(names.len() / 2);
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("rbk-pack-stat".into())
            .spawn_scoped(scope, || inspect_here(dir, fd, theirs));
        let mut metas = inspect_here(dir, fd, mine);
        match helper.map(|h| h.join()) {
            Ok(Ok(rest)) => metas.extend(rest),
            // No helper (or it panicked): the packing thread does its half.
            _ => metas.extend(inspect_here(dir, fd, theirs)),
        }
        metas
    })
}

/// [`inspect`] on this thread.
fn inspect_here(dir: &Path, fd: Option<BorrowedFd<'_>>, names: &[CString]) -> Vec<Result<Meta>> {
    let mut path = dir.to_path_buf();
    let mut scratch = Vec::new();
    names
        .iter()
        .map(|name| {
            path.push(OsStr::from_bytes(name.to_bytes()));
            let meta = inspect_one(&path, fd, name, &mut scratch);
            path.pop();
            meta
        })
        .collect()
}

fn inspect_one(
    path: &Path,
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    scratch: &mut Vec<u8>,
) -> Result<Meta> {
    let at = At { path, dir, name };
    let stat = at.stat()?;
    let xattrs = match opened(&stat) || without_xattrs(&stat) {
        true => None,
        false => Some(read_xattrs(&at, None, scratch)),
    };
    Ok(Meta { stat, xattrs })
}

/// Reads the xattrs of the entry at `at` (through `fd` when the walk has it
/// open, else by path, not following a symlink): keeps `user.*` and
/// `security.capability`, notes `trusted.overlay.opaque=y`, drops the rest,
/// and refuses overlay redirects and metacopy files, whose content is not in
/// this directory. `scratch` grows to the room a long list needs.
pub(super) fn read_xattrs(
    at: &At<'_>,
    fd: Option<BorrowedFd<'_>>,
    scratch: &mut Vec<u8>,
) -> Result<Xattrs> {
    let mut first = [0u8; XATTR_FIRST];
    let listed = with_room(&mut first, scratch, |buf| match fd {
        Some(fd) => rustix::fs::flistxattr(fd, buf),
        None => rustix::fs::llistxattr(at.path, buf),
    });
    let list = match listed {
        Ok(list) => list.to_vec(),
        Err(Errno::NOTSUP) => return Ok(Xattrs::default()),
        Err(e) => return Err(at.io("listing xattrs of")(e)),
    };
    let mut out = Xattrs::default();
    let overlay = crate::overlay_xattrs();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let own = name.strip_prefix(overlay.prefix.as_bytes());
        match own {
            Some(b"redirect" | b"metacopy") => {
                let name = String::from_utf8_lossy(name);
                return Err(layer_error(
                    at.path,
                    &format!("overlay xattr {name} (redirect_dir/metacopy) is not supported"),
                ));
            }
            Some(b"opaque") => {
                out.opaque = get_xattr(at, fd, name, scratch)? == b"y";
                continue;
            }
            // overlayfs's other bookkeeping (origin, impure…).
            Some(_) => continue,
            None => {}
        }
        if name.starts_with(b"user.") || name == b"security.capability" {
            let value = get_xattr(at, fd, name, scratch)?;
            out.kept.insert(name.to_vec(), value);
        }
    }
    Ok(out)
}

fn get_xattr(
    at: &At<'_>,
    fd: Option<BorrowedFd<'_>>,
    name: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<Vec<u8>> {
    let name = OsStr::from_bytes(name);
    let mut first = [0u8; XATTR_FIRST];
    let value = with_room(&mut first, scratch, |buf| match fd {
        Some(fd) => rustix::fs::fgetxattr(fd, name, buf),
        None => rustix::fs::lgetxattr(at.path, name, buf),
    });
    Ok(value.map_err(at.io("reading xattr of"))?.to_vec())
}

/// What `call` writes into `first`, or, when that is too small (ERANGE),
/// into `scratch` grown to [`XATTR_MAX`].
fn with_room<'a>(
    first: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<&'a [u8]> {
    match call(first) {
        Ok(n) => Ok(&first[..n]),
        Err(Errno::RANGE) => {
            scratch.resize(XATTR_MAX, 0);
            let n = call(scratch)?;
            Ok(&scratch[..n])
        }
        Err(e) => Err(e),
    }
}
