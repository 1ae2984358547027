//! `rbk pull IMAGE [--platform P[,P...] | --all-platforms]`.

use std::process::ExitCode;

use anyhow::Context;
use rbk_registry::{BlobProgress, Outcome};
use rbk_store::Reference;

use crate::args::PullArgs;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: PullArgs,
) -> anyhow::Result<ExitCode> {
    let reference: Reference = args
        .image
        .parse()
        .with_context(|| format!("invalid image name {:?}", args.image))?;
    let store = settings.open_store()?;
    // Several platforms (or all) keep an index; one pulls that one image.
    let list = match &args.platform {
        Some(p) if p.contains(',') => Some(
            p.split(',')
                .map(|one| rbk_registry::Platform::parse(one.trim()))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let keep_index = args.all_platforms || list.is_some();
    let client = match keep_index {
        true => settings.client(None)?,
        false => settings.client(args.platform.as_deref())?,
    };
    report_start(&reference);
    let before = store.resolve(&reference).ok();
    let pulled = match keep_index {
        true => client.pull_platforms(&store, &reference, list.as_deref(), &report_layer),
        false => client.pull_reporting(&store, &reference, &report_layer),
    };
    let manifest = pulled.with_context(|| format!("pulling {}", reference.familiar()))?;
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
    println!(
        "{}: {status}",
        crate::humanize::short_digest(&progress.blob.digest)
    );
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
