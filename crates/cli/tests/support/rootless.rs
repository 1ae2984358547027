//! Ordinary users for the rootless tests (the suite runs as root): one with
//! subordinate id ranges in /etc/subuid and /etc/subgid, one without, made
//! once per machine (idempotently, under a lock), and `rbk` run as them
//! through `setpriv` with a clean environment.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A directory for one rootless test under /tmp (the user must reach it,
/// which a checkout under /root would not allow), with `home` and `data`
/// owned by the user, and the rbk binary linked in. Removed on drop.
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
    pub(crate) user: User,
    bin: PathBuf,
}

impl Scratch {
    pub(crate) fn new(name: &str, user: &User) -> Scratch {
        let dir = PathBuf::from("/tmp/rbk-rootless-tests").join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for d in ["/tmp/rbk-rootless-tests", dir.to_str().unwrap()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for sub in ["home", "data"] {
            let p = dir.join(sub);
            fs::create_dir(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid)).unwrap();
        }
        let bin = dir.join("rbk");
        let exe = Path::new(env!("CARGO_BIN_EXE_rbk"));
        if fs::hard_link(exe, &bin).is_err() {
            fs::copy(exe, &bin).unwrap();
        }
        Scratch {
            dir,
            user: user.clone(),
            bin,
        }
    }

    /// The user's default store (`$XDG_DATA_HOME/rbk`).
    pub(crate) fn store(&self) -> PathBuf {
        self.dir.join("data/rbk")
    }

    /// `rbk ARGS` as the user, with only PATH, HOME and XDG_DATA_HOME set
    /// (so the store is the default one) plus `env`.
    pub(crate) fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.user.uid))
            .arg(format!("--regid={}", self.user.gid))
            .arg("--clear-groups")
            .arg(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.dir.join("home"))
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .envs(env.iter().copied())
            .current_dir(&self.dir);
        cmd
    }

    pub(crate) fn rbk(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.rbk(args, env);
        assert!(
            out.status.success(),
            "rootless rbk {args:?} as {} failed:\n{}",
            self.user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Makes `path` (a file or tree the test wrote) readable by the user.
    pub(crate) fn share(&self, path: &Path) {
        let out = Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
