//! Attaching attestations to a build's images, one image or one per
//! platform: the store tags an index of the images followed by one
//! attestation manifest per image (BuildKit's order), and every way the
//! images leave the store (a push, `-o type=oci|docker`) sends an index of
//! the images as they leave (their digests differ from the stored ones when
//! layers are compressed on the way out) with attestation manifests about
//! those digests.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use rbk_graph::Dag;
use rbk_parser::{BaseRef, Plan};
use rbk_store::archive::{save_index_archive, ArchiveFormat};
use rbk_store::image::{format_rfc3339, Image, ImagePlatform};
use rbk_store::{Descriptor, Reference, Store};

use super::{attestation_manifest, statement, unknown_platform, Predicates, ProvenanceInput};
use crate::images::ImageProvider;
use crate::request::BuildRequest;
use crate::{output, Error, Result};

/// The images of a build with their attestations.
pub(crate) struct Attached {
    /// The index the store tags.
    pub(crate) index: Descriptor,
    /// Each image's platform and predicates, in the index's order.
    images: Vec<(ImagePlatform, Predicates)>,
    name: String,
    /// `--annotation index:…`.
    index_annotations: BTreeMap<String, String>,
}

/// One image to attest: the image, its (annotated) manifest descriptor and
/// the plan it was built from (its base images are the materials).
pub(crate) struct Subject<'a> {
    pub(crate) image: &'a Image,
    pub(crate) manifest: &'a Descriptor,
    pub(crate) plan: &'a Plan,
}

impl Attached {
    /// Warnings from making the attestations.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in self.images.iter().flat_map(|(_, p)| p.warnings.iter()) {
            if !out.contains(w) {
                out.push(w.clone()); // the same database in every platform's image
            }
        }
        out
    }

    /// An index of `manifests` (the images, in the order they were
    /// attached) and, after them, an attestation manifest about each.
    fn index_of(&self, store: &Store, manifests: &[Descriptor]) -> Result<Descriptor> {
        let mut entries = Vec::new();
        let mut attestations = Vec::new();
        for (manifest, (platform, predicates)) in manifests.iter().zip(&self.images) {
            let statements: Vec<_> = predicates
                .items
                .iter()
                .map(|(t, p)| statement(t, manifest, &self.name, platform, p))
                .collect();
            attestations.push(attestation_manifest(store, manifest, &statements)?);
            entries.push((manifest.clone(), platform.clone()));
        }
        entries.extend(attestations.iter().map(|a| (a.clone(), unknown_platform())));
        Ok(store.put_annotated_index(&entries, &self.index_annotations)?)
    }

    /// The index as it leaves the store: `images` as `-o type=registry|oci`
    /// send them, and attestations about them.
    fn distribution(
        &self,
        store: &Store,
        images: &[Image],
        request: &BuildRequest,
    ) -> Result<(Descriptor, Vec<Image>)> {
        let mut sent = Vec::new();
        for image in images {
            sent.push(output::distribution_image(
                store,
                image,
                request.compression,
            )?);
        }
        let manifests: Vec<Descriptor> = sent.iter().map(|i| i.descriptor.clone()).collect();
        Ok((self.index_of(store, &manifests)?, sent))
    }
}

/// Makes the attestations `request` asks for about `subjects` (`None` when
/// it asks for none); `dag` is the build's graph (its steps, in `max` mode).
pub(crate) fn attach(
    store: &Store,
    subjects: &[Subject<'_>],
    request: &BuildRequest,
    dag: &Dag,
    started: SystemTime,
) -> Result<Option<Attached>> {
    if !request.attest.any() {
        return Ok(None);
    }
    let Some(first) = subjects.first() else {
        return Ok(None);
    };
    let name = match request.tags.first() {
        Some(t) => t.to_string(),
        None => first.image.id().to_string(),
    };
    let steps: Vec<String> = dag
        .vertices()
        .iter()
        .map(|v| v.meta().description.clone())
        .collect();
    let mut images = Vec::new();
    let mut manifests = Vec::new();
    for subject in subjects {
        let image = subject.image;
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
            materials: materials(store, subject.plan)?,
            steps: steps.clone(),
            builder_platform: request.host_platform.to_string(),
            started: format_rfc3339(started),
            created: &created,
        };
        let predicates = Predicates::make(store, image, &request.attest, &input)?;
        images.push((crate::images::config_platform(image), predicates));
        manifests.push(subject.manifest.clone());
    }
    let mut attached = Attached {
        index: manifests[0].clone(),
        images,
        name,
        index_annotations: crate::annotate::index_annotations(&request.annotations),
    };
    attached.index = attached.index_of(store, &manifests)?;
    Ok(Some(attached))
}

/// The base images of every stage: reference, manifest digest, platform.
fn materials(store: &Store, plan: &Plan) -> Result<Vec<(String, String, String)>> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for stage in &plan.stages {
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

/// `--push` / `type=registry` of attested images: the distribution images
/// and their attestation manifests, as one index.
pub(crate) fn push(
    store: &Store,
    provider: &dyn ImageProvider,
    attached: &Attached,
    images: &[Image],
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
    let (index, _) = attached.distribution(store, images, request)?;
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

/// `-o type=oci|docker` of attested images: an archive whose `index.json`
/// names the index of the images and their attestation manifests (a
/// docker-archive's `manifest.json` lists the host's image, as BuildKit's
/// docker exporter does).
pub(crate) fn write_archive(
    store: &Store,
    attached: &Attached,
    images: &[Image],
    request: &BuildRequest,
    format: ArchiveFormat,
    path: &Path,
) -> Result<()> {
    let _lease = store.lease()?;
    let (index, blobs) = attached.distribution(store, images, request)?;
    output::write_archive_with(path, |w| {
        save_index_archive(store, &index, &blobs, &request.tags, format, w)
    })
}
