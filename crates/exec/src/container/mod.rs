//! Containers outside builds (`rbk run`, `rbk commit`, `rbk diff`): the
//! image's layers (plus the init layer) under the container's own upper dir,
//! run by runc with the same spec as `RUN` steps, and that upper dir turned
//! into a layer or a list of changes afterwards.
//!
//! # Who runs a container
//!
//! - In the foreground ([`spawn_foreground`]), `runc run` itself, with
//!   rbk's stdio: runc forwards signals to the process and, with a
//!   terminal, makes the pseudo-terminal, puts the user's terminal in raw
//!   mode, copies window-size changes (SIGWINCH) and restores the terminal
//!   on exit. rbk only forwards the signals it gets to runc.
//! - Detached ([`monitor_container`]), a small monitor process per
//!   container (rbk re-executed, like podman's conmon) starts `runc run
//!   --detach`, becomes the child subreaper so the container's init is its
//!   child, writes the output to the container's log ([`logs`]) and records
//!   the exit code. It exits with the container.
//! - Either way the record names the process responsible ([`Owner`]);
//!   [`reap_containers`] repairs the records, runc state and mounts of
//!   containers whose owner was killed.

mod console;
mod copy;
mod debug_step;
mod logs;
mod monitor;
mod options;
mod procs;
mod reap;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rbk_graph::{NetworkMode, SecurityMode};
use rbk_store::{overlay_mount, BlobWrite, ContainerRecord, Descriptor, Layer, Store};

use crate::layer::{LayerOptions, LAYER_TAR};
use crate::ops::exec::{ensure_init_layer, runtime_errors, Entitlements, RunRequest, Runc};
use crate::snapshot::lower_dirs;
use crate::{mount, Error, MountGuard, Result};

pub use copy::{
    copy, copy_tar_in, locate, write_source_tar, Copied, CopyOptions, CopyRoot, Located,
};
pub use debug_step::{failed_step_mounts, StepMounts};
pub use logs::{read_log, LogEntry, LogStream};
pub use monitor::monitor_container;
pub use options::CAPABILITIES;
pub use procs::{current_owner, is_alive};
pub use reap::{reap_containers, UNKNOWN_EXIT};

/// A container's root mounted and its runc bundle written; the root is
/// unmounted and runc's state deleted when this is dropped.
#[derive(Debug)]
pub struct PreparedContainer {
    id: String,
    bundle: PathBuf,
    runc: Runc,
    _root: MountGuard,
    _lock: rbk_store::FileLock,
}

impl PreparedContainer {
    /// The runc bundle directory.
    pub fn bundle(&self) -> &Path {
        &self.bundle
    }
}

impl Drop for PreparedContainer {
    fn drop(&mut self) {
        // Nothing more to do about a failure: the reaper retries later.
        let _ = self.runc.delete(&self.id);
    }
}

/// Mounts container `record`'s root (the image `layers` under its own
/// upper dir) and writes its bundle: the build's spec (Docker's defaults)
/// plus the record's mounts, read-only root, capabilities, init and, when
/// `terminal`, a pseudo-terminal.
pub fn prepare_container(
    store: &Store,
    runc: &Runc,
    layers: &[Layer],
    record: &ContainerRecord,
    terminal: bool,
) -> Result<PreparedContainer> {
    let dir = store.container_dir(&record.id);
    // Held while the root is mounted: `rbk cp` into a stopped container
    // mounts the same upper dir and must not run alongside.
    let lock = copy::root_lock(store, &record.id)?;
    let (binds, tmpfs) = options::mounts(store, record)?;
    let args = options::args(record);
    let mut lowers = container_lowers(store, layers)?;
    if let Some(base) = &record.base_upper {
        // Under the init layer, which stays on top.
        lowers.insert(lowers.len() - 1, PathBuf::from(base));
    }
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    let m = overlay_mount(&lowers, Some((&upper, &work)));
    // A root left mounted by a killed run would hide under a second mount.
    let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
    let root = mount(&m, &merged)?;
    let bundle = dir.join("bundle");
    // A previous run's state (a run that was killed) would make runc refuse
    // the id.
    let _ = runc.delete(&record.id);
    let request = RunRequest {
        id: &record.id,
        rootfs: &merged,
        bundle: &bundle,
        args: &args,
        env: &record.env,
        cwd: &record.cwd,
        user: &record.user,
        network: match record.network.as_str() {
            "none" => NetworkMode::None,
            _ => NetworkMode::Host,
        },
        security: if record.privileged {
            SecurityMode::Insecure
        } else {
            SecurityMode::Sandbox
        },
        entitlements: Entitlements {
            network_host: true,
            security_insecure: true,
        },
        hostname: &record.hostname,
        mounts: &binds,
        tmpfs: &tmpfs,
    };
    runc.prepare(&request)?;
    options::patch_spec(&bundle.join("config.json"), record, terminal)?;
    Ok(PreparedContainer {
        id: record.id.clone(),
        bundle,
        runc: runc.clone(),
        _root: root,
        _lock: lock,
    })
}

