//! `rbk build`: turns the flags into a [`BuildRequest`]
//! (`settings::build_request`), hands it to the engine (`rbk-build`), and
//! shows its warnings, progress and result.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use rbk_build::{BuildRequest, BuildResult, Dockerfile, Engine, Output};
use rbk_exec::Runc;
use rbk_graph::Dag;
use rbk_store::{Reference, Store};

use super::build_check::Call;
use crate::args::{BuildArgs, OnError};
use crate::progress::{BuildFacts, Progress};
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
    let planning = Instant::now();
    let progress_settings = crate::settings::progress_settings(
        args.progress,
        args.quiet,
        |k| std::env::var(k).ok(),
        crate::progress::stderr_is_terminal(),
    )?;
    let (store, runtime_check) = open_store(settings)?;
    let _lease = store.lease()?;
    // `rbk build -`, `rbk build <git url>|<https url>`: the context made
    // into a directory under the store's tmp/ until the build ends.
    let _fetched_context = fetch_context(&store, settings, &mut args)?;
    let frontend = FrontendSettings::resolve(args.frontend.clone())?;
    report_warnings(&frontend.platform_warnings);
    let registries = settings.registries();
    let mut request = crate::settings::build_request(settings, &registries, &args, frontend)?;
    let _named_contexts =
        rbk_build::open_named_contexts(&store, &settings.remote, &mut request.build_contexts)?;
    let runtime = runtime_check
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    let scans = std::sync::Arc::new(rbk_exec::LocalScans::default());
    let engine = Engine::new(&store, &registries, &runtime).keeping_scans(scans.clone());
    if let Call::Check { json } = super::build_check::call(&args.supply)? {
        return super::build_check::run(&engine, &request, json);
    }
    let about = About::of(&request);
    let planned = super::build_check::plan(&engine, request)?;
    report_warnings(&planned.warnings);
    let findings = planned.planned.checks.buildkit();
    let build_id = build_id();
    let dag = planned.planned.dag.clone();
    let excludes = planned.planned.excludes.clone();
    let progress = Progress::new(
        progress_settings,
        &dag,
        planning,
        (
            about.dockerfile.name.clone(),
            about.dockerfile.text.len() as u64,
        ),
        Some(store.root().join("logs").join(&build_id)),
    );
    let result = engine.run(planned, &progress);
    if let Err(e) = &result {
        free_space_after_disk_full(&store, e);
    }
    if let Ok(result) = &result {
        progress.exported(&result.id().to_string(), &about.tag_names());
    }
    progress.finish(result.is_ok());
    let mut facts = about.facts(&store, &dag, &excludes, build_id, &result, &args);
    facts.sources.scanned = scans.get("context");
    let recorded = progress.record(facts);
    let result = match result {
        Ok(result) => result,
        Err(e) => return failed(&store, settings, e, args.on_error),
    };
    recorded?;
    report_warnings(&result.warnings);
    write_result_files(&args, &result, &about, &findings)?;
    // The other views showed the id and names already; quiet shows
    // nothing, as buildx's, except the id that `-q` asks for (and never on
    // a stdout that carries an `--output`).
    if args.quiet && !progress.shows_result() && !about.outputs_to_stdout {
        report_id(&result.id().to_string());
    }
    Ok(ExitCode::SUCCESS)
}

/// The runtime's check (`Runc::new`), running beside the store's recovery.
type RuntimeCheck = std::thread::JoinHandle<rbk_exec::Result<Runc>>;

/// The store, with what a killed build left behind (its RUN containers, an
/// interrupted commit) cleared first, and the runtime's check under way.
fn open_store(settings: &GlobalSettings) -> anyhow::Result<(Store, RuntimeCheck)> {
    let store = settings.open_store()?;
    // `runc --version` (a fork, an exec and a Go runtime's start) runs
    // while the leftovers are cleared instead of after it, before the first
    // cache lookup; its result is taken where it was checked before.
    let runtime_check = {
        let (binary, state_dir) = (settings.runtime.clone(), store.root().join("runc"));
        std::thread::spawn(move || Runc::new(binary, state_dir))
    };
    crate::runtime::reap_build_containers(settings, &store)?;
    rbk_exec::recover_store(&store)?;
    // What earlier commands left in the trash goes in the background.
    crate::trash::empty(&store, std::time::Duration::ZERO)?;
    Ok((store, runtime_check))
}

/// What the views need of the request once the engine has taken it.
struct About {
    dockerfile: Dockerfile,
    context: PathBuf,
    target: Option<String>,
    build_args: std::collections::BTreeMap<String, String>,
    tags: Vec<Reference>,
    outputs_to_stdout: bool,
}

impl About {
    fn of(request: &BuildRequest) -> About {
        About {
            dockerfile: request.dockerfile.clone(),
            context: request.context.clone(),
            target: request.target.clone(),
            build_args: request.build_args.clone(),
            tags: request.tags.clone(),
            outputs_to_stdout: request.outputs.iter().any(Output::to_stdout),
        }
    }

    fn tag_names(&self) -> Vec<String> {
        self.tags.iter().map(ToString::to_string).collect()
    }

