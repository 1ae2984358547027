//! BuildKit's rules that read the instructions as written: casing, stage
//! names, MAINTAINER, shell-form CMD/ENTRYPOINT, repeated CMD/ENTRYPOINT/
//! HEALTHCHECK, relative WORKDIR, legacy `ENV k v`, secrets in ARG/ENV,
//! EXPOSE formats and (experimental) definition descriptions.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use regex::Regex;

use super::rules::*;
use super::{Finding, Nodes};
use crate::expand::go_quote;
use crate::instructions::{Instruction, Parsed};
use crate::{Node, Span};

/// The instruction keyword as written (`From`, `copy`).
pub(super) fn keyword(node: &Node) -> &str {
    node.original.split_whitespace().next().unwrap_or_default()
}

fn args(node: &Node) -> Vec<&str> {
    node.next.iter().map(|n| n.value.as_str()).collect()
}

/// What a stage leaves to stages built on it.
#[derive(Clone, Copy, Default)]
struct Inherited {
    workdir_set: bool,
    shell_set: bool,
}

/// Per-stage state while walking the file.
#[derive(Default)]
struct StageWalk {
    inherited: Inherited,
    last: HashMap<&'static str, (Span, String)>,
}

pub(super) fn per_instruction(
    nodes: &Nodes<'_>,
    comments: &BTreeMap<u32, Vec<String>>,
    out: &mut Vec<Finding>,
) {
    let mut stages: HashMap<String, Inherited> = HashMap::new();
    let mut current: Option<(Option<String>, StageWalk)> = None;
    let above = |node: &Node| {
        comments
            .get(&node.span.start_line)
            .cloned()
            .unwrap_or_default()
    };
    for (node, parsed) in nodes {
        let span = node.span;
        match parsed {
            Parsed::Stage(stage) => {
                if let Some((Some(name), walk)) = current.take() {
                    stages.insert(name, walk.inherited);
                }
                from_casing(node, out);
                if let Some(name) = &stage.name {
                    describe(out, "FROM", &[name.as_str()], &above(node), span);
                }
                let inherited = stages
                    .get(&stage.base_name.to_ascii_lowercase())
                    .copied()
                    .unwrap_or_default();
                let walk = StageWalk {
                    inherited,
                    last: HashMap::new(),
                };
                current = Some((stage.name.clone(), walk));
            }
            Parsed::Command(cmd) => {
                let kw = keyword(node);
                if let Instruction::Arg(decls) = &cmd.instruction {
                    let keys: Vec<&str> = decls.iter().map(|d| d.key.as_str()).collect();
                    describe(out, "ARG", &keys, &above(node), span);
                }
                let Some((_, walk)) = current.as_mut() else {
                    continue;
                };
                command(node, kw, &cmd.instruction, walk, out);
            }
        }
    }
}

fn from_casing(node: &Node, out: &mut Vec<Finding>) {
    let a = args(node);
    if a.len() != 3 {
        return;
    }
    if a[2] != a[2].to_lowercase() {
        let msg = format!("Stage name '{}' should be lowercase", a[2]);
        out.push(Finding::new(&STAGE_NAME_CASING, msg, node.span));
    }
    let kw = keyword(node);
    let (lower, upper) = (kw == kw.to_lowercase(), kw == kw.to_uppercase());
    let mismatch =
        (lower && a[1] != a[1].to_lowercase()) || (!lower && upper && a[1] != a[1].to_uppercase());
    if mismatch {
        let msg = format!("'{}' and '{kw}' keywords' casing do not match", a[1]);
        out.push(Finding::new(&FROM_AS_CASING, msg, node.span));
    }
}

/// The experimental `InvalidDefinitionDescription`: the comment right above
/// a named FROM or an ARG should start with the name it describes.
fn describe(
    out: &mut Vec<Finding>,
    instruction: &str,
    keys: &[&str],
    comments: &[String],
    span: Span,
) {
    let (Some(last), false) = (comments.last(), keys.is_empty()) else {
        return;
    };
    let first = last.split(' ').next().unwrap_or_default();
    if keys.contains(&first) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
    let msg =
        format!("Comment for {instruction} should follow the format: `# {example} <description>`");
    out.push(Finding::new(&INVALID_DEFINITION_DESCRIPTION, msg, span));
}

fn command(node: &Node, kw: &str, ins: &Instruction, walk: &mut StageWalk, out: &mut Vec<Finding>) {
    let span = node.span;
    match ins {
        Instruction::Maintainer(_) => {
            let msg = "Maintainer instruction is deprecated in favor of using label".to_string();
            out.push(Finding::new(&MAINTAINER_DEPRECATED, msg, span));
        }
        Instruction::Shell(_) => walk.inherited.shell_set = true,
        Instruction::Cmd(c) | Instruction::Entrypoint(c) => {
            used_once(walk, ins.name(), kw, span, out);
            if c.prepend_shell && !walk.inherited.shell_set {
                let msg = format!(
                    "JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"
                );
                out.push(Finding::new(&JSON_ARGS_RECOMMENDED, msg, span));
            }
        }
        Instruction::Healthcheck(_) => used_once(walk, "HEALTHCHECK", kw, span, out),
        Instruction::Workdir(path) => {
            if !walk.inherited.workdir_set && !path.starts_with('/') && !path.starts_with('$') {
                let msg = format!(
                    "Relative workdir {} can have unexpected results if the base image changes",
                    go_quote(path)
                );
                out.push(Finding::new(&WORKDIR_RELATIVE_PATH, msg, span));
            }
            walk.inherited.workdir_set = true;
        }
        Instruction::Env(kvs) => {
            legacy_key_value(node, kw, out);
            for kv in kvs {
                secret_key("ENV", &kv.key, span, out);
            }
        }
        Instruction::Label(_) => legacy_key_value(node, kw, out),
        Instruction::Arg(decls) => {
            for d in decls {
                secret_key("ARG", &d.key, span, out);
            }
        }
        Instruction::Expose(_) => {
            for port in args(node) {
                expose(port, span, out);
            }
        }
        _ => {}
    }
}

