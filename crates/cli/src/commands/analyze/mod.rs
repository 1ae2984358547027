//! `rbk analyze [--format text|json] [--html FILE] [--top N] IMAGE`: the
//! layer-waste view `dive` gives (see `rbk_build::analyze`), as a table, as
//! JSON, or as a self-contained HTML page.

mod html;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rbk_build::Analysis;
use rbk_parser::checks::Level;

use crate::args::AnalyzeArgs;
use crate::humanize;
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let json = match args.format.as_str() {
        "text" => false,
        "json" => true,
        other => bail!("unknown --format {other:?} (expected text or json)"),
    };
    let store = settings.open_store()?;
    let found = crate::lookup::find(&store, &args.image)?;
    let analysis = rbk_build::analyze(&store, &found.image, args.top)?;
    if let Some(path) = &args.html {
        let page = html::page(&args.image, &analysis);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        let file = path.file_name().context("--html needs a file name")?;
        rbk_store::write_atomic(dir, &file.to_string_lossy(), page.as_bytes())
            .with_context(|| format!("writing --html {}", path.display()))?;
    }
    let text = match json {
        true => serde_json::to_string_pretty(&analysis)? + "\n",
        false => text(&args.image, &analysis),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn text(name: &str, a: &Analysis) -> String {
    let mut s = format!("Image: {name} ({})\n\n", a.id);
    s.push_str(&format!(
        "{:>3}  {:>9}  {:>7}  {:>7}  {:>7}  INSTRUCTION\n",
        "#", "SIZE", "ADDED", "CHANGED", "REMOVED"
    ));
    for l in &a.layers {
        s.push_str(&format!(
            "{:>3}  {:>9}  {:>7}  {:>7}  {:>7}  {}\n",
            l.index,
            humanize::size(l.size),
            l.added,
            l.changed,
            l.removed,
            l.instruction.replace('\t', " ")
        ));
    }
    s.push_str(&format!(
        "\nTotal: {}  Wasted: {}  Efficiency: {:.2} %\n",
        humanize::size(a.total),
        humanize::size(a.wasted),
        a.efficiency * 100.0
    ));
    if !a.top_wasted.is_empty() {
        s.push_str("\nTop wasted paths:\n");
        s.push_str(&format!("{:>9}  {:<10}  PATH\n", "WASTED", "LAYERS"));
        for w in &a.top_wasted {
            let layers: Vec<String> = w.layers.iter().map(usize::to_string).collect();
            s.push_str(&format!(
                "{:>9}  {:<10}  /{}\n",
                humanize::size(w.wasted),
                layers.join(","),
                w.path
            ));
        }
    }
    if !a.findings.is_empty() {
        s.push('\n');
        for f in &a.findings {
            let level = match f.rule.level {
                Level::Warn => "WARN",
                Level::Info => "INFO",
            };
            s.push_str(&format!(
                "{level}: {}: {}\n  why: {}\n  fix: {}\n",
                f.rule.name, f.message, f.rule.description, f.rule.fix
            ));
        }
    }
    s
}
