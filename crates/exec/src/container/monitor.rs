//! The per-container monitor of a detached container (`run -d`, `start`):
//! the process that starts `runc run --detach`, holds the container's
//! output pipes, writes its log and records its exit. It is rbk itself,
//! re-executed by the CLI, and lives exactly as long as the container.

use std::io;
use std::process::Stdio;
use std::time::SystemTime;

use rbk_store::image::format_rfc3339;
use rbk_store::{ContainerState, Error as StoreError, Layer, Store};

use super::console;
use super::logs::{LogStream, LogWriter};
use super::{prepare_container, procs};
use crate::ops::exec::{become_subreaper, runtime_errors, wait_init, Runc};
use crate::{Error, Result};

/// Runs container `id` from its record over the image `layers` until it
/// exits, as its monitor. `ready` is told once the process runs (or why it
/// could not start), so the caller can return at once. Returns the exit
/// code; the record has it too.
pub fn monitor_container(
    store: &Store,
    runc: &Runc,
    layers: &[Layer],
    id: &str,
    ready: &mut dyn FnMut(std::result::Result<(), &Error>),
) -> Result<i32> {
    let started = claim(store, id).and_then(|()| start(store, runc, layers, id));
    let running = match started {
        Ok(running) => running,
        Err(e) => {
            let message = e.to_string();
            let _ = store.modify_container(id, |r| {
                r.monitor = None;
                r.error = Some(message);
            });
            ready(Err(&e));
            return Err(e);
        }
    };
    ready(Ok(()));
    let log = LogWriter::open(&store.container_dir(id).join("container.log"))?;
    let Running {
        prepared,
        outputs,
        stdin,
    } = running;
    let copiers: Vec<_> = outputs
        .into_iter()
        .map(|(from, s)| {
            let log = log.clone();
            std::thread::spawn(move || log.copy(from, s))
        })
        .collect();
    let code = wait_init(&prepared.bundle().join("init.pid"))
        .map_err(|e| Error::io("waiting for container", id, e));
    drop(stdin);
    for copier in copiers {
        let _ = copier.join();
    }
    drop(prepared); // runc delete, unmount
    let code = code.unwrap_or(255);
    let record = store.modify_container(id, |r| {
        r.exit_code = Some(code);
        r.finished = Some(format_rfc3339(SystemTime::now()));
        r.pid = None;
        r.monitor = None;
    })?;
    if record.auto_remove {
        store.remove_container(id)?;
    }
    Ok(code)
}

/// Names this process as the container's owner; refuses a running one.
fn claim(store: &Store, id: &str) -> Result<()> {
    let lock = store.containers_lock()?;
    let mut record = store.read_container(id)?;
    if record.state() == ContainerState::Running {
        return Err(StoreError::ContainerConflict(format!(
            "container {} is already running",
            record.name
        ))
        .into());
    }
    record.monitor = Some(procs::current_owner());
    record.error = None;
    store.write_container_locked(&lock, &record)?;
    Ok(())
}

/// A started container: its root, where its output comes from, and what
/// keeps its stdin open (`-i`) until it exits.
struct Running {
    prepared: super::PreparedContainer,
    outputs: Vec<(Box<dyn io::Read + Send>, LogStream)>,
    stdin: Option<io::PipeWriter>,
}

/// Mounts, writes the bundle and starts the process detached; records it
/// as running. With `-t` the process gets a pseudo-terminal whose master
/// runc hands over a console socket ([`console`]): everything it writes is
/// the log's stdout, and holding the master keeps the terminal open, so a
/// `-dit` shell waits for input instead of exiting. With `-i` alone a pipe
/// that is never written keeps its stdin open.
fn start(store: &Store, runc: &Runc, layers: &[Layer], id: &str) -> Result<Running> {
    let record = store.read_container(id)?;
    let prepared = prepare_container(store, runc, layers, &record, record.tty)?;
    let bundle = prepared.bundle().to_path_buf();
    let (log, pid_file) = (bundle.join("runc.log"), bundle.join("init.pid"));
    let _ = std::fs::remove_file(&log);
    become_subreaper().map_err(|e| runc.error(format!("becoming a child subreaper: {e}")))?;
    let mut cmd = runc.command();
    cmd.arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "run", "--detach", "--pid-file"])
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&bundle);
    let pipe = || io::pipe().map_err(|e| Error::io("creating a pipe for", id, e));
    let mut outputs: Vec<(Box<dyn io::Read + Send>, LogStream)> = Vec::new();
    let mut stdin = None;
    let status = if record.tty {
        // A unix socket's path is short (108 bytes): not under the store.
        let socket_dir = tempfile::Builder::new()
            .prefix("rbk-console-")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("creating a directory in", "/tmp", e))?;
        let socket = socket_dir.path().join("s");
        let listener = console::listen(&socket)?;
        cmd.arg("--console-socket").arg(&socket).arg(id);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io("running", runc.binary(), e))?;
        if let Some(master) = console::receive(&listener, &mut child)? {
            outputs.push((Box::new(std::fs::File::from(master)), LogStream::Stdout));
        }
        child
            .wait()
            .map_err(|e| Error::io("running", runc.binary(), e))?
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        outputs.push((Box::new(out_r), LogStream::Stdout));
        outputs.push((Box::new(err_r), LogStream::Stderr));
        if record.open_stdin {
            let (in_r, in_w) = pipe()?;
            cmd.stdin(in_r);
            stdin = Some(in_w);
        } else {
            cmd.stdin(Stdio::null());
        }
        cmd.arg(id).stdout(out_w).stderr(err_w);
        let status = cmd.status();
        // The copies runc's child got are closed with `cmd`.
        drop(cmd);
        status.map_err(|e| Error::io("running", runc.binary(), e))?
    };
    if !status.success() {
        let message = runtime_errors(&log).unwrap_or_else(|| format!("`run` failed: {status}"));
        return Err(runc.error(format!("container {id}: {message}")));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .unwrap_or(0);
    store.modify_container(id, |r| {
        r.started = Some(format_rfc3339(SystemTime::now()));
        r.pid = Some(pid);
        r.exit_code = None;
        r.finished = None;
    })?;
    Ok(Running {
        prepared,
        outputs,
        stdin,
    })
}
