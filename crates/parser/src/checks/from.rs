//! BuildKit's rules about FROM words (`UndefinedArgInFrom`,
//! `InvalidDefaultArgInFrom`, `RedundantTargetPlatform`,
//! `FromPlatformFlagConstDisallowed`) and `CopyIgnoredFile`.

use super::config::suggest;
use super::rules::*;
use super::{Finding, Nodes};
use crate::expand::{Lexer, Matches};
use crate::instructions::{CopySource, Instruction, Parsed, Stage};
use crate::lower::{normalize_image_reference, LowerOptions};
use crate::Dockerignore;

/// Variables in order, a later pair overriding an earlier one.
type Scope = Vec<(String, String)>;

/// The global ARG scope FROM lines expand in: platform args, then the
/// global ARGs (with `build_args` overriding defaults when given).
fn meta_scope(
    nodes: &Nodes<'_>,
    lexer: &Lexer,
    opts: &LowerOptions<'_>,
    with_build_args: bool,
) -> Option<(Scope, Vec<String>)> {
    let mut scope = crate::lower::platform_scope(opts);
    let mut declared = Vec::new();
    for (_, parsed) in nodes
        .iter()
        .take_while(|(_, p)| !matches!(p, Parsed::Stage(_)))
    {
        let Parsed::Command(cmd) = parsed else {
            continue;
        };
        let Instruction::Arg(decls) = &cmd.instruction else {
            continue;
        };
        for d in decls {
            declared.push(d.key.clone());
            let given = with_build_args
                .then(|| opts.build_args.get(&d.key))
                .flatten();
            let value = match (given, &d.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(lexer.process_word(default, &scope).ok()?),
                (None, None) => None,
            };
            if let Some(v) = value {
                scope.retain(|(k, _)| k != &d.key);
                scope.push((d.key.clone(), v));
            }
        }
    }
    Some((scope, declared))
}

pub(super) fn from_lines(
    nodes: &Nodes<'_>,
    escape: char,
    opts: &LowerOptions<'_>,
    out: &mut Vec<Finding>,
) {
    let lexer = Lexer::new(escape);
    let stages = nodes.iter().filter_map(|(_, p)| match p {
        Parsed::Stage(s) => Some(s),
        Parsed::Command(_) => None,
    });
    if let Some((defaults, _)) = meta_scope(nodes, &lexer, opts, false) {
        for stage in stages.clone() {
            let Ok(name) = lexer.process_word(&stage.base_name, &defaults) else {
                break;
            };
            if name.is_empty() || normalize_image_reference(&name).is_err() {
                let msg = format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    stage.base_name
                );
                out.push(Finding::new(&INVALID_DEFAULT_ARG_IN_FROM, msg, stage.span));
            }
        }
    }
    let Some((scope, declared)) = meta_scope(nodes, &lexer, opts, true) else {
        return;
    };
    let mut keys: Vec<String> = scope.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(declared);
    for stage in stages {
        if let Ok((_, m)) = lexer.process_word_with_matches(&stage.base_name, &scope) {
            undeclared(&m, &keys, stage, out);
        }
        let Some(platform) = &stage.platform else {
            continue;
        };
        let Ok((result, m)) = lexer.process_word_with_matches(platform, &scope) else {
            continue;
        };
        undeclared(&m, &keys, stage, out);
        let target = scope
            .iter()
            .find(|(k, _)| k == "TARGETPLATFORM")
            .map(|(_, v)| v.as_str());
        let only_target =
            m.unmatched.is_empty() && m.matched.len() == 1 && m.matched.contains("TARGETPLATFORM");
        if only_target && target == Some(result.as_str()) {
            let msg = format!(
                "Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"
            );
            out.push(Finding::new(&REDUNDANT_TARGET_PLATFORM, msg, stage.span));
        }
        if m.matched.is_empty() && m.unmatched.is_empty() {
            const_platform(stage, &result, out);
        }
    }
}

fn undeclared(m: &Matches, keys: &[String], stage: &Stage, out: &mut Vec<Finding>) {
    for name in &m.unmatched {
        if keys.contains(name) {
            continue;
        }
        let hint = suggest(name, keys.iter().map(String::as_str))
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        let msg = format!("FROM argument '{name}' is not declared{hint}");
        out.push(Finding::new(&UNDEFINED_ARG_IN_FROM, msg, stage.span));
    }
}

/// A constant `--platform` is fine when the stage's name says which
/// platform it is for (`AS build-amd64`).
fn const_platform(stage: &Stage, platform: &str, out: &mut Vec<Finding>) {
    let parts: Vec<&str> = platform.split('/').collect();
    let (os, arch) = match parts.as_slice() {
        [os, arch, ..] if !os.is_empty() && !arch.is_empty() => (*os, *arch),
        _ => return,
    };
    let name = stage.name.as_deref().unwrap_or_default();
    if name.contains(os) || name.contains(arch) {
        return;
    }
    let msg = format!(
        "FROM --platform flag should not use constant value {}",
        crate::expand::go_quote(platform)
    );
    out.push(Finding::new(
        &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
        msg,
        stage.span,
    ));
}

/// `CopyIgnoredFile`: a COPY/ADD from the context names a path that
/// `.dockerignore` leaves out. Like BuildKit, not checked when the ignore
/// file has `!` exceptions (too hard to decide statically).
pub(super) fn copy_ignored(nodes: &Nodes<'_>, excludes: &[String], out: &mut Vec<Finding>) {
    if excludes.is_empty() || excludes.iter().any(|p| p.starts_with('!')) {
        return;
    }
    let Ok(ignore) = Dockerignore::from_patterns(excludes) else {
        return;
    };
    let root_ignored = excludes
        .iter()
        .any(|p| matches!(p.as_str(), "*" | "**" | "**/*"));
    for (node, parsed) in nodes {
        let Parsed::Command(cmd) = parsed else {
            continue;
        };
        let (verb, copy) = match &cmd.instruction {
            Instruction::Copy(c) => ("Copy", c),
            Instruction::Add(c) => ("Add", c),
            _ => continue,
        };
        if copy.from.is_some() {
            continue;
        }
        for source in &copy.sources {
            let CopySource::Path(src) = source else {
                continue;
            };
            if src.contains('$') || src.contains("://") || src.starts_with("git@") {
                continue;
            }
            let clean = clean_path(src);
            let root = clean == "." || clean == "/";
            if (root && root_ignored) || (!root && ignore.is_excluded(&clean)) {
                let msg = format!(
                    "Attempting to {verb} file {} that is excluded by .dockerignore",
                    crate::expand::go_quote(&clean)
                );
                out.push(Finding::new(&COPY_IGNORED_FILE, msg, node.span));
            }
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean_path(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}
