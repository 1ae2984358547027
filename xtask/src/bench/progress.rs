//! Progress benchmark (issue 17): a RUN step printing 1,000,000 lines built
//! with `--progress=plain`, and `rbk logs --build` reading them back: wall
//! time and peak RSS of each (`/usr/bin/time`), which must stay flat (under
//! 100 MiB) however much a step prints. Every line is checked to arrive,
//! in order, in both outputs.

use std::path::Path;

use anyhow::bail;

use super::Figure;

const LINES: usize = 1_000_000;
const RUNS: usize = 3;

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    let rbk = super::release_binary(root)?;
    let work = root.join("target/bench-progress");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("ctx"))?;
    let store = work.join("store");
    let tarball = crate::busybox_rootfs(&work)?;
    super::store::rbk(&rbk, &store, &["import", &tarball, "rbk-busybox:latest"])?;
    std::fs::write(
        work.join("ctx/Dockerfile"),
        format!(
            "FROM rbk-busybox\nRUN i=0; while [ $i -lt {LINES} ]; do echo \"line $i\"; i=$((i+1)); done\n"
        ),
    )?;
    let ctx = work.join("ctx");
    let ctx = ctx.to_str().unwrap_or_default();
    let (mut build_s, mut build_mib, mut logs_s, mut logs_mib) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let (secs, mib) = super::store::rbk(
            &rbk,
            &store,
            &["build", "--no-cache", "--progress=plain", ctx],
        )?;
        build_s.push(secs);
        build_mib.push(mib);
        let (secs, mib) = super::store::rbk(&rbk, &store, &["logs", "--build", "", "RUN i=0"])?;
        logs_s.push(secs);
        logs_mib.push(mib);
    }
    check_lines(&rbk, &store, ctx)?;
    Ok(vec![
        figure("progress: 1M-line RUN, plain build", "s", build_s, "-"),
        figure(
            "progress: 1M-line RUN, plain build peak RSS",
            "MiB",
            build_mib,
            "< 100 MiB",
        ),
        figure("progress: rbk logs --build of 1M lines", "s", logs_s, "-"),
        figure(
            "progress: rbk logs --build peak RSS",
            "MiB",
            logs_mib,
            "< 100 MiB",
        ),
    ])
}

fn figure(
    name: &'static str,
    unit: &'static str,
    samples: Vec<f64>,
    target: &'static str,
) -> Figure {
    Figure {
        name,
        unit,
        samples,
        target,
    }
}

/// Both outputs hold lines 0..LINES in order.
fn check_lines(rbk: &Path, store: &Path, ctx: &str) -> anyhow::Result<()> {
    let run = |args: &[&str]| {
        std::process::Command::new(rbk)
            .arg("--root")
            .arg(store)
            .args(args)
            .output()
    };
    let build = run(&["build", "--no-cache", "--progress=plain", ctx])?;
    let logs = run(&["logs", "--build", "", "RUN i=0"])?;
    for (what, text) in [("plain", build.stderr), ("rbk logs", logs.stdout)] {
        let text = String::from_utf8_lossy(&text);
        let mut next = 0;
        for line in text.lines() {
            if let Some((_, n)) = line.split_once(" line ") {
                if n != next.to_string() {
                    bail!("{what}: line {next} missing or out of order");
                }
                next += 1;
            }
        }
        if next != LINES {
            bail!("{what}: {next} lines of {LINES}");
        }
    }
    Ok(())
}
