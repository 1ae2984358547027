//! The build as every view sees it (BuildKit's `trace`): vertices in the
//! order they first reported, their times, cache state, errors, sub-steps
//! (statuses) and the tail of their output. Each step's complete output goes
//! to a file as it arrives, so memory stays flat however much a step prints
//! and the failed step's whole log can be shown at the end.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rbk_graph::Digest;

/// Raw lines of output kept per vertex for the live view (more than any
/// terminal shows, so wrapping at a narrow width still fills the window).
const TAIL_LINES: usize = 64;

pub(crate) struct Trace {
    /// When the first vertex started (the header's clock).
    pub(crate) start: Instant,
    pub(crate) start_wall: SystemTime,
    /// In the order they first reported.
    pub(crate) vertices: Vec<Vtx>,
    by_digest: HashMap<Digest, usize>,
    /// Vertices the build will report (the plan's plus the internal ones).
    pub(crate) total: usize,
    logs: Option<PathBuf>,
}

pub(crate) struct Vtx {
    pub(crate) digest: Digest,
    pub(crate) name: String,
    pub(crate) inputs: Vec<Digest>,
    pub(crate) started: Option<Instant>,
    pub(crate) completed: Option<Instant>,
    pub(crate) cached: bool,
    pub(crate) error: Option<String>,
    pub(crate) canceled: bool,
    pub(crate) statuses: Vec<Status>,
    pub(crate) warnings: Vec<String>,
    pub(crate) tail: Tail,
    /// Output bytes so far, and how often the live view showed them: which
    /// running steps get their output shown (BuildKit's `termBytes` and
    /// `termCount`).
    pub(crate) log_bytes: u64,
    pub(crate) term_count: u64,
    log: Option<BufWriter<File>>,
    log_path: Option<PathBuf>,
    /// The unfinished last line of output.
    partial: Vec<u8>,
}

/// A named part of a vertex's work (`transferring context: 2.1kB`,
/// `naming to docker.io/library/app:latest`).
pub(crate) struct Status {
    pub(crate) id: String,
    pub(crate) current: u64,
    pub(crate) total: Option<u64>,
    pub(crate) started: Instant,
    pub(crate) completed: Option<Instant>,
}

/// The last lines of a step's output, for the live view.
#[derive(Default)]
pub(crate) struct Tail {
    pub(crate) lines: VecDeque<String>,
    pub(crate) partial: String,
}

impl Trace {
    /// `logs`: the directory for the steps' full output (one file per
    /// vertex digest), when the build keeps it.
    pub(crate) fn new(total: usize, logs: Option<PathBuf>) -> Trace {
        Trace {
            start: Instant::now(),
            start_wall: SystemTime::now(),
            vertices: Vec::new(),
            by_digest: HashMap::new(),
            total,
            logs,
        }
    }

