//! Issue 13 past the foreground: detached containers with their per-container
//! monitor (`run -d`, `logs -f`, `stop`, `kill`, `start`, `wait`, `exec`,
//! `rm -f`, `inspect`, `ps --format`), stale state after a SIGKILLed monitor
//! or `rbk run`, two runs racing for one name, and `run -it` under a real
//! pseudo-terminal (tmux).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::tmux::Tmux;
use support::{context, mounts_under, ok, rbk, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    support::container_scratch(&format!("containers-life-{name}"))
}

/// A store with `base:1`: the busybox base with an `/etc/motd`.
fn base(dir: &Path) -> PathBuf {
    let root = support::store(dir);
    let ctx = context(
        dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo welcome > /etc/motd\nCMD [\"sh\"]\n",
        )],
    );
    ok(&root, &support::build_args(&ctx, &["-t", "base:1"]));
    root
}

/// The record of container `name` as the store keeps it.
fn record(root: &Path, name: &str) -> serde_json::Value {
    for entry in std::fs::read_dir(root.join("containers")).unwrap() {
        let path = entry.unwrap().path().join("container.json");
        if let Ok(text) = std::fs::read(&path) {
            let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
            if v["name"] == name {
                return v;
            }
        }
    }
    panic!("no container {name}");
}

fn inspect(root: &Path, name: &str, template: &str) -> String {
    stdout(&ok(root, &["inspect", "--format", template, name]))
        .trim()
        .to_string()
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit(')').next().unwrap().trim_start().starts_with('Z'))
}

