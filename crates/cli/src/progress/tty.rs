//! The live view, drawn as BuildKit's `progressui` draws it:
//!
//! ```text
//! [+] Building 12.3s (14/17)
//!  => [internal] load build definition from Dockerfile              0.0s
//!  => => transferring dockerfile: 312B                              0.0s
//!  => CACHED [base 2/7] COPY go.mod .                               0.0s
//!  => [build 3/7] RUN make                                          2.1s
//!  => => # compiling foo.c
//! ```
//!
//! Every line is cut to the terminal's width (read again for each frame, so
//! the view follows resizes); a running step shows the last lines of its
//! output, dimmed, while the window has room; finished lines are coloured.
//! Each frame moves the cursor back over the previous one and redraws it.

use std::time::Instant;

use super::colors::{paint, Colors, FAINT};
use super::trace::{bytes, Trace};

/// BuildKit's `termPad`: output lines are this much narrower than the view.
const TERM_PAD: usize = 10;
/// BuildKit's `termHeightMin`.
const TERM_HEIGHT_MIN: usize = 6;

/// One line of the view before it is cut and coloured.
struct Job {
    name: String,
    status: String,
    seconds: f64,
    started: bool,
    completed: bool,
    error: bool,
    canceled: bool,
    /// The vertex whose output may be shown under it.
    output: Option<usize>,
}

/// How to draw: the window, whether this is the final frame (every line,
/// not only the last that fit), colours, and how many output lines a
/// running step may show (`BUILDKIT_TTY_LOG_LINES`, 6 by default).
pub(crate) struct Look<'a> {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) all: bool,
    pub(crate) colors: &'a Colors,
    pub(crate) log_lines: usize,
}

/// The frame's lines (each ending in a newline, with colour codes),
/// header first.
pub(crate) fn frame(trace: &mut Trace, now: Instant, look: &Look) -> Vec<String> {
    let width = look.width;
    let completed = trace.completed_count();
    let finished = completed > 0 && completed == trace.total.max(trace.vertices.len()) && look.all;
    let header = format!(
        "[+] Building {:.1}s ({}/{}) {}",
        now.saturating_duration_since(trace.start).as_secs_f64(),
        completed,
        trace.total.max(trace.vertices.len()),
        if finished { "FINISHED" } else { "" }
    );
    let mut header = pad(&header, width);
    header = cut(&header, width);
    let mut lines = vec![format!("{header}\n")];

    let mut jobs = jobs(trace, now);
    let term_height = TERM_HEIGHT_MIN.max(
        look.log_lines
            .min(look.height.saturating_sub(TERM_HEIGHT_MIN + 1)),
    );
    let shown = choose_outputs(trace, &jobs, look.height, term_height);
    if !look.all {
        let hidden_rows: usize = shown
            .iter()
            .map(|i| rows(trace, *i, width, term_height).len())
            .sum();
        jobs = wrap_height(jobs, look.height as isize - 2 - hidden_rows as isize);
    }
    for job in &jobs {
        if !job.started {
            continue;
        }
        let seconds = if job.seconds < 0.05 { 0.0 } else { job.seconds };
        let prefix = " => ";
        let timer = format!(" {seconds:3.1}s");
        // BuildKit counts the timer's newline in its width.
        let mut left = width as isize - prefix.len() as isize - (timer.len() + 1) as isize - 1;
        let mut show_status = false;
        if !job.status.is_empty() && left + job.status.len() as isize > 20 {
            show_status = true;
            left -= job.status.len() as isize + 1;
        }
        if left < 12 {
            continue; // too small a window for this line
        }
        let mut out = format!("{prefix}{}", cut(&job.name, left as usize));
        if show_status {
            out.push(' ');
            out.push_str(&job.status);
        }
        let line = format!(
            "{} {timer}\n",
            pad(&out, width.saturating_sub(timer.len() + 2))
        );
        let color = match () {
            _ if !job.completed => None,
            _ if job.canceled => look.colors.cancel.as_deref(),
            _ if job.error => look.colors.error.as_deref(),
            _ => look.colors.run.as_deref(),
        };
        lines.push(paint(&line, color));
        if let Some(i) = job.output.filter(|i| shown.contains(i)) {
            for row in rows(trace, i, width, term_height) {
                if !row.trim().is_empty() {
                    lines.push(paint(&format!(" => => # {row}\n"), Some(FAINT)));
                }
            }
            trace.vertices[i].term_count += 1;
        }
    }
    lines
}

