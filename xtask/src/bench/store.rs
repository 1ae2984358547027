//! Store benchmarks: `rbk load`/`rbk save` of a 1 GiB, 20,000-file image
//! against `cat` of the same bytes, peak memory, and `rbk images` /
//! `rbk system df` on a store with 1,000 images.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::path_str;
use super::Figure;

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    crate::run(
        root,
        "cargo",
        &["build", "--release", "--quiet", "-p", "rbk-cli"],
    )?;
    let rbk = root.join("target/release/rbk");
    let work = root.join("target/bench-store");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut figures = load_save(&rbk, &work)?;
    figures.extend(many_images(&rbk, &work)?);
    Ok(figures)
}

/// Runs `rbk --root ROOT args…`; returns (seconds, peak RSS in MiB).
pub(super) fn rbk(rbk: &Path, root: &Path, args: &[&str]) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(rbk)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .context("running rbk under /usr/bin/time")?;
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("rbk {args:?} failed: {stderr}");
    }
    let kib: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Ok((secs, kib / 1024.0))
}

fn load_save(bin: &Path, work: &Path) -> anyhow::Result<Vec<Figure>> {
    // A 1 GiB rootfs in 20,000 files, imported, saved once to get an archive.
    let tree = work.join("tree");
    for i in 0..20_000u32 {
        let dir = tree.join(format!("d{}", i / 500));
        std::fs::create_dir_all(&dir)?;
        let mut data = vec![(i % 251) as u8; 53_687];
        data[..4].copy_from_slice(&i.to_le_bytes());
        std::fs::write(dir.join(format!("f{i}")), data)?;
    }
    let tarball = work.join("rootfs.tar");
    crate::run(
        work,
        "tar",
        &["-C", path_str(&tree)?, "-cf", path_str(&tarball)?, "."],
    )?;
    let a = work.join("a");
    rbk(bin, &a, &["import", path_str(&tarball)?, "big:1"])?;
    // Keep the disk footprint near 3 GiB: the tree and tarball are done.
    std::fs::remove_dir_all(&tree)?;
    std::fs::remove_file(&tarball)?;
    let archive = work.join("big.tar");
    let (mut load, mut save, mut cat, mut peak) = (Vec::new(), Vec::new(), Vec::new(), 0f64);
    let mut cat_file = Vec::new();
    for run in 0..3 {
        let (s, m) = rbk(bin, &a, &["save", "-o", path_str(&archive)?, "big:1"])?;
        save.push(s);
        peak = peak.max(m);
        let fresh = work.join(format!("b{run}"));
        let (s, m) = rbk(bin, &fresh, &["load", "-i", path_str(&archive)?])?;
        load.push(s);
        peak = peak.max(m);
        std::fs::remove_dir_all(&fresh)?;
        let start = Instant::now();
        let status = Command::new("sh")
            .args(["-c", &format!("cat {} > /dev/null", path_str(&archive)?)])
            .status()?;
        if !status.success() {
            bail!("cat failed");
        }
        cat.push(start.elapsed().as_secs_f64());
        // What load is held to: the same bytes written to a file on the
        // same disk and made durable, as load makes its blobs durable.
        let copy = work.join("copy.tar");
        let start = Instant::now();
        let status = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "cat {} > {} && sync {}",
                    path_str(&archive)?,
                    path_str(&copy)?,
                    path_str(&copy)?
                ),
            ])
            .status()?;
        if !status.success() {
            bail!("cat > file && sync failed");
        }
        cat_file.push(start.elapsed().as_secs_f64());
        std::fs::remove_file(&copy)?;
    }
    Ok(vec![
        Figure {
            name: "store: rbk save of a 1 GiB, 20,000-file image",
            unit: "s",
            samples: save,
            target: "within 2x of cat",
        },
        Figure {
            name: "store: rbk load of the same archive into an empty store",
            unit: "s",
            samples: load,
            target: "within 2x of cat > file + sync",
        },
        Figure {
            name: "store: cat of the archive into a file, then sync of it (reference for load)",
            unit: "s",
            samples: cat_file,
            target: "-",
        },
        Figure {
            name: "store: cat of the archive to /dev/null (reference)",
            unit: "s",
            samples: cat,
            target: "-",
        },
        Figure {
            name: "store: peak RSS of load/save",
            unit: "MiB",
            samples: vec![peak],
            target: "< 100 MiB",
        },
    ])
}

fn many_images(bin: &Path, work: &Path) -> anyhow::Result<Vec<Figure>> {
    let root = work.join("many");
    let dir = work.join("small");
    std::fs::create_dir_all(&dir)?;
    for i in 0..1000 {
        std::fs::write(dir.join("id"), format!("{i}\n"))?;
        let tarball = work.join("small.tar");
        crate::run_quiet(
            work,
            "tar",
            &["-C", path_str(&dir)?, "-cf", path_str(&tarball)?, "."],
        )?;
        rbk(
            bin,
            &root,
            &["import", path_str(&tarball)?, &format!("img{i}:latest")],
        )?;
    }
    let mut images = Vec::new();
    let mut df = Vec::new();
    for _ in 0..5 {
        images.push(rbk(bin, &root, &["images"])?.0);
        df.push(rbk(bin, &root, &["system", "df"])?.0);
    }
    Ok(vec![
        Figure {
            name: "store: rbk images with 1,000 images",
            unit: "s",
            samples: images,
            target: "< 0.050 s",
        },
        Figure {
            name: "store: rbk system df with 1,000 images",
            unit: "s",
            samples: df,
            target: "< 0.050 s",
        },
    ])
}
