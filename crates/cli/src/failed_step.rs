//! A container in the state a failed `RUN` step left (its file system,
//! mounts, environment, working directory and user): what `rbk debug
//! step` opens, and `rbk build --on-error=shell` right after the failure.
//! The step's changes are a read-only layer under the container's own
//! upper dir, so the kept step stays as it was for the next look.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use rbk_exec::Runc;
use rbk_store::image::format_rfc3339;
use rbk_store::{ContainerRecord, FailedStep, Store};

use crate::runtime::{foreground, new_id};

/// The shell opened when no command is given.
const SHELL: &str = "/bin/sh";

/// Runs `command` (a shell when empty) in failed step `digest`, with this
/// process's stdin (and a terminal when stdin is one); its exit code.
pub(crate) fn open_shell(
    store: &Store,
    runtime: Option<PathBuf>,
    digest: &str,
    command: &[String],
) -> anyhow::Result<i32> {
    let step = store.failed_step(digest)?;
    let tty = std::io::stdin().is_terminal();
    let mounts = rbk_exec::failed_step_mounts(store, &step)?;
    announce(&step, &mounts.skipped)?;
    let record = record(store, &step, mounts.mounts.clone(), command, tty);
    store.create_container(&record)?;
    let runc = Runc::new(runtime, store.root().join("runc"))?;
    let code = foreground(store, &runc, &record, &step.layers, true);
    drop(mounts);
    let removed = store.remove_container(&record.id);
    let code = code.context("running a container in the failed step")?;
    removed?;
    Ok(code)
}

/// Tells the user which step this is and how it failed.
fn announce(step: &FailedStep, skipped: &[String]) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "failed step {}: {:?} exited with code {}",
        step.digest,
        step.args.join(" "),
        step.code
    )?;
    for s in skipped {
        writeln!(err, "mount not made again: {s}")?;
    }
    writeln!(
        err,
        "in {} as {}; exit the shell to leave (the step stays kept until `rbk prune`)",
        step.cwd,
        if step.user.is_empty() {
            "root"
        } else {
            &step.user
        }
    )
}

/// A container record for `step`: removed when it exits.
fn record(
    store: &Store,
    step: &FailedStep,
    mounts: Vec<rbk_store::ContainerMount>,
    command: &[String],
    tty: bool,
) -> ContainerRecord {
    let id = new_id();
    let mut env = step.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let args = match command.is_empty() {
        true => vec![SHELL.to_string()],
        false => command.to_vec(),
    };
    ContainerRecord {
        name: format!("rbk_debug_{}", &id[..12]),
        image: step.digest,
        image_name: format!("failed step {}", step.digest),
        entrypoint: Vec::new(),
        cmd: args.clone(),
        args,
        env,
        cwd: if step.cwd.is_empty() {
            "/".into()
        } else {
            step.cwd.clone()
        },
        user: step.user.clone(),
        created: format_rfc3339(SystemTime::now()),
        exit_code: None,
        finished: None,
        hostname: step.hostname.clone(),
        network: step.network.clone(),
        stop_signal: "SIGTERM".into(),
        runtime: None,
        auto_remove: true,
        tty,
        open_stdin: true,
        started: None,
        pid: None,
        monitor: None,
        error: None,
        mounts,
        read_only: false,
        privileged: false,
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        init: None,
        base_upper: Some(
            store
                .failed_step_dir(&step.digest)
                .join("upper")
                .to_string_lossy()
                .into_owned(),
        ),
        id,
    }
}
