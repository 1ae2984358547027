//! `cargo xtask bench scale` (issue 19): a monorepo context and a big store.
//!
//! **Monorepo.** A generated context of `RBK_BENCH_SCALE_FILES` files
//! (default 300,000) holding `RBK_BENCH_SCALE_BYTES` bytes (default 3 GiB)
//! in a deep tree, a third of them in `node_modules/` and `build/` subtrees
//! that a 200-pattern `.dockerignore` (with `!` exceptions) excludes, and
//! Dockerfiles that `COPY` the whole tree and a few subtrees. Measured: the
//! cold build against `cp -a` of the selected files (the build's own
//! output, exported), the warm no-op rebuild, a one-file edit and peak RSS.
//!
//! **Big store.** `RBK_BENCH_STORE_IMAGES` images (default 10,000, half
//! untagged), `RBK_BENCH_STORE_RECORDS` cache records (default 200,000) and
//! `RBK_BENCH_STORE_SNAPSHOTS` snapshots (default 50,000) carrying
//! `RBK_BENCH_STORE_LOGICAL` logical bytes in sparse files (default
//! 500 GiB), made by `Store::make_synthetic`. Measured: `images`,
//! `system df`, `inspect`, a cached build (start-up and first cache lookup
//! included), `system verify --quick`, and `prune` of half of it.
//!
//! **Prune only** (`cargo xtask bench scale prune`). The big store is made
//! once and kept pristine; each run copies it (`cp -a`, sparse files kept
//! sparse) and times `rbk prune -f` on the copy, wall and CPU. With
//! `RBK_BENCH_BASE_BIN` set to another rbk binary, the two alternate on
//! fresh copies (A B A B ...), so both see the same machine.
//! `RBK_BENCH_STORE_PRISTINE=<dir>` keeps the pristine store in `<dir>`
//! (outside `target/bench-scale/`) and reuses it on later invocations.
//!
//! Everything lives under `target/bench-scale/` and is deleted afterwards,
//! unless `RBK_BENCH_SCALE_KEEP=1` (to profile commands on the big store
//! or the monorepo after the run; delete it by hand then;
//! `RBK_BENCH_STORE_SKIP_PRUNE=1` leaves out the prune, keeping the store
//! whole). The cached build's start-up is timed from spawning it to the
//! first cache hit its `--progress=rawjson` reports.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use rbk_store::{Store, SyntheticSpec};

use super::registry::figure;
use super::store::rbk;
use super::Figure;
use super::{leak, path_str};

const RUNS: usize = 3;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    let rbk = super::release_binary(root)?;
    let work = root.join("target/bench-scale");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    // `cargo xtask bench scale mono|store|prune` runs one part.
    let part = std::env::args().nth(3).unwrap_or_default();
    let keep = std::env::var_os("RBK_BENCH_SCALE_KEEP").is_some();
    let result = (|| {
        let mut figures = Vec::new();
        if part == "prune" {
            return prune_only(&rbk, &work);
        }
        if part != "store" {
            figures.extend(monorepo(&rbk, &work)?);
            if !keep {
                let _ = std::fs::remove_dir_all(work.join("mono"));
            }
        }
        if part != "mono" {
            figures.extend(big_store(&rbk, &work.join("store"))?);
        }
        Ok(figures)
    })();
    if !keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

/// Writes the monorepo under `ctx`: `services/svcA/pkgB/dirC/fI.txt`, with
/// every third leaf directory under a `node_modules/` or `build/` instead.
fn generate_monorepo(ctx: &Path, files: u64, bytes: u64) -> anyhow::Result<()> {
    let per_file = (bytes / files.max(1)) as usize;
    let mut data = vec![b'x'; per_file.max(16)];
    for i in 0..files {
        let leaf = i / 100;
        let (svc, pkg, dir) = (leaf % 40, (leaf / 40) % 25, leaf / 1000);
        let mut rel = format!("services/svc{svc}/pkg{pkg}");
        match leaf % 3 {
            1 => write!(rel, "/node_modules/dep{dir}")?,
            2 => write!(rel, "/build/out{dir}")?,
            _ => write!(rel, "/src/dir{dir}")?,
        }
        let d = ctx.join(&rel);
        if i % 100 == 0 {
            std::fs::create_dir_all(&d)?;
        }
        let stamp = format!("{i:>12}\n");
        data[..stamp.len()].copy_from_slice(stamp.as_bytes());
        std::fs::write(d.join(format!("f{i}.txt")), &data)?;
    }
    // 200 patterns: the big excluded subtrees, some file kinds, per-package
    // rules, and `!` exceptions that re-include a few files.
    let mut ignore = String::from("**/node_modules\n**/build\n**/*.log\n*.tmp\n.git\n");
    for k in 0..190 {
        match k % 4 {
            0 => writeln!(ignore, "services/svc{}/pkg{}/*.bak", k % 40, k % 25)?,
            1 => writeln!(ignore, "services/svc{}/**/generated-{k}", k % 40)?,
            2 => writeln!(ignore, "**/cache-{k}/**")?,
            _ => writeln!(ignore, "services/*/pkg{}/tmp-{k}", k % 25)?,
        }
    }
    for k in 0..5 {
        writeln!(ignore, "!services/svc{k}/pkg0/build/out0/f{}.txt", 200 + k)?;
    }
    std::fs::write(ctx.join(".dockerignore"), ignore)?;
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /repo\n")?;
    std::fs::write(
        ctx.join("Dockerfile.subtrees"),
        "FROM scratch\nCOPY services/svc1 /svc1\nCOPY services/svc2/pkg3 /svc2-pkg3\nCOPY services/svc6/pkg0/src /svc6\n",
    )?;
    Ok(())
}

