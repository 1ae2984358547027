//! From a Dockerfile to a pruned build graph: read `.dockerignore`, parse,
//! lower (resolving base images), prune to the target, and mark the
//! vertices `--no-cache-filter` names.

use std::path::Path;

use rbk_graph::Dag;
use rbk_parser::checks::Checks;
use rbk_parser::{Dockerignore, ImageResolver, LowerOptions, Plan};

use crate::checks::CheckReport;
use crate::request::Dockerfile;
use crate::{Error, Result};

/// A lowered Dockerfile and the graph of what its target needs.
pub struct Planned {
    /// Every stage, lowered.
    pub plan: Plan,
    /// The pruned graph of the target.
    pub dag: Dag,
    /// The context's `.dockerignore` patterns.
    pub excludes: Vec<String>,
    /// What lowering warns about, in BuildKit's words (unused build args).
    pub warnings: Vec<String>,
    /// The build checks' findings, filtered by `# check=`.
    pub checks: CheckReport,
    /// Set when `# syntax=` names a frontend rbk does not implement: the
    /// warning to give (or the error, under `strict`).
    pub foreign_syntax: Option<String>,
}

impl Planned {
    /// The target stage, the pruned graph, then the target's image config
    /// (what `rbk debug plan` prints).
    pub fn dump(&self) -> String {
        let stage = self.plan.target_stage();
        let name = stage.name.as_deref().unwrap_or("<unnamed>");
        let config = serde_json::to_string_pretty(&stage.config).unwrap_or_default();
        format!(
            "target: {name} (stage {})\n{}config: {config}\n",
            stage.index,
            self.dag.dump()
        )
    }
}

/// What to plan.
pub struct PlanOptions<'a> {
    /// The Dockerfile.
    pub dockerfile: &'a Dockerfile,
    /// The context directory (for `.dockerignore`).
    pub context: &'a Path,
    /// The lowering options (target, build args, platforms).
    pub lower: LowerOptions<'a>,
    /// Stages whose vertices ignore the cache (`--no-cache-filter`), by
    /// name or index.
    pub no_cache_stages: &'a [String],
}

/// Plans `options.dockerfile`; base images' configs come from `resolver`
/// (empty configs without one).
pub fn plan<'a>(
    mut options: PlanOptions<'a>,
    resolver: Option<&'a dyn ImageResolver>,
) -> Result<Planned> {
    let dockerfile = options.dockerfile;
    let excludes = dockerignore(dockerfile, options.context)?;
    let wrap = |error| Error::Dockerfile {
        text: dockerfile.text.clone(),
        error,
    };
    let ast = rbk_parser::parse(&dockerfile.text, &dockerfile.name).map_err(wrap)?;
    let foreign_syntax = ast.directives.syntax.as_deref().and_then(foreign_frontend);
    options.lower.file = dockerfile.name.clone();
    options.lower.context_excludes = excludes.clone();
    options.lower.image_resolver = resolver;
    let mut plan = rbk_parser::lower(&ast, &options.lower).map_err(wrap)?;
    for vertex in &mut plan.definition.vertices {
        if let Some(stage) = &vertex.meta.stage {
            if options
                .no_cache_stages
                .iter()
                .any(|s| s.eq_ignore_ascii_case(stage))
            {
                vertex.meta.ignore_cache = true;
            }
        }
    }
    let dag = Dag::new(&plan.definition, &plan.roots())?;
    let checks = run_checks(&ast, dockerfile, &options.lower, &plan)?;
    Ok(Planned {
        warnings: plan.warnings.clone(),
        plan,
        dag,
        excludes,
        checks,
        foreign_syntax,
    })
}

/// The parser's rules plus lowering's findings, filtered by the
/// Dockerfile's `# check=` (or the `BUILDKIT_DOCKERFILE_CHECK` build arg).
fn run_checks(
    ast: &rbk_parser::Ast,
    dockerfile: &Dockerfile,
    lower: &LowerOptions<'_>,
    plan: &Plan,
) -> Result<CheckReport> {
    let build_arg = lower.build_args.get("BUILDKIT_DOCKERFILE_CHECK");
    let config = Checks::new(
        ast.directives.check.as_deref(),
        build_arg.map(String::as_str),
        &dockerfile.text,
    )
    .map_err(|e| Error::Invalid(format!("{}: {e}", dockerfile.name)))?;
    let mut found = rbk_parser::checks::run(ast, &dockerfile.text, lower);
    found.extend(plan.findings.iter().cloned());
    found.sort_by_key(|f| f.line);
    let findings = config.filter(found);
    let buildkit: Vec<_> = findings
        .iter()
        .filter(|f| f.rule.origin == rbk_parser::checks::Origin::BuildKit)
        .cloned()
        .collect();
    Ok(CheckReport {
        violation: config.violation(&buildkit),
        notes: config.notes.clone(),
        findings,
    })
}

/// The context's ignore patterns: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over `.dockerignore` in the context root, as in BuildKit.
fn dockerignore(dockerfile: &Dockerfile, context: &Path) -> Result<Vec<String>> {
    let beside = dockerfile
        .path
        .as_deref()
        .map(|p| p.with_file_name(format!("{}.dockerignore", dockerfile.name)));
    let candidates = beside.into_iter().chain([context.join(".dockerignore")]);
    for path in candidates {
        if let Some(patterns) = read_ignore_file(&path)? {
            return Ok(patterns);
        }
    }
    Ok(Vec::new())
}

fn read_ignore_file(path: &Path) -> Result<Option<Vec<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                what: "reading",
                path: path.display().to_string(),
                source,
            })
        }
    };
    let name = path.display().to_string();
    let ignore = Dockerignore::parse(&text, &name).map_err(|error| Error::Dockerfile {
        text: text.clone(),
        error,
    })?;
    Ok(Some(ignore.patterns().to_vec()))
}

/// The warning for a `# syntax=` image that is not the Dockerfile 1.x
/// frontend (`docker/dockerfile:1…`, `-labs`, `docker/dockerfile-upstream`),
/// which rbk would have to pull and run; `None` for the ones rbk implements.
fn foreign_frontend(syntax: &str) -> Option<String> {
    let name = syntax.split('@').next().unwrap_or_default();
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let (repo, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    };
    let known_repo = matches!(repo, "docker/dockerfile" | "docker/dockerfile-upstream");
    let known_tag = tag == "latest"
        || tag.starts_with("master")
        || tag == "1"
        || tag.starts_with("1.")
        || tag.starts_with("1-");
    if known_repo && known_tag {
        return None;
    }
    Some(format!(
        "# syntax={syntax} names a frontend rbk cannot run (it runs no external frontends); \
         building with rbk's own Dockerfile frontend instead"
    ))
}

#[cfg(test)]
mod tests {
    use super::foreign_frontend;

    #[test]
    fn dockerfile_1x_frontends_are_ours_others_are_foreign() {
        for ours in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.7",
            "docker/dockerfile:1.7.1-labs",
            "docker/dockerfile:1-labs",
            "docker.io/docker/dockerfile:1@sha256:abc",
            "docker/dockerfile",
            "docker/dockerfile-upstream:master",
        ] {
            assert_eq!(foreign_frontend(ours), None, "{ours}");
        }
        for foreign in [
            "docker/dockerfile:0.1",
            "tonistiigi/dockerfile:runmount",
            "example.com/my/frontend:2",
            "moby/buildkit:latest",
        ] {
            let warning = foreign_frontend(foreign).expect(foreign);
            assert!(warning.contains(foreign), "{warning}");
        }
    }
}
