//! `rbk inspect [--format T] [--type container|image] NAME...`: a JSON
//! array like `docker inspect`: a container of that name first (see
//! `container_inspect`), else an image as `docker image inspect` shows it.
//!
//! Fields, in Docker's order: `Id`, `RepoTags`, `RepoDigests` (the
//! `repository@digest` names rbk pulled or pushed the image as), `Parent` (`""`: rbk records no parent images),
//! `Comment`, `Created`, `DockerVersion` (`""`), `Author`, `Config` (the image
//! config's `config` object as stored), `Architecture`, `Variant` (when set),
//! `Os`, `Size` (uncompressed, as `rbk images` shows), `GraphDriver`
//! (`{"Name":"overlay","Data":null}`), `RootFS` (`Type` and the diff ids as
//! `Layers`) and `Metadata.LastTagTime` (rbk does not record tag times:
//! Go's zero time, as Docker shows for images never tagged locally).
//!
//! `--format` takes a Go template over that object (`{{.Id}}`,
//! `{{.Config.Env}}`, `{{json .Config}}`, `range`, `index`, … — see
//! `crate::template`); `json` prints the default array.

use std::io::Write;
use std::process::ExitCode;

use rbk_store::{FoundImage, Store};
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::InspectArgs;
use crate::template::Format;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: InspectArgs,
) -> anyhow::Result<ExitCode> {
    let store = crate::runtime::open_containers(settings)?;
    if args.attestations {
        return attestations(&store, &args.images);
    }
    let (containers, images) = match args.kind.as_deref() {
        None => (true, true),
        Some("container") => (true, false),
        Some("image") => (false, true),
        Some(other) => anyhow::bail!("{other:?} is not a valid value for --type"),
    };
    let mut docs = Vec::new();
    let mut failed = false;
    for name in &args.images {
        // As docker: a container by that name first, then an image.
        if containers {
            if let Ok(c) = store.find_container(name) {
                docs.push(super::container_inspect::document(&store, &c));
                continue;
            }
        }
        let found = match images {
            true => crate::lookup::find(&store, name).and_then(|found| {
                let doc = platform_document(&store, found, args.platform.as_deref())?;
                Ok(serde_json::to_value(doc)?)
            }),
            false => Err(anyhow::anyhow!("No such container: {name}")),
        };
        match found {
            Ok(doc) => docs.push(doc),
            Err(e) => {
                crate::render::error(&e);
                failed = true;
            }
        }
    }
    // `json` (and `table`, which docker takes too) print the default array.
    let format = match args.format.as_deref().map(str::trim) {
        None | Some("json") | Some("table") | Some("") => None,
        Some(f) => Some(Format::parse(f)?),
    };
    let mut out = std::io::stdout().lock();
    match format {
        Some(format) => {
            format.write(&mut out, &docs, &[])?;
        }
        None => {
            serde_json::to_writer_pretty(&mut out, &docs)?;
            writeln!(out)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The `docker image inspect` object, fields in Docker's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: &'static str,
    comment: Value,
    created: String,
    docker_version: &'static str,
    author: String,
    config: Value,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<Value>,
    os: String,
    size: u64,
    graph_driver: Value,
    #[serde(rename = "RootFS")]
    root_fs: Value,
    metadata: Value,
    /// A multi-platform image's index (as Docker's containerd store shows).
    #[serde(skip_serializing_if = "Option::is_none")]
    descriptor: Option<Value>,
    /// A multi-platform image's manifests, with their platforms.
    #[serde(skip_serializing_if = "Option::is_none")]
    manifests: Option<Vec<Value>>,
}

/// [`document`] of `platform`'s image when given (see
/// `Store::found_for_platform`), with the index a multi-platform image's
/// name points at.
fn platform_document(
    store: &Store,
    found: FoundImage,
    platform: Option<&str>,
) -> anyhow::Result<Document> {
    let found = match platform {
        Some(text) => store.found_for_platform(found, &crate::settings::one_platform(text)?)?,
        None => found,
    };
    let mut doc = document(store, &found)?;
    describe_index(store, &found, &mut doc)?;
    Ok(doc)
}

/// When `found` was named by a tag that points at an index: the index's
/// descriptor and its manifests with their platforms (the fields Docker's
/// containerd image store adds to `docker image inspect`).
fn describe_index(store: &Store, found: &FoundImage, doc: &mut Document) -> anyhow::Result<()> {
    let Some(named) = &found.named else {
        return Ok(());
    };
    let desc = store.resolve(named)?;
    let Some(index) = store.read_index(&desc)? else {
        return Ok(());
    };
    doc.descriptor = Some(json!({
        "mediaType": desc.media_type,
        "digest": desc.digest.to_string(),
        "size": desc.size,
    }));
    let manifest = |(d, p): &(rbk_store::Descriptor, rbk_store::image::ImagePlatform)| {
        let mut platform = json!({"architecture": p.architecture, "os": p.os});
        if !p.variant.is_empty() {
            platform["variant"] = json!(p.variant);
        }
        json!({
            "Descriptor": {"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size},
            "Platform": platform,
        })
    };
    doc.manifests = Some(store.index_platforms(&index).iter().map(manifest).collect());
    Ok(())
}

/// The `docker image inspect` object for one image.
fn document(store: &Store, found: &FoundImage) -> anyhow::Result<Document> {
    let image = &found.image;
    let config = &image.config;
    let container = match &config.config {
        Some(c) => serde_json::to_value(c)?,
        None => json!({}),
    };
    let layers: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    let doc = Document {
        id: image.id().to_string(),
        repo_tags: found.references.iter().map(|r| r.familiar()).collect(),
        repo_digests: store.repo_digests(&image.id())?,
        parent: "",
        comment: config.extra.get("comment").cloned().unwrap_or(json!("")),
        created: config
            .created
            .clone()
            .unwrap_or("0001-01-01T00:00:00Z".into()),
        docker_version: "",
        author: config.author.clone().unwrap_or_default(),
        config: container,
        architecture: config.architecture.clone(),
        variant: config.extra.get("variant").cloned(),
        os: config.os.clone(),
        size: store.image_size(image),
        graph_driver: json!({"Data": null, "Name": "overlay"}),
        root_fs: json!({"Type": config.rootfs.kind, "Layers": layers}),
        metadata: json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
        descriptor: None,
        manifests: None,
    };
    Ok(doc)
}

/// `--attestations`: the statements attached to each tagged image, as one
/// JSON array.
fn attestations(store: &Store, names: &[String]) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    for name in names {
        let reference: rbk_store::Reference = name
            .parse()
            .map_err(|e| anyhow::anyhow!("{name:?} is not an image reference: {e}"))?;
        let descriptor = store.resolve(&reference)?;
        all.extend(rbk_build::attest::attestations_of(
            store,
            &descriptor,
            None,
        )?);
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &all)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}
