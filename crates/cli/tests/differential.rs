//! The differential suite: each Dockerfile under
//! `testdata/differential/<case>/` is built by Docker's BuildKit (a private
//! dockerd, `support/docker.rs`) and by rbk, from the same context and the
//! same base image — rbk's busybox base, `rbk save`d and `docker load`ed —
//! and the two images are compared: the final filesystems (paths, types,
//! modes, owners, symlink targets, contents, and the mtimes of files that
//! came from the context or the base), the configs and the shape of the
//! history.
//!
//! A case directory is the build context. Besides the Dockerfile it may
//! hold `build.args` (extra build flags, one per line, given to both
//! builders), `prepare.sh` (run with `sh` in a copy of the context first,
//! for what git does not keep: symlinks, modes, archives) and
//! `expected-diff.txt`: differences accepted for now, one per line as this
//! test prints them, each preceded by a `#` comment saying why. A difference
//! not listed fails the test, and so does a listed one that is gone.
//!
//! Ignored on purpose: directory mtimes and the mtimes of files a RUN made
//! (the two builds run at different instants), the `created` times, and
//! layer digests (they hash those mtimes). Without a Docker engine the tests
//! fail, saying why.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

mod support;

use support::docker::{engine, Docker};
use support::flatten::{read_archive, Image, Node};
use support::{ok, store_named};

/// Context files get this mtime, so a builder that keeps mtimes can be told
/// from one that does not.
const CONTEXT_MTIME: u64 = 1_600_000_000;
/// Files with an mtime at or below this came from the context, an archive
/// or the base image (whose entries have 1_700_000_000): they must match.
const FIXED_MTIME_MAX: u64 = 1_700_000_000;

/// The config fields compared (BuildKit's image config, `config` object).
const CONFIG_FIELDS: [&str; 13] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
    "ArgsEscaped",
];

fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/differential")
        .join(name)
}

/// The base image archive, `rbk save`d once per test binary and loaded
/// into the engine as `rbk-busybox:latest`.
fn base_archive(docker: &Docker) -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = support::scratch("differential-base");
        let root = store_named(&dir, "root");
        let archive = dir.join("base.tar");
        ok(
            &root,
            &[
                "save",
                "-o",
                archive.to_str().unwrap(),
                "rbk-busybox:latest",
            ],
        );
        docker.ok(&["load", "-i", archive.to_str().unwrap()]);
        archive
    })
}

/// The context of `case`: a copy of its directory, prepared, with fixed mtimes.
fn prepare_context(case: &str, dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    let status = Command::new("cp")
        .arg("-a")
        .arg(case_dir(case))
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(status.success(), "copying the {case} case");
    if ctx.join("prepare.sh").is_file() {
        let status = Command::new("sh")
            .arg("prepare.sh")
            .current_dir(&ctx)
            .status()
            .unwrap();
        assert!(status.success(), "{case}/prepare.sh failed");
    }
    let status = Command::new("find")
        .arg(&ctx)
        .args(["-exec", "touch", "-h", "-d"])
        .arg(format!("@{CONTEXT_MTIME}"))
        .args(["{}", "+"])
        .status()
        .unwrap();
    assert!(status.success(), "setting mtimes in the {case} context");
    ctx
}

