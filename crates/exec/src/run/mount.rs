//! mount(2) of the store's mount descriptions, undone on drop.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use rustix::mount::{mount_bind_recursive, mount_remount, MountFlags, UnmountFlags};

use crate::{Error, Result};

/// The kernel copies mount options into one page and fails with a bare
/// EINVAL past it; catch that first and say why.
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
        other => return Err(Error::Invalid(format!("unsupported mount type {other:?}"))),
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

    #[test]
    fn escaped_colons_are_not_separators() {
        let m = rbk_store::overlay_mount(&[PathBuf::from("/a:b"), PathBuf::from("/c")], None);
        assert_eq!(layer_count(&m.options), 2);
        assert!(overlay_options(&m.options).is_ok());
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
