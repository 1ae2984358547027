//! Where overlayfs keeps its own attributes (opaque directories, and the
//! redirects and metacopy rbk refuses): `trusted.overlay.*` for root, and
//! `user.overlay.*` with the `userxattr` mount option inside a user
//! namespace (rootless rbk), where `trusted.*` cannot be written. Snapshots,
//! the copy snapshotter and the layer packer all use the one this process
//! can use, so a store keeps one convention: a store belongs to one user
//! (`Store::open` refuses another's), who is either root or rootless.
//!
//! This is a fact about the process (which user namespace it runs in),
//! read once from `/proc/self/uid_map`, not a setting, hence the static.

use std::ffi::CStr;
use std::sync::OnceLock;

/// The overlay xattr convention of this process.
#[derive(Debug)]
pub struct OverlayXattrs {
    /// `trusted.overlay.` or `user.overlay.`.
    pub prefix: &'static str,
    /// The opaque-directory xattr (value `y`).
    pub opaque: &'static CStr,
    /// Whether overlay mounts need the `userxattr` option.
    pub userxattr: bool,
}

const TRUSTED: OverlayXattrs = OverlayXattrs {
    prefix: "trusted.overlay.",
    opaque: c"trusted.overlay.opaque",
    userxattr: false,
};

const USER: OverlayXattrs = OverlayXattrs {
    prefix: "user.overlay.",
    opaque: c"user.overlay.opaque",
    userxattr: true,
};

/// The convention for this process: `user.overlay.*` inside a user
/// namespace other than the initial one.
pub fn overlay_xattrs() -> &'static OverlayXattrs {
    static CHOSEN: OnceLock<&'static OverlayXattrs> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let initial = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
        if initial || map.is_empty() {
            &TRUSTED
        } else {
            &USER
        }
    })
}

impl OverlayXattrs {
    /// Whether xattr `name` is overlayfs's own under this convention (or
    /// under root's, which no layer may set either).
    pub fn is_overlay(&self, name: &[u8]) -> bool {
        name.starts_with(b"trusted.overlay.") || name.starts_with(self.prefix.as_bytes())
    }
}
