//! [`Runtime`] through the `runc` binary.
//!
//! `runc --root <state> --log <bundle>/runc.log run --bundle <bundle> <id>`
//! runs the process with stdin on `/dev/null` and stdout/stderr on pipes
//! that two threads drain into the caller's callback; runc's exit status is
//! the process's. runc's own messages go to the JSON log, which tells a
//! failing process apart from a failing runtime. `runc delete --force`
//! always follows, whatever happened.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

use rbk_graph::NetworkMode;

use super::{check_entitlements, cwd, hosts, spec, OutputStream, RunRequest, Runtime};
use crate::{open_root, resolve_user, Error, Result};

/// The oldest upstream release with the CVE-2024-21626 fix.
const MIN_VERSION: (u32, u32, u32) = (1, 1, 12);
/// How much of runc's log is read back for an error message.
const MAX_LOG: u64 = 1 << 20;

/// The `runc` OCI runtime.
#[derive(Debug, Clone)]
pub struct Runc {
    binary: PathBuf,
    state_dir: PathBuf,
}

impl Runc {
    /// Uses `binary` (default: `$RBK_RUNTIME`, else `runc` on `PATH`) with
    /// its container state under `state_dir`. Fails when the binary is
    /// missing or its version lacks the CVE-2024-21626 fix.
    pub fn new(binary: Option<PathBuf>, state_dir: PathBuf) -> Result<Runc> {
        let binary = binary
            .or_else(|| std::env::var_os("RBK_RUNTIME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("runc"));
        let runc = Runc { binary, state_dir };
        let out = match Command::new(&runc.binary).arg("--version").output() {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(
                    runc.error("not found: install the runc package or set RBK_RUNTIME".into())
                )
            }
            Err(e) => return Err(Error::io("running", &runc.binary, e)),
        };
        if !out.status.success() {
            return Err(runc.error(format!("`--version` failed: {}", out.status)));
        }
        check_version(&String::from_utf8_lossy(&out.stdout)).map_err(|m| runc.error(m))?;
        Ok(runc)
    }

    fn error(&self, message: String) -> Error {
        Error::Runtime {
            runtime: self.binary.display().to_string(),
            message,
        }
    }

    /// Prepares the root and the bundle for `request`.
    fn prepare(&self, request: &RunRequest<'_>) -> Result<()> {
        check_entitlements(request).map_err(|m| self.error(m))?;
        check_id(request.id).map_err(|m| self.error(m))?;
        let root =
            open_root(request.rootfs).map_err(|e| Error::io("opening root", request.rootfs, e))?;
        // No USER is uid 0, looked up like any other so that HOME is root's
        // home from /etc/passwd (runc and BuildKit give `/root`, not `/`).
        let user = if request.user.is_empty() {
            "0"
        } else {
            request.user
        };
        let ids = resolve_user(&root, user)?;
        let cwd = cwd::clean(request.cwd);
        cwd::ensure_dir(&root, &cwd)?;
        let own_netns = match request.network {
            NetworkMode::None => true,
            NetworkMode::Default | NetworkMode::Host => false,
        };
        let etc = hosts::write_etc_files(request.bundle, request.hostname, own_netns)?;
        let spec = spec::build(request, &ids, &cwd, &etc)?;
        let config = request.bundle.join("config.json");
        let json = serde_json::to_vec(&spec)
            .map_err(|e| Error::Invalid(format!("serializing the OCI spec: {e}")))?;
        std::fs::write(&config, json).map_err(|e| Error::io("writing", config, e))
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.state_dir);
        cmd
    }

    fn run_container(
        &self,
        request: &RunRequest<'_>,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<i32> {
        let log = request.bundle.join("runc.log");
        let mut child = self
            .command()
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(request.bundle)
            .arg(request.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("running", &self.binary, e))?;
        let streamed = stream(&mut child, output);
        let status = child
            .wait()
            .map_err(|e| Error::io("waiting for", &self.binary, e))?;
        streamed.map_err(|e| Error::io("reading output of", &self.binary, e))?;
        let code = exit_code(status);
        if code != 0 {
            if let Some(message) = runtime_errors(&log) {
                return Err(self.error(format!("container {}: {message}", request.id)));
            }
        }
        Ok(code)
    }

    fn delete(&self, id: &str) -> Result<()> {
        let out = self
            .command()
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running", &self.binary, e))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(self.error(format!("delete --force {id}: {}", stderr.trim())))
    }
}

impl Runtime for Runc {
    fn run(
        &self,
        request: &RunRequest<'_>,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<i32> {
        self.prepare(request)?;
        let result = self.run_container(request, output);
        // Always clean up; the run's own error, if any, matters more.
        let deleted = self.delete(request.id);
        let code = result?;
        deleted?;
        Ok(code)
    }
}

