//! `rbk`: parse arguments, run one command, turn its result into an exit code.

mod args;
mod commands;
mod failed_step;
mod humanize;
mod lookup;
mod malloc;
mod progress;
mod render;
mod rootless;
mod runtime;
mod settings;
mod table;
mod template;
mod trash;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Before any thread starts, so that no arena is made beyond the limit.
    malloc::limit_arenas(std::env::var_os("MALLOC_ARENA_MAX").as_deref());
    let cli = args::Cli::parse();
    // Before any thread starts: a multi-threaded process cannot make a
    // user namespace.
    let container = match &cli.command {
        args::Command::Exec(a) => Some(a.container.as_str()),
        _ => None,
    };
    match rootless::enter(cli.global.root.as_deref(), container) {
        Ok(rootless::Entered::Continue) => {}
        Ok(rootless::Entered::Done(code)) => return code,
        Err(err) => {
            render::error(&err);
            return ExitCode::FAILURE;
        }
    }
    // rayon's global pool runs store checks and layer work that walk trees
    // (see rbk_store::WALK_STACK); if it was already built, keep that one.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(rbk_store::WALK_STACK)
        .build_global();
    let settings = match settings::GlobalSettings::resolve(cli.global) {
        Ok(settings) => settings,
        Err(err) => {
            render::error(&err);
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        args::Command::Build(args) => match args.records {
            Some(cmd) => commands::build_records::run(&settings, cmd),
            None => commands::build::run(&settings, args),
        },
        args::Command::Debug(cmd) => commands::debug::run(&settings, cmd),
        args::Command::Import(a) => commands::import::run(&settings, a),
        args::Command::Load(a) => commands::load::run(&settings, a),
        args::Command::Save(a) => commands::save::run(&settings, a),
        args::Command::Images(a) => commands::images::run(&settings, a),
        args::Command::Tag(a) => commands::tag::run(&settings, a),
        args::Command::Rmi(a) => commands::rmi::run(&settings, a),
        args::Command::Inspect(a) => commands::inspect::run(&settings, a),
        args::Command::History(a) => commands::history::run(&settings, a),
        args::Command::System(c) => commands::system::run(&settings, c),
        args::Command::Prune(a) => commands::prune::run(&settings, a),
        args::Command::Pull(a) => commands::pull::run(&settings, a),
        args::Command::Push(a) => commands::push::run(&settings, a),
        args::Command::Run(a) => commands::container_run::run(&settings, a),
        args::Command::Ps(a) => commands::container::ps(&settings, a),
        args::Command::Rm(a) => commands::container::rm(&settings, a),
        args::Command::Diff(a) => commands::container::diff(&settings, a),
        args::Command::Commit(a) => commands::container::commit(&settings, a),
        args::Command::Login(a) => commands::login::login(&settings, a),
        args::Command::Logout(a) => commands::login::logout(&settings, a),
        args::Command::Analyze(a) => commands::analyze::run(&settings, a),
        args::Command::Logs(a) if a.build.is_some() => commands::build_records::logs(&settings, a),
        args::Command::Logs(a) => commands::container_life::logs(&settings, a),
        args::Command::Stop(a) => commands::container_life::stop(&settings, a),
        args::Command::Kill(a) => commands::container_life::kill(&settings, a),
        args::Command::Start(a) => commands::container_life::start(&settings, a),
        args::Command::Wait(a) => commands::container_life::wait(&settings, a),
        args::Command::Exec(a) => commands::container_life::exec(&settings, a),
        args::Command::Export(a) => commands::container::export(&settings, a),
        args::Command::Cp(a) => commands::container_cp::cp(&settings, a),
        args::Command::Volume(c) => commands::volume::run(&settings, c),
        args::Command::Container(c) => commands::container::container(&settings, c),
        args::Command::ContainerMonitor(a) => commands::container_run::monitor(&settings, a),
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
