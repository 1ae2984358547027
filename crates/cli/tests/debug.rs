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