    /// The build as its record keeps it (`rbk build ls`, `--explain`,
    /// `--timeline`).
    fn facts<'a>(
        &'a self,
        store: &'a Store,
        dag: &'a Dag,
        excludes: &'a [String],
        id: String,
        result: &rbk_build::Result<BuildResult>,
        args: &BuildArgs,
    ) -> BuildFacts<'a> {
        let dockerfile_path = match &self.dockerfile.path {
            Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
            None => std::path::absolute(&self.context)
                .unwrap_or_else(|_| self.context.clone())
                .join("-"),
        };
        BuildFacts {
            dag,
            sources: crate::progress::inputs::Sources {
                dockerfile_text: &self.dockerfile.text,
                store,
                context: &self.context,
                excludes,
                scanned: None,
            },
            logs_root: store.root().join("logs"),
            id,
            dockerfile: self.dockerfile.name.clone(),
            dockerfile_path: dockerfile_path.display().to_string(),
            target: self.target.clone(),
            build_args: self.build_args.clone(),
            error: result.as_ref().err().map(|e| crate::render::chain(e)),
            image: result.as_ref().ok().map(|r| r.id().to_string()),
            tags: self.tag_names(),
            explain: args.explain,
            timeline: args.timeline.clone(),
        }
    }
}

/// `--iidfile` and `--metadata-file`.
fn write_result_files(
    args: &BuildArgs,
    result: &BuildResult,
    about: &About,
    findings: &[rbk_parser::checks::Finding],
) -> anyhow::Result<()> {
    if let Some(path) = &args.iidfile {
        rbk_store::output::write_output(path, result.id().to_string().as_bytes())
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.supply.metadata_file {
        let doc = super::metadata::document(result, &about.tags, findings, &about.dockerfile);
        super::metadata::write(path, &doc)?;
    }
    Ok(())
}

/// A failed build: the error, and when a RUN step failed and was kept, the
/// way into it.
fn failed(
    store: &Store,
    settings: &GlobalSettings,
    error: rbk_build::Error,
    on_error: OnError,
) -> anyhow::Result<ExitCode> {
    let Some(digest) = error.kept_failed_step(store) else {
        return Err(error.into());
    };
    // The error first, then the way into the failed step.
    crate::render::error(&anyhow::Error::from(error));
    debug_failed_step(
        store,
        &digest.to_string(),
        on_error,
        settings.runtime.clone(),
    )?;
    Ok(ExitCode::FAILURE)
}

/// After a RUN step failed: `--on-error=shell` opens a shell in it (on a
/// terminal); otherwise the user is told how to.
fn debug_failed_step(
    store: &Store,
    digest: &str,
    on_error: OnError,
    runtime: Option<PathBuf>,
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

/// `rbk build -` (stdin) or a URL as the context: made into a directory by
/// the engine (`rbk_build::open_context`), and `args` pointed at it (and at
/// the Dockerfile in it, unless `-f -` reads that from stdin).
fn fetch_context(
    store: &Store,
    settings: &GlobalSettings,
    args: &mut BuildArgs,
) -> anyhow::Result<Option<rbk_build::FetchedContext>> {
    let context = args.frontend.context.clone();
    // Secrets are read for a git context only (a private repository).
    let git = context.to_str().is_some_and(rbk_build::is_git_url);
    let (secrets, ssh) = match git {
        true => (
            crate::settings::secrets::parse_secrets(&args.secrets)?,
            crate::settings::secrets::parse_ssh(&args.ssh)?,
        ),
        false => Default::default(),
    };
    let source = rbk_build::ContextSource {
        context: &context,
        file: args.frontend.file.as_deref(),
        secrets: &secrets,
        ssh_agent: ssh.get("default").cloned(),
    };
    let found = rbk_build::open_context(store, &settings.remote, source, std::io::stdin().lock())?;
    let Some(fetched) = found else {
        return Ok(None);
    };
    args.frontend.context = fetched.context.clone();
    if args
        .frontend
        .file
        .as_ref()
        .is_none_or(|f| f.as_os_str() != "-")
    {
        args.frontend.file = Some(fetched.dockerfile.clone());
    }
    Ok(Some(fetched))
}

/// A build's id, for its logs: the UTC time it started, to the
/// microsecond, and the process. Ids sort as text, so every field is fixed
/// width: two builds in one second must still sort by start, whatever
/// their pids.
fn build_id() -> String {
    build_id_at(std::time::SystemTime::now(), std::process::id())
}

fn build_id_at(time: std::time::SystemTime, pid: u32) -> String {
    let stamp = rbk_store::image::format_rfc3339(time);
    let seconds: String = stamp
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let micros = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_micros());
    format!("{seconds}{micros:06}Z-{pid}")
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

#[allow(clippy::print_stdout)] // the CLI reports here
fn report_id(id: &str) {
    println!("{id}");
}

#[cfg(test)]
mod tests {
    use super::build_id_at;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn ids_of_builds_in_one_second_sort_by_start() {
        let second = UNIX_EPOCH + Duration::from_secs(1_765_000_000);
        let earlier = build_id_at(second + Duration::from_micros(5), 1000);
        let later = build_id_at(second + Duration::from_micros(900_000), 999);
        assert!(earlier < later, "{earlier} should sort before {later}");
        assert_eq!(earlier, "20251206T054640000005Z-1000");
    }
}
