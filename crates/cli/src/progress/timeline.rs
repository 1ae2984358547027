//! The timeline picture of a build record: a self-contained HTML page (a
//! Gantt chart drawn as inline SVG, no network fetch) or Chrome's
//! trace-event JSON, which Perfetto and chrome://tracing open.
//!
//! The page has one row per vertex, grouped by stage, a bar from start to
//! end, cached steps hatched, and the critical path (the chain of steps
//! that ended last, each waiting on the input that ended last) outlined in
//! red. Hovering a bar shows the step's command, duration, cache state and
//! why it missed the cache.

use std::fmt::Write as _;

use serde_json::json;

use super::record::{Record, Step};

/// The critical path, as step positions from first to last: from the plan
/// step that ended last, back through the input that ended last each time.
pub(crate) fn critical_path(record: &Record) -> Vec<usize> {
    let end = |i: usize| record.steps[i].end.unwrap_or(0.0);
    let planned: Vec<usize> = (0..record.steps.len())
        .filter(|i| record.steps[*i].inputs_of.is_some() && record.steps[*i].end.is_some())
        .collect();
    let Some(mut at) = planned
        .iter()
        .copied()
        .max_by(|a, b| end(*a).total_cmp(&end(*b)))
    else {
        return Vec::new();
    };
    let mut path = vec![at];
    loop {
        let inputs = &record.steps[at].inputs;
        let next = record
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| inputs.contains(&s.digest) && s.end.is_some())
            .max_by(|a, b| end(a.0).total_cmp(&end(b.0)))
            .map(|(i, _)| i);
        match next {
            Some(i) if !path.contains(&i) => {
                path.push(i);
                at = i;
            }
            _ => break,
        }
    }
    path.reverse();
    path
}

/// Rows in drawing order: stages in the order they first started, each
/// with its steps by start time; the views' own vertices go in `internal`.
fn rows(record: &Record) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut order: Vec<usize> = (0..record.steps.len()).collect();
    order.sort_by(|a, b| {
        let s = |i: usize| record.steps[i].start.unwrap_or(f64::MAX);
        s(*a).total_cmp(&s(*b))
    });
    for i in order {
        let stage = record.steps[i]
            .inputs_of
            .as_ref()
            .map_or("internal".to_string(), |f| {
                f.stage.clone().unwrap_or_else(|| "sources".to_string())
            });
        match groups.iter_mut().find(|(name, _)| *name == stage) {
            Some((_, members)) => members.push(i),
            None => groups.push((stage, vec![i])),
        }
    }
    groups
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn state(step: &Step) -> &'static str {
    match (step.cached, &step.error, step.canceled) {
        (true, _, _) => "cached",
        (_, _, true) => "canceled",
        (_, Some(_), _) => "error",
        _ if step.start.is_none() => "not run",
        _ => "ran",
    }
}

const ROW: f64 = 22.0;
const LABEL: f64 = 420.0;
const CHART: f64 = 760.0;

