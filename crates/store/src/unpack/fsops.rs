//! fd-relative filesystem operations confined to an extraction root.
//!
//! Every path from an archive is split into components and walked from the
//! root's directory fd with `openat(O_NOFOLLOW|O_DIRECTORY)`. A symlink met
//! on the way is resolved *inside* the root (an absolute target restarts at
//! the root, `..` never climbs above it), like `openat2(RESOLVE_IN_ROOT)`, so
//! `etc -> /etc` then `etc/x` writes the root's own `etc/x`. The final
//! component is always created or replaced at its parent fd and never
//! followed: existing entries are unlinked (or, for directories, moved to a
//! graveyard outside the root) before anything is created, and files are
//! opened with `O_CREAT|O_EXCL|O_NOFOLLOW`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::fsutil::unique_name;

/// Symlink hops allowed while resolving one path (Linux's own limit).
const MAX_SYMLINK_HOPS: u32 = 40;

/// A cleaned path: components, never empty, `.` or `..`.
pub(super) type Components = Vec<Vec<u8>>;

/// Lexically cleans an archive path: drops empty and `.` components and a
/// leading `/`, resolves `..` (clamped at the root).
pub(super) fn clean(path: &[u8]) -> Components {
    let mut out: Components = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

pub(super) fn dir_flags() -> OFlags {
    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY
}

/// The extraction root plus a graveyard directory outside it (same
/// filesystem) where replaced directories are moved in O(1). Without a
/// graveyard ([`super::unpack_into`], docker cp's rules) a directory is
/// never replaced by something else, nor anything else by a directory.
pub(super) struct Root {
    pub(super) fd: OwnedFd,
    graveyard: Option<OwnedFd>,
    /// The directories of the last [`Root::open_dir`] walk that met no
    /// symlink: `(component, fd of the path up to it)`. A tar lists a tree
    /// depth first, so the next entry's parent shares most of this chain
    /// and only the rest is opened: work per entry does not grow with
    /// depth (a chain of 3,000 directories was quadratic, the 2026-12
    /// probe). Cleared whenever a directory is removed or moved, so no fd
    /// can point into a replaced tree.
    chain: RefCell<Vec<(Vec<u8>, Rc<OwnedFd>)>>,
}

impl Root {
    pub(super) fn new(fd: OwnedFd, graveyard: Option<OwnedFd>) -> Self {
        Root {
            fd,
            graveyard,
            chain: RefCell::new(Vec::new()),
        }
    }

    /// [`Root::open_walk`], starting from the cached chain of the previous
    /// walk where it shares a prefix with `comps`.
    pub(super) fn open_dir(&self, comps: &[Vec<u8>], create: bool) -> io::Result<OwnedFd> {
        let mut chain = self.chain.borrow_mut();
        let shared = chain
            .iter()
            .zip(comps)
            .take_while(|((have, _), want)| have == *want)
            .count();
        chain.truncate(shared);
        let plain = |c: &Vec<u8>| !matches!(c.as_slice(), b"" | b"." | b"..");
        for c in &comps[shared..] {
            let cur = chain.last().map_or(&self.fd, |(_, fd)| &**fd);
            let opened = match plain(c) {
                true => rfs::openat(cur, c.as_slice(), dir_flags(), Mode::empty()),
                false => Err(Errno::INVAL),
            };
            match opened {
                Ok(fd) => chain.push((c.clone(), Rc::new(fd))),
                // A symlink (ELOOP/ENOTDIR with O_NOFOLLOW), a missing
                // directory, anything else: the full resolving walk.
                Err(_) => {
                    chain.clear();
                    drop(chain);
                    return self.open_walk(comps, create);
                }
            }
        }
        match chain.last() {
            Some((_, fd)) => Ok(fd.try_clone()?),
            None => Ok(self.fd.try_clone()?),
        }
    }

    /// Forgets the cached chain (a directory was removed or replaced).
    fn forget(&self) {
        self.chain.borrow_mut().clear();
    }

    /// Opens (with `create`, making missing directories 0755) the directory
    /// named by `comps`, resolving symlinks inside the root.
    fn open_walk(&self, comps: &[Vec<u8>], create: bool) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().unwrap_or(&self.fd);
            match rfs::statat(cur, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rfs::readlinkat(cur, c.as_slice(), Vec::new())?.into_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    for t in target.split(|b| *b == b'/').rev() {
                        queue.push_front(t.to_vec());
                    }
                }
                Ok(_) => {
                    let fd = rfs::openat(cur, c.as_slice(), dir_flags(), Mode::empty())?;
                    stack.push(fd);
                }
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(cur, c.as_slice(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => queue.push_front(c),
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => Ok(self.fd.try_clone()?),
        }
    }

    /// Removes whatever is at `parent/name` without following it. Directories
    /// are moved to the graveyard (deleted with the extraction's temp dir).
    /// Returns whether something was there.
    pub(super) fn remove(&self, parent: &OwnedFd, name: &[u8]) -> io::Result<bool> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                let Some(graveyard) = &self.graveyard else {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "cannot overwrite a directory with a non-directory",
                    ));
                };
                self.forget();
                let grave = unique_name("d-");
                rfs::renameat(parent, name, graveyard, grave.as_str())?;
                Ok(true)
            }
            Ok(_) => {
                rfs::unlinkat(parent, name, AtFlags::empty())?;
                Ok(true)
            }
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an existing entry may be replaced by one of another kind
    /// (a directory by a file, a file by a directory).
    pub(super) fn replaces_kinds(&self) -> bool {
        self.graveyard.is_some()
    }

    /// The type of `parent/name` (not followed), if it exists.
    pub(super) fn kind(parent: &OwnedFd, name: &[u8]) -> io::Result<Option<FileType>> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of the entries in directory `dir`.
    pub(super) fn list(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(dir.as_fd())? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                out.push(name);
            }
        }
        Ok(out)
    }
}
