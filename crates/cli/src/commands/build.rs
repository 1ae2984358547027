//! `rbk build`: plan the Dockerfile, solve the graph against the store,
//! write and tag the image, then any extra outputs.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use rbk_exec::{
    commit_image, Entitlements, ImageSpec, LocalDir, PathFilter, Runc, SolveOptions, Solver,
};
use rbk_graph::image::ImageConfig;
use rbk_graph::{Platform, Scheduler};
use rbk_parser::{BaseRef, Dockerignore, ImageResolver, StagePlan};
use rbk_store::image::{format_rfc3339, History};
use rbk_store::{Reference, Store};

use crate::args::BuildArgs;
use crate::commands::{cache, frontend, output};
use crate::progress::Progress;
use crate::render;

pub(crate) fn run(root: Option<&Path>, mut args: BuildArgs) -> anyhow::Result<ExitCode> {
    let tags = args
        .tags
        .iter()
        .map(|t| {
            t.parse::<Reference>()
                .with_context(|| format!("invalid tag {t:?} given with -t"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut outputs = output::parse_all(&args.outputs)?;
    if args.push {
        outputs.push(output::Output::Registry(None));
    }
    let labels = parse_labels(&args.labels)?;
    let entitlements = parse_entitlements(&args.allow)?;
    let caches = cache::CacheSpecs::parse(&args.cache_from, &args.cache_to)?;
    let store = crate::settings::open_store(root)?;
    rbk_exec::recover_store(&store)?;
    let _lease = store.lease()?;
    // `rbk build -`: the context (or a lone Dockerfile) comes from stdin,
    // unpacked under the store's tmp/ until the build ends.
    let _stdin_context = match args.frontend.context.as_os_str() == "-" {
        true => {
            let ctx = super::stdin_context::read(&store, args.frontend.file.as_deref())?;
            args.frontend.context = ctx.context.clone();
            args.frontend.file = Some(ctx.dockerfile.clone());
            Some(ctx)
        }
        false => None,
    };
    let resolver = StoreResolver(&store, args.pull);
    let planned = frontend::plan_with(
        args.frontend,
        args.no_cache,
        &args.no_cache_filter,
        Some(&resolver),
    )?;
    if let Some(syntax) = &planned.foreign_syntax {
        if args.strict {
            bail!("{syntax} (--strict)");
        }
    }
    report_warnings(planned.foreign_syntax.iter().chain(&planned.warnings));
    fetch_images(&store, &planned)?;
    let runs = planned
        .dag
        .vertices()
        .iter()
        .any(|v| matches!(v.op(), rbk_graph::Op::Exec(_)));
    if runs {
        let host = crate::settings::host_platform();
        crate::emulation::check_can_run(&planned.settings.platform, &host)?;
    }
    let runtime = Runc::new(args.runtime.clone(), store.root().join("runc"))?;
    let filter: Arc<dyn PathFilter> = Arc::new(IgnoreFilter(
        Dockerignore::from_patterns(&planned.excludes).map_err(anyhow::Error::msg)?,
    ));
    let epoch = source_date_epoch(&planned.settings.build_args)?;
    let created = created_time(epoch);
    let options = SolveOptions {
        locals: [(
            "context".to_string(),
            LocalDir {
                root: planned.settings.context.clone(),
                filter,
            },
        )]
        .into(),
        entitlements,
        source_date_epoch: epoch,
        cache_sources: cache::sources(&store, &caches.from),
        secrets: super::secrets::parse_secrets(&args.secrets)?,
        ssh: super::secrets::parse_ssh(&args.ssh)?,
    };
    let solver = Solver::new(&store, &runtime, options)?;
    let progress = Progress::new(args.progress, args.quiet, &planned.dag);
    let solved = Scheduler::new(args.jobs.max(1)).run(&planned.dag, &solver, &progress);
    progress.finish(solved.is_ok());
    let solved = solved.map_err(|e| render::solve_error(e, &planned))?;
    let target = planned.plan.target_stage();
    let layers = solved
        .first()
        .context("the build graph produced no result")?
        .layers()
        .to_vec();
    solver.materialize(&layers)?; // layers of remote cache hits, fetched now
    let mut spec = image_spec(&store, &planned.plan.stages, target, created, epoch)?;
    spec.config.labels.extend(labels);
    let manifest = commit_image(&store, &layers, spec)?;
    let image = store.read_image(&manifest)?;
    for tag in &tags {
        store.tag(tag, manifest.clone())?;
    }
    let id = image.id();
    if tags.is_empty() && outputs.is_empty() {
        store.keep_untagged(id, manifest.clone())?; // `<none>` until pruned
    }
    if let Some(path) = &args.iidfile {
        std::fs::write(path, id.to_string())
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    for out in &outputs {
        output::write(&store, &image, &tags, out, args.compression)?;
    }
    cache::export(&store, &solver, &planned.dag, &caches.to)?;
    report_done(args.quiet, &id.to_string(), &tags);
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stderr)] // the CLI reports here
fn report_warnings<'a>(warnings: impl Iterator<Item = &'a String>) {
    for warning in warnings {
        match warning.starts_with('[') {
            true => eprintln!("{warning}"),
            false => eprintln!("WARNING: {warning}"),
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the CLI reports here
fn report_done(quiet: bool, id: &str, tags: &[Reference]) {
    if quiet {
        println!("{id}");
        return;
    }
    eprintln!("writing image {id} done");
    for tag in tags {
        eprintln!("naming to {tag} done");
    }
}

/// The final image's config and history: the base image's history (when the
/// target's chain of stages starts from an image) followed by the entries of
/// this build, stamped with `created`.
fn image_spec(
    store: &Store,
    stages: &[StagePlan],
    target: &StagePlan,
    created: SystemTime,
    epoch: Option<i64>,
) -> anyhow::Result<ImageSpec> {
    let mut history = base_history(store, stages, target)?;
    // Without SOURCE_DATE_EPOCH the times are left to commit_image, which
    // takes them from the layers (a cached rebuild keeps its image id).
    let stamp = epoch.map(|_| format_rfc3339(created));
    history.extend(target.history.iter().map(|h| History {
        created: stamp.clone(),
        created_by: Some(h.created_by.clone()),
        author: None,
        comment: (!h.comment.is_empty()).then(|| h.comment.clone()),
        empty_layer: h.empty_layer,
    }));
    Ok(ImageSpec {
        config: target.config.clone(),
        history,
        platform: target.platform.clone(),
        author: target.author.clone(),
        created,
    })
}

fn base_history(
    store: &Store,
    stages: &[StagePlan],
    target: &StagePlan,
) -> anyhow::Result<Vec<History>> {
    let mut stage = target;
    // Stage bases always point at earlier stages, so this ends.
    loop {
        match &stage.base {
            BaseRef::Scratch => return Ok(Vec::new()),
            BaseRef::Image(name) => {
                return Ok(super::inspect::find(store, name)?.image.config.history);
            }
            BaseRef::Stage(i) => stage = &stages[*i],
        }
    }
}

/// `SOURCE_DATE_EPOCH` (seconds), when set: the build arg of that name,
/// else the environment variable (which buildx passes on as that build arg).
fn source_date_epoch(
    build_args: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Option<i64>> {
    let value = match build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) => Ok(v.clone()),
        None => std::env::var("SOURCE_DATE_EPOCH"),
    };
    match value {
        Ok(v) if !v.is_empty() => {
            Ok(Some(v.parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}

fn created_time(epoch: Option<i64>) -> SystemTime {
    match epoch {
        Some(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64),
        None => SystemTime::now(),
    }
}

fn parse_labels(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("invalid --label {l:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn parse_entitlements(raw: &[String]) -> anyhow::Result<Entitlements> {
    let mut e = Entitlements::default();
    for name in raw {
        match name.as_str() {
            "network.host" => e.network_host = true,
            "security.insecure" => e.security_insecure = true,
            other => bail!(
                "unknown entitlement {other:?} given with --allow (expected network.host or security.insecure)"
            ),
        }
    }
    Ok(e)
}

/// Makes sure every image the graph reads is in the store before anything
/// runs. `FROM` images were resolved (and pulled on a miss) by the frontend;
/// this covers `COPY --from=IMAGE` and `RUN --mount=from=IMAGE`, which are
/// pulled on a store miss too. A failure names the instruction that wanted
/// the image (the image vertex itself has no Dockerfile lines).
fn fetch_images(store: &Store, planned: &frontend::Planned) -> anyhow::Result<()> {
    for vertex in planned.dag.vertices() {
        let rbk_graph::Op::Source(rbk_graph::SourceOp::Image {
            reference,
            platform,
        }) = vertex.op()
        else {
            continue;
        };
        if store.find_image(reference).is_ok() {
            continue; // a name or an image id in the store
        }
        let parsed: Reference = match reference.parse() {
            Ok(r) => r,
            Err(_) => continue, // the solver reports it
        };
        let platform = platform
            .clone()
            .unwrap_or_else(|| planned.settings.platform.clone());
        let Err(err) = crate::commands::pull::image_for_build(store, &parsed, &platform, false)
        else {
            continue;
        };
        let span = vertex
            .dependents()
            .iter()
            .find_map(|&d| planned.dag.vertex(d).meta().span.clone());
        return Err(anyhow::Error::new(render::StepError {
            text: planned.settings.text.clone(),
            location: span.map(|s| rbk_parser::Location::lines(&s.file, s.start_line, s.end_line)),
            message: format!("failed to resolve source metadata for {reference}: {err:#}"),
        }));
    }
    Ok(())
}

/// Base image configs for the frontend, from the store.
/// Store first, then the registry (always the registry with `--pull`).
struct StoreResolver<'a>(&'a Store, bool);

impl ImageResolver for StoreResolver<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ImageConfig, String> {
        // An image id (full, short or `sha256:`) names a local image.
        if let Some(found) = self
            .0
            .find_image(reference)
            .ok()
            .filter(|f| f.named.is_none())
        {
            let config = found.image.config.config.unwrap_or_default();
            return serde_json::to_value(config)
                .and_then(serde_json::from_value)
                .map_err(|e| format!("image {reference}: unreadable config: {e}"));
        }
        let parsed: Reference = reference.parse().map_err(|e| format!("{e}"))?;
        let image = crate::commands::pull::image_for_build(self.0, &parsed, platform, self.1)
            .map_err(|e| format!("{e:#}"))?;
        check_platform(&image.config, platform)?;
        let config = image.config.config.unwrap_or_default();
        serde_json::to_value(config)
            .and_then(serde_json::from_value)
            .map_err(|e| format!("image {}: unreadable config: {e}", parsed.familiar()))
    }
}

/// A base image must be for the stage's platform: running the host's
/// binaries under a foreign label would be a lie. Fields the config leaves
/// empty are not held against it, and variants count only when both sides
/// name one.
fn check_platform(
    config: &rbk_store::image::ImageConfig,
    platform: &Platform,
) -> Result<(), String> {
    let variant = config
        .extra
        .get("variant")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let os_ok = config.os.is_empty() || config.os == platform.os;
    let arch_ok = config.architecture.is_empty() || config.architecture == platform.architecture;
    let variant_ok =
        variant.is_empty() || platform.variant.is_empty() || variant == platform.variant;
    if os_ok && arch_ok && variant_ok {
        return Ok(());
    }
    let image = crate::emulation::describe(&Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: variant.to_string(),
    });
    Err(format!(
        "the image is for {image}, and there is no base for {}: pull the image for that \
         platform (rbk pull --platform …) or build for {image}",
        crate::emulation::describe(platform)
    ))
}

/// `.dockerignore` as the executor's path filter.
struct IgnoreFilter(Dockerignore);

impl PathFilter for IgnoreFilter {
    fn is_excluded(&self, path: &str) -> bool {
        self.0.is_excluded(path)
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        self.0.may_reinclude_under(dir)
    }
}
