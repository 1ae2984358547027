//! File ops: `COPY`, `ADD` (local sources), heredoc files, mkdir and rm,
//! applied to a writable tree with Docker's (BuildKit's) semantics.
//!
//! Everything is done through directory fds: paths are resolved one
//! component at a time inside their root (see `tree`), so nothing is ever
//! read, written, chmodded or chowned outside the source or destination root.
//!
//! # Sources
//! - A source path is cleaned lexically first (`a/../b` is `b`, a leading
//!   `/` is the root, `..` cannot climb above it), then resolved inside its
//!   root; symlinks in the middle resolve inside the root too.
//! - `follow_symlinks` follows a symlink in the final component (inside the
//!   root); otherwise the link itself is copied. Symlinks inside a copied
//!   directory are always copied as symlinks, their target text unchanged.
//! - Paths the source's [`PathFilter`] excludes do not exist: they are not
//!   copied, and naming one is `source "/x": not found`.
//! - With `allow_wildcard`, `*`, `?`, `[…]` and `\` are matched per
//!   component (Go `path.Match`); matches are sorted. No match is
//!   `not found` unless `allow_empty_wildcard`.
//!
//! # Destination
//! - `dest` is "a directory to copy into" when it ends in `/`, already is a
//!   directory (following symlinks inside the destination root), several
//!   sources matched, or `parents` is set; each source then lands at
//!   `dest/<base name>`. Otherwise the single source is copied to `dest`
//!   itself.
//! - A directory source with `dir_contents_only` (what `COPY dir /d` means)
//!   fills `dest` (or `dest/<path>` with `parents`) with its contents.
//! - Without `create_dest_path` the parent of `dest` must exist. Missing
//!   directories are created with mode 0755, owned by the `--chown` owner
//!   or 0:0.
//! - Existing directories are merged into, and a copied directory's mode,
//!   owner and times are applied to it (as BuildKit does, also for `dest`).
//!   Anything else in the way is replaced (unlinked, never written through).
//!   A symlink met in the destination path — also one inside a copied tree
//!   that points to a directory — is followed inside the destination root.
//! - `parents` keeps each source's path (after a `/./` pivot, if any) under
//!   `dest`. `exclude` patterns are matched with `match_path` against the
//!   path relative to the copied source (for a directory copied by its
//!   contents, relative to that directory; otherwise starting with the
//!   source's base name); a matched directory is skipped whole.
//!
//! # Metadata
//! - Owner: the `--chown` owner (resolved in the destination's own
//!   `/etc/passwd`), else 0:0 for the local context (`reset_owner`, as
//!   Docker documents), else the source's. `--chmod` (octal or symbolic)
//!   applies to every copied file and directory.
//! - Mode bits including setuid/setgid/sticky, access and modification times
//!   (also of symlinks and directories), and the `user.*` and
//!   `security.capability` xattrs are kept; `trusted.*` xattrs never.
//! - Files hardlinked to each other in one copy action stay hardlinked.
//! - Sockets are skipped. FIFOs and device nodes are recreated from stages
//!   and images, and skipped from the local context. Regular files are opened
//!   with `O_NONBLOCK | O_NOFOLLOW`, so a FIFO swapped in never blocks.
//!
//! # Times
//! Copied entries keep their source's times. What has no source to take
//! times from gets a fixed time, so the same op on the same inputs always
//! gives the same tree and the same layer (BuildKit gives such entries the
//! build's wall-clock time unless the op carries a timestamp, which its
//! Dockerfile frontend does not set; rbk prefers reproducible layers):
//! - directories the op creates — missing parents of the destination, the
//!   destination directory when a file or an archive lands in it, mkdir —
//!   and files Mkfile writes get `SOURCE_DATE_EPOCH` when it is set, else
//!   0 (1970-01-01T00:00:00Z);
//! - a directory that existed before the op and into which the op wrote,
//!   replaced or removed entries keeps the mtime it had before the op
//!   (rather than the time of the write);
//! - a destination directory that a copy creates for a directory's
//!   *contents* (`COPY dir /new`) is made like a missing parent (0755, the
//!   `--chown` owner or root, the creation time above), as BuildKit makes
//!   it before copying; one created for a directory itself (`--parents`)
//!   takes that directory's metadata; and a destination directory that
//!   existed keeps its own (BuildKit does not overwrite the metadata of the
//!   top of a copy: `COPY . /` leaves `/` alone).
//!
//! # ADD
//! With `auto_extract`, a source file that is a tar archive (by content, see
//! `extract`) is unpacked into `dest` as a directory; `--chown` applies to
//! the unpacked entries (BuildKit ≥ 0.23), `--chmod` does not.
//!
//! # Mkdir, Mkfile, Rm
//! Paths are resolved inside the destination root, following symlinks in it
//! (the final component too, except for Rm, which removes a symlink itself).
//! Mkdir accepts an existing directory; created directories and files belong
//! to the resolved owner or 0:0. Mkfile replaces what is there. Rm expands
//! wildcards and refuses to remove the root.
//!
//! # Speed
//! Directories, links and nodes are created in walk order; regular files
//! are queued and copied in parallel (`sendfile`, fd-based metadata), and a
//! directory's metadata is applied after its contents (see `batch`). An
//! entry about to be written where queued work would write runs the queue
//! first, so later sources still win exactly as in a sequential copy.
//!
//! # Limits
//! A walk holds one directory fd per level of nesting, so a tree deeper
//! than the process's open-file limit fails with a clean `EMFILE` error
//! rather than a stack overflow. Errors leave the destination partly
//! written; the caller discards the snapshot.

