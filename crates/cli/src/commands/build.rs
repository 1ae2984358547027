//! `rbk build`: turns the flags into a [`BuildRequest`], hands it to the
//! engine (`rbk-build`), and shows its warnings, progress and result.

use std::process::ExitCode;

use anyhow::{bail, Context};
use rbk_build::{BuildRequest, Engine, Output};
use rbk_exec::{Entitlements, Runc};
use rbk_store::Reference;

use super::build_check::Call;
use std::io::{IsTerminal, Write};

use crate::args::{BuildArgs, OnError};
use crate::progress::Progress;
use crate::settings::{FrontendSettings, GlobalSettings};

/// A build that failed for want of space empties the store's trash at once
/// (its own scratch dirs went there when the failed step ended), instead of
/// leaving the disk full until the next build or `prune` (docs/security.md
/// F4). Deletes are otherwise kept off the hot path; here freeing the space
/// is the point. Trash entries are dead, so no lock is needed.
fn free_space_after_disk_full(store: &rbk_store::Store, e: &(dyn std::error::Error + 'static)) {
    if rbk_store::is_disk_full(e) {
        // Best effort: the build's own error is the one to report.
        let _ = store.empty_trash();
    }
}

pub(crate) fn run(settings: &GlobalSettings, mut args: BuildArgs) -> anyhow::Result<ExitCode> {
    let planning = std::time::Instant::now();
    let progress_settings = crate::settings::progress_settings(
        args.progress,
        args.quiet,
        |k| std::env::var(k).ok(),
        crate::progress::stderr_is_terminal(),
    )?;
    let registries = settings.registries();
    let store = settings.open_store()?;
    crate::runtime::reap_build_containers(settings, &store, args.runtime.clone())?;
    rbk_exec::recover_store(&store)?;
    // What earlier commands left in the trash goes in the background.
    crate::trash::empty(&store, std::time::Duration::ZERO)?;
    let _lease = store.lease()?;
    // `rbk build -`, `rbk build <git url>|<https url>`: the context made
    // into a directory under the store's tmp/ until the build ends.
    let _fetched_context = fetch_context(&store, settings, &mut args)?;
    let frontend = FrontendSettings::resolve(args.frontend)?;
    report_warnings(&frontend.platform_warnings);
    let mut outputs = args
        .outputs
        .iter()
        .map(|s| Output::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if args.push {
        outputs.push(Output::Registry(None));
    }
    let to_stdout = outputs.iter().any(Output::to_stdout);
    let request = BuildRequest {
        source_date_epoch: source_date_epoch(&frontend.build_args)?,
        dockerfile: frontend.dockerfile,
        context: frontend.context,
        target: frontend.target,
        build_args: frontend.build_args,
        platform: frontend.platform,
        host_platform: crate::settings::host_platform(),
        platforms: frontend.platforms,
        binfmt_dir: crate::settings::binfmt_dir(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter,
        always_pull: args.pull,
        strict: args.strict,
        labels: parse_labels(&args.labels)?,
        entitlements: parse_entitlements(&args.allow)?,
        secrets: super::secrets::parse_secrets(&args.secrets)?,
        ssh: super::secrets::parse_ssh(&args.ssh)?,
        tags: args
            .tags
            .iter()
            .map(|t| {
                t.parse::<Reference>()
                    .with_context(|| format!("invalid tag {t:?} given with -t"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        outputs,
        compression: crate::settings::compression(args.compression),
        cache_from: args
            .cache_from
            .iter()
            .map(|s| rbk_build::parse_cache_from(s, &registries))
            .collect::<Result<_, _>>()?,
        cache_to: args
            .cache_to
            .iter()
            .map(|s| rbk_build::parse_cache_to(s, &registries))
            .collect::<Result<_, _>>()?,
        jobs: settings.jobs,
        snapshotter: settings.snapshotter,
        annotations: args
            .supply
            .annotations
            .iter()
            .map(|s| rbk_build::Annotation::parse(s))
            .collect::<Result<_, _>>()?,
        attest: rbk_build::attest::AttestOptions::parse(
            &args.supply.attest,
            args.supply.sbom.as_deref(),
            args.supply.provenance.as_deref(),
        )?,
        remote: settings.remote.clone(),
        build_contexts: args
            .build_contexts
            .iter()
            .map(|s| rbk_build::BuildContext::parse(s))
            .collect::<Result<_, _>>()?,
    };
    let mut request = request;
    rbk_build::load_oci_layouts(&store, &mut request.build_contexts)?;
    let _named_archives =
        rbk_build::fetch_named_contexts(&store, &settings.remote, &mut request.build_contexts)?;
    let tags = request.tags.clone();
    let runtime_binary = args.runtime.clone().or_else(|| settings.runtime.clone());
    let runtime = Runc::new(runtime_binary.clone(), store.root().join("runc"))?;
    let engine = Engine::new(&store, &registries, &runtime);
    if let Call::Check { json } = super::build_check::call(&args.supply)? {
        return super::build_check::run(&engine, &request, json);
    }
    let dockerfile = request.dockerfile.clone();
    let context = request.context.clone();
    let target = request.target.clone();
    let build_args = request.build_args.clone();
    let planned = super::build_check::plan(&engine, request)?;
    let findings = planned.planned.checks.buildkit();
    report_warnings(&planned.warnings);
    let build_id = build_id();
    let progress = Progress::new(
        progress_settings,
        &planned.planned.dag,
        planning,
        (dockerfile.name.clone(), dockerfile.text.len() as u64),
        Some(store.root().join("logs").join(&build_id)),
    );
    let planned_dag = planned.planned.dag.clone();
    let excludes = planned.planned.excludes.clone();
    let result = engine.run(planned, &progress);
    if let Err(e) = &result {
        free_space_after_disk_full(&store, e);
    }
    if let Ok(result) = &result {
        let id = match &result.index {
            Some(index) => index.digest,
            None => result.image.id(),
        };
        let names: Vec<String> = tags.iter().map(ToString::to_string).collect();
        progress.exported(&id.to_string(), &names);
    }
    progress.finish(result.is_ok());
    let dockerfile_path = match &dockerfile.path {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
        None => std::path::absolute(&context)
            .unwrap_or_else(|_| context.clone())
            .join("-"),
    };
    let facts = crate::progress::BuildFacts {
        dag: &planned_dag,
        sources: crate::progress::inputs::Sources {
            dockerfile_text: &dockerfile.text,
            store: &store,
            context: &context,
            excludes: &excludes,
        },
        logs_root: store.root().join("logs"),
        id: build_id,
        dockerfile: dockerfile.name.clone(),
        dockerfile_path: dockerfile_path.display().to_string(),
        target,
        build_args,
        error: result.as_ref().err().map(|e| crate::render::chain(e)),
        image: result.as_ref().ok().map(|r| match &r.index {
            Some(index) => index.digest.to_string(),
            None => r.image.id().to_string(),
        }),
        tags: tags.iter().map(ToString::to_string).collect(),
        explain: args.explain,
        timeline: args.timeline.clone(),
    };
    let recorded = progress.record(facts);
    let result = match result {
        Ok(result) => result,
        Err(e) => match kept_failed_step(&store, &e) {
            Some(digest) => {
                // The error first, then the way into the failed step.
                crate::render::error(&anyhow::Error::from(e));
                debug_failed_step(&store, &digest, args.on_error, runtime_binary)?;
                return Ok(ExitCode::FAILURE);
            }
            None => return Err(e.into()),
        },
    };
    recorded?;
    report_warnings(&result.warnings);
    // A multi-platform build is known by its index, as buildx reports it.
    let id = match &result.index {
        Some(index) => index.digest,
        None => result.image.id(),
    };
    if let Some(path) = &args.iidfile {
        rbk_store::output::write_output(path, id.to_string().as_bytes())
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.supply.metadata_file {
        let doc = super::metadata::document(&result, &tags, &findings, &dockerfile);
        super::metadata::write(path, &doc)?;
    }
    match progress.shows_result() {
        true => {}
        false => report_done(args.quiet && !to_stdout, &id.to_string(), &tags),
    }
    Ok(ExitCode::SUCCESS)
}

/// The digest of the RUN step whose failure `error` is, when the step was
/// kept for `rbk debug step`.
fn kept_failed_step(store: &rbk_store::Store, error: &rbk_build::Error) -> Option<String> {
    let rbk_build::Error::Step {
        failed_run: Some(digest),
        ..
    } = error
    else {
        return None;
    };
    let kept = store
        .failed_steps()
        .ok()?
        .iter()
        .any(|s| s.digest == **digest);
    kept.then(|| digest.to_string())
}

/// After a RUN step failed: `--on-error=shell` opens a shell in it (on a
/// terminal); otherwise the user is told how to.
fn debug_failed_step(
    store: &rbk_store::Store,
    digest: &str,
    on_error: OnError,
    runtime: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let terminal = std::io::stdin().is_terminal();
    if on_error == OnError::Shell && terminal {
        crate::failed_step::open_shell(store, runtime, digest, &[])?;
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    if on_error == OnError::Shell {
        writeln!(
            err,
            "--on-error=shell needs a terminal on stdin: no shell opened"
        )?;
    }
    // Short enough for one line of a 100-column terminal.
    writeln!(err, "to debug: rbk debug step {digest}")?;
    Ok(())
}

/// `rbk build -` (stdin) or a URL as the context: fetched by the engine's
/// `context_source`, and `args` pointed at the directory (and at the
/// Dockerfile in it, unless `-f -` reads that from stdin).
fn fetch_context(
    store: &rbk_store::Store,
    settings: &GlobalSettings,
    args: &mut BuildArgs,
) -> anyhow::Result<Option<rbk_build::FetchedContext>> {
    let context = args.frontend.context.clone();
    let stdin_dockerfile = args
        .frontend
        .file
        .as_ref()
        .is_some_and(|f| f.as_os_str() == "-");
    let fetched = if context.as_os_str() == "-" {
        if stdin_dockerfile {
            bail!("the context and the Dockerfile cannot both come from stdin (`-` and `-f -`)");
        }
        let file = args.frontend.file.as_deref();
        rbk_build::context_from_stream(store, std::io::stdin().lock(), file)?
    } else {
        let Some(url) = context.to_str() else {
            return Ok(None);
        };
        let file = args.frontend.file.as_deref().filter(|_| !stdin_dockerfile);
        let (secrets, ssh) = match rbk_build::is_git_url(url) {
            true => (
                super::secrets::parse_secrets(&args.secrets)?,
                super::secrets::parse_ssh(&args.ssh)?,
            ),
            false => Default::default(),
        };
        let ssh_agent = ssh.get("default").cloned();
        let found =
            rbk_build::fetch_context(store, &settings.remote, &secrets, ssh_agent, url, file)?;
        let Some(fetched) = found else {
            return Ok(None);
        };
        fetched
    };
    args.frontend.context = fetched.context.clone();
    if !stdin_dockerfile {
        args.frontend.file = Some(fetched.dockerfile.clone());
    }
    Ok(Some(fetched))
}

/// A build's id, for its logs: the UTC time it started and the process,
/// so ids sort by time.
fn build_id() -> String {
    let now = std::time::SystemTime::now();
    let stamp = rbk_store::image::format_rfc3339(now);
    let stamp: String = stamp
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{stamp}Z-{}", std::process::id())
}

#[allow(clippy::print_stderr)] // the CLI reports here
fn report_warnings(warnings: &[String]) {
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
