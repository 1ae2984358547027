//! [`FakeRuntime`]: a recording [`Runtime`] that runs nothing (see the
//! module docs of `testing`).

use std::path::{Component, Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rbk_graph::{NetworkMode, SecurityMode};

use crate::ops::exec::check_entitlements;
use crate::{BindMount, Error, OutputStream, Result, RunRequest, Runtime, TmpfsMount};

/// What the fake does for one command line: everything here happens, in
/// this order, then the exit code is returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeRun {
    /// Files written into the root (absolute paths inside it; parents are
    /// created as needed, mode 0755; files get mode 0644).
    pub files: Vec<(String, Vec<u8>)>,
    /// Bytes streamed as the process's standard output.
    pub stdout: Vec<u8>,
    /// Bytes streamed as the process's standard error.
    pub stderr: Vec<u8>,
    /// The exit code (0: success).
    pub exit_code: i32,
    /// Before anything else, wait until this many runs (this one included)
    /// have been in progress at once: a test's way to see that independent steps
    /// run in parallel. The wait gives up after [`PEER_WAIT`], so a solver
    /// that runs them one at a time fails the test's assertion on
    /// [`FakeRuntime::most_at_once`] instead of hanging.
    pub peers: usize,
}

/// The longest a run waits for its [`FakeRun::peers`].
pub const PEER_WAIT: Duration = Duration::from_secs(30);

impl FakeRun {
    /// A run that writes nothing and exits 0.
    pub fn new() -> FakeRun {
        FakeRun::default()
    }

    /// Also writes `data` to `path` inside the root.
    pub fn write(mut self, path: &str, data: impl Into<Vec<u8>>) -> FakeRun {
        self.files.push((path.to_string(), data.into()));
        self
    }

    /// Also streams `data` on standard output.
    pub fn stdout(mut self, data: impl Into<Vec<u8>>) -> FakeRun {
        self.stdout.extend(data.into());
        self
    }

    /// Also streams `data` on standard error.
    pub fn stderr(mut self, data: impl Into<Vec<u8>>) -> FakeRun {
        self.stderr.extend(data.into());
        self
    }

    /// Exits with `code`.
    pub fn exit(mut self, code: i32) -> FakeRun {
        self.exit_code = code;
        self
    }

    /// First waits for `n` runs in progress at once (see
    /// [`peers`](FakeRun::peers)).
    pub fn with_peers(mut self, n: usize) -> FakeRun {
        self.peers = n;
        self
    }
}

/// A [`RunRequest`] as the fake saw it, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRun {
    /// The container id.
    pub id: String,
    /// The root the process would have seen.
    pub rootfs: PathBuf,
    /// `argv`.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// The `USER` value.
    pub user: String,
    /// `RUN --network`.
    pub network: NetworkMode,
    /// `RUN --security`.
    pub security: SecurityMode,
    /// The hostname.
    pub hostname: String,
    /// Extra bind mounts.
    pub mounts: Vec<BindMount>,
    /// tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
}

impl RecordedRun {
    /// The command line, `args` joined with spaces (the key of
    /// [`FakeRuntime::on`]).
    pub fn command(&self) -> String {
        self.args.join(" ")
    }
}

/// A recording [`Runtime`] (see the module docs).
#[derive(Debug, Default)]
pub struct FakeRuntime {
    rules: Mutex<Vec<(String, FakeRun)>>,
    runs: Mutex<Vec<RecordedRun>>,
    /// Runs in progress now, and the most there ever were.
    running: Mutex<(usize, usize)>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeRuntime {
    /// A fake whose every run writes nothing and exits 0.
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// What to do when the command line (`args` joined with spaces) is
    /// `command`, or ends with ` command` (so `"make"` matches
    /// `/bin/sh -c make`). A later rule wins over an earlier one.
    pub fn on(&self, command: &str, run: FakeRun) -> &FakeRuntime {
        lock(&self.rules).push((command.to_string(), run));
        self
    }

    /// Every request so far, in the order they came.
    pub fn runs(&self) -> Vec<RecordedRun> {
        lock(&self.runs).clone()
    }

    /// The command lines run so far, in order.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.runs).iter().map(RecordedRun::command).collect()
    }

    /// The most runs that were ever in progress at once.
    pub fn most_at_once(&self) -> usize {
        lock(&self.running).1
    }

    /// Counts a run in, then waits until `peers` runs have been in
    /// progress at once (at most [`PEER_WAIT`]). It waits on the most
    /// there ever were, not on how many run now: a peer that saw the
    /// count reached may finish before this run wakes up.
    fn enter(&self, peers: usize) {
        let mut running = lock(&self.running);
        running.0 += 1;
        running.1 = running.1.max(running.0);
        self.changed.notify_all();
        let _ = self
            .changed
            .wait_timeout_while(running, PEER_WAIT, |r| r.1 < peers);
    }

    fn leave(&self) {
        lock(&self.running).0 -= 1;
        self.changed.notify_all();
    }

    fn rule(&self, command: &str) -> FakeRun {
        lock(&self.rules)
            .iter()
            .rev()
            .find(|(c, _)| command == c || command.ends_with(&format!(" {c}")))
            .map(|(_, run)| run.clone())
            .unwrap_or_default()
    }
}

/// `path` inside `root`, refusing `..` (the fake writes where a test said,
/// never outside the root).
fn inside(root: &Path, path: &str) -> Result<PathBuf> {
    let mut out = root.to_path_buf();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Invalid(format!(
                    "fake run: path {path:?} leaves the root"
                )))
            }
        }
    }
    Ok(out)
}

fn write_file(root: &Path, path: &str, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let target = inside(root, path)?;
    if let Some(parent) = target.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| Error::io("creating directory", parent, e))?;
    }
    std::fs::write(&target, data).map_err(|e| Error::io("writing", &target, e))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io("setting mode", &target, e))
}

impl Runtime for FakeRuntime {
    fn run(
        &self,
        request: &RunRequest<'_>,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<i32> {
        let recorded = RecordedRun {
            id: request.id.to_string(),
            rootfs: request.rootfs.to_path_buf(),
            args: request.args.to_vec(),
            env: request.env.to_vec(),
            cwd: request.cwd.to_string(),
            user: request.user.to_string(),
            network: request.network,
            security: request.security,
            hostname: request.hostname.to_string(),
            mounts: request.mounts.to_vec(),
            tmpfs: request.tmpfs.to_vec(),
        };
        let command = recorded.command();
        lock(&self.runs).push(recorded);
        check_entitlements(request).map_err(|message| Error::Runtime {
            runtime: "fake".into(),
            message,
        })?;
        let run = self.rule(&command);
        self.enter(run.peers);
        let done = play(&run, request.rootfs, output);
        self.leave();
        done.map(|()| run.exit_code)
    }
}

/// Does what `run` says in `root`.
fn play(run: &FakeRun, root: &Path, output: &mut dyn FnMut(OutputStream, &[u8])) -> Result<()> {
    for (path, data) in &run.files {
        write_file(root, path, data)?;
    }
    if !run.stdout.is_empty() {
        output(OutputStream::Stdout, &run.stdout);
    }
    if !run.stderr.is_empty() {
        output(OutputStream::Stderr, &run.stderr);
    }
    Ok(())
}
