//! Build progress, rendered from the graph's event stream as BuildKit
//! renders its `SolveStatus` stream:
//!
//! - `plain` prints numbered lines (`#3 [build 2/4] RUN make`,
//!   `#3 0.412 output`, `#3 CACHED`, `#3 DONE 0.4s`), every output line in
//!   the order written;
//! - `tty` draws the live view of [`tty`];
//! - `rawjson` writes the stream as JSON lines ([`rawjson`]);
//! - `quiet` and `none` print nothing.
//!
//! Next to the plan's vertices the views show BuildKit's internal ones:
//! `[internal] load build definition from Dockerfile`, `[internal] load
//! .dockerignore` (both read while planning) and `exporting to image` (from
//! the moment the last step finished until the image was written and
//! named). After a failed build, `plain` and `tty` print each failed step's
//! whole output (read back from its log file) before the error.
//!
//! When the build ends, [`Progress::record`] writes its record next to the
//! steps' logs ([`record`]: what `rbk build ls`, `rbk logs --build` and
//! `rbk build timeline` read), with why each step that ran missed the cache
//! ([`explain`]), and the `--timeline` picture ([`timeline`]).

mod colors;
mod explain;
pub(crate) mod inputs;
pub(crate) mod rawjson;
pub(crate) mod record;
mod report;
pub(crate) mod timeline;
mod trace;
mod tty;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rbk_graph::{Dag, Digest, Event, LogStream, Reporter};

pub(crate) use colors::Colors;
pub(crate) use report::BuildFacts;
use trace::{bytes, timestamp, Trace};

/// How often the live view redraws (BuildKit: 100ms at most, 150ms idle).
const TICK: Duration = Duration::from_millis(100);

/// The view, resolved from `--progress`, `BUILDKIT_PROGRESS` and whether
/// stderr is a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Tty,
    Plain,
    RawJson,
    Quiet,
}

/// What the CLI resolved from flags and the environment.
#[derive(Clone, Debug)]
pub(crate) struct ProgressSettings {
    pub(crate) mode: Mode,
    pub(crate) colors: Colors,
    /// Output lines a running step shows in the live view.
    pub(crate) log_lines: usize,
}

/// A [`Reporter`] that renders a build.
pub(crate) struct Progress {
    /// Per dag index: digest, label and input digests.
    plan: Vec<(Digest, String, Vec<Digest>)>,
    trace: Arc<Mutex<Trace>>,
    settings: ProgressSettings,
    ticker: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    screen: Arc<Mutex<tty::Screen>>,
    /// When the last step finished: the export starts there.
    solved: Mutex<Option<Instant>>,
}

/// Vertices the views add to the plan's.
const INTERNAL_VERTICES: usize = 3;

impl Progress {
    /// `planning` is when the command started reading the Dockerfile;
    /// `dockerfile` its size; `logs` where each step's output is kept.
    pub(crate) fn new(
        settings: ProgressSettings,
        dag: &Dag,
        planning: Instant,
        dockerfile: (String, u64),
        logs: Option<PathBuf>,
    ) -> Progress {
        let digests: Vec<Digest> = dag.vertices().iter().map(|v| v.digest()).collect();
        let plan = dag
            .vertices()
            .iter()
            .map(|v| {
                let inputs = v.deps().iter().map(|i| digests[*i]).collect();
                (v.digest(), v.label().to_string(), inputs)
            })
            .collect();
        let mut trace = Trace::new(dag.len() + INTERNAL_VERTICES, logs);
        trace.start = planning;
        // The wall clock of that same instant: rawjson's times are
        // `start_wall` plus the time since `start`, and were late by the
        // whole planning time when `start_wall` was taken now.
        trace.start_wall = std::time::SystemTime::now() - planning.elapsed();
        let progress = Progress {
            plan,
            trace: Arc::new(Mutex::new(trace)),
            settings,
            ticker: Mutex::new(None),
            screen: Arc::new(Mutex::new(tty::Screen::default())),
            solved: Mutex::new(None),
        };
        let now = Instant::now();
        let (name, size) = dockerfile;
        progress.internal(
            &format!("[internal] load build definition from {name}"),
            &[(format!("transferring dockerfile: {}", bytes(size)), 0)],
            planning,
            now,
        );
        progress.internal(
            "[internal] load .dockerignore",
            &[("transferring context: 2B".to_string(), 0)],
            planning,
            now,
        );
        if progress.settings.mode == Mode::Tty {
            progress.start_ticker();
        }
        progress
    }

