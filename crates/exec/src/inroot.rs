//! Opening paths inside a root directory, never outside it.
//!
//! Every path the build names (a COPY source, `/etc/passwd` of an image, a
//! WORKDIR) is untrusted: a symlink in the image or the context may point
//! anywhere. `openat2(RESOLVE_IN_ROOT)` makes the kernel resolve `..` and
//! symlinks (absolute ones too) as if the directory were `/`, at the moment
//! of use, which is what docs/security.md rule 1 asks for.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

/// Resolution flags used for every in-root open.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (absolute or relative, interpreted inside `root`) with
/// `flags` (`O_CLOEXEC` is always added).
pub(crate) fn open_in_root(root: impl AsFd, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let rel = strip_root(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    loop {
        match openat2(
            root.as_fd(),
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        ) {
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Reads at most `limit` bytes of the regular file at `path` inside `root`.
/// `Ok(None)` when the file does not exist; an error when it is larger.
pub(crate) fn read_in_root(
    root: impl AsFd,
    path: &Path,
    limit: u64,
) -> io::Result<Option<Vec<u8>>> {
    let fd = match open_in_root(root, path, OFlags::RDONLY | OFlags::NONBLOCK) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(Some(bytes))
}

/// `path` without its leading `/`s: the form `openat2` resolves inside a root.
pub(crate) fn strip_root(path: &Path) -> &Path {
    let mut p = path;
    while let Ok(rest) = p.strip_prefix("/") {
        p = rest;
    }
    p
}

/// Opens `root` itself as a directory fd to resolve paths against (the
/// handle [`resolve_user`](crate::resolve_user) and friends take).
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// An `O_PATH` fd of directory `path`: it names the directory (as
/// `/proc/self/fd/N`) or keeps its mount alive, without opening it for
/// reading.
pub(crate) fn open_path_dir(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty()).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/secret"), "inside").unwrap();
        // An absolute link and a ../ link, both aimed at the host.
        symlink(outside.path().join("secret"), root.path().join("abs")).unwrap();
        symlink("../../../../../etc/secret", root.path().join("rel")).unwrap();
        let fd = open_root(root.path()).unwrap();
        let abs = read_in_root(&fd, Path::new("/abs"), 100);
        // `abs` points at <outside>/secret, which inside the root does not exist.
        assert!(abs.is_err() || abs.unwrap().is_none());
        let dir = open_in_root(&fd, Path::new("/rel"), OFlags::RDONLY).unwrap();
        let mut s = String::new();
        File::from(dir).read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
    }

    #[test]
    fn reads_are_bounded() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("big"), vec![b'x'; 100]).unwrap();
        let fd = open_root(root.path()).unwrap();
        assert!(read_in_root(&fd, Path::new("big"), 10).is_err());
        assert_eq!(
            read_in_root(&fd, Path::new("big"), 100)
                .unwrap()
                .unwrap()
                .len(),
            100
        );
        assert!(read_in_root(&fd, Path::new("missing"), 10)
            .unwrap()
            .is_none());
    }
}
