//! The context walk: fd-relative, never following symlinks, hashing regular
//! files in parallel.

use std::cell::RefCell;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use rustix::fs::{fstat, openat, readlinkat, statat, AtFlags, Dir, FileType, Mode, OFlags, Stat};

use super::statcache::{Cached, Meta, StatCache};
use super::{join, Entry, Kind};
use crate::filter::PathFilter;
use crate::{Error, Result};

/// Read buffer per rayon thread: large enough for blake3's SIMD paths.
const BUF_SIZE: usize = 256 * 1024;

/// A file whose ctime is this close to the scan's start may still change
/// without its ctime changing (timestamps come from a coarse clock, at most
/// one tick behind), so its hash is not cached. One tick is at most 10 ms.
const RACY_WINDOW_NS: i64 = 100_000_000;
/// The same for file systems that only keep whole seconds.
const RACY_WINDOW_COARSE_NS: i64 = 2_000_000_000;

/// What a walk produced.
pub(super) struct Found {
    pub(super) entries: Vec<Entry>,
    /// Stat-cache records of every regular file whose hash is trustworthy.
    pub(super) fresh: Vec<(Box<[u8]>, Cached)>,
    pub(super) bytes_hashed: u64,
}

struct Walk<'a> {
    root: &'a Path,
    filter: &'a dyn PathFilter,
    cache: Option<&'a StatCache>,
    start_ns: i64,
    hashed: AtomicU64,
}

/// Walks the context at `root`; see [`super::ContextIndex::scan`].
pub(super) fn scan(
    root: &Path,
    filter: &dyn PathFilter,
    cache: Option<&StatCache>,
) -> Result<Found> {
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let walk = Walk {
        root,
        filter,
        cache,
        start_ns,
        hashed: AtomicU64::new(0),
    };
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening context directory", root, e.into()))?;
    let st = fstat(&fd).map_err(|e| Error::io("reading context directory", root, e.into()))?;
    let mut found = walk.dir(fd, b"")?;
    found.entries.push(plain_entry(Vec::new(), Kind::Dir, &st));
    found.bytes_hashed = walk.hashed.load(Ordering::Relaxed);
    Ok(found)
}

/// A directory's children, sorted by what the walk does with them.
#[derive(Default)]
struct Children {
    files: Vec<(CString, Vec<u8>, Stat)>,
    /// (name, relative path, excluded by the filter, stat)
    dirs: Vec<(CString, Vec<u8>, bool, Stat)>,
    others: Vec<Entry>,
}

