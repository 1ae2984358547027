//! `cargo xtask bench real`: the real-world Dockerfiles of the test suite
//! (`crates/cli/tests/testdata/real-debian/`) on a real Debian bookworm
//! base, built by the release `rbk` and by `docker build` (BuildKit, a
//! private `dockerd`, `--network host`) on this machine in the same run,
//! cold and warm; and rbk's overhead per `RUN` step against the same
//! commands run directly by runc on the same rootfs.
//!
//! - **Base.** The tests' cache, `target/real-debian/debian-bookworm.tar`
//!   (debootstrap `--variant=minbase` from this machine's apt mirror,
//!   `docker import`, `docker save`), made here under the same lock when
//!   missing; its unpacked rootfs `target/real-debian/rootfs` is the runc
//!   baseline's root.
//! - **Cold** is no build cache with the base present and unpacked: a
//!   fresh rbk store with the base loaded and unpacked (rbk unpacks a
//!   layer on first use, Docker at `docker load`), and for BuildKit
//!   `docker builder prune -af` (which also empties cache mounts). rbk and
//!   BuildKit alternate run by run, so both see the same mirror. **From
//!   the archive** adds the load: `rbk load` into an empty store against
//!   `docker load` into an engine without the base, each plus the build.
//! - **Warm** is the same build again with nothing changed; **edit** is a
//!   one-line change to the Node app's source (its `npm install` and the
//!   final copies run again; the npm cache mount is warm).
//! - **Overhead per RUN step**: a Dockerfile of ten network-free commands
//!   built `--no-cache`, minus the same ten commands run one after another
//!   by `runc run` on a copy of the base's rootfs, divided by ten; rbk,
//!   BuildKit and runc take turns each round. `cargo xtask bench real
//!   overhead` runs only these rows (`summary-real-overhead.md`): they are
//!   the ones a busy machine spoils.

mod dockerd;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::path_str;
use super::Figure;
use dockerd::Dockerd;

/// Runs of each cold build (each downloads every package again).
const COLD_RUNS: usize = 3;
/// Runs of each warm build.
const WARM_RUNS: usize = 5;
/// Rounds of the overhead build (this machine is shared: take many).
const OVERHEAD_RUNS: usize = 11;
/// The tag of the base, in Docker and in rbk.
const IMAGE: &str = "rbk-real/debian:bookworm";
/// The host's CA bundle, passed to the builds as secret `ca`.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The network-free commands of the overhead Dockerfile, one RUN each.
const STEPS: [&str; 10] = [
    "useradd --create-home u1",
    "dpkg-query -W > /pkgs",
    "ls -lR /etc > /etc-listing",
    "echo hi > /hi",
    "getent passwd u1 > /u1",
    "mkdir -p /opt/a/b && touch /opt/a/b/c",
    "sha256sum /bin/bash > /bash.sum",
    "date -u +%Y > /year",
    "cp -a /usr/share/doc /doc-copy",
    "rm /hi",
];

struct Bench {
    rbk: PathBuf,
    work: PathBuf,
    archive: PathBuf,
    rootfs: PathBuf,
    docker: Dockerd,
    /// `--secret` and `--build-arg`s handing the host's package config on.
    package_args: Vec<String>,
}

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    crate::packages::ensure_packages()?;
    crate::run(
        root,
        "cargo",
        &["build", "--release", "--quiet", "-p", "rbk-cli"],
    )?;
    // The last run's stores (gigabytes) are deleted after this run's
    // measurements: mass deletes slow file creation on this filesystem.
    let work = root.join("target/bench-real");
    let old = root.join(format!("target/bench-real.old{}", std::process::id()));
    if work.exists() {
        std::fs::rename(&work, &old)?;
    }
    std::fs::create_dir_all(&work)?;
    let figures = measure(root, &work);
    let _ = std::fs::remove_dir_all(&old);
    figures
}

