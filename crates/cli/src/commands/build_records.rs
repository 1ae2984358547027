//! Past builds, from the records and logs under `<root>/logs/<build id>/`:
//! `rbk build ls`, `rbk build timeline [BUILD_ID] -o FILE` and
//! `rbk logs --build [BUILD_ID] [STEP]`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::args::{BuildRecordsCommand, LogsArgs};
use crate::progress::record::{self, Record};
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, cmd: BuildRecordsCommand) -> anyhow::Result<ExitCode> {
    let logs = settings.open_store()?.root().join("logs");
    match cmd {
        BuildRecordsCommand::Ls(args) => ls(&logs, &args.format),
        BuildRecordsCommand::Timeline(args) => {
            let (_, record) = find(&logs, args.build.as_deref())?;
            crate::progress::timeline::write(&record, &args.output)
                .with_context(|| format!("writing {}", args.output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[allow(clippy::print_stdout)] // the command's output
fn ls(logs: &Path, format: &str) -> anyhow::Result<ExitCode> {
    let records = record::all(logs);
    let mut out = std::io::stdout().lock();
    match format {
        "json" => {
            for (_, r) in records.iter().rev() {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        "table" => {
            let mut table = vec![vec![
                "BUILD ID".to_string(),
                "STARTED".to_string(),
                "DOCKERFILE".to_string(),
                "TARGET".to_string(),
                "RESULT".to_string(),
                "DURATION".to_string(),
                "STEPS".to_string(),
            ]];
            for (_, r) in records.iter().rev() {
                let ran = r
                    .steps
                    .iter()
                    .filter(|s| !s.cached && s.end.is_some())
                    .count();
                let cached = r.steps.iter().filter(|s| s.cached).count();
                table.push(vec![
                    r.id.clone(),
                    r.started.clone(),
                    r.dockerfile.clone(),
                    r.target
                        .clone()
                        .unwrap_or_else(|| "(last stage)".to_string()),
                    r.result.clone(),
                    format!("{:.1}s", r.duration),
                    format!("{ran} ran, {cached} cached"),
                ]);
            }
            crate::table::write_table(&mut out, &table)?;
        }
        other => bail!("unknown --format {other:?}: expected table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A build by id or id prefix; `None` or empty: the last one.
fn find(logs: &Path, id: Option<&str>) -> anyhow::Result<(PathBuf, Record)> {
    let mut records = record::all(logs);
    match id.filter(|i| !i.is_empty()) {
        None => records
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no build recorded yet in {}", logs.display())),
        Some(id) => {
            let found: Vec<(PathBuf, Record)> = records
                .into_iter()
                .filter(|(_, r)| r.id.starts_with(id))
                .collect();
            match found.len() {
                1 => Ok(found.into_iter().next().unwrap_or_else(|| unreachable!())),
                0 => bail!("no build {id:?} (`rbk build ls` lists them)"),
                n => bail!("{n} builds start with {id:?}: give more of the id"),
            }
        }
    }
}

/// `rbk logs --build [BUILD_ID] [STEP]`: each step's whole output, as kept
/// (`0.052 line`, seconds since the step started); a single step's alone
/// when STEP names one. A lone argument that is no build id but names a
/// step of the last build is taken as the step.
#[allow(clippy::print_stdout)]
pub(crate) fn logs(settings: &GlobalSettings, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let logs = settings.open_store()?.root().join("logs");
    let id = args.build.unwrap_or_default();
    let mut step = args.container;
    let (dir, record) = match find(&logs, Some(&id)) {
        Ok(found) => found,
        Err(_) if step.is_none() && !id.is_empty() => {
            step = Some(id);
            find(&logs, None)?
        }
        Err(e) => return Err(e),
    };
    let steps: Vec<&record::Step> = match &step {
        Some(wanted) => vec![record
            .step(wanted)
            .ok_or_else(|| anyhow::anyhow!("build {} has no step {wanted:?}", record.id))?],
        None => record.steps.iter().collect(),
    };
    let mut out = std::io::stdout().lock();
    for s in steps {
        let Some(log) = &s.log else {
            if step.is_some() {
                writeln!(out, "#{} {}: no output", s.number, s.name)?;
            }
            continue;
        };
        if step.is_none() {
            writeln!(out, "#{} {}", s.number, s.name)?;
        }
        let file = std::fs::File::open(dir.join(log))
            .with_context(|| format!("reading the log of #{} in {}", s.number, dir.display()))?;
        for line in BufReader::new(file).split(b'\n') {
            let mut line = line?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
