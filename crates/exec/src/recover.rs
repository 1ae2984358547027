//! Recovery after a killed build: a process killed mid-RUN leaves its
//! overlay mounts under `<root>/tmp` behind (the store never mounts and
//! cannot undo them; docs/security.md F3).

use rbk_store::Store;

use crate::{Error, Result};

/// When no other process uses the store (the GC lock is free), detaches
/// every mount left under the store's `tmp/` and clears the store's orphans
/// (into the trash, which the caller empties with
/// `Store::empty_trash_within`, off the hot path).
/// Returns how many mounts were detached; does nothing (0) while another
/// process holds a lease.
pub fn recover_store(store: &Store) -> Result<usize> {
    let Some(lock) = store.try_gc_lock()? else {
        return Ok(0);
    };
    let tmp = store.root().join("tmp");
    let mut stale: Vec<_> = rbk_store::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(&tmp))
        .collect();
    // Deepest first, so nested mounts go before the ones they sit on.
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for path in &stale {
        rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH)
            .map_err(|e| Error::io("unmounting stale mount", path, e.into()))?;
    }
    // Under the same lock: `clean_orphans` would wait for every other
    // build's lease, so a build starting beside a running one would stall
    // until that one ended (two concurrent builds ran one after the other).
    store.clean_orphans_holding(&lock)?;
    Ok(stale.len())
}
