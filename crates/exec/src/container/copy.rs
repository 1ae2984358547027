//! `rbk cp`: copying between a container's file system and the host, with
//! docker's rules, as a tar stream from one side to the other.
//!
//! # Safety
//!
//! A container's file system is untrusted, and a running one changes while
//! it is copied (docs/security.md rule 1, CVE-2018-15664). So every path is
//! resolved against a directory fd, with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` ([`crate::inroot`]): a symlink in the container,
//! absolute or full of `..`, resolves inside the container's root. Where
//! docker follows the last symlink (the destination, and `-L` sources) rbk
//! reads the link and resolves its target the same way, at most 40 times.
//! The tree is then walked fd by fd (`O_NOFOLLOW`, files opened
//! `O_NONBLOCK` and checked with `fstat`, so a path swapped for a symlink or
//! a FIFO mid-copy fails rather than escapes or blocks), and written with
//! the store's confined extractor ([`rbk_store::unpack_into`]), rooted at
//! the destination directory. Nothing is written into procfs or sysfs, and
//! the walk does not descend into them.
//!
//! # Where a container's files are
//!
//! A running container is reached through `/proc/PID/root` of its init, so
//! rbk sees (and writes) what its processes see, volumes included. A
//! stopped one has its layers and upper dir mounted under the store's
//! `tmp/` (read-write for a copy into it), while holding the container's
//! root lock ([`root_lock`]) that `prepare_container` takes too, so it
//! cannot start with a second mount on its upper dir.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rbk_store::{
    overlay_mount, unpack_into, ContainerRecord, DevicePolicy, FileLock, Layer, Store,
    UnpackOptions, Whiteouts,
};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::inroot::open_in_root;
use crate::ops::exec::Runc;
use crate::{Error, MountGuard, Result};

/// Symlinks followed for one path (Linux's own limit).
const MAX_HOPS: u32 = 40;
/// How long a copy waits for a container that is starting.
const START_WAIT: Duration = Duration::from_secs(30);

/// The lock on a container's root: held by whoever mounted it (its run, or
/// a copy into it while it is stopped).
pub(crate) fn root_lock(store: &Store, id: &str) -> Result<FileLock> {
    Ok(FileLock::exclusive(
        &store.container_dir(id).join("rootfs.lock"),
    )?)
}

/// A file system `rbk cp` reads or writes: a directory that paths resolve
/// inside, kept available as long as this lives.
#[derive(Debug)]
pub struct CopyRoot {
    fd: OwnedFd,
    _mount: Option<(MountGuard, tempfile::TempDir)>,
    _lock: Option<FileLock>,
}

impl CopyRoot {
    /// The host's file system: paths resolve as they always do (`/` is the
    /// root), so give them absolute.
    pub fn host() -> Result<CopyRoot> {
        let fd = crate::open_root(Path::new("/")).map_err(|e| Error::io("opening", "/", e))?;
        Ok(CopyRoot {
            fd,
            _mount: None,
            _lock: None,
        })
    }