fn kill9(pid: i64) {
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn detached_container_logs_stop_start_exec_and_remove() {
    let dir = scratch("detached");
    let root = base(&dir);
    let loop_script =
        "i=0; while true; do echo tick $i; echo err $i >&2; i=$((i+1)); sleep 1; done";
    let id = stdout(&ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            "base:1",
            "sh",
            "-c",
            loop_script,
        ],
    ));
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    // `logs -f` follows the output as it comes …
    let mut follower = support::command(&root, &["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "tick 0");
    assert_eq!(lines.next().unwrap().unwrap(), "tick 1");
    let ps = stdout(&ok(
        &root,
        &["ps", "--format", "{{.Names}} {{.State}} {{.Status}}"],
    ));
    assert!(ps.starts_with("ticker running Up "), "{ps}");
    assert_eq!(
        inspect(
            &root,
            "ticker",
            "{{.State.Status}} {{.State.Running}} {{.Name}}"
        ),
        "running true /ticker"
    );
    // exec runs beside it, with -e, -w and -u.
    let out = ok(
        &root,
        &[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "0",
            "ticker",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u) $(cat /etc/motd)",
        ],
    );
    assert_eq!(stdout(&out), "1 /tmp 0 welcome\n");
    let code = rbk(&root, &["exec", "ticker", "sh", "-c", "exit 4"]);
    assert_eq!(code.status.code(), Some(4));
    // A running container is not removed without -f, nor started twice.
    let refused = rbk(&root, &["rm", "ticker"]);
    assert!(
        stderr(&refused).contains("container is running"),
        "{}",
        stderr(&refused)
    );
    // … and ends when `stop` does: the shell (pid 1) ignores SIGTERM, so
    // SIGKILL after the timeout: 137.
    let started = Instant::now();
    ok(&root, &["stop", "-t", "1", "ticker"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(follower.wait().unwrap().success());
    assert!(rest.iter().all(|l| l.starts_with("tick ")), "{rest:?}");
    let ps = stdout(&ok(&root, &["ps", "-a"]));
    assert!(ps.lines().nth(1).unwrap().contains("Exited (137)"), "{ps}");
    assert_eq!(stdout(&ok(&root, &["ps", "-q"])), "");
    assert_eq!(stdout(&ok(&root, &["wait", "ticker"])), "137\n");
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    // stderr went to the log as its own stream; --tail (counting both
    // streams, as docker) and -t.
    let logs = ok(&root, &["logs", "--tail", "2", "-t", "ticker"]);
    let last = stdout(&logs);
    assert!(
        last.lines().count() == 1 && last.contains("Z tick "),
        "{last}"
    );
    assert!(stderr(&logs).contains("Z err "), "{}", stderr(&logs));
    let killed = rbk(&root, &["kill", "ticker"]);
    assert!(
        stderr(&killed).contains("is not running"),
        "{}",
        stderr(&killed)
    );
    let exec = rbk(&root, &["exec", "ticker", "true"]);
    assert!(
        stderr(&exec).contains("is not running"),
        "{}",
        stderr(&exec)
    );
    // start again (same upper dir), kill -s, start -a waits with its code.
    ok(&root, &["start", "ticker"]);
    ok(&root, &["kill", "-s", "TERM", "ticker"]); // ignored by pid 1
    assert!(stdout(&ok(&root, &["ps", "-q"])).starts_with(&id[..12]));
    ok(&root, &["rm", "-f", "ticker"]);
    assert_eq!(stdout(&ok(&root, &["ps", "-a", "-q"])), "");
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    ok(
        &root,
        &[
            "run",
            "--name",
            "once",
            "-d",
            "base:1",
            "sh",
            "-c",
            "echo done; touch /made; exit 6",
        ],
    );
    let attached = rbk(&root, &["wait", "once"]);
    assert_eq!(stdout(&attached), "6\n");
    let again = rbk(&root, &["start", "-a", "once"]);
    assert_eq!(again.status.code(), Some(6));
    assert_eq!(stdout(&again), "done\n");
    assert_eq!(stdout(&ok(&root, &["diff", "once"])), "A /made\n");
    // --rm with -d: gone once it exits.
    ok(
        &root,
        &["run", "-d", "--rm", "--name", "gone", "base:1", "true"],
    );
    // (`wait` may come too late to find it, as with docker.)
    let deadline = Instant::now() + Duration::from_secs(20);
    while stdout(&ok(&root, &["ps", "-a"])).contains("gone") {
        assert!(Instant::now() < deadline, "--rm did not remove it");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stop_sends_the_stop_signal_first() {
    let dir = scratch("stopsignal");
    let root = base(&dir);
    let script = "trap 'echo bye; exit 7' USR1; echo ready; while true; do sleep 1; done";
    let ctx = context(&dir, &[("Dockerfile", "FROM base:1\nSTOPSIGNAL SIGUSR1\n")]);
    ok(&root, &support::build_args(&ctx, &["-t", "stops:1"]));
    ok(
        &root,
        &["run", "-d", "--name", "s", "stops:1", "sh", "-c", script],
    );
    // Stop only once the trap is set: a loaded machine may start the
    // shell late, and SIGUSR1 before the trap would just kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stdout(&ok(&root, &["logs", "s"])) != "ready\n" {
        assert!(Instant::now() < deadline, "the shell never set its trap");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(&root, &["stop", "-t", "30", "s"]);
    assert_eq!(
        inspect(&root, "s", "{{.State.ExitCode}} {{.Config.StopSignal}}"),
        "7 SIGUSR1"
    );
    assert_eq!(stdout(&ok(&root, &["logs", "s"])), "ready\nbye\n");
}

#[test]
fn killed_owners_leave_no_mounts_and_show_an_unknown_exit() {
    let dir = scratch("stale");
    let root = base(&dir);
    // A detached container whose monitor is SIGKILLed.
    ok(
        &root,
        &["run", "-d", "--name", "orphan", "base:1", "sleep", "300"],
    );
    let rec = record(&root, "orphan");
    let (monitor, init) = (
        rec["monitor"]["pid"].as_i64().unwrap(),
        rec["pid"].as_i64().unwrap(),
    );
    assert!(alive(init) && !mounts_under(&root).is_empty());
    kill9(monitor);
    // A foreground run SIGKILLed.
    let mut fg = support::command(&root, &["run", "--name", "fg", "base:1", "sleep", "300"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while record_state(&root, "fg").is_none() {
        assert!(
            Instant::now() < deadline,
            "the foreground run never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    fg.kill().unwrap();
    fg.wait().unwrap();
    // The next command repairs both.
    let ps = stdout(&ok(
        &root,
        &["ps", "-a", "--format", "{{.Names}} {{.Status}}"],
    ));
    let rows: Vec<&str> = ps.lines().collect();
    assert!(
        rows.iter().any(|r| r.starts_with("orphan Exited (255)")),
        "{ps}"
    );
    assert!(
        rows.iter().any(|r| r.starts_with("fg Exited (255)")),
        "{ps}"
    );
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
    assert!(!alive(init), "the container's process outlived its repair");
    let runc = Command::new("runc")
        .arg("--root")
        .arg(root.join("runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&runc.stdout), "");
    assert!(inspect(&root, "orphan", "{{.State.Error}}").contains("exit status is unknown"));
    // It starts again from its own upper dir.
    ok(&root, &["start", "orphan"]);
    ok(&root, &["rm", "-f", "orphan", "fg"]);
    assert!(mounts_under(&root).is_empty());
}

/// `Some(started)` once the record of `name` says it started.
fn record_state(root: &Path, name: &str) -> Option<String> {
    let dir = root.join("containers");
    for entry in std::fs::read_dir(dir).ok()? {
        let text = std::fs::read(entry.ok()?.path().join("container.json")).ok();
        let Some(text) = text else { continue };
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        if v["name"] == name {
            return v["started"].as_str().map(str::to_string);
        }
    }
    None
}

#[test]
fn two_runs_with_one_name_one_wins() {
    let dir = scratch("race");
    let root = base(&dir);
    let spawn = || {
        support::command(&root, &["run", "--name", "same", "base:1", "true"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "{} / {}", stderr(&a), stderr(&b));
    let loser = if a.status.success() { &b } else { &a };
    assert!(
        stderr(loser).contains("The container name \"/same\" is already in use"),
        "{}",
        stderr(loser)
    );
    assert_eq!(stdout(&ok(&root, &["ps", "-a", "-q"])).lines().count(), 1);
}

#[test]
fn run_it_gives_a_terminal_that_resizes_and_ends_with_ctrl_d() {
    let dir = scratch("tty");
    let root = base(&dir);
    let status = dir.join("exit");
    let tmux = Tmux::new("tty");
    let script = format!(
        "{} --root {} run -it --rm base:1 sh; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_rbk"),
        root.display(),
        status.display()
    );
    tmux.start(80, 24, &script);
    tmux.wait_for("/ #"); // capture-pane drops trailing blanks
    tmux.cmd(&["send-keys", "-t", "t", "echo $((6*7)); tty", "Enter"]);
    // `tty` answers after `echo`: wait for the last of the two lines.
    let pane = tmux.wait_for("/dev/pts/");
    assert!(pane.contains("42"), "{pane}");
    tmux.cmd(&["send-keys", "-t", "t", "stty size", "Enter"]);
    tmux.wait_for("24 80");
    tmux.cmd(&["resize-window", "-t", "t", "-x", "100", "-y", "30"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.cmd(&["send-keys", "-t", "t", "stty size", "Enter"]);
    tmux.wait_for("30 100");
    tmux.cmd(&["send-keys", "-t", "t", "C-d"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !status.exists() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-D did not end the shell:\n{}",
            tmux.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&status).unwrap().trim(), "0");
    // --rm removed it.
    assert_eq!(stdout(&ok(&root, &["ps", "-a", "-q"])), "");
    assert!(mounts_under(&root).is_empty());
}

#[test]
fn interactive_stdin_and_signals_reach_the_process() {
    let dir = scratch("stdin");
    let root = base(&dir);
    let mut child = support::command(
        &root,
        &[
            "run",
            "-i",
            "--rm",
            "base:1",
            "sh",
            "-c",
            "read x; echo got $x",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
    // Without -i the process reads end-of-file at once.
    let out = ok(
        &root,
        &["run", "--rm", "base:1", "sh", "-c", "cat; echo eof"],
    );
    assert_eq!(stdout(&out), "eof\n");
    // SIGTERM to rbk reaches the process (its trap's code comes back).
    let script = "trap 'echo term; exit 9' TERM; echo ready; while true; do sleep 1; done";
    let mut child = support::command(
        &root,
        &["run", "--name", "sig", "base:1", "sh", "-c", script],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(lines.next().unwrap().unwrap(), "term");
    assert_eq!(child.wait().unwrap().code(), Some(9));
    assert_eq!(inspect(&root, "sig", "{{.State.ExitCode}}"), "9");
    let missing = rbk(&root, &["run", "--rm", "base:1", "nosuchcommand"]);
    assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));
}

/// `runc state`'s status of container `id` in the store at `root`.
fn runc_status(root: &Path, id: &str) -> String {
    let out = Command::new("runc")
        .arg("--root")
        .arg(root.join("runc"))
        .args(["state", id])
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    state["status"].as_str().unwrap().to_string()
}

#[test]
fn running_commit_container_prune_and_disk_usage() {
    let dir = scratch("commit-running");
    let root = base(&dir);
    let script = "i=0; while true; do echo $i > /count; i=$((i+1)); sleep 0.2; done";
    let id = stdout(&ok(
        &root,
        &["run", "-d", "--name", "live", "base:1", "sh", "-c", script],
    ));
    let id = id.trim();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rbk(&root, &["diff", "live"]).stdout.is_empty() {
        assert!(Instant::now() < deadline, "the loop never wrote");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Paused while packed (by default), running again afterwards.
    let image = stdout(&ok(&root, &["commit", "live"]));
    assert_eq!(runc_status(&root, id), "running");
    let count = stdout(&ok(&root, &["run", "--rm", image.trim(), "cat", "/count"]));
    assert!(count.trim().parse::<u32>().is_ok(), "{count}");
    ok(&root, &["commit", "--pause=false", "live", "snap:2"]);
    assert_eq!(runc_status(&root, id), "running");
    // An untagged image a container uses survives prune; docker's df rows.
    ok(&root, &["run", "--name", "user", image.trim(), "true"]);
    ok(&root, &["prune", "-f"]);
    ok(&root, &["inspect", "--type", "image", image.trim()]);
    let df = stdout(&ok(
        &root,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}}",
        ],
    ));
    assert!(df.contains("Containers 2 1\n"), "{df}");
    assert!(df.contains("Images 4 2\n"), "{df}");
    // container prune removes the stopped one only.
    let pruned = stdout(&ok(&root, &["container", "prune", "-f"]));
    assert!(pruned.starts_with("Deleted Containers:\n"), "{pruned}");
    assert_eq!(pruned.lines().count(), 4, "{pruned}");
    assert_eq!(
        stdout(&ok(&root, &["ps", "-a", "--format", "{{.Names}}"])),
        "live\n"
    );
    ok(&root, &["rm", "-f", "live"]);
}

#[test]
fn detached_with_a_terminal_or_stdin_keeps_its_shell_and_exec_d() {
    let dir = scratch("dit");
    let root = base(&dir);
    ok(
        &root,
        &[
            "run",
            "-dit",
            "--name",
            "t",
            "base:1",
            "sh",
            "-c",
            "echo hello; exec sh",
        ],
    );
    ok(&root, &["run", "-di", "--name", "i", "base:1", "sh"]);
    // Both shells wait for input instead of exiting at once.
    std::thread::sleep(Duration::from_millis(500));
    let running = stdout(&ok(&root, &["ps", "--format", "{{.Names}}"]));
    assert!(
        running.lines().any(|l| l == "t") && running.lines().any(|l| l == "i"),
        "{running}"
    );
    let tty = stdout(&ok(&root, &["exec", "t", "readlink", "/proc/1/fd/0"]));
    assert!(tty.starts_with("/dev/pts/"), "{tty}");
    let pipe = stdout(&ok(&root, &["exec", "i", "readlink", "/proc/1/fd/0"]));
    assert!(pipe.starts_with("pipe:"), "{pipe}");
    assert!(stdout(&ok(&root, &["logs", "t"])).contains("hello"));
    // exec -d returns at once; its process goes on.
    ok(
        &root,
        &[
            "exec",
            "-d",
            "t",
            "sh",
            "-c",
            "sleep 0.3; echo done > /tmp/marker",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rbk(&root, &["exec", "t", "cat", "/tmp/marker"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "exec -d never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = stderr(&rbk(&root, &["exec", "-d", "-t", "t", "sh"]));
    assert!(e.contains("does not support -t"), "{e}");
    ok(&root, &["rm", "-f", "t", "i"]);
    assert!(mounts_under(&root).is_empty(), "{:?}", mounts_under(&root));
}

#[test]
fn exec_it_gives_a_terminal_in_a_running_container() {
    let dir = scratch("exec-tty");
    let root = base(&dir);
    ok(&root, &["run", "-d", "-i", "--name", "s", "base:1", "sh"]);
    let status = dir.join("exit");
    let tmux = Tmux::new("exec-tty");
    let script = format!(
        "{} --root {} exec -it s sh; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_rbk"),
        root.display(),
        status.display()
    );
    tmux.start(90, 20, &script);
    tmux.wait_for("/ #");
    tmux.cmd(&[
        "send-keys",
        "-t",
        "t",
        "echo $((6*7)); tty; stty size",
        "Enter",
    ]);
    let pane = tmux.wait_for("20 90");
    assert!(pane.contains("42") && pane.contains("/dev/pts/"), "{pane}");
    tmux.cmd(&["send-keys", "-t", "t", "C-d"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&status).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "Ctrl-D did not end exec:\n{}",
            tmux.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_to_string(&status).unwrap().trim(), "0");
    ok(&root, &["rm", "-f", "s"]);
    assert!(mounts_under(&root).is_empty());
}
