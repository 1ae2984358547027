//! The stage table: expanded base names and platforms, stage references,
//! cycle detection, the target and a dependency order to lower in.

use rbk_graph::Platform;

use super::reference::{normalize_reference, parse_platform};
use super::state::Lowerer;
use super::{BaseRef, NamedContext};
use crate::error::{Error, Location};
use crate::instructions::{parse_mount, Command, Dockerfile, Instruction, Stage};
use crate::syntax::Span;

/// What the whole file's stages look like before any is lowered.
pub(crate) struct StageTable {
    /// Per stage, in file order.
    pub(crate) stages: Vec<StageInfo>,
    /// The target stage.
    pub(crate) target: usize,
    /// An order in which every stage comes after what it needs.
    pub(crate) order: Vec<usize>,
    /// Each stage's `AS` name, for resolving `--from`.
    pub(crate) names: Vec<Option<String>>,
}

pub(crate) struct StageInfo {
    pub(crate) name: Option<String>,
    pub(crate) base: BaseRef,
    pub(crate) platform: Platform,
    /// Stages used by `COPY --from`/`RUN --mount=from`, with the command.
    pub(crate) deps: Vec<(usize, Span)>,
}

/// What a `--from` value names.
pub(crate) enum FromRef {
    Stage(usize),
    Image(String),
    /// A `--build-context` name.
    Named(String),
}

impl StageTable {
    /// The display name BuildKit uses: the `AS` name or `stage-N`.
    pub(crate) fn display_name(&self, idx: usize) -> String {
        self.stages[idx]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{idx}"))
    }
}

pub(crate) fn stage_error(file: &str, span: Span, message: String) -> Error {
    Error::Stage {
        location: Location::lines(file, span.start_line, span.end_line),
        message,
    }
}

/// Resolves `--from` (already expanded): an index, a stage name, or an image.
pub(crate) fn resolve_from(
    lw: &Lowerer<'_>,
    names: &[Option<String>],
    from: &str,
) -> Result<FromRef, String> {
    let lower = from.to_ascii_lowercase();
    if lw.named_context(&lower).is_some() {
        return Ok(FromRef::Named(lower));
    }
    // `COPY --from=docker-image://REF` needs no stage, as in BuildKit.
    if let Some(image) = from.strip_prefix("docker-image://") {
        return normalize_reference(image)
            .map(FromRef::Image)
            .map_err(|e| format!("invalid from flag value {from}: {e}"));
    }
    if let Ok(index) = from.parse::<i64>() {
        return match usize::try_from(index) {
            Ok(i) if i < names.len() => Ok(FromRef::Stage(i)),
            _ => Err(format!("invalid stage index {index}")),
        };
    }
    let lower = from.to_ascii_lowercase();
    if let Some(i) = names
        .iter()
        .position(|n| n.as_deref() == Some(lower.as_str()))
    {
        return Ok(FromRef::Stage(i));
    }
    normalize_reference(from)
        .map(FromRef::Image)
        .map_err(|e| format!("invalid from flag value {from}: {e}"))
}

pub(crate) fn prepare(lw: &Lowerer<'_>, df: &Dockerfile) -> Result<StageTable, Error> {
    let file = &lw.opts.file;
    let names: Vec<Option<String>> = df.stages.iter().map(|s| s.name.clone()).collect();
    let mut infos: Vec<StageInfo> = Vec::new();
    for (i, stage) in df.stages.iter().enumerate() {
        let info = stage_info(lw, &names, i, stage, &infos)?;
        infos.push(info);
    }
    check_cycles(file, &infos)?;
    let target = match &lw.opts.target {
        None => infos.len() - 1,
        Some(t) => {
            let t = t.to_ascii_lowercase();
            names
                .iter()
                .position(|n| n.as_deref() == Some(t.as_str()))
                .ok_or_else(|| Error::Stage {
                    location: Location::lines(file, 0, 0),
                    message: format!("target stage {t:?} could not be found"),
                })?
        }
    };
    let order = topo_order(&infos);
    Ok(StageTable {
        stages: infos,
        target,
        order,
        names,
    })
}

