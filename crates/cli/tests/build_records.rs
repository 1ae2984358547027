//! What a build leaves behind for the user (issue 17): its record and step
//! logs (`rbk build ls`, `rbk logs --build`, pruned by `rbk prune`), why
//! each step missed the cache (`--explain`, for every kind of reason, also
//! in `rawjson` and the record), and the timeline picture (an HTML page
//! loaded in headless Chromium, and Chrome trace-event JSON).

use std::fs;
use std::path::{Path, PathBuf};

mod support;

use support::{build, context, ok, rbk, scratch, stderr, stdout, store};

fn records(root: &Path) -> Vec<serde_json::Value> {
    let out = ok(root, &["build", "ls", "--format", "json"]);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `--explain` lines: step name → reason.
fn reasons(err: &str) -> Vec<(String, String)> {
    let Some((_, tail)) = err.split_once("Why steps missed the cache (--explain):\n") else {
        panic!("no --explain block:\n{err}");
    };
    let lines: Vec<&str> = tail.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let (_, name) = w[0].strip_prefix(" => #")?.split_once(' ')?;
            Some((name.to_string(), w[1].strip_prefix("    ")?.to_string()))
        })
        .collect()
}

fn reason_of(reasons: &[(String, String)], step: &str) -> String {
    reasons
        .iter()
        .find(|(name, _)| name.contains(step))
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("no reason for {step}: {reasons:?}"))
}

const EXPLAINED: &str = "FROM rbk-busybox
ARG VERSION=1.0
RUN echo version $VERSION > /version
COPY src/ /src/
RUN cat /src/main.rs
";

