//! Finding the image a command names.

use anyhow::bail;
use rbk_store::{FoundImage, Store};

/// Finds `name` the way Docker does: as a reference first, then as a full
/// or short image id (with or without `sha256:`), tagged or untagged.
pub(crate) fn find(store: &Store, name: &str) -> anyhow::Result<FoundImage> {
    match store.find_image(name) {
        Ok(found) => Ok(found),
        Err(e) if e.is_not_found() => bail!("No such image: {name}"),
        Err(e) => Err(e.into()),
    }
}
