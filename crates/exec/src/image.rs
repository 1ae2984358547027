//! The final image: config, history and manifest written to the store.

use std::time::SystemTime;

use rbk_graph::Platform;
use rbk_store::image::{format_rfc3339, ContainerConfig, History, ImageConfig, RootFs};
use rbk_store::{Descriptor, Layer, Store};

use crate::solve::is_empty_layer;
use crate::{Error, Result};

/// Everything about an image besides its layers.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The runtime config the Dockerfile accumulated (base image's included).
    pub config: rbk_graph::image::ImageConfig,
    /// The base image's history followed by the build's entries, one per
    /// instruction; entries not marked `empty_layer` pair with the layers in
    /// order.
    pub history: Vec<History>,
    /// The image's platform.
    pub platform: Platform,
    /// `MAINTAINER`, empty when unset.
    pub author: String,
    /// The image's creation time.
    pub created: SystemTime,
}

/// Writes the config and manifest of the image made of `layers` (lowest
/// first, as solved) and returns the manifest's descriptor. Layers of steps
/// that changed nothing are dropped and their history entries marked
/// `empty_layer`, as BuildKit does.
pub fn commit_image(store: &Store, layers: &[Layer], spec: ImageSpec) -> Result<Descriptor> {
    let (kept, history) = drop_empty_layers(layers, spec.history);
    let container = serde_json::to_value(&spec.config)
        .and_then(serde_json::from_value::<ContainerConfig>)
        .map_err(|e| Error::Invalid(format!("image config: {e}")))?;
    let mut extra = std::collections::BTreeMap::new();
    if !spec.platform.variant.is_empty() {
        extra.insert("variant".to_string(), spec.platform.variant.clone().into());
    }
    let config = ImageConfig {
        architecture: spec.platform.architecture.clone(),
        os: spec.platform.os.clone(),
        created: Some(format_rfc3339(spec.created)),
        author: (!spec.author.is_empty()).then(|| spec.author.clone()),
        config: Some(container),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: kept.iter().map(|l| l.diff_id).collect(),
        },
        history,
        extra,
    };
    let blobs = kept.into_iter().map(|l| l.blob).collect();
    Ok(store.put_image(&config, blobs)?)
}

/// Pairs non-empty history entries with layers; an empty layer is dropped
/// and its entry marked empty. If the counts disagree (a base image with an
/// inconsistent history), layers are kept as they are and history untouched.
fn drop_empty_layers(layers: &[Layer], mut history: Vec<History>) -> (Vec<Layer>, Vec<History>) {
    let with_layer = history.iter().filter(|h| !h.empty_layer).count();
    if with_layer != layers.len() {
        let kept = layers
            .iter()
            .filter(|l| !is_empty_layer(l))
            .cloned()
            .collect();
        return (kept, history);
    }
    let mut kept = Vec::new();
    let mut next = layers.iter();
    for entry in history.iter_mut().filter(|h| !h.empty_layer) {
        let Some(layer) = next.next() else { break };
        if is_empty_layer(layer) {
            entry.empty_layer = true;
        } else {
            kept.push(layer.clone());
        }
    }
    (kept, history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbk_store::Digest;

    fn layer(bytes: &[u8]) -> Layer {
        let digest = Digest::sha256_of(bytes);
        Layer {
            diff_id: digest,
            blob: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest,
                size: bytes.len() as u64,
                annotations: Default::default(),
            },
        }
    }

    fn entry(by: &str, empty: bool) -> History {
        History {
            created_by: Some(by.into()),
            empty_layer: empty,
            ..History::default()
        }
    }

    #[test]
    fn empty_layers_are_dropped_and_their_history_marked() {
        let base = layer(b"base");
        let empty = layer(&[0u8; 1024]);
        let copy = layer(b"copy");
        let history = vec![
            entry("base", false),
            entry("ENV a=b", true),
            entry("RUN true", false),
            entry("COPY x /x", false),
        ];
        let (kept, history) = drop_empty_layers(&[base.clone(), empty, copy.clone()], history);
        assert_eq!(kept, vec![base, copy]);
        let marks: Vec<bool> = history.iter().map(|h| h.empty_layer).collect();
        assert_eq!(marks, vec![false, true, true, false]);
    }

    #[test]
    fn mismatched_history_keeps_layers_as_they_are() {
        let base = layer(b"base");
        let (kept, history) = drop_empty_layers(std::slice::from_ref(&base), vec![]);
        assert_eq!(kept, vec![base]);
        assert!(history.is_empty());
    }
}