fn explain_build(root: &Path, ctx: &Path, version: &str) -> Vec<(String, String)> {
    let arg = format!("VERSION={version}");
    let out = build(root, ctx, &["--explain", "--build-arg", &arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    reasons(&stderr(&out))
}

#[test]
fn explain_names_the_input_that_changed_for_each_kind_of_reason() {
    let dir = scratch("records-explain");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", EXPLAINED),
            ("src/main.rs", "fn main() {}\n"),
            ("src/lib.rs", "// lib\n"),
        ],
    );
    let first = explain_build(&root, &ctx, "1.2");
    assert_eq!(
        reason_of(&first, "RUN echo version"),
        "no earlier build of this Dockerfile and target"
    );

    // Nothing changed: nothing to explain.
    let out = build(&root, &ctx, &["--explain", "--build-arg", "VERSION=1.2"]);
    assert!(
        stderr(&out).contains("every step came from the cache"),
        "{}",
        stderr(&out)
    );

    // A build arg.
    let by_arg = explain_build(&root, &ctx, "1.3");
    assert_eq!(
        reason_of(&by_arg, "RUN echo version"),
        "build arg VERSION changed: 1.2 → 1.3"
    );
    assert!(
        reason_of(&by_arg, "COPY src/").starts_with("parent step re-ran (#"),
        "{by_arg:?}"
    );
    // The ARG is in the environment of every RUN after it.
    assert_eq!(
        reason_of(&by_arg, "RUN cat"),
        "build arg VERSION changed: 1.2 → 1.3"
    );

    // A context file.
    fs::write(ctx.join("src/main.rs"), "fn main() { println!(); }\n").unwrap();
    let by_file = explain_build(&root, &ctx, "1.3");
    assert_eq!(by_file.len(), 2, "{by_file:?}");
    assert_eq!(
        reason_of(&by_file, "COPY src/"),
        "context file src/main.rs changed (content)"
    );
    fs::write(ctx.join("src/new.rs"), "\n").unwrap();
    let added = explain_build(&root, &ctx, "1.3");
    assert_eq!(
        reason_of(&added, "COPY src/"),
        "context file src/new.rs changed (added)"
    );

    // The instruction's text.
    let edited = EXPLAINED.replace("RUN cat /src/main.rs", "RUN cat /src/main.rs /src/lib.rs");
    fs::write(ctx.join("Dockerfile"), &edited).unwrap();
    let by_text = explain_build(&root, &ctx, "1.3");
    assert_eq!(by_text.len(), 1, "{by_text:?}");
    assert_eq!(
        reason_of(&by_text, "RUN cat"),
        "instruction text changed (line 5)"
    );

    // The base image: the name now points at another image.
    let other = context(
        &dir.join("other"),
        &[("Dockerfile", "FROM rbk-busybox\nRUN touch /other\n")],
    );
    ok(
        &root,
        &["build", "-q", "-t", "other-base", other.to_str().unwrap()],
    );
    ok(&root, &["tag", "other-base", "rbk-busybox"]);
    let id = stdout(&ok(&root, &["images", "-q", "--no-trunc", "other-base"]));
    let by_base = explain_build(&root, &ctx, "1.3");
    assert_eq!(
        reason_of(&by_base, "RUN echo version"),
        format!(
            "base image rbk-busybox:latest now resolves to {}",
            id.trim()
        )
    );

    // The same reasons are in the build record and in rawjson.
    let last = &records(&root)[0];
    let steps = last["steps"].as_array().unwrap();
    let recorded: Vec<&str> = steps.iter().filter_map(|s| s["reason"].as_str()).collect();
    assert!(
        recorded
            .iter()
            .any(|r| r.starts_with("base image rbk-busybox:latest")),
        "{recorded:?}"
    );
    fs::write(ctx.join("src/main.rs"), "fn main() { todo!() }\n").unwrap();
    let json = rbk(
        &root,
        &[
            "build",
            "--progress=rawjson",
            "--build-arg",
            "VERSION=1.3",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(json.status.success(), "{}", stderr(&json));
    let misses: Vec<(String, String)> = stderr(&json)
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["vertexes"].as_array().cloned().unwrap_or_default()
        })
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_string(),
                v["cacheMiss"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(
        reason_of(&misses, "COPY src/"),
        "context file src/main.rs changed (content)"
    );
}

#[test]
fn build_ls_and_logs_show_past_builds_and_their_steps() {
    let dir = scratch("records-logs");
    let root = store(&dir);
    let lines =
        "FROM rbk-busybox\nRUN for i in $(seq 1 2000); do echo line $i; done\nRUN echo second\n";
    let ctx = context(&dir, &[("Dockerfile", lines)]);
    let out = build(&root, &ctx, &["-t", "logs:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let failing = context(
        &dir.join("failing"),
        &[(
            "Dockerfile",
            "FROM rbk-busybox AS app\nRUN echo partial; exit 4\n",
        )],
    );
    let out = build(&root, &failing, &["--target", "app"]);
    assert!(!out.status.success());

    let table = stdout(&ok(&root, &["build", "ls"]));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[0].starts_with("BUILD ID"), "{table}");
    assert!(
        rows[1].contains("failed") && rows[1].contains("app"),
        "{table}"
    );
    assert!(
        rows[2].contains(" ok ") && rows[2].contains("(last stage)"),
        "{table}"
    );
    let all = records(&root);
    let (failed_id, ok_id) = (
        all[0]["id"].as_str().unwrap().to_string(),
        all[1]["id"].as_str().unwrap().to_string(),
    );
    assert!(
        all[0]["error"].as_str().unwrap().contains("exit code: 4"),
        "{}",
        all[0]
    );

    // One step of the first build, every line in order.
    let out = ok(&root, &["logs", "--build", &ok_id, "RUN for i"]);
    let text = stdout(&out);
    let printed: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    let expected: Vec<String> = (1..=2000).map(|i| format!("line {i}")).collect();
    assert_eq!(printed, expected);
    // Without an id: the last build, every step with output.
    let out = ok(&root, &["logs", "--build"]);
    assert!(
        stdout(&out).contains("RUN echo partial; exit 4\n"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(" partial\n"), "{}", stdout(&out));
    // A step by number, and an unknown step or build.
    let n = all[1]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().contains("echo second"))
        .unwrap()["number"]
        .to_string();
    let out = ok(&root, &["logs", "--build", &ok_id, &format!("#{n}")]);
    assert!(stdout(&out).ends_with(" second\n"), "{}", stdout(&out));
    let out = rbk(&root, &["logs", "--build", &ok_id, "no such step"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no step \"no such step\""),
        "{}",
        stderr(&out)
    );
    let out = rbk(&root, &["logs", "--build", &ok_id[..4], "x"]);
    assert!(
        stderr(&out).contains("2 builds start with"),
        "{}",
        stderr(&out)
    );
    let out = rbk(&root, &["logs", "--build", "1999", "x"]);
    assert!(
        stderr(&out).contains("no build \"1999\""),
        "{}",
        stderr(&out)
    );

    // prune keeps the last build of each Dockerfile and target; -a all.
    let again = build(&root, &ctx, &[]);
    assert!(again.status.success());
    let out = ok(&root, &["prune", "-f"]);
    assert!(
        stdout(&out).contains(&format!("Deleted: build {ok_id}")),
        "{}",
        stdout(&out)
    );
    let left: Vec<String> = records(&root)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&failed_id));
    assert!(!root.join("logs").join(&ok_id).exists());
    ok(&root, &["prune", "-a", "-f"]);
    assert!(records(&root).is_empty());
}

