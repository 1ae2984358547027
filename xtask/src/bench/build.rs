//! Build benchmarks: the release `rbk` binary, whole process each time, on
//! generated Dockerfiles and contexts under `target/bench-build/`, against
//! a busybox base image imported into a fresh store. The same rows run as
//! an ordinary user (rootless rbk) for `cargo xtask bench rootless`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::Figure;
use crate::users::User;

const RUNS: usize = 5;

/// Everything a build benchmark needs: the binary, a store with the base
/// image, a scratch directory, and the ordinary user who runs rbk, if not
/// root.
struct Bench {
    rbk: PathBuf,
    store: PathBuf,
    work: PathBuf,
    user: Option<User>,
}

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    let rbk = super::release_binary(root)?;
    let mut runs = measure(&rbk, &[(root.join("target/bench-build"), None)])?;
    Ok(runs.remove(0))
}

/// One row (or a few that share their setup) of the build benchmark; the
/// second argument is the base image's tarball.
type Row = fn(&Bench, &str) -> anyhow::Result<Vec<Figure>>;

const ROWS: &[Row] = &[
    |b, _| Ok(vec![b.parallel_stages()?]),
    |b, _| Ok(vec![b.noop_rebuild()?]),
    |b, _| Ok(vec![b.one_file_edit()?]),
    |b, _| Ok(vec![b.many_files_run()?]),
    |b, _| b.big_context(),
    |b, _| b.shared_copies(),
    |b, tarball| b.fleet(tarball),
];

/// The build rows for each runner: a scratch directory (made afresh; the
/// user's own when there is one, so its store and exported cache can be
/// written) and the ordinary user who runs `rbk`, or root. Each row runs
/// for every runner before the next row, so that the machine's load
/// weighs on the runners alike. The figures come back per runner.
pub(crate) fn measure(
    rbk: &Path,
    runners: &[(PathBuf, Option<User>)],
) -> anyhow::Result<Vec<Vec<Figure>>> {
    let mut benches = Vec::new();
    for (work, user) in runners {
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work)?;
        if let Some(user) = user {
            std::os::unix::fs::chown(work, Some(user.uid), Some(user.gid))?;
        }
        let bench = Bench {
            rbk: rbk.to_path_buf(),
            store: work.join("store"),
            work: work.clone(),
            user: user.clone(),
        };
        let tarball = crate::busybox_rootfs(work)?;
        bench.rbk(&["import", &tarball, "rbk-busybox:latest"])?;
        benches.push((bench, tarball));
    }
    let mut figures: Vec<Vec<Figure>> = benches.iter().map(|_| Vec::new()).collect();
    for row in ROWS {
        for ((bench, tarball), out) in benches.iter().zip(&mut figures) {
            out.extend(row(bench, tarball)?);
        }
    }
    Ok(figures)
}

impl Bench {
    fn rbk(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = match &self.user {
            None => Command::new(&self.rbk),
            Some(user) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={}", user.uid))
                    .arg(format!("--regid={}", user.gid))
                    .arg("--clear-groups")
                    .arg(&self.rbk)
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                    .env("HOME", &self.work);
                cmd
            }
        };
        let out = cmd
            .arg("--root")
            .arg(&self.store)
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

    /// Seconds for one `rbk build --progress=quiet [extra] CTX`.
    fn build(&self, ctx: &Path, extra: &[&str]) -> anyhow::Result<f64> {
        let mut args = vec!["build", "--progress=quiet"];
        args.extend_from_slice(extra);
        let ctx = ctx.to_str().context("non-UTF-8 path")?;
        args.push(ctx);
        let start = Instant::now();
        self.rbk(&args)?;
        Ok(start.elapsed().as_secs_f64())
    }