/// A container run by `runc run` in the foreground, with this process's
/// stdio (stdin only when `stdin`).
#[derive(Debug)]
pub struct Foreground {
    child: Child,
    runc: Runc,
    log: PathBuf,
    id: String,
}

/// Starts `runc run` for `prepared` in the foreground.
pub fn spawn_foreground(prepared: &PreparedContainer, stdin: bool) -> Result<Foreground> {
    let log = prepared.bundle.join("runc.log");
    let _ = std::fs::remove_file(&log);
    let runc = &prepared.runc;
    let child = runc
        .command()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(&prepared.bundle)
        .arg(&prepared.id)
        .stdin(if stdin {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .map_err(|e| Error::io("running", runc.binary(), e))?;
    Ok(Foreground {
        child,
        runc: runc.clone(),
        log,
        id: prepared.id.clone(),
    })
}

impl Foreground {
    /// runc's pid (signals sent to it reach the container's process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the container; its exit code (128 + signal when killed).
    /// A process that could not start is an [`Error::Runtime`] with runc's
    /// message.
    pub fn wait(mut self) -> Result<i32> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io("waiting for", self.runc.binary(), e))?;
        let code = status.code().unwrap_or(255);
        if code != 0 {
            if let Some(message) = runtime_errors(&self.log) {
                return Err(self.runc.error(format!("container {}: {message}", self.id)));
            }
        }
        Ok(code)
    }
}

/// Sends `signal` (a name such as `TERM`/`SIGTERM` or a number) to the
/// container's init through `runc kill`.
pub fn signal_container(runc: &Runc, id: &str, signal: &str) -> Result<()> {
    runc_simple(runc, &["kill", id, signal])
}

/// Freezes (`pause`) or thaws (`resume`) every process of the container.
pub fn pause_container(runc: &Runc, id: &str, pause: bool) -> Result<()> {
    runc_simple(runc, &[if pause { "pause" } else { "resume" }, id])
}

fn runc_simple(runc: &Runc, args: &[&str]) -> Result<()> {
    let out = runc
        .command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running", runc.binary(), e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(runc.error(format!("{}: {}", args.join(" "), stderr.trim())))
}

