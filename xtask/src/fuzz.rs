//! `cargo xtask fuzz [SECONDS] [TARGET…]`: runs the cargo-fuzz targets in
//! `fuzz/` (nightly and cargo-fuzz needed), each for SECONDS (default 8, so
//! the seven targets take about a minute: the CI smoke run). One hour per
//! target is the by-hand run: `cargo xtask fuzz 3600`.
//!
//! Each target starts from its committed seeds (`fuzz/seeds/<target>/`,
//! small) and keeps what it finds in `fuzz/corpus/<target>/` (not
//! committed). A crash fails the task; libFuzzer leaves the input in
//! `fuzz/artifacts/<target>/`.

use std::path::Path;

use anyhow::Context;

/// Every target in `fuzz/Cargo.toml`.
pub(crate) const TARGETS: &[&str] = &[
    "dockerfile",
    "expand",
    "dockerignore",
    "unpack",
    "documents",
    "archive",
    "registry",
];

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let seconds: u64 = match args.first() {
        Some(s) => s.parse().context("SECONDS must be a whole number")?,
        None => 8,
    };
    let chosen: Vec<&str> = match args.get(1..).filter(|a| !a.is_empty()) {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => TARGETS.to_vec(),
    };
    let fuzz = root.join("fuzz");
    if crate::run_quiet(&fuzz, "cargo", &["fuzz", "--version"]).is_err() {
        crate::run(root, "cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    crate::run(&fuzz, "cargo", &["+nightly", "fuzz", "build", "-O"])?;
    for target in chosen {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz.join("seeds").join(target);
        let time = format!("-max_total_time={seconds}");
        let mut args = vec!["+nightly", "fuzz", "run", "-O", target];
        let corpus = corpus.to_str().context("non-UTF-8 path")?;
        args.push(corpus);
        let seeds = seeds.to_str().context("non-UTF-8 path")?.to_string();
        if Path::new(&seeds).is_dir() {
            args.push(&seeds);
        }
        // -rss_limit_mb: the extractor and loader may use what a real
        // load does; -max_len keeps archives small enough to run fast.
        args.extend(["--", &time, "-rss_limit_mb=4096", "-max_len=262144"]);
        crate::run(&fuzz, "cargo", &args)?;
    }
    crate::say("fuzz: no crash");
    Ok(())
}
