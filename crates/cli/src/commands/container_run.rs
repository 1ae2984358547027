//! `rbk run` (in the foreground, or detached with `-d`) and the hidden
//! `rbk container-monitor ID` that runs a detached container.
//!
//! In the foreground `runc run` gets rbk's stdio (stdin with `-i`) and, with
//! `-t`, makes the pseudo-terminal itself (raw mode, SIGWINCH, restoring the
//! terminal); rbk forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and
//! SIGUSR2 to runc, which passes them to the container's process. Detached,
//! rbk starts a monitor (this binary again, in a session of its own) and
//! returns once the monitor says the process runs.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{bail, Context};
use rbk_exec::Runc;
use rbk_graph::NetworkMode;
use rbk_store::image::format_rfc3339;
use rbk_store::{ContainerRecord, Store};

use super::container_opts;
use crate::args::{MonitorArgs, RunArgs};
use crate::lookup::image_for_run;
use crate::runtime::{foreground, new_id, open_containers, runc_for, spawn_monitor_process};
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.tty && !args.detach && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let network = match args.network.as_str() {
        "host" | "default" | "bridge" => NetworkMode::Host,
        "none" => NetworkMode::None,
        other => bail!("invalid --network {other:?}: expected none or host"),
    };
    let store = open_containers(settings)?;
    rbk_exec::recover_store(&store)?;
    // What earlier commands left in the trash goes in the background.
    crate::trash::empty(&store, std::time::Duration::ZERO)?;
    let record = {
        // Only while the image is pulled and the record written: from
        // then on the record keeps the image (rmi and prune respect it).
        let _lease = store.lease()?;
        let record = new_record(settings, &store, &args, network)?;
        store.create_container(&record)?;
        record
    };
    if args.detach {
        return match spawn_monitor_process(&store, &record) {
            Ok(()) => {
                println_id(&record.id)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                if record.auto_remove {
                    let _ = store.remove_container(&record.id);
                }
                Err(e)
            }
        };
    }
    let code = store
        .find_image(&record.image.to_string())
        .map_err(anyhow::Error::from)
        .and_then(|found| {
            let runc = runc_for(settings, &record)?;
            let layers = found.image.layers();
            foreground(&store, &runc, &record, &layers, args.interactive)
        });
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            let _ = store.modify_container(&record.id, |r| {
                r.monitor = None;
                r.started = None;
                r.error = Some(message);
            });
            if args.rm {
                let _ = store.remove_container(&record.id);
            }
            let code = start_failure_code(&e);
            crate::render::error(&e.context("running the container"));
            return Ok(ExitCode::from(code));
        }
    };
    if args.rm {
        store.remove_container(&record.id)?;
    } else {
        store.modify_container(&record.id, |r| {
            r.exit_code = Some(code);
            r.finished = Some(format_rfc3339(SystemTime::now()));
            r.monitor = None;
        })?;
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

#[allow(clippy::print_stdout)] // the CLI reports here
fn println_id(id: &str) -> std::io::Result<()> {
    println!("{id}");
    Ok(())
}

/// docker's codes for a process that could not start: 127 when the
/// command is missing, 126 when it cannot be run, else 125.
fn start_failure_code(e: &anyhow::Error) -> u8 {
    let text = format!("{e:#}");
    if text.contains("executable file not found") || text.contains("no such file or directory") {
        127
    } else if text.contains("permission denied") {
        126
    } else {
        125
    }
}

/// The record of a new container: the image's config with docker's
/// override rules.
fn new_record(
    settings: &GlobalSettings,
    store: &Store,
    args: &RunArgs,
    network: NetworkMode,
) -> anyhow::Result<ContainerRecord> {
    let image = image_for_run(
        settings,
        store,
        &args.image,
        &args.pull,
        args.platform.as_deref(),
    )?;
    let config = image.config.config.clone().unwrap_or_default();
    let entrypoint = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    // As docker: a command replaces CMD, and --entrypoint clears CMD too.
    let cmd = match (args.command.is_empty(), &args.entrypoint) {
        (false, _) => args.command.clone(),
        (true, Some(_)) => Vec::new(),
        (true, None) => config.cmd.clone().unwrap_or_default(),
    };
    let process: Vec<String> = entrypoint.iter().cloned().chain(cmd.clone()).collect();
    if process.is_empty() {
        bail!("no command specified: the image has no CMD or ENTRYPOINT, give one after the image");
    }
    let mut env = config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut pairs = Vec::new();
    for file in &args.env_files {
        pairs.extend(container_opts::env_file(file)?);
    }
    pairs.extend(args.env.iter().cloned());
    for pair in &pairs {
        let pair = match pair.split_once('=') {
            Some(_) => pair.clone(),
            None => match std::env::var(pair) {
                Ok(v) => format!("{pair}={v}"),
                Err(_) => continue, // docker drops a bare key that is unset
            },
        };
        let key = pair.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(pair);
    }
    let id = new_id();
    let mut mounts = Vec::new();
    for (n, spec) in args.volumes.iter().enumerate() {
        mounts.push(container_opts::parse_volume(
            spec,
            &format!("{}-{n}", &id[..32]),
        )?);
    }
    for (n, spec) in args.mounts.iter().enumerate() {
        let anonymous = format!("{}-m{n}", &id[..32]);
        mounts.push(container_opts::parse_mount(spec, &anonymous)?);
    }
    for m in mounts.iter().filter(|m| m.kind == "volume") {
        store.volume_dir(&m.source)?;
    }
    let caps = |names: &[String]| -> anyhow::Result<Vec<String>> {
        names
            .iter()
            .map(|n| container_opts::capability(n))
            .collect()
    };
    let init = match args.init {
        true => Some(
            container_opts::init_binary()?
                .to_string_lossy()
                .into_owned(),
        ),
        false => None,
    };
    Ok(ContainerRecord {
        mounts,
        read_only: args.read_only,
        privileged: args.privileged,
        cap_add: caps(&args.cap_add)?,
        cap_drop: caps(&args.cap_drop)?,
        init,
        base_upper: None,
        name: args
            .name
            .clone()
            .unwrap_or_else(|| format!("rbk_{}", &id[..12])),
        image: image.id(),
        image_name: args.image.clone(),
        args: process,
        env,
        cwd: args
            .workdir
            .clone()
            .or_else(|| Some(config.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into()),
        user: args.user.clone().unwrap_or_else(|| config.user.clone()),
        created: format_rfc3339(SystemTime::now()),
        exit_code: None,
        finished: None,
        entrypoint,
        cmd,
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string()),
        network: match network {
            NetworkMode::None => "none".into(),
            _ => "host".into(),
        },
        stop_signal: Some(config.stop_signal.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "SIGTERM".into()),
        // The runtime that runs it, from the flag or `$RBK_RUNTIME`, so
        // that stop, kill and the reaper use the same one later.
        runtime: settings
            .runtime
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        auto_remove: args.rm,
        tty: args.tty,
        open_stdin: args.interactive,
        started: None,
        pid: None,
        monitor: None,
        error: None,
        id,
    })
}

/// `rbk container-monitor ID`: runs detached container `ID` until it exits
/// (see `rbk_exec::monitor_container`), telling the `rbk run -d` or `rbk
/// start` that started it, on stdout, `ok` or `error: …` once it knows.
pub(crate) fn monitor(settings: &GlobalSettings, args: MonitorArgs) -> anyhow::Result<ExitCode> {
    // A session of its own: the terminal's signals and hangups are not the
    // container's.
    let _ = rustix::process::setsid();
    let store = settings.open_store()?;
    let record = store.read_container(&args.id)?;
    let image = store
        .find_image(&record.image.to_string())
        .with_context(|| format!("the image of container {} is gone", record.name))?
        .image;
    let runc = Runc::new(settings.runtime.clone(), store.root().join("runc"))?;
    let mut stdout = std::io::stdout();
    let result =
        rbk_exec::monitor_container(&store, &runc, &image.layers(), &args.id, &mut |ready| {
            let line = match ready {
                Ok(()) => "ok".to_string(),
                // One line: the parent reads the answer line by line.
                Err(e) => format!("error: {}", crate::render::chain(e).replace('\n', " ")),
            };
            let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        });
    Ok(match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    })
}
