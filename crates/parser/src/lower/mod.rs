//! Lowering: typed instructions to an [`rbk_graph::Definition`] plus the
//! image config and history each stage accumulates, following BuildKit's
//! `dockerfile2llb/convert.go`.
//!
//! Every stage is lowered (in dependency order, so that vertex inputs always
//! point backwards); `COPY --from` and `RUN --mount=from=` become real input
//! edges, so pruning to [`Plan::roots`] is one reachability pass on the DAG.
//! The build context is one shared `SourceOp::Local { name: "context" }`
//! vertex, images are one `SourceOp::Image` vertex per reference and
//! platform. The parser does no I/O: base image configs come from the
//! caller's [`ImageResolver`].
//!
//! Decisions where BuildKit is silent or cannot be copied:
//! - Proxy build args (`HTTP_PROXY`, …) given with `--build-arg` are added to
//!   every RUN's environment (BuildKit keeps them out of the cache key; the
//!   graph has no separate field yet) and never to history or config.
//! - `COPY --from=$X` is expanded with the global ARGs (as a FROM line is);
//!   `RUN --mount=from=$X` is refused like BuildKit does.
//! - Errors in stages that the target does not need are still reported,
//!   because every stage is lowered.

/// The most text lowering makes of one Dockerfile: every expanded word and
/// COPY heredoc plus every RUN's environment, in bytes. Each word stops at 1 MiB
/// ([`crate::expand::MAX_EXPANDED_LEN`]), but line after line can still
/// multiply: `ENV A1=$A0$A0` reaches 1 MiB in 20 lines, every further
/// `ENV Bn=$A20` or `LABEL` adds a MiB, and every RUN carries the whole
/// environment into its vertex. Real Dockerfiles use well under a MiB.
pub const MAX_LOWERED_TEXT: usize = 256 << 20;

mod args;
mod config;
mod copy;
mod dump;
mod named;
mod reference;
mod run;
mod stages;
mod state;

use std::collections::BTreeMap;

use rbk_graph::image::{ContainerConfig, History};
use rbk_graph::{Definition, NodeId, Platform};

use crate::error::Error;
use crate::instructions::{parse_dockerfile, Dockerfile};
use crate::syntax::{Ast, Node};

pub use named::NamedContext;
pub use reference::{format_platform_string, normalize_image_reference};

/// Gives the config of a base image. Implemented by the CLI over the store
/// or a registry; the parser never fetches anything itself.
pub trait ImageResolver {
    /// The config of `reference` (normalised, e.g.
    /// `docker.io/library/alpine:latest`) for `platform`. The error, with
    /// its causes, is shown to the user at the FROM line.
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ContainerConfig, ResolveError>;
}

/// Why an [`ImageResolver`] could not resolve an image: the resolver's own
/// error (a registry's, a store's), kept with its sources.
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// What [`lower`] needs besides the Dockerfile.
#[derive(Clone)]
pub struct LowerOptions<'a> {
    /// The Dockerfile's name as the user gave it (for error locations).
    pub file: String,
    /// `--target`: a stage name; `None` is the last stage.
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The platform the build runs on (`BUILDPLATFORM`).
    pub build_platform: Platform,
    /// The platform images are built for (`TARGETPLATFORM`).
    pub target_platform: Platform,
    /// Where base image configs come from; `None` gives empty configs.
    pub image_resolver: Option<&'a dyn ImageResolver>,
    /// `--no-cache`: every vertex gets `ignore_cache`.
    pub no_cache: bool,
    /// `.dockerignore` patterns, put on the context source vertex.
    pub context_excludes: Vec<String>,
    /// `--build-context` names (lower-case) and what they are.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

impl Default for LowerOptions<'_> {
    fn default() -> Self {
        let host = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        };
        LowerOptions {
            file: "Dockerfile".into(),
            target: None,
            build_args: BTreeMap::new(),
            build_platform: host.clone(),
            target_platform: host,
            image_resolver: None,
            no_cache: false,
            context_excludes: Vec::new(),
            named_contexts: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for LowerOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LowerOptions")
            .field("file", &self.file)
            .field("target", &self.target)
            .field("build_args", &self.build_args.keys().collect::<Vec<_>>())
            .field("target_platform", &self.target_platform)
            .field("no_cache", &self.no_cache)
            .finish_non_exhaustive()
    }
}

