//! `cargo xtask bench registry side-by-side`: push and pull of the same
//! 1 GiB, 10-layer image (random bytes) by rbk, `docker push`/`docker pull`
//! (a private dockerd) and `skopeo copy`, to the same kind of loopback
//! `docker-registry`, round-robin: each round runs every tool once, the
//! order rotating from round to round, so load drifts hit all alike.
//!
//! Every push starts from uncompressed layers and goes to a fresh, empty
//! registry: rbk's store forgets its gzip forms first (`db/compressed`), as
//! docker keeps none, and skopeo copies from a `dir:` with uncompressed
//! layers; so each push compresses and uploads 1 GiB. Every
//! pull goes into an empty place: rbk into an empty store, docker after
//! `rmi` of every tag of the image, skopeo into a fresh `dir:` (which keeps
//! the layers compressed: skopeo has no store to unpack into).
//!
//! Besides wall time, each row has a CPU-time row: the client's user +
//! system time (`/usr/bin/time`), plus dockerd's and its children's for
//! docker, where the work is done. `RBK_BENCH_BASE=/path/to/rbk` adds the
//! rows of a second rbk binary (a base to compare against).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{figure, Registry, RUNS};
use crate::bench::{leak, path_str, Figure};

/// The image, as rbk's store names it.
const IMAGE: &str = "big:1";

/// One tool's samples.
#[derive(Default)]
struct Samples {
    push: Vec<f64>,
    push_cpu: Vec<f64>,
    pull: Vec<f64>,
    pull_cpu: Vec<f64>,
}

enum Tool {
    Rbk {
        name: &'static str,
        bin: PathBuf,
    },
    Docker(Dockerd),
    /// skopeo, and its source: a `dir:` with uncompressed layers.
    Skopeo(PathBuf),
}

impl Tool {
    fn name(&self) -> &'static str {
        match self {
            Tool::Rbk { name, .. } => name,
            Tool::Docker(_) => "docker",
            Tool::Skopeo(_) => "skopeo",
        }
    }
}

/// Pushes and pulls `store`'s `big:1` with every tool, `RUNS` rounds.
pub(super) fn figures(work: &Path, rbk: &Path, store: &Path) -> anyhow::Result<Vec<Figure>> {
    let mut tools = vec![Tool::Rbk {
        name: "rbk",
        bin: rbk.to_path_buf(),
    }];
    if let Some(base) = std::env::var_os("RBK_BENCH_BASE") {
        tools.push(Tool::Rbk {
            name: "rbk-base",
            bin: base.into(),
        });
    }
    let docker = Dockerd::start(&work.join("docker"))?;
    let archive = work.join("big.tar");
    let archive_str = path_str(&archive)?;
    rbk_cmd(rbk, store, &["save", "-o", archive_str, IMAGE])?;
    docker.ok(&["load", "-q", "-i", archive_str])?;
    // skopeo's source: the image with its layers uncompressed (rbk's store
    // keeps layers as snapshots, not as tar blobs skopeo could read).
    let skopeo_src = work.join("skopeo-src");
    let _ = std::fs::remove_dir_all(&skopeo_src);
    let unpacked = Command::new("skopeo")
        .args(["copy", "-q", "--dest-decompress"])
        .arg(format!("docker-archive:{archive_str}"))
        .arg(format!("dir:{}", path_str(&skopeo_src)?))
        .status()
        .context("running skopeo")?;
    if !unpacked.success() {
        bail!("skopeo copy --dest-decompress of the saved image failed");
    }
    std::fs::remove_file(&archive)?;
    tools.push(Tool::Docker(docker));
    tools.push(Tool::Skopeo(skopeo_src));
    let mut samples: Vec<Samples> = tools.iter().map(|_| Samples::default()).collect();
    for round in 0..RUNS {
        for k in 0..tools.len() {
            let i = (round + k) % tools.len();
            let registry = Registry::start(&work.join("registry-peers"))?;
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            crate::say(&format!(
                "round {round}: {} (load {})",
                tools[i].name(),
                load.split(' ').next().unwrap_or("?")
            ));
            one_round(&tools[i], &registry.host, work, store, &mut samples[i])?;
        }
    }
    let mut out = Vec::new();
    for (tool, s) in tools.iter().zip(samples) {
        let t = tool.name();
        let row = |what: &str| leak(format!("registry side by side: {t} {what}"));
        out.push(figure(
            row("push, compress + upload 1 GiB"),
            "s",
            s.push,
            "-",
        ));
        out.push(figure(row("push CPU (user + sys)"), "s", s.push_cpu, "-"));
        out.push(figure(row("pull into an empty place"), "s", s.pull, "-"));
        out.push(figure(row("pull CPU (user + sys)"), "s", s.pull_cpu, "-"));
    }
    Ok(out)
}

