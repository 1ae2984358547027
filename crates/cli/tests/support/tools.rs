//! The daemonless tools of the interop matrix — buildah, podman, skopeo,
//! umoci and runc — each driven with state of its own under a test's scratch
//! directory, so that tests run in parallel without sharing anything.
//!
//! buildah and podman get a private `--root`/`--runroot` on the `vfs` driver
//! (no overlay mounts to leak, and nested overlay is not always possible),
//! `runc` as their runtime (crun fails on this machine's hybrid cgroups),
//! cgroupfs and file events (there is no systemd or journald). A missing tool
//! is a failure that names the Debian package, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One tool with its fixed leading arguments.
pub(crate) struct Tool {
    program: &'static str,
    leading: Vec<String>,
    dir: PathBuf,
    /// The run root, when it is not under `dir`.
    runroot: Option<PathBuf>,
}

/// A run root of its own, short enough for podman (it refuses one longer
/// than 50 bytes: sockets live under it) and unique across test processes.
fn short_runroot() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(format!("/tmp/rbk-pm-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Panics unless `program` is installed (in `/usr/bin` or `/usr/sbin`).
fn require(program: &str, package: &str) -> &'static str {
    for dir in ["/usr/bin", "/usr/sbin"] {
        let path = format!("{dir}/{program}");
        if Path::new(&path).is_file() {
            return Box::leak(path.into_boxed_str());
        }
    }
    panic!("{program} is missing (Debian package {package}; cargo xtask ci installs it)")
}

impl Tool {
    /// buildah with its storage under `dir`.
    pub(crate) fn buildah(dir: &Path) -> Tool {
        Tool::with_storage(require("buildah", "buildah"), dir, &[])
    }

    /// podman with its storage under `dir`.
    pub(crate) fn podman(dir: &Path) -> Tool {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let extra = [
            "--runtime".to_string(),
            "runc".to_string(),
            "--cgroup-manager".to_string(),
            "cgroupfs".to_string(),
            "--events-backend".to_string(),
            "file".to_string(),
            "--tmpdir".to_string(),
            tmp.display().to_string(),
        ];
        Tool::with_storage(require("podman", "podman"), dir, &extra)
    }

    fn with_storage(program: &'static str, dir: &Path, extra: &[String]) -> Tool {
        std::fs::create_dir_all(dir).unwrap();
        let runroot = short_runroot();
        let mut leading = vec![
            "--root".to_string(),
            dir.join("root").display().to_string(),
            "--runroot".to_string(),
            runroot.display().to_string(),
            "--storage-driver".to_string(),
            "vfs".to_string(),
        ];
        leading.extend_from_slice(extra);
        Tool {
            program,
            leading,
            dir: dir.to_path_buf(),
            runroot: Some(runroot),
        }
    }

    /// skopeo (no state of its own).
    pub(crate) fn skopeo() -> Tool {
        Tool::plain(require("skopeo", "skopeo"))
    }

    /// umoci (no state of its own).
    pub(crate) fn umoci() -> Tool {
        Tool::plain(require("umoci", "umoci"))
    }

    /// rpm (the SBOM tests make a real RPM database with it).
    pub(crate) fn rpm() -> Tool {
        Tool::plain(require("rpm", "rpm"))
    }

    /// rpmbuild (packages for that database).
    pub(crate) fn rpmbuild() -> Tool {
        Tool::plain(require("rpmbuild", "rpm"))
    }

    /// go, from Debian's golang-go (a binary with build info).
    pub(crate) fn go() -> Tool {
        Tool::plain(require("go", "golang-go"))
    }

    /// runc with its state directory under `dir`.
    pub(crate) fn runc(dir: &Path) -> Tool {
        let mut tool = Tool::plain(require("runc", "runc"));
        tool.leading = vec!["--root".into(), dir.join("runc").display().to_string()];
        tool.dir = dir.to_path_buf();
        tool
    }

    fn plain(program: &'static str) -> Tool {
        Tool {
            program,
            leading: Vec::new(),
            dir: PathBuf::new(),
            runroot: None,
        }
    }

    /// The transport name skopeo uses for this tool's storage:
    /// `containers-storage:[vfs@ROOT+RUNROOT]`.
    pub(crate) fn storage_transport(&self) -> String {
        let runroot = self.runroot.as_ref().expect("a tool with storage");
        format!(
            "containers-storage:[vfs@{}+{}]",
            self.dir.join("root").display(),
            runroot.display()
        )
    }

    /// The command `PROGRAM LEADING... ARGS`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.program);
        cmd.args(&self.leading)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// Runs the tool with `args` and fails the test unless it succeeds.
    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.program));
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n{}{}",
            self.program,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Like [`Tool::ok`], returning standard output as text.
    pub(crate) fn text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args).stdout).unwrap()
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        if let Some(runroot) = &self.runroot {
            let _ = std::fs::remove_dir_all(runroot);
        }
    }
}

/// The hard limits podman needs on this machine for `podman run`.
pub(crate) const PODMAN_ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
];
