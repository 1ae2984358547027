//! `cargo xtask bench fleet`: a fleet of runners on one registry (issue
//! 19). Eight runners (`RBK_BENCH_FLEET_RUNNERS` to change it), each with
//! its own empty store but for the base image, build the same repository
//! against one loopback `docker-registry` with `--cache-from` and
//! `--cache-to type=registry,mode=max`: the first alone, the others all at
//! once. Each runner talks to the registry through a counting proxy of its
//! own, so the bytes it uploaded are known; the registry's log gives the
//! uploads per blob. The correctness of the same scenario is checked by
//! `crates/cli/tests/fleet.rs`; this measures it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::registry::{figure, Registry};
use super::Figure;
use super::{leak, path_str, rbk_ok};

const DOCKERFILE: &str = "FROM rbk-busybox AS deps\n\
     COPY src /src\n\
     RUN dd if=/dev/urandom of=/deps bs=1M count=16 2>/dev/null && sleep 1\n\
     FROM deps AS builder\n\
     RUN cat /src/* > /out && dd if=/dev/urandom of=/big bs=1M count=16 2>/dev/null && sleep 1\n\
     FROM rbk-busybox\n\
     COPY --from=builder /out /app\n\
     COPY --from=builder /big /big\n\
     RUN wc -c /big > /size\n";

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    let runners: usize = std::env::var("RBK_BENCH_FLEET_RUNNERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
        .max(2);
    let rbk = super::release_binary(root)?;
    let work = root.join("target/bench-fleet");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = fleet(&rbk, &work, runners);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn fleet(rbk: &Path, work: &Path, runners: usize) -> anyhow::Result<Vec<Figure>> {
    let tarball = crate::busybox_rootfs(work)?;
    let ctx = work.join("ctx");
    std::fs::create_dir_all(ctx.join("src"))?;
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
    for i in 0..200 {
        std::fs::write(ctx.join(format!("src/f{i}.c")), format!("int f{i};\n"))?;
    }
    let registry = Registry::start_logging(&work.join("registry"), "info")?;
    let stores: Vec<PathBuf> = (0..runners)
        .map(|n| work.join(format!("runner-{n}")))
        .collect();
    let base = work.join("base.tar");
    rbk_ok(rbk, &stores[0], &["import", &tarball, "rbk-busybox:latest"])?;
    rbk_ok(
        rbk,
        &stores[0],
        &["save", "-o", path_str(&base)?, "rbk-busybox"],
    )?;
    for store in &stores[1..] {
        rbk_ok(rbk, store, &["load", "-i", path_str(&base)?])?;
    }
    let proxies: Vec<CountingProxy> = (0..runners)
        .map(|_| CountingProxy::start(&registry.host))
        .collect::<anyhow::Result<_>>()?;
    let spawn = |n: usize| {
        let cache = format!("{}/bench/fleet:main", proxies[n].host);
        let from = format!("type=registry,ref={cache}");
        let to = format!("type=registry,ref={cache},mode=max");
        Command::new(rbk)
            .arg("--root")
            .arg(&stores[n])
            .args(["build", "--progress=plain", "--cache-from", &from])
            .args(["--cache-to", &to, path_str(&ctx)?])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting rbk build")
    };
    let start = Instant::now();
    let first = wait(spawn(0)?)?;
    let mut walls = vec![start.elapsed().as_secs_f64()];
    let mut runs = vec![ran_runs(&first)];
    // The others at once, each timed from the common start to its own end.
    let start = Instant::now();
    let children = (1..runners)
        .map(spawn)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ended: Vec<anyhow::Result<(f64, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = children
            .into_iter()
            .map(|child| {
                scope.spawn(move || {
                    let log = wait(child)?;
                    Ok((start.elapsed().as_secs_f64(), log))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a waiting thread panicked"))
            })
            .collect()
    });
    for end in ended {
        let (secs, log) = end?;
        walls.push(secs);
        runs.push(ran_runs(&log));
    }
    let uploaded: Vec<f64> = proxies
        .iter()
        .map(|p| p.uploaded.load(Ordering::Relaxed) as f64 / 1e6)
        .collect();
    let log = std::fs::read_to_string(work.join("registry/registry.log"))?;
    let counts = uploads_per_blob(&log);
    let repeats = counts.values().filter(|n| **n > 1).count() as f64;
    let mut figures = Vec::new();
    for n in 0..runners {
        let who = if n == 0 {
            "first, alone"
        } else {
            "with the others"
        };
        figures.push(figure(
            leak(format!("fleet: runner {n} ({who}) wall time")),
            "s",
            vec![walls[n]],
            if n == 0 { "(reference)" } else { "-" },
        ));
        figures.push(figure(
            leak(format!("fleet: runner {n} bytes uploaded")),
            "MB",
            vec![uploaded[n]],
            if n == 0 {
                "-"
            } else {
                "~0 (the cache is there)"
            },
        ));
    }
    figures.push(figure(
        "fleet: RUN steps run by runners after the first",
        "steps",
        vec![runs[1..].iter().sum::<usize>() as f64],
        "0",
    ));
    figures.push(figure(
        "fleet: blobs uploaded more than once (registry log)",
        "blobs",
        vec![repeats],
        "0",
    ));
    figures.push(figure(
        "fleet: distinct blobs uploaded (registry log)",
        "blobs",
        vec![counts.len() as f64],
        "-",
    ));
    drop(registry);
    Ok(figures)
}

fn wait(child: Child) -> anyhow::Result<String> {
    let out = child.wait_with_output()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("a runner's build failed:\n{log}");
    }
    Ok(log)
}

/// RUN steps that ran in a plain progress log: `#N [..] RUN …` followed
/// later by `#N DONE`.
fn ran_runs(log: &str) -> usize {
    let mut labels = BTreeMap::new();
    let mut count = 0;
    for line in log.lines() {
        let Some((n, text)) = line.strip_prefix('#').and_then(|r| r.split_once(' ')) else {
            continue;
        };
        if text.starts_with("DONE") {
            count += usize::from(labels.remove(n).unwrap_or(false));
        } else {
            labels
                .entry(n.to_string())
                .or_insert_with(|| text.contains("RUN "));
        }
    }
    count
}

/// Completed blob uploads in an info-level registry log, by digest.
fn uploads_per_blob(log: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let put = line.contains("http.request.method=PUT")
            && line.contains("/blobs/uploads/")
            && line.contains("http.response.status=201");
        let Some(at) = line.find("digest=sha256").filter(|_| put) else {
            continue;
        };
        let hex: String = line[at + "digest=sha256".len()..]
            .trim_start_matches(':')
            .trim_start_matches("%3A")
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        *counts.entry(hex).or_insert(0) += 1;
    }
    counts
}

/// A loopback TCP forwarder that counts the bytes clients send upstream.
struct CountingProxy {
    host: String,
    uploaded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: &str) -> anyhow::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let host = listener.local_addr()?.to_string();
        listener.set_nonblocking(true)?;
        let uploaded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped, upstream) = (uploaded.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (counter, upstream) = (counter.clone(), upstream.clone());
                        std::thread::spawn(move || forward(client, &upstream, &counter));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(CountingProxy {
            host,
            uploaded,
            stop,
        })
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn forward(client: TcpStream, upstream: &str, counter: &AtomicU64) {
    let _ = client.set_nonblocking(false);
    let Ok(up) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut c_read), Ok(mut u_write)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let (mut u_read, mut c_write) = (up, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut u_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if u_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = u_write.shutdown(Shutdown::Write);
    let _ = back.join();
}
