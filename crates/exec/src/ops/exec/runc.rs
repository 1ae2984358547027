//! [`Runtime`] through the `runc` binary.
//!
//! `runc --root <state> --log <bundle>/runc.log run --detach --pid-file …
//! --bundle <bundle> <id>` starts the process with stdin on `/dev/null` and
//! stdout and stderr on one pipe (runc's detached pass-through), drained in
//! order into the caller's callback. rbk is the child subreaper, so the
//! container's init becomes its child when runc exits, and its exit status
//! is the step's. runc's own messages go to the JSON log, which tells a
//! failing process apart from a failing runtime. `runc delete --force`
//! always follows, whatever happened.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    /// Whether rbk runs in a user namespace (rootless), where specs need
    /// `spec::for_user_namespace`.
    in_userns: bool,
}

impl Runc {
    /// Uses `binary` (default: `runc` on `PATH`; the CLI resolves
    /// `--runtime` and `RBK_RUNTIME` into it) with its container state under
    /// `state_dir`. Fails when the binary is missing or its version lacks
    /// the CVE-2024-21626 fix.
    pub fn new(binary: Option<PathBuf>, state_dir: PathBuf) -> Result<Runc> {
        let binary = binary.unwrap_or_else(|| PathBuf::from("runc"));
        let runc = Runc {
            binary,
            state_dir,
            in_userns: crate::userns::in_user_namespace(),
        };
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

    /// The runtime binary.
    pub(crate) fn binary(&self) -> &Path {
        &self.binary
    }

    pub(crate) fn error(&self, message: String) -> Error {
        Error::Runtime {
            runtime: self.binary.display().to_string(),
            message,
        }
    }

    /// Prepares the root and the bundle for `request`.
    pub(crate) fn prepare(&self, request: &RunRequest<'_>) -> Result<()> {
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
        let mut spec = spec::build(request, &ids, &cwd, &etc)?;
        if self.in_userns {
            let tty_gid_mapped = crate::userns::current_gid_map()
                .iter()
                .any(|m| m.inner <= 5 && 5 - m.inner < m.count);
            spec::for_user_namespace(&mut spec, own_netns, tty_gid_mapped);
        }
        let config = request.bundle.join("config.json");
        let json = serde_json::to_vec(&spec)
            .map_err(|e| Error::OciSpec(format!("serializing the OCI spec: {e}")))?;
        std::fs::write(&config, json).map_err(|e| Error::io("writing", config, e))
    }

    pub(crate) fn command(&self) -> Command {
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
        let pid_file = request.bundle.join("init.pid");
        become_subreaper().map_err(|e| self.error(format!("becoming a child subreaper: {e}")))?;
        // Who owns this container: a later rbk reaps it once we are gone
        // (Runc::reap_orphans), as a SIGKILLed rbk cannot stop it itself.
        let owner = request.bundle.join(OWNER_FILE);
        std::fs::write(
            &owner,
            own_identity().map_err(|e| Error::io("reading", "/proc/self/stat", e))?,
        )
        .map_err(|e| Error::io("writing", &owner, e))?;
        // One pipe for stdout and stderr, as `2>&1`, handed to the process
        // itself (runc's detached pass-through): lines reach the progress
        // in the order the process wrote them. Foreground `runc run` would
        // copy the two streams through two goroutines of its own and mix
        // them up.
        // Started before the container, so no instant of it runs unwatched.
        let _watchdog = Watchdog::spawn(self, request.id)?;
        let (reader, writer) =
            io::pipe().map_err(|e| Error::io("creating a pipe for", &self.binary, e))?;
        let writer_too = writer
            .try_clone()
            .map_err(|e| Error::io("creating a pipe for", &self.binary, e))?;
        let mut runc = self
            .command()
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--detach", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(request.bundle)
            .arg(request.id)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_too)
            .spawn()
            .map_err(|e| Error::io("running", &self.binary, e))?;
        // The command (and its copies of the write end) is gone by now, so
        // the reader sees the end once runc and the container have exited.
        let streamed = stream(reader, output);
        let started = runc
            .wait()
            .map_err(|e| Error::io("waiting for", &self.binary, e))?;
        if !started.success() {
            let message =
                runtime_errors(&log).unwrap_or_else(|| format!("`run` failed: {started}"));
            return Err(self.error(format!("container {}: {message}", request.id)));
        }
        // runc has exited, so the container's init is this process's child
        // now (we are its subreaper): its status is the step's.
        let code = wait_init(&pid_file)
            .map_err(|e| Error::io("waiting for the container of", &self.binary, e))?;
        streamed.map_err(|e| Error::io("reading output of", &self.binary, e))?;
        Ok(code)
    }

