//! The engine: [`Engine::plan`] then [`Engine::run`].
//!
//! `plan` reads and lowers the Dockerfile (resolving base images, pulled on
//! a store miss), fetches the other images the graph reads, checks that the
//! build can run here, and imports `--cache-from` caches: everything that
//! can fail before a step runs. The caller shows its warnings and sets up
//! progress over [`Planned::dag`], then `run` solves the graph, commits the
//! image, tags it, writes the outputs and exports caches.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rbk_exec::{
    commit_image, CacheSource, ImageSpec, LocalDir, LocalScans, PathFilter, Runtime, SolveOptions,
    Solver, Within,
};
use rbk_graph::{Reporter, Scheduler};
use rbk_parser::{BaseRef, Dockerignore, LowerOptions, StagePlan};
use rbk_store::image::{format_rfc3339, History, Image};
use rbk_store::Store;

use crate::checks::CheckReport;
use crate::context_paths;
use crate::images::{fetch_images, ImageProvider, Resolver};
use crate::plan::{plan, PlanOptions, Planned};
use crate::request::BuildRequest;
use crate::request::Output;
use crate::{attest, cache, multi, output, platform, Error, Result};

/// Builds images into one store.
pub struct Engine<'a> {
    store: &'a Store,
    images: &'a dyn ImageProvider,
    runtime: &'a dyn Runtime,
    scans: Option<Arc<LocalScans>>,
}

/// A build ready to run: [`Planned`], the request, and what `plan` fetched.
pub struct PlannedBuild {
    /// The lowered Dockerfile and the graph of its target.
    pub planned: Planned,
    /// Warnings to show before the build runs (the Dockerfile's, and caches
    /// that could not be read).
    pub warnings: Vec<String>,
    request: BuildRequest,
    cache_sources: Vec<Arc<dyn CacheSource>>,
    /// Each platform's plan, for a multi-platform build (else empty).
    targets: Vec<multi::Target>,
}

/// What a build made.
pub struct BuildResult {
    /// The image, in the store (tagged with the request's tags; kept
    /// untagged when it has none and went nowhere else).
    pub image: Image,
    /// Warnings from after the build (ignored cache export failures).
    pub warnings: Vec<String>,
    /// The image index of a multi-platform build (then `image` is the
    /// host's image, or the first platform's).
    pub index: Option<rbk_store::Descriptor>,
}

impl BuildResult {
    /// What the build is known by: the index of a multi-platform build (as
    /// buildx reports it), else the image's id.
    pub fn id(&self) -> rbk_store::Digest {
        match &self.index {
            Some(index) => index.digest,
            None => self.image.id(),
        }
    }
}

