//! `cargo xtask`: what needs more than cargo — the CI entry point, the demo,
//! the dependency-direction check and benchmarks.

mod bench;
mod deps;
mod frontend;
mod packages;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask <ci|demo|bench|deps>
  ci     format check, clippy, dependency check, the whole test suite
  demo   rbk's main job end to end on the example in examples/multistage
  bench  benchmarks; results in bench/runs/<date>-<host>/
  deps   check that crate dependencies follow design.md";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    match task.as_str() {
        "ci" => ci(&root),
        "demo" => demo(&root),
        "bench" => bench::run(&root),
        "deps" => deps::check(&root),
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
    let example = root.join("examples/multistage");
    let example = example.to_str().context("non-UTF-8 path")?;
    say("The plan for `--target runtime`: stages it does not need are pruned away.");
    run(
        root,
        rbk,
        &["debug", "plan", "--target", "runtime", example],
    )?;
    say("Executing the plan lands with the build issue; `rbk build` says so plainly today.");
    Ok(())
}
