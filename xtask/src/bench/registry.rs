//! Registry benchmarks: push and pull of a 1 GiB, 10-layer image to a
//! loopback `docker-registry` (Debian's package of the reference
//! implementation), with the default parallelism and with one blob at a
//! time; and the fleet scenario through the registry (`--cache-to
//! type=registry,mode=max` on runner A, `--cache-from` on runner B).
//!
//! Every timed push goes to a freshly started registry with empty storage,
//! and every timed pull into an empty store, so each moves all the bytes.
//! [`peers`] runs the same image through `docker` and `skopeo` beside rbk.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::Figure;

mod peers;

const RUNS: usize = 3;
const LAYERS: usize = 10;
/// 10 × 102.4 MiB of random bytes: 1 GiB that gzip cannot shrink.
const LAYER_BYTES: usize = (1 << 30) / LAYERS;
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The variable `rbk` reads for how many blobs move at once.
const PARALLEL_VAR: &str = "RBK_REGISTRY_PARALLEL";

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    crate::packages::ensure_packages()?;
    if !Path::new(REGISTRY_BIN).is_file() {
        bail!("{REGISTRY_BIN} is missing (apt-get install docker-registry)");
    }
    let work = root.join("target/bench-registry");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let bench = Bench {
        rbk: super::release_binary(root)?,
        work,
    };
    let a = bench.work.join("a");
    bench.big_image(&a)?;
    // `cargo xtask bench registry side-by-side`: rbk, docker and skopeo only.
    let side_by_side = peers::figures(&bench.work, &bench.rbk, &a);
    if std::env::args().nth(3).as_deref() == Some("side-by-side") {
        // Gigabytes on a shared disk: the store, docker's root, skopeo's source.
        let _ = std::fs::remove_dir_all(&bench.work);
        return side_by_side;
    }
    let mut figures = side_by_side?;
    figures.extend(bench.push_pull(&a)?);
    figures.extend(bench.fleet()?);
    let _ = std::fs::remove_dir_all(&bench.work);
    Ok(figures)
}

struct Bench {
    rbk: PathBuf,
    work: PathBuf,
}

/// A running `docker-registry serve` on 127.0.0.1; killed on drop.
pub(super) struct Registry {
    child: Child,
    pub(super) host: String,
    dir: PathBuf,
}

impl Registry {
    /// Starts a registry whose storage is a fresh `dir`.
    pub(super) fn start(dir: &Path) -> anyhow::Result<Registry> {
        Registry::start_logging(dir, "warn")
    }