    /// Container `record`'s file system over the image `layers`: its
    /// running root, or (stopped) its layers and upper dir mounted,
    /// writable when `write`.
    pub fn container(
        store: &Store,
        runc: &Runc,
        layers: &[Layer],
        record: &ContainerRecord,
        write: bool,
    ) -> Result<CopyRoot> {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(pid) = runc.running_pid(&record.id)? {
                let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
                let fd = crate::open_root(&proc_root)
                    .map_err(|e| Error::io("opening the root of", &proc_root, e))?;
                return Ok(CopyRoot {
                    fd,
                    _mount: None,
                    _lock: None,
                });
            }
            let path = store.container_dir(&record.id).join("rootfs.lock");
            if let Some(lock) = FileLock::try_exclusive(&path)? {
                return Self::mounted(store, layers, record, write, lock);
            }
            // Its root is mounted by a run that is starting: wait for its
            // process.
            if Instant::now() >= deadline {
                return Err(Error::Invalid(format!(
                    "container {} is starting and did not run within {}s",
                    record.name,
                    START_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mounted(
        store: &Store,
        layers: &[Layer],
        record: &ContainerRecord,
        write: bool,
        lock: FileLock,
    ) -> Result<CopyRoot> {
        let dir = store.container_dir(&record.id);
        let mut lowers = super::container_lowers(store, layers)?;
        let upper = dir.join("upper");
        let m = if write {
            overlay_mount(&lowers, Some((&upper, &dir.join("work"))))
        } else {
            lowers.push(upper);
            overlay_mount(&lowers, None)
        };
        let (guard, target) = super::mount_in_tmp(store, &m, "cp-")?;
        let fd =
            crate::open_root(target.path()).map_err(|e| Error::io("opening", target.path(), e))?;
        Ok(CopyRoot {
            fd,
            // Unmounted before the directory is removed (fields drop in order).
            _mount: Some((guard, target)),
            _lock: Some(lock),
        })
    }

    /// The root directory.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A path resolved inside a [`CopyRoot`]: entry `name` of directory
/// `parent` (`.` for a root), with what is there (never followed).
#[derive(Debug)]
pub struct Located {
    parent: OwnedFd,
    name: OsString,
    kind: Option<FileType>,
    /// The last component of the path as written (`.` for a root or `x/.`):
    /// the name a copy gives it.
    label: OsString,
    /// The path as resolved, for messages.
    path: String,
}

impl Located {
    /// Whether something is there.
    pub fn exists(&self) -> bool {
        self.kind.is_some()
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Some(FileType::Directory)
    }

    /// The directory itself, opened for reading (it must be one).
    fn open_dir(&self) -> Result<OwnedFd> {
        rfs::openat(
            &self.parent,
            self.name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("opening", &self.path, e.into()))
    }
}

/// Resolves `path` inside `root`: every symlink on the way resolves inside
/// it, and the last one too when `follow` (or when the path ends in `/` or
/// `/.`, which names what the link points to).
pub fn locate(root: BorrowedFd<'_>, path: &str, follow: bool) -> Result<Located> {
    let label: OsString = match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !matches!(base, "" | "." | "..") => base.into(),
        _ => ".".into(),
    };
    let mut path = path.to_string();
    let mut hops = 0;
    loop {
        let trimmed = path.trim_end_matches('/');
        let (dir, base) = match trimmed.rsplit_once('/') {
            Some((dir, base)) => (if dir.is_empty() { "/" } else { dir }, base),
            None => ("/", trimmed),
        };
        // `x/` names what `x` points to.
        let follow = follow || trimmed.len() != path.len();
        if matches!(base, "" | "." | "..") {
            // A directory named by the path itself (`/`, `x/.`, `x/..`).
            let parent = open_in_root(root, Path::new(&path), OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| not_found_or(e, &path))?;
            return Ok(Located {
                parent,
                name: ".".into(),
                kind: Some(FileType::Directory),
                label,
                path,
            });
        }
        let parent = open_in_root(root, Path::new(dir), OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| not_found_or(e, &path))?;
        let kind = match rfs::statat(&parent, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => return Err(Error::io("inspecting", &path, e.into())),
        };
        if kind == Some(FileType::Symlink) && follow {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Error::io(
                    "resolving",
                    &path,
                    io::Error::other("too many symlinks"),
                ));
            }
            let target = rfs::readlinkat(&parent, base, Vec::new())
                .map_err(|e| Error::io("reading link", &path, e.into()))?;
            let target = String::from_utf8_lossy(target.as_bytes()).into_owned();
            path = match target.starts_with('/') {
                true => target,
                false => format!("{}/{target}", dir.trim_end_matches('/')),
            };
            continue;
        }
        return Ok(Located {
            parent,
            name: base.into(),
            kind,
            label,
            path,
        });
    }
}

fn not_found_or(e: io::Error, path: &str) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            what: "path",
            path: path.to_string(),
        },
        _ => Error::io("resolving", path, e),
    }
}

