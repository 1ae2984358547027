//! Multi-platform builds (`--platform linux/amd64,linux/arm64`).
//!
//! Each platform is lowered as its own graph, with its own `TARGET*` args;
//! the graphs are then concatenated into one definition with one root per
//! platform, and [`Dag::new`] merges the vertices whose digests are equal.
//! A vertex's digest covers its op and its inputs, and an image source
//! names its platform, so what differs per platform stays apart while a
//! `FROM --platform=$BUILDPLATFORM` stage that does not read `TARGET*`
//! becomes one set of vertices, solved once, natively. One scheduler runs
//! the whole graph under one `--jobs` budget, so the platforms build in
//! parallel.
//!
//! After solving, each root becomes an image of its platform and the
//! images one OCI image index, which is what is tagged, pushed and written
//! (`type=local` and `type=tar` get a directory per platform, named as
//! buildx's `platform-split` names them: `linux_arm64`).

use std::path::Path;
use std::time::SystemTime;

use rbk_exec::{commit_image, Compression, Solved, Solver};
use rbk_graph::{Dag, Definition, NodeId, Op, Platform};
use rbk_parser::{LowerOptions, Plan};
use rbk_store::archive::{save_index_archive, ArchiveFormat};
use rbk_store::image::{Image, ImagePlatform};
use rbk_store::{Descriptor, Reference, Store};

use crate::images::{ImageProvider, Resolver};
use crate::plan::{plan, PlanOptions, Planned};
use crate::request::{BuildRequest, Output};
use crate::{output, Error, Result};

/// One platform of a multi-platform build: its lowered Dockerfile.
pub(crate) struct Target {
    pub(crate) plan: Plan,
}

/// Lowers the Dockerfile once per platform of `request` and merges the
/// graphs (see the module docs). The returned [`Planned`] holds the merged
/// graph, whose roots are the platforms' targets in order, and the first
/// platform's plan; the targets hold every platform's plan.
pub(crate) fn plan_platforms(
    resolver: &Resolver<'_>,
    request: &BuildRequest,
) -> Result<(Planned, Vec<Target>)> {
    check_outputs(&request.outputs)?;
    let mut planned: Vec<Planned> = Vec::new();
    for platform in &request.platforms {
        planned.push(plan(
            PlanOptions {
                dockerfile: &request.dockerfile,
                context: &request.context,
                lower: LowerOptions {
                    target: request.target.clone(),
                    build_args: request.build_args.clone(),
                    build_platform: request.host_platform.clone(),
                    target_platform: platform.clone(),
                    no_cache: request.no_cache,
                    ..LowerOptions::default()
                },
                no_cache_stages: &request.no_cache_filter,
            },
            Some(resolver),
        )?);
    }
    let (definition, roots) = merge(&planned, &request.platforms);
    let dag = Dag::new(&definition, &roots)?;
    let mut warnings: Vec<String> = Vec::new();
    for w in planned.iter().flat_map(|p| p.warnings.iter()) {
        if !warnings.contains(w) {
            warnings.push(w.clone()); // each platform's lowering says it again
        }
    }
    let mut rest = planned.into_iter();
    let first = rest
        .next()
        .ok_or_else(|| Error::Invalid("no platform to build".into()))?;
    let mut targets = vec![Target {
        plan: first.plan.clone(),
    }];
    targets.extend(rest.map(|p| Target { plan: p.plan }));
    let mut merged_plan = first.plan;
    merged_plan.definition = definition;
    let planned = Planned {
        plan: merged_plan,
        dag,
        excludes: first.excludes,
        warnings,
        foreign_syntax: first.foreign_syntax,
        checks: first.checks,
    };
    Ok((planned, targets))
}

