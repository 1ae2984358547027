//! `cargo xtask soak [KILLS] [ROUNDS]`: the reliability figures of issue 20.
//!
//! - **Kill loop.** KILLS times (default 1,000): start one of `build`
//!   (COPY and RUN, no cache), `load`, `prune -a -f`, `rmi`, `push` (to a
//!   docker-registry on loopback that the soak starts) or `commit` (of a
//!   stopped container made at the start), SIGKILL it
//!   after a random delay within that operation's own duration (measured
//!   first, so most kills land mid-operation), then run `system verify
//!   --quick` and a build (and a full `system verify` at the end). Counted: corrupt stores (verify fails), dangling tags
//!   (a tag `inspect` cannot read), leftover mounts under the store and
//!   leftover container processes after the next command, failed
//!   follow-up builds.
//! - **Concurrency.** ROUNDS rounds (default 10) of 16 concurrent builds
//!   with `rmi`, `prune` and `load` churn, then `system verify`. Counted:
//!   build failures and verify errors.
//!
//! It runs the debug `rbk` (`cargo build -p rbk-cli`), or the binary
//! `RBK_SOAK_BIN` names (so that a long soak can run while the tree is
//! rebuilt), on a store under `target/soak/` and prints the counts; nothing
//! is asserted here, the figures are the result.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

struct Soak {
    rbk: PathBuf,
    registry: Registry,
    store: PathBuf,
    ctx: PathBuf,
    archive: PathBuf,
    rng: u64,
}

#[derive(Default, Debug)]
struct Counts {
    kills: u32,
    killed_mid_operation: u32,
    corrupt_stores: u32,
    dangling_tags: u32,
    leftover_mounts: u32,
    leftover_processes: u32,
    failed_builds: u32,
}

const OPS: &[&str] = &["build", "load", "prune", "rmi", "push", "commit"];

/// The stopped container `commit` commits.
const CONTAINER: &str = "soak-commit";

/// A docker-registry on loopback for `push`; killed on drop.
struct Registry {
    child: Child,
    host: String,
}

impl Registry {
    fn start(work: &Path) -> anyhow::Result<Registry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = work.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
                work.join("registry").display()
            ),
        )?;
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting /usr/bin/docker-registry (Debian package docker-registry)")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(&host).is_ok() {
                return Ok(Registry { child, host });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("docker-registry did not start on {host}")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let kills: u32 = args.first().map_or(Ok(1000), |s| s.parse())?;
    let rounds: u32 = args.get(1).map_or(Ok(10), |s| s.parse())?;
    let rbk = match std::env::var_os("RBK_SOAK_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            crate::run(root, "cargo", &["build", "--quiet", "-p", "rbk-cli"])?;
            root.join("target/debug/rbk")
        }
    };
    let work = root.join("target/soak");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut soak = Soak::new(rbk, &work)?;
    let durations: Vec<Duration> = OPS
        .iter()
        .map(|op| soak.timed(op))
        .collect::<Result<_, _>>()?;
    crate::say(&format!("unkilled durations: {OPS:?} = {durations:?}"));
    let mut counts = Counts::default();
    for i in 0..kills {
        let which = (soak.next() % OPS.len() as u64) as usize;
        let limit = durations[which].as_micros().max(1) as u64;
        let delay = Duration::from_micros(soak.next() % limit);
        soak.kill_one(OPS[which], delay, &mut counts)?;
        if i % 10 == 9 {
            crate::say(&format!("after {} kills: {counts:?}", i + 1));
        }
    }
    if !soak.output(&["system", "verify"])?.status.success() {
        counts.corrupt_stores += 1;
    }
    crate::say(&format!("kill loop: {counts:?}"));
    let (failures, verify_errors) = soak.concurrency(rounds)?;
    crate::say(&format!(
        "concurrency: {rounds} rounds of 16 builds with rmi/prune/load churn: \
         {failures} failed builds, {verify_errors} verify errors"
    ));
    Ok(())
}

impl Soak {
    fn new(rbk: PathBuf, work: &Path) -> anyhow::Result<Soak> {
        let store = work.join("store");
        let tarball = crate::busybox_rootfs(work)?;
        let soak = Soak {
            rbk,
            registry: Registry::start(work)?,
            store,
            ctx: work.join("ctx"),
            archive: work.join("base.tar"),
            rng: seed(),
        };
        soak.ok(&["import", &tarball, "rbk-busybox:latest"])?;
        let archive = soak.archive.to_str().context("path")?.to_string();
        soak.ok(&["save", "-o", &archive, "rbk-busybox:latest"])?;
        soak.ok(&[
            "run",
            "--name",
            CONTAINER,
            "rbk-busybox",
            "sh",
            "-c",
            "echo changed > /changed",
        ])?;
        std::fs::create_dir_all(soak.ctx.join("data"))?;
        for i in 0..200 {
            std::fs::write(
                soak.ctx.join(format!("data/f{i}")),
                vec![b'x'; 4096 * (i % 7 + 1)],
            )?;
        }
        std::fs::write(
            soak.ctx.join("Dockerfile"),
            "FROM rbk-busybox\nCOPY data /data\nARG N=0\n\
             RUN for i in 1 2 3 4 5 6 7 8; do cp -r /data /copy$i; done; echo $N > /n\n",
        )?;
        Ok(soak)
    }

