//! `rbk build`.

use std::process::ExitCode;

use anyhow::{bail, Context};
use rbk_store::Reference;

use crate::args::BuildArgs;
use crate::commands::frontend;

/// Parses and plans the build, so Dockerfile errors surface now; running the
/// plan needs the executor, which has not landed yet, and rbk says so rather
/// than pretend to succeed.
pub(crate) fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    for tag in &args.tags {
        tag.parse::<Reference>()
            .with_context(|| format!("invalid tag {tag:?} given with -t"))?;
    }
    let planned = frontend::plan(args.frontend, args.no_cache)?;
    bail!(
        "the build plan has {} vertices, but executing builds is not available yet in this version of rbk \
         (see `rbk debug plan` for the plan)",
        planned.dag.len()
    )
}