impl Walk<'_> {
    /// Walks the directory open as `fd` whose relative path is `rel`.
    fn dir(&self, fd: OwnedFd, rel: &[u8]) -> Result<Found> {
        let kids = self.list(&fd, rel)?;
        let files: Vec<(Entry, Option<Cached>)> = kids
            .files
            .par_iter()
            .map(|(name, path, st)| self.file(fd.as_fd(), name, path, st))
            .collect::<Result<_>>()?;
        let subdirs: Vec<Found> = kids
            .dirs
            .into_par_iter()
            .map(|(name, path, excluded, st)| self.subdir(fd.as_fd(), &name, path, excluded, &st))
            .collect::<Result<_>>()?;
        let mut found = Found {
            entries: kids.others,
            fresh: Vec::new(),
            bytes_hashed: 0,
        };
        for (entry, cached) in files {
            if let Some(c) = cached {
                found.fresh.push((entry.path.clone(), c));
            }
            found.entries.push(entry);
        }
        for sub in subdirs {
            found.entries.extend(sub.entries);
            found.fresh.extend(sub.fresh);
        }
        Ok(found)
    }

    /// Reads the names in `fd`, stats each without following symlinks, and
    /// applies the filter.
    fn list(&self, fd: &OwnedFd, rel: &[u8]) -> Result<Children> {
        let err =
            |e: rustix::io::Errno| Error::io("reading context directory", self.path(rel), e.into());
        let mut dir = Dir::read_from(fd).map_err(err)?;
        let mut kids = Children::default();
        while let Some(item) = dir.read() {
            let item = item.map_err(err)?;
            let name = item.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let path = join(rel, name.to_bytes());
            let st = statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io("reading context entry", self.path(&path), e.into()))?;
            let shown = String::from_utf8_lossy(&path);
            let excluded = self.filter.is_excluded(&shown);
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    if !excluded || self.filter.may_reinclude_under(&shown) {
                        kids.dirs.push((name.to_owned(), path, excluded, st));
                    }
                }
                _ if excluded => {}
                FileType::RegularFile => kids.files.push((name.to_owned(), path, st)),
                FileType::Symlink => {
                    let target = readlinkat(fd, name, Vec::new())
                        .map_err(|e| Error::io("reading symlink", self.path(&path), e.into()))?;
                    let mut e = plain_entry(path, Kind::Symlink, &st);
                    e.target = target.into_bytes().into();
                    kids.others.push(e);
                }
                _ => kids.others.push(plain_entry(path, Kind::Other, &st)),
            }
        }
        Ok(kids)
    }

    /// Opens and walks a subdirectory. An excluded one (descended because
    /// something under it may be included again) is kept only if something
    /// under it is visible.
    fn subdir(
        &self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        rel: Vec<u8>,
        excluded: bool,
        st: &Stat,
    ) -> Result<Found> {
        // O_NOFOLLOW: if the directory was swapped for a symlink since the
        // stat, this fails instead of walking outside the context.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(parent, name, flags, Mode::empty())
            .map_err(|e| Error::io("opening context directory", self.path(&rel), e.into()))?;
        let mut found = self.dir(fd, &rel)?;
        if !excluded || !found.entries.is_empty() {
            found.entries.push(plain_entry(rel, Kind::Dir, st));
        }
        Ok(found)
    }

    /// The entry of a regular file: its hash from the stat cache when its
    /// stat is unchanged, else read and hashed.
    fn file(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        rel: &[u8],
        st: &Stat,
    ) -> Result<(Entry, Option<Cached>)> {
        let err = |op, e: io::Error| Error::io(op, self.path(rel), e);
        let meta = Meta::of(st);
        if let Some(hash) = self.cache.and_then(|c| c.lookup(rel, &meta)) {
            return Ok((
                file_entry(rel, &meta, meta.size, hash),
                Some(Cached { meta, hash }),
            ));
        }
        // O_NONBLOCK: should the file have become a FIFO, opening must not hang.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = openat(dir, name, flags, Mode::empty())
            .map_err(|e| err("opening context file", e.into()))?;
        let before = Meta::of(&fstat(&fd).map_err(|e| err("reading context file", e.into()))?);
        if FileType::from_raw_mode(before.mode) != FileType::RegularFile {
            let e = io::Error::new(io::ErrorKind::InvalidData, "changed type during the scan");
            return Err(err("reading context file", e));
        }
        let mut file = File::from(fd);
        let (hash, read) = hash_file(&mut file).map_err(|e| err("reading context file", e))?;
        self.hashed.fetch_add(read, Ordering::Relaxed);
        let after = Meta::of(&fstat(&file).map_err(|e| err("reading context file", e.into()))?);
        // A file that changed while being read, or too recently to be sure
        // it cannot change unnoticed, keeps its hash out of the cache.
        let stable = before == after && read == before.size && !self.racy(&after);
        Ok((
            file_entry(rel, &before, read, hash),
            stable.then_some(Cached { meta: before, hash }),
        ))
    }

    fn racy(&self, meta: &Meta) -> bool {
        let whole_seconds = meta.ctime_ns % 1_000_000_000 == 0;
        let window = if whole_seconds {
            RACY_WINDOW_COARSE_NS
        } else {
            RACY_WINDOW_NS
        };
        meta.ctime_ns >= self.start_ns.saturating_sub(window)
    }

    /// The host path of `rel`, for error messages.
    fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_SIZE]);
}

/// blake3 of everything `file` holds now, and how many bytes that was.
fn hash_file(file: &mut File) -> io::Result<([u8; 32], u64)> {
    BUF.with_borrow_mut(|buf| {
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        loop {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((*hasher.finalize().as_bytes(), total))
    })
}

fn plain_entry(path: Vec<u8>, kind: Kind, st: &Stat) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode: st.st_mode & 0o7777,
        size: 0,
        target: Box::default(),
        hash: [0; 32],
    }
}

fn file_entry(rel: &[u8], meta: &Meta, size: u64, hash: [u8; 32]) -> Entry {
    Entry {
        path: rel.into(),
        kind: Kind::File,
        mode: meta.mode & 0o7777,
        size,
        target: Box::default(),
        hash,
    }
}