    /// The vertex's position, adding it on its first report.
    pub(crate) fn vertex(&mut self, digest: Digest, name: &str, inputs: &[Digest]) -> usize {
        if let Some(i) = self.by_digest.get(&digest) {
            return *i;
        }
        let i = self.vertices.len();
        self.vertices.push(Vtx {
            digest,
            name: name.replace('\t', " "),
            inputs: inputs.to_vec(),
            started: None,
            completed: None,
            cached: false,
            error: None,
            canceled: false,
            statuses: Vec::new(),
            warnings: Vec::new(),
            tail: Tail::default(),
            log_bytes: 0,
            term_count: 0,
            log: None,
            log_path: None,
            partial: Vec::new(),
        });
        self.by_digest.insert(digest, i);
        i
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<usize> {
        self.by_digest.get(digest).copied()
    }

    /// Wall-clock time of `at`, for the JSON stream.
    pub(crate) fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.start) {
            Some(d) => self.start_wall + d,
            None => self.start_wall - self.start.duration_since(at),
        }
    }

    pub(crate) fn started(&mut self, i: usize, at: Instant) {
        let v = &mut self.vertices[i];
        v.started.get_or_insert(at);
    }

    pub(crate) fn completed(&mut self, i: usize, at: Instant) {
        let v = &mut self.vertices[i];
        v.started.get_or_insert(at);
        v.completed = Some(at);
        v.close_log();
    }

    pub(crate) fn completed_count(&self) -> usize {
        self.vertices
            .iter()
            .filter(|v| v.completed.is_some())
            .count()
    }

    /// Adds output, returning its complete lines, each with the seconds
    /// since the step started.
    pub(crate) fn log(&mut self, i: usize, data: &[u8], at: Instant) -> Vec<(f64, String)> {
        let dir = self.logs.clone();
        let v = &mut self.vertices[i];
        v.log_bytes += data.len() as u64;
        let ts = v
            .started
            .map_or(0.0, |s| at.saturating_duration_since(s).as_secs_f64());
        v.partial.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(pos) = v.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = v.partial.drain(..=pos).collect();
            out.push((
                ts,
                String::from_utf8_lossy(&line[..line.len() - 1]).into_owned(),
            ));
        }
        for (ts, line) in &out {
            v.keep(dir.as_deref(), *ts, line);
        }
        v.tail.partial = String::from_utf8_lossy(&v.partial).into_owned();
        out
    }

    /// The unfinished last line of a step that ended, kept like the others.
    pub(crate) fn flush_partial(&mut self, i: usize, at: Instant) -> Option<(f64, String)> {
        let dir = self.logs.clone();
        let v = &mut self.vertices[i];
        if v.partial.is_empty() {
            return None;
        }
        let ts = v
            .started
            .map_or(0.0, |s| at.saturating_duration_since(s).as_secs_f64());
        let line = String::from_utf8_lossy(&std::mem::take(&mut v.partial)).into_owned();
        v.tail.partial.clear();
        v.keep(dir.as_deref(), ts, &line);
        Some((ts, line))
    }

    /// BuildKit's block after a failed build: each failed step's name and
    /// its whole output, read back from the log files.
    pub(crate) fn error_logs(&mut self) -> String {
        let mut out = String::new();
        for v in &mut self.vertices {
            if v.error.is_none() || v.canceled {
                continue;
            }
            v.close_log();
            out.push_str(&format!("------\n > {}:\n", v.name));
            if let Some(file) = v.log_path.as_ref().and_then(|p| File::open(p).ok()) {
                for line in BufReader::new(file).lines().map_while(Result::ok) {
                    out.push_str(&line);
                    out.push('\n');
                }
            } else {
                for line in &v.tail.lines {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out.push_str("------\n");
        }
        out
    }
}

impl Vtx {
    /// Whether the log file, the tail and the view have the line.
    fn keep(&mut self, dir: Option<&Path>, ts: f64, line: &str) {
        if self.tail.lines.len() == TAIL_LINES {
            self.tail.lines.pop_front();
        }
        self.tail.lines.push_back(line.to_string());
        let Some(dir) = dir else { return };
        if self.log.is_none() && self.log_path.is_none() {
            let path = dir.join(format!("{}.log", self.digest.hex()));
            let file = std::fs::create_dir_all(dir).and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            });
            if let Ok(file) = file {
                self.log = Some(BufWriter::new(file));
            }
            self.log_path = Some(path);
        }
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{} {line}", timestamp(ts));
        }
    }

    fn close_log(&mut self) {
        if let Some(mut log) = self.log.take() {
            let _ = log.flush();
        }
    }

    /// How long the vertex ran (until `now` while it runs); BuildKit shows
    /// under 0.05s as 0.
    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        let Some(start) = self.started else {
            return Duration::ZERO;
        };
        self.completed
            .unwrap_or(now)
            .saturating_duration_since(start)
    }

    pub(crate) fn status(&mut self, id: &str, current: u64, total: Option<u64>, at: Instant) {
        match self.statuses.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.current = current;
                s.total = total;
            }
            None => self.statuses.push(Status {
                id: id.to_string(),
                current,
                total,
                started: at,
                completed: None,
            }),
        }
    }

    /// Ends every open status (the vertex finished).
    pub(crate) fn close_statuses(&mut self, at: Instant) {
        for s in &mut self.statuses {
            s.completed.get_or_insert(at);
        }
    }
}

/// A log line's time as BuildKit prints it: three decimals under 10s, two
/// under 100s, then one.
pub(crate) fn timestamp(secs: f64) -> String {
    match secs {
        s if s < 10.0 => format!("{s:.3}"),
        s if s < 100.0 => format!("{s:.2}"),
        s => format!("{s:.1}"),
    }
}

/// Sizes as BuildKit's `units.Bytes` with `%.2f` prints them: `123B`,
/// `2.34kB`, `12.58MB` (powers of 1000).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_lines_across_events() {
        let mut t = Trace::new(1, None);
        let i = t.vertex(Digest::sha256_of(b"v"), "v", &[]);
        let now = Instant::now();
        assert!(t.log(i, b"hel", now).is_empty());
        let lines: Vec<String> = t.log(i, b"lo\nwor", now).into_iter().map(|l| l.1).collect();
        assert_eq!(lines, vec!["hello"]);
        assert_eq!(t.flush_partial(i, now).map(|l| l.1).as_deref(), Some("wor"));
        assert_eq!(t.vertex(Digest::sha256_of(b"v"), "v", &[]), i);
    }

    #[test]
    fn sizes_and_times_read_like_buildkit() {
        assert_eq!(bytes(123), "123B");
        assert_eq!(bytes(2345), "2.35kB");
        assert_eq!(bytes(12_580_000), "12.58MB");
        assert_eq!(timestamp(0.0521), "0.052");
        assert_eq!(timestamp(12.345), "12.35");
        assert_eq!(timestamp(123.45), "123.5");
    }
}