fn measure(root: &Path, work: &Path) -> anyhow::Result<Vec<Figure>> {
    let work = work.to_path_buf();
    let docker = Dockerd::start(&work.join("dockerd"))?;
    let cache = root.join("target/real-debian");
    let archive = base_archive(&docker, &cache)?;
    docker.ok(&["load", "-i", path_str(&archive)?])?;
    let bench = Bench {
        rbk: root.join("target/release/rbk"),
        work,
        archive,
        rootfs: cache.join("rootfs"),
        docker,
        package_args: package_args(),
    };
    // `cargo xtask bench real overhead` measures only the overhead rows
    // (they need a quiet machine; the builds take many minutes).
    if std::env::args().nth(3).as_deref() == Some("overhead") {
        return bench.overhead();
    }
    let testdata = root.join("crates/cli/tests/testdata/real-debian");
    let mut figures = bench.dockerfile("user", &testdata.join("user"), false)?;
    figures.extend(bench.build_from_archive(&testdata.join("user"))?);
    figures.extend(bench.dockerfile("app", &testdata.join("app"), true)?);
    figures.extend(bench.overhead()?);
    Ok(figures)
}

/// The cached base archive, made (with the rootfs) when missing, under the
/// lock the tests use.
fn base_archive(docker: &Dockerd, cache: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(cache)?;
    let archive = cache.join("debian-bookworm.tar");
    let script = format!(
        "set -e\n\
         [ -f debian-bookworm.tar ] && exit 0\n\
         if [ ! -f rootfs/etc/debian_version ]; then\n\
           debootstrap --variant=minbase bookworm rootfs.tmp$$ '{mirror}' >debootstrap.log\n\
           [ ! -e rootfs ] || mv rootfs rootfs.stale$$\n\
           mv rootfs.tmp$$ rootfs\n\
         fi\n\
         tar --numeric-owner -C rootfs -c . | {client} import - {IMAGE}\n\
         {client} save -o debian-bookworm.tmp$$ {IMAGE}\n\
         mv debian-bookworm.tmp$$ debian-bookworm.tar\n",
        mirror = mirror()?,
        client = dockerd::CLIENT,
    );
    crate::say("bench real: the Debian base (debootstrap on first use)");
    let status = docker
        .env(Command::new("flock"))
        .arg("lock")
        .args(["sh", "-c", &script])
        .current_dir(cache)
        .status()
        .context("running flock")?;
    if !status.success() {
        bail!("making the Debian base in {} failed", cache.display());
    }
    Ok(archive)
}

/// This machine's Debian mirror: the first `URIs:` of a deb822 source for
/// bookworm, else the first `deb` line for it.
fn mirror() -> anyhow::Result<String> {
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths
            .iter()
            .filter(|p| p.extension() == Some("sources".as_ref()))
        {
            texts.push(std::fs::read_to_string(p).unwrap_or_default());
        }
    }
    for text in &texts {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(str::trim))
                    .unwrap_or_default()
            };
            if field("Suites:").split_whitespace().any(|s| s == "bookworm") {
                if let Some(uri) = field("URIs:").split_whitespace().next() {
                    return Ok(uri.to_string());
                }
            }
        }
    }
    let classic = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    classic
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l
                .split_whitespace()
                .filter(|w| !w.starts_with('['))
                .collect();
            (w.len() > 2 && w[0] == "deb" && w[2] == "bookworm").then(|| w[1].to_string())
        })
        .context("no apt source for Debian bookworm on this machine")
}

