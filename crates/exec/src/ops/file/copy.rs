//! The copy action: sources resolved and expanded in their root, the
//! destination worked out with Docker's rules, and trees copied entry by
//! entry with fd-relative calls (see the parent module's docs for the rules).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbk_graph::op::CopyAction;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Stat};
use rustix::io::Errno;

use super::batch::{self, Dir, DirJob, FileJob, Pending};
use super::chmod::Chmod;
use super::meta::{self, Meta};
use super::reuse::Reuse;
use super::times::DirTimes;
use super::tree::{self, clean, display, resolve, NewDir, Resolved, Walk};
use super::{extract, CopySource};
use crate::pathglob::{has_wildcard, match_path};
use crate::{open_root, resolve_owner, Error, IncludeAll, PathFilter, Result};
use batch::open_file;

/// Where a copy writes: the destination root and the rules shared by all
/// entries of one action.
pub(crate) struct Copier<'a> {
    dest_path: &'a Path,
    dest_root: BorrowedFd<'a>,
    filter: &'a dyn PathFilter,
    /// The source is the local context: owners become 0:0, FIFOs and
    /// devices are skipped.
    context: bool,
    owner: Option<(u32, u32)>,
    chmod: Option<Chmod>,
    exclude: &'a [String],
    /// First copy of each multiply-linked source inode: (dev, ino) → where.
    links: HashMap<(u64, u64), (Arc<Dir>, OsString)>,
    /// Directories written into without a source's metadata.
    times: &'a DirTimes,
    /// Files to copy in parallel and directory metadata to apply after.
    pending: Pending,
}

