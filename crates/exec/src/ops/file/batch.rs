//! Deferred work of a copy: the walk creates directories and links in
//! order, while regular files are queued and copied in parallel (rayon), and
//! a directory's metadata is applied only after everything queued before it.
//!
//! Ordering is kept where it matters: a queued entry is keyed by (directory
//! inode, name), and anything else about to touch the same name runs the
//! queue first, so a later source still replaces an earlier one. The queue
//! is run when it grows large (it holds directory fds), before any hardlink
//! or archive work, and at the end of each source.
//!
//! A queue that grows large is not waited for: it runs beside the walk
//! ([`Pending::dispatch`]) while the walk fills the next one, so reading
//! directories and creating the tree overlaps copying and linking (a
//! monorepo edit links 100,000 files, and the walk alone was a third of its
//! copy; issue 19). Batches still run one after another, in order: the next
//! is dispatched only once the one in flight is done, and every other run
//! waits for it first. The walker helps the batch it waits for (it takes
//! the batch's rayon jobs) instead of idling.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use rayon::prelude::*;
use rustix::fs::{self as rfs, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::meta::{self, Meta};
use super::reuse::Reuse;
use crate::{Error, Result};

/// Queued files before the queue is run.
const MAX_FILES: usize = 8192;
/// Queued directories (two fds each) before the queue is run.
const MAX_DIRS: usize = 128;

/// An open destination directory and its identity.
pub(crate) struct Dir {
    pub(crate) fd: OwnedFd,
    id: (u64, u64),
    /// Created empty by this walk: nothing is in the way of a new entry.
    pub(crate) fresh: bool,
    /// An incremental copy's last snapshot's directory at this one's path
    /// (see `reuse`), opened once for all the files linked from it.
    pub(crate) prev: OnceLock<Option<(Box<[u8]>, OwnedFd)>>,
}

impl Dir {
    pub(crate) fn new(fd: OwnedFd, fresh: bool) -> io::Result<Arc<Dir>> {
        let st = rfs::fstat(&fd)?;
        #[allow(clippy::unnecessary_cast)]
        let id = (st.st_dev as u64, st.st_ino as u64);
        Ok(Arc::new(Dir {
            fd,
            id,
            fresh,
            prev: OnceLock::new(),
        }))
    }
}

/// A regular file to copy: `name` in `sdir` (as `st` described it) to
/// `dname` in `ddir`, then `meta` and the source's xattrs and times.
pub(crate) struct FileJob {
    pub(crate) sdir: Arc<OwnedFd>,
    pub(crate) name: OsString,
    pub(crate) st: Stat,
    pub(crate) ddir: Arc<Dir>,
    pub(crate) dname: OsString,
    pub(crate) meta: Meta,
    /// The destination path, for errors.
    pub(crate) drel: PathBuf,
}

/// A copied directory's metadata, applied after its contents.
pub(crate) struct DirJob {
    pub(crate) dst: OwnedFd,
    pub(crate) src: Arc<OwnedFd>,
    pub(crate) st: Stat,
    pub(crate) meta: Meta,
    pub(crate) rel: PathBuf,
}

/// A name queued work writes: (directory identity, name).
type Name = ((u64, u64), OsString);

/// The queue of one copy action.
#[derive(Default)]
pub(crate) struct Pending {
    files: Vec<FileJob>,
    dirs: Vec<DirJob>,
    names: HashSet<Name>,
    /// Where unchanged files may be linked from (an incremental copy).
    reuse: Option<Arc<Reuse>>,
    /// The batch running beside the walk, if any.
    in_flight: Option<InFlight>,
}

/// A dispatched batch: the names it writes, and its result once done.
struct InFlight {
    names: HashSet<Name>,
    has_dirs: bool,
    done: Arc<Done>,
}

type Outcome = std::thread::Result<Result<()>>;

#[derive(Default)]
struct Done {
    outcome: Mutex<Option<Outcome>>,
    ready: Condvar,
}

impl Done {
    fn set(&self, outcome: Outcome) {
        *self.lock() = Some(outcome);
        self.ready.notify_all();
    }

    fn take(&self) -> Option<Outcome> {
        self.lock().take()
    }

    /// Blocks until the outcome is set, and takes it.
    fn wait(&self) -> Outcome {
        let mut slot = self.lock();
        loop {
            if let Some(outcome) = slot.take() {
                return outcome;
            }
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outcome>> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl InFlight {
    /// Waits for the batch, running the pool's pending jobs meanwhile (the
    /// batch's own, most of the time), and returns its result. A panic in
    /// the batch resumes here.
    fn wait(self) -> Result<()> {
        let outcome = loop {
            if let Some(outcome) = self.done.take() {
                break outcome;
            }
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                // Nothing left to help with: the last jobs run elsewhere.
                break self.done.wait();
            }
        };
        outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Pending {
    /// A queue whose files may be linked from `reuse`'s last snapshot.
    pub(crate) fn with_reuse(reuse: Option<Arc<Reuse>>) -> Pending {
        let mut pending = Pending::default();
        pending.reuse = reuse;
        pending
    }

    /// Whether queued or running work writes `name` in `dir` (run the
    /// queue first).
    pub(crate) fn busy(&self, dir: &Dir, name: &OsStr) -> bool {
        let writes = |names: &HashSet<Name>| {
            !names.is_empty() && names.contains(&(dir.id, name.to_os_string()))
        };
        writes(&self.names) || self.in_flight.as_ref().is_some_and(|f| writes(&f.names))
    }

    /// Whether the queue should be run now.
    pub(crate) fn full(&self) -> bool {
        self.files.len() >= MAX_FILES || self.dirs.len() >= MAX_DIRS
    }

    /// Whether queued or running work applies directory metadata.
    pub(crate) fn has_dirs(&self) -> bool {
        !self.dirs.is_empty() || self.in_flight.as_ref().is_some_and(|f| f.has_dirs)
    }

    pub(crate) fn file(&mut self, job: FileJob) {
        self.names.insert((job.ddir.id, job.dname.clone()));
        self.files.push(job);
    }

    /// Queues directory metadata; `at` is (parent, name) when the directory
    /// has a name in a parent.
    pub(crate) fn dir(&mut self, job: DirJob, at: Option<(&Dir, &OsStr)>) {
        if let Some((parent, name)) = at {
            self.names.insert((parent.id, name.to_os_string()));
        }
        self.dirs.push(job);
    }

    /// Runs everything queued or running: when it returns, every queued
    /// file is copied and every queued directory has its metadata.
    pub(crate) fn run(&mut self) -> Result<()> {
        let (files, dirs, _) = self.take()?;
        run_batch(files, dirs, self.reuse.as_deref())
    }

    /// Starts the queue beside the walk, once the batch before it is done
    /// (see the module docs); a failure of either shows here or at the
    /// next run.
    pub(crate) fn dispatch(&mut self) -> Result<()> {
        let (files, dirs, names) = self.take()?;
        let done = Arc::new(Done::default());
        self.in_flight = Some(InFlight {
            names,
            has_dirs: !dirs.is_empty(),
            done: Arc::clone(&done),
        });
        let reuse = self.reuse.clone();
        rayon::spawn(move || {
            let run = || run_batch(files, dirs, reuse.as_deref());
            done.set(std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)));
        });
        Ok(())
    }

    /// Waits for the batch in flight, then takes what is queued.
    fn take(&mut self) -> Result<(Vec<FileJob>, Vec<DirJob>, HashSet<Name>)> {
        if let Some(flight) = self.in_flight.take() {
            flight.wait()?;
        }
        Ok((
            std::mem::take(&mut self.files),
            std::mem::take(&mut self.dirs),
            std::mem::take(&mut self.names),
        ))
    }
}

impl Drop for Pending {
    /// A walk that failed still waits for its batch in flight, which
    /// writes into the tree the caller is about to remove.
    fn drop(&mut self) {
        if let Some(flight) = self.in_flight.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flight.wait()));
        }
    }
}

