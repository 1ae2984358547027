//! Attaching attestations to a single-platform build's image: the store
//! tags an index of the image and its attestation manifest, and a push
//! sends an index of the distribution image and an attestation manifest
//! about that manifest (its digest differs from the stored one when layers
//! are compressed on the way out).

use std::time::SystemTime;

use rbk_parser::BaseRef;
use rbk_store::image::{format_rfc3339, Image, ImagePlatform};
use rbk_store::{Descriptor, Reference, Store};

use super::{Predicates, ProvenanceInput};
use crate::images::ImageProvider;
use crate::plan::Planned;
use crate::request::BuildRequest;
use crate::{output, Error, Result};

/// An image with its attestations.
pub(crate) struct Attached {
    /// The index the store tags.
    pub(crate) index: Descriptor,
    predicates: Predicates,
    name: String,
    platform: ImagePlatform,
}

impl Attached {
    /// Warnings from making the attestations.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.predicates.warnings
    }
}

/// Makes the attestations `request` asks for (`None` when it asks for none).
pub(crate) fn attach(
    store: &Store,
    image: &Image,
    manifest: &Descriptor,
    request: &BuildRequest,
    planned: &Planned,
    started: SystemTime,
) -> Result<Option<Attached>> {
    if !request.attest.any() {
        return Ok(None);
    }
    let name = match request.tags.first() {
        Some(t) => t.to_string(),
        None => image.id().to_string(),
    };
    let platform = crate::images::config_platform(image);
    let created = image
        .config
        .created
        .clone()
        .unwrap_or_else(|| format_rfc3339(SystemTime::now()));
    let input = ProvenanceInput {
        name: &name,
        dockerfile_name: &request.dockerfile.name,
        dockerfile_text: &request.dockerfile.text,
        target: request.target.as_deref(),
        build_args: &request.build_args,
        secret_ids: request.secrets.keys().cloned().collect(),
        materials: materials(store, planned)?,
        steps: planned
            .dag
            .vertices()
            .iter()
            .map(|v| v.meta().description.clone())
            .collect(),
        builder_platform: request.host_platform.to_string(),
        started: format_rfc3339(started),
        created: &created,
    };
    let predicates = Predicates::make(store, image, &request.attest, &input)?;
    let index = predicates.index(store, manifest, &platform, &name)?;
    Ok(Some(Attached {
        index,
        predicates,
        name,
        platform,
    }))
}

/// The base images of every stage: reference, manifest digest, platform.
fn materials(store: &Store, planned: &Planned) -> Result<Vec<(String, String, String)>> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for stage in &planned.plan.stages {
        let BaseRef::Image(name) = &stage.base else {
            continue;
        };
        let found = store.find_image(name)?;
        let reference = found
            .named
            .as_ref()
            .map(Reference::to_string)
            .unwrap_or_else(|| name.clone());
        let item = (
            reference,
            found.image.descriptor.digest.to_string(),
            stage.platform.to_string(),
        );
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

/// `--push` / `type=registry` of an attested image: the distribution image
/// and its attestation manifest, as one index.
pub(crate) fn push(
    store: &Store,
    provider: &dyn ImageProvider,
    attached: &Attached,
    image: &Image,
    request: &BuildRequest,
    name: &Option<Reference>,
) -> Result<()> {
    let targets = match name {
        Some(n) => vec![n.clone()],
        None => request.tags.clone(),
    };
    if targets.is_empty() {
        return Err(Error::Invalid(
            "--output type=registry needs a name: give name=REF or -t NAME".into(),
        ));
    }
    let _lease = store.lease()?;
    let sent = output::distribution_image(store, image, request.compression)?;
    let index =
        attached
            .predicates
            .index(store, &sent.descriptor, &attached.platform, &attached.name)?;
    for target in &targets {
        provider
            .push(store, &index, target)
            .map_err(|source| Error::Registry {
                what: format!("pushing {}", target.familiar()),
                source,
            })?;
    }
    Ok(())
}
