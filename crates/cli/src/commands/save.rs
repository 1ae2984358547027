//! `rbk save [-o FILE] [--format docker|oci] IMAGE...`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use rbk_store::archive::{
    save_archive, save_archive_file, save_index_archive, ArchiveFormat, SavedImage,
};
use rbk_store::output::OutputFile;
use rbk_store::{Descriptor, Digest, Reference, Store};

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
        if let Some(index) = crate::lookup::tagged_index(&store, name)? {
            save_index(&store, &index, format, args.output.as_deref())?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    match &args.output {
        Some(path) => save_archive_file(&store, &images, format, path)?,
        None => save_archive(&store, &images, format, BufWriter::new(stdout()?.lock()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Standard output, unless it is a terminal.
fn stdout() -> anyhow::Result<std::io::Stdout> {
    let stdout = std::io::stdout();
    if std::io::IsTerminal::is_terminal(&stdout) {
        bail!("refusing to write an archive to a terminal: use -o FILE or redirect");
    }
    Ok(stdout)
}

/// One multi-platform image: every platform under its index (see
/// `save_index_archive`), to `output` or standard output.
fn save_index(
    store: &Store,
    (name, index): &(Reference, Descriptor),
    format: ArchiveFormat,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let images = store.index_images(index)?;
    let refs = std::slice::from_ref(name);
    match output {
        Some(path) => {
            let mut w = BufWriter::new(OutputFile::create(path)?);
            save_index_archive(store, index, &images, refs, format, &mut w)?;
            w.into_inner().map_err(|e| e.into_error())?.commit()?;
        }
        None => {
            let mut w = BufWriter::new(stdout()?.lock());
            save_index_archive(store, index, &images, refs, format, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
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