impl<'a> Engine<'a> {
    /// An engine over `store`, pulling and pushing through `images`,
    /// running RUN steps with `runtime`.
    pub fn new(
        store: &'a Store,
        images: &'a dyn ImageProvider,
        runtime: &'a dyn Runtime,
    ) -> Engine<'a> {
        Engine {
            store,
            images,
            runtime,
            scans: None,
        }
    }

    /// Keeps the index of each local source a build scans in `scans`, for
    /// the caller to read after [`Engine::run`] (the CLI's build record
    /// reuses the context's scan instead of walking it again).
    pub fn keeping_scans(mut self, scans: Arc<LocalScans>) -> Engine<'a> {
        self.scans = Some(scans);
        self
    }

    /// Everything before the first step runs (see the module docs).
    pub fn plan(&self, request: BuildRequest) -> Result<PlannedBuild> {
        if request.platforms.len() > 1 && request.cache_to.iter().any(|c| c.is_inline()) {
            return Err(Error::Invalid(
                "--cache-to type=inline: the inline cache of multi-platform builds is not supported yet; use type=registry".into(),
            ));
        }
        let (planned, targets) = match request.platforms.len() > 1 {
            true => multi::plan_platforms(&self.resolver(&request), &request)?,
            false => (self.lower(&request)?, Vec::new()),
        };
        if let Some(message) = &planned.checks.violation {
            return Err(Error::Checks {
                message: message.clone(),
                findings: planned.checks.buildkit(),
                notes: planned.checks.notes.clone(),
            });
        }
        self.prepare(planned, request, targets)
    }

    /// `--check` / `--call=check`: the build checks, rbk's advice included
    /// (and `LargeContextSentForSmallCopy`, which reads the context), with
    /// no step run and no image but the base images' configs fetched.
    pub fn check(&self, request: &BuildRequest) -> Result<CheckReport> {
        let planned = self.lower(request)?;
        let mut report = planned.checks;
        let ast = rbk_parser::parse(&request.dockerfile.text, &request.dockerfile.name).map_err(
            |error| Error::Dockerfile {
                text: request.dockerfile.text.clone(),
                error,
            },
        )?;
        if let Ok(df) =
            rbk_parser::instructions::parse_dockerfile(&ast.root, &request.dockerfile.name)
        {
            let all: Vec<_> = df
                .stages
                .iter()
                .flat_map(|s| s.commands.iter().map(|c| &c.instruction))
                .collect();
            if let Some(f) =
                crate::checks::context_finding(&request.context, &planned.excludes, &all)
            {
                report.findings.insert(0, f);
            }
        }
        Ok(report)
    }

    fn resolver(&self, request: &BuildRequest) -> Resolver<'_> {
        Resolver {
            store: self.store,
            provider: self.images,
            always_pull: request.always_pull,
        }
    }

    fn lower(&self, request: &BuildRequest) -> Result<Planned> {
        let resolver = self.resolver(request);
        plan(
            PlanOptions {
                dockerfile: &request.dockerfile,
                context: &request.context,
                lower: LowerOptions {
                    target: request.target.clone(),
                    build_args: request.build_args.clone(),
                    build_platform: request.host_platform.clone(),
                    target_platform: request.platform.clone(),
                    no_cache: request.no_cache,
                    named_contexts: crate::named::for_lowering(&request.build_contexts),
                    ..LowerOptions::default()
                },
                no_cache_stages: &request.no_cache_filter,
            },
            Some(&resolver),
        )
    }

    fn prepare(
        &self,
        planned: Planned,
        request: BuildRequest,
        targets: Vec<multi::Target>,
    ) -> Result<PlannedBuild> {
        let mut warnings: Vec<String> = planned.foreign_syntax.iter().cloned().collect();
        if let (Some(syntax), true) = (&planned.foreign_syntax, request.strict) {
            return Err(Error::Invalid(format!("{syntax} (--strict)")));
        }
        warnings.extend(planned.warnings.iter().cloned());
        let has_index = request.platforms.len() > 1 || request.attest.any();
        crate::annotate::refuse_index(&request.annotations, has_index)?;
        fetch_images(
            self.store,
            self.images,
            &planned.dag,
            &request.platform,
            &request.dockerfile.text,
        )?;
        // Every platform whose RUN steps run needs to be able to run here.
        let plans: Vec<&rbk_parser::Plan> = match targets.is_empty() {
            true => vec![&planned.plan],
            false => targets.iter().map(|t| &t.plan).collect(),
        };
        for p in multi::run_platforms(&plans, &planned.dag) {
            platform::check_can_run(&p, &request.host_platform, &request.binfmt_dir)?;
        }
        let (cache_sources, cache_warnings) = cache::sources(self.store, &request.cache_from);
        warnings.extend(cache_warnings);
        Ok(PlannedBuild {
            planned,
            warnings,
            request,
            cache_sources,
            targets,
        })
    }

    /// Solves the planned graph, reporting to `reporter`, then commits,
    /// tags and writes the image (see the module docs).
    ///
    /// A `--cache-from` source that fails to deliver a layer blob halfway
    /// (the registry errs or goes away; a blob that does not verify is
    /// still an error) does not fail the build: it is solved again without
    /// the cache sources, keeping what was already fetched and built in the
    /// store's own cache, with a warning naming the failure.
    pub fn run(&self, build: PlannedBuild, reporter: &dyn Reporter) -> Result<BuildResult> {
        let PlannedBuild {
            planned,
            request,
            cache_sources,
            targets,
            ..
        } = build;
        let with_cache = !cache_sources.is_empty();
        match self.solve_and_commit(&planned, &request, cache_sources, &targets, reporter) {
            Err(Error::CacheFetch(reason)) if with_cache => {
                let mut result =
                    self.solve_and_commit(&planned, &request, Vec::new(), &targets, reporter)?;
                result
                    .warnings
                    .insert(0, format!("--cache-from: {reason} (building without it)"));
                Ok(result)
            }
            other => other,
        }
    }

    fn solve_and_commit(
        &self,
        planned: &Planned,
        request: &BuildRequest,
        cache_sources: Vec<Arc<dyn CacheSource>>,
        targets: &[multi::Target],
        reporter: &dyn Reporter,
    ) -> Result<BuildResult> {
        self.solve_and_commit_inner(planned, request, cache_sources, targets, reporter)
            .map_err(|e| match cache_fetch_failure(&e) {
                Some(reason) => Error::CacheFetch(reason),
                None => e,
            })
    }

    fn solve_and_commit_inner(
        &self,
        planned: &Planned,
        request: &BuildRequest,
        cache_sources: Vec<Arc<dyn CacheSource>>,
        targets: &[multi::Target],
        reporter: &dyn Reporter,
    ) -> Result<BuildResult> {
        let started = SystemTime::now();
        let created = match request.source_date_epoch {
            Some(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64),
            None => SystemTime::now(),
        };
        let mut options = solve_options(planned, request, cache_sources)?;
        options.scans = self.scans.clone();
        let solver = Solver::new(self.store, self.runtime, options)?;
        let solved = Scheduler::new(request.jobs.max(1))
            .run(&planned.dag, &solver, reporter)
            .map_err(|e| match cache_fetch_failure(&e) {
                Some(reason) => Error::CacheFetch(reason),
                None => step_error(e, planned, &request.dockerfile.text),
            })?;
        if !targets.is_empty() {
            let committed = multi::commit(
                self.store,
                &solver,
                targets,
                &solved,
                request,
                (started, created),
                &planned.dag,
            )?;
            for out in &request.outputs {
                multi::write(self.store, self.images, &committed, request, out)?;
            }
            let mut warnings = cache::export(self.store, &solver, &planned.dag, &request.cache_to)?;
            warnings.extend(committed.attached.iter().flat_map(|a| a.warnings()));
            return Ok(BuildResult {
                image: self.store.read_image(&committed.index)?,
                warnings,
                index: Some(committed.index),
            });
        }
        let layers = solved
            .first()
            .ok_or_else(|| Error::Invalid("the build graph produced no result".into()))?
            .layers()
            .to_vec();
        self.commit_single(&solver, planned, request, &layers, (started, created))
    }

    /// The image of a single-platform build from its solved `layers`:
    /// committed, annotated, attested, tagged, written to the outputs, and
    /// the caches exported. `times` are the build's start and its images'
    /// `created`.
    fn commit_single(
        &self,
        solver: &Solver<'_>,
        planned: &Planned,
        request: &BuildRequest,
        layers: &[rbk_store::Layer],
        (started, created): (SystemTime, SystemTime),
    ) -> Result<BuildResult> {
        solver.materialize(layers)?; // layers of remote cache hits, fetched now
        let target = planned.plan.target_stage();
        let epoch = request.source_date_epoch;
        let mut spec = image_spec(self.store, &planned.plan.stages, target, created, epoch)?;
        spec.config.labels.extend(request.labels.iter().cloned());
        if let Some(inline) = request.cache_to.iter().find(|c| c.is_inline()) {
            let label =
                crate::inline_cache::label(self.store, solver, &planned.dag, inline.compression)?;
            spec.config.labels.extend([label]);
        }
        let platform = spec.platform.clone();
        let manifest = commit_image(self.store, layers, spec)?;
        let has_index = request.attest.any();
        let manifest = crate::annotate::apply(
            self.store,
            manifest,
            &request.annotations,
            &platform,
            has_index,
        )?;
        let image = self.store.read_image(&manifest)?;
        let subject = attest::Subject {
            image: &image,
            manifest: &manifest,
            plan: &planned.plan,
        };
        let attached = attest::attach(self.store, &[subject], request, &planned.dag, started)?;
        let tagged = attached.as_ref().map_or(&manifest, |a| &a.index);
        for tag in &request.tags {
            self.store.tag(tag, tagged.clone())?;
        }
        if request.tags.is_empty() && request.outputs.is_empty() {
            self.store.keep_untagged(image.id(), tagged.clone())?; // `<none>` until pruned
        }
        self.write_outputs(&image, attached.as_ref(), request)?;
        let mut warnings = cache::export(self.store, solver, &planned.dag, &request.cache_to)?;
        warnings.extend(attached.iter().flat_map(|a| a.warnings()));
        Ok(BuildResult {
            image,
            warnings,
            index: attached.map(|a| a.index),
        })
    }

    /// Writes `image` (with its attestations, when `attached`) to every
    /// `--output`.
    fn write_outputs(
        &self,
        image: &Image,
        attached: Option<&attest::Attached>,
        request: &BuildRequest,
    ) -> Result<()> {
        let one = std::slice::from_ref(image);
        for out in &request.outputs {
            match (attached, out) {
                (Some(a), Output::Registry(name)) => {
                    attest::push_attested(self.store, self.images, a, one, request, name)?;
                }
                (Some(a), Output::Oci(path) | Output::Docker(path)) => {
                    let format = match out {
                        Output::Docker(_) => rbk_store::archive::ArchiveFormat::Docker,
                        _ => rbk_store::archive::ArchiveFormat::Oci,
                    };
                    attest::write_archive(self.store, a, one, request, format, path)?;
                }
                _ => output::write(
                    self.store,
                    self.images,
                    image,
                    &request.tags,
                    out,
                    request.compression,
                    request.source_date_epoch,
                )?,
            }
        }
        Ok(())
    }
}