/// Runs one copy action.
pub(crate) fn copy(
    dest_path: &Path,
    dest_root: BorrowedFd<'_>,
    inputs: &[CopySource<'_>],
    action: &CopyAction,
    times: &DirTimes,
    reuse: Option<&Arc<Reuse>>,
) -> Result<()> {
    let source = inputs.get(action.from as usize).ok_or_else(|| {
        Error::MalformedOp(format!(
            "copy from input {}, which does not exist",
            action.from
        ))
    })?;
    let src_root =
        open_root(source.root).map_err(|e| Error::io("opening copy source", source.root, e))?;
    let owner = match &action.owner {
        Some(o) => Some(resolve_owner(dest_root, &o.user, &o.group)?),
        None => None,
    };
    let chmod = action.mode.as_deref().map(Chmod::parse).transpose()?;
    for pattern in &action.exclude {
        match_path(pattern, "").map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let matches = if action.allow_wildcard && has_wildcard(&action.src) {
        let found = tree::expand(src_root.as_fd(), &action.src, Some(source.filter))?;
        if found.is_empty() && !action.allow_empty_wildcard {
            return Err(not_found(&clean(&action.src)));
        }
        found
    } else {
        vec![clean(&action.src)]
    };
    let mut copier = Copier {
        dest_path,
        dest_root,
        filter: source.filter,
        context: source.reset_owner,
        owner,
        chmod,
        exclude: &action.exclude,
        links: HashMap::new(),
        times,
        pending: Pending::with_reuse(reuse.cloned()),
    };
    let dest = copier.destination(action, matches.len() > 1)?;
    let pivot = parents_pivot(&action.src);
    for names in &matches {
        copier.copy_source(
            src_root.as_fd(),
            names,
            &names[pivot.min(names.len())..],
            &dest,
            action,
        )?;
        // Directory times noted by the next source must be final ones.
        if copier.pending.has_dirs() {
            copier.pending.run()?;
        }
    }
    copier.pending.run()
}

/// The destination of one copy action.
struct Dest {
    names: Vec<OsString>,
    /// Sources go into `names` as a directory, keeping their base names.
    into_dir: bool,
}

impl Copier<'_> {
    fn new_dir(&self) -> NewDir {
        let (uid, gid) = self.owner.unwrap_or((0, 0));
        NewDir {
            uid,
            gid,
            mode: 0o755,
        }
    }

    fn destination(&self, action: &CopyAction, many: bool) -> Result<Dest> {
        let names = clean(&action.dest);
        let follow = Walk {
            follow_final: true,
            ..Walk::default()
        };
        if !action.create_dest_path && names.len() > 1 {
            let parent = &names[..names.len() - 1];
            let is_dir = resolve(self.dest_root, parent, follow)
                .and_then(|r| r.stat())
                .map(|st| st.is_some_and(|st| kind(&st) == FileType::Directory));
            if !matches!(is_dir, Ok(true)) {
                return Err(Error::NotFound {
                    what: "destination directory",
                    path: display(parent),
                });
            }
        }
        let exists_dir = resolve(self.dest_root, &names, follow)
            .and_then(|r| r.stat())
            .is_ok_and(|st| st.is_some_and(|st| kind(&st) == FileType::Directory));
        let trailing =
            action.dest.ends_with('/') || action.dest.ends_with("/.") || names.is_empty();
        Ok(Dest {
            names,
            into_dir: trailing || many || action.parents || exists_dir,
        })
    }

    /// Copies one source path (`kept` is what `--parents` keeps of it).
    fn copy_source(
        &mut self,
        src_root: BorrowedFd<'_>,
        names: &[OsString],
        kept: &[OsString],
        dest: &Dest,
        action: &CopyAction,
    ) -> Result<()> {
        let walk = Walk {
            follow_final: action.follow_symlinks,
            filter: Some(self.filter),
            ..Walk::default()
        };
        let src = resolve(src_root, names, walk).map_err(|e| source_error(names, e))?;
        let st = src
            .stat()
            .map_err(|e| Error::io("reading", display(names), e))?;
        let st = st.ok_or_else(|| not_found(names))?;
        if action.auto_extract && self.try_extract(&src, &st, names, &dest.names)? {
            return Ok(());
        }
        let is_dir = kind(&st) == FileType::Directory;
        // The target path, and the source's path as `--exclude` sees it.
        let (mut target, mut xrel) = (dest.names.clone(), PathBuf::new());
        if action.parents {
            target.extend(kept.iter().cloned());
            xrel = kept.iter().collect();
        } else if dest.into_dir && !(is_dir && action.dir_contents_only) {
            target.extend(names.last().cloned());
            xrel = names.last().into_iter().collect();
        }
        if !xrel.as_os_str().is_empty() && self.excluded(&xrel) {
            return Ok(());
        }
        let create = Walk {
            follow_final: true,
            filter: None,
            create: Some(self.new_dir()),
            times: Some(self.times),
        };
        let dst = resolve(self.dest_root, &target, create)
            .and_then(|dst| self.note_parent(&dst).map(|()| dst))
            .map_err(|e| Error::io("creating", display(&target), e))?;
        if is_dir {
            let contents_only = action.dir_contents_only && !action.parents;
            return self.copy_top_dir(&src, &st, &xrel, dst, &display(&target), contents_only);
        }
        let (Some(src_name), Some(dst_base)) = (src.name.clone(), dst.name.clone()) else {
            return Err(Error::Invalid(format!(
                "cannot replace the root directory {} with a file",
                display(&target)
            )));
        };
        let drel = dst.rel.clone();
        let ddir = Dir::new(dst.parent, false).map_err(|e| Error::io("opening", &drel, e))?;
        let sdir = Arc::new(src.parent);
        self.copy_entry(
            &sdir, &src_name, &st, &src.rel, &xrel, &ddir, &dst_base, &drel,
        )?;
        Ok(())
    }

    /// With `ADD`: unpacks the source when it is a tar archive; returns
    /// whether it was one.
    fn try_extract(
        &mut self,
        src: &Resolved,
        st: &Stat,
        names: &[OsString],
        dest: &[OsString],
    ) -> Result<bool> {
        let (Some(name), FileType::RegularFile) = (&src.name, kind(st)) else {
            return Ok(false);
        };
        let file = open_file(&src.parent, name, st)
            .map_err(|e| Error::io("opening", display(names), e))?;
        match extract::archive_reader(file).map_err(|e| Error::io("reading", display(names), e))? {
            Some(reader) => self.extract(reader, dest).map(|()| true),
            None => Ok(false),
        }
    }

    /// Copies a source directory onto the resolved target `dst` (merging).
    /// As in BuildKit, the target's own metadata comes from the source
    /// directory only when this copy creates it for the directory itself; a
    /// target that receives a directory's *contents* (`contents_only`) is
    /// created like a missing parent (0755, the `--chown` owner or root, the
    /// op's creation time), and a target that already existed keeps its
    /// metadata either way (`COPY . /` must not give `/` the context
    /// directory's mode).
    fn copy_top_dir(
        &mut self,
        src: &Resolved,
        st: &Stat,
        xrel: &Path,
        dst: Resolved,
        dst_name: &str,
        contents_only: bool,
    ) -> Result<()> {
        let src_dir = src
            .open_dir()
            .map_err(|e| Error::io("opening", &src.rel, e))?;
        let src_dir = Arc::new(src_dir);
        let err = |e| Error::io("creating", dst_name, e);
        let parent = Dir::new(dst.parent.try_clone().map_err(err)?, false).map_err(err)?;
        if let Some(name) = &dst.name {
            if self.pending.busy(&parent, name) {
                self.pending.run()?;
            }
        }
        let (dir, created) = self.ensure_dir(&dst).map_err(err)?;
        if !created {
            self.times.existing(dir.as_fd(), &dst.rel).map_err(err)?;
        }
        let dir = Dir::new(dir, created).map_err(err)?;
        self.fill_dir(&src_dir, &src.rel, xrel, &dir, &dst.rel)?;
        if !created {
            return Ok(());
        }
        if contents_only {
            rfs::fchmod(&dir.fd, Mode::from_raw_mode(0o755)).map_err(|e| err(e.into()))?;
            self.times.new_dir(&dst.rel);
            return Ok(());
        }
        let job = DirJob {
            dst: dir.fd.try_clone().map_err(err)?,
            src: src_dir,
            st: *st,
            meta: self.meta(st, true),
            rel: dst.rel.clone(),
        };
        self.pending
            .dir(job, dst.name.as_deref().map(|n| (&*parent, n)));
        self.times.explicit(&dst.rel, mtime(st));
        Ok(())
    }

    /// Copies the children of `src` into `dst` (open directories); returns
    /// how many entries were copied.
    fn fill_dir(
        &mut self,
        src: &Arc<OwnedFd>,
        srel: &Path,
        xrel: &Path,
        dst: &Arc<Dir>,
        drel: &Path,
    ) -> Result<u64> {
        let names = tree::read_names(src).map_err(|e| Error::io("listing", srel, e))?;
        let mut copied = 0;
        for name in names {
            let st = match rfs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io("reading", srel.join(&name), e.into())),
            };
            let (s_rel, x_rel) = (srel.join(&name), xrel.join(&name));
            if self.excluded(&x_rel) {
                continue;
            }
            copied += self.copy_entry(
                src,
                &name,
                &st,
                &s_rel,
                &x_rel,
                dst,
                &name,
                &drel.join(&name),
            )?;
            if self.pending.full() {
                self.pending.dispatch()?;
            }
        }
        Ok(copied)
    }

    /// Copies one entry `name` of `sdir` to `dname` in `ddir`; returns how
    /// many entries were copied (0 when skipped).
    #[allow(clippy::too_many_arguments)]
    fn copy_entry(
        &mut self,
        sdir: &Arc<OwnedFd>,
        name: &OsStr,
        st: &Stat,
        srel: &Path,
        xrel: &Path,
        ddir: &Arc<Dir>,
        dname: &OsStr,
        drel: &Path,
    ) -> Result<u64> {
        let ft = kind(st);
        let hidden = self.filter.is_excluded(&srel.to_string_lossy());
        if !hidden {
            too_long(srel, drel)?;
        }
        let err = |op| move |e: io::Error| Error::io(op, drel, e);
        if self.pending.busy(ddir, dname) {
            self.pending.run()?;
        }
        match ft {
            FileType::Directory => {
                if hidden && !self.filter.may_reinclude_under(&srel.to_string_lossy()) {
                    return Ok(0);
                }
                let at = Self::place(&ddir.fd, dname, drel).map_err(err("opening"))?;
                self.copy_dir_entry(sdir, name, st, srel, xrel, &at, ddir, hidden)
            }
            _ if hidden => Ok(0),
            FileType::RegularFile if st.st_nlink > 1 => {
                self.pending.run()?;
                self.copy_linked(sdir, name, st, ddir, dname)
                    .map_err(err("copying"))
                    .map(|()| 1)
            }
            FileType::RegularFile => {
                self.pending.file(FileJob {
                    sdir: sdir.clone(),
                    name: name.to_os_string(),
                    st: *st,
                    ddir: ddir.clone(),
                    dname: dname.to_os_string(),
                    meta: self.meta(st, false),
                    drel: drel.to_path_buf(),
                });
                Ok(1)
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(sdir, name, Vec::new())
                    .map_err(|e| err("reading link")(e.into()))?;
                let ddir = ddir.fd.as_fd();
                replace(ddir, dname).map_err(err("replacing"))?;
                rfs::symlinkat(target.as_c_str(), ddir, dname)
                    .map_err(|e| err("creating link")(e.into()))?;
                meta::apply_at(ddir, dname, st, self.meta(st, false), true)
                    .map_err(err("setting metadata"))?;
                Ok(1)
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice if !self.context => {
                let ddir = ddir.fd.as_fd();
                replace(ddir, dname).map_err(err("replacing"))?;
                let mode = Mode::from_raw_mode(0o600);
                rfs::mknodat(ddir, dname, ft, mode, st.st_rdev as _)
                    .map_err(|e| err("creating node")(e.into()))?;
                meta::apply_at(ddir, dname, st, self.meta(st, false), false)
                    .map_err(err("setting metadata"))?;
                Ok(1)
            }
            // Sockets never; FIFOs and devices of the local context neither.
            _ => Ok(0),
        }
    }

    /// Copies directory `name` of `sdir` onto `at` (merging). A directory
    /// the filter hides is only passed through for re-included children, and
    /// removed again when none came.
    #[allow(clippy::too_many_arguments)]
    fn copy_dir_entry(
        &mut self,
        sdir: &OwnedFd,
        name: &OsStr,
        st: &Stat,
        srel: &Path,
        xrel: &Path,
        at: &Resolved,
        parent: &Dir,
        hidden: bool,
    ) -> Result<u64> {
        let err = |op| move |e: io::Error| Error::io(op, &at.rel, e);
        let src = rfs::openat(sdir, name, tree::DIR_FLAGS, Mode::empty())
            .map_err(|e| err("opening source")(e.into()))?;
        let src = Arc::new(src);
        let (dir, created) = self.ensure_dir(at).map_err(err("creating directory"))?;
        let dir = Dir::new(dir, created).map_err(err("opening"))?;
        let n = self.fill_dir(&src, srel, xrel, &dir, &at.rel)?;
        if let (true, 0, true, Some(dname)) = (hidden, n, created, &at.name) {
            rfs::unlinkat(&at.parent, dname, AtFlags::REMOVEDIR)
                .map_err(|e| err("removing")(e.into()))?;
            return Ok(0);
        }
        let job = DirJob {
            dst: dir.fd.try_clone().map_err(err("opening"))?,
            src,
            st: *st,
            meta: self.meta(st, true),
            rel: at.rel.clone(),
        };
        self.pending
            .dir(job, at.name.as_deref().map(|n| (parent, n)));
        self.times.explicit(&at.rel, mtime(st));
        Ok(n + 1)
    }

    /// Copies a file with more than one link at once (the queue is empty),
    /// as a hardlink to its first copy when there is one.
    fn copy_linked(
        &mut self,
        sdir: &OwnedFd,
        name: &OsStr,
        st: &Stat,
        ddir: &Arc<Dir>,
        dname: &OsStr,
    ) -> io::Result<()> {
        let src = open_file(sdir, name, st)?;
        let key = (st.st_dev, st.st_ino);
        let to = ddir.fd.as_fd();
        if let Some((ldir, lname)) = self.links.get(&key) {
            replace(to, dname)?;
            if rfs::linkat(&ldir.fd, lname, to, dname, AtFlags::empty()).is_ok() {
                return Ok(());
            }
        }
        replace(to, dname)?;
        let out = batch::create_file(&ddir.fd, dname)?;
        batch::copy_data(&src, &out, st.st_size as u64)?;
        meta::apply_fd(out.as_fd(), src.as_fd(), st, self.meta(st, false))?;
        self.links.insert(key, (ddir.clone(), dname.to_os_string()));
        Ok(())
    }

    /// An already-existing directory (merged into, following a symlink to a
    /// directory inside the root), or a new one replacing what is there.
    fn ensure_dir(&self, at: &Resolved) -> io::Result<(OwnedFd, bool)> {
        let Some(name) = &at.name else {
            return Ok((at.parent.try_clone()?, false));
        };
        match at.stat()?.map(|st| kind(&st)) {
            Some(FileType::Directory) => return Ok((at.open_dir()?, false)),
            Some(FileType::Symlink) => {
                let follow = Walk {
                    follow_final: true,
                    ..Walk::default()
                };
                let names: Vec<OsString> = at.rel.iter().map(OsStr::to_os_string).collect();
                if let Ok(dir) = resolve(self.dest_root, &names, follow).and_then(|r| r.open_dir())
                {
                    return Ok((dir, false));
                }
                tree::remove_all(at.parent.as_fd(), name)?;
            }
            Some(_) => tree::remove_all(at.parent.as_fd(), name)?,
            None => {}
        }
        let new = NewDir {
            mode: 0o700,
            ..self.new_dir()
        };
        Ok((tree::make_dir(at.parent.as_fd(), name, new)?, true))
    }

    /// Notes the directory holding `at`, which the copy is about to write
    /// into (see `times`).
    fn note_parent(&self, at: &Resolved) -> io::Result<()> {
        if at.name.is_none() {
            return Ok(());
        }
        let rel = at.rel.parent().unwrap_or(Path::new(""));
        self.times.existing(at.parent.as_fd(), rel)
    }

    fn place(ddir: &OwnedFd, dname: &OsStr, drel: &Path) -> io::Result<Resolved> {
        Ok(Resolved {
            parent: ddir.try_clone()?,
            name: Some(dname.to_os_string()),
            rel: drel.to_path_buf(),
        })
    }

    fn meta(&self, st: &Stat, is_dir: bool) -> Meta {
        let (uid, gid) = match self.owner {
            Some(ids) => ids,
            None if self.context => (0, 0),
            None => (st.st_uid, st.st_gid),
        };
        let mode = match (&self.chmod, kind(st)) {
            (Some(chmod), FileType::RegularFile | FileType::Directory) => {
                chmod.apply(st.st_mode, is_dir)
            }
            _ => st.st_mode & 0o7777,
        };
        Meta { uid, gid, mode }
    }

    /// Whether an `--exclude` pattern matches `rel` (relative to the source).
    fn excluded(&self, rel: &Path) -> bool {
        let rel = rel.to_string_lossy();
        self.exclude
            .iter()
            .any(|p| match_path(p, &rel).unwrap_or(false))
    }

    /// Unpacks an archive into the directory `dest` (see `extract`).
    fn extract(&mut self, reader: Box<dyn io::Read>, dest: &[OsString]) -> Result<()> {
        self.pending.run()?;
        let temp = extract::unpack_to_temp(self.dest_path, self.dest_root, reader)?;
        let result = (|| {
            let src_root =
                open_root(&temp.path).map_err(|e| Error::io("opening", &temp.path, e))?;
            let mut copier = Copier {
                filter: &IncludeAll,
                context: false,
                chmod: None,
                exclude: &[],
                links: HashMap::new(),
                pending: Pending::default(),
                ..*self
            };
            let create = Walk {
                follow_final: true,
                filter: None,
                create: Some(self.new_dir()),
                times: Some(self.times),
            };
            let at = resolve(self.dest_root, dest, create)
                .and_then(|at| self.note_parent(&at).map(|()| at))
                .map_err(|e| Error::io("creating", display(dest), e))?;
            let (dir, created) = copier
                .ensure_dir(&at)
                .map_err(|e| Error::io("creating", display(dest), e))?;
            if created {
                let mode = Mode::from_raw_mode(0o755);
                rfs::fchmod(&dir, mode)
                    .map_err(|e| Error::io("creating", display(dest), e.into()))?;
                self.times.new_dir(&at.rel);
            } else {
                self.times
                    .existing(dir.as_fd(), &at.rel)
                    .map_err(|e| Error::io("creating", display(dest), e))?;
            }
            let dir = Dir::new(dir, created).map_err(|e| Error::io("opening", &at.rel, e))?;
            copier.fill_dir(
                &Arc::new(src_root),
                Path::new(""),
                Path::new(""),
                &dir,
                &at.rel,
            )?;
            copier.pending.run()
        })();
        temp.remove()?;
        result
    }
}