fn monorepo(bin: &Path, work: &Path) -> anyhow::Result<Vec<Figure>> {
    let files = env_or("RBK_BENCH_SCALE_FILES", 300_000);
    let bytes = env_or("RBK_BENCH_SCALE_BYTES", 3 << 30);
    let mono = work.join("mono");
    let ctx = mono.join("ctx");
    let generated = Instant::now();
    generate_monorepo(&ctx, files, bytes)?;
    crate::say(&format!(
        "generated {files} files, {bytes} bytes in {:.1} s",
        generated.elapsed().as_secs_f64()
    ));
    let ctx_s = path_str(&ctx)?;
    let (mut cold, mut cp, mut warm, mut edit, mut rss) = (vec![], vec![], vec![], vec![], 0f64);
    let (mut sub_cold, mut sub_warm) = (vec![], vec![]);
    for run in 0..RUNS {
        let store = mono.join(format!("store{run}"));
        let (s, m) = rbk(
            bin,
            &store,
            &["build", "--progress=quiet", "-t", "m:1", ctx_s],
        )?;
        cold.push(s);
        rss = rss.max(m);
        let (s, m) = rbk(
            bin,
            &store,
            &["build", "--progress=quiet", "-t", "m:1", ctx_s],
        )?;
        warm.push(s);
        rss = rss.max(m);
        let edited = ctx.join("services/svc3/pkg0/src/dir0/f0.txt");
        std::fs::write(&edited, format!("edited {run}\n"))?;
        let (s, m) = rbk(
            bin,
            &store,
            &["build", "--progress=quiet", "-t", "m:1", ctx_s],
        )?;
        edit.push(s);
        rss = rss.max(m);
        let sub = ["build", "--progress=quiet", "-f"];
        let dockerfile = ctx.join("Dockerfile.subtrees");
        let mut args = sub.to_vec();
        args.extend([path_str(&dockerfile)?, "-t", "s:1", ctx_s]);
        let (s, _) = rbk(bin, &store, &args)?;
        sub_cold.push(s);
        let (s, _) = rbk(bin, &store, &args)?;
        sub_warm.push(s);
    }
    // Nothing is deleted until every build is timed. On this machine's
    // ext4 without a journal, allocating an inode skips, one buffer-cache
    // lookup each, the free inodes of its group deleted recently (ext4's
    // recently_deleted(): 30 s, minutes while the inode table block is
    // dirty): a store deleted before a build put that scan into the
    // build's mkdirs (29% of a one-file edit's CPU after one 10,000-file
    // delete; bench/runs/2026-12-07-vm-s11/notes-mono-edit.md). So the
    // stores of all runs are kept till the end, and the reference copies
    // come after the builds.
    let last = mono.join(format!("store{}", RUNS - 1));
    // The selected files, as the build exported them, copied by cp -a.
    let out = mono.join("selected");
    let spec = format!("type=local,dest={}", path_str(&out)?);
    rbk(
        bin,
        &last,
        &["build", "--progress=quiet", "--output", &spec, ctx_s],
    )?;
    // Each copy has its own destination, deleted with the rest at the end:
    // deleting one before the next `cp -a` made the later copies 5 to 8
    // times slower (12.6 s, then 62.9 s and 96.9 s; bench/runs/2026-12-08-vm),
    // a reference that flattered the build.
    let copies: Vec<_> = (0..RUNS)
        .map(|run| mono.join(format!("cp-copy{run}")))
        .collect();
    for copy in &copies {
        let start = Instant::now();
        crate::run(&mono, "cp", &["-a", path_str(&out)?, path_str(copy)?])?;
        cp.push(start.elapsed().as_secs_f64());
    }
    for copy in &copies {
        std::fs::remove_dir_all(copy)?;
    }
    std::fs::remove_dir_all(&out)?;
    for run in 0..RUNS {
        if run + 1 < RUNS || std::env::var_os("RBK_BENCH_SCALE_KEEP").is_none() {
            std::fs::remove_dir_all(mono.join(format!("store{run}")))?;
        }
    }
    let cp_median = median(&cp);
    let name = |s: &str| -> &'static str {
        Box::leak(
            format!("scale: monorepo ({files} files, {} MiB) {s}", bytes >> 20).into_boxed_str(),
        )
    };
    Ok(vec![
        figure(
            name("cold build, COPY . (empty store)"),
            "s",
            cold,
            leak(format!("<= {:.2} s (cp -a + 20%)", cp_median * 1.2)),
        ),
        figure(name("cp -a of the selected files"), "s", cp, "(reference)"),
        figure(name("warm no-op rebuild"), "s", warm, "<= 0.3 s"),
        figure(name("one-file edit rebuild"), "s", edit, "<= 0.5 s"),
        figure(
            name("COPY of three subtrees, first build"),
            "s",
            sub_cold,
            "-",
        ),
        figure(
            name("COPY of three subtrees, no-op rebuild"),
            "s",
            sub_warm,
            "<= 0.3 s",
        ),
        figure(
            name("peak RSS of any build"),
            "MiB",
            vec![rss],
            "<= 200 MiB",
        ),
    ])
}

