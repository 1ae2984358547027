//! Ordinary users for the rootless tests (the suites run as root): one with
//! subordinate id ranges in /etc/subuid and /etc/subgid, one without, made
//! once per machine (idempotently, under a lock), and commands run as them.
//! Also included by the store's breakout tests and `cargo xtask bench
//! rootless` (`#[path]`), so it uses std and rustix only.
#![allow(dead_code)]

use std::fs;
use std::process::Command;

/// The user with subordinate ids.
pub(crate) const WITH_RANGES: &str = "rbk-rootless";
/// The user without any.
pub(crate) const NO_RANGES: &str = "rbk-noranges";

/// An ordinary user, as the tests run rbk.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Its subordinate uid range (start, count); `None` for `NO_RANGES`.
    pub(crate) subuids: Option<(u32, u32)>,
}

/// `name`'s first range in `/etc/subuid`-format `text`.
fn range_of(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        let start = f.next()?.parse().ok()?;
        let count: u32 = f.next()?.parse().ok()?;
        (count > 0).then_some((start, count))
    })
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed (the rootless tests create users; they need root, useradd and usermod):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn id(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().unwrap();
    assert!(out.status.success(), "id {flag} {name} failed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Makes (once) and returns the user `name`, with a 65,536-id range or
/// with none.
pub(crate) fn user(name: &str) -> User {
    let with_ranges = name == WITH_RANGES;
    assert!(
        rustix::process::geteuid().is_root(),
        "the rootless tests run as root, to create their users"
    );
    let lock = fs::File::create("/tmp/rbk-test-users.lock").unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let exists = Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let mut add = Command::new("useradd");
        add.args(["--no-create-home", "--shell", "/bin/sh"]);
        if !with_ranges {
            add.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        run(add.arg(name));
    }
    for (file, flag, del) in [
        ("/etc/subuid", "--add-subuids", "--del-subuids"),
        ("/etc/subgid", "--add-subgids", "--del-subgids"),
    ] {
        let text = fs::read_to_string(file).unwrap_or_default();
        match (range_of(&text, name), with_ranges) {
            (None, true) => {
                // After every range already given out.
                let start = text
                    .lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
                    })
                    .max()
                    .unwrap_or(100_000)
                    .max(100_000);
                let span = format!("{start}-{}", start + 65_535);
                run(Command::new("usermod").args([flag, &span, name]));
            }
            (Some((start, count)), false) => {
                let span = format!("{start}-{}", u64::from(start) + u64::from(count) - 1);
                run(Command::new("usermod").args([del, &span, name]));
            }
            _ => {}
        }
    }
    let subuids = range_of(&fs::read_to_string("/etc/subuid").unwrap(), name);
    User {
        name: name.to_string(),
        uid: id("-u", name),
        gid: id("-g", name),
        subuids,
    }
}

impl User {
    /// `program` run as this user inside a fresh user namespace with the
    /// maps rootless rbk gives itself (the user as 0, its subordinate range
    /// from 1, through newuidmap/newgidmap), a clean environment and PATH.
    pub(crate) fn in_user_namespace(&self, program: &std::path::Path) -> Command {
        let (start, count) = self
            .subuids
            .expect("in_user_namespace needs the user with subordinate ids");
        let range = format!("--map-users={start},1,{count}");
        let groups = format!("--map-groups={start},1,{count}");
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "unshare", "--user", "--map-user=0"])
            .args(["--map-group=0", &range, &groups])
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("TMPDIR", "/tmp");
        cmd
    }
}
