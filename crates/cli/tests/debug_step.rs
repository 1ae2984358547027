//! Debugging a failed build step (issue 13): `rbk build --on-error=shell`
//! opens a shell under a real terminal (tmux) in the failed `RUN`'s state,
//! and `rbk debug step DIGEST` opens it again later, until `rbk prune`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;

use support::tmux::Tmux;
use support::{context, mounts_under, ok, rbk, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    support::container_scratch(&format!("debug-step-{name}"))
}

/// The digest `rbk build` named in its hint about the kept step.
fn kept_digest(build_stderr: &str) -> String {
    let hint = "to debug: rbk debug step ";
    let at = build_stderr
        .find(hint)
        .unwrap_or_else(|| panic!("no hint about the kept step:\n{build_stderr}"));
    let rest = &build_stderr[at + hint.len()..];
    rest.lines().next().unwrap().to_string()
}

#[test]
fn on_error_shell_opens_the_failed_step_under_a_terminal() {
    let dir = scratch("on-error");
    let root = support::store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nENV GREETING=hello\nWORKDIR /app\n\
             RUN --mount=type=cache,target=/cache echo cached > /cache/c \
             && echo partial > made-before-failing && false\n",
        )],
    );
    let status = dir.join("status");
    let tmux = Tmux::new("on-error");
    let script = format!(
        "{} --root {} build --on-error=shell --progress=plain {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_rbk"),
        root.display(),
        ctx.display(),
        status.display()
    );
    tmux.start(120, 40, &script);
    let pane = tmux.wait_for("/app #");
    // The failing command is shown before the shell.
    assert!(
        pane.contains("exited with code 1") && pane.contains("echo partial > made-before-failing"),
        "{pane}"
    );
    tmux.cmd(&[
        "send-keys",
        "-t",
        "t",
        "cat made-before-failing /cache/c; echo $GREETING-$(id -u); tty",
        "Enter",
    ]);
    // `tty` answers last: wait for it, not for the lines before it.
    let pane = tmux.wait_for("/dev/pts/");
    // What the step wrote before failing, its cache mount, its ENV, root,
    // and a real terminal.
    let answer: Vec<&str> = pane.lines().map(str::trim_end).collect();
    for line in ["partial", "cached", "hello-0"] {
        assert!(answer.contains(&line), "{line:?} missing:\n{pane}");
    }
    assert!(pane.contains("/dev/pts/"), "{pane}");
    tmux.cmd(&["send-keys", "-t", "t", "C-d"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&status).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "Ctrl-D did not end the shell:\n{}",
            tmux.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The build still fails once the shell is closed.
    assert_ne!(std::fs::read_to_string(&status).unwrap().trim(), "0");
    assert_eq!(stdout(&ok(&root, &["ps", "-a", "-q"])), "");
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
}

/// A store whose last build failed in a RUN as user 1234 in /work, with a
/// bind mount of another stage: the failed step's digest.
fn failed_build(dir: &Path, root: &Path) -> String {
    let ctx = context(
        dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox AS data\nRUN mkdir /data && echo from-stage > /data/f\n\
             FROM rbk-busybox\nRUN mkdir -m 1777 /work\nUSER 1234:1234\nWORKDIR /work\n\
             RUN --mount=type=bind,from=data,source=/data,target=/mnt \
             echo partial > left && exit 3\n",
        )],
    );
    let out = rbk(root, &support::build_args(&ctx, &["--on-error=shell"]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("exit code: 3"), "{err}");
    // No terminal, no shell: the build says so and how to open it later.
    assert!(err.contains("--on-error=shell needs a terminal"), "{err}");
    kept_digest(&err)
}

#[test]
fn debug_step_reopens_a_kept_step_until_prune() {
    let dir = scratch("later");
    let root = support::store(&dir);
    let digest = failed_build(&dir, &root);
    let list = stdout(&ok(&root, &["debug", "step"]));
    let row = list.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with(&digest) && row.contains(" 3 ") && row.contains("exit 3"),
        "{list}"
    );
    // A command, in the step's directory, as its user, with its mounts.
    let out = ok(
        &root,
        &[
            "debug",
            "step",
            &digest,
            "sh",
            "-c",
            "pwd; id -u; cat left /mnt/f; echo changed > left",
        ],
    );
    assert_eq!(stdout(&out), "/work\n1234\npartial\nfrom-stage\n");
    // The shell reads stdin; a prefix of the digest is enough; what the
    // last container wrote is gone (the kept step stays as it failed).
    let prefix = &digest["sha256:".len().."sha256:".len() + 12];
    let out = support::rbk_with_stdin(&root, &["debug", "step", prefix], b"cat left; exit 7\n");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "partial\n");
    assert!(
        stderr(&out).contains("exited with code 3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&ok(&root, &["ps", "-a", "-q"])), "");
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));

    // Bad input: a digest that names no kept step.
    let out = rbk(&root, &["debug", "step", "sha256:0123456789abcdef"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no failed step"), "{}", stderr(&out));

    // Kept until prune.
    ok(&root, &["prune", "-f"]);
    let out = rbk(&root, &["debug", "step", &digest, "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no failed step"), "{}", stderr(&out));
    assert_eq!(stdout(&ok(&root, &["debug", "step"])).lines().count(), 1);
}
