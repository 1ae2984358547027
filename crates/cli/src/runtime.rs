//! The store and the OCI runtime as commands open them: what a killed rbk
//! left behind (build containers, `rbk run` containers) is reaped first;
//! and the container services several verbs share (a new id, waiting for
//! an exit, starting a detached container's monitor, running one in the
//! foreground). Used by `build`,
//! `prune`, `system`, `inspect` and the container commands, so no verb
//! calls into another for them.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rbk_exec::Runc;
use rbk_store::image::format_rfc3339;
use rbk_store::{ContainerRecord, ContainerState, Digest, Store};

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
) -> anyhow::Result<()> {
    let state_dir = store.root().join("runc");
    // Checked before `Runc::new`, which runs `runc --version`: most
    // commands find no container state at all.
    if !Runc::has_containers(&state_dir) {
        return Ok(());
    }
    if let Ok(runc) = Runc::new(settings.runtime.clone(), state_dir) {
        runc.reap_orphans()?;
    }
    Ok(())
}

/// A container id: 64 hex digits, from the time, the process and a counter.
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{now}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Digest::sha256_of(seed.as_bytes()).hex().to_string()
}

/// How often a waiting command looks at the record again.
const POLL: Duration = Duration::from_millis(50);

/// Waits up to `timeout` for container `id` to exit; its record then
/// (`None` once it was removed, as `--rm` does). `Ok(Err(record))` when it
/// still runs.
pub(crate) fn wait_exited(
    settings: &GlobalSettings,
    store: &Store,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Result<Option<ContainerRecord>, ContainerRecord>> {
    let deadline = Instant::now() + timeout;
    loop {
        rbk_exec::reap_containers(store, settings.runtime.as_deref())?;
        let record = match store.read_container(id) {
            Ok(r) => r,
            Err(e) if e.is_container_not_found() => return Ok(Ok(None)),
            Err(e) => return Err(e.into()),
        };
        if record.state() != ContainerState::Running {
            return Ok(Ok(Some(record)));
        }
        if Instant::now() >= deadline {
            return Ok(Err(record));
        }
        std::thread::sleep(POLL);
    }
}

/// Starts the monitor of `record`'s container and waits until it says the
/// process runs (or why it does not).
pub(crate) fn spawn_monitor_process(store: &Store, record: &ContainerRecord) -> anyhow::Result<()> {
    let dir = store.container_dir(&record.id);
    let log_path = dir.join("monitor.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--root").arg(store.root()).arg("container-monitor");
    if let Some(runtime) = &record.runtime {
        cmd.arg("--runtime").arg(runtime);
    }
    let mut child = cmd
        .arg(&record.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting the container's monitor")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut line)?;
    }
    match line.trim() {
        "ok" => Ok(()),
        "" => {
            let _ = child.wait();
            let why = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the container's monitor exited: {}", why.trim())
        }
        other => bail!("{}", other.strip_prefix("error: ").unwrap_or(other)),
    }
}

/// Signals a foreground run passes on to the container.
const FORWARDED: [i32; 6] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
];

/// Runs the container over `layers` with this process as its owner (with
/// this process's stdin when `stdin`); its exit code.
pub(crate) fn foreground(
    store: &Store,
    runc: &Runc,
    record: &ContainerRecord,
    layers: &[rbk_store::Layer],
    stdin: bool,
) -> anyhow::Result<i32> {
    store.modify_container(&record.id, |r| {
        r.monitor = Some(rbk_exec::current_owner());
        r.started = Some(format_rfc3339(SystemTime::now()));
    })?;
    let prepared = rbk_exec::prepare_container(store, runc, layers, record, record.tty)?;
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED)?;
    let handle = signals.handle();
    let running = rbk_exec::spawn_foreground(&prepared, stdin)?;
    let pid = rustix::process::Pid::from_raw(running.pid() as i32);
    let forwarder = std::thread::spawn(move || {
        for signal in signals.forever() {
            if let (Some(pid), Some(signal)) =
                (pid, rustix::process::Signal::from_named_raw(signal))
            {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    });
    let code = running.wait();
    handle.close();
    let _ = forwarder.join();
    drop(prepared);
    Ok(code?)
}
