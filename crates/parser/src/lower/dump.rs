//! The text dump of a [`Plan`] used by golden tests and `rbk debug plan`.

use std::fmt::Write;

use super::reference::format_platform;
use super::{BaseRef, Plan};

pub(super) fn dump(plan: &Plan) -> String {
    let mut out = String::new();
    for s in &plan.stages {
        let marker = if s.index == plan.target {
            " (target)"
        } else {
            ""
        };
        let name = s
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", s.index));
        let base = match &s.base {
            BaseRef::Scratch => "scratch".to_string(),
            BaseRef::Image(r) => r.clone(),
            BaseRef::Stage(i) => format!("stage {i}"),
        };
        let _ = writeln!(out, "stage {} {name}{marker}", s.index);
        let _ = writeln!(out, "  base: {base}");
        let _ = writeln!(out, "  platform: {}", format_platform(&s.platform));
        let _ = writeln!(out, "  output: #{}", s.output.0);
        if !s.author.is_empty() {
            let _ = writeln!(out, "  author: {}", s.author);
        }
        let config = serde_json::to_string_pretty(&s.config).unwrap_or_default();
        let _ = writeln!(out, "  config: {}", config.replace('\n', "\n  "));
        for h in &s.history {
            let empty = if h.empty_layer { " (empty)" } else { "" };
            let by = h.created_by.as_deref().unwrap_or_default();
            let _ = writeln!(out, "  history: {}{empty}", by.escape_debug());
        }
    }
    let _ = writeln!(out, "vertices:");
    for (i, v) in plan.definition.vertices.iter().enumerate() {
        let op = serde_json::to_string(&v.op).unwrap_or_default();
        let _ = writeln!(out, "#{i} {op}");
        if !v.meta.description.is_empty() {
            let _ = writeln!(out, "   # {}", v.meta.description.escape_debug());
        }
    }
    out
}
