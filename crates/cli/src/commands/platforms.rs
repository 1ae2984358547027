//! Multi-platform images in the image commands: `inspect --platform`, and
//! the index a tag points at.

use std::io::Write;
use std::path::Path;

use anyhow::bail;
use rbk_store::archive::{save_index_archive, ArchiveFormat};
use rbk_store::output::OutputFile;
use rbk_store::{Descriptor, FoundImage, Reference, Store};
use serde_json::{json, Value};

/// `found` with its image replaced by `platform`'s (`os/arch[/variant]`)
/// when given: the entry of the index its name points at, or the image
/// itself when it is for that platform.
pub(crate) fn for_platform(
    store: &Store,
    mut found: FoundImage,
    platform: Option<&str>,
) -> anyhow::Result<FoundImage> {
    let Some(text) = platform else {
        return Ok(found);
    };
    let host = crate::settings::host_platform();
    let (list, _) = rbk_build::parse_platforms(text, &host)?;
    let [p] = list.as_slice() else {
        bail!("--platform {text:?}: give one platform");
    };
    let wanted = rbk_store::image::ImagePlatform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
    };
    if let Some(named) = &found.named {
        found.image = store.image_for_platform(&store.resolve(named)?, &wanted)?;
    }
    let config = &found.image.config;
    if config.os != wanted.os || config.architecture != wanted.architecture {
        bail!(
            "image {} is for {}/{}, not {wanted}",
            found.image.id(),
            config.os,
            config.architecture
        );
    }
    Ok(found)
}

/// When `found` was named by a tag that points at an index: the index's
/// descriptor and its manifests with their platforms (the fields Docker's
/// containerd image store adds to `docker image inspect`).
pub(crate) fn describe_index(
    store: &Store,
    found: &FoundImage,
    descriptor: &mut Option<Value>,
    manifests: &mut Option<Vec<Value>>,
) -> anyhow::Result<()> {
    let Some(named) = &found.named else {
        return Ok(());
    };
    let desc = store.resolve(named)?;
    let Some(index) = store.read_index(&desc)? else {
        return Ok(());
    };
    *descriptor = Some(json!({
        "mediaType": desc.media_type,
        "digest": desc.digest.to_string(),
        "size": desc.size,
    }));
    let entries = store.index_platforms(&index);
    *manifests = Some(
        entries
            .iter()
            .map(|(d, p)| {
                let mut platform = json!({"architecture": p.architecture, "os": p.os});
                if !p.variant.is_empty() {
                    platform["variant"] = json!(p.variant);
                }
                json!({
                    "Descriptor": {"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size},
                    "Platform": platform,
                })
            })
            .collect(),
    );
    Ok(())
}

/// A name tagged to an index: the reference and the index's descriptor.
pub(crate) fn tagged_index(
    store: &Store,
    name: &str,
) -> anyhow::Result<Option<(Reference, Descriptor)>> {
    let found = crate::lookup::find(store, name)?;
    let Some(named) = found.named else {
        return Ok(None);
    };
    Ok(multi_platform_index(store, &named)?.map(|desc| (named, desc)))
}

/// The index `reference` points at when it is pushed and saved as an
/// index: it lists images for several platforms, or attestation manifests
/// the store holds (as BuildKit writes them; the index then keeps its
/// bytes and digest). An index of one image whose attestations were left
/// behind is pushed and saved as that image.
pub(crate) fn multi_platform_index(
    store: &Store,
    reference: &Reference,
) -> anyhow::Result<Option<Descriptor>> {
    let desc = store.resolve(reference)?;
    let Some(index) = store.read_index(&desc)? else {
        return Ok(None);
    };
    let attested = index.manifests.iter().any(|e| e.is_attestation())
        && store.attestation_blobs(&index)?.is_some();
    Ok((store.index_platforms(&index).len() > 1 || attested).then_some(desc))
}

/// `rbk save` of one multi-platform image: every platform under its index
/// (see `save_index_archive`), to `output` or standard output.
pub(crate) fn save_index(
    store: &Store,
    (name, index): &(Reference, Descriptor),
    format: ArchiveFormat,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let list = store
        .read_index(index)?
        .ok_or_else(|| anyhow::anyhow!("{} is not an index", index.digest))?;
    let images = store
        .index_platforms(&list)
        .iter()
        .map(|(d, _)| store.read_image(d))
        .collect::<Result<Vec<_>, _>>()?;
    let refs = std::slice::from_ref(name);
    match output {
        Some(path) => {
            let mut w = std::io::BufWriter::new(OutputFile::create(path)?);
            save_index_archive(store, index, &images, refs, format, &mut w)?;
            w.into_inner().map_err(|e| e.into_error())?.commit()?;
        }
        None => {
            let stdout = std::io::stdout();
            if std::io::IsTerminal::is_terminal(&stdout) {
                bail!("refusing to write an archive to a terminal: use -o FILE or redirect");
            }
            let mut w = std::io::BufWriter::new(stdout.lock());
            save_index_archive(store, index, &images, refs, format, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}
