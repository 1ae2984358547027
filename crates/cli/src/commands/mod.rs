//! One module per verb; each exposes `run(args) -> anyhow::Result<ExitCode>`.

pub(crate) mod build;
pub(crate) mod debug;
pub(crate) mod frontend;
pub(crate) mod images;
pub(crate) mod import;
pub(crate) mod load;
mod output;
pub(crate) mod save;
pub(crate) mod tag;
