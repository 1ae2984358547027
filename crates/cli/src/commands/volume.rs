//! `rbk volume create|ls|inspect|rm|prune`: the named volumes `run -v
//! NAME:/path` and `--mount type=volume` use (`volumes/NAME/_data` under
//! the store). A volume a container (running or not) names is in use: `rm`
//! refuses it unless `-f`, and `prune` keeps it, as docker does.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use rbk_store::Store;

use crate::args::VolumeCommand;
use crate::runtime::{new_id, open_containers};
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, command: VolumeCommand) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let mut out = std::io::stdout().lock();
    match command {
        VolumeCommand::Create { name } => {
            let name = name.unwrap_or_else(new_id);
            store.volume_dir(&name)?;
            writeln!(out, "{name}")?;
        }
        VolumeCommand::Ls { quiet } => {
            let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
            for name in store.volumes()? {
                match quiet {
                    true => writeln!(out, "{name}")?,
                    false => rows.push(vec!["local".into(), name]),
                }
            }
            if !quiet {
                crate::table::write_table(&mut out, &rows)?;
            }
        }
        VolumeCommand::Inspect { names } => inspect(&store, &names, &mut out)?,
        VolumeCommand::Rm { force, names } => {
            let used = in_use(&store)?;
            let mut failed = false;
            for name in names {
                let result = match !force && used.contains(&name) {
                    true => Err(anyhow::anyhow!(
                        "remove {name}: volume is in use by a container"
                    )),
                    false => store.remove_volume(&name).map_err(Into::into),
                };
                match result {
                    Ok(()) => writeln!(out, "{name}")?,
                    Err(e) => {
                        failed = true;
                        crate::render::error(&e);
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        VolumeCommand::Prune { .. } => {
            let used = in_use(&store)?;
            let mut reclaimed = 0;
            let mut removed = Vec::new();
            for name in store.volumes()? {
                if used.contains(&name) {
                    continue;
                }
                reclaimed += store.volume_size(&name);
                store.remove_volume(&name)?;
                removed.push(name);
            }
            if !removed.is_empty() {
                writeln!(out, "Deleted Volumes:")?;
                for name in &removed {
                    writeln!(out, "{name}")?;
                }
                writeln!(out)?;
            }
            writeln!(
                out,
                "Total reclaimed space: {}",
                crate::humanize::size(reclaimed)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The volumes some container names.
fn in_use(store: &Store) -> anyhow::Result<BTreeSet<String>> {
    Ok(store
        .containers()?
        .into_iter()
        .flat_map(|c| c.mounts)
        .filter(|m| m.kind == "volume")
        .map(|m| m.source)
        .collect())
}

fn inspect(store: &Store, names: &[String], out: &mut impl Write) -> anyhow::Result<()> {
    let known = store.volumes()?;
    let mut docs = Vec::new();
    for name in names {
        if !known.contains(name) {
            bail!("no such volume: {name}");
        }
        let dir = store.root().join("volumes").join(name).join("_data");
        docs.push(serde_json::json!({
            "Name": name,
            "Driver": "local",
            "Mountpoint": dir,
            "Scope": "local",
            "Labels": null,
            "Options": null,
        }));
    }
    serde_json::to_writer_pretty(&mut *out, &docs)?;
    writeln!(out)?;
    Ok(())
}
