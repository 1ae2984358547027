//! Paths resolved inside a root directory fd, one component at a time.
//!
//! The kernel is never asked to follow a symlink: each component is looked up
//! with `AT_SYMLINK_NOFOLLOW`, a symlink is read with `readlinkat` and its
//! target is walked again from the root (absolute) or the current directory
//! (relative), with `..` never climbing above the root. This keeps symlink
//! swaps from redirecting us to the host, and lets the walk check every real
//! path it visits against the source's filter.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Stat, Uid};
use rustix::io::Errno;

use super::times::DirTimes;
use crate::pathglob::{has_wildcard, match_component};
use crate::{Error, PathFilter, Result};

/// How many symlinks one resolution may follow (Linux's own limit).
const MAX_LINKS: u32 = 40;

/// Flags for opening a directory found during a walk.
pub(crate) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Lexically cleans a path as Go's `path.Clean("/" + p)` does (what BuildKit
/// applies to COPY sources and destinations): empty and `.` components are
/// dropped and `..` removes the previous component, never going above `/`.
pub(crate) fn clean(path: &str) -> Vec<OsString> {
    let mut names: Vec<OsString> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                names.pop();
            }
            name => names.push(name.into()),
        }
    }
    names
}

/// The result of a walk: the directory holding the final component, and its
/// name (`None` when the path is the root itself).
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The directory that holds `name`.
    pub parent: OwnedFd,
    /// The final component; `None` for the root.
    pub name: Option<OsString>,
    /// The real path inside the root, without symlinks (`""` for the root).
    pub rel: PathBuf,
}

impl Resolved {
    /// `lstat` of the final component (`fstat` of the root); `None` when missing.
    pub(crate) fn stat(&self) -> io::Result<Option<Stat>> {
        let result = match &self.name {
            Some(name) => rfs::statat(&self.parent, name, AtFlags::SYMLINK_NOFOLLOW),
            None => rfs::fstat(&self.parent),
        };
        match result {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the final component as a directory (the root when `name` is `None`).
    pub(crate) fn open_dir(&self) -> io::Result<OwnedFd> {
        match &self.name {
            Some(name) => Ok(rfs::openat(&self.parent, name, DIR_FLAGS, Mode::empty())?),
            None => Ok(self.parent.try_clone()?),
        }
    }
}

/// Owner and mode of directories a walk creates for missing components.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewDir {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// How [`resolve`] treats the path.
#[derive(Clone, Copy, Default)]
pub(crate) struct Walk<'a> {
    /// Follow a symlink in the final component too.
    pub follow_final: bool,
    /// Paths this filter excludes do not exist.
    pub filter: Option<&'a dyn PathFilter>,
    /// Create missing intermediate directories like this.
    pub create: Option<NewDir>,
    /// Where directories created or written into by `create` are noted.
    pub times: Option<&'a DirTimes>,
}

/// Resolves `names` (from [`clean`]) inside `root`; see the module docs.
pub(crate) fn resolve(
    root: BorrowedFd<'_>,
    names: &[OsString],
    walk: Walk<'_>,
) -> io::Result<Resolved> {
    let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
    let mut todo: VecDeque<OsString> = names.iter().cloned().collect();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == "." || name.is_empty() {
            continue;
        }
        if name == ".." {
            stack.pop();
            continue;
        }
        let last = todo.is_empty();
        let dir = stack.last().map_or(root, |(fd, _)| fd.as_fd());
        let rel = rel_path(&stack).join(&name);
        let st = match rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(st),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(e.into()),
        };
        if st.is_some() && !visible(walk.filter, &rel, last) {
            return Err(Errno::NOENT.into());
        }
        let kind = st.map(|st| FileType::from_raw_mode(st.st_mode));
        if kind == Some(FileType::Symlink) && (!last || walk.follow_final) {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP.into());
            }
            let target = rfs::readlinkat(dir, &name, Vec::new())?.into_bytes();
            if target.starts_with(b"/") {
                stack.clear();
            }
            for part in target.split(|b| *b == b'/').rev() {
                todo.push_front(OsString::from_vec(part.to_vec()));
            }
            continue;
        }
        if last {
            return Ok(Resolved {
                parent: dir.try_clone_to_owned()?,
                name: Some(name),
                rel,
            });
        }
        let fd = match (kind, walk.create) {
            (Some(FileType::Directory), _) => rfs::openat(dir, &name, DIR_FLAGS, Mode::empty())?,
            (None, Some(new)) => {
                if let Some(times) = walk.times {
                    times.existing(dir, &rel_path(&stack))?;
                }
                let fd = make_dir(dir, &name, new)?;
                if let Some(times) = walk.times {
                    times.new_dir(&rel);
                }
                fd
            }
            (None, None) => return Err(Errno::NOENT.into()),
            (Some(_), _) => return Err(Errno::NOTDIR.into()),
        };
        stack.push((fd, name));
    }
    // The walk ended on a directory (the root, or a path ending in `..`).
    let rel = rel_path(&stack);
    match stack.pop() {
        Some((_, name)) => {
            let parent = stack.last().map_or(root, |(fd, _)| fd.as_fd());
            Ok(Resolved {
                parent: parent.try_clone_to_owned()?,
                name: Some(name),
                rel,
            })
        }
        None => Ok(Resolved {
            parent: root.try_clone_to_owned()?,
            name: None,
            rel,
        }),
    }
}