/// How a copy treats ownership and what it writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyOptions {
    /// Keep the source's uid/gid (`-a`); otherwise files belong to the
    /// copying user (root), as docker does.
    pub archive: bool,
    /// The destination is the host: device nodes are skipped and, unless
    /// `archive`, setuid/setgid bits cleared (docs/security.md).
    pub to_host: bool,
}

/// What a copy wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Copied {
    /// Bytes of file content.
    pub bytes: u64,
}

/// The name a source has in its tar: its own name, or `.` (its contents)
/// for a path ending in `/.` or naming a root.
fn source_name(src: &Located, contents: bool) -> OsString {
    if contents || src.label == "." {
        return ".".into();
    }
    src.label.clone()
}

/// Copies `src` (from `src_path` as the user wrote it, for the `/.`
/// rule) to `dest_path` inside `dest_root`, with docker's rules:
/// into an existing directory under its own name (its contents for
/// `DIR/.`), over an existing file, or as a new entry named by the last
/// component of `dest_path` (whose parent must exist).
pub fn copy(
    src: Located,
    src_path: &str,
    dest_root: BorrowedFd<'_>,
    dest_path: &str,
    options: CopyOptions,
) -> Result<Copied> {
    let contents = src_path.ends_with("/.") || src_path == ".";
    check_source(&src, src_path)?;
    let dest = locate(dest_root, dest_path, true)?;
    let dir_wanted = dest_path.ends_with('/');
    let (into, top) = match (dest.kind, src.is_dir()) {
        (Some(FileType::Directory), _) => (dest.open_dir()?, source_name(&src, contents)),
        (Some(_), true) => {
            return Err(Error::Invalid(format!(
                "cannot copy a directory to a file: {dest_path} is not a directory"
            )))
        }
        (Some(_), false) | (None, _) if dir_wanted && !src.is_dir() => {
            return Err(Error::Invalid(format!(
                "destination directory {dest_path} does not exist (or is not a directory)"
            )))
        }
        (_, _) => (reopen_dir(&dest.parent, &dest.path)?, dest.name.clone()),
    };
    transfer(src, &top, into, options)
}

/// Copies the tar `reader` into the directory `dest_path` inside `root`
/// (`rbk cp - CONTAINER:DIR`).
pub fn copy_tar_in(
    reader: impl Read,
    root: BorrowedFd<'_>,
    dest_path: &str,
    options: CopyOptions,
) -> Result<Copied> {
    let dest = locate(root, dest_path, true)?;
    if !dest.is_dir() {
        return Err(Error::Invalid(format!(
            "destination {dest_path} must be a directory"
        )));
    }
    let into = dest.open_dir()?;
    extract(reader, into, options)
}

/// Writes `src` as a tar, its top entry named `top` (`.`: only its
/// contents), to `out` (`rbk cp CONTAINER:PATH -`).
pub fn write_source_tar(src: &Located, src_path: &str, out: impl Write) -> Result<Copied> {
    check_source(src, src_path)?;
    let contents = src_path.ends_with("/.") || src_path == ".";
    let top = source_name(src, contents);
    TarOut::new(out).run(src, Path::new(&top))
}

fn check_source(src: &Located, src_path: &str) -> Result<()> {
    if !src.exists() {
        return Err(Error::NotFound {
            what: "path",
            path: src_path.to_string(),
        });
    }
    if src_path.ends_with('/') && !src.is_dir() {
        return Err(Error::Invalid(format!("{src_path}: not a directory")));
    }
    Ok(())
}