/// `--secret id=ca,…` plus `NPM_REGISTRY`/`PIP_INDEX_URL` build args from
/// the host's npm and pip configuration, when set.
pub(super) fn package_args() -> Vec<String> {
    let mut args = vec!["--secret".to_string(), format!("id=ca,src={CA_BUNDLE}")];
    let output = |program: &str, a: &[&str]| {
        Command::new(program)
            .args(a)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let npm = output("npm", &["config", "get", "registry"]);
    if npm.trim().starts_with("http") {
        args.extend(["--build-arg".into(), format!("NPM_REGISTRY={}", npm.trim())]);
    }
    let pip = std::env::var("PIP_INDEX_URL").ok().or_else(|| {
        output("pip3", &["config", "list"]).lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.ends_with(".index-url")
                .then(|| v.trim().trim_matches('\'').to_string())
        })
    });
    if let Some(url) = pip.filter(|u| !u.is_empty()) {
        args.extend(["--build-arg".into(), format!("PIP_INDEX_URL={url}")]);
    }
    args
}

impl Bench {
    /// A store under the work dir holding only the base, unpacked (by a
    /// build of `RUN true` on it): the state Docker's engine is in after
    /// `docker load`, which unpacks. rbk unpacks a layer when first used.
    fn fresh_store(&self, name: &str) -> anyhow::Result<PathBuf> {
        let store = self.work.join(name);
        self.rbk(&store, &["load", "-i", path_str(&self.archive)?])?;
        let warm = self.work.join("ctx-unpack");
        std::fs::create_dir_all(&warm)?;
        std::fs::write(warm.join("Dockerfile"), format!("FROM {IMAGE}\nRUN true\n"))?;
        self.rbk(&store, &["build", "--progress=quiet", path_str(&warm)?])?;
        Ok(store)
    }

    /// Everything from the saved base archive, for both: `rbk load` into an
    /// empty store + build, against `docker load` into an engine without
    /// the base or any build cache + build.
    fn build_from_archive(&self, testdata: &Path) -> anyhow::Result<Vec<Figure>> {
        let ctx = self.work.join("ctx-archive");
        crate::run_quiet(
            &self.work,
            "cp",
            &["-a", path_str(testdata)?, path_str(&ctx)?],
        )?;
        let archive = path_str(&self.archive)?;
        let (mut rbk, mut bk) = (Vec::new(), Vec::new());
        for run in 0..WARM_RUNS {
            crate::say(&format!("bench real: from the archive, run {}", run + 1));
            let store = self.work.join(format!("store-archive-{run}"));
            let start = Instant::now();
            self.rbk(&store, &["load", "-i", archive])?;
            let load = start.elapsed().as_secs_f64();
            rbk.push(load + self.rbk_build(&store, &ctx, &[])?);
            let _ = self
                .docker
                .ok(&["rmi", "-f", "bench-real-archive:latest", IMAGE]);
            self.docker.ok(&["builder", "prune", "-af"])?;
            let start = Instant::now();
            self.docker.ok(&["load", "-i", archive])?;
            let load = start.elapsed().as_secs_f64();
            bk.push(load + self.docker_build(&ctx, &["-t", "bench-real-archive:latest"])?);
        }
        Ok(vec![
            Figure {
                name: "real: user/ from the base archive (load + build) — rbk",
                unit: "s",
                samples: rbk,
                target: "<= BuildKit (next row)",
            },
            Figure {
                name: "real: user/ from the base archive (docker load + build) — BuildKit",
                unit: "s",
                samples: bk,
                target: "(reference)",
            },
        ])
    }

