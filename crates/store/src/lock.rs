//! File locks tied to an open file description (`flock(2)`), so the kernel
//! releases them when the holder exits for any reason, SIGKILL included
//! (docs/security.md rule 9). Locks are advisory and taken on small lock files that
//! are never deleted while the store is in use.
//!
//! rustix is used for the syscall: it is the safe, well-maintained wrapper
//! that std itself builds on for Linux, and the workspace denies `unsafe`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::{Error, Result};

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until an exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        Self::acquire(path, FlockOperation::LockExclusive)
    }

    /// Blocks until a shared lock on `path` (created if missing) is held.
    pub fn shared(path: &Path) -> Result<FileLock> {
        Self::acquire(path, FlockOperation::LockShared)
    }

    /// Takes the exclusive lock only if nobody holds it; `Ok(None)` otherwise.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::Io {
                op: "locking",
                path: path.to_path_buf(),
                source: e.into(),
            }),
        }
    }

    fn acquire(path: &Path, op: FlockOperation) -> Result<FileLock> {
        let file = open_lock_file(path)?;
        loop {
            match flock(&file, op) {
                Ok(()) => {
                    return Ok(FileLock {
                        _file: file,
                        path: path.to_path_buf(),
                    })
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "locking",
                        path: path.to_path_buf(),
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(crate::fsutil::nofollow())
        .open(path)
        .map_err(Error::io("opening lock file", path))
}
