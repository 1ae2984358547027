//! Docker's "init layer": real mountpoints stacked above the image.
//!
//! runc mounts `/proc`, `/dev`, `/sys` and the `/etc` files onto paths in
//! the root. If the image made one of them a symlink (`/dev -> /tmp`,
//! `/etc/resolv.conf -> /etc/shadow`), runc before the CVE-2026-41579 fix
//! acts on wherever it points, host paths included. Docker is immune
//! because its init layer puts real directories and empty files there;
//! rbk stacks the same layer as the top lower dir of every `RUN` root, so
//! these paths are always what they should be, and runc never creates a
//! mountpoint stub in the upper dir.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Directories of the layer (mode 0755).
const DIRS: [&str; 4] = ["dev", "proc", "sys", "etc"];
/// Empty files of the layer (mode 0644).
const FILES: [&str; 3] = ["etc/hosts", "etc/resolv.conf", "etc/hostname"];

/// Writes (once, idempotently, safe to race with another process) the init
/// layer into `dir`: real directories `dev/`, `proc/`, `sys/`, `etc/` and
/// empty files `etc/hosts`, `etc/resolv.conf`, `etc/hostname`, owned by the
/// (root) builder with modes 0755 and 0644. Returns `dir`.
pub fn ensure_init_layer(dir: &Path) -> Result<PathBuf> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io("creating init layer", dir, e))?;
    for name in DIRS {
        let path = dir.join(name);
        let created = DirBuilder::new().mode(0o755).create(&path);
        settle(created, &path, true, 0o755)?;
    }
    for name in FILES {
        let path = dir.join(name);
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map(drop);
        settle(created, &path, false, 0o644)?;
    }
    Ok(dir.to_path_buf())
}

/// Accepts an entry that already exists if it has the right type (another
/// process made it), then sets its mode (the umask may have cut it).
fn settle(created: io::Result<()>, path: &Path, dir: bool, mode: u32) -> Result<()> {
    match created {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path)
                .map_err(|e| Error::io("checking init layer", path, e))?;
            let ok = if dir {
                meta.is_dir()
            } else {
                meta.is_file() && meta.len() == 0
            };
            if !ok {
                return Err(Error::Corrupt {
                    what: "init layer",
                    path: path.to_path_buf(),
                    reason: "unexpected entry (delete the directory to rebuild it)".into(),
                });
            }
        }
        Err(e) => return Err(Error::io("creating init layer", path, e)),
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting mode in init layer", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_has_real_entries_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("init");
        assert_eq!(ensure_init_layer(&dir).unwrap(), dir);
        ensure_init_layer(&dir).unwrap();
        for d in DIRS {
            let m = std::fs::symlink_metadata(dir.join(d)).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        }
        for f in FILES {
            let m = std::fs::symlink_metadata(dir.join(f)).unwrap();
            assert!(m.is_file() && m.len() == 0);
            assert_eq!(m.permissions().mode() & 0o7777, 0o644);
        }
    }

    #[test]
    fn a_tampered_layer_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", tmp.path().join("etc/hosts")).unwrap();
        assert!(ensure_init_layer(tmp.path()).is_err());
    }
}
