//! Copying an entry's metadata: owner, then mode (chown clears setuid and
//! setgid bits), then xattrs (chown also clears `security.capability`),
//! then times last (nothing after may touch them).

use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Stat, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

/// Extended attributes worth keeping. `trusted.*` (overlayfs's own
/// `trusted.overlay.*` in particular) and `security.selinux` are never copied.
fn kept_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

/// What to give a copied entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
}

/// Applies `meta`, the source's xattrs and times to the open file or
/// directory `dst`.
pub(crate) fn apply_fd(
    dst: BorrowedFd<'_>,
    src: BorrowedFd<'_>,
    st: &Stat,
    meta: Meta,
) -> io::Result<()> {
    rfs::fchown(
        dst,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )?;
    rfs::fchmod(dst, Mode::from_raw_mode(meta.mode & 0o7777))?;
    copy_xattrs(src, dst)?;
    rfs::futimens(dst, &times(st))?;
    Ok(())
}

/// Applies owner, mode (unless a symlink) and times to `name` in `dir`
/// without following it (symlinks, FIFOs, device nodes).
pub(crate) fn apply_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    st: &Stat,
    meta: Meta,
    is_link: bool,
) -> io::Result<()> {
    let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
    rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    if !is_link {
        rfs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    rfs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// The source's access and modification times.
pub(crate) fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Copies the kept xattrs. A destination that does not support them (or
/// refuses one) loses them silently, as BuildKit's copier does.
fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    let size = match rfs::flistxattr_query(src) {
        Ok(0) | Err(Errno::NOTSUP) => return Ok(()),
        Ok(n) => n,
        Err(e) => return Err(e.into()),
    };
    let mut list = vec![0u8; size];
    let n = rfs::flistxattr(src, &mut list[..])?;
    list.truncate(n);
    for name in list.split(|b| *b == 0).filter(|n| kept_xattr(n)) {
        let name = OsStr::from_bytes(name);
        let len = match rfs::fgetxattr_query(src, name) {
            Ok(len) => len,
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; len];
        let len = rfs::fgetxattr(src, name, &mut value[..])?;
        match rfs::fsetxattr(dst, name, &value[..len], XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
