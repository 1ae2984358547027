//! Build progress, rendered from the graph's event stream like BuildKit:
//! `plain` prints numbered log lines (`#3 [build 2/4] RUN make`, `#3 CACHED`,
//! `#3 DONE 0.4s`), `tty` draws a live view with indicatif (a
//! `[+] Building 1.2s (3/9)` header, one line per step with its time or
//! `CACHED`, and the last output line of each running step), `quiet` prints
//! nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbk_graph::{Dag, Event, Reporter};

use crate::args::ProgressMode;

/// A [`Reporter`] that renders a build.
pub(crate) struct Progress {
    labels: Vec<String>,
    start: Instant,
    state: Mutex<State>,
    view: View,
}

enum View {
    Quiet,
    Plain,
    Tty(Tty),
}

struct Tty {
    multi: MultiProgress,
    header: ProgressBar,
}

#[derive(Default)]
struct State {
    /// BuildKit-style step numbers, in the order steps started.
    numbers: HashMap<usize, u32>,
    /// Per-step start times and unfinished output lines.
    started: HashMap<usize, Instant>,
    partial: HashMap<usize, Vec<u8>>,
    bars: HashMap<usize, ProgressBar>,
    done: u64,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, quiet: bool, dag: &Dag) -> Progress {
        let labels = dag
            .vertices()
            .iter()
            .map(|v| v.label().to_string())
            .collect();
        let tty = std::io::stderr().is_terminal();
        let view = match mode {
            _ if quiet => View::Quiet,
            ProgressMode::Quiet => View::Quiet,
            ProgressMode::Plain => View::Plain,
            ProgressMode::Auto if !tty => View::Plain,
            ProgressMode::Auto | ProgressMode::Tty => View::Tty(Tty::new(dag.len() as u64)),
        };
        Progress {
            labels,
            start: Instant::now(),
            state: Mutex::new(State::default()),
            view,
        }
    }

    /// Ends the live view (a no-op for the other modes).
    pub(crate) fn finish(&self, ok: bool) {
        if let View::Tty(tty) = &self.view {
            let verb = if ok { "FINISHED" } else { "FAILED" };
            tty.header.finish_with_message(format!(
                "[+] Building {:.1}s {verb}",
                self.start.elapsed().as_secs_f64()
            ));
        }
    }

    fn label(&self, vertex: usize) -> &str {
        self.labels.get(vertex).map_or("", String::as_str)
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event) {
        if let Event::Warning { message, .. } = &event {
            // About the machine rather than a step's output: one line in
            // every mode, as when exec printed it itself.
            let line = format!("warning: {message}");
            match &self.view {
                View::Tty(tty) => {
                    let _ = tty.multi.println(line);
                }
                View::Quiet | View::Plain => {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &self.view {
            View::Quiet => {}
            View::Plain => self.plain(&mut state, &event),
            View::Tty(tty) => self.tty(tty, &mut state, &event),
        }
    }
}

impl State {
    fn number(&mut self, vertex: usize) -> (u32, bool) {
        let next = self.numbers.len() as u32 + 1;
        let mut new = false;
        let n = *self.numbers.entry(vertex).or_insert_with(|| {
            new = true;
            next
        });
        (n, new)
    }

    /// Complete lines of `data` appended to the step's unfinished line.
    fn lines(&mut self, vertex: usize, data: &[u8]) -> Vec<String> {
        let buf = self.partial.entry(vertex).or_default();
        buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        out
    }

    fn rest(&mut self, vertex: usize) -> Option<String> {
        let buf = self.partial.remove(&vertex)?;
        (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
    }
}

impl Progress {
    fn plain(&self, state: &mut State, event: &Event) {
        let vertex = event.vertex();
        let (n, new) = state.number(vertex);
        let mut out = String::new();
        if new {
            out.push_str(&format!("\n#{n} {}\n", self.label(vertex)));
        }
        match event {
            Event::Started { .. } => {
                state.started.insert(vertex, Instant::now());
            }
            Event::Cached { .. } => out.push_str(&format!("#{n} CACHED\n")),
            Event::Log { data, .. } => {
                let t = state
                    .started
                    .get(&vertex)
                    .map_or(0.0, |s| s.elapsed().as_secs_f64());
                for line in state.lines(vertex, data) {
                    out.push_str(&format!("#{n} {t:.3} {line}\n"));
                }
            }
            Event::Progress { .. } => {}
            Event::Completed { duration, .. } => {
                if let Some(line) = state.rest(vertex) {
                    out.push_str(&format!("#{n} {line}\n"));
                }
                out.push_str(&format!("#{n} DONE {:.1}s\n", duration.as_secs_f64()));
            }
            Event::Failed { error, .. } => {
                if let Some(line) = state.rest(vertex) {
                    out.push_str(&format!("#{n} {line}\n"));
                }
                out.push_str(&format!("#{n} ERROR: {error}\n"));
            }
            Event::Cancelled { .. } => out.push_str(&format!("#{n} CANCELED\n")),
            _ => {}
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
    }

    fn tty(&self, tty: &Tty, state: &mut State, event: &Event) {
        let vertex = event.vertex();
        let (n, _) = state.number(vertex);
        let label = self.label(vertex).to_string();
        let bar = state
            .bars
            .entry(vertex)
            .or_insert_with(|| tty.step(&format!("#{n} {label}")))
            .clone();
        match event {
            Event::Started { .. } => {
                state.started.insert(vertex, Instant::now());
            }
            Event::Cached { .. } => {
                state.done += 1;
                bar.finish_with_message("CACHED");
            }
            Event::Log { data, .. } => {
                if let Some(last) = state.lines(vertex, data).pop() {
                    bar.set_message(shorten(&last, 60));
                }
            }
            Event::Completed { duration, .. } => {
                state.done += 1;
                bar.finish_with_message(format!("DONE {}", seconds(*duration)));
            }
            Event::Failed { duration, .. } => {
                bar.finish_with_message(format!("ERROR {}", seconds(*duration)));
            }
            Event::Cancelled { .. } => bar.finish_with_message("CANCELED"),
            _ => {}
        }
        tty.header.set_position(state.done);
        tty.header.set_message(format!(
            "[+] Building {:.1}s ({}/{})",
            self.start.elapsed().as_secs_f64(),
            state.done,
            self.labels.len()
        ));
    }
}

impl Tty {
    fn new(total: u64) -> Tty {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let header = multi.add(ProgressBar::new(total));
        header.set_style(
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        header.set_message("[+] Building 0.0s");
        header.enable_steady_tick(Duration::from_millis(100));
        Tty { multi, header }
    }

    fn step(&self, label: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template(" => {prefix} {msg} {elapsed:>4}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(shorten(label, 70));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_lines_across_events() {
        let mut state = State::default();
        assert!(state.lines(1, b"hel").is_empty());
        assert_eq!(state.lines(1, b"lo\nwor"), vec!["hello"]);
        assert_eq!(state.rest(1).as_deref(), Some("wor"));
        assert_eq!(state.number(7), (1, true));
        assert_eq!(state.number(3), (2, true));
        assert_eq!(state.number(7), (1, false));
    }
}
