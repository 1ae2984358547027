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
    store.tag(&target, found.image.descriptor)?;
    Ok(ExitCode::SUCCESS)
}