    fn next(&mut self) -> u64 {
        // xorshift64: enough randomness for kill instants.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.rbk);
        cmd.arg("--root").arg(&self.store).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(self.command(args).output()?)
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = self.output(args)?;
        if !out.status.success() {
            bail!("rbk {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out)
    }

    fn spawn(&self, op: &str, n: u64) -> anyhow::Result<Child> {
        let ctx = self.ctx.to_str().context("path")?;
        let archive = self.archive.to_str().context("path")?;
        let arg = format!("N={n}");
        let tag = format!("soak:{}", n % 4);
        let remote = format!("{}/soak:{}", self.registry.host, n % 4);
        let args: Vec<&str> = match op {
            "build" => vec![
                "build",
                "--progress=plain",
                "--no-cache",
                "--build-arg",
                &arg,
                "-t",
                &tag,
                ctx,
            ],
            "load" => vec!["load", "-i", archive],
            "prune" => vec!["prune", "-a", "-f"],
            "push" => vec!["push", &remote],
            "commit" => vec!["commit", CONTAINER, &tag],
            _ => vec!["rmi", &tag],
        };
        let child = self
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(child)
    }

    /// How long `op` takes when nothing kills it.
    fn timed(&mut self, op: &str) -> anyhow::Result<Duration> {
        let n = self.next();
        self.prepare(op, n)?;
        let start = Instant::now();
        self.spawn(op, n)?.wait()?;
        Ok(start.elapsed())
    }

    /// What `op` needs before it starts: a tag to remove or push.
    fn prepare(&self, op: &str, n: u64) -> anyhow::Result<()> {
        if op == "rmi" {
            self.ok(&["tag", "rbk-busybox", &format!("soak:{}", n % 4)])?;
        }
        if op == "push" {
            let remote = format!("{}/soak:{}", self.registry.host, n % 4);
            self.ok(&["tag", "rbk-busybox", &remote])?;
        }
        Ok(())
    }

    fn kill_one(&mut self, op: &str, delay: Duration, counts: &mut Counts) -> anyhow::Result<()> {
        let n = self.next();
        self.prepare(op, n)?;
        let mut child = self.spawn(op, n)?;
        std::thread::sleep(delay);
        counts.kills += 1;
        if child.try_wait()?.is_none() {
            counts.killed_mid_operation += 1;
        }
        let _ = child.kill();
        child.wait()?;
        // The next command: verify (it also reaps what the kill left);
        // `--quick` here (blobs, documents, names), the full verify, which
        // re-packs every snapshot, once at the end.
        if !self
            .output(&["system", "verify", "--quick"])?
            .status
            .success()
        {
            counts.corrupt_stores += 1;
        }
        if !self.leftover_containers()?.is_empty() {
            counts.leftover_processes += 1;
        }
        counts.dangling_tags += self.dangling_tags()?;
        let build = self.spawn("build", n)?.wait()?;
        if !build.success() {
            counts.failed_builds += 1;
        }
        if !self.mounts()?.is_empty() {
            counts.leftover_mounts += 1;
        }
        Ok(())
    }

    /// Containers runc still lists under the store's state directory.
    fn leftover_containers(&self) -> anyhow::Result<Vec<String>> {
        let state = self.store.join("runc");
        if !state.is_dir() {
            return Ok(Vec::new());
        }
        let out = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["list", "-q"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Tags whose image cannot be read.
    fn dangling_tags(&self) -> anyhow::Result<u32> {
        let out = self.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
        let mut dangling = 0;
        for tag in String::from_utf8_lossy(&out.stdout).lines() {
            if !tag.contains("<none>") && !self.output(&["inspect", tag])?.status.success() {
                dangling += 1;
            }
        }
        Ok(dangling)
    }

    /// Mount points under the store.
    fn mounts(&self) -> anyhow::Result<Vec<String>> {
        let root = std::fs::canonicalize(&self.store)?;
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&root))
            .map(str::to_string)
            .collect())
    }

    /// ROUNDS rounds of 16 concurrent builds plus churn; returns (failed
    /// builds, rounds whose verify failed).
    fn concurrency(&mut self, rounds: u32) -> anyhow::Result<(u32, u32)> {
        let (mut failures, mut verify_errors) = (0, 0);
        for round in 0..rounds {
            let mut builds = Vec::new();
            for i in 0..16u64 {
                builds.push(self.spawn("build", u64::from(round) * 100 + i)?);
            }
            let churn: Vec<Child> = ["rmi", "prune", "load"]
                .iter()
                .map(|op| self.spawn(op, u64::from(round)))
                .collect::<Result<_, _>>()?;
            for mut b in builds {
                if !b.wait()?.success() {
                    failures += 1;
                }
            }
            for mut c in churn {
                c.wait()?;
            }
            if !self.output(&["system", "verify"])?.status.success() {
                verify_errors += 1;
            }
        }
        Ok((failures, verify_errors))
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t | 1
}
