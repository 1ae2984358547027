//! `rbk tag SOURCE TARGET`.

use std::path::Path;
use std::process::ExitCode;

use rbk_store::Reference;

use crate::args::TagArgs;

pub(crate) fn run(root: Option<&Path>, args: TagArgs) -> anyhow::Result<ExitCode> {
    let source: Reference = args.source.parse()?;
    let target: Reference = args.target.parse()?;
    let store = crate::settings::open_store(root)?;
    let descriptor = store.resolve(&source)?;
    store.tag(&target, descriptor)?;
    Ok(ExitCode::SUCCESS)
}