/// What the solver needs for `request`: the context (and named contexts)
/// with `.dockerignore` applied, entitlements, secrets, caches and
/// settings.
fn solve_options(
    planned: &Planned,
    request: &BuildRequest,
    cache_sources: Vec<Arc<dyn CacheSource>>,
) -> Result<SolveOptions> {
    let ignore = IgnoreFilter(
        Dockerignore::from_patterns(&planned.excludes)
            .map_err(|e| Error::Invalid(e.to_string()))?,
    );
    let paths = context_paths::context_paths(&planned.dag);
    let paths = context_paths::without_symlinks(&request.context, paths);
    let filter: Arc<dyn PathFilter> = match Within::new(paths, ignore) {
        Ok(within) => Arc::new(within),
        Err(ignore) => Arc::new(ignore),
    };
    let context = LocalDir {
        root: request.context.clone(),
        filter,
    };
    Ok(SolveOptions {
        locals: [("context".to_string(), context)]
            .into_iter()
            .chain(crate::named::local_dirs(&request.build_contexts)?)
            .collect(),
        entitlements: request.entitlements,
        source_date_epoch: request.source_date_epoch,
        cache_sources,
        secrets: request.secrets.clone(),
        ssh: request.ssh.clone(),
        snapshotter: request.snapshotter,
        remote: request.remote.clone(),
        scans: None,
    })
}