    fn rbk(&self, store: &Path, args: &[&str]) -> anyhow::Result<f64> {
        let start = Instant::now();
        let out = Command::new(&self.rbk)
            .arg("--root")
            .arg(store)
            .args(args)
            .output()
            .context("running rbk")?;
        let secs = start.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "rbk {args:?} failed:\n{}",
                tail(&String::from_utf8_lossy(&out.stderr))
            );
        }
        Ok(secs)
    }

    /// Seconds for `rbk build` of `ctx` into `store`.
    fn rbk_build(&self, store: &Path, ctx: &Path, extra: &[&str]) -> anyhow::Result<f64> {
        let mut args = vec!["build", "--progress=plain"];
        args.extend(self.package_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.push(path_str(ctx)?);
        self.rbk(store, &args)
    }

    /// Seconds for `docker build` (BuildKit) of `ctx`.
    fn docker_build(&self, ctx: &Path, extra: &[&str]) -> anyhow::Result<f64> {
        let mut args = vec!["build", "--network", "host", "--progress=plain"];
        args.extend(self.package_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.push(path_str(ctx)?);
        let start = Instant::now();
        self.docker.ok(&args)?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// Cold, warm (and for the app, source-edit) rows of one Dockerfile,
    /// for rbk and for BuildKit.
    fn dockerfile(&self, name: &str, testdata: &Path, edit: bool) -> anyhow::Result<Vec<Figure>> {
        let ctx = self.work.join(format!("ctx-{name}"));
        crate::run_quiet(
            &self.work,
            "cp",
            &["-a", path_str(testdata)?, path_str(&ctx)?],
        )?;
        let tag = format!("bench-real-{name}:latest");
        let tag_args = ["-t", tag.as_str()];
        let (mut rbk, mut bk) = (Samples::default(), Samples::default());
        for run in 0..COLD_RUNS {
            crate::say(&format!("bench real: {name}, cold run {}", run + 1));
            let store = self.fresh_store(&format!("store-{name}-{run}"))?;
            rbk.cold.push(self.rbk_build(&store, &ctx, &tag_args)?);
            self.docker.ok(&["builder", "prune", "-af"])?;
            bk.cold.push(self.docker_build(&ctx, &tag_args)?);
            if run + 1 < COLD_RUNS {
                continue;
            }
            for _ in 0..WARM_RUNS {
                rbk.warm.push(self.rbk_build(&store, &ctx, &tag_args)?);
                bk.warm.push(self.docker_build(&ctx, &tag_args)?);
            }
            if edit {
                for i in 0..WARM_RUNS {
                    let js = ctx.join("hello.js");
                    let text = std::fs::read_to_string(&js)?;
                    std::fs::write(&js, format!("{text}// edit {i}\n"))?;
                    rbk.edit.push(self.rbk_build(&store, &ctx, &tag_args)?);
                    bk.edit.push(self.docker_build(&ctx, &tag_args)?);
                }
            }
        }
        Ok(rows(name, rbk, bk))
    }

    /// rbk's and BuildKit's time per RUN step above runc running the same
    /// commands on the same rootfs.
    fn overhead(&self) -> anyhow::Result<Vec<Figure>> {
        let mut df = format!("FROM {IMAGE}\n");
        for step in STEPS {
            writeln!(df, "RUN {step}")?;
        }
        let ctx = self.work.join("ctx-overhead");
        std::fs::create_dir_all(&ctx)?;
        std::fs::write(ctx.join("Dockerfile"), df)?;
        let store = self.fresh_store("store-overhead")?;
        let n = STEPS.len() as f64;
        let (mut rbk, mut bk, mut runc) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..=OVERHEAD_RUNS {
            let r = self.rbk_build(&store, &ctx, &["--no-cache"])?;
            let b = self.docker_build(&ctx, &["--no-cache"])?;
            let base = self.runc_steps(run)?;
            crate::say(&format!(
                "bench real: overhead run {run}: rbk {r:.3} s, BuildKit {b:.3} s, runc {base:.3} s"
            ));
            // The first round warms page caches for all three.
            if run > 0 {
                rbk.push((r - base) / n * 1000.0);
                bk.push((b - base) / n * 1000.0);
                runc.push(base / n * 1000.0);
            }
        }
        Ok(vec![
            Figure {
                name: "real: rbk overhead per RUN step (10 steps --no-cache, minus runc)",
                unit: "ms",
                samples: rbk,
                target: "<= 30 ms",
            },
            Figure {
                name: "real: BuildKit overhead per RUN step (same build, minus runc)",
                unit: "ms",
                samples: bk,
                target: "(reference)",
            },
            Figure {
                name: "real: runc run of the same command on the same rootfs, per step",
                unit: "ms",
                samples: runc,
                target: "(the baseline)",
            },
        ])
    }

    /// Seconds for the ten commands, each a `runc run` of its own on one
    /// copy of the base rootfs (copied untimed), one after another.
    fn runc_steps(&self, run: usize) -> anyhow::Result<f64> {
        let bundle = self.work.join(format!("runc-{run}"));
        std::fs::create_dir_all(&bundle)?;
        let rootfs = bundle.join("rootfs");
        crate::run_quiet(
            &self.work,
            "cp",
            &["-a", path_str(&self.rootfs)?, path_str(&rootfs)?],
        )?;
        let state = self.work.join("runc-state");
        let mut total = 0.0;
        for (i, step) in STEPS.iter().enumerate() {
            std::fs::write(bundle.join("config.json"), runc_spec(&rootfs, step)?)?;
            let id = format!("rbk-bench-real-{}-{run}-{i}", std::process::id());
            let start = Instant::now();
            let out = Command::new("runc")
                .arg("--root")
                .arg(&state)
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(std::process::Stdio::null())
                .output()
                .context("running runc")?;
            total += start.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!(
                    "runc run of {step:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(total)
    }
}

/// `runc spec`'s defaults, with the host's network (as rbk's default RUN
/// and `docker build --network host`), a writable root and `sh -c STEP`.
fn runc_spec(rootfs: &Path, step: &str) -> anyhow::Result<String> {
    let mut spec: serde_json::Value = serde_json::from_str(SPEC_TEMPLATE)?;
    spec["root"]["path"] = path_str(rootfs)?.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", step]);
    Ok(spec.to_string())
}

/// What `runc spec` prints, minus the network namespace and the read-only
/// root, with `PATH` and `HOME` as a build step has them.
const SPEC_TEMPLATE: &str = r#"{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["true"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"],
      "effective": ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"],
      "permitted": ["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD","CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP","CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]
    },
    "noNewPrivileges": false
  },
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid","noexec","nodev","mode=1777","size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid","noexec","nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid","noexec","nodev","ro"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/acpi","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/sys/firmware","/proc/scsi"],
    "readonlyPaths": ["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]
  }
}"#;

/// Samples of one Dockerfile for one builder.
#[derive(Default)]
struct Samples {
    cold: Vec<f64>,
    warm: Vec<f64>,
    edit: Vec<f64>,
}

fn rows(name: &str, rbk: Samples, bk: Samples) -> Vec<Figure> {
    let label = |what: &'static str, app: &'static str| if name == "app" { app } else { what };
    let mut out = vec![
        Figure {
            name: label(
                "real: user/ (useradd, USER, WORKDIR, devices), cold — rbk",
                "real: app/ (apt ×2, pip venv, npm, slim final stage), cold — rbk",
            ),
            unit: "s",
            samples: rbk.cold,
            target: "<= BuildKit (next row)",
        },
        Figure {
            name: label(
                "real: user/, cold — BuildKit",
                "real: app/, cold — BuildKit",
            ),
            unit: "s",
            samples: bk.cold,
            target: "(reference)",
        },
        Figure {
            name: label(
                "real: user/, warm (no change) — rbk",
                "real: app/, warm (no change) — rbk",
            ),
            unit: "s",
            samples: rbk.warm,
            target: "<= BuildKit (next row)",
        },
        Figure {
            name: label(
                "real: user/, warm (no change) — BuildKit",
                "real: app/, warm (no change) — BuildKit",
            ),
            unit: "s",
            samples: bk.warm,
            target: "(reference)",
        },
    ];
    if !rbk.edit.is_empty() {
        out.push(Figure {
            name: "real: app/, one-line edit of hello.js (npm install again) — rbk",
            unit: "s",
            samples: rbk.edit,
            target: "<= BuildKit (next row)",
        });
        out.push(Figure {
            name: "real: app/, one-line edit of hello.js — BuildKit",
            unit: "s",
            samples: bk.edit,
            target: "(reference)",
        });
    }
    out
}

/// The last lines of a build log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