/// `MultipleInstructionsDisallowed`, reported at the earlier instruction,
/// the one that has no effect.
fn used_once(
    walk: &mut StageWalk,
    which: &'static str,
    kw: &str,
    span: Span,
    out: &mut Vec<Finding>,
) {
    if let Some((previous, previous_kw)) = walk.last.insert(which, (span, kw.to_string())) {
        let msg = format!(
            "Multiple {previous_kw} instructions should not be used in the same stage because only the last one will be used"
        );
        out.push(Finding::new(
            &MULTIPLE_INSTRUCTIONS_DISALLOWED,
            msg,
            previous,
        ));
    }
}

/// ENV/LABEL arguments come as `key, value, separator` triples; an empty
/// separator is the legacy `ENV key value` form.
fn legacy_key_value(node: &Node, kw: &str, out: &mut Vec<Finding>) {
    let a = args(node);
    let triples = !a.is_empty()
        && a.len().is_multiple_of(3)
        && a.chunks(3).all(|c| c[2].is_empty() || c[2] == "=");
    if triples && a.chunks(3).any(|c| c[2].is_empty()) {
        let msg = format!(
            "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
        );
        out.push(Finding::new(&LEGACY_KEY_VALUE_FORMAT, msg, node.span));
    }
}

fn secret_key(instruction: &str, key: &str, span: Span, out: &mut Vec<Finding>) {
    static PATTERNS: OnceLock<(Regex, Regex)> = OnceLock::new();
    let (deny, allow) = PATTERNS.get_or_init(|| {
        let deny = r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)";
        let allow = r"(?i)(?:_|^)(?:public|file|version)(?:_|$)";
        (Regex::new(deny).expect("valid"), Regex::new(allow).expect("valid"))
    });
    if deny.is_match(key) && !allow.is_match(key) {
        let msg = format!(
            "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
            go_quote(key)
        );
        out.push(Finding::new(&SECRETS_USED_IN_ARG_OR_ENV, msg, span));
    }
}

/// BuildKit's `parsePort` split: `[ip:][hostPort:]containerPort[/proto]`.
fn expose(raw: &str, span: Span, out: &mut Vec<Finding>) {
    if raw.contains('$') {
        return;
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host) = match n {
        1 => ("".to_string(), ""),
        2 => ("".to_string(), parts[0]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let container = parts[n - 1];
    let proto = match container.split_once('/') {
        Some((_, p)) if !p.is_empty() => p,
        _ => "tcp",
    };
    if proto != proto.to_lowercase() {
        let msg = format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase");
        out.push(Finding::new(&EXPOSE_PROTO_CASING, msg, span));
    }
    if !ip.is_empty() || !host.is_empty() {
        let msg = format!(
            "EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
        );
        out.push(Finding::new(&EXPOSE_INVALID_FORMAT, msg, span));
    }
}

/// Rules over the whole file: instruction casing and stage names.
pub(super) fn whole_file(nodes: &Nodes<'_>, out: &mut Vec<Finding>) {
    // BuildKit counts the instructions of stages only (not global ARGs).
    let in_stages: Vec<&Node> = nodes
        .iter()
        .skip_while(|(_, p)| !matches!(p, Parsed::Stage(_)))
        .map(|(n, _)| *n)
        .collect();
    let (mut lower, mut upper) = (0, 0);
    for node in &in_stages {
        let kw = keyword(node);
        if kw == kw.to_lowercase() {
            lower += 1;
        } else if kw == kw.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for node in &in_stages {
        let kw = keyword(node);
        let casing = match majority_lower {
            true if kw != kw.to_lowercase() => "lowercase",
            false if kw != kw.to_uppercase() => "uppercase",
            _ => continue,
        };
        let msg =
            format!("Command '{kw}' should match the case of the command majority ({casing})");
        out.push(Finding::new(&CONSISTENT_INSTRUCTION_CASING, msg, node.span));
    }
    let mut seen = std::collections::HashSet::new();
    for (node, parsed) in nodes {
        let Parsed::Stage(stage) = parsed else {
            continue;
        };
        let Some(name) = &stage.name else { continue };
        if name == "context" || name == "scratch" {
            let msg = format!(
                "Stage name should not use the same name as reserved stage {}",
                go_quote(name)
            );
            out.push(Finding::new(&RESERVED_STAGE_NAME, msg, node.span));
        }
        if !seen.insert(name.clone()) {
            let msg = format!(
                "Duplicate stage name {}, stage names should be unique",
                go_quote(name)
            );
            out.push(Finding::new(&DUPLICATE_STAGE_NAME, msg, node.span));
        }
    }
}
