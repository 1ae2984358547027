//! `rbk debug …`: rbk's internals, printed for tests and curious users.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rbk_parser::expand::Lexer;

use crate::args::DebugCommand;
use crate::render::DockerfileError;
use crate::settings::{FrontendSettings, GlobalSettings};

pub(crate) fn run(settings: &GlobalSettings, cmd: DebugCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DebugCommand::Ast { file } => ast(&file),
        DebugCommand::Expand {
            env,
            words,
            escape,
            word,
        } => expand(&env, words, escape, &word),
        DebugCommand::Plan(args) => plan(args),
        DebugCommand::Step(args) => super::debug_step::run(settings, args),
    }
}

fn ast(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    let name = path.display().to_string();
    let ast =
        rbk_parser::syntax::parse(&text, &name).map_err(|error| DockerfileError { text, error })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", ast.root.dump())?;
    Ok(ExitCode::SUCCESS)
}

fn expand(env: &[String], words: bool, escape: char, word: &str) -> anyhow::Result<ExitCode> {
    let mut vars: Vec<(String, String)> = Vec::with_capacity(env.len());
    for pair in env {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("invalid --env {pair:?}: expected KEY=VALUE");
        };
        vars.push((k.to_string(), v.to_string()));
    }
    let lexer = Lexer::new(escape);
    let mut out = std::io::stdout().lock();
    if words {
        for w in lexer
            .process_words(word, &vars)
            .with_context(|| format!("expanding {word:?}"))?
        {
            writeln!(out, "{w}")?;
        }
    } else {
        let expanded = lexer
            .process_word(word, &vars)
            .with_context(|| format!("expanding {word:?}"))?;
        writeln!(out, "{expanded}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn plan(args: crate::args::FrontendArgs) -> anyhow::Result<ExitCode> {
    let settings = FrontendSettings::resolve(args)?;
    let options = rbk_build::PlanOptions {
        dockerfile: &settings.dockerfile,
        context: &settings.context,
        lower: rbk_parser::LowerOptions {
            target: settings.target.clone(),
            build_args: settings.build_args.clone(),
            target_platform: settings.platform.clone(),
            ..Default::default()
        },
        no_cache_stages: &[],
    };
    let planned = rbk_build::plan(options, None)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", planned.dump())?;
    Ok(ExitCode::SUCCESS)
}
