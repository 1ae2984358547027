//! mount(2) of the store's mount descriptions, undone on drop.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::mount::{mount_bind_recursive, mount_remount, MountFlags, UnmountFlags};

use crate::{Error, Result};

/// The kernel copies mount(2) options into one page and fails with a bare
/// EINVAL past it. Overlays whose options do not fit (about 30 or more
/// layers with the store's paths) are mounted with the new mount API
/// instead, one `lowerdir+` parameter per layer (Linux 6.8 or later), up to
/// overlayfs's own limit of 500 lower layers.
const MAX_OPTIONS: usize = 4095;

/// A mount made by [`mount`]; lazily unmounted (`MNT_DETACH`) on drop.
#[derive(Debug)]
#[must_use = "the mount is undone when the guard is dropped"]
pub struct MountGuard {
    target: PathBuf,
}

impl MountGuard {
    /// Where the mount is.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        // Nothing useful can be done about a failure here: the target is
        // gone or busy, and MNT_DETACH already copes with busy.
        let _ = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
    }
}

/// Mounts an overlay or bind described by the store
/// ([`rbk_store::overlay_mount`]) at `target`.
pub fn mount(m: &rbk_store::Mount, target: &Path) -> Result<MountGuard> {
    match m.fstype.as_str() {
        "overlay" => mount_overlay(m, target)?,
        "bind" => mount_bind(m, target)?,
        other => {
            return Err(Error::Unsupported(format!(
                "unsupported mount type {other:?}"
            )))
        }
    }
    Ok(MountGuard {
        target: target.to_path_buf(),
    })
}

/// Mounts a fresh tmpfs with `options` (e.g. `mode=0700,size=…`) at
/// `target`, without exec, setuid or device files.
pub(crate) fn mount_tmpfs(target: &Path, options: &str) -> Result<MountGuard> {
    let options = CString::new(options)
        .map_err(|_| Error::Invalid("NUL byte in tmpfs mount options".into()))?;
    let flags = MountFlags::NOEXEC | MountFlags::NOSUID | MountFlags::NODEV;
    rustix::mount::mount("tmpfs", target, "tmpfs", flags, options.as_c_str())
        .map_err(|e| Error::io("mounting tmpfs", target, e.into()))?;
    Ok(MountGuard {
        target: target.to_path_buf(),
    })
}

fn mount_overlay(m: &rbk_store::Mount, target: &Path) -> Result<()> {
    if m.options.iter().map(|o| o.len() + 1).sum::<usize>() > MAX_OPTIONS + 1 {
        return mount_overlay_fsconfig(m, target);
    }
    let options = overlay_options(&m.options)?;
    rustix::mount::mount(
        &m.source,
        target,
        "overlay",
        MountFlags::empty(),
        options.as_c_str(),
    )
    .map_err(|e| Error::io("mounting overlay", target, e.into()))
}

/// The overlay through fsopen/fsconfig/fsmount/move_mount: every lower dir
/// is its own `lowerdir+` parameter, so no page limit applies. Values are
/// raw paths here (no `,`/`:` escaping: nothing splits them).
fn mount_overlay_fsconfig(m: &rbk_store::Mount, target: &Path) -> Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let layers = layer_count(&m.options);
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| Error::io("opening an overlay context", target, e.into()))?;
    let fail = |what: &str, e: rustix::io::Errno| {
        let detail = kernel_log(&fs);
        Error::Mount(format!(
            "mounting an overlay of {layers} layers at {}: {what}: {e}{detail} \
             (deep stacks need Linux 6.8+ for lowerdir+; overlayfs stacks at most 500 layers)",
            target.display()
        ))
    };
    // Each lower dir is named by an fd of this process: overlayfs shows
    // layers in /proc/*/mountinfo as they were given, and 500 store paths
    // make a line over 64 KiB, which runc's mountinfo reader refuses ("bufio.Scanner:
    // token too long"), failing every RUN on the machine while the deep
    // view is mounted. `/proc/self/fd/N` keeps the line near 10 KiB.
    let mut lower_fds = Vec::new();
    for option in &m.options {
        match option.split_once('=') {
            Some(("lowerdir", list)) => {
                for dir in split_unescaped(list, ':') {
                    let dir = unescape(dir);
                    let fd = crate::inroot::open_path_dir(Path::new(&dir))
                        .map_err(|e| Error::io("opening lower dir", Path::new(&dir), e))?;
                    let name = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    lower_fds.push(fd);
                    fsconfig_set_string(&fs, "lowerdir+", name)
                        .map_err(|e| fail("adding a lower dir", e))?;
                }
            }
            Some((key, value)) => fsconfig_set_string(&fs, key, unescape(value))
                .map_err(|e| fail(&format!("setting {key}"), e))?,
            None => {
                fsconfig_set_flag(&fs, option.as_str()).map_err(|e| fail(option, e))?;
            }
        }
    }
    fsconfig_create(&fs).map_err(|e| fail("creating the overlay", e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| fail("fsmount", e))?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::io("attaching overlay", target, e.into()))
}