    /// [`Registry::start`] logging at `level` into `DIR/registry.log`.
    pub(super) fn start_logging(dir: &Path, level: &str) -> anyhow::Result<Registry> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: {level}\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let registry = Registry {
            child,
            host,
            dir: dir.to_path_buf(),
        };
        for _ in 0..200 {
            if let Ok(mut s) = TcpStream::connect(&registry.host) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return Ok(registry);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("docker-registry did not start on {}", registry.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bench {
    /// Runs `rbk --root STORE args…` with `env`; returns seconds and stdout.
    fn rbk(
        &self,
        store: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<(f64, String)> {
        let start = Instant::now();
        let out = Command::new(&self.rbk)
            .arg("--root")
            .arg(store)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .context("running rbk")?;
        let secs = start.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "rbk {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((secs, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// A store holding `big:1`: `FROM scratch` and ten COPYs of 102.4 MiB
    /// of random bytes, one layer each.
    fn big_image(&self, store: &Path) -> anyhow::Result<()> {
        let ctx = self.work.join("big");
        std::fs::create_dir_all(&ctx)?;
        let mut df = String::from("FROM scratch\n");
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut data = vec![0u8; LAYER_BYTES];
        for i in 0..LAYERS {
            for word in data.chunks_mut(8) {
                // xorshift64*: fast, and incompressible enough for gzip.
                rng ^= rng >> 12;
                rng ^= rng << 25;
                rng ^= rng >> 27;
                let v = rng.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                word.copy_from_slice(&v[..word.len()]);
            }
            std::fs::write(ctx.join(format!("l{i}.bin")), &data)?;
            writeln!(df, "COPY l{i}.bin /data/l{i}.bin")?;
        }
        std::fs::write(ctx.join("Dockerfile"), df)?;
        let ctx_str = ctx.to_str().context("non-UTF-8 path")?;
        self.rbk(
            store,
            &[],
            &["build", "--progress=quiet", "-t", "big:1", ctx_str],
        )?;
        // The disk is shared: keep only what the pushes and pulls need.
        std::fs::remove_dir_all(&ctx)?;
        Ok(())
    }

    fn push_pull(&self, a: &Path) -> anyhow::Result<Vec<Figure>> {
        let a = a.to_path_buf();
        // The very first push also makes the gzip forms of the layers.
        let (first, bytes) = {
            let registry = Registry::start(&self.work.join("registry"))?;
            let name = format!("{}/bench/big:1", registry.host);
            self.rbk(&a, &[], &["tag", "big:1", &name])?;
            let (secs, out) = self.rbk(&a, &[], &["push", &name])?;
            self.rbk(&a, &[], &["rmi", &name])?;
            (vec![secs], pushed_bytes(&out)?)
        };
        let (mut push, mut again, mut pull) = (Vec::new(), Vec::new(), Vec::new());
        let (mut push1, mut pull1) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            for one in [false, true] {
                let env: &[(&str, &str)] = if one { &[(PARALLEL_VAR, "1")] } else { &[] };
                let registry = Registry::start(&self.work.join("registry"))?;
                let name = format!("{}/bench/big:1", registry.host);
                self.rbk(&a, &[], &["tag", "big:1", &name])?;
                let secs = self.rbk(&a, env, &["push", &name])?.0;
                let fresh = self.work.join(format!("pull{run}"));
                let pulled = self.rbk(&fresh, env, &["pull", &name])?.0;
                let _ = std::fs::remove_dir_all(&fresh);
                if one {
                    push1.push(secs);
                    pull1.push(pulled);
                } else {
                    push.push(secs);
                    pull.push(pulled);
                    again.push(self.rbk(&a, env, &["push", &name])?.0);
                }
                self.rbk(&a, &[], &["rmi", &name])?;
            }
        }
        let mb = bytes as f64 / 1e6;
        let rate = |s: &[f64]| s.iter().map(|s| mb / s).collect::<Vec<_>>();
        Ok(vec![
            figure(
                "registry: first push of the 1 GiB, 10-layer image (gzip + upload)",
                "s",
                first,
                "-",
            ),
            figure(
                "registry: push to an empty registry (gzip forms recorded), 4 at once",
                "s",
                push.clone(),
                "-",
            ),
            figure(
                "registry: push throughput, 4 at once",
                "MB/s",
                rate(&push),
                "-",
            ),
            figure(
                "registry: push throughput, 1 at a time",
                "MB/s",
                rate(&push1),
                "< the 4-at-once figure",
            ),
            figure(
                "registry: second push of the same image (nothing uploaded)",
                "s",
                again,
                "< 0.5 s",
            ),
            figure(
                "registry: pull into an empty store, 4 at once",
                "s",
                pull.clone(),
                "-",
            ),
            figure(
                "registry: pull throughput, 4 at once",
                "MB/s",
                rate(&pull),
                "-",
            ),
            figure(
                "registry: pull throughput, 1 at a time",
                "MB/s",
                rate(&pull1),
                "< the 4-at-once figure",
            ),
        ])
    }

    /// The fleet scenario through a registry: a fresh registry and two fresh
    /// stores (with the base image) per run.
    fn fleet(&self) -> anyhow::Result<Vec<Figure>> {
        let tarball = crate::busybox_rootfs(&self.work)?;
        let df = "FROM rbk-busybox AS builder\n\
                  COPY src /src\n\
                  RUN dd if=/dev/urandom of=/big bs=1M count=32 2>/dev/null && sleep 1\n\
                  RUN cat /src/* > /out && sleep 1\n\
                  FROM rbk-busybox\n\
                  COPY --from=builder /out /app\n\
                  COPY --from=builder /big /big\n\
                  RUN wc -c /big > /size\n";
        let ctx = self.work.join("fleet");
        std::fs::create_dir_all(ctx.join("src"))?;
        std::fs::write(ctx.join("Dockerfile"), df)?;
        for i in 0..100 {
            std::fs::write(ctx.join(format!("src/f{i}.c")), format!("int f{i};\n"))?;
        }
        let ctx = ctx.to_str().context("non-UTF-8 path")?;
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let registry = Registry::start(&self.work.join("fleet-registry"))?;
            let cache = format!("{}/bench/cache:fleet", registry.host);
            let a = self.work.join(format!("fleet-a{run}"));
            let b = self.work.join(format!("fleet-b{run}"));
            for store in [&a, &b] {
                self.rbk(store, &[], &["import", &tarball, "rbk-busybox:latest"])?;
            }
            let to = format!("type=registry,ref={cache},mode=max");
            let from = format!("type=registry,ref={cache}");
            let build = |store: &Path, flag: &str, spec: &str| {
                self.rbk(store, &[], &["build", "--progress=plain", flag, spec, ctx])
            };
            cold.push(build(&a, "--cache-to", &to)?.0);
            let (secs, _) = build(&b, "--cache-from", &from)?;
            warm.push(secs);
        }
        Ok(vec![
            figure(
                "fleet (registry): runner A cold build + --cache-to type=registry mode=max",
                "s",
                cold,
                "(reference for runner B)",
            ),
            figure(
                "fleet (registry): runner B empty store, --cache-from type=registry",
                "s",
                warm,
                "well under runner A's",
            ),
        ])
    }
}

pub(super) fn figure(
    name: &'static str,
    unit: &'static str,
    samples: Vec<f64>,
    target: &'static str,
) -> Figure {
    Figure {
        name,
        unit,
        samples,
        target,
    }
}

/// The blob bytes a push sent, from its summary line
/// (`pushed N blobs (B bytes), …`).
fn pushed_bytes(stdout: &str) -> anyhow::Result<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("pushed "))
        .and_then(|l| l.split_once(" blobs ("))
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .with_context(|| format!("no byte count in the push output:\n{stdout}"))
}