/// What a stage starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseRef {
    /// `FROM scratch`.
    Scratch,
    /// An image, by normalised reference.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// One lowered stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagePlan {
    /// `AS name`.
    pub name: Option<String>,
    /// Position in the file.
    pub index: usize,
    /// What it starts from.
    pub base: BaseRef,
    /// The vertex holding the stage's final filesystem.
    pub output: NodeId,
    /// The image config at the end of the stage.
    pub config: ContainerConfig,
    /// History entries this Dockerfile added (inherited from earlier stages
    /// built on; a base image's own history is not included).
    pub history: Vec<History>,
    /// The stage's platform.
    pub platform: Platform,
    /// `MAINTAINER` (the image's `author`), empty when unset.
    pub author: String,
}

/// The lowered Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Every stage's vertices.
    pub definition: Definition,
    /// Every stage, in file order.
    pub stages: Vec<StagePlan>,
    /// Index of the target stage.
    pub target: usize,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
    /// Build-check findings that lowering makes (`UndefinedVar`),
    /// unfiltered: [`crate::checks::Checks`] decides which are shown.
    pub findings: Vec<crate::checks::Finding>,
}

impl Plan {
    /// The stage being built.
    pub fn target_stage(&self) -> &StagePlan {
        &self.stages[self.target]
    }

    /// The vertices to build: the target stage's output. Prune the
    /// definition to what these reach.
    pub fn roots(&self) -> Vec<NodeId> {
        vec![self.target_stage().output]
    }

    /// A stable text dump: stages with configs and history, then vertices.
    pub fn dump(&self) -> String {
        dump::dump(self)
    }
}

/// The platform args (`TARGETPLATFORM`, …) as FROM lines see them.
pub(crate) fn platform_scope(opts: &LowerOptions<'_>) -> Vec<(String, String)> {
    args::platform_args(&opts.build_platform, &opts.target_platform)
}

/// Lowers a parsed Dockerfile: the usual entry point.
///
/// ```
/// use rbk_parser::{lower, parse, LowerOptions};
///
/// let ast = parse("FROM busybox AS b\nRUN echo hi\n", "Dockerfile").unwrap();
/// let plan = lower(&ast, &LowerOptions::default()).unwrap();
/// assert_eq!(plan.roots(), vec![plan.stages[0].output]);
/// ```
pub fn lower(ast: &Ast, opts: &LowerOptions<'_>) -> Result<Plan, Error> {
    ast.validate(&opts.file)?;
    let df = parse_dockerfile(&ast.root, &opts.file)?;
    lower_checked(&df, ast.directives.escape, opts, true)
}

/// Lowers a parse tree (`root` as produced by [`crate::syntax`], `escape`
/// from its directives).
pub fn lower_node(root: &Node, escape: char, opts: &LowerOptions<'_>) -> Result<Plan, Error> {
    let df = parse_dockerfile(root, &opts.file)?;
    lower_dockerfile(&df, escape, opts)
}

/// Lowers typed instructions (with BuildKit's default checks on).
pub fn lower_dockerfile(
    df: &Dockerfile,
    escape: char,
    opts: &LowerOptions<'_>,
) -> Result<Plan, Error> {
    lower_checked(df, escape, opts, true)
}

fn lower_checked(
    df: &Dockerfile,
    escape: char,
    opts: &LowerOptions<'_>,
    check_undefined: bool,
) -> Result<Plan, Error> {
    if df.stages.is_empty() {
        let line = df.meta_args.last().map_or(1, |c| c.span.end_line.max(1));
        return Err(Error::Stage {
            location: crate::error::Location::lines(&opts.file, line, line),
            message: "dockerfile contains no stages to build".into(),
        });
    }
    let mut lw = state::Lowerer::new(opts, escape);
    lw.check_undefined = check_undefined;
    lw.global = args::global_args(&lw, &df.meta_args)?;
    let table = stages::prepare(&lw, df)?;
    let mut done: Vec<Option<StagePlan>> = vec![None; df.stages.len()];
    let mut states: Vec<Option<state::StageState>> = (0..df.stages.len()).map(|_| None).collect();
    for &idx in &table.order {
        let (plan, st) = lw.lower_stage(&df.stages[idx], idx, &table, &done, &states)?;
        done[idx] = Some(plan);
        states[idx] = Some(st);
    }
    lw.warnings
        .extend(args::unconsumed_warning(opts, &df.meta_args, &df.stages));
    let unused = lw.unused_named_warnings();
    lw.warnings.extend(unused);
    Ok(Plan {
        definition: lw.def,
        stages: done
            .into_iter()
            .map(|s| s.expect("every stage lowered"))
            .collect(),
        target: table.target,
        warnings: lw.warnings,
        findings: lw.findings,
    })
}
