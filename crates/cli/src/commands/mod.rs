//! One module per verb; each exposes `run(args) -> anyhow::Result<ExitCode>`.

pub(crate) mod build;
pub(crate) mod debug;
mod frontend;