/// The directory `parent` of a located path, opened for reading (an
/// `O_PATH` fd cannot be written into by name through the extractor).
fn reopen_dir(parent: &OwnedFd, path: &str) -> Result<OwnedFd> {
    rfs::openat(
        parent,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening the directory of", path, e.into()))
}

/// Streams `src` as a tar (top entry `top`) through a pipe into `into`.
fn transfer(src: Located, top: &OsStr, into: OwnedFd, options: CopyOptions) -> Result<Copied> {
    let (reader, writer) = io::pipe().map_err(|e| Error::io("copying", &src.path, e))?;
    let top = PathBuf::from(top);
    let producer =
        std::thread::spawn(move || TarOut::new(io::BufWriter::new(writer)).run(&src, &top));
    let extracted = extract(reader, into, options);
    let produced = producer
        .join()
        .map_err(|_| Error::Invalid("the copying thread panicked".into()))?;
    // When the writing side failed first, the reading side's broken pipe
    // is only its consequence (and would pass for a closed stdout).
    match (produced, extracted) {
        (Ok(copied), Ok(_)) => Ok(copied),
        (Err(e), Err(written)) if is_broken_pipe(&e) => Err(written),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}

fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

fn extract(reader: impl Read, into: OwnedFd, options: CopyOptions) -> Result<Copied> {
    refuse_pseudo_fs(into.as_fd(), "the destination")?;
    let mut unpack = UnpackOptions::default()
        .whiteouts(Whiteouts::Keep)
        .chown(options.archive);
    if options.to_host {
        unpack = unpack
            .devices(DevicePolicy::Skip)
            .strip_setid(!options.archive);
    }
    let stats = unpack_into(reader, into, &unpack)?;
    Ok(Copied { bytes: stats.bytes })
}

/// Whether `fd` is on procfs, sysfs or cgroupfs, which a copy neither
/// walks nor writes.
fn is_pseudo_fs(fd: BorrowedFd<'_>) -> bool {
    const PROC: i64 = 0x9fa0;
    const SYSFS: i64 = 0x6265_6572;
    const CGROUP: i64 = 0x0027_e0eb;
    const CGROUP2: i64 = 0x6367_7270;
    match rfs::fstatfs(fd) {
        #[allow(clippy::unnecessary_cast)] // f_type is not i64 on every target
        Ok(st) => matches!(st.f_type as i64, PROC | SYSFS | CGROUP | CGROUP2),
        Err(_) => false,
    }
}

fn refuse_pseudo_fs(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    if is_pseudo_fs(fd) {
        return Err(Error::Invalid(format!(
            "{what} is on procfs, sysfs or cgroupfs: rbk cp does not write there"
        )));
    }
    Ok(())
}

/// Writes a tree as a tar, fd by fd.
struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    /// First archive name of each multiply-linked inode.
    links: HashMap<(u64, u64), PathBuf>,
    copied: Copied,
}

/// A directory being walked: its fd, its archive name, the names left.
struct Pending {
    fd: OwnedFd,
    name: PathBuf,
    left: Vec<OsString>,
}

impl<W: Write> TarOut<W> {
    fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        TarOut {
            builder,
            links: HashMap::new(),
            copied: Copied::default(),
        }
    }

    /// Writes `src` named `top`, and everything below it, iteratively.
    fn run(mut self, src: &Located, top: &Path) -> Result<Copied> {
        let mut stack: Vec<Pending> = Vec::new();
        if let Some(dir) = self.entry(src.parent.as_fd(), &src.name, top, &src.path)? {
            stack.push(dir);
        }
        while let Some(pending) = stack.last_mut() {
            let Some(name) = pending.left.pop() else {
                stack.pop();
                continue;
            };
            let archive = pending.name.join(&name);
            let fd = pending
                .fd
                .try_clone()
                .map_err(|e| Error::io("walking", &archive, e))?;
            if let Some(dir) =
                self.entry(fd.as_fd(), &name, &archive, &archive.to_string_lossy())?
            {
                stack.push(dir);
            }
        }
        self.builder
            .into_inner()
            .and_then(|mut out| out.flush())
            .map_err(|e| Error::io("writing the tar of", top, e))?;
        Ok(self.copied)
    }

    /// Writes entry `name` of `parent` as `archive`; a directory to walk
    /// comes back.
    fn entry(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        archive: &Path,
        shown: &str,
    ) -> Result<Option<Pending>> {
        let io_err = |op: &'static str| move |e: rustix::io::Errno| Error::io(op, shown, e.into());
        let st =
            rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io_err("inspecting"))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        let write_err = |e| Error::io("writing the tar entry", shown, e);
        match kind {
            FileType::Directory => {
                let fd = rfs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_err("opening"))?;
                let mut left = Vec::new();
                if !is_pseudo_fs(fd.as_fd()) {
                    for entry in rfs::Dir::read_from(&fd).map_err(io_err("listing"))? {
                        let entry = entry.map_err(io_err("listing"))?;
                        let n = entry.file_name().to_bytes();
                        if n != b"." && n != b".." {
                            left.push(OsStr::from_bytes(n).to_os_string());
                        }
                    }
                }
                // Popped from the end: reverse byte order gives byte order.
                left.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
                if archive != Path::new(".") {
                    header.set_entry_type(tar::EntryType::Directory);
                    let mut dir_name = archive.as_os_str().to_os_string();
                    dir_name.push("/");
                    self.builder
                        .append_data(&mut header, Path::new(&dir_name), io::empty())
                        .map_err(write_err)?;
                }
                let name = match archive == Path::new(".") {
                    true => PathBuf::new(),
                    false => archive.to_path_buf(),
                };
                return Ok(Some(Pending { fd, name, left }));
            }
            FileType::Socket => return Ok(None), // tar cannot carry one; docker skips them too
            _ => {}
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev as u64, st.st_ino as u64);
            if let Some(first) = self.links.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                let first = first.clone();
                self.builder
                    .append_link(&mut header, archive, &first)
                    .map_err(write_err)?;
                return Ok(None);
            }
            self.links.insert(key, archive.to_path_buf());
        }
        match kind {
            FileType::RegularFile => self.file(parent, name, archive, shown, header)?,
            FileType::Symlink => {
                let target =
                    rfs::readlinkat(parent, name, Vec::new()).map_err(io_err("reading link"))?;
                header.set_entry_type(tar::EntryType::Symlink);
                let target = OsStr::from_bytes(target.as_bytes());
                self.builder
                    .append_link(&mut header, archive, target)
                    .map_err(write_err)?;
            }
            _ => {
                header.set_entry_type(match kind {
                    FileType::Fifo => tar::EntryType::Fifo,
                    FileType::CharacterDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                let rdev = st.st_rdev;
                header
                    .set_device_major(rfs::major(rdev))
                    .map_err(write_err)?;
                header
                    .set_device_minor(rfs::minor(rdev))
                    .map_err(write_err)?;
                self.builder
                    .append_data(&mut header, archive, io::empty())
                    .map_err(write_err)?;
            }
        }
        Ok(None)
    }

    /// A regular file: opened without following or blocking, checked to be
    /// the regular file just looked at, and written at the size it had then.
    fn file(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        archive: &Path,
        shown: &str,
        mut header: tar::Header,
    ) -> Result<()> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rfs::openat(parent, name, flags, Mode::empty())
            .map_err(|e| Error::io("opening", shown, e.into()))?;
        let st = rfs::fstat(&fd).map_err(|e| Error::io("inspecting", shown, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::io(
                "copying",
                shown,
                io::Error::other("changed into something other than a file while copied"),
            ));
        }
        let size = st.st_size.max(0) as u64;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        // A file that shrinks meanwhile is padded with zeros, one that
        // grows cut: the header's size is what the tar holds.
        let data = File::from(fd).take(size).chain(io::repeat(0)).take(size);
        self.builder
            .append_data(&mut header, archive, data)
            .map_err(|e| Error::io("copying", shown, e))?;
        self.copied.bytes += size;
        Ok(())
    }
}