/// The view's lines: each started vertex, then its statuses and warnings.
fn jobs(trace: &Trace, now: Instant) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, v) in trace.vertices.iter().enumerate() {
        let mut name = v.name.clone();
        if v.canceled {
            name = format!("CANCELED {name}");
        } else if v.error.is_some() {
            name = format!("ERROR {name}");
        }
        if v.cached {
            name = format!("CACHED {name}");
        }
        jobs.push(Job {
            name,
            status: String::new(),
            seconds: v.elapsed(now).as_secs_f64(),
            started: v.started.is_some(),
            completed: v.completed.is_some(),
            error: v.error.is_some() && !v.canceled,
            canceled: v.canceled,
            output: Some(i),
        });
        for s in &v.statuses {
            let status = match s.total {
                Some(total) if total > 0 => format!("{} / {}", bytes(s.current), bytes(total)),
                _ if s.current > 0 => bytes(s.current),
                _ => String::new(),
            };
            jobs.push(Job {
                name: format!("=> {}", s.id),
                status,
                seconds: s
                    .completed
                    .unwrap_or(now)
                    .saturating_duration_since(s.started)
                    .as_secs_f64(),
                started: true,
                completed: s.completed.is_some(),
                error: false,
                canceled: false,
                output: None,
            });
        }
        for w in &v.warnings {
            jobs.push(Job {
                name: format!("WARN: {w}"),
                status: String::new(),
                seconds: v.elapsed(now).as_secs_f64(),
                started: v.started.is_some(),
                completed: v.completed.is_some(),
                error: false,
                canceled: true, // BuildKit draws warnings in the cancel colour
                output: None,
            });
        }
    }
    jobs
}

/// Which running steps show their output: the busiest first, while each
/// still leaves room (BuildKit's `setupTerminals`).
fn choose_outputs(trace: &Trace, jobs: &[Job], height: usize, term_height: usize) -> Vec<usize> {
    let in_use = jobs.iter().filter(|j| !j.completed).count();
    let mut candidates: Vec<usize> = jobs
        .iter()
        .filter(|j| !j.completed)
        .filter_map(|j| j.output)
        .filter(|i| trace.vertices[*i].log_bytes > 0)
        .collect();
    candidates.sort_by_key(|i| {
        let v = &trace.vertices[*i];
        std::cmp::Reverse(v.log_bytes + v.term_count * 50)
    });
    let mut free = height as isize - 2 - in_use as isize;
    let limit = (term_height + 3) as isize;
    let mut shown = Vec::new();
    for i in candidates {
        if free <= limit {
            break;
        }
        shown.push(i);
        free -= limit;
    }
    shown
}

/// The rows a terminal of `term_height` rows and the view's width minus
/// the padding would show of the step's output: long lines wrap, a carriage
/// return starts the line over, the cursor's (unfinished) row is last.
fn rows(trace: &Trace, i: usize, width: usize, term_height: usize) -> Vec<String> {
    let cols = width.saturating_sub(TERM_PAD).max(1);
    let tail = &trace.vertices[i].tail;
    let mut rows: Vec<String> = Vec::new();
    for line in tail.lines.iter().chain(std::iter::once(&tail.partial)) {
        let line = line.rsplit('\r').next().unwrap_or("");
        let chars: Vec<char> = line.chars().filter(|c| !c.is_control()).collect();
        if chars.is_empty() {
            rows.push(String::new());
            continue;
        }
        for chunk in chars.chunks(cols) {
            rows.push(chunk.iter().collect());
        }
    }
    let skip = rows.len().saturating_sub(term_height);
    rows.split_off(skip)
}

