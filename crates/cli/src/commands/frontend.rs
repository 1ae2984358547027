//! From arguments to a pruned build graph: read the Dockerfile and
//! `.dockerignore`, parse, lower, prune to the target.

use std::path::Path;

use anyhow::Context;
use rbk_graph::Dag;
use rbk_parser::{Dockerignore, ImageResolver, LowerOptions, Plan};

use crate::args::FrontendArgs;
use crate::render::DockerfileError;
use crate::settings::FrontendSettings;

/// A lowered Dockerfile and the graph of what its target needs.
pub(crate) struct Planned {
    pub(crate) plan: Plan,
    pub(crate) dag: Dag,
    pub(crate) settings: FrontendSettings,
    /// The context's `.dockerignore` patterns.
    pub(crate) excludes: Vec<String>,
    /// What the parser and lowering warn about, in BuildKit's words.
    pub(crate) warnings: Vec<String>,
    /// Set when `# syntax=` names a frontend rbk does not implement: the
    /// warning to give (or the error, under `--strict`).
    pub(crate) foreign_syntax: Option<String>,
}

impl Planned {
    /// The target stage, the pruned graph, then the target's image config.
    pub(crate) fn dump(&self) -> String {
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

/// `no_cache` marks every vertex to run even when the cache has a result;
/// base images' configs come from `resolver` (empty configs without one).
pub(crate) fn plan(
    args: FrontendArgs,
    no_cache: bool,
    resolver: Option<&dyn ImageResolver>,
) -> anyhow::Result<Planned> {
    plan_with(args, no_cache, &[], resolver)
}

/// Like [`plan`]; vertices of the stages named in `no_cache_stages` (by name
/// or index) ignore the cache (`--no-cache-filter`).
pub(crate) fn plan_with(
    args: FrontendArgs,
    no_cache: bool,
    no_cache_stages: &[String],
    resolver: Option<&dyn ImageResolver>,
) -> anyhow::Result<Planned> {
    let settings = FrontendSettings::resolve(args)?;
    let excludes = dockerignore(&settings)?;
    let wrap = |error| DockerfileError {
        text: settings.text.clone(),
        error,
    };
    let ast = rbk_parser::parse(&settings.text, &settings.file_name).map_err(wrap)?;
    let mut warnings: Vec<String> = ast
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.location, w.message))
        .collect();
    let foreign_syntax = ast.directives.syntax.as_deref().and_then(foreign_frontend);
    let opts = LowerOptions {
        file: settings.file_name.clone(),
        target: settings.target.clone(),
        build_args: settings.build_args.clone(),
        target_platform: settings.platform.clone(),
        context_excludes: excludes.clone(),
        no_cache,
        image_resolver: resolver,
        ..LowerOptions::default()
    };
    let mut plan = rbk_parser::lower(&ast, &opts).map_err(wrap)?;
    for vertex in &mut plan.definition.vertices {
        if let Some(stage) = &vertex.meta.stage {
            if no_cache_stages
                .iter()
                .any(|s| s.eq_ignore_ascii_case(stage))
            {
                vertex.meta.ignore_cache = true;
            }
        }
    }
    let dag = Dag::new(&plan.definition, &plan.roots()).context("building the graph")?;
    warnings.extend(plan.warnings.iter().cloned());
    Ok(Planned {
        plan,
        dag,
        settings,
        excludes,
        warnings,
        foreign_syntax,
    })
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

/// The context's ignore patterns: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over `.dockerignore` in the context root, as in BuildKit.
fn dockerignore(settings: &FrontendSettings) -> anyhow::Result<Vec<String>> {
    let beside = settings
        .dockerfile_path
        .as_deref()
        .map(|p| p.with_file_name(format!("{}.dockerignore", settings.file_name)));
    let candidates = beside
        .into_iter()
        .chain([settings.context.join(".dockerignore")]);
    for path in candidates {
        if let Some(patterns) = read_ignore_file(&path)? {
            return Ok(patterns);
        }
    }
    Ok(Vec::new())
}

fn read_ignore_file(path: &Path) -> anyhow::Result<Option<Vec<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let name = path.display().to_string();
    let ignore =
        Dockerignore::parse(&text, &name).map_err(|error| DockerfileError { text, error })?;
    Ok(Some(ignore.patterns().to_vec()))
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