/// The HTML page.
pub(crate) fn html(record: &Record) -> String {
    let critical = critical_path(record);
    let total = record
        .steps
        .iter()
        .filter_map(|s| s.end)
        .fold(record.duration, f64::max)
        .max(0.001);
    let x = |t: f64| LABEL + t / total * CHART;
    let mut body = String::new();
    let mut y = 30.0;
    for (stage, members) in rows(record) {
        let _ = write!(
            body,
            r#"<text class="stage" x="4" y="{:.1}">{}</text>"#,
            y + 15.0,
            escape(&stage)
        );
        y += ROW;
        for i in members {
            let s = &record.steps[i];
            let (start, end) = (s.start.unwrap_or(0.0), s.end.or(s.start).unwrap_or(0.0));
            let width = (x(end) - x(start)).max(2.0);
            let mut tip = format!(
                "#{} {}\nduration: {:.2}s\nstate: {}",
                s.number,
                s.name,
                end - start,
                state(s)
            );
            if let Some(reason) = &s.reason {
                let _ = write!(tip, "\ncache miss: {reason}");
            }
            if let Some(error) = &s.error {
                let _ = write!(tip, "\nerror: {error}");
            }
            let mut class = format!("bar {}", state(s).replace(' ', "-"));
            if critical.contains(&i) {
                class.push_str(" critical");
            }
            let _ = write!(
                body,
                r#"<g class="row" data-step="{n}" data-start="{start:.6}" data-end="{end:.6}" data-state="{st}"><text class="name" x="16" y="{ty:.1}">{label}</text><rect class="{class}" x="{bx:.2}" y="{by:.1}" width="{width:.2}" height="{h:.1}"><title>{tip}</title></rect></g>"#,
                n = s.number,
                st = state(s),
                ty = y + 15.0,
                label = escape(&format!("#{} {}", s.number, cut(&s.name, 60))),
                bx = x(start),
                by = y + 3.0,
                h = ROW - 6.0,
                tip = escape(&tip),
            );
            y += ROW;
        }
    }
    let mut axis = String::new();
    for k in 0..=10 {
        let t = total * f64::from(k) / 10.0;
        let _ = write!(
            axis,
            r#"<line class="tick" x1="{px:.1}" x2="{px:.1}" y1="18" y2="{y:.1}"/><text class="axis" x="{px:.1}" y="14">{t:.1}s</text>"#,
            px = x(t),
        );
    }
    let path: Vec<String> = critical
        .iter()
        .map(|i| record.steps[*i].number.to_string())
        .collect();
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>rbk build {id}</title>
<style>
body {{ font: 13px sans-serif; margin: 16px; color: #222; }}
.stage {{ font-weight: bold; }} .name {{ font-family: monospace; font-size: 12px; }}
.axis {{ font-size: 10px; text-anchor: middle; fill: #666; }} .tick {{ stroke: #eee; }}
.bar {{ fill: #4a90d9; }} .bar.cached {{ fill: url(#hatch); stroke: #999; }}
.bar.error {{ fill: #d0021b; }} .bar.canceled {{ fill: #aaa; }}
.bar.critical {{ stroke: #e00; stroke-width: 2; }}
#tip {{ position: fixed; display: none; white-space: pre; background: #fff; border: 1px solid #888; padding: 6px; font-family: monospace; font-size: 12px; pointer-events: none; }}
</style></head>
<body data-critical-path="{path}">
<h1>rbk build {id}</h1>
<p>{dockerfile}{target} &middot; {result} &middot; {duration:.1}s &middot; started {started} &middot; critical path: #{path_shown}</p>
<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#dde8f3"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8aa" stroke-width="2"/></pattern></defs>
{axis}{body}</svg>
<div id="tip"></div>
<script>
(function () {{
  var tip = document.getElementById('tip');
  document.querySelectorAll('rect.bar').forEach(function (bar) {{
    var text = bar.querySelector('title').textContent;
    bar.addEventListener('mousemove', function (e) {{
      tip.textContent = text; tip.style.display = 'block';
      tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px';
    }});
    bar.addEventListener('mouseleave', function () {{ tip.style.display = 'none'; }});
  }});
  var boxes = [];
  document.querySelectorAll('g.row').forEach(function (row) {{
    var r = row.querySelector('rect').getBoundingClientRect();
    boxes.push(row.dataset.step + ':' + r.left.toFixed(1) + '-' + r.right.toFixed(1));
  }});
  document.body.dataset.bars = boxes.join(' ');
  document.body.dataset.ready = 'yes';
}})();
</script>
</body></html>
"##,
        id = escape(&record.id),
        dockerfile = escape(&record.dockerfile),
        target = record
            .target
            .as_ref()
            .map_or(String::new(), |t| format!(" --target {}", escape(t))),
        result = escape(&record.result),
        duration = record.duration,
        started = escape(&record.started),
        path = path.join(" "),
        path_shown = path.join(" → #"),
        w = LABEL + CHART + 40.0,
        h = y + 10.0,
    )
}

fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Chrome's trace-event format: one complete (`X`) event per step, on
/// threads named after the stages (a stage gets more than one lane only
/// when its steps overlap), times in microseconds.
pub(crate) fn chrome(record: &Record) -> String {
    let critical = critical_path(record);
    let mut events = Vec::new();
    // (stage, lane) → when its last event ends.
    let mut lanes: Vec<(String, f64)> = Vec::new();
    for (stage, members) in rows(record) {
        for i in members {
            let s = &record.steps[i];
            let Some(start) = s.start else { continue };
            let end = s.end.unwrap_or(start);
            let lane = match lanes
                .iter()
                .position(|(name, free)| *name == stage && *free <= start)
            {
                Some(l) => l,
                None => {
                    lanes.push((stage.clone(), 0.0));
                    let tid = lanes.len();
                    events.push(json!({
                        "name": "thread_name", "ph": "M", "pid": 1, "tid": tid,
                        "args": { "name": stage },
                    }));
                    lanes.len() - 1
                }
            };
            lanes[lane].1 = end;
            events.push(json!({
                "name": s.name,
                "cat": state(s),
                "ph": "X",
                "ts": (start * 1e6).round() as u64,
                "dur": ((end - start) * 1e6).round() as u64,
                "pid": 1,
                "tid": lane + 1,
                "args": {
                    "step": s.number,
                    "digest": s.digest,
                    "cached": s.cached,
                    "critical": critical.contains(&i),
                    "reason": s.reason,
                    "error": s.error,
                },
            }));
        }
    }
    events.insert(
        0,
        json!({ "name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                "args": { "name": format!("rbk build {}", record.id) } }),
    );
    let doc = json!({ "traceEvents": events, "displayTimeUnit": "ms" });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Writes the picture the file's extension asks for (`.json`: trace
/// events; anything else: HTML).
pub(crate) fn write(record: &Record, path: &std::path::Path) -> std::io::Result<()> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = match json {
        true => chrome(record),
        false => html(record),
    };
    std::fs::write(path, text)
}
