//! `rbk tag SOURCE TARGET`: SOURCE is a reference or an image id (full,
//! short or `sha256:`), tagged or untagged, as `docker tag` takes.

use std::process::ExitCode;

use rbk_store::Reference;

use crate::args::TagArgs;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: TagArgs,
) -> anyhow::Result<ExitCode> {
    let target: Reference = args.target.parse()?;
    let store = settings.open_store()?;
    let found = crate::lookup::find(&store, &args.source)?;
    // A name keeps what it points at: a multi-platform index stays one.
    let descriptor = match &found.named {
        Some(named) => store.resolve(named)?,
        None => found.image.descriptor,
    };
    store.tag(&target, descriptor)?;
    Ok(ExitCode::SUCCESS)
}