mod batch;
mod chmod;
mod copy;
mod extract;
mod meta;
mod reuse;
mod solve;
mod times;
mod tree;

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rbk_graph::op::{FileAction, Owner};
use rustix::fs::{self as rfs, Gid, Mode, OFlags, Uid};

use crate::pathglob::has_wildcard;
use crate::{open_root, resolve_owner, Error, PathFilter, Result};
use times::DirTimes;
use tree::{clean, display, resolve, NewDir, Walk};

/// Settings of a file op beyond its actions.
#[derive(Clone, Debug, Default)]
pub struct FileOpOptions {
    /// `SOURCE_DATE_EPOCH`: the time (seconds) of directories and files the
    /// op creates from nothing; 0 (1970-01-01) when unset.
    pub source_date_epoch: Option<i64>,
}

/// A filesystem a copy reads from: its root directory and which paths are visible.
pub struct CopySource<'a> {
    /// The directory (a read-only overlay mount or the context directory).
    pub root: &'a Path,
    /// Which paths exist ([`IncludeAll`](crate::IncludeAll) for non-context inputs).
    pub filter: &'a dyn PathFilter,
    /// True for the local build context: copied entries become 0:0 and
    /// FIFOs and devices are skipped; false for stages and images.
    pub reset_owner: bool,
}