/// Refuses outputs that hold one image: `type=docker` (a docker-archive
/// has no manifest lists; buildx: "docker exporter does not currently
/// support exporting manifest lists").
fn check_outputs(outputs: &[Output]) -> Result<()> {
    if outputs.iter().any(|o| matches!(o, Output::Docker(_))) {
        return Err(Error::Invalid(
            "--output type=docker holds one image and cannot take a multi-platform build \
             (docker exporter does not currently support exporting manifest lists): use \
             type=oci, type=registry (--push), type=local or type=tar, or build one platform"
                .into(),
        ));
    }
    Ok(())
}

/// The platforms' definitions one after the other, inputs renumbered, and
/// each platform's target; vertex labels name their stage's platform, as
/// BuildKit prints them (`[linux/arm64 build 2/4] RUN …`).
fn merge(planned: &[Planned], platforms: &[Platform]) -> (Definition, Vec<NodeId>) {
    let mut merged = Definition::new();
    let mut roots = Vec::new();
    for (p, target) in planned.iter().zip(platforms) {
        let offset = u32::try_from(merged.len()).expect("fewer than 2^32 vertices");
        for vertex in &p.plan.definition.vertices {
            let mut op = vertex.op.clone();
            for input in op.inputs_mut() {
                input.node.0 += offset;
            }
            let mut meta = vertex.meta.clone();
            if let Some(platform) = stage_platform(&p.plan, meta.stage.as_deref()) {
                meta.description = with_platform(&meta.description, platform, target);
            }
            merged.push(op, meta);
        }
        roots.push(NodeId(p.plan.target_stage().output.0 + offset));
    }
    (merged, roots)
}

/// The platform of the stage a vertex's metadata names (`AS` name or
/// `stage-N`).
fn stage_platform<'p>(plan: &'p Plan, stage: Option<&str>) -> Option<&'p Platform> {
    let stage = stage?;
    plan.stages
        .iter()
        .find(|s| match &s.name {
            Some(name) => name == stage,
            None => format!("stage-{}", s.index) == stage,
        })
        .map(|s| &s.platform)
}

/// `[build 2/4] RUN make` → `[linux/arm64 build 2/4] RUN make`; a stage
/// whose platform is not the target's (`FROM --platform=$BUILDPLATFORM`)
/// shows both, as BuildKit does: `[linux/amd64->arm64 build 2/4]`.
fn with_platform(label: &str, stage: &Platform, target: &Platform) -> String {
    let shown = match stage == target {
        true => stage.to_string(),
        false => {
            let mut arch = target.architecture.clone();
            if !target.variant.is_empty() {
                arch = format!("{arch}/{}", target.variant);
            }
            format!("{stage}->{arch}")
        }
    };
    match label.strip_prefix('[') {
        Some(rest) if !rest.starts_with("internal]") => format!("[{shown} {rest}"),
        _ => label.to_string(),
    }
}

