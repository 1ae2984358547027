//! Containers without a daemon: `ps`, `rm`, `diff` and `commit`, and what
//! the other container commands share (`run` is in `container_run`, the
//! life cycle in `container_life`, `inspect` in `container_inspect`). The
//! state lives in the store (`rbk_store::ContainerRecord`); running and
//! packing are exec's (`rbk_exec::prepare_container`, `monitor_container`,
//! `container_layer`, `container_changes`); opening the store and the
//! runtime is `crate::runtime`'s.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rbk_exec::Change;
use rbk_store::image::{format_rfc3339, parse_rfc3339};
use rbk_store::{ContainerRecord, ContainerState, Reference, Store};

use crate::args::{CommitArgs, ContainerArg, ContainerCommand, ExportArgs, PsArgs, RmArgs};
use crate::runtime::{open_containers, runc_for};
use crate::settings::GlobalSettings;

/// `ps --format` columns: field name and title.
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
];

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn ps(settings: &GlobalSettings, args: PsArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let format = args
        .format
        .as_deref()
        .map(crate::template::Format::parse)
        .transpose()?;
    let containers = store.containers()?;
    // Newest first, as docker; without -a only the running ones.
    let shown: Vec<&ContainerRecord> = containers
        .iter()
        .rev()
        .filter(|c| args.all || c.state() == ContainerState::Running)
        .collect();
    if args.quiet {
        for c in shown {
            println!("{}", if args.no_trunc { &c.id } else { &c.id[..12] });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> = shown.iter().map(|c| ps_row(c, args.no_trunc)).collect();
    let mut out = std::io::stdout().lock();
    if let Some(format) = format.filter(|f| !matches!(f, crate::template::Format::DefaultTable)) {
        format.write(&mut out, &rows, PS_HEADERS)?;
        return Ok(ExitCode::SUCCESS);
    }
    let columns = [
        "ID",
        "Image",
        "Command",
        "RunningFor",
        "Status",
        "Ports",
        "Names",
    ];
    let mut table = vec![columns
        .iter()
        .map(|k| {
            PS_HEADERS
                .iter()
                .find(|(f, _)| f == k)
                .map_or("", |h| h.1)
                .to_string()
        })
        .collect::<Vec<_>>()];
    for row in &rows {
        table.push(
            columns
                .iter()
                .map(|k| row[*k].as_str().unwrap_or_default().to_string())
                .collect(),
        );
    }
    crate::table::write_table(&mut out, &table)?;
    Ok(ExitCode::SUCCESS)
}

/// One `ps` row as docker's `--format` fields.
fn ps_row(c: &ContainerRecord, no_trunc: bool) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let since = |t: &str| now - parse_rfc3339(t).unwrap_or(now);
    let command = c.args.join(" ");
    let command = if no_trunc {
        command
    } else {
        shorten(&command, 20)
    };
    let created = parse_rfc3339(&c.created).unwrap_or(0);
    let created_at =
        format_rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(created.max(0) as u64));
    serde_json::json!({
        "ID": if no_trunc { c.id.clone() } else { c.id[..12].to_string() },
        "Image": c.image_name,
        "Command": format!("\"{command}\""),
        "CreatedAt": format!("{} +0000 UTC", created_at.trim_end_matches('Z').replace('T', " ")),
        "RunningFor": crate::humanize::ago(since(&c.created)),
        "Ports": "",
        "State": c.state().as_str(),
        "Status": status(c, &since),
        "Size": "0B",
        "Names": c.name,
        "Labels": "",
        "Mounts": "",
        "Networks": c.network,
    })
}