/// Copies `files` in parallel, then applies the metadata of `dirs` in order.
fn run_batch(files: Vec<FileJob>, dirs: Vec<DirJob>, reuse: Option<&Reuse>) -> Result<()> {
    files.par_iter().try_for_each(|job| {
        match reuse {
            Some(reuse) => reuse.copy(job),
            None => copy_file(job),
        }
        .map_err(|e| Error::io("copying", &job.drel, e))
    })?;
    drop(files);
    for d in dirs {
        meta::apply_fd(d.dst.as_fd(), d.src.as_fd(), &d.st, d.meta)
            .map_err(|e| Error::io("setting metadata", &d.rel, e))?;
    }
    Ok(())
}

/// Copies one queued file.
pub(crate) fn copy_file(job: &FileJob) -> io::Result<()> {
    let src = open_file(&job.sdir, &job.name, &job.st)?;
    if !job.ddir.fresh {
        super::tree::remove_all(job.ddir.fd.as_fd(), &job.dname)?;
    }
    let out = create_file(&job.ddir.fd, &job.dname)?;
    copy_data(&src, &out, job.st.st_size as u64)?;
    meta::apply_fd(out.as_fd(), src.as_fd(), &job.st, job.meta)
}

/// Creates `name` in `dir` for writing; it must not exist.
pub(crate) fn create_file(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rfs::openat(
        dir,
        name,
        flags,
        Mode::from_raw_mode(0o600),
    )?))
}

/// Copies the first `size` bytes of `src` (its size when the copy listed
/// it): `sendfile` in the kernel (the destination is usually an overlayfs
/// file, where `copy_file_range` from another filesystem fails with
/// `EXDEV`), falling back to a plain copy where it is not supported. A file
/// that grows while it is copied is copied only up to `size` (a log being
/// written, a sparse file extended: never more than was listed; issue 20,
/// defect 9); one that shrinks fails the copy.
pub(crate) fn copy_data(src: &File, out: &File, size: u64) -> io::Result<()> {
    let mut copied = 0u64;
    while copied < size {
        let chunk = (size - copied).min(1 << 30) as usize;
        match rfs::sendfile(out, src, None, chunk) {
            Ok(0) => break,
            Ok(n) => copied += n as u64,
            Err(Errno::INTR) => {}
            Err(Errno::INVAL | Errno::NOSYS) if copied == 0 => {
                let n = io::copy(&mut src.take(size), &mut &*out)?;
                copied = n;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if copied < size {
        return Err(io::Error::other(format!(
            "source shrank while being copied: {copied} of {size} bytes"
        )));
    }
    Ok(())
}

/// Opens the regular file `name` for reading without following a symlink or
/// blocking on a FIFO, and checks it is still the file `st` described.
pub(crate) fn open_file(dir: &OwnedFd, name: &OsStr, st: &Stat) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(rfs::openat(dir, name, flags, Mode::empty())?);
    let now = rfs::fstat(&file)?;
    let regular = rfs::FileType::from_raw_mode(now.st_mode) == rfs::FileType::RegularFile;
    if !regular || now.st_ino != st.st_ino || now.st_dev != st.st_dev {
        return Err(io::Error::other("source changed while being copied"));
    }
    Ok(file)
}
