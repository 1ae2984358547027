//! `rbk build` end to end: real Dockerfiles, real containers (runc), a base
//! image made from Debian's busybox-static, each test with its own store.
//! These tests need root, runc and /usr/bin/busybox; without them they fail
//! saying what is missing (the test command installs them).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

mod support;

use support::{build, config, context, export, ok, ran, rbk, scratch, stderr, store};

#[test]
fn multi_stage_target_builds_only_what_it_needs() {
    let dir = scratch("target");
    let root = store(&dir);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/multistage");
    let out = dir.join("out");
    let spec = format!("type=local,dest={}", out.display());
    let result = rbk(
        &root,
        &[
            "build",
            "--progress=plain",
            "--target",
            "runtime",
            "-t",
            "app:1",
            "-o",
            &spec,
            example.to_str().unwrap(),
        ],
    );
    let log = stderr(&result);
    assert!(result.status.success(), "{log}");
    // The test stage's RUN never ran.
    assert!(!log.contains("grep -q"), "{log}");
    let hello = out.join("usr/local/bin/hello");
    assert_eq!(
        fs::metadata(&hello).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(fs::read_to_string(&hello)
        .unwrap()
        .contains("hello from rbk"));
    assert!(out.join("bin/busybox").is_file());
    let cfg = config(&root, "app:1");
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["hello"]));
    assert!(cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "GREETING=hello from rbk"));
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.title"],
        "rbk example"
    );
    // base layer + the COPY --from layer.
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}

#[test]
fn run_steps_really_run_and_their_changes_become_layers() {
    let dir = scratch("run");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\n\
             RUN echo built > /made && mkdir -p /d/e && rm /etc/group && id -u > /uid\n\
             USER app\n\
             RUN id -u > /tmp/app-uid\n\
             WORKDIR /home/app/work\n\
             RUN pwd > here\n\
             RUN true\n",
        )],
    );
    let out = export(&root, &ctx, &dir, &["-t", "ran"]);
    assert_eq!(fs::read_to_string(out.join("made")).unwrap(), "built\n");
    assert_eq!(fs::read_to_string(out.join("uid")).unwrap(), "0\n");
    assert_eq!(
        fs::read_to_string(out.join("tmp/app-uid")).unwrap(),
        "1000\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("home/app/work/here")).unwrap(),
        "/home/app/work\n"
    );
    assert_eq!(
        fs::metadata(out.join("home/app/work/here")).unwrap().uid(),
        1000
    );
    // The deletion is a whiteout in the layer, applied in the output.
    assert!(!out.join("etc/group").exists());
    assert!(out.join("etc/passwd").exists());
    // Nothing of the container's mounts leaks into the image.
    assert!(!out.join("etc/hosts").exists() && !out.join("etc/resolv.conf").exists());
    let cfg = config(&root, "ran");
    let history = cfg["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["created_by"], "RUN /bin/sh -c true # buildkit");
    // A RUN that changes nothing still makes a layer, the empty tar, as
    // BuildKit's (Docker 20.10's too) does.
    assert_eq!(last.get("empty_layer"), None, "{last}");
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(
        diff_ids.last().unwrap(),
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    );
    let with_layers = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(
        with_layers,
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    assert_eq!(cfg["config"]["User"], "app");
    assert_eq!(cfg["config"]["WorkingDir"], "/home/app/work");
}

#[test]
fn a_failing_run_reports_the_exit_code_and_the_line_and_tags_nothing() {
    let dir = scratch("fail");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo start\nRUN echo oops >&2; exit 3\n",
        )],
    );
    let result = build(&root, &ctx, &["-t", "broken"]);
    let log = stderr(&result);
    assert!(!result.status.success());
    assert!(
        log.contains("process \"/bin/sh -c echo oops >&2; exit 3\" did not complete successfully: exit code: 3"),
        "{log}"
    );
    assert!(log.contains(">>> RUN echo oops >&2; exit 3"), "{log}");
    assert!(log.contains("oops"), "the step's output is shown: {log}");
    let images = String::from_utf8(ok(&root, &["images", "-q"]).stdout).unwrap();
    assert_eq!(images.lines().count(), 1, "only the base image: {images}");
}

