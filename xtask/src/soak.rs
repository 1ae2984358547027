//! `cargo xtask soak [KILLS] [ROUNDS] [MINUTES]`: the reliability figures of
//! issue 20.
//!
//! - **Kill loop.** KILLS times (default 1,000): start one of `build`
//!   (COPY and RUN, no cache), `load`, `prune -a -f`, `rmi`, `push` (to a
//!   docker-registry on loopback that the soak starts) or `commit` (of a
//!   stopped container made at the start), SIGKILL it after a random delay
//!   within that operation's own duration (measured first, so most kills
//!   land mid-operation), then run `system verify --quick` (the next
//!   command) and a build (and a full `system verify` at the end). Counted
//!   per operation and per quarter of its duration: corrupt stores (verify
//!   fails), dangling tags (a tag `inspect` cannot read), leftover
//!   processes after the next command (runc still lists a container, or a
//!   process runs the rbk binary or has its root under the store), leftover
//!   mounts under the store after the build, failed follow-up builds. Each
//!   kill is a line of `target/soak/kills.csv`.
//! - **Concurrency.** ROUNDS rounds (default 10) of 16 concurrent builds
//!   with `rmi`, `prune`, `load` and `pull` churn, then `system verify`.
//!   Counted: failed builds, failed churn commands other than an `rmi` of
//!   a tag that is not there (the soak's own doing), verify errors.
//!
//! Every 50 kills an unkilled `prune -f` sweeps what the killed commands
//! left dangling, so that the loop's disk use stays bounded.
//!
//! MINUTES, when given, ends the kill loop early (the counts say how many
//! kills ran) so that a soak fits a time budget. KILLS or ROUNDS of 0 skips
//! that part. It runs the debug `rbk` (`cargo build -p rbk-cli`), or the
//! binary `RBK_SOAK_BIN` names (a release build, or one that a long soak
//! keeps while the tree is rebuilt), on a store under `target/soak/`
//! (`RBK_SOAK_DIR` names another, so that two soaks can run at once) and
//! prints the counts; nothing is asserted here, the figures are the result.

use std::io::Write;
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

/// What one kill did and what the commands after it found.
struct Kill {
    op: &'static str,
    delay: Duration,
    /// The operation's unkilled duration, which the delay is drawn within.
    duration: Duration,
    /// The operation was still running when the signal was sent.
    mid_operation: bool,
    verify_ok: bool,
    dangling_tags: u32,
    leftover_processes: u32,
    /// Trash emptiers still deleting: the next command detaches one on
    /// purpose (deletes are deferred), so they are not leftovers.
    trash_emptiers: u32,
    build_ok: bool,
    leftover_mounts: u32,
}

impl Kill {
    const CSV_HEADER: &'static str = "op,delay_ms,duration_ms,mid_operation,verify_ok,\
         dangling_tags,leftover_processes,trash_emptiers,build_ok,leftover_mounts";

    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.op,
            self.delay.as_millis(),
            self.duration.as_millis(),
            self.mid_operation,
            self.verify_ok,
            self.dangling_tags,
            self.leftover_processes,
            self.trash_emptiers,
            self.build_ok,
            self.leftover_mounts
        )
    }

    /// Which quarter of the unkilled duration the kill landed in (0–3).
    fn quarter(&self) -> usize {
        let at = self.delay.as_secs_f64() / self.duration.as_secs_f64().max(1e-6);
        ((at * 4.0) as usize).min(3)
    }
}

/// Tallies of kills: of each one, how many left each kind of damage.
#[derive(Default, Debug)]
struct Counts {
    kills: u32,
    killed_mid_operation: u32,
    corrupt_stores: u32,
    dangling_tags: u32,
    leftover_mounts: u32,
    leftover_processes: u32,
    trash_emptiers_running: u32,
    failed_builds: u32,
}

impl Counts {
    fn add(&mut self, kill: &Kill) {
        self.kills += 1;
        self.killed_mid_operation += u32::from(kill.mid_operation);
        self.corrupt_stores += u32::from(!kill.verify_ok);
        self.dangling_tags += kill.dangling_tags;
        self.leftover_mounts += u32::from(kill.leftover_mounts > 0);
        self.leftover_processes += u32::from(kill.leftover_processes > 0);
        self.trash_emptiers_running += u32::from(kill.trash_emptiers > 0);
        self.failed_builds += u32::from(!kill.build_ok);
    }
}

