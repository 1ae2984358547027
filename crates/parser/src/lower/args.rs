//! ARG scoping: platform args, global ARGs before the first FROM, and
//! per-stage declarations.

use rbk_graph::Platform;

use super::reference::format_platform;
use super::state::Lowerer;
use crate::error::Error;
use crate::instructions::{Command, Instruction, Stage};
use crate::LowerOptions;

/// Proxy args: passed to RUN when given, never written to history or config.
pub(crate) const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub(crate) fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

/// BuildKit's warning for `--build-arg`s that no `ARG` of the global scope
/// or of any stage declares. Built-in args (the proxy
/// variables, `SOURCE_DATE_EPOCH`, `BUILDKIT_*` settings and the platform
/// args) are never reported.
pub(crate) fn unconsumed_warning(
    opts: &LowerOptions<'_>,
    meta: &[Command],
    stages: &[Stage],
) -> Option<String> {
    let declared: std::collections::BTreeSet<&str> = meta
        .iter()
        .chain(stages.iter().flat_map(|s| s.commands.iter()))
        .filter_map(|cmd| match &cmd.instruction {
            Instruction::Arg(decls) => Some(decls.iter().map(|d| d.key.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    let builtin = |k: &str| {
        is_proxy_arg(k)
            || k == "SOURCE_DATE_EPOCH"
            || k.starts_with("BUILDKIT_")
            || platform_args(&opts.build_platform, &opts.target_platform)
                .iter()
                .any(|(name, _)| name == k)
    };
    let unused: Vec<&str> = opts
        .build_args
        .keys()
        .map(String::as_str)
        .filter(|k| !declared.contains(k) && !builtin(k))
        .collect();
    (!unused.is_empty()).then(|| {
        format!(
            "[Warning] One or more build-args [{}] were not consumed",
            unused.join(" ")
        )
    })
}

/// `TARGETPLATFORM`, `TARGETOS`, … `BUILDVARIANT`, as BuildKit defines them.
pub(crate) fn platform_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        out.push((format!("{prefix}PLATFORM"), format_platform(p)));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant.clone()));
    }
    out
}

/// The scope FROM lines see: platform args plus the global ARGs, with
/// `--build-arg` overriding their defaults.
pub(crate) fn global_args(
    lw: &Lowerer<'_>,
    meta: &[Command],
) -> Result<Vec<(String, String)>, Error> {
    let opts = lw.opts;
    let mut scope = platform_args(&opts.build_platform, &opts.target_platform);
    for cmd in meta {
        let Instruction::Arg(decls) = &cmd.instruction else {
            continue;
        };
        for decl in decls {
            let value = match (opts.build_args.get(&decl.key), &decl.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(lw.expand_in(default, &scope, cmd.span)?),
                (None, None) => None,
            };
            if let Some(v) = value {
                scope.retain(|(k, _)| k != &decl.key);
                scope.push((decl.key.clone(), v));
            }
        }
    }
    Ok(scope)
}