/// The last `limit` lines, but running ones scrolled out of view are pulled
/// back in place of finished ones (BuildKit's `wrapHeight`).
fn wrap_height(jobs: Vec<Job>, limit: isize) -> Vec<Job> {
    if limit < 0 {
        return Vec::new();
    }
    let limit = limit as usize;
    if jobs.len() <= limit {
        return jobs;
    }
    let mut jobs = jobs;
    let visible = jobs.split_off(jobs.len() - limit);
    let invisible: Vec<Job> = jobs.into_iter().filter(|j| !j.completed).collect();
    if invisible.is_empty() {
        return visible;
    }
    let mut budget = invisible.len() as isize;
    let mut kept = Vec::with_capacity(visible.len());
    for j in visible {
        if !j.completed || budget <= 0 {
            kept.push(j);
        }
        budget -= 1;
    }
    let free = limit - kept.len();
    let skip = invisible.len().saturating_sub(free);
    invisible.into_iter().skip(skip).chain(kept).collect()
}

/// `s` padded with spaces to `width` characters (Go's `%-*s`).
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    let mut out = s.to_string();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(n)));
    out
}

/// The first `width` characters of `s`.
fn cut(s: &str, width: usize) -> String {
    s.chars().take(width).collect()
}

/// Draws frames over each other on the terminal.
#[derive(Default)]
pub(crate) struct Screen {
    lines: usize,
    repeated: bool,
}

impl Screen {
    /// The bytes that replace the previous frame with `frame`.
    pub(crate) fn draw(&mut self, frame: &[String], width: usize) -> String {
        let mut out = "\x1b[1A".repeat(self.lines + 1);
        if !self.repeated {
            out.push_str("\x1b[1B");
        }
        self.repeated = true;
        out.push_str("\x1b[0G\x1b[?25l");
        for line in frame {
            out.push_str(line);
        }
        let lines = frame.len().saturating_sub(1);
        if self.lines > lines {
            let diff = self.lines - lines;
            for _ in 0..diff {
                out.push_str(&" ".repeat(width));
                out.push('\n');
            }
            out.push_str(&format!("\x1b[{diff}A\x1b[0G"));
        }
        self.lines = lines;
        out.push_str("\x1b[?25h");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbk_graph::Digest;

    fn look(colors: &Colors, width: usize) -> Look<'_> {
        Look {
            width,
            height: 24,
            all: true,
            colors,
            log_lines: 6,
        }
    }

    #[test]
    fn lines_are_cut_to_the_width_and_the_time_is_right_aligned() {
        let mut t = Trace::new(2, None);
        let now = t.start;
        let a = t.vertex(
            Digest::sha256_of(b"a"),
            "[a 2/3] RUN echo a very long command line that goes on",
            &[],
        );
        t.started(a, now);
        t.completed(a, now + std::time::Duration::from_millis(2100));
        let b = t.vertex(Digest::sha256_of(b"b"), "[a 3/3] COPY f /f", &[]);
        t.vertices[b].cached = true;
        t.completed(b, now);
        let colors = Colors::default();
        let lines = frame(
            &mut t,
            now + std::time::Duration::from_secs(3),
            &look(&colors, 40),
        );
        assert_eq!(
            lines[0],
            format!("{:<40}\n", "[+] Building 3.0s (2/2) FINISHED")
        );
        assert_eq!(lines[1], " => [a 2/3] RUN echo a very long   2.1s\n");
        assert_eq!(lines[2], " => CACHED [a 3/3] COPY f /f       0.0s\n");
        assert!(lines.iter().all(|l| l.chars().count() <= 41));
    }

    #[test]
    fn a_running_step_shows_its_last_output_lines() {
        let mut t = Trace::new(1, None);
        let now = t.start;
        let a = t.vertex(Digest::sha256_of(b"a"), "[a 2/2] RUN make", &[]);
        t.started(a, now);
        let text: String = (1..=9).map(|n| format!("line {n}\n")).collect();
        t.log(a, text.as_bytes(), now);
        let colors = Colors::resolve(None, None);
        let lines = frame(
            &mut t,
            now,
            &Look {
                all: false,
                ..look(&colors, 60)
            },
        );
        let out: Vec<&str> = lines[2..].iter().map(String::as_str).collect();
        // Six rows: five lines and the empty cursor row, which is not drawn.
        assert_eq!(out.len(), 5, "{out:?}");
        assert_eq!(out[0], "\x1b[2m => => # line 5\n\x1b[0m");
        assert_eq!(out[4], "\x1b[2m => => # line 9\n\x1b[0m");
    }
}
