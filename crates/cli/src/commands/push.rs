//! `rbk push IMAGE`, and pushing what a build made (`--push`,
//! `--output type=registry`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use rbk_store::image::Image;
use rbk_store::{Reference, Store};

use rbk_registry::{BlobProgress, Outcome};

use crate::args::{CompressionArg, PushArgs};
use crate::commands::pull::short_digest;

pub(crate) fn run(root: Option<&Path>, args: PushArgs) -> anyhow::Result<ExitCode> {
    let reference: Reference = args
        .image
        .parse()
        .with_context(|| format!("invalid image name {:?}", args.image))?;
    let store = crate::settings::open_store(root)?;
    let image = store
        .image(&reference)
        .with_context(|| format!("pushing {}", reference.familiar()))?;
    push_image(&store, &image, &reference, args.compression)?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes `image` to `reference`: its layers leave the store compressed
/// (as with `rbk save`), in a distribution manifest made for the purpose.
pub(crate) fn push_image(
    store: &Store,
    image: &Image,
    reference: &Reference,
    compression: CompressionArg,
) -> anyhow::Result<()> {
    report_start(reference);
    // The distribution manifest is untagged: keep GC off it until it is sent.
    let _lease = store.lease()?;
    let compressed = crate::commands::output::compressed_image(store, image, compression)?;
    let client = crate::commands::pull::client(None)?;
    let report = client
        .push_reporting(store, &compressed.descriptor, reference, &report_layer)
        .with_context(|| format!("pushing {}", reference.familiar()))?;
    report_done(reference, &compressed, &report);
    Ok(())
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
