//! The context walk: fd-relative, never following symlinks. It only lists
//! and stats; regular files are hashed later, in parallel, and only those a
//! selector reaches (`FileHasher`, called by `ContextIndex`): an unused 1 TiB
//! sparse file beside the Dockerfile costs one stat.
//!
//! Every directory is a job spawned into one `rayon::scope`. Jobs never wait on each other, so the stack does not
//! grow with the depth of the tree (a hostile context may nest thousands of
//! directories), and each job opens what it needs from the context root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no directory fds are
//! held between jobs and a directory swapped for a symlink mid-scan fails
//! the open instead of leading outside the context.

use std::cell::RefCell;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::mem;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use rustix::fs::{
    fstat, openat2, readlinkat, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat,
};

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

/// Opens inside the context only, through no symlink at all.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Reads and hashes files of one context, for as long as its index lives.
pub(super) struct FileHasher {
    root: PathBuf,
    root_fd: OwnedFd,
    /// When the scan started, for the racy-ctime rule.
    start_ns: i64,
    /// Bytes read and hashed so far.
    pub(super) hashed: AtomicU64,
    /// Stat-cache records of the files hashed since the scan whose hash is
    /// trustworthy.
    pub(super) fresh: Mutex<Vec<(Box<[u8]>, Cached)>>,
}

struct Walk<'a> {
    hasher: &'a FileHasher,
    filter: &'a dyn PathFilter,
    found: Mutex<Vec<Entry>>,
    /// Excluded directories descended into; kept only if something under
    /// them is visible.
    tentative: Mutex<Vec<Entry>>,
    /// The first error; once set, jobs that have not started do nothing.
    failed: Mutex<Option<Error>>,
}

/// Walks the context at `root`; see [`super::ContextIndex::scan`]. Files
/// are listed with an empty hash (see [`take_hashes`]), and the entries
/// come sorted by path.
pub(super) fn scan(root: &Path, filter: &dyn PathFilter) -> Result<(Vec<Entry>, FileHasher)> {
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root_fd = rustix::fs::open(root, flags, Mode::empty())
        .map_err(|e| Error::io("opening context directory", root, e.into()))?;
    let st = fstat(&root_fd).map_err(|e| Error::io("reading context directory", root, e.into()))?;
    let hasher = FileHasher {
        root: root.to_path_buf(),
        root_fd,
        start_ns,
        hashed: AtomicU64::new(0),
        fresh: Mutex::default(),
    };
    let walk = Walk {
        hasher: &hasher,
        filter,
        found: Mutex::default(),
        tentative: Mutex::default(),
        failed: Mutex::default(),
    };
    rayon::scope(|s| walk.dir_job(s, Vec::new()));
    if let Some(e) = take(walk.failed) {
        return Err(e);
    }
    let mut found = take(walk.found);
    found.push(plain_entry(Vec::new(), Kind::Dir, &st));
    keep_tentative(&mut found, take(walk.tentative));
    Ok((found, hasher))
}

/// Gives each regular file of `entries` whose stat `cache` holds the hash
/// recorded there. A pass of its own, after the walk, so that the cache can
/// be read from disk while the walk runs (loading 300,000 records before
/// the walk could start was 7% of a monorepo's no-op rebuild; issue 19).
pub(super) fn take_hashes(entries: &mut [Entry], cache: &StatCache) {
    entries.par_iter_mut().for_each(|e| {
        let Some(listed) = &e.listed else {
            return;
        };
        if let Some(hash) = cache.lookup(&e.path, listed) {
            let _ = e.hash.set(hash);
            e.from_cache = true;
        }
    });
}

/// Sorts entries by path, on the pool: the jobs found them in any order,
/// and one thread sorting 100,000 paths, twice, was 5% of a monorepo's
/// no-op rebuild (issue 19).
fn sort(entries: &mut [Entry]) {
    entries.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
}