/// What the kernel logged on an fs context (`e overlayfs: …` lines), to
/// say more than a bare errno.
fn kernel_log(fs: &impl std::os::fd::AsFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    // Each read returns one message; ENODATA once the log is empty.
    for _ in 0..8 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                out.push_str(" (");
                out.push_str(String::from_utf8_lossy(&buf[..n]).trim());
                out.push(')');
            }
            _ => break,
        }
    }
    out
}

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes the backslash escapes of the store's overlay paths.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn mount_bind(m: &rbk_store::Mount, target: &Path) -> Result<()> {
    mount_bind_recursive(&m.source, target)
        .map_err(|e| Error::io("bind-mounting", target, e.into()))?;
    if m.options.iter().any(|o| o == "ro") {
        let flags = MountFlags::BIND | MountFlags::RDONLY;
        if let Err(e) = mount_remount(target, flags, "") {
            let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            return Err(Error::io("making bind mount read-only", target, e.into()));
        }
    }
    Ok(())
}

/// The options joined by `,`, checked against the page limit.
fn overlay_options(options: &[String]) -> Result<CString> {
    let joined = options.join(",");
    if joined.len() > MAX_OPTIONS {
        return Err(Error::Invalid(format!(
            "overlay mount options are {} bytes, over the kernel's {MAX_OPTIONS}-byte \
             limit: {} layers are too many to stack in one mount",
            joined.len(),
            layer_count(options)
        )));
    }
    CString::new(joined).map_err(|_| Error::Invalid("NUL byte in overlay mount options".into()))
}

/// How many lower dirs `lowerdir=` names (`:` separates them; `\:` is an
/// escaped colon inside a path).
fn layer_count(options: &[String]) -> usize {
    let Some(lower) = options.iter().find_map(|o| o.strip_prefix("lowerdir=")) else {
        return 0;
    };
    let mut count = 1;
    let mut escaped = false;
    for c in lower.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ':' => count += 1,
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_layers_are_named() {
        let lowers: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/rbk/snapshots/{i:064}/fs")))
            .collect();
        let m = rbk_store::overlay_mount(&lowers, None);
        let err = overlay_options(&m.options).unwrap_err().to_string();
        assert!(err.contains("200 layers"), "{err}");
    }

    /// 450 layers with 120-character names would show as a mountinfo line
    /// of 66,230 bytes; runc refuses lines over 64 KiB. Named by fd, the
    /// line stays short and the view is whole.
    #[test]
    fn a_deep_overlay_keeps_its_mountinfo_line_short() {
        let dir = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..450)
            .map(|i| {
                let lower = dir.path().join(format!("{i:0120}"));
                std::fs::create_dir(&lower).unwrap();
                std::fs::write(lower.join(format!("f{i}")), "x").unwrap();
                lower
            })
            .collect();
        let target = dir.path().join("view");
        std::fs::create_dir(&target).unwrap();
        let guard = mount(&rbk_store::overlay_mount(&lowers, None), &target).unwrap();
        assert!(target.join("f0").exists() && target.join("f449").exists());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
            .expect("the view is in mountinfo");
        assert!(line.len() < 16 * 1024, "{} bytes", line.len());
        drop(guard);
    }

    #[test]
    fn escaped_colons_are_not_separators() {
        let m = rbk_store::overlay_mount(&[PathBuf::from("/a:b"), PathBuf::from("/c")], None);
        assert_eq!(layer_count(&m.options), 2);
        assert!(overlay_options(&m.options).is_ok());
    }

    #[test]
    fn escaped_lists_split_and_unescape() {
        let parts = split_unescaped(r"/a\:b:/c\\:/d", ':');
        assert_eq!(parts, [r"/a\:b", r"/c\\", "/d"]);
        assert_eq!(unescape(parts[0]), "/a:b");
        assert_eq!(unescape(parts[1]), r"/c\");
        assert_eq!(unescape(r"/x\,y"), "/x,y");
    }

    #[test]
    fn unknown_types_are_refused() {
        let m = rbk_store::Mount {
            fstype: "nfs".into(),
            source: "x".into(),
            options: vec![],
        };
        assert!(mount(&m, Path::new("/nonexistent")).is_err());
    }
}
