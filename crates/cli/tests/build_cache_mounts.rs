//! `RUN --mount=type=cache,sharing=…` across two `rbk build` processes on one
//! store. The steps check each other through files, never through time:
//! a `shared` cache mount doubles as the rendezvous channel where both
//! steps must be running at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

mod support;

use support::{command, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("cache-mounts-{name}"))
}

/// Starts `rbk build` of `dockerfile` in its own context `dir/<name>`.
fn spawn(root: &Path, dir: &Path, name: &str, dockerfile: &str) -> Child {
    let ctx = dir.join(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    command(root, &["build", "--progress=plain", "-t", name])
        .arg(&ctx)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn both_succeed(a: Child, b: Child) {
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Both steps wait (up to 60 s) for the other's marker in `/chan`: they
/// pass only when both run at once.
fn rendezvous(me: &str, other: &str) -> String {
    format!(
        "touch /chan/{me}; i=0; while [ ! -e /chan/{other} ]; do \
         i=$((i+1)); [ $i -lt 600 ] || exit 20; sleep 0.1; done"
    )
}

#[test]
fn shared_cache_mounts_are_used_at_once() {
    let dir = scratch("shared");
    let root = store(&dir);
    let step = |me: &str, other: &str| {
        format!(
            "FROM rbk-busybox\nRUN --mount=type=cache,id=chan,target=/chan \
             --mount=type=cache,id=data,target=/cache \
             {} && echo {me} > /cache/{me} && echo {me}-done > /{me}\n",
            rendezvous(me, other)
        )
    };
    let a = spawn(&root, &dir, "a", &step("a", "b"));
    let b = spawn(&root, &dir, "b", &step("b", "a"));
    both_succeed(a, b);
}

#[test]
fn private_cache_mounts_give_each_concurrent_user_its_own_dir() {
    let dir = scratch("private");
    let root = store(&dir);
    // Each step leaves its marker, meets the other (so both hold their
    // cache dir at once), then finds only its own marker.
    let step = |me: &str, other: &str| {
        format!(
            "FROM rbk-busybox\nRUN --mount=type=cache,id=chan,target=/chan \
             --mount=type=cache,id=data,target=/cache,sharing=private \
             touch /cache/{me} && {} && [ ! -e /cache/{other} ] && rm /cache/{me}\n",
            rendezvous(me, other)
        )
    };
    let a = spawn(&root, &dir, "a", &step("a", "b"));
    let b = spawn(&root, &dir, "b", &step("b", "a"));
    both_succeed(a, b);
}

#[test]
fn locked_cache_mounts_serialise_processes() {
    let dir = scratch("locked");
    let root = store(&dir);
    // Inside the lock nobody else may be busy; each step holds it for a
    // while, so without the lock the two would overlap.
    let step = |me: &str| {
        format!(
            "FROM rbk-busybox\nRUN --mount=type=cache,id=data,target=/cache,sharing=locked \
             [ ! -e /cache/busy ] && echo {me} > /cache/busy && sleep 2 && \
             [ \"$(cat /cache/busy)\" = {me} ] && rm /cache/busy && echo {me} >> /cache/log\n"
        )
    };
    let a = spawn(&root, &dir, "a", &step("a"));
    let b = spawn(&root, &dir, "b", &step("b"));
    both_succeed(a, b);
}