/// Drains the child's stdout and stderr on two threads, handing the chunks
/// to `output` on this one (the callback need not be `Send`).
fn stream(child: &mut Child, output: &mut dyn FnMut(OutputStream, &[u8])) -> io::Result<()> {
    type Chunk = (OutputStream, io::Result<Vec<u8>>);
    let (tx, rx) = mpsc::channel::<Chunk>();
    let mut readers = Vec::new();
    let pipes: [(OutputStream, Option<Box<dyn Read + Send>>); 2] = [
        (
            OutputStream::Stdout,
            child.stdout.take().map(|p| Box::new(p) as _),
        ),
        (
            OutputStream::Stderr,
            child.stderr.take().map(|p| Box::new(p) as _),
        ),
    ];
    for (which, pipe) in pipes {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let chunk = match pipe.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.send((which, chunk)).is_err() || failed {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut result = Ok(());
    for (which, chunk) in rx {
        match chunk {
            Ok(bytes) => output(which, &bytes),
            Err(e) => result = Err(e),
        }
    }
    for reader in readers {
        // A reader only returns; a panic there is a bug worth surfacing.
        if reader.join().is_err() {
            result = Err(io::Error::other("output reader panicked"));
        }
    }
    result
}

/// runc's exit status, or 128 + signal when runc itself was killed.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// The `error`-level messages of runc's JSON log, if any.
fn runtime_errors(log: &Path) -> Option<String> {
    let file = std::fs::File::open(log).ok()?;
    let mut text = String::new();
    file.take(MAX_LOG).read_to_string(&mut text).ok()?;
    let messages: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error")
        .filter_map(|entry| entry["msg"].as_str().map(str::to_string))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// runc ids are `[A-Za-z0-9_+.-]+`; a leading `-` would read as a flag.
fn check_id(id: &str) -> Result<(), String> {
    let valid = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid container id {id:?}"))
    }
}

/// Accepts runc >= 1.1.12, or a Debian build whose `commit:` line carries
/// `+deb12uN` (N >= 1): Debian 12's 1.1.5+ds1-1+deb12u1 backports the
/// CVE-2024-21626 fix (security rule 10).
fn check_version(output: &str) -> Result<(), String> {
    let version = output
        .lines()
        .find_map(|l| l.strip_prefix("runc version "))
        .map(str::trim)
        .ok_or_else(|| format!("cannot read the version from {:?}", first_line(output)))?;
    if parse_version(version).is_some_and(|v| v >= MIN_VERSION) {
        return Ok(());
    }
    let debian_fixed = output
        .lines()
        .filter_map(|l| l.strip_prefix("commit:"))
        .any(|commit| debian_revision(commit).is_some_and(|n| n >= 1));
    if debian_fixed {
        return Ok(());
    }
    Err(format!(
        "version {version} lacks the fix for CVE-2024-21626: install runc 1.1.12 or later \
         (or Debian 12's 1.1.5+ds1-1+deb12u1 or later)"
    ))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `1.1.12`, `1.1.5+ds1`, `1.2.0-rc.1` → the leading three numbers.
fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let end = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let mut parts = v[..end].split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// N of a `+deb12uN` suffix.
fn debian_revision(commit: &str) -> Option<u32> {
    let rest = &commit[commit.find("+deb12u")? + "+deb12u".len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n";

    #[test]
    fn versions_with_the_fix_are_accepted() {
        assert!(check_version(DEBIAN).is_ok());
        assert!(check_version("runc version 1.1.12\ncommit: v1.1.12-0-g51d5e94\n").is_ok());
        assert!(check_version("runc version 1.2.8\n").is_ok());
        assert!(check_version("runc version 1.1.12-0ubuntu2~22.04.1\n").is_ok());
    }

    #[test]
    fn versions_without_the_fix_are_refused() {
        let err = check_version("runc version 1.1.11\ncommit: v1.1.11-0-g4bccb38\n").unwrap_err();
        assert!(
            err.contains("1.1.11") && err.contains("CVE-2024-21626"),
            "{err}"
        );
        let deb0 = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\n";
        assert!(check_version(deb0).is_err());
        assert!(check_version("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u0\n").is_err());
        assert!(check_version("crun version 1.8\n").is_err());
    }

    #[test]
    fn version_numbers_parse() {
        assert_eq!(parse_version("1.1.5+ds1"), Some((1, 1, 5)));
        assert_eq!(parse_version("1.2.0-rc.1"), Some((1, 2, 0)));
        assert_eq!(parse_version("x"), None);
        assert_eq!(debian_revision(" 1.1.5+ds1-1+deb12u12"), Some(12));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("rbk-1a2b.3").is_ok());
        assert!(check_id("-h").is_err());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
    }

    #[test]
    fn a_missing_binary_says_how_to_fix_it() {
        let err = Runc::new(Some("/nonexistent/runc".into()), "/tmp/x".into()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("not found") && msg.contains("RBK_RUNTIME"),
            "{msg}"
        );
    }

    #[test]
    fn runtime_errors_come_from_the_json_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runc.log");
        std::fs::write(
            &log,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\n",
        )
        .unwrap();
        assert_eq!(runtime_errors(&log).as_deref(), Some("boom"));
        assert_eq!(runtime_errors(&dir.path().join("none")), None);
    }
}