/// docker's STATUS column: `Created`, `Up 5 seconds`, `Exited (0) 3
/// minutes ago`.
fn status(c: &ContainerRecord, since: &dyn Fn(&str) -> i64) -> String {
    match c.state() {
        ContainerState::Created => "Created".into(),
        ContainerState::Running => {
            let up = crate::humanize::ago(since(c.started.as_deref().unwrap_or(&c.created)));
            format!("Up {}", up.trim_end_matches(" ago"))
        }
        ContainerState::Exited => format!(
            "Exited ({}) {}",
            c.exit_code.unwrap_or(rbk_exec::UNKNOWN_EXIT),
            crate::humanize::ago(since(c.finished.as_deref().unwrap_or(&c.created)))
        ),
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn rm(settings: &GlobalSettings, args: RmArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let mut failed = false;
    for name in &args.containers {
        match remove_one(settings, &store, name, args.force) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                crate::render::error(&e);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn remove_one(
    settings: &GlobalSettings,
    store: &Store,
    name: &str,
    force: bool,
) -> anyhow::Result<()> {
    let c = store.find_container(name)?;
    if c.state() == ContainerState::Running {
        if !force {
            bail!(
                "cannot remove container \"/{}\": container is running: stop the container \
                 before removing or force remove",
                c.name
            );
        }
        let runc = runc_for(settings, &c)?;
        let _ = rbk_exec::signal_container(&runc, &c.id, "KILL");
        let waited = std::time::Duration::from_secs(10);
        if crate::runtime::wait_exited(settings, store, &c.id, waited)?.is_err() {
            bail!("container {name} did not stop after SIGKILL");
        }
    }
    store.remove_container(&c.id)?;
    Ok(())
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn diff(settings: &GlobalSettings, args: ContainerArg) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let c = store.find_container(&args.container)?;
    let image = store.find_image(&c.image.to_string())?.image;
    let upper = store.container_dir(&c.id).join("upper");
    for (change, path) in rbk_exec::container_changes(&store, &image.layers(), &upper)? {
        let letter = match change {
            Change::Added => 'A',
            Change::Changed => 'C',
            Change::Deleted => 'D',
        };
        println!("{letter} {path}");
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn commit(settings: &GlobalSettings, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let _lease = store.lease()?;
    let c = store.find_container(&args.container)?;
    let image = store
        .find_image(&c.image.to_string())
        .with_context(|| format!("the image of container {} is gone", c.name))?
        .image;
    let reference = args
        .reference
        .as_deref()
        .map(|r| r.parse::<Reference>())
        .transpose()
        .context("invalid image name")?;
    let upper = store.container_dir(&c.id).join("upper");
    // A running container is frozen while its upper dir is read, so the
    // layer is one moment of it (docker's --pause, on by default).
    let paused = match (
        c.state() == ContainerState::Running && args.pause,
        runc_for(settings, &c),
    ) {
        (true, Ok(runc)) => {
            rbk_exec::pause_container(&runc, &c.id, true)?;
            Some(runc)
        }
        (true, Err(e)) => return Err(e),
        (false, _) => None,
    };
    let layer = rbk_exec::container_layer(&store, &upper);
    if let Some(runc) = paused {
        rbk_exec::pause_container(&runc, &c.id, false)?;
    }
    let request = rbk_build::CommitRequest {
        layer: layer?,
        created_by: c.args.join(" "),
        author: args.author,
        message: args.message,
        changes: args.changes,
        reference,
    };
    let id = rbk_build::commit_container(&store, &image, request)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// `rbk container prune`: removes every container that is not running.
#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn container(
    settings: &GlobalSettings,
    command: ContainerCommand,
) -> anyhow::Result<ExitCode> {
    let ContainerCommand::Prune { force: _ } = command;
    let store = open_containers(settings)?;
    let mut removed = Vec::new();
    let mut reclaimed = 0;
    for c in store.containers()? {
        if c.state() == ContainerState::Running || c.monitor.is_some() {
            continue; // running, or being started right now
        }
        reclaimed += store.container_size(&c.id);
        store.remove_container(&c.id)?;
        removed.push(c.id);
    }
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::humanize::size(reclaimed)
    );
    Ok(ExitCode::SUCCESS)
}

/// `rbk export [-o FILE] CONTAINER`: its flattened file system as a tar,
/// to stdout (refused on a terminal, as docker does) or written atomically
/// to FILE.
pub(crate) fn export(settings: &GlobalSettings, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let c = store.find_container(&args.container)?;
    let image = store
        .find_image(&c.image.to_string())
        .with_context(|| format!("the image of container {} is gone", c.name))?
        .image;
    let upper = store.container_dir(&c.id).join("upper");
    match &args.output {
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file next to {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file.as_file_mut());
            rbk_exec::export_container(&store, &image.layers(), &upper, &mut out)?;
            std::io::Write::flush(&mut out)?;
            drop(out);
            file.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            // Not locked: the packer writes from its own thread.
            let mut out = std::io::BufWriter::new(std::io::stdout());
            rbk_exec::export_container(&store, &image.layers(), &upper, &mut out)?;
            std::io::Write::flush(&mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
