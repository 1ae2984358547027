//! The store and the OCI runtime as commands open them: what a killed rbk
//! left behind (build containers, `rbk run` containers) is reaped first.
//! Shared by `build`, `prune`, `system`, `inspect` and the container
//! commands, so no verb calls into another for it.

use std::path::PathBuf;

use rbk_exec::Runc;
use rbk_store::{ContainerRecord, Store};

use crate::settings::GlobalSettings;

/// The store, with every container whose owner was killed repaired first
/// (see `rbk_exec::reap_containers`): every command that looks at
/// containers opens them through here.
pub(crate) fn open_containers(settings: &GlobalSettings) -> anyhow::Result<Store> {
    let store = settings.open_store()?;
    rbk_exec::reap_containers(&store, settings.runtime.as_deref())?;
    Ok(store)
}

/// The runtime that runs (or ran) `record`.
pub(crate) fn runc_for(
    settings: &GlobalSettings,
    record: &ContainerRecord,
) -> anyhow::Result<Runc> {
    let binary = record
        .runtime
        .as_ref()
        .map(PathBuf::from)
        .or_else(|| settings.runtime.clone());
    Ok(Runc::new(
        binary,
        settings.open_store()?.root().join("runc"),
    )?)
}

/// Stops the RUN containers of builds whose rbk process is gone (see
/// `Runc::reap_orphans`), before anything touches their work directories.
/// Without a usable runc there is nothing of ours to reap.
pub(crate) fn reap_build_containers(
    settings: &GlobalSettings,
    store: &Store,
    runtime: Option<PathBuf>,
) -> anyhow::Result<()> {
    let binary = runtime.or_else(|| settings.runtime.clone());
    if let Ok(runc) = Runc::new(binary, store.root().join("runc")) {
        runc.reap_orphans()?;
    }
    Ok(())
}
