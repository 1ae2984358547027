//! The process's working directory, created inside the root when missing.
//!
//! Each prefix of the (lexically cleaned) path is opened with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, and a missing component is
//! made with `mkdirat` on its parent's fd: a symlink in the image is
//! followed inside the root only, and `/proc/self/fd/N` tricks
//! (CVE-2024-21626) cannot reach a host directory.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{mkdirat, Mode, OFlags};

use crate::inroot::open_in_root;
use crate::{Error, Result};

/// `cwd` as an absolute path with `.`, `..` and repeated `/` resolved
/// lexically (as Docker's `filepath.Clean` does for `WORKDIR`).
pub(crate) fn clean(cwd: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(cwd).components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Makes sure the directory `cwd` (already [`clean`]ed) exists inside
/// `root`, creating missing components with mode 0755.
pub(crate) fn ensure_dir(root: impl AsFd, cwd: &Path) -> Result<()> {
    let mut prefix = PathBuf::from("/");
    let mut parent = open_dir(&root, &prefix)?;
    for name in cwd.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    }) {
        prefix.push(name);
        parent = match open_dir(&root, &prefix) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                match mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(Error::io("creating directory", &prefix, e.into())),
                }
                open_dir(&root, &prefix)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(())
}

fn open_dir(root: impl AsFd, path: &Path) -> Result<OwnedFd> {
    open_in_root(root, path, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| Error::io("opening working directory", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_root;
    use std::os::unix::fs::symlink;

    #[test]
    fn clean_is_lexical_and_absolute() {
        assert_eq!(clean(""), Path::new("/"));
        assert_eq!(clean("work//dir/./x/.."), Path::new("/work/dir"));
        assert_eq!(clean("/../../etc"), Path::new("/etc"));
    }

    #[test]
    fn creates_missing_components_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        // An absolute symlink aimed at the host directory: followed inside
        // the root, so `a/b` is created under <root><outside>/…, never in
        // the real `outside`.
        symlink(outside.path(), root.path().join("link")).unwrap();
        let fd = open_root(root.path()).unwrap();
        ensure_dir(&fd, &clean("/work/dir")).unwrap();
        assert!(root.path().join("work/dir").is_dir());
        ensure_dir(&fd, &clean("/work/dir")).unwrap();
        let inside = root.path().join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        ensure_dir(&fd, &clean("/link/a/b")).unwrap();
        assert!(inside.join("a/b").is_dir());
        assert!(!outside.path().join("a").exists());
    }

    #[test]
    fn a_link_to_proc_fd_is_resolved_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        symlink("/proc/self/fd/3", root.path().join("fd")).unwrap();
        let fd = open_root(root.path()).unwrap();
        // <root>/proc does not exist: the link dangles inside the root and
        // is neither followed to the host's /proc nor replaced.
        assert!(ensure_dir(&fd, &clean("/fd/x")).is_err());
        assert!(!root.path().join("proc").exists());
        assert!(root.path().join("fd").is_symlink());
    }
}
