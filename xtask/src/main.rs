//! `cargo xtask`: what needs more than cargo — the CI entry point, the demo,
//! the dependency-direction check and benchmarks.

mod bench;
mod deps;
mod frontend;
mod fuzz;
mod packages;
mod soak;
#[path = "../../crates/cli/tests/support/users.rs"]
mod users;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask <ci|demo|bench|deps|fuzz>
  ci     format check, clippy, dependency check, the whole test suite, a fuzz smoke run
  fuzz   [SECONDS] [TARGET…]: the cargo-fuzz targets in fuzz/, SECONDS each (default 8)
  soak   [KILLS] [ROUNDS]: SIGKILL loop and concurrent-build churn, with counts
  demo   rbk's main job end to end on the example in examples/multistage
  bench  benchmarks; results in bench/runs/<date>-<host>/
  deps   check that crate dependencies follow crates/README.md";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    match task.as_str() {
        "ci" => ci(&root),
        "demo" => demo(&root),
        "bench" => bench::run(&root),
        "deps" => deps::check(&root),
        "soak" => soak::run(&root, &std::env::args().skip(2).collect::<Vec<_>>()),
        "fuzz" => fuzz::run(&root, &std::env::args().skip(2).collect::<Vec<_>>()),
        _ => bail!("{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `program args…` in `dir`, failing when it fails.
pub(crate) fn run(dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    say(&format!("$ {program} {}", args.join(" ")));
    run_quiet(dir, program, args)
}

/// Like [`run`], without echoing the command (for loops of many calls).
pub(crate) fn run_quiet(dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

#[allow(clippy::print_stderr)] // xtask talks to the developer
pub(crate) fn say(line: &str) {
    eprintln!("{line}");
}

fn ci(root: &Path) -> anyhow::Result<()> {
    packages::ensure_packages()?;
    run(root, "cargo", &["fmt", "--all", "--check"])?;
    deps::check(root)?;
    run(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run(root, "cargo", &["test", "--workspace", "--no-fail-fast"])?;
    // The fuzz smoke run: each target 8 s (under a minute; the first
    // nightly build of the targets takes longer).
    fuzz::run(root, &[])?;
    say("ci: all checks passed");
    Ok(())
}

fn demo(root: &Path) -> anyhow::Result<()> {
    run(
        root,
        "cargo",
        &["build", "--release", "--quiet", "-p", "rbk-cli"],
    )?;
    let rbk = root.join("target/release/rbk");
    let rbk = rbk.to_str().context("non-UTF-8 path")?;
    let work = root.join("target/demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let store = work.join("store");
    let store = store.to_str().context("non-UTF-8 path")?;
    say("A base image made here from Debian's busybox-static (no registry needed):");
    let tarball = busybox_rootfs(&work)?;
    run(
        root,
        rbk,
        &["--root", store, "import", &tarball, "rbk-busybox:latest"],
    )?;
    say("Build the multi-stage example for --target runtime (the `test` stage is never run):");
    let out = work.join("runtime-fs");
    let output = format!("type=local,dest={}", out.display());
    let example = root.join("examples/multistage");
    let example = example.to_str().context("non-UTF-8 path")?;
    let build = [
        "--root",
        store,
        "build",
        "--progress=plain",
        "--target",
        "runtime",
        "-t",
        "rbk-example:runtime",
        "--output",
        &output,
        example,
    ];
    run(root, rbk, &build)?;
    run(root, rbk, &["--root", store, "images"])?;
    say("Run the result in a container: the image's CMD, `hello`:");
    run(
        root,
        rbk,
        &["--root", store, "run", "--rm", "rbk-example:runtime"],
    )?;
    say("Build again: every step comes from the cache.");
    run(root, rbk, &build)?;
    Ok(())
}

/// Writes a rootfs tarball of busybox-static with its applet links and a
/// minimal /etc, and returns its path.
pub(crate) fn busybox_rootfs(work: &Path) -> anyhow::Result<String> {
    packages::ensure_packages()?;
    let dir = work.join("busybox-rootfs");
    for sub in ["bin", "etc", "root", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy("/usr/bin/busybox", dir.join("bin/busybox"))?;
    let list = Command::new("/usr/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8(list.stdout)?.lines() {
        if !applet.is_empty() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\n")?;
    let tarball = work.join("busybox-rootfs.tar");
    let tarball = tarball.to_str().context("non-UTF-8 path")?.to_string();
    let dir = dir.to_str().context("non-UTF-8 path")?;
    run(
        work,
        "tar",
        &["--numeric-owner", "-C", dir, "-cf", &tarball, "."],
    )?;
    Ok(tarball)
}