    /// The host pid of container `id`'s init while it runs (`runc state`);
    /// `None` when runc does not know it or it is not running.
    pub(crate) fn running_pid(&self, id: &str) -> Result<Option<i32>> {
        let out = self
            .command()
            .args(["state", id])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running", &self.binary, e))?;
        if !out.status.success() {
            return Ok(None);
        }
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        match (state["status"].as_str(), state["pid"].as_i64()) {
            (Some("running" | "paused"), Some(pid)) if pid > 0 => Ok(i32::try_from(pid).ok()),
            _ => Ok(None),
        }
    }

    pub(crate) fn delete(&self, id: &str) -> Result<()> {
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

/// Kills and deletes a RUN container if rbk dies while it runs (issue 20,
/// defect 4): a `sh` that waits on a pipe whose only write end is this
/// process's. When the step ends normally, dropping the watchdog writes
/// `done` and the shell exits doing nothing; when rbk is killed, the kernel
/// closes the write end, `read` sees the end of the pipe and the shell
/// runs `runc delete --force`, which SIGKILLs every process of the
/// container and removes it. A container left anyway (the shell killed
/// too, a container in the middle of starting) is reaped by the next
/// build, prune or `system verify` ([`Runc::reap_orphans`]).
///
/// (`PR_SET_PDEATHSIG` on runc cannot do this: `runc run --detach`
/// exits once the container runs, and setting it made every RUN hang.)
struct Watchdog {
    done: Option<std::process::ChildStdin>,
    child: std::process::Child,
}

impl Watchdog {
    fn spawn(runc: &Runc, id: &str) -> Result<Watchdog> {
        let script =
            "read -r word; [ \"$word\" = done ] || exec \"$0\" --root \"$1\" delete --force \"$2\"";
        let mut child = Command::new("/bin/sh")
            .args(["-c", script])
            .arg(&runc.binary)
            .arg(&runc.state_dir)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("starting the watchdog of container", id, e))?;
        let done = child.stdin.take();
        Ok(Watchdog { done, child })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        use std::io::Write;
        if let Some(mut done) = self.done.take() {
            let _ = done.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

/// The file in a RUN container's bundle naming the rbk process that runs
/// it: `PID START_TIME` (start time in clock ticks since boot, field 22 of
/// /proc/PID/stat, so a recycled pid does not pass for the owner).
const OWNER_FILE: &str = "rbk-owner";

/// `PID START_TIME` of this process.
fn own_identity() -> io::Result<String> {
    let pid = std::process::id();
    let start = start_time(pid)?.ok_or_else(|| io::Error::other("no start time"))?;
    Ok(format!("{pid} {start}"))
}

/// Field 22 of /proc/PID/stat; `None` when the process is gone.
fn start_time(pid: u32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    Ok(rest.split_whitespace().nth(19).and_then(|f| f.parse().ok()))
}

/// Whether the owner recorded as `PID START_TIME` still runs.
fn owner_alive(record: &str) -> bool {
    let mut fields = record.split_whitespace();
    let (Some(pid), Some(start)) = (fields.next(), fields.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    matches!(start_time(pid), Ok(Some(s)) if s == start)
}

impl Runc {
    /// Whether runc keeps any container under `state_dir` (one directory
    /// per container, removed by `runc delete`). When it keeps none there
    /// is nothing to reap, and no runc process needs to start: every build
    /// reaps first, so a no-op build would otherwise run `runc list`.
    pub fn has_containers(state_dir: &Path) -> bool {
        std::fs::read_dir(state_dir).is_ok_and(|mut entries| {
            entries.any(|entry| entry.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir())))
        })
    }

    /// Stops and deletes the RUN containers under this runtime's state
    /// directory whose rbk process is gone (a SIGKILLed build leaves its
    /// container running: runc's detached init is not our child any more
    /// once we die). Containers without an owner record are left alone
    /// unless their bundle is gone too. Returns how many were reaped.
    /// Call it before touching the store's work directories.
    pub fn reap_orphans(&self) -> Result<usize> {
        if !Runc::has_containers(&self.state_dir) {
            return Ok(0);
        }
        let out = self
            .command()
            .args(["list", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running", &self.binary, e))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(self.error(format!("list: {}", stderr.trim())));
        }
        let listed: Option<Vec<serde_json::Value>> =
            serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut reaped = 0;
        for container in listed.unwrap_or_default() {
            let (Some(id), Some(bundle)) = (container["id"].as_str(), container["bundle"].as_str())
            else {
                continue;
            };
            let bundle = Path::new(bundle);
            let orphan = match std::fs::read_to_string(bundle.join(OWNER_FILE)) {
                Ok(record) => !owner_alive(&record),
                Err(_) => !bundle.exists(),
            };
            if !orphan || check_id(id).is_err() {
                continue;
            }
            let _ = self
                .command()
                .args(["kill", id, "KILL"])
                .stdin(Stdio::null())
                .output();
            self.delete(id)?;
            reaped += 1;
        }
        Ok(reaped)
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

/// Hands everything the container writes to `output` as it arrives, in
/// order (reported as stdout: the two streams share the pipe).
fn stream(mut pipe: io::PipeReader, output: &mut dyn FnMut(OutputStream, &[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => output(OutputStream::Stdout, &buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Makes this process the reaper of orphaned descendants (once), so that
/// a detached container's init, left behind by runc, can be waited for.
///
/// The `OnceLock` is process-wide state on purpose: being a subreaper is a
/// property of the process (prctl), set once and never undone, not a
/// setting of a build.
pub(crate) fn become_subreaper() -> std::result::Result<(), rustix::io::Errno> {
    static DONE: std::sync::OnceLock<std::result::Result<(), rustix::io::Errno>> =
        std::sync::OnceLock::new();
    *DONE.get_or_init(|| rustix::process::set_child_subreaper(Some(rustix::process::getpid())))
}

/// Waits for the container init whose pid runc wrote to `pid_file`; its
/// exit status, or 128 + signal when it was killed.
pub(crate) fn wait_init(pid_file: &Path) -> io::Result<i32> {
    let text = std::fs::read_to_string(pid_file)?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::other(format!("bad pid {text:?} in {}", pid_file.display())))?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                return Ok(status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|s| 128 + s))
                    .unwrap_or(-1))
            }
            Ok(None) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The `error`-level messages of runc's JSON log, if any.
pub(crate) fn runtime_errors(log: &Path) -> Option<String> {
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
/// `Err` is the message of an [`Error::Runtime`] (the caller adds the
/// runtime binary), hence a plain `String`.
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
/// CVE-2024-21626 fix (docs/security.md rule 10). `Err` is the message of an
/// [`Error::Runtime`], as for [`check_id`].
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

    #[test]
    fn only_a_container_directory_counts_as_runc_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("runc");
        assert!(!Runc::has_containers(&state), "missing");
        std::fs::create_dir(&state).unwrap();
        assert!(!Runc::has_containers(&state), "empty");
        std::fs::write(state.join("stray"), "").unwrap();
        assert!(!Runc::has_containers(&state), "a file is no container");
        std::fs::create_dir(state.join("rbk-0123")).unwrap();
        assert!(Runc::has_containers(&state));
    }

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
