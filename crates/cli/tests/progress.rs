//! The progress views: the live tty view drawn in a real pseudo-terminal of
//! a fixed size (tmux) and compared with golden screen captures
//! (`tests/testdata/progress/*.txt`; `UPDATE_GOLDEN=1` rewrites them), the
//! `rawjson` stream, `BUILDKIT_PROGRESS`, colours, and the failed step's
//! whole log before the error.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;

use support::tmux::Tmux;
use support::{build, context, ok, rbk, scratch, stderr, store};

/// Runs `rbk ARGS` in a `width`×`height` terminal with `env` set, and
/// returns the whole screen history once it exited, with its exit code.
fn in_terminal(
    name: &str,
    root: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    size: (u16, u16),
) -> (String, i32, Tmux) {
    let done = root.with_file_name(format!("{name}.exit"));
    let _ = fs::remove_file(&done);
    let vars: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let script = format!(
        "env -u NO_COLOR -u BUILDKIT_COLORS -u BUILDKIT_PROGRESS TERM=xterm {vars}{} --root {} {}; echo $? > {}; sleep 600",
        env!("CARGO_BIN_EXE_rbk"),
        root.display(),
        args.join(" "),
        done.display()
    );
    let tmux = Tmux::new(name);
    tmux.start(size.0, size.1, &script);
    let deadline = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Ok(code) = fs::read_to_string(&done) {
            if let Ok(code) = code.trim().parse() {
                break code;
            }
        }
        assert!(
            Instant::now() < deadline,
            "rbk never exited:\n{}",
            tmux.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(200)); // let tmux take the last bytes
    (tmux.history(false), code, tmux)
}

/// The screen with what changes from run to run masked: times (`2.1s`,
/// `0.052`) become `X.X`, digests `sha256:<digest>`; trailing blanks go.
fn masked(screen: &str) -> String {
    let mut out = Vec::new();
    for line in screen.lines() {
        let mut s = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
            let digits = |from: usize| {
                (from..chars.len())
                    .take_while(|j| chars[*j].is_ascii_digit())
                    .count()
            };
            let int = digits(i);
            if boundary && int > 0 && chars.get(i + int) == Some(&'.') {
                let frac = digits(i + int + 1);
                let end = i + int + 1 + frac;
                let after = chars.get(end).copied();
                if frac > 0 && matches!(after, None | Some('s') | Some(' ')) {
                    s.push_str(&"X".repeat(int));
                    s.push('.');
                    s.push_str(&"X".repeat(frac));
                    i = end;
                    continue;
                }
            }
            s.push(chars[i]);
            i += 1;
        }
        if let Some(pos) = s.find("sha256:") {
            let end = s[pos + 7..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .map_or(s.len(), |e| pos + 7 + e);
            s.replace_range(pos..end, "sha256:<digest>");
        }
        out.push(s.trim_end().to_string());
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("\n") + "\n"
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/progress")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "screen differs from {}:\n{actual}",
        path.display()
    );
}

const TWO_STAGES: &str = "FROM rbk-busybox AS base
RUN echo one && echo two
COPY app.txt /app.txt
FROM base
RUN cat /app.txt
";

