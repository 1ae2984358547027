//! `cargo xtask bench cache-mounts`: the cache-mount export (issue 16,
//! item 7) on the real-world app (`crates/cli/tests/testdata/real-debian/app`)
//! built from its `Dockerfile.cache-mounts`, whose `npm install` runs with
//! `RUN --mount=type=cache,target=/root/.npm` and whose pip step downloads
//! into `RUN --mount=type=cache,target=/root/.cache/pip`, between two stores
//! through a loopback docker-registry.
//!
//! Runner A (a fresh store with the real Debian base) builds the app with
//! `--cache-to type=registry,…,mode=max,cache-mounts=true`. Runner B
//! (another fresh store) builds it with `--cache-from` that cache and
//! `--no-cache-filter node --no-cache-filter python`, so its `npm install`
//! and `pip install` run again while the other steps come from the layer
//! cache. npm keeps what it downloads (tarballs and registry metadata)
//! content-addressed in `_cacache/content-v2`: the npm figures are the
//! entries runner A's cold step put there (what a runner without the export
//! downloads), and the entries runner B's step added to the cache seeded
//! from A's export (what B downloaded; the goal is 0). `pip download` says
//! what it fetched (`Downloading X`) and what the mount had (`File was
//! already downloaded X`): the pip figures are the distributions each
//! runner's step downloaded (B's goal is 0). Plus the exported layers' size
//! and B's build time.
//!
//! `Dockerfile` itself (what `bench real` and the tests build) installs
//! with pip's `--no-cache-dir` and no cache mount, hence the variant.
//!
//! The base archive is the one `cargo xtask bench real` and the
//! real-Debian tests make (`target/real-debian/debian-bookworm.tar`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::path_str;
use super::registry::Registry;
use super::Figure;

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    crate::packages::ensure_packages()?;
    let rbk = super::release_binary(root)?;
    let archive = root.join("target/real-debian/debian-bookworm.tar");
    if !archive.is_file() {
        bail!(
            "{} is missing: `cargo xtask bench real` or the real_debian tests make it",
            archive.display()
        );
    }
    // The last run's stores are deleted after this run (mass deletes slow
    // file creation on this filesystem).
    let work = root.join("target/bench-cache-mounts");
    let old = root.join(format!(
        "target/bench-cache-mounts.old{}",
        std::process::id()
    ));
    if work.exists() {
        std::fs::rename(&work, &old)?;
    }
    std::fs::create_dir_all(&work)?;
    let figures = measure(root, &rbk, &work, &archive);
    let _ = std::fs::remove_dir_all(&old);
    figures
}

