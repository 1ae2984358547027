//! `rbk save [-o FILE] [--format docker|oci] IMAGE...`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rbk_store::archive::{save_archive, ArchiveFormat, SavedImage};
use rbk_store::{Digest, Store};

use crate::args::{SaveArgs, SaveFormat};

pub(crate) fn run(root: Option<&Path>, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = crate::settings::open_store(root)?;
    let images = collect(&store, &args.images)?;
    let format = match args.format {
        SaveFormat::Docker => ArchiveFormat::Docker,
        SaveFormat::Oci => ArchiveFormat::Oci,
    };
    match &args.output {
        Some(path) => write_file(&store, &images, format, path)?,
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
        let found = super::inspect::find(store, name)?;
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

/// Writes to a temporary file beside `path`, then renames it into place, so
/// a failed or killed save leaves no half-written archive. The file is not
/// fsynced (neither is `docker save`'s): it is the user's output, not store
/// state, and syncing 1 GiB doubled the time of a save here.
pub(crate) fn write_file(
    store: &Store,
    images: &[SavedImage],
    format: ArchiveFormat,
    path: &Path,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".rbk-save-{}.tmp", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        save_archive(store, images, format, &mut w)?;
        w.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
