//! A container's log (`containers/<id>/container.log`): one JSON object a
//! line, as docker's `json-file` driver writes them —
//! `{"log":"…","stream":"stdout","time":"RFC 3339 with nanoseconds"}`.
//! Each read of the container's output becomes one entry (a line, or part
//! of one when the process wrote no newline yet), so `logs -t` can stamp
//! it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which stream an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One entry of a container's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// What was written (lossy UTF-8, as docker's).
    pub log: String,
    /// Its stream.
    pub stream: LogStream,
    /// When, RFC 3339 with nanoseconds.
    pub time: String,
}

/// Appends entries to a log file; shared by the stdout and stderr copiers.
#[derive(Clone, Debug)]
pub(crate) struct LogWriter {
    file: Arc<Mutex<File>>,
}

impl LogWriter {
    pub(crate) fn open(path: &Path) -> Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("opening", path, e))?;
        Ok(LogWriter {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Copies `from` into the log until it ends, a line an entry.
    pub(crate) fn copy(&self, mut from: impl Read, stream: LogStream) {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let time = nano_time(SystemTime::now());
            let mut lines = Vec::new();
            for piece in buf[..n].split_inclusive(|b| *b == b'\n') {
                let entry = LogEntry {
                    log: String::from_utf8_lossy(piece).into_owned(),
                    stream,
                    time: time.clone(),
                };
                if let Ok(mut json) = serde_json::to_vec(&entry) {
                    json.push(b'\n');
                    lines.extend_from_slice(&json);
                }
            }
            // One write per read keeps a reader from seeing half an entry
            // for long; a full disk loses output, never the container.
            if let Ok(mut file) = self.file.lock() {
                let _ = file.write_all(&lines);
            }
        }
    }
}

/// RFC 3339 with all nine digits of nanoseconds (docker's `logs -t`).
fn nano_time(t: SystemTime) -> String {
    let whole = rbk_store::image::format_rfc3339(t);
    let nanos = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let seconds = whole
        .split_once('.')
        .map_or(whole.trim_end_matches('Z'), |(s, _)| s);
    format!("{seconds}.{nanos:09}Z")
}

/// The complete entries of the log at `path` from byte `offset` on, and
/// the offset after the last complete one (a line still being written is
/// left for the next read). A missing log has no entries.
pub fn read_log(path: &Path, offset: u64) -> Result<(Vec<LogEntry>, u64)> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(Error::io("opening", path, e)),
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("reading", path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let entries = bytes[..complete]
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    Ok((entries, offset + complete as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let writer = LogWriter::open(&path).unwrap();
        writer.copy(&b"one\ntwo\nthr"[..], LogStream::Stdout);
        let (entries, end) = read_log(&path, 0).unwrap();
        let logs: Vec<&str> = entries.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["one\n", "two\n", "thr"]);
        assert!(entries[0].time.ends_with('Z') && entries[0].time.len() == 30);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"log\":\"x\"").unwrap();
        let (more, again) = read_log(&path, end).unwrap();
        assert!(more.is_empty());
        assert_eq!(again, end);
    }
}