    fn context(&self, name: &str, dockerfile: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("Dockerfile"), dockerfile)?;
        Ok(dir)
    }

    fn parallel_stages(&self) -> anyhow::Result<Figure> {
        let mut df = String::new();
        for i in 0..4 {
            writeln!(
                df,
                "FROM rbk-busybox AS s{i}\nRUN sleep 1 && echo {i} > /r{i}"
            )?;
        }
        df.push_str("FROM rbk-busybox\n");
        for i in 0..4 {
            writeln!(df, "COPY --from=s{i} /r{i} /")?;
        }
        let ctx = self.context("parallel", &df)?;
        let samples = (0..RUNS)
            .map(|_| self.build(&ctx, &["--no-cache"]))
            .collect::<anyhow::Result<_>>()?;
        Ok(Figure {
            name: "build: four parallel `RUN sleep 1` stages (--no-cache)",
            unit: "s",
            samples,
            target: "<= 1.10 s (BuildKit 1.27 s)",
        })
    }

    fn noop_rebuild(&self) -> anyhow::Result<Figure> {
        let mut df = String::from("FROM rbk-busybox\n");
        let ctx = self.work.join("noop");
        std::fs::create_dir_all(&ctx)?;
        for i in 0..10 {
            writeln!(df, "ENV V{i}={i}\nRUN echo {i} > /run{i}\nCOPY f{i} /f{i}")?;
            std::fs::write(ctx.join(format!("f{i}")), format!("{i}\n"))?;
        }
        std::fs::write(ctx.join("Dockerfile"), df)?;
        self.build(&ctx, &[])?;
        let samples = (0..RUNS)
            .map(|_| self.build(&ctx, &[]))
            .collect::<anyhow::Result<_>>()?;
        Ok(Figure {
            name: "build: no-op rebuild, 30 instructions",
            unit: "s",
            samples,
            target: "<= 0.030 s (BuildKit 0.12 s)",
        })
    }

    fn one_file_edit(&self) -> anyhow::Result<Figure> {
        let df = "FROM rbk-busybox\nRUN echo early > /early\nCOPY files /files\nRUN ls /files | wc -l > /count\n";
        let ctx = self.context("edit", df)?;
        let files = ctx.join("files");
        std::fs::create_dir_all(&files)?;
        for i in 0..2000 {
            std::fs::write(files.join(format!("f{i}.txt")), format!("file {i}\n"))?;
        }
        self.build(&ctx, &[])?;
        let mut samples = Vec::new();
        for run in 0..RUNS {
            std::fs::write(files.join("f7.txt"), format!("edit {run}\n"))?;
            samples.push(self.build(&ctx, &[])?);
        }
        Ok(Figure {
            name: "build: rebuild after editing one of 2,000 late-COPY'd files",
            unit: "s",
            samples,
            target: "<= 0.150 s (BuildKit 0.57 s)",
        })
    }

    fn many_files_run(&self) -> anyhow::Result<Figure> {
        let df = "FROM rbk-busybox\nRUN mkdir /many && cd /many && i=0; while [ $i -lt 50000 ]; do : > f$i; i=$((i+1)); done\n";
        let ctx = self.context("manyfiles", df)?;
        let samples = (0..3)
            .map(|_| self.build(&ctx, &["--no-cache"]))
            .collect::<anyhow::Result<_>>()?;
        Ok(Figure {
            name: "build: one RUN writing 50,000 files (--no-cache)",
            unit: "s",
            samples,
            target: "<= 2 s (BuildKit 5.1 s)",
        })
    }

    /// `COPY . /app` of 1 GiB in 20,000 files, cold (fresh cache) and warm.
    fn big_context(&self) -> anyhow::Result<Vec<Figure>> {
        let ctx = self.context("bigctx", "FROM rbk-busybox\nCOPY . /app\n")?;
        let chunk = vec![0x5au8; 1 << 16];
        for i in 0..20_000u32 {
            let dir = ctx.join(format!("d{}", i / 500));
            std::fs::create_dir_all(&dir)?;
            // 20,000 files of ~53.7 KB: 1 GiB in all, each distinct.
            let mut data = chunk[..53_687].to_vec();
            data[..4].copy_from_slice(&i.to_le_bytes());
            std::fs::write(dir.join(format!("f{i}")), data)?;
        }
        let mut cold = Vec::new();
        for _ in 0..3 {
            cold.push(self.build(&ctx, &["--no-cache"])?);
        }
        let warm = (0..RUNS)
            .map(|_| self.build(&ctx, &[]))
            .collect::<anyhow::Result<_>>()?;
        Ok(vec![
            Figure {
                name: "build: COPY . /app, 1 GiB in 20,000 files, cold (--no-cache)",
                unit: "s",
                samples: cold,
                target: "<= 2.5 s (BuildKit 12.9 s)",
            },
            Figure {
                name: "build: the same, warm (nothing changed)",
                unit: "s",
                samples: warm,
                target: "<= 0.150 s (BuildKit 0.47 s)",
            },
        ])
    }

    /// Five images that COPY the same 200 MiB: bytes the store grew by, in
    /// all and without `trash/` (dead snapshots waiting to be deleted).
    fn shared_copies(&self) -> anyhow::Result<Vec<Figure>> {
        let ctx = self.work.join("shared");
        std::fs::create_dir_all(&ctx)?;
        let data: Vec<u8> = (0..200u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        std::fs::write(ctx.join("blob.bin"), data)?;
        let trash = self.store.join("trash");
        let before = du(&self.store)?;
        let trash_before = du_or_zero(&trash)?;
        for i in 0..5 {
            let df = format!("FROM rbk-busybox\nLABEL n={i}\nCOPY blob.bin /data/blob.bin\n");
            std::fs::write(ctx.join("Dockerfile"), df)?;
            self.build(&ctx, &["--no-cache", "-t", &format!("shared:{i}")])?;
        }
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let grown = du(&self.store)?.saturating_sub(before);
        let trashed = du_or_zero(&trash)?.saturating_sub(trash_before);
        Ok(vec![
            Figure {
                name: "store growth: five images COPYing the same 200 MiB (--no-cache)",
                unit: "MiB",
                samples: vec![mib(grown)],
                target: "content once (BuildKit keeps 6 copies with --no-cache)",
            },
            Figure {
                name: "the same, not counting trash/ (deleted later)",
                unit: "MiB",
                samples: vec![mib(grown.saturating_sub(trashed))],
                target: "content once",
            },
        ])
    }
}

