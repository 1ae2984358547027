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
    Ok(Planned {
        plan,
        dag,
        settings,
        excludes,
    })
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
