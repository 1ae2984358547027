//! The flags every command takes, each with the environment variable that
//! stands in for it (clap reads the variable when the flag is absent).

use std::path::PathBuf;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, ValueEnum};

/// The flags every command takes (resolved into `settings::GlobalSettings`).
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// The store root (default: `$XDG_DATA_HOME/rbk`, or `/var/lib/rbk`
    /// when run as root).
    // An empty `RBK_ROOT` counts as unset (see `settings::store_root`), so
    // the value is taken as it is rather than refused when empty.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "RBK_ROOT",
        value_parser = OsStringValueParser::new().map(PathBuf::from)
    )]
    pub(crate) root: Option<PathBuf>,
    /// A registry (`HOST[:PORT]`) to reach over plain HTTP (repeatable;
    /// `localhost` and loopback addresses always are).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub(crate) insecure_registries: Vec<String>,
    /// Build steps solved at once (independent steps overlap up to this
    /// many).
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "RBK_JOBS",
        default_value_t = 16
    )]
    pub(crate) jobs: usize,
    /// How steps see their filesystems: `overlay`, `native` (copying, for
    /// machines without overlayfs) or `auto` (overlay, falling back to
    /// copying where overlayfs is refused).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "RBK_SNAPSHOTTER",
        default_value_t = SnapshotterArg::Auto
    )]
    pub(crate) snapshotter: SnapshotterArg,
    /// The OCI runtime binary (default `runc`). Every command takes it,
    /// since every command that opens containers reaps those a killed rbk
    /// left behind with it.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "RBK_RUNTIME",
        value_parser = OsStringValueParser::new().map(PathBuf::from)
    )]
    pub(crate) runtime: Option<PathBuf>,
}

/// `--snapshotter` (`$RBK_SNAPSHOTTER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SnapshotterArg {
    /// Overlay, falling back to copying where overlayfs is refused.
    // An empty `RBK_SNAPSHOTTER` has always meant the default.
    #[value(alias = "")]
    Auto,
    /// Overlay only: a refused mount is an error.
    Overlay,
    /// Copying (slower; for machines without overlayfs).
    #[value(alias = "copy")]
    Native,
}