fn rel_path(stack: &[(OwnedFd, OsString)]) -> PathBuf {
    stack.iter().map(|(_, name)| name.as_os_str()).collect()
}

/// Whether the filter lets the walk see `rel` (as the target, or as a
/// directory to pass through when something beneath may be re-included).
pub(crate) fn visible(filter: Option<&dyn PathFilter>, rel: &Path, last: bool) -> bool {
    let Some(filter) = filter else { return true };
    let rel = rel.to_string_lossy();
    !filter.is_excluded(&rel) || (!last && filter.may_reinclude_under(&rel))
}

/// Creates directory `name` in `dir` with `new`'s mode and owner and opens it.
pub(crate) fn make_dir(dir: BorrowedFd<'_>, name: &OsStr, new: NewDir) -> io::Result<OwnedFd> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
    let fd = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    rfs::fchown(
        &fd,
        Some(Uid::from_raw(new.uid)),
        Some(Gid::from_raw(new.gid)),
    )?;
    // Explicitly, so the process umask plays no part.
    rfs::fchmod(&fd, Mode::from_raw_mode(new.mode & 0o7777))?;
    Ok(fd)
}

/// Expands the wildcards of `pattern` inside `root`, one component at a time
/// (Go `path.Match` per component, as BuildKit does). Returns the matching
/// paths, cleaned and sorted, as written (symlinks in them unresolved); each
/// one exists and is visible through `filter`.
pub(crate) fn expand(
    root: BorrowedFd<'_>,
    pattern: &str,
    filter: Option<&dyn PathFilter>,
) -> Result<Vec<Vec<OsString>>> {
    let mut found: Vec<Vec<OsString>> = vec![Vec::new()];
    let components = clean(pattern);
    let last = components.len().saturating_sub(1);
    for (i, component) in components.into_iter().enumerate() {
        let text = component.to_string_lossy().into_owned();
        if text == "**" {
            // Any number of directories, none included (Go's
            // patternmatcher); when last, everything below as well.
            let mut next = Vec::new();
            for names in &found {
                next.extend(descendants(root, names, filter, i != last)?);
            }
            if i == last {
                next.sort();
                next.dedup();
                let kept: std::collections::BTreeSet<Vec<OsString>> =
                    next.iter().cloned().collect();
                // A directory's copy already holds what is below it.
                next.retain(|n| !(1..n.len()).any(|k| kept.contains(&n[..k])));
            }
            found = next;
            continue;
        }
        if !has_wildcard(&text) {
            for names in &mut found {
                names.push(component.clone());
            }
            continue;
        }
        let mut next = Vec::new();
        for names in &found {
            for child in list_dir(root, names, filter)? {
                let matched = match_component(&text, &child.to_string_lossy())
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                if matched {
                    let mut path = names.clone();
                    path.push(child);
                    next.push(path);
                }
            }
        }
        found = next;
    }
    let walk = Walk {
        filter,
        ..Walk::default()
    };
    found.retain(|names| {
        matches!(
            resolve(root, names, walk).and_then(|r| r.stat()),
            Ok(Some(_))
        )
    });
    found.sort();
    Ok(found)
}

/// `start` and every directory below it (and every file too unless
/// `dirs_only`), without following symlinks. Iterative: the depth is the
/// tree's, not the stack's.
fn descendants(
    root: BorrowedFd<'_>,
    start: &[OsString],
    filter: Option<&dyn PathFilter>,
    dirs_only: bool,
) -> Result<Vec<Vec<OsString>>> {
    let mut out = vec![start.to_vec()];
    let mut pending = vec![start.to_vec()];
    let walk = Walk {
        filter,
        ..Walk::default()
    };
    while let Some(dir) = pending.pop() {
        for child in list_dir(root, &dir, filter)? {
            let mut path = dir.clone();
            path.push(child);
            let is_dir = matches!(
                resolve(root, &path, walk).and_then(|r| r.stat()),
                Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::Directory
            );
            if is_dir {
                pending.push(path.clone());
            }
            if is_dir || !dirs_only {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// The names in directory `names` (following symlinks inside the root);
/// empty when it is missing or not a directory.
fn list_dir(
    root: BorrowedFd<'_>,
    names: &[OsString],
    filter: Option<&dyn PathFilter>,
) -> Result<Vec<OsString>> {
    let walk = Walk {
        follow_final: true,
        filter,
        ..Walk::default()
    };
    let dir = match resolve(root, names, walk).and_then(|r| r.open_dir()) {
        Ok(dir) => dir,
        Err(_) => return Ok(Vec::new()),
    };
    read_names(&dir).map_err(|e| Error::io("listing", display(names), e))
}

/// The entries of an open directory except `.` and `..`, sorted.
pub(crate) fn read_names(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    names.sort();
    Ok(names)
}

/// Removes `name` in `dir` and, for a directory, everything beneath it,
/// without following any symlink.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(rfs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let sub = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    for child in read_names(&sub)? {
        remove_all(sub.as_fd(), &child)?;
    }
    Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// `names` as an absolute path, for messages.
pub(crate) fn display(names: &[OsString]) -> String {
    let mut s = String::new();
    for name in names {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(name.as_bytes()));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}