    fn lock(&self) -> MutexGuard<'_, Trace> {
        self.trace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A vertex of the views' own, already done, with its statuses.
    fn internal(&self, name: &str, statuses: &[(String, u64)], started: Instant, done: Instant) {
        let mut trace = self.lock();
        let digest = Digest::sha256_of(name.as_bytes());
        let i = trace.vertex(digest, name, &[]);
        trace.started(i, started);
        // Their parts' own times are not measured: shown as instant.
        for (id, current) in statuses {
            trace.vertices[i].status(id, *current, None, done);
        }
        trace.vertices[i].close_statuses(done);
        trace.completed(i, done);
        match self.settings.mode {
            Mode::Plain => {
                let mut out = format!("\n#{} {name}\n", i + 1);
                out.push_str(&plain_statuses(&trace, i));
                out.push_str(&format!(
                    "#{} DONE {:.1}s\n",
                    i + 1,
                    trace.vertices[i].elapsed(done).as_secs_f64()
                ));
                write_err(&out);
            }
            Mode::RawJson => {
                let v = &trace.vertices[i];
                let status = rawjson::SolveStatus {
                    vertexes: vec![rawjson::vertex(&trace, v)],
                    statuses: v
                        .statuses
                        .iter()
                        .map(|s| rawjson::status(&trace, v, s))
                        .collect(),
                    ..Default::default()
                };
                emit(&status);
            }
            Mode::Tty | Mode::Quiet => {}
        }
    }

    /// The `exporting to image` vertex, once the image is written: from
    /// when the last step finished until now.
    pub(crate) fn exported(&self, id: &str, tags: &[String]) {
        let done = Instant::now();
        let started = self
            .solved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(done);
        let mut statuses = vec![
            ("exporting layers".to_string(), 0),
            (format!("writing image {id}"), 0),
        ];
        statuses.extend(tags.iter().map(|t| (format!("naming to {t}"), 0)));
        self.internal("exporting to image", &statuses, started, done);
    }

    /// Whether the view already told the user the image id and names.
    pub(crate) fn shows_result(&self) -> bool {
        matches!(self.settings.mode, Mode::Tty | Mode::Plain | Mode::RawJson)
    }

    /// Ends the view: the live view's last frame (every line); after a
    /// failure, each failed step's whole output.
    pub(crate) fn finish(&self, ok: bool) {
        let ticker = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((stop, handle)) = ticker {
            drop(stop);
            let _ = handle.join();
        }
        let mut trace = self.lock();
        if ok {
            // Only what was reported counts (a plan may hold vertices the
            // build never needed).
            trace.total = trace.vertices.len();
        }
        let mode = self.settings.mode;
        if mode == Mode::Tty {
            // Over the ticker's last frame, one with every line.
            let mut screen = self.screen.lock().unwrap_or_else(|p| p.into_inner());
            draw(&mut trace, &self.settings, true, &mut screen);
        }
        if !ok && matches!(mode, Mode::Tty | Mode::Plain) {
            write_err(&trace.error_logs());
        }
    }

    fn start_ticker(&self) {
        let (stop, ticks) = mpsc::channel::<()>();
        let trace = Arc::clone(&self.trace);
        let settings = self.settings.clone();
        let screen = Arc::clone(&self.screen);
        let handle = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = ticks.recv_timeout(TICK) {
                let mut trace = trace.lock().unwrap_or_else(|p| p.into_inner());
                let mut screen = screen.lock().unwrap_or_else(|p| p.into_inner());
                draw(&mut trace, &settings, false, &mut screen);
            }
        });
        *self.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some((stop, handle));
    }

    fn number(&self, trace: &mut Trace, vertex: usize) -> (usize, bool) {
        let (digest, label, inputs) = &self.plan[vertex];
        let known = trace.get(digest).is_some();
        (trace.vertex(*digest, label, inputs), !known)
    }
}

/// The live view's frame, written over the previous one.
fn draw(trace: &mut Trace, settings: &ProgressSettings, all: bool, screen: &mut tty::Screen) {
    let (height, width) = console::Term::stderr()
        .size_checked()
        .map_or((10, 80), |(h, w)| (usize::from(h), usize::from(w)));
    let look = tty::Look {
        width,
        height,
        all,
        colors: &settings.colors,
        log_lines: settings.log_lines,
    };
    let frame = tty::frame(trace, Instant::now(), &look);
    write_err(&screen.draw(&frame, width));
}

