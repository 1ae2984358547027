//! Repairing containers whose owner is gone: a monitor or a foreground
//! `rbk run` killed by SIGKILL, or a machine that rebooted. The record says
//! who ran the container ([`Owner`](rbk_store::Owner)); when that process no
//! longer lives, runc's state is deleted (killing what is left of the
//! container), the root is unmounted and the container is recorded as
//! exited with status 255 ("unknown", the code docker reports for a
//! container whose exit it lost) and an `error` saying so.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rbk_store::image::format_rfc3339;
use rbk_store::Store;

use super::procs::is_alive;
use crate::ops::exec::Runc;
use crate::Result;

/// The exit code recorded when the real one is lost.
pub const UNKNOWN_EXIT: i32 = 255;

/// Repairs every container whose owner is gone; `runtime` is the default
/// runtime binary (a record names its own when it was given one). Returns
/// the ids repaired.
pub fn reap_containers(store: &Store, runtime: Option<&Path>) -> Result<Vec<String>> {
    let orphaned =
        |r: &rbk_store::ContainerRecord| r.monitor.as_ref().is_some_and(|m| !is_alive(m));
    if !store.containers()?.iter().any(orphaned) {
        return Ok(Vec::new());
    }
    let lock = store.containers_lock()?;
    let mut repaired = Vec::new();
    for mut record in store.containers()? {
        if !orphaned(&record) {
            continue;
        }
        let binary = record
            .runtime
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| runtime.map(Path::to_path_buf));
        if let Ok(runc) = Runc::new(binary, store.root().join("runc")) {
            let _ = runc.delete(&record.id);
        }
        let merged = store.container_dir(&record.id).join("merged");
        if rbk_store::mount_points().contains(&merged) {
            let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
        }
        record.monitor = None;
        record.pid = None;
        if record.started.is_some() && record.exit_code.is_none() {
            record.exit_code = Some(UNKNOWN_EXIT);
            record.finished = Some(format_rfc3339(SystemTime::now()));
            record.error = Some(
                "the process that ran the container was killed; its exit status is unknown".into(),
            );
        }
        if record.auto_remove && record.exit_code.is_some() {
            store.remove_container_locked(&lock, &record.id)?;
        } else {
            store.write_container_locked(&lock, &record)?;
        }
        repaired.push(record.id);
    }
    Ok(repaired)
}