/// [`du`], or 0 when `dir` does not exist.
fn du_or_zero(dir: &Path) -> anyhow::Result<u64> {
    if dir.exists() {
        du(dir)
    } else {
        Ok(0)
    }
}

/// Bytes used under `dir` (allocated blocks, each inode once).
fn du(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("du").args(["-sb", "--"]).arg(dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("parsing du output")
}

impl Bench {
    /// The fleet scenario, local transport: runner A builds cold and exports
    /// `mode=max`; runner B, a fresh store with only the base image, builds
    /// the same context with `--cache-from` (a fresh store for every run).
    fn fleet(&self, tarball: &str) -> anyhow::Result<Vec<Figure>> {
        let df = "FROM rbk-busybox AS builder\n\
                  COPY src /src\n\
                  RUN dd if=/dev/urandom of=/big bs=1M count=32 2>/dev/null && sleep 1\n\
                  RUN cat /src/* > /out && sleep 1\n\
                  FROM rbk-busybox\n\
                  COPY --from=builder /out /app\n\
                  COPY --from=builder /big /big\n\
                  RUN wc -c /big > /size\n";
        let ctx = self.context("fleet", df)?;
        std::fs::create_dir_all(ctx.join("src"))?;
        for i in 0..100 {
            std::fs::write(ctx.join(format!("src/f{i}.c")), format!("int f{i};\n"))?;
        }
        let cache = self.work.join("fleet-cache");
        let to = format!("type=local,dest={},mode=max", cache.display());
        let from = format!("type=local,src={}", cache.display());
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for run in 0..RUNS {
            let a = Bench {
                rbk: self.rbk.clone(),
                store: self.work.join(format!("fleet-a{run}")),
                work: self.work.clone(),
                user: self.user.clone(),
            };
            a.rbk(&["import", tarball, "rbk-busybox:latest"])?;
            let _ = std::fs::remove_dir_all(&cache);
            cold.push(a.build(&ctx, &["--cache-to", &to])?);
            let b = Bench {
                store: self.work.join(format!("fleet-b{run}")),
                ..a
            };
            b.rbk(&["import", tarball, "rbk-busybox:latest"])?;
            warm.push(b.build(&ctx, &["--cache-from", &from])?);
        }
        Ok(vec![
            Figure {
                name: "fleet: runner A cold build + --cache-to local mode=max (32 MiB layer)",
                unit: "s",
                samples: cold,
                target: "(reference for runner B)",
            },
            Figure {
                name: "fleet: runner B empty store, --cache-from local, same build",
                unit: "s",
                samples: warm,
                target: "well under runner A's (no RUN runs; only final layers fetched)",
            },
        ])
    }
}
