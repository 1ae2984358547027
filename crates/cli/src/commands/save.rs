//! `rbk save [-o FILE] [--format docker|oci] IMAGE...`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use rbk_store::archive::{save_archive, save_archive_file, ArchiveFormat, SavedImage};
use rbk_store::{Digest, Store};

use crate::args::{SaveArgs, SaveFormat};

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: SaveArgs,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    let images = collect(&store, &args.images)?;
    let format = match args.format {
        SaveFormat::Docker => ArchiveFormat::Docker,
        SaveFormat::Oci => ArchiveFormat::Oci,
    };
    // One multi-platform image keeps its index and every platform.
    if let [name] = args.images.as_slice() {
        if let Some(index) = super::platforms::tagged_index(&store, name)? {
            super::platforms::save_index(&store, &index, format, args.output.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    match &args.output {
        Some(path) => save_archive_file(&store, &images, format, path)?,
        None => {
            let stdout = std::io::stdout();
            if std::io::IsTerminal::is_terminal(&stdout) {
                bail!("refusing to write an archive to a terminal: use -o FILE or redirect");
            }
            save_archive(
                &store,
                &images,
                format,
                std::io::BufWriter::new(stdout.lock()),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves the named images, merging names of the same manifest.
fn collect(store: &Store, names: &[String]) -> anyhow::Result<Vec<SavedImage>> {
    let mut by_manifest: BTreeMap<Digest, SavedImage> = BTreeMap::new();
    let mut order = Vec::new();
    for name in names {
        // A name or an image id (saved without a name, as docker does).
        let found = crate::lookup::find(store, name)?;
        let (image, named) = (found.image, found.named);
        let key = image.descriptor.digest;
        let entry = by_manifest.entry(key).or_insert_with(|| {
            order.push(key);
            SavedImage {
                image,
                references: Vec::new(),
            }
        });
        if let Some(reference) = named.filter(|r| !entry.references.contains(r)) {
            entry.references.push(reference);
        }
    }
    Ok(order.iter().filter_map(|k| by_manifest.remove(k)).collect())
}
