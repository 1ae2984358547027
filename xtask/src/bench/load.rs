//! `cargo xtask bench load`: `rbk load` of a 1 GiB docker-archive of ten
//! layers against `cat archive > file` with and without an fsync of the
//! file (issue 19: load within 2x of cat, durability kept), interleaved
//! round by round so the machine's load and the disk's state weigh on
//! each alike. Each layer holds a realistic mix of sizes: one 40 MiB file,
//! twenty of 1 MiB, 400 of 64 KiB and 2,000 of 8 KiB (24,210 files in all),
//! of incompressible bytes. The archive is `rbk save`'s (uncompressed
//! layers, as `docker save` writes them). Wall and CPU (user + system)
//! seconds are reported; `RBK_BENCH_BASE=<binary>` adds a second `rbk` to
//! each round, for before/after figures.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::{path_str, Figure};

/// Rounds of the interleaved comparison.
const ROUNDS: usize = 3;

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    let rbk = super::release_binary(root)?;
    let base = std::env::var_os("RBK_BENCH_BASE").map(PathBuf::from);
    let work = root.join("target/bench-load");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let archive = make_archive(&rbk, &work)?;
    let copy = work.join("copy.tar");
    let cat = format!("cat {} > {}", path_str(&archive)?, path_str(&copy)?);
    let cat_sync = format!("{cat} && sync {}", path_str(&copy)?);
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = vec![
        ("cat archive > file".into(), Vec::new()),
        ("cat archive > file && sync file".into(), Vec::new()),
        ("rbk load".into(), Vec::new()),
    ];
    if base.is_some() {
        rows.push(("rbk load (RBK_BENCH_BASE)".into(), Vec::new()));
    }
    for _ in 0..ROUNDS {
        for (i, (_, samples)) in rows.iter_mut().enumerate() {
            let sample = match i {
                0 => timed(Command::new("sh").args(["-c", &cat]))?,
                1 => timed(Command::new("sh").args(["-c", &cat_sync]))?,
                _ => {
                    let bin = if i == 2 {
                        &rbk
                    } else {
                        base.as_ref().unwrap_or(&rbk)
                    };
                    let store = work.join("store");
                    let sample = timed(Command::new(bin).arg("--root").arg(&store).args([
                        "load",
                        "-q",
                        "-i",
                        path_str(&archive)?,
                    ]))?;
                    std::fs::remove_dir_all(&store)?;
                    sample
                }
            };
            let _ = std::fs::remove_file(&copy);
            samples.push(sample);
        }
    }
    let mut figures = Vec::new();
    for (name, samples) in rows {
        figures.push(Figure {
            name: super::leak(format!("load: {name}, 1 GiB, 10 layers, wall")),
            unit: "s",
            samples: samples.iter().map(|s| s.0).collect(),
            target: if name == "rbk load" {
                "<= 2x cat > file && sync"
            } else {
                "-"
            },
        });
        figures.push(Figure {
            name: super::leak(format!("load: {name}, CPU (user + system)")),
            unit: "s",
            samples: samples.iter().map(|s| s.1).collect(),
            target: "-",
        });
    }
    std::fs::remove_dir_all(&work)?;
    Ok(figures)
}

/// Runs `cmd` under `/usr/bin/time`: (wall, user + system) seconds.
fn timed(cmd: &mut Command) -> anyhow::Result<(f64, f64)> {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S"])
        .arg(program)
        .args(args)
        .output()
        .context("running /usr/bin/time")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{cmd:?} failed: {stderr}");
    }
    let last = stderr.lines().last().unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    match f[..] {
        [wall, user, sys] => Ok((wall, user + sys)),
        _ => bail!("unexpected /usr/bin/time output: {stderr}"),
    }
}

/// Generates the ten layers' files, builds them into an image (`FROM
/// scratch`, one `COPY` per layer) and saves it; returns the archive.
fn make_archive(rbk: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let ctx = work.join("ctx");
    let mut sizes = vec![40 << 20];
    sizes.extend([1 << 20; 20]);
    sizes.extend([64 << 10; 400]);
    sizes.extend([8 << 10; 2000]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut dockerfile = String::from("FROM scratch\n");
    for layer in 0..10 {
        for (i, size) in sizes.iter().enumerate() {
            let dir = ctx.join(format!("l{layer}/d{}", i % 50));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("f{i}")), noise(&mut state, *size))?;
        }
        dockerfile.push_str(&format!("COPY l{layer} /l{layer}\n"));
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile)?;
    let gen = work.join("gen-store");
    super::rbk_ok(rbk, &gen, &["build", "-t", "big:1", path_str(&ctx)?])?;
    let archive = work.join("big.tar");
    super::rbk_ok(rbk, &gen, &["save", "-o", path_str(&archive)?, "big:1"])?;
    std::fs::remove_dir_all(&ctx)?;
    std::fs::remove_dir_all(&gen)?;
    Ok(archive)
}

/// `len` incompressible bytes (xorshift64).
fn noise(state: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
