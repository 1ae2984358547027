//! `rbk push IMAGE`, and pushing what a build made (`--push`,
//! `--output type=registry`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use rbk_store::image::{
    Image, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, OCI_CONFIG,
    OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
};
use rbk_store::{Descriptor, Reference, Store};

use rbk_registry::{BlobProgress, Outcome};

use crate::args::{CompressionArg, PushArgs};
use crate::commands::pull::short_digest;

pub(crate) fn run(root: Option<&Path>, args: PushArgs) -> anyhow::Result<ExitCode> {
    let store = crate::settings::open_store(root)?;
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
            push_image(&store, &found.image, reference, args.compression)?;
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
    push_image(&store, &image, &reference, args.compression)?;
    Ok(ExitCode::SUCCESS)
}

/// Pushes `image` to `reference`: see [`distribution_image`] for what is
/// sent.
pub(crate) fn push_image(
    store: &Store,
    image: &Image,
    reference: &Reference,
    compression: CompressionArg,
) -> anyhow::Result<()> {
    report_start(reference);
    // The distribution manifest is untagged: keep GC off it until it is sent.
    let _lease = store.lease()?;
    let sent = distribution_image(store, image, compression)?;
    let client = crate::commands::pull::client(None)?;
    let report = client
        .push_reporting(store, &sent.descriptor, reference, &report_layer)
        .with_context(|| format!("pushing {}", reference.familiar()))?;
    store.add_repo_digest(image.id(), reference, sent.descriptor.digest)?;
    report_done(reference, &sent, &report);
    Ok(())
}

/// What goes to the registry for `image`. An image whose layers are all
/// compressed already (one that was pulled, or loaded with compressed
/// layers) goes as it is stored: its manifest keeps its bytes and digest,
/// as `docker push` of a pulled image does. Otherwise its uncompressed
/// layers leave the store compressed (as with `rbk save`) in a new OCI
/// manifest, in which every descriptor gets its OCI media type: layers of
/// a base pulled with Docker's media types keep their bytes but are not
/// named as Docker's inside an OCI manifest (BuildKit's exporter converts
/// them the same way).
fn distribution_image(
    store: &Store,
    image: &Image,
    compression: CompressionArg,
) -> anyhow::Result<Image> {
    // The rule `compress_layer` uses: anything not ending in `.tar` is
    // compressed already and would be sent unchanged.
    if image
        .manifest
        .layers
        .iter()
        .all(|l| !l.media_type.ends_with(".tar"))
    {
        return Ok(image.clone());
    }
    let compressed = crate::commands::output::compressed_image(store, image, compression)?;
    let config = with_oci_type(&compressed.manifest.config);
    let layers: Vec<Descriptor> = compressed
        .manifest
        .layers
        .iter()
        .map(with_oci_type)
        .collect();
    if config == compressed.manifest.config && layers == compressed.manifest.layers {
        return Ok(compressed);
    }
    let manifest = store.put_manifest(config, layers)?;
    Ok(store.read_image(&manifest)?)
}

/// `desc` named with the OCI media type for what Docker's type says.
fn with_oci_type(desc: &Descriptor) -> Descriptor {
    let media_type = match desc.media_type.as_str() {
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER => OCI_LAYER,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_ZSTD => OCI_LAYER_ZSTD,
        other => other,
    };
    Descriptor {
        media_type: media_type.to_string(),
        ..desc.clone()
    }
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
