//! `rbk pull IMAGE [--platform P]`, and pulling base images for builds.

use std::path::Path;
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::Context;
use rbk_registry::{BlobProgress, Client, ClientOptions, Outcome};
use rbk_store::image::Image;
use rbk_store::{Reference, Store};

use crate::args::PullArgs;

/// `--insecure-registry` values, set once by `main` so that every command
/// (and the build's image resolver) makes clients alike.
static INSECURE: OnceLock<Vec<String>> = OnceLock::new();

/// Records the global `--insecure-registry` values.
pub(crate) fn set_insecure_registries(hosts: Vec<String>) {
    let _ = INSECURE.set(hosts);
}

/// Environment variable: how many blobs one pull or push moves at once
/// (default 4); `1` moves them one after another (benchmarks compare).
const PARALLEL_ENV: &str = "RBK_REGISTRY_PARALLEL";

/// A registry client with the global options and `platform`.
pub(crate) fn client(platform: Option<&str>) -> anyhow::Result<Client> {
    let parallel_blobs = match std::env::var(PARALLEL_ENV) {
        Ok(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{PARALLEL_ENV}={v:?}: expected a positive number"))?,
        ),
        Err(_) => None,
    };
    let options = ClientOptions {
        insecure_registries: INSECURE.get().cloned().unwrap_or_default(),
        docker_config_dir: None,
        platform: platform.map(str::to_string),
        parallel_blobs,
    };
    Ok(Client::new(options)?)
}

pub(crate) fn run(root: Option<&Path>, args: PullArgs) -> anyhow::Result<ExitCode> {
    let reference: Reference = args
        .image
        .parse()
        .with_context(|| format!("invalid image name {:?}", args.image))?;
    let store = crate::settings::open_store(root)?;
    let client = client(args.platform.as_deref())?;
    report_start(&reference);
    let before = store.resolve(&reference).ok();
    let manifest = client
        .pull_reporting(&store, &reference, &report_layer)
        .with_context(|| format!("pulling {}", reference.familiar()))?;
    store.tag(&reference, manifest.clone())?;
    let id = store.read_image(&manifest)?.id();
    store.add_repo_digest(id, &reference, manifest.digest)?;
    report_done(
        &reference,
        &manifest.digest.to_string(),
        before == Some(manifest),
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the CLI reports here
fn report_start(reference: &Reference) {
    let label = match (reference.tag(), reference.digest()) {
        (Some(tag), _) => tag.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".into(),
    };
    println!("{label}: Pulling from {}", reference.path());
}

/// Docker's line for a layer that is done: `<12 hex>: Pull complete`.
#[allow(clippy::print_stdout)] // the CLI reports here
fn report_layer(progress: &BlobProgress) {
    let status = match progress.outcome {
        _ if progress.is_config => return,
        Outcome::Pulled => "Pull complete",
        Outcome::AlreadyStored => "Already exists",
        _ => return,
    };
    println!("{}: {status}", short_digest(&progress.blob.digest));
}

/// The first 12 hex digits of a digest, as Docker names layers.
pub(crate) fn short_digest(digest: &rbk_store::Digest) -> String {
    digest.hex().chars().take(12).collect()
}

#[allow(clippy::print_stdout)] // the CLI reports here
fn report_done(reference: &Reference, digest: &str, up_to_date: bool) {
    println!("Digest: {digest}");
    if up_to_date {
        println!("Status: Image is up to date for {}", reference.familiar());
    } else {
        println!(
            "Status: Downloaded newer image for {}",
            reference.familiar()
        );
    }
    println!("{reference}");
}

/// The image a build names in `FROM` or `COPY --from`: from the store, else
/// (or always, with `--pull`) from its registry, pulled and tagged.
pub(crate) fn image_for_build(
    store: &Store,
    reference: &Reference,
    platform: &rbk_graph::Platform,
    always_pull: bool,
) -> anyhow::Result<Image> {
    if !always_pull {
        match store.image(reference) {
            Ok(image) => return Ok(image),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let platform = match (platform.os.as_str(), platform.variant.as_str()) {
        ("", _) => None,
        (os, "") => Some(format!("{os}/{}", platform.architecture)),
        (os, v) => Some(format!("{os}/{}/{v}", platform.architecture)),
    };
    let client = client(platform.as_deref())?;
    let manifest = client.pull(store, reference).with_context(|| {
        let name = reference.familiar();
        match always_pull {
            true => format!("pulling image {name} (--pull)"),
            false => format!("image {name} is not in the store, and pulling it failed"),
        }
    })?;
    store.tag(reference, manifest.clone())?;
    let image = store.read_image(&manifest)?;
    store.add_repo_digest(image.id(), reference, manifest.digest)?;
    Ok(image)
}
