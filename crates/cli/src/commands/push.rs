//! `rbk push IMAGE` (a build's `--push` goes through the engine).

use std::process::ExitCode;

use anyhow::Context;
use rbk_store::image::Image;
use rbk_store::{Reference, Store};

use rbk_registry::{BlobProgress, Outcome};

use crate::args::{CompressionArg, PushArgs};
use crate::humanize::short_digest;
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, args: PushArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    // An image id pushes to every name it has.
    if let Some(found) = store
        .find_image(&args.image)
        .ok()
        .filter(|f| f.named.is_none())
    {
        if found.references.is_empty() {
            anyhow::bail!(
                "image {} has no name to push to: name it first (`rbk tag {} REGISTRY/NAME:TAG`)",
                args.image,
                args.image
            );
        }
        for reference in &found.references {
            push_image(settings, &store, &found.image, reference, args.compression)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reference: Reference = args
        .image
        .parse()
        .with_context(|| format!("invalid image name {:?}", args.image))?;
    let image = store
        .image(&reference)
        .with_context(|| format!("pushing {}", reference.familiar()))?;
    if store.multi_platform_index(&reference)?.is_some() {
        // A multi-platform image goes as its index, every platform with it.
        return push_index(settings, &store, &reference, args.compression);
    }
    push_image(settings, &store, &image, &reference, args.compression)?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes `image` to `reference` (see [`rbk_build::distribution_image`]
/// for what is sent), with Docker's progress lines, and records the
/// repository digest.
fn push_image(
    settings: &GlobalSettings,
    store: &Store,
    image: &Image,
    reference: &Reference,
    compression: CompressionArg,
) -> anyhow::Result<()> {
    report_start(reference);
    // The distribution manifest is untagged: keep GC off it until it is sent.
    let _lease = store.lease()?;
    let compression = crate::settings::compression(compression);
    let client = settings.client(None)?;
    // Each layer goes up as soon as it is compressed, while the next one
    // is being compressed.
    let (report, sent) = client
        .push_staged(store, reference, &report_layer, |queue| {
            let sent = rbk_build::distribution_image_staged(store, image, compression, &mut |l| {
                queue.send(l.clone());
            })?;
            anyhow::Ok((sent.descriptor.clone(), sent))
        })
        .with_context(|| format!("pushing {}", reference.familiar()))?;
    store.add_repo_digest(image.id(), reference, sent.descriptor.digest)?;
    report_done(reference, &sent, &report);
    Ok(())
}

/// Pushes the index `reference` points at with every image it lists
/// (see [`rbk_build::distribution_index_of`]).
fn push_index(
    settings: &GlobalSettings,
    store: &Store,
    reference: &Reference,
    compression: CompressionArg,
) -> anyhow::Result<ExitCode> {
    report_start(reference);
    let _lease = store.lease()?;
    let index = rbk_build::distribution_index_of(
        store,
        &store.resolve(reference)?,
        crate::settings::compression(compression),
    )?;
    let client = settings.client(None)?;
    let report = client
        .push_reporting(store, &index, reference, &report_layer)
        .with_context(|| format!("pushing {}", reference.familiar()))?;
    let shown = store.read_image(&index)?;
    store.add_repo_digest(shown.id(), reference, index.digest)?;
    report_done(
        reference,
        &Image {
            descriptor: index,
            ..shown
        },
        &report,
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the CLI reports here
fn report_start(reference: &Reference) {
    println!("The push refers to repository [{}]", reference.name());
}

/// Docker's line for a layer that is done: `<12 hex>: Pushed`, `Layer
/// already exists` or `Mounted from REPO`.
#[allow(clippy::print_stdout)] // the CLI reports here
fn report_layer(progress: &BlobProgress) {
    let status = match &progress.outcome {
        _ if progress.is_config => return,
        Outcome::Pushed => "Pushed".to_string(),
        Outcome::AlreadyInRegistry => "Layer already exists".to_string(),
        Outcome::Mounted(from) => format!("Mounted from {from}"),
        _ => return,
    };
    println!("{}: {status}", short_digest(&progress.blob.digest));
}

#[allow(clippy::print_stdout)] // the CLI reports here
fn report_done(reference: &Reference, image: &Image, report: &rbk_registry::PushReport) {
    println!(
        "pushed {} blobs ({} bytes), {} already present, {} mounted",
        report.uploaded, report.bytes, report.skipped, report.mounted
    );
    println!(
        "{}: digest: {} size: {}",
        reference.tag().unwrap_or("latest"),
        image.descriptor.digest,
        image.descriptor.size
    );
}