/// A source's mtime as (seconds, nanoseconds).
#[allow(clippy::unnecessary_cast)]
fn mtime(st: &Stat) -> (i64, i64) {
    (st.st_mtime as i64, st.st_mtime_nsec as i64)
}

/// Refuses a destination path longer than a layer may hold
/// ([`rbk_store::MAX_PATH_LEN`]): written, it would make a layer that
/// `save`, `load` and `--output type=tar` cannot carry (issue 20, defect 8).
fn too_long(srel: &Path, drel: &Path) -> Result<()> {
    let len = drel.as_os_str().len() + 1;
    if len <= rbk_store::MAX_PATH_LEN {
        return Ok(());
    }
    let shown = |p: &Path| {
        let s = p.to_string_lossy();
        match s.char_indices().nth(160) {
            None => s.into_owned(),
            Some(_) => {
                let head: String = s.chars().take(80).collect();
                let tail: Vec<char> = s.chars().rev().take(80).collect();
                format!("{head}…{}", tail.into_iter().rev().collect::<String>())
            }
        }
    };
    Err(Error::Invalid(format!(
        "cannot copy {}: its destination {} is {len} bytes long, more than the {} bytes \
         rbk accepts for a path in a layer (the layer could not be saved, loaded or \
         exported; docs/security.md C15)",
        shown(srel),
        shown(drel),
        rbk_store::MAX_PATH_LEN
    )))
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Removes whatever is at `name` so a new entry can take its place (an
/// existing file is unlinked, never written through, so its other hardlinks
/// keep their contents).
fn replace(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    tree::remove_all(dir, name)
}

/// How many leading components of the source `COPY --parents` drops: those
/// before a `/./` pivot (BuildKit's syntax), or none.
fn parents_pivot(src: &str) -> usize {
    src.rfind("/./").map_or(0, |i| clean(&src[..i]).len())
}

fn not_found(names: &[OsString]) -> Error {
    Error::NotFound {
        what: "source",
        path: display(names),
    }
}

fn source_error(names: &[OsString], e: io::Error) -> Error {
    match Errno::from_io_error(&e) {
        Some(Errno::NOENT | Errno::NOTDIR) => not_found(names),
        _ => Error::io("resolving source", display(names), e),
    }
}