/// Expands one FROM line with the global ARGs and resolves its base.
fn stage_info(
    lw: &Lowerer<'_>,
    names: &[Option<String>],
    i: usize,
    stage: &Stage,
    earlier: &[StageInfo],
) -> Result<StageInfo, Error> {
    let file = &lw.opts.file;
    if let Some(name) = &stage.name {
        if names[..i].iter().any(|n| n.as_deref() == Some(name)) {
            return Err(stage_error(
                file,
                stage.span,
                format!("duplicate stage name {name:?}"),
            ));
        }
    }
    let base_name = lw.expand_in(&stage.base_name, &lw.global, stage.span)?;
    if base_name.is_empty() {
        let msg = format!("base name ({}) should not be blank", stage.base_name);
        return Err(stage_error(file, stage.span, msg));
    }
    let base = match lw.named_context(&base_name.to_ascii_lowercase()) {
        Some(NamedContext::Image(r)) => BaseRef::Image(r.clone()),
        Some(_) => {
            let msg = format!(
                "build context {base_name:?} is a directory or a git repository: \
                 use it with COPY --from or RUN --mount=from, or give FROM a \
                 docker-image:// context"
            );
            return Err(stage_error(file, stage.span, msg));
        }
        None => {
            resolve_base(&names[..i], &base_name).map_err(|m| stage_error(file, stage.span, m))?
        }
    };
    let platform = match (&stage.platform, &base) {
        (Some(p), _) => {
            let p = lw.expand_in(p, &lw.global, stage.span)?;
            parse_platform(&p, &lw.opts.target_platform)
                .map_err(|m| stage_error(file, stage.span, m))?
        }
        (None, BaseRef::Stage(b)) => earlier[*b].platform.clone(),
        (None, _) => lw.opts.target_platform.clone(),
    };
    let deps = command_deps(lw, names, &stage.commands)?;
    Ok(StageInfo {
        name: stage.name.clone(),
        base,
        platform,
        deps,
    })
}

fn resolve_base(earlier: &[Option<String>], base: &str) -> Result<BaseRef, String> {
    let lower = base.to_ascii_lowercase();
    if let Some(i) = earlier
        .iter()
        .position(|n| n.as_deref() == Some(lower.as_str()))
    {
        return Ok(BaseRef::Stage(i));
    }
    if lower == "scratch" {
        return Ok(BaseRef::Scratch);
    }
    normalize_reference(base)
        .map(BaseRef::Image)
        .map_err(|e| format!("failed to parse stage name {base:?}: {e}"))
}

fn command_deps(
    lw: &Lowerer<'_>,
    names: &[Option<String>],
    commands: &[Command],
) -> Result<Vec<(usize, Span)>, Error> {
    let file = &lw.opts.file;
    let mut deps = Vec::new();
    for cmd in commands {
        let froms: Vec<String> = match &cmd.instruction {
            Instruction::Copy(c) => match &c.from {
                Some(f) => vec![lw.expand_in(f, &lw.global, cmd.span)?],
                None => vec![],
            },
            Instruction::Run(r) => r
                .mounts
                .iter()
                .filter_map(|m| parse_mount(m, None).ok().and_then(|m| m.from))
                .collect(),
            _ => vec![],
        };
        for from in froms {
            match resolve_from(lw, names, &from).map_err(|m| stage_error(file, cmd.span, m))? {
                FromRef::Stage(i) => deps.push((i, cmd.span)),
                FromRef::Image(_) | FromRef::Named(_) => {}
            }
        }
    }
    Ok(deps)
}

/// BuildKit's `validateCircularDependency`: a depth-first walk over the
/// `--from` edges from each stage in order.
fn check_cycles(file: &str, infos: &[StageInfo]) -> Result<(), Error> {
    let mut visited = vec![false; infos.len()];
    for start in 0..infos.len() {
        let mut on_path = vec![false; infos.len()];
        if let Some(span) = visit(infos, start, &mut visited, &mut on_path) {
            let name = infos[start]
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{start}"));
            return Err(stage_error(
                file,
                span,
                format!("circular dependency detected on stage: {name}"),
            ));
        }
    }
    Ok(())
}

fn visit(
    infos: &[StageInfo],
    s: usize,
    visited: &mut [bool],
    on_path: &mut [bool],
) -> Option<Span> {
    if visited[s] {
        return None;
    }
    visited[s] = true;
    on_path[s] = true;
    for &(dep, span) in &infos[s].deps {
        if on_path[dep] {
            return Some(span);
        }
        if let Some(found) = visit(infos, dep, visited, on_path) {
            return Some(found);
        }
    }
    on_path[s] = false;
    None
}

fn topo_order(infos: &[StageInfo]) -> Vec<usize> {
    fn walk(infos: &[StageInfo], s: usize, seen: &mut [bool], out: &mut Vec<usize>) {
        if seen[s] {
            return;
        }
        seen[s] = true;
        if let BaseRef::Stage(b) = infos[s].base {
            walk(infos, b, seen, out);
        }
        for &(d, _) in &infos[s].deps {
            walk(infos, d, seen, out);
        }
        out.push(s);
    }
    let mut seen = vec![false; infos.len()];
    let mut out = Vec::new();
    for s in 0..infos.len() {
        walk(infos, s, &mut seen, &mut out);
    }
    out
}
