//! `rbk` run as the ordinary users of `support/users.rs` through `setpriv`,
//! with a clean environment and a scratch directory they can reach.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::users::User;

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