// A job that panics makes `rayon::scope` panic too, so a poisoned mutex's
// value is never used for a result; these just avoid a second panic.
fn take<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sorts `entries` by path, adding each tentative directory that has a
/// visible entry under it.
fn keep_tentative(entries: &mut Vec<Entry>, tentative: Vec<Entry>) {
    sort(entries);
    if tentative.is_empty() {
        return;
    }
    let visible = mem::take(entries);
    let mut kept = Vec::new();
    for dir in tentative {
        let mut prefix = dir.path.to_vec();
        prefix.push(b'/');
        let i = visible.partition_point(|e| e.path.as_ref() < prefix.as_slice());
        if visible.get(i).is_some_and(|e| e.path.starts_with(&prefix)) {
            kept.push(dir);
        }
    }
    *entries = visible;
    if !kept.is_empty() {
        entries.extend(kept);
        sort(entries);
    }
}

/// A directory's children, by what the walk does with them.
#[derive(Default)]
struct Children {
    /// (relative path, excluded by the filter, stat)
    dirs: Vec<(Vec<u8>, bool, Stat)>,
    found: Vec<Entry>,
}

impl<'a> Walk<'a> {
    fn stopped(&self) -> bool {
        lock(&self.failed).is_some()
    }

    fn fail(&self, e: Error) {
        lock(&self.failed).get_or_insert(e);
    }

    fn merge(&self, part: Vec<Entry>) {
        lock(&self.found).extend(part);
    }

    /// Lists directory `rel`, records what needs no hashing, and spawns a
    /// job per subdirectory and per batch of files to hash.
    fn dir_job<'s>(&'s self, s: &rayon::Scope<'s>, rel: Vec<u8>)
    where
        'a: 's,
    {
        if self.stopped() {
            return;
        }
        let mut kids = match self.list(&rel) {
            Ok(kids) => kids,
            Err(e) => return self.fail(e),
        };
        for (path, excluded, st) in mem::take(&mut kids.dirs) {
            let entry = plain_entry(path.clone(), Kind::Dir, &st);
            if excluded {
                lock(&self.tentative).push(entry);
            } else {
                kids.found.push(entry);
            }
            s.spawn(move |s| self.dir_job(s, path));
        }
        self.merge(kids.found);
    }

    /// Reads the names in directory `rel`, stats each without following
    /// symlinks, applies the filter and looks files up in the stat cache.
    fn list(&self, rel: &[u8]) -> Result<Children> {
        let err = |e: rustix::io::Errno| {
            Error::io("reading context directory", self.hasher.path(rel), e.into())
        };
        let fd = self
            .hasher
            .open(rel, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(err)?;
        let mut dir = Dir::read_from(&fd).map_err(err)?;
        let mut kids = Children::default();
        while let Some(item) = dir.read() {
            let item = item.map_err(err)?;
            let name = item.file_name();
            if name != c"." && name != c".." {
                self.child(&fd, rel, name, &mut kids)?;
            }
        }
        Ok(kids)
    }

    /// Sorts one directory entry into `kids`.
    fn child(&self, fd: &OwnedFd, rel: &[u8], name: &CStr, kids: &mut Children) -> Result<()> {
        let path = join(rel, name.to_bytes());
        let st = statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("reading context entry", self.hasher.path(&path), e.into()))?;
        let shown = String::from_utf8_lossy(&path);
        let excluded = self.filter.is_excluded(&shown);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if !excluded || self.filter.may_reinclude_under(&shown) {
                    kids.dirs.push((path, excluded, st));
                }
            }
            _ if excluded => {}
            FileType::RegularFile => {
                kids.found.push(file_entry(path, &Meta::of(&st)));
            }
            FileType::Symlink => {
                let target = readlinkat(fd, name, Vec::new())
                    .map_err(|e| Error::io("reading symlink", self.hasher.path(&path), e.into()))?;
                let mut e = plain_entry(path, Kind::Symlink, &st);
                e.target = target.into_bytes().into();
                kids.found.push(e);
            }
            _ => kids.found.push(plain_entry(path, Kind::Other, &st)),
        }
        Ok(())
    }
}

