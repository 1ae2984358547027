//! Command-line definitions (clap derive types only; no logic).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rbk — a daemonless container image builder.
#[derive(Debug, Parser)]
#[command(name = "rbk", version, about, disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Inspect rbk's internals (parse tree, word expansion, build plan).
    #[command(subcommand)]
    Debug(DebugCommand),
}

/// The Dockerfile and build options shared by `build` and `debug plan`.
#[derive(Debug, Args)]
pub(crate) struct FrontendArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Option<PathBuf>,
    /// Build up to this stage.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub(crate) build_args: Vec<String>,
    /// Target platform (`os/arch[/variant]`).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// The build context directory.
    #[arg(default_value = ".")]
    pub(crate) context: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) frontend: FrontendArgs,
    /// Name and optionally a tag (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Do not use the build cache.
    #[arg(long = "no-cache")]
    pub(crate) no_cache: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub(crate) progress: Progress,
    /// Maximum number of vertices run at once.
    #[arg(long, default_value_t = 16)]
    pub(crate) jobs: usize,
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Progress {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Live view.
    Tty,
    /// Line per event, for logs and CI.
    Plain,
    /// Errors only.
    Quiet,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Print a Dockerfile's parse tree as BuildKit's parser dump does.
    Ast {
        /// The Dockerfile.
        file: PathBuf,
    },
    /// Expand a word with the Dockerfile's shell-like rules.
    Expand {
        /// A variable, `KEY=VALUE`; may be repeated.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Split into words (as RUN's exec form and FROM do) and print one per line.
        #[arg(long)]
        words: bool,
        /// The escape character (`\` or `` ` ``).
        #[arg(long, default_value_t = '\\')]
        escape: char,
        /// The word to expand.
        #[arg(allow_hyphen_values = true)]
        word: String,
    },
    /// Print the pruned build graph with digests and the schedule.
    Plan(FrontendArgs),
}
