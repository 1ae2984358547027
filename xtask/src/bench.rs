//! `cargo xtask bench`: benchmarks, never timed tests. Each benchmark runs
//! several times and reports the median; results go to
//! `bench/runs/<date>-<host>/{raw.csv,summary.md}`.

mod build;
mod cache_mounts;
mod fleet;
mod frontend;
mod load;
mod platforms;
mod progress;
mod real;
mod registry;
mod rootless;
mod scale;
mod store;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

/// One measured figure.
pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    /// Every run's value, in `unit`.
    pub(crate) samples: Vec<f64>,
    pub(crate) target: &'static str,
}

impl Figure {
    pub(crate) fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// Times `f` `runs` times after one warm-up run.
pub(crate) fn time_runs(
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    f()?;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        out.push(start.elapsed());
    }
    Ok(out)
}

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    // `cargo xtask bench [frontend|build|store|registry|platforms|progress|real|cache-mounts|scale|fleet|rootless|load]`
    // runs one group; no argument runs all but `real` and `cache-mounts`
    // (minutes of apt, pip and npm downloads), `scale` (gigabytes of
    // generated data), `fleet` (eight concurrent runners), `rootless` (the
    // build rows as root and as an ordinary user) and `load` (a 1 GiB
    // archive, rounds against cat), which run only when named.
    let only = std::env::args().nth(2).unwrap_or_default();
    let wanted = |group: &str| only.is_empty() || only == group;
    let mut figures = Vec::new();
    if wanted("frontend") {
        figures.extend(frontend::figures()?);
    }
    if wanted("build") {
        figures.extend(build::figures(root)?);
    }
    if wanted("store") {
        figures.extend(store::figures(root)?);
    }
    if wanted("registry") {
        figures.extend(registry::figures(root)?);
    }
    if wanted("platforms") {
        figures.extend(platforms::figures(root)?);
    }
    if wanted("progress") {
        figures.extend(progress::figures(root)?);
    }
    // Every build row twice (root, then an ordinary user): only when named.
    if only == "rootless" {
        figures.extend(rootless::figures(root)?);
    }
    if only == "fleet" {
        figures.extend(fleet::figures(root)?);
    }
    if only == "load" {
        figures.extend(load::figures(root)?);
    }
    if only == "scale" {
        figures.extend(scale::figures(root)?);
    }
    if only == "real" {
        figures.extend(real::figures(root)?);
    }
    // Like `real`: minutes of apt, pip and npm downloads, only when named.
    if only == "cache-mounts" {
        figures.extend(cache_mounts::figures(root)?);
    }
    let dir = root
        .join("bench/runs")
        .join(format!("{}-{}", today()?, host()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut raw = String::from("benchmark,unit,run,value\n");
    let mut summary = String::from("| benchmark | median | target |\n|---|---|---|\n");
    for fig in &figures {
        for (i, v) in fig.samples.iter().enumerate() {
            writeln!(raw, "{},{},{i},{v:.3}", fig.name, fig.unit)?;
        }
        writeln!(
            summary,
            "| {} | {:.3} {} | {} |",
            fig.name,
            fig.median(),
            fig.unit,
            fig.target
        )?;
    }
    // A run of one group keeps the files of the full run.
    let suffix = match (only.as_str(), std::env::args().nth(3)) {
        ("", _) => String::new(),
        (group, Some(part)) => format!("-{group}-{part}"),
        (group, None) => format!("-{group}"),
    };
    std::fs::write(dir.join(format!("raw{suffix}.csv")), raw)?;
    std::fs::write(dir.join(format!("summary{suffix}.md")), &summary)?;
    crate::say(&summary);
    crate::say(&format!("written to {}", dir.display()));
    Ok(())
}

/// The `rbk` to measure: `RBK_BENCH_BIN` when set (a binary built
/// elsewhere, e.g. while the machine is too busy to build one), otherwise
/// this workspace's release build, built now.
pub(crate) fn release_binary(root: &Path) -> anyhow::Result<std::path::PathBuf> {
    if let Some(bin) = std::env::var_os("RBK_BENCH_BIN") {
        return Ok(bin.into());
    }
    crate::run(
        root,
        "cargo",
        &["build", "--release", "--quiet", "-p", "rbk-cli"],
    )?;
    Ok(root.join("target/release/rbk"))
}

/// `p` as UTF-8, for a command-line argument.
pub(crate) fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

/// A figure name made at run time: figures live until the process ends.
pub(crate) fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// `rbk --root STORE ARGS...`, which must succeed; returns its stderr (the
/// progress log).
pub(crate) fn rbk_ok(rbk: &Path, store: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(rbk)
        .arg("--root")
        .arg(store)
        .args(args)
        .output()
        .context("running rbk")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        anyhow::bail!("rbk {args:?} failed:\n{stderr}");
    }
    Ok(stderr)
}

fn today() -> anyhow::Result<String> {
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .context("running date")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}
