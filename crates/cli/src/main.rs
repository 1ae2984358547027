//! `rbk`: parse arguments, run one command, turn its result into an exit code.

mod args;
mod changes;
mod commands;
mod emulation;
mod humanize;
mod progress;
mod render;
mod settings;
mod template;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    commands::pull::set_insecure_registries(cli.insecure_registries.clone());
    let result = match cli.command {
        args::Command::Build(args) => commands::build::run(cli.root.as_deref(), args),
        args::Command::Debug(cmd) => commands::debug::run(cmd),
        args::Command::Import(a) => commands::import::run(cli.root.as_deref(), a),
        args::Command::Load(a) => commands::load::run(cli.root.as_deref(), a),
        args::Command::Save(a) => commands::save::run(cli.root.as_deref(), a),
        args::Command::Images(a) => commands::images::run(cli.root.as_deref(), a),
        args::Command::Tag(a) => commands::tag::run(cli.root.as_deref(), a),
        args::Command::Rmi(a) => commands::rmi::run(cli.root.as_deref(), a),
        args::Command::Inspect(a) => commands::inspect::run(cli.root.as_deref(), a),
        args::Command::History(a) => commands::history::run(cli.root.as_deref(), a),
        args::Command::System(c) => commands::system::run(cli.root.as_deref(), c),
        args::Command::Prune(a) => commands::prune::run(cli.root.as_deref(), a),
        args::Command::Pull(a) => commands::pull::run(cli.root.as_deref(), a),
        args::Command::Push(a) => commands::push::run(cli.root.as_deref(), a),
        args::Command::Login(a) => commands::login::login(a),
        args::Command::Logout(a) => commands::login::logout(a),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            render::error(&err);
            ExitCode::FAILURE
        }
    }
}

/// `rbk … | head` closing the pipe early is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        // serde_json wraps the write error of `inspect` in its own type.
        cause.downcast_ref::<std::io::Error>().map(|io| io.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|json| json.io_error_kind())
                == broken
    })
}