#[test]
fn the_cache_reruns_exactly_what_changed() {
    let dir = scratch("cache");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 COPY early.txt /early.txt\n\
                 RUN cat /early.txt > /early-seen\n\
                 COPY late.txt /late.txt\n\
                 RUN cat /late.txt > /late-seen\n",
            ),
            ("early.txt", "early\n"),
            ("late.txt", "late\n"),
        ],
    );
    let first = build(&root, &ctx, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(
        ran(&stderr(&first))
            .iter()
            .filter(|l| l.contains("RUN"))
            .count(),
        2
    );
    // No change: nothing runs.
    let second = build(&root, &ctx, &[]);
    let log = stderr(&second);
    assert!(second.status.success(), "{log}");
    assert!(
        ran(&log)
            .iter()
            .all(|l| !l.contains("RUN") && !l.contains("COPY")),
        "{log}"
    );
    // A file only the late COPY reads: that COPY and what follows re-run.
    fs::write(ctx.join("late.txt"), "later\n").unwrap();
    let third = build(&root, &ctx, &[]);
    let log = stderr(&third);
    assert!(third.status.success(), "{log}");
    let reran = ran(&log);
    assert!(reran.iter().any(|l| l.contains("COPY late.txt")), "{log}");
    assert!(reran.iter().any(|l| l.contains("cat /late.txt")), "{log}");
    assert!(!reran.iter().any(|l| l.contains("early")), "{log}");
    // --no-cache runs everything again.
    let fourth = build(&root, &ctx, &["--no-cache"]);
    let log = stderr(&fourth);
    assert_eq!(
        ran(&log).iter().filter(|l| l.contains("RUN")).count(),
        2,
        "{log}"
    );
}

#[test]
fn copy_follows_docker_rules() {
    let dir = scratch("copy");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 COPY --chown=app:app --chmod=640 a.txt /dst/\n\
                 COPY src/ /tree\n\
                 COPY *.md /docs/\n\
                 COPY a.txt /renamed.txt\n",
            ),
            ("a.txt", "a\n"),
            ("src/one", "1"),
            ("src/sub/two", "2"),
            ("x.md", "x"),
            ("y.md", "y"),
            ("ignored.md", "no"),
            (".dockerignore", "ignored.md\n"),
        ],
    );
    let out = export(&root, &ctx, &dir, &[]);
    let a = fs::metadata(out.join("dst/a.txt")).unwrap();
    assert_eq!((a.uid(), a.gid(), a.mode() & 0o7777), (1000, 1000, 0o640));
    // Directory contents, not the directory.
    assert_eq!(fs::read_to_string(out.join("tree/sub/two")).unwrap(), "2");
    assert!(!out.join("tree/src").exists());
    assert!(out.join("docs/x.md").is_file() && out.join("docs/y.md").is_file());
    assert!(
        !out.join("docs/ignored.md").exists(),
        ".dockerignore applies"
    );
    assert_eq!(fs::read_to_string(out.join("renamed.txt")).unwrap(), "a\n");
    // Files from the context belong to root.
    assert_eq!(fs::metadata(out.join("renamed.txt")).unwrap().uid(), 0);
}

#[test]
fn a_missing_source_is_a_clear_error() {
    let dir = scratch("missing");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nCOPY nope.txt /x\n")],
    );
    let result = build(&root, &ctx, &["-t", "never"]);
    let log = stderr(&result);
    assert!(!result.status.success());
    assert!(
        log.contains("nope.txt") && log.contains("not found"),
        "{log}"
    );
    assert!(log.contains(">>> COPY nope.txt /x"), "{log}");
}