#[test]
fn tty_golden_cached_rebuild() {
    let dir = scratch("progress-cached");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", TWO_STAGES), ("app.txt", "hello\n")]);
    let first = build(&root, &ctx, &["-t", "app:1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let ctx = ctx.to_str().unwrap();
    let (screen, code, _t) = in_terminal(
        "cached",
        &root,
        &["build", "-t", "app:1", ctx],
        &[],
        (100, 30),
    );
    assert_eq!(code, 0, "{screen}");
    golden("cached_rebuild", &context_before_its_copy(&masked(&screen)));
}

/// `screen` with the build context's two lines moved to just before the
/// COPY that reads it. Loading the context is a root that a worker reports
/// while others report the base's metadata and the RUN on it, in whatever
/// order the machine schedules them; only "before its COPY" is certain.
fn context_before_its_copy(screen: &str) -> String {
    let mut lines: Vec<&str> = screen.split('\n').collect();
    let Some(context) = lines
        .iter()
        .position(|l| l.contains("[internal] load build context"))
    else {
        return screen.to_string();
    };
    let block: Vec<&str> = lines.drain(context..context + 2).collect();
    let copy = lines
        .iter()
        .position(|l| l.contains("] COPY "))
        .unwrap_or(lines.len());
    lines.splice(copy..copy, block);
    lines.join("\n")
}

#[test]
fn tty_golden_two_parallel_stages() {
    let dir = scratch("progress-parallel");
    let root = store(&dir);
    // Each RUN waits for the other to have started (a shared cache mount):
    // the build only ends if the two stages run at once.
    let meet = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=meet,target=/meet touch /meet/{me}; i=0; \
             while [ ! -f /meet/{other} ]; do i=$((i+1)); [ $i -gt 300 ] && exit 9; sleep 0.1; done; \
             echo {me} met {other}"
        )
    };
    let dockerfile = format!(
        "FROM rbk-busybox AS left\n{}\nFROM rbk-busybox AS right\n{}\nFROM rbk-busybox\n\
         COPY --from=left /etc/passwd /left\nCOPY --from=right /etc/passwd /right\n",
        meet("left", "right"),
        meet("right", "left")
    );
    let ctx = context(&dir, &[("Dockerfile", &dockerfile)]);
    let ctx = ctx.to_str().unwrap();
    let (screen, code, _t) = in_terminal(
        "parallel",
        &root,
        &["build", "--progress=tty", "-t", "par:1", ctx],
        &[],
        (120, 30),
    );
    assert_eq!(code, 0, "{screen}");
    // Which of the two started first is up to the scheduler: their lines
    // are compared in name order.
    let mut lines: Vec<String> = masked(&screen).lines().map(String::from).collect();
    let racing: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].contains("[left 2/2]") || lines[*i].contains("[right 2/2]"))
        .collect();
    assert_eq!(racing.len(), 2, "{screen}");
    let mut sorted: Vec<String> = racing.iter().map(|i| lines[*i].clone()).collect();
    sorted.sort();
    for (i, line) in racing.iter().zip(sorted) {
        lines[*i] = line;
    }
    golden("two_parallel_stages", &(lines.join("\n") + "\n"));
}

const FAILING: &str = "FROM rbk-busybox
RUN echo ready
RUN for i in $(seq 1 15); do echo output line $i; done; exit 3
RUN echo never
";

#[test]
fn tty_golden_failing_run_shows_the_whole_log_then_the_error() {
    let dir = scratch("progress-failing");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", FAILING)]);
    let ctx = ctx.to_str().unwrap();
    let (screen, code, _t) = in_terminal("failing", &root, &["build", ctx], &[], (100, 50));
    assert_eq!(code, 1, "{screen}");
    golden("failing_run", &masked(&screen));
}

#[test]
fn plain_failing_run_shows_the_whole_log_then_the_snippet() {
    let dir = scratch("progress-failing-plain");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", FAILING)]);
    let out = build(&root, &ctx, &[]);
    assert!(!out.status.success());
    let log = stderr(&out);
    let block = log
        .find("------\n > [stage-0 3/4] RUN for i in")
        .expect(&log);
    let tail = &log[block..];
    for n in 1..=15 {
        assert!(tail.contains(&format!(" output line {n}\n")), "{log}");
    }
    let snippet = tail.find("Dockerfile:3\n").expect(&log);
    let error = tail.find("ERROR: ").expect(&log);
    assert!(
        tail.find(" output line 15").unwrap() < snippet && snippet < error,
        "{log}"
    );
}