fn big_store(bin: &Path, root: &Path) -> anyhow::Result<Vec<Figure>> {
    let (spec, _) = store_spec();
    let (images, records) = (spec.tagged + spec.untagged, spec.cache_records);
    let made_at = Instant::now();
    let made = Store::open(root)?.make_synthetic(&spec)?;
    crate::say(&format!(
        "made a store of {images} images, {records} records, {} snapshots in {:.1} s",
        made.snapshot_count(),
        made_at.elapsed().as_secs_f64()
    ));
    let label = |s: &str| -> &'static str {
        Box::leak(
            format!(
                "scale: store of {images} images, {records} records, {} snapshots: {s}",
                made.snapshot_count()
            )
            .into_boxed_str(),
        )
    };
    let reference = made.tagged[made.tagged.len() / 2].0.familiar();
    let time = |args: &[&str]| -> anyhow::Result<Vec<f64>> {
        rbk(bin, root, args)?; // warm-up
        (0..RUNS).map(|_| Ok(rbk(bin, root, args)?.0)).collect()
    };
    let ctx = root.with_extension("ctx");
    std::fs::create_dir_all(&ctx)?;
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {reference}\nCOPY a.txt /a.txt\n"),
    )?;
    std::fs::write(ctx.join("a.txt"), "a\n")?;
    let build = ["build", "--progress=quiet", "-t", "top:1", path_str(&ctx)?];
    rbk(bin, root, &build)?; // the first build fills the cache
    let startup = (0..RUNS)
        .map(|_| startup_secs(bin, root, &ctx))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let mut figures = vec![
        figure(label("rbk images"), "s", time(&["images"])?, "<= 0.05 s"),
        figure(
            label("rbk system df"),
            "s",
            time(&["system", "df"])?,
            "<= 0.05 s",
        ),
        figure(
            label("rbk inspect"),
            "s",
            time(&["inspect", &reference])?,
            "<= 0.05 s",
        ),
        figure(
            label("cached build (open, plan, lookups, commit)"),
            "s",
            time(&build)?,
            "-",
        ),
        figure(
            label("cached build's start-up (spawn to first cache hit)"),
            "s",
            startup,
            "<= 0.03 s",
        ),
        figure(
            label("rbk system verify --quick"),
            "s",
            time(&["system", "verify", "--quick"])?,
            "<= 2 s",
        ),
    ];
    if std::env::var_os("RBK_BENCH_STORE_SKIP_PRUNE").is_some() {
        return Ok(figures); // the kept store stays whole, to time commands on
    }
    let (secs, _) = rbk(bin, root, &["prune", "-f"])?;
    figures.push(figure(
        label("prune of half (untagged, dangling)"),
        "s",
        vec![secs],
        "<= 5 s",
    ));
    Ok(figures)
}

/// A cached build's start-up: from spawning `rbk build` (open the store,
/// plan, resolve the base image) to the end of its first cache lookup, the
/// `completed` time of the first cached vertex in `--progress=rawjson`.
fn startup_secs(bin: &Path, root: &Path, ctx: &Path) -> anyhow::Result<f64> {
    let spawned = std::time::SystemTime::now();
    let out = std::process::Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["build", "--progress=rawjson", "-t", "top:1"])
        .arg(ctx)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(out.status.success(), "cached build failed: {stderr}");
    let first_hit = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|status| status["vertexes"].as_array().cloned().unwrap_or_default())
        .filter(|v| v["cached"] == true)
        .filter_map(|v| epoch_secs(v["completed"].as_str()?))
        .min_by(f64::total_cmp)
        .ok_or_else(|| anyhow::anyhow!("no cached step in the build's output: {stderr}"))?;
    let spawned = spawned.duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    Ok(first_hit - spawned)
}

