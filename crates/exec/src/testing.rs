//! Test doubles, behind the `testing` feature: solve vertices without root,
//! containers or runc.
//!
//! [`FakeRuntime`] is a [`Runtime`] that runs nothing. It records every
//! [`RunRequest`] it is handed ([`RecordedRun`]), does to the root what it
//! was told for that command line ([`FakeRun`]: files to write, output to
//! stream, an exit code) and checks entitlements as the real runtime does.
//! Combined with [`SnapshotterChoice::Copy`](crate::SnapshotterChoice), a
//! [`Solver`](crate::Solver) over a store in a temporary directory runs
//! `RUN` steps as any user (deleting files in a step still needs root: the
//! copy snapshotter writes deletions as 0/0 character devices).
//!
//! ```
//! use rbk_exec::testing::{FakeRun, FakeRuntime};
//!
//! let runtime = FakeRuntime::new();
//! runtime.on("make", FakeRun::new().write("/out/app", "binary").stdout("built\n"));
//! runtime.on("make test", FakeRun::new().exit(2));
//! // … solve a DAG with `Solver::new(&store, &runtime, options)` …
//! assert!(runtime.commands().is_empty());
//! ```

use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

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
}

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
        for (path, data) in &run.files {
            write_file(request.rootfs, path, data)?;
        }
        if !run.stdout.is_empty() {
            output(OutputStream::Stdout, &run.stdout);
        }
        if !run.stderr.is_empty() {
            output(OutputStream::Stderr, &run.stderr);
        }
        Ok(run.exit_code)
    }
}