/// Every platform that runs a RUN step of `planned` (the platform of each
/// exec vertex's stage), each once.
pub(crate) fn run_platforms(plans: &[&Plan], dag: &Dag) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for vertex in dag.vertices() {
        if !matches!(vertex.op(), Op::Exec(_)) {
            continue;
        }
        for stage in vertex.stages() {
            for plan in plans {
                if let Some(p) = stage_platform(plan, Some(stage)) {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
    }
    out
}

/// What [`commit`] made: each platform's image, and the index over them
/// (with an attestation manifest per image when the build asks for them).
pub(crate) struct Committed {
    pub(crate) images: Vec<Image>,
    pub(crate) index: Descriptor,
    pub(crate) attached: Option<crate::attest::Attached>,
}

/// Commits one image per platform from the solved roots and an index over
/// them (and their attestations); tags the index.
pub(crate) fn commit(
    store: &Store,
    solver: &Solver<'_>,
    targets: &[Target],
    solved: &[Solved],
    request: &BuildRequest,
    times: (SystemTime, SystemTime),
    dag: &Dag,
) -> Result<Committed> {
    let (started, created) = times;
    let mut images = Vec::new();
    let mut entries = Vec::new();
    for (target, root) in targets.iter().zip(solved) {
        let layers = root.layers().to_vec();
        solver.materialize(&layers)?;
        let stage = target.plan.target_stage();
        let mut spec = crate::engine::image_spec(
            store,
            &target.plan.stages,
            stage,
            created,
            request.source_date_epoch,
        )?;
        spec.config.labels.extend(request.labels.iter().cloned());
        let manifest = commit_image(store, &layers, spec)?;
        let manifest =
            crate::annotate::apply(store, manifest, &request.annotations, &stage.platform, true)?;
        images.push(store.read_image(&manifest)?);
        entries.push((manifest, image_platform(&stage.platform)));
    }
    let subjects: Vec<crate::attest::Subject<'_>> = images
        .iter()
        .zip(&entries)
        .zip(targets)
        .map(|((image, (manifest, _)), target)| crate::attest::Subject {
            image,
            manifest,
            plan: &target.plan,
        })
        .collect();
    let attached = crate::attest::attach(store, &subjects, request, dag, started)?;
    let index = match &attached {
        Some(a) => a.index.clone(),
        None => store.put_annotated_index(
            &entries,
            &crate::annotate::index_annotations(&request.annotations),
        )?,
    };
    for tag in &request.tags {
        store.tag(tag, index.clone())?;
    }
    if request.tags.is_empty() && request.outputs.is_empty() {
        let shown = store.read_image(&index)?;
        store.keep_untagged(shown.id(), index.clone())?; // `<none>` until pruned
    }
    Ok(Committed {
        images,
        index,
        attached,
    })
}

/// The store's name for a graph platform.
pub(crate) fn image_platform(p: &Platform) -> ImagePlatform {
    ImagePlatform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
    }
}

/// Writes a multi-platform result to `out`.
pub(crate) fn write(
    store: &Store,
    provider: &dyn ImageProvider,
    committed: &Committed,
    request: &BuildRequest,
    out: &Output,
) -> Result<()> {
    match out {
        Output::Registry(name) => {
            let targets = match name {
                Some(n) => vec![n.clone()],
                None => request.tags.clone(),
            };
            if targets.is_empty() {
                return Err(Error::Invalid(
                    "--output type=registry needs a name: give name=REF or -t NAME".into(),
                ));
            }
            if let Some(a) = &committed.attached {
                return crate::attest::push_attested(
                    store,
                    provider,
                    a,
                    &committed.images,
                    request,
                    name,
                );
            }
            let _lease = store.lease()?;
            let index = distribution_index(store, committed, request)?;
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
        Output::Oci(path) => {
            if let Some(a) = &committed.attached {
                return crate::attest::write_archive(
                    store,
                    a,
                    &committed.images,
                    request,
                    ArchiveFormat::Oci,
                    path,
                );
            }
            let _lease = store.lease()?;
            let index = distribution_index(store, committed, request)?;
            write_oci(store, &index, &request.tags, path)
        }
        Output::Local(dir) => {
            for (image, platform) in split(committed) {
                output::flatten_local(
                    store,
                    image,
                    &dir.join(platform),
                    request.source_date_epoch,
                )?;
            }
            Ok(())
        }
        Output::Tar(path) => {
            let work = store.work_dir()?;
            let root = work.upper();
            for (image, platform) in split(committed) {
                output::flatten(
                    store,
                    image,
                    &root.join(platform),
                    request.source_date_epoch,
                )?;
            }
            output::write_tree_tar(&root, path)
        }
        Output::Docker(_) => check_outputs(std::slice::from_ref(out)),
    }
}

/// Each image with the directory name buildx's `platform-split` gives it.
fn split(committed: &Committed) -> impl Iterator<Item = (&Image, String)> {
    committed.images.iter().map(|image| {
        let mut name = format!("{}_{}", image.config.os, image.config.architecture);
        if let Some(v) = image.config.extra.get("variant").and_then(|v| v.as_str()) {
            name = format!("{name}_{v}");
        }
        (image, name)
    })
}

/// The index as it leaves the store: each image as
/// [`output::distribution_image`] sends it, under a new index.
fn distribution_index(
    store: &Store,
    committed: &Committed,
    request: &BuildRequest,
) -> Result<Descriptor> {
    distribution_images(
        store,
        &committed.images,
        request.compression,
        &crate::annotate::index_annotations(&request.annotations),
    )
}

/// [`distribution_images`] of the images of the index `index` in the store
/// (what `rbk push` of a multi-platform or attested image sends), with the
/// index's attestation manifests when the store holds them all: as they
/// are when the images go unchanged, else made about the manifests sent.
pub fn distribution_index_of(
    store: &Store,
    index: &Descriptor,
    compression: Compression,
) -> Result<Descriptor> {
    let Some(list) = store.read_index(index)? else {
        return Ok(
            output::distribution_image(store, &store.read_image(index)?, compression)?.descriptor,
        );
    };
    let images = store
        .index_platforms(&list)
        .iter()
        .map(|(d, _)| store.read_image(d))
        .collect::<rbk_store::Result<Vec<_>>>()?;
    let entries = distribution_entries(store, &images, compression)?;
    // Images that go as they are stored (pulled, or loaded compressed)
    // leave the index as it is too: its bytes, digest and attestations.
    let listed = list
        .manifests
        .iter()
        .filter(|e| !e.is_attestation())
        .count();
    let unchanged = listed == images.len()
        && entries
            .iter()
            .zip(&images)
            .all(|((sent, _), image)| *sent == image.descriptor);
    if store.attestation_blobs(&list)?.is_none() {
        // Attestations pulled for some platforms only, or pruned: the
        // images go without them.
        return Ok(store.put_annotated_index(&entries, &list.annotations)?);
    }
    if unchanged {
        return Ok(index.clone());
    }
    // Images whose layers are compressed on the way out are new manifests:
    // their attestations are made about those.
    let sent: std::collections::BTreeMap<_, _> = images
        .iter()
        .zip(&entries)
        .map(|(image, (desc, _))| (image.descriptor.digest, desc.clone()))
        .collect();
    let mut all = entries;
    all.extend(crate::attest::retarget_attestations(store, &list, &sent)?);
    Ok(store.put_annotated_index(&all, &list.annotations)?)
}

fn distribution_images(
    store: &Store,
    images: &[Image],
    compression: Compression,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Descriptor> {
    let entries = distribution_entries(store, images, compression)?;
    Ok(store.put_annotated_index(&entries, annotations)?)
}

/// Each image as it goes to a registry, with its platform.
fn distribution_entries(
    store: &Store,
    images: &[Image],
    compression: Compression,
) -> Result<Vec<(Descriptor, ImagePlatform)>> {
    let mut entries = Vec::new();
    for image in images {
        let sent = output::distribution_image(store, image, compression)?;
        let platform = crate::images::config_platform(image);
        entries.push((sent.descriptor, platform));
    }
    Ok(entries)
}

/// An OCI archive whose `index.json` names the image index.
fn write_oci(store: &Store, index: &Descriptor, tags: &[Reference], path: &Path) -> Result<()> {
    let images: Vec<Image> = match store.read_index(index)? {
        Some(list) => store
            .index_platforms(&list)
            .iter()
            .map(|(d, _)| store.read_image(d))
            .collect::<rbk_store::Result<_>>()?,
        None => vec![store.read_image(index)?],
    };
    output::write_archive_with(path, |w| {
        save_index_archive(store, index, &images, tags, ArchiveFormat::Oci, w)
    })
}

/// For a step of a multi-platform build, the platform its label names
/// (`[linux/arm64 build 2/4] …` → `linux/arm64`).
pub(crate) fn failed_platform(err: &rbk_graph::Error, planned: &Planned) -> Option<String> {
    let vertex = planned.dag.vertex(planned.dag.find(err.vertex_digest()?)?);
    let label = vertex.meta().description.strip_prefix('[')?;
    let first = label.split([' ', ']']).next()?;
    // `linux/amd64->arm64`: the step ran on amd64 for the arm64 image.
    first.contains('/').then(|| first.to_string())
}