impl Reporter for Progress {
    fn event(&self, event: Event) {
        let now = Instant::now();
        let mode = self.settings.mode;
        let mut trace = self.lock();
        let (i, new) = self.number(&mut trace, event.vertex());
        let n = i + 1;
        let mut out = String::new();
        if new && mode == Mode::Plain {
            out.push_str(&format!("\n#{n} {}\n", trace.vertices[i].name));
        }
        let mut json = rawjson::SolveStatus::default();
        let mut vertex_changed = true;
        match &event {
            Event::Started { .. } => trace.started(i, now),
            Event::Cached { .. } => {
                trace.vertices[i].cached = true;
                trace.completed(i, now);
                out.push_str(&format!("#{n} CACHED\n"));
            }
            Event::Log { data, stream, .. } => {
                vertex_changed = false;
                let lines = trace.log(i, data, now);
                if mode == Mode::Plain {
                    for (ts, line) in lines {
                        out.push_str(&format!("#{n} {} {line}\n", timestamp(ts)));
                    }
                }
                if mode == Mode::RawJson {
                    let stream = match stream {
                        LogStream::Stdout => 1,
                        _ => 2,
                    };
                    json.logs
                        .push(rawjson::log(&trace.vertices[i], stream, data));
                }
            }
            Event::Progress {
                name,
                current,
                total,
                ..
            } => {
                vertex_changed = false;
                trace.vertices[i].status(name, *current, *total, now);
                if let Some(s) = trace.vertices[i].statuses.iter().find(|s| &s.id == name) {
                    json.statuses
                        .push(rawjson::status(&trace, &trace.vertices[i], s));
                }
            }
            Event::Completed { .. } | Event::Failed { .. } | Event::Cancelled { .. } => {
                if let Some((ts, line)) = trace.flush_partial(i, now) {
                    out.push_str(&format!("#{n} {} {line}\n", timestamp(ts)));
                }
                trace.vertices[i].close_statuses(now);
                out.push_str(&plain_statuses(&trace, i));
                trace.completed(i, now);
                match &event {
                    Event::Completed { duration, .. } => {
                        out.push_str(&format!("#{n} DONE {:.1}s\n", duration.as_secs_f64()));
                    }
                    Event::Failed { error, .. } => {
                        trace.vertices[i].error = Some(error.clone());
                        out.push_str(&format!("#{n} ERROR: {error}\n"));
                    }
                    _ => {
                        trace.vertices[i].canceled = true;
                        out.push_str(&format!("#{n} CANCELED\n"));
                    }
                }
                json.statuses = trace.vertices[i]
                    .statuses
                    .iter()
                    .map(|s| rawjson::status(&trace, &trace.vertices[i], s))
                    .collect();
            }
            Event::Warning { message, .. } => {
                vertex_changed = false;
                trace.vertices[i].warnings.push(message.clone());
                json.warnings
                    .push(rawjson::warning(&trace.vertices[i], message));
                // About the machine rather than a step's output: one line,
                // as when exec printed it itself.
                if matches!(mode, Mode::Plain | Mode::Quiet) {
                    out.push_str(&format!("warning: {message}\n"));
                }
            }
            _ => vertex_changed = false,
        }
        if trace.vertices[i].completed == Some(now) {
            *self.solved.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        match mode {
            Mode::Plain => write_err(&out),
            Mode::Quiet if matches!(event, Event::Warning { .. }) => write_err(&out),
            Mode::RawJson => {
                if vertex_changed || new {
                    json.vertexes
                        .push(rawjson::vertex(&trace, &trace.vertices[i]));
                }
                emit(&json);
            }
            _ => {}
        }
    }
}

/// The plain lines of a finished vertex's statuses: `#1 transferring
/// context: 2.3kB 0.1s done`.
fn plain_statuses(trace: &Trace, i: usize) -> String {
    let mut out = String::new();
    for s in &trace.vertices[i].statuses {
        let size = match s.total {
            Some(total) if total > 0 => format!(" {} / {}", bytes(s.current), bytes(total)),
            _ if s.current > 0 => format!(" {}", bytes(s.current)),
            _ => String::new(),
        };
        let took = s.completed.map_or(0.0, |c| {
            c.saturating_duration_since(s.started).as_secs_f64()
        });
        let took = if took > 0.01 {
            format!(" {took:.1}s")
        } else {
            String::new()
        };
        out.push_str(&format!("#{} {}{size}{took} done\n", i + 1, s.id));
    }
    out
}

fn emit(status: &rawjson::SolveStatus) {
    if let Ok(mut line) = serde_json::to_string(status) {
        line.push('\n');
        write_err(&line);
    }
}

fn write_err(s: &str) {
    if s.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.flush();
}

/// `auto`'s choice: the live view on a terminal.
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
