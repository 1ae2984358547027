//! Emptying the store's trash without making a command wait for it.
//!
//! The store never deletes in bulk on the hot path: GC, `rmi` and failed
//! steps move dead entries into `trash/` by rename. Deleting them is slow on
//! this machine's ext4 (a prune of 25,000 snapshots spent 150 s there), so a
//! command deletes for a bounded time ([`empty`]) and leaves the rest to a
//! detached `rbk system empty-trash` process, which deletes until the trash
//! is empty and exits. One process empties at a time (the store's
//! `db/trash.lock`), so a second emptier exits at once; a killed emptier
//! leaves a half-deleted entry that the next one finishes.
//!
//! The emptier outlives the command that started it on purpose: it is rbk
//! itself, runs nothing from an image, and stops when the trash is empty or
//! the store is gone (it never recreates a deleted store).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rbk_store::Store;

/// How long `prune` and `rmi` delete before handing over: small stores
/// (and every test) are done within it, so the space is free when they exit.
pub(crate) const COMMAND_BUDGET: Duration = Duration::from_secs(1);

/// Past this many entries moved to the trash (files, directories, dropped
/// cache records), `prune` deletes none of them itself: a second deletes
/// at most a few thousand entries here, so it could not finish, and the
/// second would only be added to the command's time (a prune of half a
/// big store moves 150,000; issue 19).
pub(crate) const INLINE_ENTRIES: usize = 10_000;

/// The time a command that moved `entries` to the trash spends deleting
/// before it hands the rest to the background emptier.
pub(crate) fn budget_for(entries: usize) -> Duration {
    if entries > INLINE_ENTRIES {
        Duration::ZERO
    } else {
        COMMAND_BUDGET
    }
}

/// Deletes trash for up to `budget`, then starts a background emptier for
/// what is left.
pub(crate) fn empty(store: &Store, budget: Duration) -> anyhow::Result<()> {
    if store.trash_is_empty()? || (!budget.is_zero() && store.empty_trash_within(budget)?) {
        return Ok(());
    }
    spawn_emptier(store.root())
}

/// Starts `rbk --root ROOT system empty-trash`, detached: its own process
/// group, no terminal, no pipe a caller could wait on.
fn spawn_emptier(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe);
    child
        .arg("--root")
        .arg(root)
        .args(["system", "empty-trash"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // Not waited for: reparented to init when this command exits.
    child.spawn()?;
    Ok(())
}

/// `rbk system empty-trash`: empties the trash of the store at `root`, if
/// that store still exists.
pub(crate) fn run_emptier(root: &Path) -> anyhow::Result<()> {
    if let Some(store) = Store::open_existing(root)? {
        // A week: in effect until the trash is empty.
        store.empty_trash_within(Duration::from_secs(7 * 24 * 3600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_prune_leaves_all_its_deletes_to_the_emptier() {
        assert_eq!(budget_for(0), COMMAND_BUDGET);
        assert_eq!(budget_for(INLINE_ENTRIES), COMMAND_BUDGET);
        assert_eq!(budget_for(INLINE_ENTRIES + 1), Duration::ZERO);
        assert_eq!(budget_for(150_000), Duration::ZERO);
    }
}
