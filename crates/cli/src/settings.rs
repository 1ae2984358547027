//! Settings resolved from arguments and the environment.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rbk_store::Store;

/// The store root: `--root`, else `$RBK_ROOT`, else `/var/lib/rbk` for root,
/// else `$XDG_DATA_HOME/rbk` (`~/.local/share/rbk`).
pub(crate) fn store_root(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(root) = flag {
        return Ok(root.to_path_buf());
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(root) = env("RBK_ROOT") {
        return Ok(root.into());
    }
    if rustix_is_root() {
        return Ok("/var/lib/rbk".into());
    }
    if let Some(data) = env("XDG_DATA_HOME") {
        return Ok(PathBuf::from(data).join("rbk"));
    }
    let home = env("HOME").context("cannot choose a store root: set --root, RBK_ROOT or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/rbk"))
}

fn rustix_is_root() -> bool {
    // The uid of the store root's owner is checked by `Store::open`; here we
    // only pick a default, so reading the environment-independent euid via
    // /proc is enough and avoids a libc dependency in the CLI.
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Opens the store selected by `flag` and the environment.
pub(crate) fn open_store(flag: Option<&Path>) -> anyhow::Result<Store> {
    let root = store_root(flag)?;
    Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))
}