/// Runs `runc exec` in the running container `id`: `args` with `env`,
/// `cwd` and `user` (`uid[:gid]` numbers), this process's stdio (stdin
/// when `stdin`), a terminal when `tty`. Its exit code.
pub fn exec_in_container(runc: &Runc, id: &str, exec: &ExecRequest<'_>) -> Result<i32> {
    let mut cmd: Command = runc.command();
    cmd.arg("exec");
    if exec.detach {
        // runc returns once the process runs; its output goes nowhere, as
        // docker's `exec -d`.
        cmd.arg("--detach")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    if exec.tty {
        cmd.arg("--tty");
    }
    for e in exec.env {
        cmd.arg("--env").arg(e);
    }
    if !exec.cwd.is_empty() {
        cmd.arg("--cwd").arg(exec.cwd);
    }
    if !exec.user.is_empty() {
        cmd.arg("--user").arg(exec.user);
    }
    cmd.arg(id).args(exec.args);
    cmd.stdin(if exec.stdin && !exec.detach {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    let status = cmd
        .status()
        .map_err(|e| Error::io("running", runc.binary(), e))?;
    Ok(status.code().unwrap_or(255))
}

/// What `rbk exec` runs.
#[derive(Clone, Debug)]
pub struct ExecRequest<'a> {
    /// The command line.
    pub args: &'a [String],
    /// Extra `KEY=VALUE` pairs.
    pub env: &'a [String],
    /// Working directory (empty: the container's).
    pub cwd: &'a str,
    /// `uid[:gid]` (empty: the container's).
    pub user: &'a str,
    /// Pass stdin (`-i`).
    pub stdin: bool,
    /// A terminal (`-t`).
    pub tty: bool,
    /// Start it and return (`-d`).
    pub detach: bool,
}

/// The container's changes (its `upper` dir) as a layer in the store: the
/// same deterministic tar a build's step makes, so identical changes give
/// an identical layer. `None` when it changed nothing.
pub fn container_layer(store: &Store, upper: &Path) -> Result<Option<Layer>> {
    let empty = std::fs::read_dir(upper)
        .map_err(|e| Error::io("listing", upper, e))?
        .next()
        .is_none();
    if empty {
        return Ok(None);
    }
    // Packed straight into the store's ingest through a pipe: no temporary
    // tar on disk, each byte written and hashed once.
    let (mut reader, writer) = std::io::pipe().map_err(|e| Error::io("packing", upper, e))?;
    let dir = upper.to_path_buf();
    let packer = std::thread::spawn(move || -> Result<()> {
        let mut out = std::io::BufWriter::new(writer);
        crate::write_layer_tar(&dir, &mut out, &LayerOptions::default())?;
        std::io::Write::flush(&mut out).map_err(|e| Error::io("packing", &dir, e))
    });
    let stored = store.put(&mut reader, None);
    drop(reader); // a failed ingest stops the packer with EPIPE
    let packed = packer
        .join()
        .map_err(|_| Error::io("packing", upper, std::io::Error::other("packer panicked")))?;
    packed?;
    let info = stored?;
    Ok(Some(Layer {
        diff_id: info.digest,
        blob: Descriptor {
            media_type: LAYER_TAR.into(),
            digest: info.digest,
            size: info.size,
            annotations: Default::default(),
        },
    }))
}

/// Writes container `upper`'s whole file system (the image `layers`, the
/// init layer's mountpoints and its own changes, flattened) to `out` as a
/// tar (`rbk export`). The layers are mounted read-only, with the upper dir
/// as the top lower layer, so a running or starting container is not
/// touched; the mount lives under the store's `tmp/`, where a killed
/// export's is cleaned up.
pub fn export_container(
    store: &Store,
    layers: &[Layer],
    upper: &Path,
    out: &mut (dyn std::io::Write + Send),
) -> Result<()> {
    let mut lowers = container_lowers(store, layers)?;
    lowers.push(upper.to_path_buf());
    let (guard, _target) = mount_in_tmp(store, &overlay_mount(&lowers, None), "export-")?;
    let written = crate::write_layer_tar(guard.target(), out, &LayerOptions::default());
    drop(guard);
    written
}

/// The lower dirs of a container's root: the image `layers`, then the
/// init layer.
fn container_lowers(store: &Store, layers: &[Layer]) -> Result<Vec<PathBuf>> {
    let mut lowers = lower_dirs(store, layers)?;
    lowers.push(ensure_init_layer(&store.root().join("init-layer"))?);
    Ok(lowers)
}

/// Mounts `m` on a new directory under the store's `tmp/` (where a killed
/// command's mounts are cleaned up by `recover_store`). Drop the guard
/// before the directory.
fn mount_in_tmp(
    store: &Store,
    m: &rbk_store::Mount,
    prefix: &str,
) -> Result<(MountGuard, tempfile::TempDir)> {
    let tmp = store.root().join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
    let target = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&tmp)
        .map_err(|e| Error::io("creating a directory in", &tmp, e))?;
    let guard = mount(m, target.path())?;
    Ok((guard, target))
}

/// A change `rbk diff` lists, as Docker prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `A`: added.
    Added,
    /// `C`: changed (or a directory with changes inside).
    Changed,
    /// `D`: deleted.
    Deleted,
}

/// The container's changes against its image: each path of its upper dir,
/// `D` for whiteouts, `C` for what the image has, `A` for the rest; sorted
/// by path.
pub fn container_changes(
    store: &Store,
    layers: &[Layer],
    upper: &Path,
) -> Result<Vec<(Change, String)>> {
    let lowers = lower_dirs(store, layers)?;
    let in_image = |rel: &Path| {
        lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok())
    };
    let mut out = Vec::new();
    let mut pending = vec![std::path::PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = upper.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let path = rel.join(entry.file_name());
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            let change = match (whiteout, in_image(&path)) {
                (true, _) => Change::Deleted,
                (false, true) => Change::Changed,
                (false, false) => Change::Added,
            };
            out.push((change, format!("/{}", path.display())));
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}
