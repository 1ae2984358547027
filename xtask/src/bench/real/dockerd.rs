//! A private Docker engine for the comparison: its own data root under the
//! bench's work dir (the same filesystem as rbk's stores), no bridge and no
//! iptables (this machine has neither), Debian's `/usr/bin/docker` client
//! with BuildKit on. Stopped (SIGTERM, so it takes containerd down too) when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The Debian client (the one with BuildKit built in).
pub(super) const CLIENT: &str = "/usr/bin/docker";

pub(super) struct Dockerd {
    child: Child,
    host: String,
    /// Short, under /tmp: unix socket paths are limited to 108 bytes.
    run_dir: PathBuf,
}

impl Dockerd {
    /// Starts `dockerd` with its data root in `dir` (made fresh).
    pub(super) fn start(dir: &Path) -> anyhow::Result<Dockerd> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let run_dir = PathBuf::from(format!("/tmp/rbk-bench-dockerd-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir)?;
        let host = format!("unix://{}/docker.sock", run_dir.display());
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(run_dir.join("exec"))
            .arg("--pidfile")
            .arg(run_dir.join("pid"))
            .args(["--host", &host])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd (Debian package docker.io)")?;
        let docker = Dockerd {
            child,
            host,
            run_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if docker.run(&["version"])?.status.success() {
                return Ok(docker);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("dockerd did not answer within 30 s (see {})", dir.display())
    }

    /// Adds this engine's environment to `cmd`.
    pub(super) fn env(&self, mut cmd: Command) -> Command {
        cmd.env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", self.run_dir.join("config"));
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.env(Command::new(CLIENT))
            .args(args)
            .output()
            .context("running the docker client")
    }

    /// `docker ARGS`, failing with its output unless it succeeds.
    pub(super) fn ok(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self.run(args)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = err.lines().collect();
            bail!(
                "docker {args:?} failed:\n{}",
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.run_dir.join("exec"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