#[test]
fn tty_golden_narrow_window_cuts_lines_and_follows_resizes() {
    let dir = scratch("progress-narrow");
    let root = store(&dir);
    let dockerfile = "FROM rbk-busybox
RUN echo this command line is much longer than the narrow window is wide && sleep 1
";
    let ctx = context(&dir, &[("Dockerfile", dockerfile)]);
    let ctx = ctx.to_str().unwrap();
    let (screen, code, _t) = in_terminal("narrow", &root, &["build", ctx], &[], (50, 20));
    assert_eq!(code, 0, "{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 50), "{screen}");
    golden("narrow_window", &masked(&screen));

    // A window made narrower while a step runs: the next frames are cut to
    // the new width.
    let dockerfile = "FROM rbk-busybox
RUN echo a long running step whose command is wider than sixty columns && sleep 4
";
    let ctx2 = dir.join("ctx2");
    fs::create_dir_all(&ctx2).unwrap();
    fs::write(ctx2.join("Dockerfile"), dockerfile).unwrap();
    let done = dir.join("resize.exit");
    let tmux = Tmux::new("resize");
    tmux.start(
        120,
        20,
        &format!(
            "{} --root {} build {}; echo $? > {}; sleep 600",
            env!("CARGO_BIN_EXE_rbk"),
            root.display(),
            ctx2.display(),
            done.display()
        ),
    );
    tmux.wait_for("=> # a long running step");
    let wide = tmux.pane();
    assert!(
        wide.lines().any(|l| l.contains("sixty columns && sleep 4")),
        "{wide}"
    );
    tmux.cmd(&["resize-window", "-t", "t", "-x", "60", "-y", "20"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done.exists() {
        assert!(Instant::now() < deadline, "{}", tmux.pane());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let narrow = tmux.pane();
    let run = narrow
        .lines()
        .rfind(|l| l.contains("[stage-0 2/2] RUN"))
        .unwrap_or_else(|| panic!("{narrow}"));
    // The frame's lines take width-1 columns (BuildKit's layout); what the
    // terminal reflowed from the wider frames may remain in the last one.
    let drawn: String = run.chars().take(59).collect();
    assert_eq!(
        masked(&drawn),
        " => [stage-0 2/2] RUN echo a long running step whose   X.Xs\n",
        "{narrow}"
    );
}

#[test]
fn tty_colours_follow_no_color_and_buildkit_colors() {
    let dir = scratch("progress-colours");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", "FROM rbk-busybox\nRUN echo hi\n")]);
    let ctx = ctx.to_str().unwrap();
    let run = |name: &str, env: &[(&str, &str)]| {
        let (_, code, tmux) =
            in_terminal(name, &root, &["build", "--no-cache", ctx], env, (80, 20));
        assert_eq!(code, 0);
        tmux.history(true)
    };
    // The colour the finished RUN line is drawn in: the last colour set
    // before it (tmux only writes where the colour changes).
    let colour = |screen: &str| {
        let before = &screen[..screen.find("RUN echo hi").expect(screen)];
        let start = before.rfind("\x1b[").expect(screen);
        before[start..=start + before[start..].find('m').unwrap()].to_string()
    };
    // Finished steps are blue by default, then what BUILDKIT_COLORS says;
    // NO_COLOR turns colours off.
    assert_eq!(colour(&run("blue", &[])), "\x1b[34m");
    assert_eq!(
        colour(&run("green", &[("BUILDKIT_COLORS", "run=green")])),
        "\x1b[32m"
    );
    let plain = run(
        "nocolor",
        &[("NO_COLOR", "1"), ("BUILDKIT_COLORS", "run=green")],
    );
    assert!(
        !plain.contains("\x1b[32m") && !plain.contains("\x1b[34m"),
        "{plain:?}"
    );
}

/// Nanoseconds since the epoch, now.
fn epoch_now() -> u128 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_nanos()
}

/// Nanoseconds since the epoch of an RFC 3339 time as rbk writes it.
fn epoch_of(text: &str) -> u128 {
    let secs = rbk_store::image::parse_rfc3339(text).unwrap() as u128;
    let fraction = text
        .split_once('.')
        .map_or("", |(_, f)| f.trim_end_matches('Z'));
    let nanos: u128 = format!("{fraction:0<9}")[..9].parse().unwrap();
    secs * 1_000_000_000 + nanos
}

#[test]
fn rawjson_is_solve_status_lines_covering_the_plan() {
    let dir = scratch("progress-rawjson");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", TWO_STAGES), ("app.txt", "hello\n")]);
    let spawned = epoch_now();
    let out = rbk(
        &root,
        &[
            "build",
            "--progress=rawjson",
            "-t",
            "app:1",
            ctx.to_str().unwrap(),
        ],
    );
    let exited = epoch_now();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names = std::collections::BTreeMap::new();
    let mut logs = Vec::new();
    for line in stderr(&out).lines() {
        let status: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        for v in status["vertexes"].as_array().into_iter().flatten() {
            let digest = v["digest"].as_str().unwrap().to_string();
            assert!(digest.starts_with("sha256:") && digest.len() == 71, "{v}");
            if v["completed"].is_string() {
                assert!(v["started"].is_string(), "{v}");
            }
            // Times are the process's own: none before it started or
            // after it ended (they were late by the planning time).
            for time in ["started", "completed"] {
                if let Some(t) = v[time].as_str() {
                    let t = epoch_of(t);
                    assert!(spawned <= t && t <= exited, "{spawned} {t} {exited}: {v}");
                }
            }
            names.insert(digest, v["name"].as_str().unwrap().to_string());
        }
        for l in status["logs"].as_array().into_iter().flatten() {
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD
                .decode(l["data"].as_str().unwrap())
                .unwrap();
            assert_eq!(l["stream"], 1, "{l}");
            logs.extend(data);
        }
    }
    assert_eq!(String::from_utf8_lossy(&logs), "one\ntwo\nhello\n");
    // The plan's vertices (by short digest) plus the internal ones.
    let plan = support::stdout(&ok(&root, &["debug", "plan", ctx.to_str().unwrap()]));
    let planned: std::collections::BTreeSet<String> = plan
        .lines()
        .filter(|l| l.starts_with('v'))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let internal = [
        "[internal] load build definition from Dockerfile",
        "[internal] load .dockerignore",
        "exporting to image",
    ];
    let seen: std::collections::BTreeSet<String> = names
        .iter()
        .filter(|(_, n)| !internal.contains(&n.as_str()))
        .map(|(d, _)| d[7..19].to_string())
        .collect();
    assert_eq!(seen, planned, "{names:?}");
    for name in internal {
        assert!(names.values().any(|n| n == name), "{name}: {names:?}");
    }
}

#[test]
fn buildkit_progress_sets_the_default_mode() {
    let dir = scratch("progress-env");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", "FROM rbk-busybox\nRUN echo hi\n")]);
    let ctx = ctx.to_str().unwrap();
    let with = |value: &str, args: &[&str]| {
        let mut cmd = support::command(&root, args);
        cmd.env("BUILDKIT_PROGRESS", value);
        cmd.output().unwrap()
    };
    let json = with("rawjson", &["build", ctx]);
    assert!(json.status.success(), "{}", stderr(&json));
    assert!(
        stderr(&json).lines().all(|l| l.starts_with('{')),
        "{}",
        stderr(&json)
    );
    // The flag wins over the variable.
    let plain = with("rawjson", &["build", "--progress=plain", ctx]);
    assert!(stderr(&plain).contains("#1 [internal] load build definition"));
    // Quiet as buildx is quiet: no progress, and no "writing image" or
    // "naming to" lines either (only `-q` prints the id, on stdout).
    for quiet in ["quiet", "none"] {
        let out = with(quiet, &["build", "-t", "quiet:1", ctx]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    }
    let id = with("quiet", &["build", "-q", "-t", "quiet:1", ctx]);
    assert_eq!(stderr(&id), "");
    assert!(
        String::from_utf8_lossy(&id.stdout).starts_with("sha256:"),
        "{}",
        String::from_utf8_lossy(&id.stdout)
    );
    let bad = with("fancy", &["build", ctx]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("BUILDKIT_PROGRESS=\"fancy\""),
        "{}",
        stderr(&bad)
    );
    // tty without a terminal is refused, as buildx refuses it.
    let tty = rbk(&root, &["build", "--progress=tty", ctx]);
    assert!(!tty.status.success());
    assert!(stderr(&tty).contains("terminal"), "{}", stderr(&tty));
}

#[test]
fn load_build_context_shows_the_bytes_of_the_visible_files() {
    let dir = scratch("progress-context-bytes");
    let root = store(&dir);
    let dockerfile = "FROM rbk-busybox\nCOPY data /data\n";
    // Only what the Dockerfile copies is read, as BuildKit transfers only
    // the paths COPY names: not the Dockerfile, nor `.dockerignore`.
    let data = "x".repeat(3000);
    let big = "y".repeat(50_000);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", dockerfile),
            (".dockerignore", "ignored\n"),
            ("data", &data),
            ("ignored", &big),
        ],
    );
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let n = err
        .lines()
        .find_map(|l| l.strip_suffix(" [internal] load build context"))
        .unwrap_or_else(|| panic!("no load build context vertex:\n{err}"));
    assert!(
        err.contains(&format!("{n} transferring context: 3.00kB done")),
        "{err}"
    );
}

#[test]
fn tty_explain_follows_the_last_frame() {
    let dir = scratch("progress-explain");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", TWO_STAGES), ("app.txt", "hello\n")]);
    let first = build(&root, &ctx, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    fs::write(ctx.join("app.txt"), "changed\n").unwrap();
    let ctx = ctx.to_str().unwrap();
    let (screen, code, _t) = in_terminal(
        "explain",
        &root,
        &["build", "--explain", ctx],
        &[],
        (120, 40),
    );
    assert_eq!(code, 0, "{screen}");
    let (view, why) = screen
        .split_once("Why steps missed the cache (--explain):")
        .unwrap_or_else(|| panic!("no --explain block:\n{screen}"));
    assert!(view.contains("FINISHED"), "{screen}");
    assert!(
        why.contains(
            "[base 3/3] COPY app.txt /app.txt\n    context file app.txt changed (content)"
        ),
        "{screen}"
    );
    assert!(
        why.contains("[stage-1 2/2] RUN cat /app.txt\n    parent step re-ran (#"),
        "{screen}"
    );
}