const PARALLEL: &str = "FROM rbk-busybox AS short
RUN sleep 1 && echo short > /short
FROM rbk-busybox AS long
RUN sleep 2 && echo long > /long
FROM rbk-busybox
COPY --from=short /short /short
COPY --from=long /long /long
";

fn timeline_build(dir: &Path) -> (PathBuf, PathBuf, serde_json::Value) {
    let root = store(dir);
    let ctx = context(dir, &[("Dockerfile", PARALLEL)]);
    let page = dir.join("timeline.html");
    let out = build(&root, &ctx, &["--timeline", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let record = records(&root).remove(0);
    (root, page, record)
}

fn number_of(record: &serde_json::Value, part: &str) -> u64 {
    record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().contains(part))
        .unwrap_or_else(|| panic!("no step {part}: {record}"))["number"]
        .as_u64()
        .unwrap()
}

#[test]
fn timeline_page_loads_in_chromium_with_parallel_bars_and_the_critical_path() {
    let dir = scratch("records-timeline");
    let (root, page, record) = timeline_build(&dir);
    let html = fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("src=") && !html.contains("href=") && !html.contains("url(http"),
        "not self-contained"
    );
    let dom = support::browser::dom(&dir, &page);
    assert!(dom.contains("data-ready=\"yes\""), "script did not finish");
    // Every step is a row with a hover text naming its state and duration.
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(dom.matches("<g class=\"row\"").count(), steps.len());
    assert!(
        dom.contains("state: cached"),
        "the base's metadata is cached"
    );
    assert!(
        dom.contains("RUN sleep 2 &amp;&amp; echo long &gt; /long\nduration: 2."),
        "{dom}"
    );
    // The critical path is the long stage's chain.
    let (base, long, copy) = (
        number_of(&record, "load metadata for"),
        number_of(&record, "RUN sleep 2"),
        number_of(&record, "COPY --from=long"),
    );
    let expected = format!("data-critical-path=\"{base} {long} {copy}\"");
    assert!(dom.contains(&expected), "{expected} in\n{dom}");
    // The two stages' bars overlap in time: in the DOM…
    let bars = dom
        .split("data-bars=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let span = |n: u64| -> (f64, f64) {
        let b = bars
            .split(' ')
            .find_map(|b| b.strip_prefix(&format!("{n}:")))
            .unwrap();
        let (l, r) = b.split_once('-').unwrap();
        (l.parse().unwrap(), r.parse().unwrap())
    };
    let short = number_of(&record, "RUN sleep 1");
    let (a, b) = (span(short), span(long));
    assert!(a.0 < b.1 && b.0 < a.1, "{a:?} {b:?}");
    // …and on the screenshot: two blue bars on different rows over the
    // same columns.
    let pixels = support::browser::screenshot(&dir, &page, 1300, 700);
    let ran = |row: &Vec<[u8; 3]>| -> Option<(usize, usize)> {
        let xs: Vec<usize> = (0..row.len())
            .filter(|x| support::browser::near(row[*x], [0x4a, 0x90, 0xd9]))
            .collect();
        (xs.len() > 20).then(|| (xs[0], *xs.last().unwrap()))
    };
    let mut bars_drawn: Vec<(usize, usize)> = Vec::new();
    let mut previous = None;
    for row in &pixels {
        let here = ran(row);
        if let (Some(bar), None) = (here, previous) {
            bars_drawn.push(bar);
        }
        previous = here;
    }
    let overlapping = bars_drawn.iter().enumerate().any(|(i, x)| {
        bars_drawn[i + 1..]
            .iter()
            .any(|y| x.0 + 20 < y.1 && y.0 + 20 < x.1)
    });
    assert!(overlapping, "no two bars side by side: {bars_drawn:?}");

    // `rbk build timeline` draws the same page from the record.
    let again = dir.join("again.html");
    let id = record["id"].as_str().unwrap();
    ok(
        &root,
        &["build", "timeline", "-o", again.to_str().unwrap(), id],
    );
    assert_eq!(fs::read_to_string(&again).unwrap(), html);
}

