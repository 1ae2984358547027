//! The `rbk debug` and `rbk build` surface, driven through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rbk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbk"))
        .args(args)
        .output()
        .expect("rbk runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh directory under the target dir, unique per test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/multistage")
        .display()
        .to_string()
}

#[test]
fn ast_prints_buildkit_s_expressions() {
    let dir = scratch("ast_ok");
    let file = dir.join("Dockerfile");
    std::fs::write(
        &file,
        "FROM busybox AS a\nCOPY --from=a x /y\nENV A=1\nCMD [\"sh\", \"-c\"]\n",
    )
    .unwrap();
    let out = rbk(&["debug", "ast", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "(from \"busybox\" \"AS\" \"a\")\n(copy [\"--from=a\"] \"x\" \"/y\")\n(env \"A\" \"1\" \"=\")\n(cmd \"sh\" \"-c\")\n"
    );
}

#[test]
fn ast_of_an_invalid_file_fails_naming_the_line() {
    let dir = scratch("ast_bad");
    let file = dir.join("Dockerfile");
    std::fs::write(&file, "FROM busybox\nRUN <<EOF\necho hi\n").unwrap();
    let out = rbk(&["debug", "ast", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("Dockerfile:2"), "line number missing: {err}");
    assert!(err.contains(">>> RUN <<EOF"), "snippet missing: {err}");
    assert!(err.contains("EOF"), "{err}");
}

#[test]
fn ast_keeps_unknown_instructions_as_buildkit_does_but_plan_rejects_them() {
    let dir = scratch("ast_unknown");
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUNN echo\n").unwrap();
    let out = rbk(&["debug", "ast", dir.join("Dockerfile").to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "(from \"busybox\")\n(runn \"\")\n");
    let out = rbk(&["debug", "plan", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(">>> RUNN echo"), "snippet missing: {err}");
    assert!(err.to_lowercase().contains("unknown instruction"), "{err}");
}

#[test]
fn expand_prints_the_word_or_the_words() {
    let out = rbk(&["debug", "expand", "--env", "A=hello world", "--", "${A}!"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello world!\n");
    let out = rbk(&[
        "debug", "expand", "--env", "A=x y", "--words", "--", "$A 'z w'",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "x\ny\nz w\n");
}

#[test]
fn expand_errors_exit_non_zero() {
    let out = rbk(&["debug", "expand", "--", "${A:?is required}"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is required"), "{}", stderr(&out));
    let out = rbk(&["debug", "expand", "--", "${A"]);
    assert!(!out.status.success());
}

#[test]
fn plan_for_a_target_lists_only_what_it_needs() {
    let out = rbk(&["debug", "plan", "--target", "runtime", &example()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.contains("runtime"), "{plan}");
    assert!(
        plan.contains("build"),
        "the runtime stage copies from build: {plan}"
    );
    assert!(
        !plan.contains("grep"),
        "the unused test stage must be pruned: {plan}"
    );
    let last = stdout(&rbk(&["debug", "plan", &example()]));
    assert_eq!(last, plan, "the default target is the last stage");
    let test = stdout(&rbk(&["debug", "plan", "--target", "test", &example()]));
    assert!(
        test.contains("grep") && !test.contains("[runtime"),
        "{test}"
    );
}

#[test]
fn plan_digests_follow_build_args() {
    let a = stdout(&rbk(&[
        "debug",
        "plan",
        "--target",
        "runtime",
        "--build-arg",
        "BASE=one:1",
        &example(),
    ]));
    let b = stdout(&rbk(&[
        "debug",
        "plan",
        "--target",
        "runtime",
        "--build-arg",
        "BASE=two:2",
        &example(),
    ]));
    assert!(a.contains("one:1") && b.contains("two:2"), "{a}\n{b}");
    assert_ne!(a, b);
}

#[test]
fn plan_with_an_unknown_target_fails() {
    let out = rbk(&["debug", "plan", "--target", "nope", &example()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn build_rejects_bad_tags_and_dockerfiles_before_running_anything() {
    let dir = scratch("build_bad");
    let root = dir.join("root");
    let root = root.to_str().unwrap();
    let out = rbk(&["--root", root, "build", "-t", "Bad:Name", &example()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid tag \"Bad:Name\""),
        "{}",
        stderr(&out)
    );
    let cycle = "FROM scratch AS x\nCOPY --from=y / /\nFROM scratch AS y\nCOPY --from=x / /\n";
    std::fs::write(dir.join("Dockerfile"), cycle).unwrap();
    let out = rbk(&["--root", root, "build", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("circular"), "{}", stderr(&out));
    // A base image that is neither in the store nor pullable is named, with
    // the FROM line.
    std::fs::write(dir.join("Dockerfile"), "FROM nowhere:1\nRUN true\n").unwrap();
    let out = rbk(&["--root", root, "build", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("failed to resolve source metadata for docker.io/library/nowhere:1"),
        "{err}"
    );
    assert!(err.contains(">>> FROM nowhere:1"), "{err}");
}

/// A2 of security.md: an unterminated quote fails naming its line, and so
/// does one at the end of a 10 MB Dockerfile, with a short message (the
/// file is not echoed back).
#[test]
fn an_unterminated_quote_fails_naming_its_line_even_in_a_10_mb_dockerfile() {
    let dir = scratch("build_quote");
    let root = dir.join("root");
    let root = root.to_str().unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nENV a=\"b\n").unwrap();
    let out = rbk(&["--root", root, "build", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Dockerfile:2: failed to process \"\\\"b\": unexpected end of statement while looking for matching double-quote"),
        "{err}"
    );
    let padding = "# ".to_string() + &"x".repeat(98) + "\n";
    let lines = 10 * 1024 * 1024 / padding.len();
    let huge = format!("FROM scratch\n{}ENV a='b\n", padding.repeat(lines));
    std::fs::write(dir.join("Dockerfile"), huge).unwrap();
    let out = rbk(&["--root", root, "build", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = lines + 2;
    assert!(err.len() < 4096, "{} bytes of stderr", err.len());
    assert!(
        err.contains(&format!("Dockerfile:{last}: failed to process \"'b\": unexpected end of statement while looking for matching single-quote")),
        "{err}"
    );
    assert!(err.contains(&format!("{last} | >>> ENV a='b")), "{err}");
}
