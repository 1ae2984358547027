//! Finding the image a command names.

use anyhow::{bail, Context};
use rbk_store::image::Image;
use rbk_store::{FoundImage, Reference, Store};

use crate::settings::GlobalSettings;

/// Finds `name` the way Docker does: as a reference first, then as a full
/// or short image id (with or without `sha256:`), tagged or untagged.
pub(crate) fn find(store: &Store, name: &str) -> anyhow::Result<FoundImage> {
    match store.find_image(name) {
        Ok(found) => Ok(found),
        Err(e) if e.is_not_found() => bail!("No such image: {name}"),
        Err(e) => Err(e.into()),
    }
}

/// A name tagged to a multi-platform index (see
/// `Store::multi_platform_index`): the reference and the index's
/// descriptor.
pub(crate) fn tagged_index(
    store: &Store,
    name: &str,
) -> anyhow::Result<Option<(Reference, rbk_store::Descriptor)>> {
    let Some(named) = find(store, name)?.named else {
        return Ok(None);
    };
    Ok(store
        .multi_platform_index(&named)?
        .map(|desc| (named, desc)))
}

/// The image `name` (a name or an id) from the store, else pulled.
pub(crate) fn image_for_run(
    settings: &GlobalSettings,
    store: &Store,
    name: &str,
    pull: &str,
    platform: Option<&str>,
) -> anyhow::Result<Image> {
    let host = crate::settings::host_platform();
    let platform = match platform {
        Some(text) => {
            let (mut list, _) = rbk_build::parse_platforms(text, &host)?;
            if list.len() != 1 {
                bail!("--platform takes one platform for run, not {text:?}");
            }
            list.remove(0)
        }
        None => host,
    };
    let always = match pull {
        "missing" => false,
        "always" => true,
        "never" => {
            return Ok(store
                .find_image(name)
                .with_context(|| format!("No such image: {name} (--pull never)"))?
                .image)
        }
        other => bail!("invalid pull policy {other:?}: expected missing, always or never"),
    };
    if !always {
        if let Ok(found) = store.find_image(name) {
            return Ok(found.image);
        }
    }
    let reference: Reference = name
        .parse()
        .with_context(|| format!("invalid image name {name:?}"))?;
    Ok(rbk_build::image_for_build(
        store,
        &settings.registries(),
        &reference,
        &platform,
        always,
    )?)
}