/// Seconds since the epoch of an RFC 3339 time as rbk writes it.
fn epoch_secs(text: &str) -> Option<f64> {
    let whole = rbk_store::image::parse_rfc3339(text)? as f64;
    let fraction = match text.split_once('.') {
        Some((_, f)) => format!("0.{}", f.trim_end_matches(['Z', 'z']))
            .parse()
            .ok()?,
        None => 0.0,
    };
    Some(whole + fraction)
}

/// The store `big_store` measures, from the same variables.
fn store_spec() -> (SyntheticSpec, String) {
    let images = env_or("RBK_BENCH_STORE_IMAGES", 10_000) as usize;
    let records = env_or("RBK_BENCH_STORE_RECORDS", 200_000) as usize;
    let snapshots = env_or("RBK_BENCH_STORE_SNAPSHOTS", 50_000) as usize;
    let logical = env_or("RBK_BENCH_STORE_LOGICAL", 500 << 30);
    let spec = SyntheticSpec {
        tagged: images / 2,
        untagged: images - images / 2,
        cache_records: records,
        cache_only_layers: snapshots.saturating_sub(images + 1).max(1),
        sparse_bytes: logical / snapshots.max(1) as u64,
    };
    let what = format!("{images} images, {records} records");
    (spec, what)
}

/// `rbk prune -f` on fresh copies of one pristine big store, for this
/// build and (interleaved) for `RBK_BENCH_BASE_BIN` if set.
fn prune_only(bin: &Path, work: &Path) -> anyhow::Result<Vec<Figure>> {
    let (spec, what) = store_spec();
    // `RBK_BENCH_STORE_PRISTINE=<dir>` keeps the pristine store there
    // between invocations: made when `<dir>` does not exist, reused (never
    // written) when it does; it saves minutes per comparison.
    let (pristine, what): (std::path::PathBuf, _) =
        match std::env::var_os("RBK_BENCH_STORE_PRISTINE") {
            Some(dir) if Path::new(&dir).exists() => (dir.into(), what),
            kept => {
                let pristine = kept.map_or_else(|| work.join("pristine"), Into::into);
                let made = Store::open(&pristine)?.make_synthetic(&spec)?;
                let what = format!("{what}, {} snapshots", made.snapshot_count());
                (pristine, what)
            }
        };
    let mut bins = vec![("this build", bin.to_path_buf())];
    if let Some(base) = std::env::var_os("RBK_BENCH_BASE_BIN") {
        bins.push(("base", base.into()));
    }
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); bins.len()];
    for run in 0..RUNS {
        for (i, (name, bin)) in bins.iter().enumerate() {
            let copy = work.join("copy");
            let _ = std::fs::remove_dir_all(&copy);
            crate::run(
                work,
                "cp",
                &[
                    "-a",
                    "--sparse=always",
                    path_str(&pristine)?,
                    path_str(&copy)?,
                ],
            )?;
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let out = std::process::Command::new("/usr/bin/time")
                .args(["-f", "%e %U %S"])
                .arg(bin)
                .arg("--root")
                .arg(&copy)
                .args(["prune", "-f"])
                .output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            anyhow::ensure!(out.status.success(), "prune failed: {stderr}");
            let times: Vec<f64> = stderr
                .lines()
                .last()
                .unwrap_or_default()
                .split(' ')
                .filter_map(|t| t.parse().ok())
                .collect();
            anyhow::ensure!(times.len() == 3, "no times from /usr/bin/time: {stderr}");
            crate::say(&format!(
                "run {run} {name}: prune {:.2} s wall, {:.2} s CPU (user {:.2}, sys {:.2}); load {}",
                times[0],
                times[1] + times[2],
                times[1],
                times[2],
                load.split(' ').take(3).collect::<Vec<_>>().join(" ")
            ));
            samples[i].0.push(times[0]);
            samples[i].1.push(times[1] + times[2]);
            // The detached emptier stops when the store is gone.
            std::fs::remove_dir_all(&copy)?;
        }
    }
    let mut figures = Vec::new();
    for ((name, _), (wall, cpu)) in bins.iter().zip(samples) {
        figures.push(figure(
            leak(format!(
                "scale: prune of half a store of {what} ({name}), wall"
            )),
            "s",
            wall,
            "<= 5 s",
        ));
        figures.push(figure(
            leak(format!(
                "scale: prune of half a store of {what} ({name}), CPU"
            )),
            "s",
            cpu,
            "-",
        ));
    }
    Ok(figures)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}