/// The message of a `--cache-from` fetch failure anywhere in `err`'s chain.
fn cache_fetch_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(Error::Exec(exec)) = e.downcast_ref::<Error>() {
            if exec.is_cache_fetch() {
                return Some(exec.to_string());
            }
        }
        if let Some(exec) = e.downcast_ref::<rbk_exec::Error>() {
            if exec.is_cache_fetch() {
                return Some(exec.to_string());
            }
        }
        cause = e.source();
    }
    None
}

/// A scheduler error as a step error naming the step's Dockerfile lines.
fn step_error(err: rbk_graph::Error, planned: &Planned, text: &str) -> Error {
    let location = err
        .vertex_digest()
        .and_then(|d| planned.dag.find(d))
        .and_then(|i| planned.dag.vertex(i).meta().span.clone())
        .map(|span| rbk_parser::Location::lines(&span.file, span.start_line, span.end_line));
    // Which platform's step failed, in a multi-platform build.
    let context = multi::failed_platform(&err, planned);
    let failed_run = match err.executor_error::<rbk_exec::Error>() {
        Some(rbk_exec::Error::ProcessFailed { .. }) => err.vertex_digest().map(Box::new),
        _ => None,
    };
    // The executor's error is the cause; the graph's own "failed to solve
    // vertex <digest>" says nothing the location does not say better.
    let source: crate::error::BoxError = match err {
        rbk_graph::Error::Vertex { source, .. } => source,
        other => Box::new(other),
    };
    Error::Step {
        text: text.to_string(),
        location,
        context,
        source,
        failed_run,
    }
}

