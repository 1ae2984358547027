//! `rbk build --check` / `--call=check[,format=json]` and the build
//! checks' output in normal builds (`WARN: Rule: message (line N)`), in
//! BuildKit's and buildx's forms.

use std::process::ExitCode;

use anyhow::bail;
use rbk_build::{BuildRequest, CheckReport, Engine, PlannedBuild};
use rbk_parser::checks::{Finding, Level, Origin};
use serde_json::json;

use crate::args::SupplyChainArgs;

/// What `--call` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Build,
    Check { json: bool },
}

/// Reads `--check` and `--call`.
pub(crate) fn call(args: &SupplyChainArgs) -> anyhow::Result<Call> {
    let Some(value) = args.call.as_deref() else {
        return Ok(match args.check {
            true => Call::Check { json: false },
            false => Call::Build,
        });
    };
    let mut parts = value.split(',');
    let method = parts.next().unwrap_or_default().trim();
    let mut json = false;
    for opt in parts {
        match opt.trim().split_once('=') {
            Some(("format", "json")) => json = true,
            Some(("format", "text")) => json = false,
            _ => bail!("invalid --call option {opt:?} (expected format=json or format=text)"),
        }
    }
    match method {
        "build" if !args.check => Ok(Call::Build),
        "check" => Ok(Call::Check { json }),
        "build" => bail!("--check and --call=build contradict each other"),
        other => bail!("unsupported --call method {other:?} (rbk supports build and check)"),
    }
}

/// `--check`: prints the findings; exit status 1 when any warning was found.
pub(crate) fn run(
    engine: &Engine<'_>,
    request: &BuildRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = engine.check(request)?;
    print_notes(&report.notes);
    match json {
        true => print_json(&report, request),
        false => print_text(&report, request),
    }
    let failed = report.findings.iter().any(|f| f.rule.level == Level::Warn);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `Engine::plan`, showing the findings of a `# check=error=true` failure
/// before the error.
pub(crate) fn plan(engine: &Engine<'_>, request: BuildRequest) -> anyhow::Result<PlannedBuild> {
    match engine.plan(request) {
        Ok(planned) => {
            print_notes(&planned.planned.checks.notes);
            print_warnings(&planned.planned.checks.buildkit());
            Ok(planned)
        }
        Err(rbk_build::Error::Checks {
            message,
            findings,
            notes,
        }) => {
            print_notes(&notes);
            print_warnings(&findings);
            Err(anyhow::anyhow!(message))
        }
        Err(e) => Err(e.into()),
    }
}

#[allow(clippy::print_stderr)] // the CLI reports here
fn print_warnings(findings: &[Finding]) {
    for f in findings {
        eprintln!("WARN: {f}");
    }
}

#[allow(clippy::print_stderr)] // the CLI reports here
fn print_notes(notes: &[String]) {
    for n in notes {
        eprintln!("WARNING: {n}");
    }
}

/// buildx's `--check` text: a summary line, then per finding the rule, its
/// link, the message and the Dockerfile lines.
#[allow(clippy::print_stdout)] // the CLI reports here
fn print_text(report: &CheckReport, request: &BuildRequest) {
    let n = report.findings.len();
    match n {
        0 => println!("Check complete, no warnings found."),
        1 => println!("Check complete, 1 warning has been found!"),
        _ => println!("Check complete, {n} warnings have been found!"),
    }
    for f in &report.findings {
        let level = match f.rule.level {
            Level::Warn => "WARNING",
            Level::Info => "INFO",
        };
        print!("\n{level}: {}", f.rule.name);
        if !f.rule.url.is_empty() {
            print!(" - {}", f.rule.url);
        }
        println!("\n{}", f.message);
        if f.rule.origin == Origin::Rbk {
            println!("Why: {}\nFix: {}", f.rule.description, f.rule.fix);
        }
        if f.line > 0 {
            let at = rbk_parser::Location::lines(&request.dockerfile.name, f.line, f.end_line);
            print!(
                "{}",
                rbk_parser::render_snippet(&request.dockerfile.text, &at)
            );
        }
    }
}

/// BuildKit's `LintResults` JSON (`warnings`, `sources`), each warning with
/// rbk's `level` and, for rbk's own rules, `fix`.
#[allow(clippy::print_stdout)] // the CLI reports here
fn print_json(report: &CheckReport, request: &BuildRequest) {
    let warnings: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            let mut w = json!({
                "ruleName": f.rule.name,
                "description": f.rule.description,
                "detail": f.message,
                "level": match f.rule.level { Level::Warn => "warning", Level::Info => "info" },
            });
            if !f.rule.url.is_empty() {
                w["url"] = json!(f.rule.url);
            }
            if !f.rule.fix.is_empty() {
                w["fix"] = json!(f.rule.fix);
            }
            if f.line > 0 {
                w["location"] = json!({
                    "sourceIndex": 0,
                    "ranges": [{"start": {"line": f.line}, "end": {"line": f.end_line}}],
                });
            }
            w
        })
        .collect();
    let out = json!({
        "warnings": warnings,
        "sources": [{
            "filename": request.dockerfile.name,
            "language": "Dockerfile",
            "data": base64_encode(request.dockerfile.text.as_bytes()),
        }],
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}

/// Standard base64 (Go's `[]byte` in JSON).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