/// Applies `actions` in order to the tree at `dest_root` (a writable
/// directory, usually a merged overlay mount). `inputs[i]` is the file op's
/// input `i`, which `CopyAction::from` indexes. The same as
/// [`apply_file_actions_with`] with default options.
pub fn apply_file_actions(
    dest_root: &Path,
    inputs: &[CopySource<'_>],
    actions: &[FileAction],
) -> Result<()> {
    apply_file_actions_with(dest_root, inputs, actions, &FileOpOptions::default())
}

/// [`apply_file_actions`] with `options` (see "Times" in the module docs).
pub fn apply_file_actions_with(
    dest_root: &Path,
    inputs: &[CopySource<'_>],
    actions: &[FileAction],
    options: &FileOpOptions,
) -> Result<()> {
    apply_actions(dest_root, inputs, actions, options, None)
}

/// [`apply_file_actions_with`], where a copy may link unchanged files from
/// its last snapshot (see `reuse`).
fn apply_actions(
    dest_root: &Path,
    inputs: &[CopySource<'_>],
    actions: &[FileAction],
    options: &FileOpOptions,
    reuse: Option<&std::sync::Arc<reuse::Reuse>>,
) -> Result<()> {
    let root = open_root(dest_root).map_err(|e| Error::io("opening", dest_root, e))?;
    let times = DirTimes::new(options.source_date_epoch.unwrap_or(0));
    for action in actions {
        let root = root.as_fd();
        match action {
            FileAction::Copy(copy) => copy::copy(dest_root, root, inputs, copy, &times, reuse)?,
            FileAction::Mkdir {
                path,
                mode,
                make_parents,
                owner,
            } => mkdir(root, path, *mode, *make_parents, owner.as_ref(), &times)?,
            FileAction::Mkfile {
                path,
                mode,
                data,
                owner,
            } => mkfile(root, path, *mode, data.as_bytes(), owner.as_ref(), &times)?,
            FileAction::Rm {
                path,
                allow_not_found,
            } => rm(root, path, *allow_not_found, &times)?,
        }
    }
    times
        .apply(root.as_fd())
        .map_err(|e| Error::io("setting directory times in", dest_root, e))
}

/// The real path of the directory holding `at`'s final component.
fn parent_rel(at: &tree::Resolved) -> &Path {
    at.rel.parent().unwrap_or(Path::new(""))
}

fn owner_ids(root: BorrowedFd<'_>, owner: Option<&Owner>) -> Result<(u32, u32)> {
    match owner {
        Some(o) => resolve_owner(root, &o.user, &o.group),
        None => Ok((0, 0)),
    }
}

fn mkdir(
    root: BorrowedFd<'_>,
    path: &str,
    mode: u32,
    parents: bool,
    owner: Option<&Owner>,
    times: &DirTimes,
) -> Result<()> {
    let (uid, gid) = owner_ids(root, owner)?;
    let new = NewDir { uid, gid, mode };
    let walk = Walk {
        follow_final: true,
        filter: None,
        create: parents.then_some(new),
        times: Some(times),
    };
    let names = clean(path);
    let err = |e| Error::io("creating directory", path, e);
    let at = resolve(root, &names, walk).map_err(err)?;
    let Some(name) = &at.name else { return Ok(()) };
    match at.stat().map_err(err)? {
        Some(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => Ok(()),
        Some(_) => Err(err(rustix::io::Errno::EXIST.into())),
        None => {
            times
                .existing(at.parent.as_fd(), parent_rel(&at))
                .map_err(err)?;
            tree::make_dir(at.parent.as_fd(), name, new).map_err(err)?;
            times.new_dir(&at.rel);
            Ok(())
        }
    }
}

fn mkfile(
    root: BorrowedFd<'_>,
    path: &str,
    mode: u32,
    data: &[u8],
    owner: Option<&Owner>,
    times: &DirTimes,
) -> Result<()> {
    let (uid, gid) = owner_ids(root, owner)?;
    let walk = Walk {
        follow_final: true,
        ..Walk::default()
    };
    let err = |e| Error::io("creating file", path, e);
    let at = resolve(root, &clean(path), walk).map_err(err)?;
    let Some(name) = &at.name else {
        return Err(err(rustix::io::Errno::ISDIR.into()));
    };
    times
        .existing(at.parent.as_fd(), parent_rel(&at))
        .map_err(err)?;
    if let Some(st) = at.stat().map_err(err)? {
        if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
            return Err(err(rustix::io::Errno::ISDIR.into()));
        }
        rfs::unlinkat(&at.parent, name, rfs::AtFlags::empty()).map_err(|e| err(e.into()))?;
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(&at.parent, name, flags, Mode::from_raw_mode(0o600))
        .map_err(|e| err(e.into()))?;
    let file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut &file, data).map_err(err)?;
    rfs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| err(e.into()))?;
    rfs::fchmod(&file, Mode::from_raw_mode(mode & 0o7777)).map_err(|e| err(e.into()))?;
    rfs::futimens(&file, &times.created()).map_err(|e| err(e.into()))?;
    Ok(())
}

fn rm(root: BorrowedFd<'_>, path: &str, allow_not_found: bool, times: &DirTimes) -> Result<()> {
    let targets = if has_wildcard(path) {
        tree::expand(root, path, None)?
    } else {
        vec![clean(path)]
    };
    let not_found = || Error::NotFound {
        what: "path",
        path: path.to_string(),
    };
    if targets.is_empty() && !allow_not_found {
        return Err(not_found());
    }
    for names in targets {
        let at = match resolve(root, &names, Walk::default()) {
            Ok(at) => at,
            Err(_) if allow_not_found => continue,
            Err(_) => return Err(not_found()),
        };
        let Some(name) = &at.name else {
            return Err(Error::Invalid("cannot remove the root directory".into()));
        };
        if at
            .stat()
            .map_err(|e| Error::io("removing", display(&names), e))?
            .is_none()
        {
            if allow_not_found {
                continue;
            }
            return Err(not_found());
        }
        times
            .existing(at.parent.as_fd(), parent_rel(&at))
            .map_err(|e| Error::io("removing", display(&names), e))?;
        tree::remove_all(at.parent.as_fd(), name)
            .map_err(|e| Error::io("removing", display(&names), e))?;
    }
    Ok(())
}