impl FileHasher {
    /// Opens `rel` beneath the context root, through no symlink.
    fn open(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path = if rel.is_empty() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(rel)
        };
        loop {
            match openat2(
                &self.root_fd,
                path,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            ) {
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                other => return other,
            }
        }
    }

    /// Reads and hashes the first `listed.size` bytes of the regular file
    /// `rel` (never more: a file growing while it is read, a log or a
    /// sparse file being extended, is hashed as it was listed), and keeps a
    /// stat-cache record when the hash is trustworthy.
    pub(super) fn hash(&self, rel: &[u8], listed: &Meta) -> Result<[u8; 32]> {
        let err = |op, e: io::Error| Error::io(op, self.path(rel), e);
        // O_NONBLOCK: should the file have become a FIFO, opening must not hang.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = self
            .open(rel, flags)
            .map_err(|e| err("opening context file", e.into()))?;
        let before = Meta::of(&fstat(&fd).map_err(|e| err("reading context file", e.into()))?);
        if FileType::from_raw_mode(before.mode) != FileType::RegularFile {
            let e = io::Error::new(io::ErrorKind::InvalidData, "changed type during the build");
            return Err(err("reading context file", e));
        }
        let mut file = File::from(fd);
        let (hash, read) =
            hash_file(&mut file, listed.size).map_err(|e| err("reading context file", e))?;
        self.hashed.fetch_add(read, Ordering::Relaxed);
        if read < listed.size {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shrank during the build ({read} of {} bytes)", listed.size),
            );
            return Err(err("reading context file", e));
        }
        let after = Meta::of(&fstat(&file).map_err(|e| err("reading context file", e.into()))?);
        // A file that changed since it was listed or while it was read, or
        // too recently to be sure it cannot change unnoticed, keeps its
        // hash out of the cache.
        let stable = *listed == before && before == after && !self.racy(&after);
        if stable {
            let record = Cached { meta: before, hash };
            lock(&self.fresh).push((rel.into(), record));
        }
        Ok(hash)
    }

    fn racy(&self, meta: &Meta) -> bool {
        racy(meta.ctime_ns, self.start_ns)
    }

    /// The host path of `rel`, for error messages.
    pub(super) fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }
}

/// Whether a file with this ctime may still change, after a scan that
/// started at `start_ns`, without its ctime changing.
pub(crate) fn racy(ctime_ns: i64, start_ns: i64) -> bool {
    let whole_seconds = ctime_ns % 1_000_000_000 == 0;
    let window = if whole_seconds {
        RACY_WINDOW_COARSE_NS
    } else {
        RACY_WINDOW_NS
    };
    ctime_ns >= start_ns.saturating_sub(window)
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_SIZE]);
}

/// blake3 of the first `limit` bytes of `file` (fewer if it ends first),
/// and how many bytes that was.
fn hash_file(file: &mut File, limit: u64) -> io::Result<([u8; 32], u64)> {
    BUF.with_borrow_mut(|buf| {
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        while total < limit {
            let want = buf
                .len()
                .min(usize::try_from(limit - total).unwrap_or(usize::MAX));
            match file.read(&mut buf[..want]) {
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
        hash: std::sync::OnceLock::new(),
        listed: None,
        from_cache: false,
    }
}

/// A regular file's entry, its hash not known yet.
fn file_entry(rel: Vec<u8>, meta: &Meta) -> Entry {
    Entry {
        from_cache: false,
        path: rel.into(),
        kind: Kind::File,
        mode: meta.mode & 0o7777,
        size: meta.size,
        target: Box::default(),
        hash: std::sync::OnceLock::new(),
        listed: Some(*meta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_changes_are_racy() {
        let start = 1_700_000_000_123_456_789;
        assert!(racy(start + 1, start), "changed during the scan");
        assert!(
            racy(start - 50_000_000, start),
            "within one coarse tick or so"
        );
        assert!(!racy(start - 500_000_000, start));
        // Whole-second timestamps may be up to a second behind.
        assert!(racy(1_699_999_999_000_000_000, start));
        assert!(!racy(1_699_999_990_000_000_000, start));
    }
}