fn build_args(ctx: &Path) -> Vec<String> {
    fs::read_to_string(ctx.join("build.args"))
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// What both builders made of one case.
struct Built {
    docker: Image,
    rbk: Image,
    /// `docker build --progress=plain`'s log (its standard error).
    docker_log: String,
    /// `rbk build --progress=plain`'s log.
    rbk_log: String,
}

/// Builds `case` with both builders.
fn build_both(docker: &Docker, case: &str) -> Built {
    let base = base_archive(docker);
    let dir = support::scratch(&format!("differential-{case}"));
    let ctx = prepare_context(case, &dir);
    let extra = build_args(&ctx);
    let name = format!("differential-{case}:latest");
    let dockerfile = ctx.join("Dockerfile");

    let mut args: Vec<&str> = vec!["build", "--progress=plain", "--network", "host"];
    args.extend(["-t", &name, "-f", dockerfile.to_str().unwrap()]);
    args.extend(extra.iter().map(String::as_str));
    args.push(ctx.to_str().unwrap());
    let docker_log = String::from_utf8_lossy(&docker.ok(&args).stderr).into_owned();
    let docker_tar = dir.join("docker.tar");
    docker.ok(&["save", "-o", docker_tar.to_str().unwrap(), &name]);

    let root = dir.join("root");
    ok(&root, &["load", "-i", base.to_str().unwrap()]);
    let mut args: Vec<&str> = vec!["build", "--progress=plain", "-t", &name, "-f"];
    args.push(dockerfile.to_str().unwrap());
    args.extend(extra.iter().map(String::as_str));
    args.push(ctx.to_str().unwrap());
    let rbk_log = support::stderr(&ok(&root, &args));
    let rbk_tar = dir.join("rbk.tar");
    ok(&root, &["save", "-o", rbk_tar.to_str().unwrap(), &name]);

    Built {
        docker: read_archive(&docker_tar),
        rbk: read_archive(&rbk_tar),
        docker_log,
        rbk_log,
    }
}

/// Every difference between the two images, one line each.
fn differences(docker: &Image, rbk: &Image) -> Vec<String> {
    let mut out = Vec::new();
    file_differences(&docker.files, &rbk.files, &mut out);
    config_differences(&docker.config, &rbk.config, &mut out);
    if docker.layer_digests.len() != rbk.layer_digests.len() {
        out.push(format!(
            "layers: docker {} rbk {}",
            docker.layer_digests.len(),
            rbk.layer_digests.len()
        ));
    }
    out
}

fn file_differences(
    docker: &BTreeMap<String, Node>,
    rbk: &BTreeMap<String, Node>,
    out: &mut Vec<String>,
) {
    for (path, d) in docker {
        let Some(r) = rbk.get(path) else {
            if is_runtime_stub(docker, path) {
                continue;
            }
            out.push(format!("/{path}: only in docker ({})", d.kind));
            continue;
        };
        if d.kind != r.kind {
            out.push(format!("/{path}: type docker {} rbk {}", d.kind, r.kind));
            continue;
        }
        if d.mode != r.mode {
            out.push(format!(
                "/{path}: mode docker {:o} rbk {:o}",
                d.mode, r.mode
            ));
        }
        if (d.uid, d.gid) != (r.uid, r.gid) {
            out.push(format!(
                "/{path}: owner docker {}:{} rbk {}:{}",
                d.uid, d.gid, r.uid, r.gid
            ));
        }
        if d.target != r.target {
            out.push(format!(
                "/{path}: link target docker {:?} rbk {:?}",
                d.target, r.target
            ));
        }
        if d.data != r.data {
            out.push(format!(
                "/{path}: content docker {:?} rbk {:?}",
                shown(&d.data),
                shown(&r.data)
            ));
        }
        if d.kind != "dir" && d.mtime <= FIXED_MTIME_MAX && d.mtime != r.mtime {
            out.push(format!("/{path}: mtime docker {} rbk {}", d.mtime, r.mtime));
        }
    }
    for (path, r) in rbk {
        if !docker.contains_key(path) {
            out.push(format!("/{path}: only in rbk ({})", r.kind));
        }
    }
}

/// Docker 20.10's BuildKit (v0.8) leaves in a RUN's layer the empty
/// directories runc made for its own mounts; rbk removes them, as BuildKit
/// does since the fix for CVE-2024-23652. The stubs of `RUN --mount`
/// targets stay listed in the cases' `expected-diff.txt`.
fn is_runtime_stub(files: &BTreeMap<String, Node>, path: &str) -> bool {
    let prefix = format!("{path}/");
    ["dev", "proc", "sys"].contains(&path)
        && files[path].kind == "dir"
        && !files.keys().any(|p| p.starts_with(&prefix))
}

/// File contents for a message: the text when short, else the size.
fn shown(data: &Option<Vec<u8>>) -> String {
    match data {
        None => "none".into(),
        Some(d) if d.len() <= 200 => String::from_utf8_lossy(d).into_owned(),
        Some(d) => format!("{} bytes", d.len()),
    }
}

fn config_differences(docker: &Value, rbk: &Value, out: &mut Vec<String>) {
    for field in CONFIG_FIELDS {
        // Indexing gives `null` for an absent field: the two are the same.
        let (d, r) = (&docker["config"][field], &rbk["config"][field]);
        if d != r {
            out.push(format!("config {field}: docker {d} rbk {r}"));
        }
    }
    for field in ["author", "architecture", "os"] {
        if docker[field] != rbk[field] {
            out.push(format!(
                "{field}: docker {} rbk {}",
                docker[field], rbk[field]
            ));
        }
    }
    let history = |config: &Value| -> Vec<(String, bool)> {
        config["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| {
                        (
                            e["created_by"].as_str().unwrap_or_default().to_string(),
                            e["empty_layer"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (dh, rh) = (history(docker), history(rbk));
    for i in 0..dh.len().max(rh.len()) {
        if dh.get(i) != rh.get(i) {
            out.push(format!(
                "history[{i}]: docker {:?} rbk {:?}",
                dh.get(i),
                rh.get(i)
            ));
        }
    }
}

/// The accepted differences of `case` (comment lines dropped).
fn expected(case: &str) -> Vec<String> {
    fs::read_to_string(case_dir(case).join("expected-diff.txt"))
        .map(|text| {
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn check(case: &str) {
    let built = build_both(engine(), case);
    let found = differences(&built.docker, &built.rbk);
    let accepted = expected(case);
    let new: Vec<&String> = found.iter().filter(|f| !accepted.contains(f)).collect();
    let gone: Vec<&String> = accepted.iter().filter(|a| !found.contains(a)).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "case {case}: rbk differs from Docker's BuildKit\n\
         new differences:\n  {}\n\
         listed in expected-diff.txt but gone:\n  {}",
        join(&new),
        join(&gone)
    );
}

fn join(lines: &[&String]) -> String {
    lines
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n  ")
}

macro_rules! cases {
    ($($test:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($case);
            }
        )*

        #[test]
        fn every_case_directory_has_a_test() {
            let listed = [$($case,)* OUTPUT_ORDER];
            for entry in fs::read_dir(case_dir("")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(listed.contains(&name.as_str()), "case {name} has no test");
            }
        }
    };
}

/// The case whose logs are compared (it is also an image case).
const OUTPUT_ORDER: &str = "output-order";

/// The output lines (`#N 0.123 out1`) of `log` whose text starts with
/// `out` or `err`, in the order shown.
fn output_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|w| w.starts_with("out") || w.starts_with("err"))
        .collect()
}

/// Issue 11, item 21: plain progress keeps the order in which a step wrote
/// its stdout and stderr lines, as Docker's BuildKit shows them.
#[test]
fn plain_progress_keeps_the_order_of_stdout_and_stderr() {
    let built = build_both(engine(), OUTPUT_ORDER);
    let (d, r) = (
        output_lines(&built.docker_log),
        output_lines(&built.rbk_log),
    );
    let want = ["out1", "err1", "out2", "err2", "out3", "err3"];
    assert_eq!(d, want, "Docker's log:\n{}", built.docker_log);
    assert_eq!(r, d, "rbk's log:\n{}", built.rbk_log);
    let found = differences(&built.docker, &built.rbk);
    assert!(
        found.is_empty(),
        "the images differ:\n  {}",
        found.join("\n  ")
    );
}

cases! {
    multi_stage_target_and_build_args => "multistage",
    env_and_arg_expansion => "env-expansion",
    user_and_workdir => "user-workdir",
    copy_rules => "copy-rules",
    add_archives_and_files => "add-archives",
    run_deletions_become_whiteouts => "whiteouts",
    metadata_instructions => "metadata",
    run_shell_and_exec_forms => "run-forms",
    run_mounts => "run-mounts",
    env_pairs_and_scratch_config => "env-scratch",
    steps_that_change_nothing_keep_a_layer => "empty-steps",
    chown_with_unknown_names => "chown-unknown",
    supplementary_groups_of_users => "user-groups",
}