fn measure(root: &Path, rbk: &Path, work: &Path, archive: &Path) -> anyhow::Result<Vec<Figure>> {
    let registry = Registry::start(&work.join("registry"))?;
    let ctx = root.join("crates/cli/tests/testdata/real-debian/app");
    let dockerfile = ctx.join("Dockerfile.cache-mounts");
    let cache = format!("{}/bench/app-cache:1", registry.host);
    let package_args = super::real::package_args();
    // (seconds, the plain progress log)
    let run = |store: &Path, args: &[&str]| -> anyhow::Result<(f64, String)> {
        let start = Instant::now();
        let log = super::rbk_ok(rbk, store, args)?;
        Ok((start.elapsed().as_secs_f64(), log))
    };
    let build = |store: &Path, extra: &[&str]| -> anyhow::Result<(f64, String)> {
        run(store, &["load", "-i", path_str(archive)?])?;
        let mut args = vec!["build", "--progress=plain", "-f", path_str(&dockerfile)?];
        args.extend(package_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.push(path_str(&ctx)?);
        run(store, &args)
    };

    crate::say("bench cache-mounts: runner A (cold, exports the cache mounts)");
    let a = work.join("store-a");
    let to = format!("type=registry,ref={cache},mode=max,cache-mounts=true");
    let (_, log_a) = build(&a, &["--cache-to", &to])?;
    let entries_a = npm_entries(&a)?;
    let pip_a = pip_downloads(&log_a);
    let layer_mb = companion_size(&format!("{cache}-cache-mounts"))? as f64 / 1e6;

    crate::say("bench cache-mounts: runner B (seeded from A's export, npm install again)");
    let b = work.join("store-b");
    let from = format!("type=registry,ref={cache}");
    let (secs_b, log_b) = build(
        &b,
        &[
            "--cache-from",
            &from,
            "--no-cache-filter",
            "node",
            "--no-cache-filter",
            "python",
        ],
    )?;
    let entries_b = npm_entries(&b)?;
    let pip_b = pip_downloads(&log_b);
    if entries_a == 0 {
        bail!("runner A's npm cache is empty: the step did not use its cache mount");
    }
    if pip_a.downloaded == 0 {
        bail!("runner A's pip step downloaded nothing: did it run?\n{log_a}");
    }
    if pip_b.downloaded + pip_b.cached == 0 {
        bail!("runner B's pip step did not run (no Downloading/already downloaded line):\n{log_b}");
    }
    Ok(vec![
        Figure {
            name: "cache mounts: npm cache entries the first runner downloaded (empty cache)",
            unit: "entries",
            samples: vec![entries_a as f64],
            target: "(reference)",
        },
        Figure {
            name: "cache mounts: npm cache entries the second runner downloaded (seeded by --cache-from)",
            unit: "entries",
            samples: vec![entries_b.saturating_sub(entries_a) as f64],
            target: "0",
        },
        Figure {
            name: "cache mounts: pip distributions the first runner downloaded (empty cache)",
            unit: "files",
            samples: vec![pip_a.downloaded as f64],
            target: "(reference)",
        },
        Figure {
            name: "cache mounts: pip distributions the second runner downloaded (seeded by --cache-from)",
            unit: "files",
            samples: vec![pip_b.downloaded as f64],
            target: "0",
        },
        Figure {
            name: "cache mounts: the exported cache-mount layers (compressed)",
            unit: "MB",
            samples: vec![layer_mb],
            target: "(reference)",
        },
        Figure {
            name: "cache mounts: the second runner's build (layers from the cache, npm and pip install again)",
            unit: "s",
            samples: vec![secs_b],
            target: "(reference)",
        },
    ])
}

/// The files in the npm caches (`_cacache/content-v2`) of `store`'s cache
/// mounts.
fn npm_entries(store: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut stack = vec![store.join("cache-mounts")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.to_string_lossy().contains("/_cacache/content-v2/") {
                count += 1;
            }
        }
    }
    Ok(count)
}

/// What a pip step's log says it fetched and found in its cache.
struct PipLog {
    downloaded: usize,
    cached: usize,
}

/// Counts pip's `Downloading X` and `File was already downloaded X` (or
/// `Using cached X`) lines in a plain progress log (each line after the
/// `#N 1.23 ` prefix).
fn pip_downloads(log: &str) -> PipLog {
    let mut out = PipLog {
        downloaded: 0,
        cached: 0,
    };
    for line in log.lines() {
        let text = line.splitn(3, ' ').nth(2).unwrap_or_default().trim_start();
        let is_distribution = |rest: &str| {
            let file = rest.split(' ').next().unwrap_or_default();
            [".whl", ".tar.gz", ".zip"].iter().any(|e| file.contains(e))
        };
        if let Some(rest) = text.strip_prefix("Downloading ") {
            out.downloaded += usize::from(is_distribution(rest));
        } else if let Some(rest) = text
            .strip_prefix("File was already downloaded ")
            .or_else(|| text.strip_prefix("Using cached "))
        {
            out.cached += usize::from(is_distribution(rest));
        }
    }
    out
}

/// The total size of the layers of the manifest `reference` (skopeo).
fn companion_size(reference: &str) -> anyhow::Result<u64> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo inspect {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let m: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_u64())
        .sum())
}
