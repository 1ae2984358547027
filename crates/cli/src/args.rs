//! Command-line definitions (clap derive types only; no logic).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Inspect rbk's internals (parse tree, word expansion, build plan).
    #[command(subcommand)]
    Debug(DebugCommand),
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
}
