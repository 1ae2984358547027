//! `rbk commit`: a container's changes as a new image on top of the image
//! it ran. The caller makes the layer (`rbk_exec::container_layer`, with
//! the container paused if it runs); this writes the config, history and
//! manifest and names the image.

use std::time::SystemTime;

use rbk_store::image::{format_rfc3339, History, Image};
use rbk_store::{Digest, Layer, Reference, Store};

use crate::Result;

/// What a commit adds to its base image.
#[derive(Clone, Debug, Default)]
pub struct CommitRequest {
    /// The container's changes; `None` when it changed nothing (the
    /// history entry is then marked `empty_layer`).
    pub layer: Option<Layer>,
    /// The history entry's `created_by`: the container's command line.
    pub created_by: String,
    /// `--author`.
    pub author: Option<String>,
    /// `--message`: the history entry's comment.
    pub message: Option<String>,
    /// `--change` instructions, applied to the runtime config in order.
    pub changes: Vec<String>,
    /// The name to tag; the image is kept untagged without one.
    pub reference: Option<Reference>,
}

/// Writes `base` plus `request`'s layer and history entry as a new image
/// and returns its id.
pub fn commit_container(store: &Store, base: &Image, request: CommitRequest) -> Result<Digest> {
    let now = format_rfc3339(SystemTime::now());
    let mut config = base.config.clone();
    let mut runtime = config.config.clone().unwrap_or_default();
    for change in &request.changes {
        crate::apply_change(&mut runtime, change)?;
    }
    config.config = Some(runtime);
    config.created = Some(now.clone());
    if let Some(author) = &request.author {
        config.author = Some(author.clone());
    }
    let mut blobs = base.manifest.layers.clone();
    if let Some(layer) = &request.layer {
        config.rootfs.diff_ids.push(layer.diff_id);
        blobs.push(layer.blob.clone());
    }
    config.history.push(History {
        created: Some(now),
        created_by: Some(request.created_by),
        author: request.author,
        comment: request.message,
        empty_layer: request.layer.is_none(),
    });
    let manifest = store.put_image(&config, blobs)?;
    let id = store.read_image(&manifest)?.id();
    match &request.reference {
        Some(r) => store.tag(r, manifest)?,
        None => store.keep_untagged(id, manifest)?,
    }
    Ok(id)
}
