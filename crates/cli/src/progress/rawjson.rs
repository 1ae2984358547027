//! `--progress=rawjson`: one JSON object per line in the shape of BuildKit's
//! `client.SolveStatus` (`vertexes`, `statuses`, `logs`, `warnings`), as
//! `buildctl --progress=rawjson` and buildx write them, so tools that read
//! theirs read rbk's. Times are RFC 3339 with nanoseconds, log data is
//! base64 (Go's encoding of `[]byte`), streams are 1 (stdout) and 2
//! (stderr). rbk adds `cacheMiss` to a vertex: why it was not cached
//! (`--explain`).

use std::time::SystemTime;

use base64::Engine as _;
use serde::Serialize;

use super::trace::{Status, Trace, Vtx};

#[derive(Serialize, Default)]
pub(crate) struct SolveStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) vertexes: Vec<Vertex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) statuses: Vec<VertexStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) logs: Vec<VertexLog>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) warnings: Vec<VertexWarning>,
}

#[derive(Serialize)]
pub(crate) struct Vertex {
    digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// rbk's own: why the vertex ran rather than come from the cache.
    #[serde(rename = "cacheMiss", skip_serializing_if = "Option::is_none")]
    pub(crate) cache_miss: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct VertexStatus {
    id: String,
    vertex: String,
    #[serde(skip_serializing_if = "is_zero")]
    total: u64,
    current: u64,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct VertexLog {
    vertex: String,
    stream: u8,
    data: String,
    timestamp: String,
}

#[derive(Serialize)]
pub(crate) struct VertexWarning {
    vertex: String,
    level: u8,
    short: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn time(t: SystemTime) -> String {
    rbk_store::image::format_rfc3339(t)
}

/// The vertex as it stands now. BuildKit reports a cancelled vertex with
/// the `context canceled` error.
pub(crate) fn vertex(trace: &Trace, v: &Vtx) -> Vertex {
    Vertex {
        digest: v.digest.to_string(),
        inputs: v.inputs.iter().map(ToString::to_string).collect(),
        name: v.name.clone(),
        started: v.started.map(|t| time(trace.wall(t))),
        completed: v.completed.map(|t| time(trace.wall(t))),
        cached: v.cached,
        error: match v.canceled {
            true => Some("context canceled".to_string()),
            false => v.error.clone(),
        },
        cache_miss: None,
    }
}

pub(crate) fn status(trace: &Trace, v: &Vtx, s: &Status) -> VertexStatus {
    VertexStatus {
        id: s.id.clone(),
        vertex: v.digest.to_string(),
        total: s.total.unwrap_or(0),
        current: s.current,
        timestamp: time(SystemTime::now()),
        started: Some(time(trace.wall(s.started))),
        completed: s.completed.map(|t| time(trace.wall(t))),
    }
}

pub(crate) fn log(v: &Vtx, stream: u8, data: &[u8]) -> VertexLog {
    VertexLog {
        vertex: v.digest.to_string(),
        stream,
        data: base64::engine::general_purpose::STANDARD.encode(data),
        timestamp: time(SystemTime::now()),
    }
}

pub(crate) fn warning(v: &Vtx, message: &str) -> VertexWarning {
    VertexWarning {
        vertex: v.digest.to_string(),
        level: 1,
        short: base64::engine::general_purpose::STANDARD.encode(message),
    }
}
