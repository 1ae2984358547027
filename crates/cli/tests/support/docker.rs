//! A private Docker engine for the acceptance and differential suites: one
//! `dockerd` per test binary, on its own socket and data root, with no
//! bridge and no iptables (this machine has neither), driven by Debian's
//! `/usr/bin/docker` client (the one with BuildKit built in).
//!
//! The daemon is started by a small `sh` watchdog that stops it when the
//! test process is gone, so it never outlives the tests even when they
//! panic. When no engine can be started, [`engine`] panics with the reason:
//! a suite that needs Docker fails without one, it never passes by skipping.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Debian client: the newer one earlier on `PATH` lacks buildx.
pub(crate) const CLIENT: &str = "/usr/bin/docker";

/// How long the daemon may take to answer (a loaded 2-core box is slow to
/// start containerd and dockerd).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private engine.
pub(crate) struct Docker {
    dir: PathBuf,
    host: String,
}

impl Docker {
    /// A `docker` client command aimed at this engine, BuildKit on.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CLIENT);
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// Runs `docker ARGS`, returning its output whatever the exit status.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("running the docker client")
    }

    /// Runs `docker ARGS` and fails the test unless it succeeds.
    pub(crate) fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The engine's own directory (data root, exec root, socket, log).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The engine of this test binary, started on first use. Panics with the
/// reason when it cannot be started (every test that asks fails with it).
pub(crate) fn engine() -> &'static Docker {
    static ENGINE: OnceLock<Result<Docker, String>> = OnceLock::new();
    match ENGINE.get_or_init(start) {
        Ok(docker) => docker,
        Err(reason) => panic!("no Docker engine: {reason}"),
    }
}

fn start() -> Result<Docker, String> {
    if !Path::new(CLIENT).is_file() {
        return Err(format!("{CLIENT} is missing (Debian package docker.io)"));
    }
    let dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or("dockerd is missing (Debian package docker.io)")?;
    if !rustix::process::geteuid().is_root() {
        return Err("dockerd needs root".into());
    }
    // Short and under /tmp: unix socket paths are limited to 108 bytes and
    // dockerd nests containerd's sockets under the exec root.
    let dir = PathBuf::from(format!("/tmp/rbk-dockerd-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("config")).map_err(|e| format!("creating {dir:?}: {e}"))?;
    let host = format!("unix://{}/docker.sock", dir.display());
    let d = dir.display();
    // The watchdog: start dockerd, wait while the test process lives, then
    // stop dockerd (SIGTERM: it stops its containerd too) and clean up,
    // every mount under the directory first (dockerd leaves its default
    // network namespace, an nsfs mount under exec/netns, behind).
    let script = format!(
        "{dockerd} --bridge=none --iptables=false --ip6tables=false \
         --data-root {d}/root --exec-root {d}/exec --host {host} --pidfile {d}/pid \
         >{d}/dockerd.log 2>&1 &\n\
         daemon=$!\n\
         while kill -0 {parent} 2>/dev/null; do sleep 1; done\n\
         kill $daemon; wait $daemon\n\
         for m in $(awk -v d={d}/ 'index($2, d) == 1 {{ print $2 }}' /proc/mounts | sort -r); do\n\
           umount -l \"$m\" 2>/dev/null\n\
         done\n\
         rm -rf {d}\n",
        parent = std::process::id(),
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting dockerd: {e}"))?;
    let docker = Docker { dir, host };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let out = docker.run(&["version", "--format", "{{.Server.Version}}"]);
        if out.status.success() {
            return Ok(docker);
        }
        if Instant::now() > deadline {
            let log = fs::read_to_string(docker.dir.join("dockerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!(
                "dockerd did not answer within {}s: {}",
                START_TIMEOUT.as_secs(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
