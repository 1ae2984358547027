//! The flags every command takes and the environment variables clap reads
//! for them (`RBK_ROOT`, `RBK_JOBS`, `RBK_SNAPSHOTTER`): through the real
//! binary, each test with its own store under the cargo temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("global-settings-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rbk args…` with exactly the rbk variables of `env` set.
fn rbk(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbk"));
    cmd.args(args).stdin(Stdio::null());
    for var in ["RBK_ROOT", "RBK_JOBS", "RBK_SNAPSHOTTER"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn rbk_root_opens_the_store_there_and_the_flag_wins() {
    let dir = scratch("root");
    let from_env = dir.join("from-env");
    let from_flag = dir.join("from-flag");
    let out = rbk(&["images"], &[("RBK_ROOT", from_env.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        from_env.join("index.json").is_file(),
        "no store at RBK_ROOT"
    );

    let out = rbk(
        &["--root", from_flag.to_str().unwrap(), "images"],
        &[("RBK_ROOT", from_env.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        from_flag.join("index.json").is_file(),
        "--root was not used"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn jobs_and_snapshotter_come_from_flags_or_the_environment() {
    let dir = scratch("jobs");
    let root = dir.join("store");
    let root = root.to_str().unwrap();
    // Global flags go before or after the command; an empty
    // RBK_SNAPSHOTTER means the default, as it always has.
    for (args, env) in [
        (vec!["--root", root, "--jobs", "2", "images"], vec![]),
        (vec!["--root", root, "images", "--jobs", "2"], vec![]),
        (vec!["--root", root, "images"], vec![("RBK_JOBS", "3")]),
        (
            vec!["--root", root, "--snapshotter", "native", "images"],
            vec![],
        ),
        (
            vec!["--root", root, "images"],
            vec![("RBK_SNAPSHOTTER", "copy")],
        ),
        (
            vec!["--root", root, "images"],
            vec![("RBK_SNAPSHOTTER", "")],
        ),
    ] {
        let out = rbk(&args, &env);
        assert!(out.status.success(), "{args:?} {env:?}: {}", stderr(&out));
    }
    // Bad values are refused, naming the flag and what it takes.
    let out = rbk(&["--root", root, "images"], &[("RBK_SNAPSHOTTER", "zfs")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--snapshotter") && err.contains("native"),
        "{err}"
    );
    let out = rbk(&["--root", root, "images"], &[("RBK_JOBS", "many")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--jobs"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
