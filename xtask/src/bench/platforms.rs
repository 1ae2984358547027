//! `cargo xtask bench platforms`: a two-platform build against the two
//! single-platform builds it replaces. The Dockerfile is the
//! cross-compilation pattern, where a `FROM --platform=$BUILDPLATFORM`
//! stage does the expensive shared work (a CPU-bound "compile") and each
//! target only adds a small step and a copy: built together, the shared
//! stage runs once; built apart, once per platform. The base is a busybox
//! index for linux/amd64 and linux/arm64 (Debian's busybox-static for each),
//! made by rbk itself; nothing here needs emulation.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::path_str;
use super::Figure;

const RUNS: usize = 5;

const DOCKERFILE: &str = "\
FROM --platform=$BUILDPLATFORM rbk-busybox:multi AS build
RUN dd if=/dev/zero bs=1M count=1500 2>/dev/null | sha256sum > /shared
ARG TARGETARCH
RUN echo \"$TARGETARCH $(cat /shared)\" > /app
FROM rbk-busybox:multi
COPY --from=build /app /app
";

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    crate::run(
        root,
        "cargo",
        &["build", "--release", "--quiet", "-p", "rbk-cli"],
    )?;
    let work = root.join("target/bench-platforms");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let rbk = root.join("target/release/rbk");
    let store = work.join("store");
    let run = |args: &[&str]| -> anyhow::Result<f64> {
        let start = Instant::now();
        let out = Command::new(&rbk)
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()
            .context("running rbk")?;
        if !out.status.success() {
            bail!(
                "rbk {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let base = base_context(root, &work)?;
    run(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "rbk-busybox:multi",
        path_str(&base)?,
    ])?;
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx)?;
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
    let ctx = path_str(&ctx)?;
    let build = |platforms: &str| {
        run(&[
            "build",
            "--progress=quiet",
            "--no-cache",
            "--platform",
            platforms,
            ctx,
        ])
    };
    build("linux/amd64,linux/arm64")?; // warm-up
    let (mut pair, mut sum, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let both = build("linux/amd64,linux/arm64")?;
        let apart = build("linux/amd64")? + build("linux/arm64")?;
        pair.push(both);
        sum.push(apart);
        ratio.push(both / apart);
    }
    Ok(vec![
        Figure {
            name: "platforms: amd64+arm64 in one build, shared $BUILDPLATFORM stage (--no-cache)",
            unit: "s",
            samples: pair,
            target: "<= 0.6x the two single builds",
        },
        Figure {
            name: "platforms: amd64 build + arm64 build, one after the other (--no-cache)",
            unit: "s",
            samples: sum,
            target: "(reference)",
        },
        Figure {
            name: "platforms: one two-platform build / sum of two single builds",
            unit: "x",
            samples: ratio,
            target: "<= 0.6",
        },
    ])
}

/// A context holding a busybox rootfs tarball per architecture and the
/// Dockerfile that makes the index of them.
fn base_context(root: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let ctx = work.join("base");
    std::fs::create_dir_all(&ctx)?;
    let amd = crate::busybox_rootfs(&work.join("amd64"))?;
    std::fs::copy(&amd, ctx.join("rootfs-amd64.tar"))?;
    // The same tree around the arm64 binary.
    let arm_work = work.join("arm64");
    crate::busybox_rootfs(&arm_work)?;
    let tree = arm_work.join("busybox-rootfs");
    std::fs::copy(arm64_busybox(root)?, tree.join("bin/busybox"))?;
    let tarball = ctx.join("rootfs-arm64.tar");
    crate::run(
        work,
        "tar",
        &[
            "--numeric-owner",
            "-C",
            path_str(&tree)?,
            "-cf",
            path_str(&tarball)?,
            ".",
        ],
    )?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar /\n",
    )?;
    Ok(ctx)
}

/// Debian's arm64 busybox-static binary (downloaded with apt once, kept
/// under the target dir, where the test suite keeps its copy too).
fn arm64_busybox(root: &Path) -> anyhow::Result<PathBuf> {
    let cached = root.join("target/tmp/busybox-arm64");
    if cached.is_file() {
        return Ok(cached);
    }
    let dl = root.join("target/bench-platforms-deb");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl)?;
    let archs = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()?;
    if !String::from_utf8_lossy(&archs.stdout).contains("arm64") {
        crate::run(&dl, "dpkg", &["--add-architecture", "arm64"])?;
        crate::run(&dl, "apt-get", &["update", "-qq"])?;
    }
    if crate::run(&dl, "apt-get", &["download", "-qq", "busybox-static:arm64"]).is_err() {
        crate::run(&dl, "apt-get", &["update", "-qq"])?;
        crate::run(&dl, "apt-get", &["download", "-qq", "busybox-static:arm64"])?;
    }
    let deb = std::fs::read_dir(&dl)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    crate::run(&dl, "dpkg-deb", &["-x", path_str(&deb)?, "x"])?;
    std::fs::create_dir_all(cached.parent().context("no parent")?)?;
    std::fs::copy(dl.join("x/bin/busybox"), &cached)?;
    Ok(cached)
}
