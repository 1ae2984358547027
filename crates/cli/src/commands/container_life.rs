//! A container's life after `run`: `logs`, `stop`, `kill`, `start`, `wait`
//! and `exec`. Signals go through `runc kill`; the exit is recorded by the
//! process that owns the container (its monitor, or a foreground `rbk
//! run`), so these commands poll the record (repairing it when that owner
//! was killed).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use rbk_exec::{LogEntry, LogStream};
use rbk_store::{ContainerState, Store};

use crate::args::{ContainersArg, ExecArgs, KillArgs, LogsArgs, StartArgs, StopArgs};
use crate::runtime::{open_containers, runc_for, wait_exited};
use crate::settings::GlobalSettings;

/// How often a waiting command looks at the record again.
const POLL: Duration = Duration::from_millis(50);

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn stop(settings: &GlobalSettings, args: StopArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    each(&args.containers, |name| {
        let c = store.find_container(name)?;
        if c.state() == ContainerState::Running {
            let runc = runc_for(settings, &c)?;
            let signal = args.signal.clone().unwrap_or_else(|| c.stop_signal.clone());
            let signal = if signal.is_empty() {
                "SIGTERM".into()
            } else {
                signal
            };
            // It may have exited in the meantime: the wait below tells.
            let _ = rbk_exec::signal_container(&runc, &c.id, &signal);
            let timeout = Duration::from_secs(args.time);
            if wait_exited(settings, &store, &c.id, timeout)?.is_err() {
                let _ = rbk_exec::signal_container(&runc, &c.id, "KILL");
                if wait_exited(settings, &store, &c.id, Duration::from_secs(10))?.is_err() {
                    bail!("container {name} did not stop after SIGKILL");
                }
            }
        }
        println!("{name}");
        Ok(())
    })
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn kill(settings: &GlobalSettings, args: KillArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    each(&args.containers, |name| {
        let c = store.find_container(name)?;
        if c.state() != ContainerState::Running {
            bail!(
                "cannot kill container: {name}: container {} is not running",
                c.id
            );
        }
        rbk_exec::signal_container(&runc_for(settings, &c)?, &c.id, &args.signal)?;
        println!("{name}");
        Ok(())
    })
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn start(settings: &GlobalSettings, args: StartArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    if args.attach && args.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    if args.attach {
        let c = store.find_container(&args.containers[0])?;
        if c.state() == ContainerState::Running {
            bail!("container {} is already running", c.name);
        }
        let log = store.container_dir(&c.id).join("container.log");
        let offset = std::fs::metadata(&log).map_or(0, |m| m.len());
        crate::runtime::spawn_monitor_process(&store, &c)?;
        let code = follow(settings, &store, &c.id, offset, false)?;
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)));
    }
    each(&args.containers, |name| {
        let c = store.find_container(name)?;
        if c.state() != ContainerState::Running {
            crate::runtime::spawn_monitor_process(&store, &c)?;
        }
        println!("{name}");
        Ok(())
    })
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn wait(settings: &GlobalSettings, args: ContainersArg) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    each(&args.containers, |name| {
        let c = store.find_container(name)?;
        loop {
            match wait_exited(settings, &store, &c.id, Duration::from_secs(3600))? {
                Ok(Some(r)) if r.state() == ContainerState::Exited => {
                    println!("{}", r.exit_code.unwrap_or(rbk_exec::UNKNOWN_EXIT));
                    return Ok(());
                }
                Ok(None) => bail!("No such container: {name}"),
                // Created: docker waits for it to run and exit.
                Ok(Some(_)) => std::thread::sleep(POLL),
                Err(_) => {}
            }
        }
    })
}

pub(crate) fn logs(settings: &GlobalSettings, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    let c = store.find_container(args.container.as_deref().unwrap_or_default())?;
    let path = store.container_dir(&c.id).join("container.log");
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("invalid value for --tail {n:?}: expected a number or all")
        })?),
    };
    let (mut entries, offset) = rbk_exec::read_log(&path, 0)?;
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    print_entries(&entries, args.timestamps)?;
    if args.follow {
        follow(settings, &store, &c.id, offset, args.timestamps)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the log of container `id` from `offset` on as it grows, until
/// the container no longer runs; its exit code then.
fn follow(
    settings: &GlobalSettings,
    store: &Store,
    id: &str,
    mut offset: u64,
    timestamps: bool,
) -> anyhow::Result<i32> {
    let path = store.container_dir(id).join("container.log");
    loop {
        let done = wait_exited(settings, store, id, Duration::ZERO)?;
        let (entries, next) = rbk_exec::read_log(&path, offset)?;
        offset = next;
        print_entries(&entries, timestamps)?;
        match done {
            Ok(Some(r)) if r.state() == ContainerState::Exited => {
                return Ok(r.exit_code.unwrap_or(rbk_exec::UNKNOWN_EXIT))
            }
            Ok(None) => return Ok(0),
            _ => std::thread::sleep(POLL),
        }
    }
}

fn print_entries(entries: &[LogEntry], timestamps: bool) -> std::io::Result<()> {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for entry in entries {
        let sink: &mut dyn Write = match entry.stream {
            LogStream::Stdout => &mut out,
            LogStream::Stderr => &mut err,
        };
        if timestamps {
            write!(sink, "{} ", entry.time)?;
        }
        sink.write_all(entry.log.as_bytes())?;
    }
    out.flush()?;
    err.flush()
}

pub(crate) fn exec(settings: &GlobalSettings, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.detach && args.tty {
        bail!("rbk exec -d does not support -t");
    }
    if args.tty && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let store = open_containers(settings)?;
    let c = store.find_container(&args.container)?;
    if c.state() != ContainerState::Running {
        bail!("container {} is not running", c.id);
    }
    let user = match &args.user {
        Some(spec) => {
            let merged = store.container_dir(&c.id).join("merged");
            let root = rbk_exec::open_root(&merged)?;
            let ids = rbk_exec::resolve_user(&root, spec)?;
            format!("{}:{}", ids.uid, ids.gid)
        }
        None => String::new(),
    };
    let mut env = Vec::new();
    if args.tty {
        env.push("TERM=xterm".to_string());
    }
    for pair in &args.env {
        match pair.split_once('=') {
            Some(_) => env.push(pair.clone()),
            None => {
                if let Ok(v) = std::env::var(pair) {
                    env.push(format!("{pair}={v}"));
                }
            }
        }
    }
    let request = rbk_exec::ExecRequest {
        args: &args.command,
        env: &env,
        cwd: args.workdir.as_deref().unwrap_or(""),
        user: &user,
        stdin: args.interactive,
        tty: args.tty,
        detach: args.detach,
    };
    let code = rbk_exec::exec_in_container(&runc_for(settings, &c)?, &c.id, &request)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// Runs `one` for each name, reporting each failure; fails if any did.
fn each(
    names: &[String],
    mut one: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in names {
        if let Err(e) = one(name) {
            crate::render::error(&e);
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