/// The final image's config and history: the base image's history (when the
/// target's chain of stages starts from an image) followed by the entries of
/// this build, stamped with `created` under `SOURCE_DATE_EPOCH`.
pub(crate) fn image_spec(
    store: &Store,
    stages: &[StagePlan],
    target: &StagePlan,
    created: SystemTime,
    epoch: Option<i64>,
) -> Result<ImageSpec> {
    let mut history = base_history(store, stages, target)?;
    // Without SOURCE_DATE_EPOCH the times are left to commit_image, which
    // takes them from the layers (a cached rebuild keeps its image id).
    let stamp = epoch.map(|_| format_rfc3339(created));
    history.extend(target.history.iter().map(|h| History {
        created: stamp.clone(),
        ..h.clone()
    }));
    Ok(ImageSpec {
        config: target.config.clone(),
        history,
        platform: target.platform.clone(),
        author: target.author.clone(),
        created,
    })
}

fn base_history(store: &Store, stages: &[StagePlan], target: &StagePlan) -> Result<Vec<History>> {
    let mut stage = target;
    // Stage bases always point at earlier stages, so this ends.
    loop {
        match &stage.base {
            BaseRef::Scratch => return Ok(Vec::new()),
            BaseRef::Image(name) => {
                return Ok(base_image(store, name, &stage.platform)?.config.history)
            }
            BaseRef::Stage(i) => stage = &stages[*i],
        }
    }
}

/// The base image `name` of a stage for `platform`: its entry when the name
/// is tagged to a multi-platform index.
fn base_image(store: &Store, name: &str, platform: &rbk_graph::Platform) -> Result<Image> {
    if let Ok(reference) = name.parse::<rbk_store::Reference>() {
        if let Ok(desc) = store.resolve(&reference) {
            let wanted = multi::image_platform(platform);
            return Ok(store.image_for_platform(&desc, &wanted)?);
        }
    }
    Ok(store.find_image(name)?.image)
}

/// `.dockerignore` as the executor's path filter.
pub(crate) struct IgnoreFilter(pub(crate) Dockerignore);

impl PathFilter for IgnoreFilter {
    fn is_excluded(&self, path: &str) -> bool {
        self.0.is_excluded(path)
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        self.0.may_reinclude_under(dir)
    }
}
