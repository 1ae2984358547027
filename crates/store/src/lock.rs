//! File locks tied to an open file description (`flock(2)`), so the kernel
//! releases them when the holder exits for any reason, SIGKILL included
//! (docs/security.md rule 9). Locks are advisory and taken on small lock
//! files.
//!
//! Most lock files live as long as the store. The per-digest locks of
//! `ingest/` would grow by one file per blob and snapshot ever written (and
//! `rbk prune` would then move tens of thousands of them to the trash), so
//! they are temporary: the holder removes the file before it lets go
//! ([`FileLock::exclusive_temporary`]). A waiter may therefore get the lock
//! of a file that is no longer in the directory; every acquisition checks
//! that the path still names the file it locked, and locks again if not.
//!
//! rustix is used for the syscall: it is the safe, well-maintained wrapper
//! that std itself builds on for Linux, and the workspace denies `unsafe`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::{Error, Result};

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
    /// Remove the lock file on release (see [`FileLock::exclusive_temporary`]).
    temporary: bool,
}

impl FileLock {
    /// Blocks until an exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        Self::acquire(path, FlockOperation::LockExclusive).map(|held| held.expect("blocking"))
    }

    /// [`FileLock::exclusive`] on a lock file that is removed when the lock
    /// is released (while it is still held, so no other process can hold
    /// the same file then). For locks named after one item, such as a blob
    /// being written, that would otherwise pile up.
    pub fn exclusive_temporary(path: &Path) -> Result<FileLock> {
        let mut lock = Self::exclusive(path)?;
        lock.temporary = true;
        Ok(lock)
    }

    /// Blocks until a shared lock on `path` (created if missing) is held.
    pub fn shared(path: &Path) -> Result<FileLock> {
        Self::acquire(path, FlockOperation::LockShared).map(|held| held.expect("blocking"))
    }

    /// Takes the exclusive lock only if nobody holds it; `Ok(None)` otherwise.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        Self::acquire(path, FlockOperation::NonBlockingLockExclusive)
    }

    /// `Ok(None)` only for a non-blocking `op` that found the lock held.
    fn acquire(path: &Path, op: FlockOperation) -> Result<Option<FileLock>> {
        let locking = |e: io::Error| Error::Io {
            op: "locking",
            path: path.to_path_buf(),
            source: e,
        };
        loop {
            let file = open_lock_file(path)?;
            match flock(&file, op) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                // Interrupted: the file is opened again too, which is harmless.
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(locking(e.into())),
            }
            // The holder we waited for may have removed the file: our lock
            // is then on a file that nobody else can open any more.
            if names_file(path, &file).map_err(locking)? {
                return Ok(Some(FileLock {
                    _file: file,
                    path: path.to_path_buf(),
                    temporary: false,
                }));
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if self.temporary {
            // Still held here (the file closes after this body): nobody
            // else holds this file, so nobody else can be relying on it.
            // A failure only leaves the file for `clean_orphans`.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `path` is (still) the file `file` has open.
fn names_file(path: &Path, file: &File) -> io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_temporary_lock_file_is_gone_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let lock = FileLock::exclusive_temporary(&path).unwrap();
        assert!(path.exists());
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(lock);
        assert!(!path.exists());
        // A plain lock keeps its file.
        drop(FileLock::exclusive(&path).unwrap());
        assert!(path.exists());
    }

    #[test]
    fn a_waiter_locks_the_file_the_path_names_after_a_temporary_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = FileLock::exclusive_temporary(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let lock = FileLock::exclusive_temporary(&path).unwrap();
                tx.send(()).unwrap();
                // While the waiter holds it, the path names its file (not
                // the removed one), so a third taker finds it held.
                assert!(FileLock::try_exclusive(&path).unwrap().is_none());
                drop(lock);
            })
        };
        // The waiter opened the first file and is blocked on it.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        assert!(!path.exists());
    }
}