/// The kill loop's table: the counts per operation, and its kills by
/// quarter of the operation's unkilled duration.
struct Table {
    total: Counts,
    by_op: Vec<(Counts, [u32; 4])>,
}

impl Table {
    fn new() -> Table {
        Table {
            total: Counts::default(),
            by_op: OPS.iter().map(|_| Default::default()).collect(),
        }
    }

    fn add(&mut self, which: usize, kill: &Kill) {
        self.total.add(kill);
        let (counts, quarters) = &mut self.by_op[which];
        counts.add(kill);
        quarters[kill.quarter()] += 1;
    }

    fn print(&self) {
        crate::say(
            "op       kills mid-op  q1  q2  q3  q4 corrupt dangling mounts procs failed-builds",
        );
        for (op, (c, q)) in OPS.iter().zip(&self.by_op) {
            crate::say(&format!(
                "{op:<7} {:>6} {:>6} {:>3} {:>3} {:>3} {:>3} {:>7} {:>8} {:>6} {:>5} {:>13}",
                c.kills,
                c.killed_mid_operation,
                q[0],
                q[1],
                q[2],
                q[3],
                c.corrupt_stores,
                c.dangling_tags,
                c.leftover_mounts,
                c.leftover_processes,
                c.failed_builds
            ));
        }
        crate::say(&format!("total: {:?}", self.total));
    }
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
    let minutes: Option<u64> = args.get(2).map(|s| s.parse()).transpose()?;
    let rbk = match std::env::var_os("RBK_SOAK_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            crate::run(root, "cargo", &["build", "--quiet", "-p", "rbk-cli"])?;
            root.join("target/debug/rbk")
        }
    };
    let work =
        std::env::var_os("RBK_SOAK_DIR").map_or_else(|| root.join("target/soak"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut soak = Soak::new(rbk, &work)?;
    if kills > 0 {
        let deadline = minutes.map(|m| Instant::now() + Duration::from_secs(m * 60));
        let table = soak.kill_loop(kills, deadline, &work.join("kills.csv"))?;
        table.print();
        let verify = soak.output(&["system", "verify"])?;
        crate::say(&format!(
            "kill loop: final full `system verify`: {}",
            if verify.status.success() {
                "ok"
            } else {
                "FAILED"
            }
        ));
    }
    if rounds > 0 {
        let c = soak.concurrency(rounds)?;
        crate::say(&format!(
            "concurrency: {rounds} rounds of 16 builds with rmi/prune/load/pull churn: \
             {} failed builds, {} failed churn commands, {} verify errors",
            c.failed_builds, c.failed_churn, c.verify_errors
        ));
    }
    Ok(())
}

/// The concurrency soak's counts.
#[derive(Default)]
struct Churn {
    failed_builds: u32,
    failed_churn: u32,
    verify_errors: u32,
}

/// The image `pull` churn pulls from the soak's registry.
const PULLED: &str = "soak-base:latest";

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
        let pulled = format!("{}/{PULLED}", soak.registry.host);
        soak.ok(&["tag", "rbk-busybox", &pulled])?;
        soak.ok(&["push", &pulled])?;
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

    /// KILLS kills (fewer when `deadline` passes first), each a line of
    /// `csv`.
    fn kill_loop(
        &mut self,
        kills: u32,
        deadline: Option<Instant>,
        csv: &Path,
    ) -> anyhow::Result<Table> {
        let durations: Vec<Duration> = OPS
            .iter()
            .map(|op| self.timed(op))
            .collect::<Result<_, _>>()?;
        crate::say(&format!("unkilled durations: {OPS:?} = {durations:?}"));
        let mut log = std::fs::File::create(csv)?;
        writeln!(log, "{}", Kill::CSV_HEADER)?;
        let mut table = Table::new();
        for i in 0..kills {
            if deadline.is_some_and(|d| Instant::now() > d) {
                crate::say(&format!("time budget spent after {i} kills"));
                break;
            }
            let which = (self.next() % OPS.len() as u64) as usize;
            let limit = durations[which].as_micros().max(1) as u64;
            let delay = Duration::from_micros(self.next() % limit);
            let kill = self.kill_one(OPS[which], delay, durations[which])?;
            writeln!(log, "{}", kill.csv())?;
            table.add(which, &kill);
            if i % 10 == 9 {
                crate::say(&format!("after {} kills: {:?}", i + 1, table.total));
            }
            if i % SWEEP_EVERY == SWEEP_EVERY - 1 {
                self.sweep()?;
            }
        }
        Ok(table)
    }

    /// An unkilled `prune -f`, with the store's size before and after.
    /// The loop's own prunes are killed before they finish as often as
    /// not, and each follow-up `--no-cache` build leaves ~27 MB of
    /// dangling snapshots, so without this a 1,000-kill loop fills ~27 GB.
    fn sweep(&self) -> anyhow::Result<()> {
        let before = disk_usage(&self.store)?;
        self.ok(&["prune", "-f"])?;
        let after = disk_usage(&self.store)?;
        crate::say(&format!(
            "sweep: unkilled `prune -f`: store {} MiB -> {} MiB",
            before >> 20,
            after >> 20
        ));
        Ok(())
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
        self.spawn_with(op, n, Stdio::null())
    }

    fn spawn_with(&self, op: &str, n: u64, stderr: Stdio) -> anyhow::Result<Child> {
        let ctx = self.ctx.to_str().context("path")?;
        let archive = self.archive.to_str().context("path")?;
        let arg = format!("N={n}");
        let tag = format!("soak:{}", n % 4);
        let remote = format!("{}/soak:{}", self.registry.host, n % 4);
        let pulled = format!("{}/{PULLED}", self.registry.host);
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
            "pull" => vec!["pull", &pulled],
            "commit" => vec!["commit", CONTAINER, &tag],
            _ => vec!["rmi", &tag],
        };
        let child = self
            .command(&args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        Ok(child)
    }

    /// `op` with its stderr kept, for the message of a failure.
    fn spawn_logged(&self, op: &str, n: u64) -> anyhow::Result<Child> {
        self.spawn_with(op, n, Stdio::piped())
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

    fn kill_one(
        &mut self,
        op: &'static str,
        delay: Duration,
        duration: Duration,
    ) -> anyhow::Result<Kill> {
        let n = self.next();
        self.prepare(op, n)?;
        let mut child = self.spawn(op, n)?;
        std::thread::sleep(delay);
        let mid_operation = child.try_wait()?.is_none();
        let _ = child.kill();
        child.wait()?;
        // The next command: verify (it also reaps what the kill left);
        // `--quick` here (blobs, documents, names), the full verify, which
        // re-packs every snapshot, once at the end.
        let verify_ok = self
            .output(&["system", "verify", "--quick"])?
            .status
            .success();
        let (leftover_processes, trash_emptiers) = self.leftover_processes()?;
        let dangling_tags = self.dangling_tags()?;
        let build_ok = self.spawn("build", n)?.wait()?.success();
        let leftover_mounts = self.mounts()?.len() as u32;
        Ok(Kill {
            op,
            delay,
            duration,
            mid_operation,
            verify_ok,
            dangling_tags,
            leftover_processes,
            trash_emptiers,
            build_ok,
            leftover_mounts,
        })
    }

    /// Containers and processes a killed command left running: what runc
    /// still lists under the store's state directory, plus every process
    /// that runs the rbk binary on this store or whose root is under it (a
    /// container's process that runc no longer knows of). Returned apart:
    /// the trash emptiers among those rbk processes.
    fn leftover_processes(&self) -> anyhow::Result<(u32, u32)> {
        let mut leftovers = 0;
        let mut emptiers = 0;
        let mut suspects = Vec::new();
        let state = self.store.join("runc");
        if state.is_dir() {
            let out = Command::new("runc")
                .arg("--root")
                .arg(&state)
                .args(["list", "-q"])
                .output()?;
            leftovers += String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .count() as u32;
        }
        let store = std::fs::canonicalize(&self.store)?;
        let rbk = std::fs::canonicalize(&self.rbk)?;
        let store_arg = self.store.to_str().context("path")?;
        for entry in std::fs::read_dir("/proc")? {
            let path = entry?.path();
            let is_pid = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            if !is_pid {
                continue;
            }
            // A process may end while it is looked at: unreadable is gone.
            let exe = std::fs::read_link(path.join("exe")).ok();
            let root = std::fs::read_link(path.join("root")).ok();
            let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            // An rbk of this soak's store (another soak may run at once).
            let ours = exe.is_some_and(|e| e == rbk) && args.contains(&store_arg.as_bytes());
            let emptier = ours && args.ends_with(&[b"system", b"empty-trash", b""]);
            if emptier {
                emptiers += 1;
            } else if ours {
                suspects.push((path, cmdline));
            } else if root.is_some_and(|r| r.starts_with(&store)) {
                say_process(&path, &cmdline, " (left over)");
                leftovers += 1;
            }
        }
        // A command detaches the trash emptier by fork and exec: caught in
        // between, the child still shows its parent's arguments, and soon
        // shows the emptier's. A process that keeps them, or ends before it
        // is seen to change, counts as a leftover.
        for (path, cmdline) in suspects {
            if became_emptier(&path, &cmdline) {
                say_process(&path, &cmdline, " (an emptier between fork and exec)");
                emptiers += 1;
            } else {
                say_process(&path, &cmdline, " (left over)");
                leftovers += 1;
            }
        }
        Ok((leftovers, emptiers))
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

    /// ROUNDS rounds of 16 concurrent builds plus rmi/prune/load/pull
    /// churn, each round followed by a full `system verify`.
    fn concurrency(&mut self, rounds: u32) -> anyhow::Result<Churn> {
        let mut counts = Churn::default();
        for round in 0..rounds {
            let mut builds = Vec::new();
            for i in 0..16u64 {
                // Each build's output in a file: 16 pipes would be read one
                // at a time, holding back the builds whose pipe fills.
                let log = self.store.with_file_name(format!("build-{round}-{i}.log"));
                let stderr = Stdio::from(std::fs::File::create(&log)?);
                let n = u64::from(round) * 100 + i;
                builds.push((log, self.spawn_with("build", n, stderr)?));
            }
            let churn: Vec<(&str, Child)> = ["rmi", "prune", "load", "pull"]
                .into_iter()
                .map(|op| Ok((op, self.spawn_logged(op, u64::from(round))?)))
                .collect::<anyhow::Result<_>>()?;
            for (log, mut b) in builds {
                if !b.wait()?.success() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    crate::say(&format!("round {round}: build failed: {tail:?}"));
                    counts.failed_builds += 1;
                }
                std::fs::remove_file(&log)?;
            }
            for (op, c) in churn {
                let out = c.wait_with_output()?;
                // `rmi` of a tag no build has made yet is the soak's doing.
                if !out.status.success() && op != "rmi" {
                    crate::say(&format!(
                        "round {round}: {op} failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                    counts.failed_churn += 1;
                }
            }
            let verify = self.output(&["system", "verify"])?;
            if !verify.status.success() {
                crate::say(&format!(
                    "round {round}: verify failed: {}",
                    String::from_utf8_lossy(&verify.stderr)
                ));
                counts.verify_errors += 1;
            }
            crate::say(&format!(
                "after round {}: {} failed builds, {} failed churn, {} verify errors",
                round + 1,
                counts.failed_builds,
                counts.failed_churn,
                counts.verify_errors
            ));
        }
        Ok(counts)
    }
}

/// Kills between two unkilled prunes (see [`Soak::sweep`]).
const SWEEP_EVERY: u32 = 50;

/// Bytes under `path`, as `du` counts them (the deferred trash included).
/// Whether process `proc_dir`, seen with `cmdline`, execs the trash
/// emptier within 300 ms (polled every 10 ms).
fn became_emptier(proc_dir: &Path, cmdline: &[u8]) -> bool {
    for _ in 0..30 {
        match std::fs::read(proc_dir.join("cmdline")) {
            Ok(now) if now.ends_with(b"system\0empty-trash\0") => return true,
            Ok(now) if now == cmdline => std::thread::sleep(Duration::from_millis(10)),
            _ => return false,
        }
    }
    false
}

fn say_process(proc_dir: &Path, cmdline: &[u8], what: &str) {
    crate::say(&format!(
        "process {}: {}{what}",
        proc_dir.display(),
        String::from_utf8_lossy(cmdline).replace('\0', " ")
    ));
}

fn disk_usage(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("du").arg("-sb").arg(path).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("du -sb {}: {text:?}", path.display()))
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t | 1
}