#[test]
fn timeline_json_is_chrome_trace_events_with_every_step() {
    let dir = scratch("records-trace");
    let (root, _, record) = timeline_build(&dir);
    let file = dir.join("trace.json");
    ok(&root, &["build", "timeline", "-o", file.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let complete: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(complete.len(), steps.len());
    for step in steps {
        let e = complete
            .iter()
            .find(|e| e["args"]["digest"] == step["digest"])
            .unwrap_or_else(|| panic!("{step} not traced"));
        assert_eq!(e["name"], step["name"]);
        let start = step["start"].as_f64().unwrap();
        let end = step["end"].as_f64().unwrap();
        assert_eq!(e["ts"].as_u64().unwrap(), (start * 1e6).round() as u64);
        assert_eq!(
            e["dur"].as_u64().unwrap(),
            ((end - start) * 1e6).round() as u64
        );
        assert_eq!(e["pid"], 1);
        assert!(e["tid"].as_u64().unwrap() >= 1);
    }
    // Events on one thread never overlap (trace viewers nest them).
    for a in &complete {
        for b in &complete {
            if std::ptr::eq(*a, *b) || a["tid"] != b["tid"] {
                continue;
            }
            let (s1, e1) = (
                a["ts"].as_u64().unwrap(),
                a["ts"].as_u64().unwrap() + a["dur"].as_u64().unwrap(),
            );
            let (s2, e2) = (
                b["ts"].as_u64().unwrap(),
                b["ts"].as_u64().unwrap() + b["dur"].as_u64().unwrap(),
            );
            assert!(e1 <= s2 || e2 <= s1, "{a} overlaps {b}");
        }
    }
    let named: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    for stage in ["short", "long"] {
        assert!(named.contains(&stage), "{named:?}");
    }
    // --timeline FILE.json at build time writes the same format.
    let ctx = context(&dir.join("again"), &[("Dockerfile", PARALLEL)]);
    let direct = dir.join("direct.json");
    let out = build(&root, &ctx, &["--timeline", direct.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&direct).unwrap()).unwrap();
    assert!(doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ph"] == "X"));
}

/// A step printing a million lines: `plain` shows every one in order and
/// `rbk logs --build` returns them all (peak memory is measured by `cargo
/// xtask bench progress`, not here).
#[test]
fn a_million_line_step_is_kept_whole_in_plain_and_in_its_log() {
    const LINES: usize = 1_000_000;
    let dir = scratch("records-million");
    let root = store(&dir);
    let dockerfile = format!(
        "FROM rbk-busybox\nRUN i=0; while [ $i -lt {LINES} ]; do echo \"line $i\"; i=$((i+1)); done\n"
    );
    let ctx = context(&dir, &[("Dockerfile", &dockerfile)]);
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let check = |text: &str, what: &str| {
        let mut next = 0;
        for line in text.lines() {
            let Some((_, rest)) = line.split_once(" line ") else {
                continue;
            };
            assert_eq!(rest, next.to_string(), "{what}: line {next} out of order");
            next += 1;
        }
        assert_eq!(next, LINES, "{what}: lines missing");
    };
    check(&stderr(&out), "plain");
    let logs = ok(&root, &["logs", "--build", "", "RUN i=0"]);
    check(&stdout(&logs), "rbk logs --build");
}
