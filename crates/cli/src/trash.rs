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

/// Deletes trash for up to `budget`, then starts a background emptier for
/// what is left.
pub(crate) fn empty(store: &Store, budget: Duration) -> anyhow::Result<()> {
    if store.trash_is_empty()? || store.empty_trash_within(budget)? {
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
