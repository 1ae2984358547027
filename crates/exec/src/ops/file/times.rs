//! Deterministic times for directories a file op changes implicitly.
//!
//! Creating an entry bumps its parent directory's mtime to "now", and
//! directories a COPY creates for a missing destination path would get
//! "now" too, so the same COPY built twice would give two different layers.
//! Instead, every directory the op writes into without giving it a source's
//! metadata is noted here, and its times are set once, after the last
//! action of the op:
//! - a directory that existed before the op keeps the times it had then;
//! - a directory the op created (a missing parent, a new destination
//!   directory, a mkdir) gets the op's creation time (see
//!   [`FileOpOptions`](super::FileOpOptions)).
//!
//! A directory that gets a copied directory's metadata later keeps that
//! metadata. Directories are noted by their real path inside the
//! destination root and re-resolved there at the end, so no fds are held
//! between actions.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Timespec, Timestamps};

use super::tree::{resolve, Walk};

/// Times to give the directories an op changed implicitly, by real path.
pub(crate) struct DirTimes {
    /// Times of entries the op creates from nothing.
    created: (i64, i64),
    dirs: RefCell<BTreeMap<PathBuf, (i64, i64)>>,
}

impl DirTimes {
    /// `created` is the time (seconds) new directories get.
    pub(crate) fn new(created: i64) -> DirTimes {
        DirTimes {
            created: (created, 0),
            dirs: RefCell::default(),
        }
    }

    /// The timestamps of entries the op creates from nothing.
    pub(crate) fn created(&self) -> Timestamps {
        stamps(self.created)
    }

    /// Notes that the existing directory `fd` (at `rel`) is about to change:
    /// its current mtime is the one it keeps, unless it was noted before.
    pub(crate) fn existing(&self, fd: BorrowedFd<'_>, rel: &Path) -> io::Result<()> {
        if self.dirs.borrow().contains_key(rel) {
            return Ok(());
        }
        let st = rfs::fstat(fd)?;
        #[allow(clippy::unnecessary_cast)]
        let mtime = (st.st_mtime as i64, st.st_mtime_nsec as i64);
        self.dirs.borrow_mut().insert(rel.to_path_buf(), mtime);
        Ok(())
    }

    /// Notes the directory at `rel` as created by this op.
    pub(crate) fn new_dir(&self, rel: &Path) {
        self.dirs
            .borrow_mut()
            .insert(rel.to_path_buf(), self.created);
    }

    /// The directory at `rel` got a source's metadata: that wins over
    /// whatever was noted for it.
    pub(crate) fn explicit(&self, rel: &Path, mtime: (i64, i64)) {
        if let Some(t) = self.dirs.borrow_mut().get_mut(rel) {
            *t = mtime;
        }
    }

    /// Sets the noted times, resolving each path inside `root` again
    /// without following a symlink in the final component.
    pub(crate) fn apply(self, root: BorrowedFd<'_>) -> io::Result<()> {
        for (rel, mtime) in self.dirs.into_inner() {
            let names: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
            let at = resolve(root, &names, Walk::default())?;
            // A directory that already has its time is left alone: touching
            // it would copy it up into the overlay's upper dir, so a COPY that
            // adds nothing to an existing directory would not give the
            // empty layer BuildKit's does.
            let st = match &at.name {
                Some(name) => rfs::statat(&at.parent, name, AtFlags::SYMLINK_NOFOLLOW)?,
                None => rfs::fstat(&at.parent)?,
            };
            #[allow(clippy::unnecessary_cast)]
            if (st.st_mtime as i64, st.st_mtime_nsec as i64) == mtime {
                continue;
            }
            match &at.name {
                Some(name) => {
                    rfs::utimensat(&at.parent, name, &stamps(mtime), AtFlags::SYMLINK_NOFOLLOW)?
                }
                None => rfs::futimens(&at.parent, &stamps(mtime))?,
            }
        }
        Ok(())
    }
}

/// atime and mtime both `t` (seconds, nanoseconds).
fn stamps(t: (i64, i64)) -> Timestamps {
    let ts = Timespec {
        tv_sec: t.0 as _,
        tv_nsec: t.1 as _,
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}