fn one_round(
    tool: &Tool,
    host: &str,
    work: &Path,
    store: &Path,
    s: &mut Samples,
) -> anyhow::Result<()> {
    let fresh = work.join("pulled");
    let _ = std::fs::remove_dir_all(&fresh);
    let fresh_str = path_str(&fresh)?;
    let store_str = path_str(store)?;
    let name = format!("{host}/bench/big:1");
    let ((push, push_cpu), (pull, pull_cpu)) = match tool {
        Tool::Rbk { bin, .. } => {
            // Forget the gzip forms: this push compresses, as the others do.
            let _ = std::fs::remove_dir_all(store.join("db/compressed"));
            rbk_cmd(bin, store, &["tag", IMAGE, &name])?;
            let push = timed(Command::new(bin).args(["--root", store_str, "push", name.as_str()]))?;
            rbk_cmd(bin, store, &["rmi", &name])?;
            let pull = timed(Command::new(bin).args(["--root", fresh_str, "pull", name.as_str()]))?;
            (push, pull)
        }
        Tool::Docker(docker) => {
            docker.ok(&["tag", IMAGE, &name])?;
            let push = docker.timed(&["push", "-q", &name])?;
            docker.ok(&["rmi", IMAGE, &name])?;
            let pull = docker.timed(&["pull", "-q", &name])?;
            docker.ok(&["tag", &name, IMAGE])?;
            docker.ok(&["rmi", &name])?;
            (push, pull)
        }
        Tool::Skopeo(source) => {
            let src = format!("dir:{}", path_str(source)?);
            let dest = format!("docker://{name}");
            let push = timed(Command::new("skopeo").args([
                "copy",
                "-q",
                "--dest-tls-verify=false",
                src.as_str(),
                dest.as_str(),
            ]))?;
            let pulled = format!("dir:{fresh_str}");
            let pull = timed(Command::new("skopeo").args([
                "copy",
                "-q",
                "--src-tls-verify=false",
                dest.as_str(),
                pulled.as_str(),
            ]))?;
            (push, pull)
        }
    };
    let _ = std::fs::remove_dir_all(&fresh);
    s.push.push(push);
    s.push_cpu.push(push_cpu);
    s.pull.push(pull);
    s.pull_cpu.push(pull_cpu);
    Ok(())
}

fn rbk_cmd(bin: &Path, store: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("--root")
        .arg(store)
        .args(args)
        .output()
        .context("running rbk")?;
    if !out.status.success() {
        bail!(
            "rbk {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `cmd` under `/usr/bin/time`: (wall seconds, user + system seconds).
fn timed(cmd: &mut Command) -> anyhow::Result<(f64, f64)> {
    let times = std::env::temp_dir().join(format!("rbk-bench-time-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%U %S", "-o"])
        .arg(&times)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::null());
    let start = Instant::now();
    let out = wrapped.output().context("running /usr/bin/time")?;
    let wall = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&times)?;
    let _ = std::fs::remove_file(&times);
    let cpu = text
        .lines()
        .last()
        .unwrap_or("")
        .split(' ')
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    Ok((wall, cpu))
}

/// A private dockerd (no bridge, no iptables: this machine has neither),
/// on its own socket, data root and exec root; stopped on drop.
struct Dockerd {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Dockerd {
    fn start(data: &Path) -> anyhow::Result<Dockerd> {
        let dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .context("dockerd is missing (apt-get install docker.io)")?;
        // Short and under /tmp: unix socket paths are limited to 108 bytes.
        let dir = PathBuf::from(format!("/tmp/rbk-bench-dockerd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(data)?;
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(data.join("dockerd.log"))?;
        let child = Command::new(dockerd)
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--data-root")
            .arg(data.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        let docker = Dockerd { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if docker.run(&["version"])?.status.success() {
                return Ok(docker);
            }
            if Instant::now() > deadline {
                bail!("dockerd did not answer in 120 s (see {})", data.display());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        // Debian's client: a newer one earlier on PATH may not match.
        let mut cmd = Command::new("/usr/bin/docker");
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("config"));
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.command(args).output().context("running docker")
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "docker {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `docker ARGS` timed; its CPU time includes what dockerd and its
    /// children (containerd) spent meanwhile.
    fn timed(&self, args: &[&str]) -> anyhow::Result<(f64, f64)> {
        let before = self.daemon_cpu();
        let (wall, client) = timed(&mut self.command(args))?;
        Ok((wall, client + self.daemon_cpu() - before))
    }

    /// User + system seconds of dockerd and its direct children.
    fn daemon_cpu(&self) -> f64 {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        std::iter::once(pid.to_string())
            .chain(children.split_whitespace().map(str::to_string))
            .map(|p| proc_cpu(&p))
            .sum()
    }
}

/// utime + stime of `/proc/PID/stat`, in seconds (100 ticks a second).
fn proc_cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM: dockerd stops its containerd too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let prefix = format!("{}/", self.dir.display());
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        under.sort_by(|a, b| b.cmp(a));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
