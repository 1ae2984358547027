//! The final image: config, history and manifest written to the store.
//!
//! # Creation times
//!
//! As BuildKit's image exporter does, a history entry the build left
//! without a time (`created: None`; the frontend sets one only under
//! `SOURCE_DATE_EPOCH`) gets the creation time of its layer, and an entry
//! without a layer the time of the entry before it (the first known time if
//! none is before). The image's `created` is then the last entry's time. A
//! layer's creation time is when its blob entered the store (`Store::blob_created`): blobs are
//! content-addressed and written once, so a step served from the cache keeps
//! the time of the build that first made its layer, and a fully cached
//! rebuild gives the same config, hence the same image id. (A layer whose
//! exact content an earlier build already made shares that build's blob and
//! time; BuildKit would stamp a new cache record instead.)
//!
//! # History that does not pair with the layers
//!
//! A base image may carry fewer history entries with a layer than it has
//! layers (images made by tools that write no history, or trimmed by
//! hand), or more. As BuildKit's exporter does (`normalizeLayersAndHistory`
//! in `exporter/containerimage/writer.go`, the same in Docker 20.10's
//! copy): surplus entries are marked `empty_layer` from the bottom, and for
//! missing ones an entry per unaccounted top layer is appended at the end,
//! with the layer's time and the comment `buildkit.exporter.image.v0`, so
//! that every layer has an entry and `history` pairs sizes with entries.
//! BuildKit's `created_by` there is its internal description of the
//! layer's cache record (`mount / from exec …`, `pulled from …`); rbk keeps
//! no such record and leaves `created_by` out.

use std::time::SystemTime;

use rbk_graph::Platform;
use rbk_store::image::{format_rfc3339, History, ImageConfig, RootFs};
use rbk_store::{Descriptor, Layer, Store};

use crate::snapshot::is_empty_layer;
use crate::Result;

/// Everything about an image besides its layers.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The runtime config the Dockerfile accumulated (base image's included).
    pub config: rbk_graph::image::ContainerConfig,
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
/// first, as solved) and returns the manifest's descriptor. A step that
/// changed nothing (`RUN true`, `WORKDIR` on an existing directory) keeps
/// its empty layer (the tar of two zero blocks) and a history entry without
/// `empty_layer`, as BuildKit writes them.
pub fn commit_image(store: &Store, layers: &[Layer], spec: ImageSpec) -> Result<Descriptor> {
    let mut history = spec.history;
    pad_history(&mut history, layers.len());
    let mut created = format_rfc3339(spec.created);
    if history.iter().any(|h| h.created.is_none()) {
        let times = pairs(layers, &history).then(|| layer_times(store, layers));
        match fill_created(&mut history, times.as_deref()) {
            Some(last) => created = last,
            // Nothing to take a time from: the build's own time.
            None => history
                .iter_mut()
                .for_each(|h| h.created = Some(created.clone())),
        }
    }
    let container = spec.config;
    let mut extra = std::collections::BTreeMap::new();
    if !spec.platform.variant.is_empty() {
        extra.insert("variant".to_string(), spec.platform.variant.clone().into());
    }
    let config = ImageConfig {
        architecture: spec.platform.architecture.clone(),
        os: spec.platform.os.clone(),
        created: Some(created),
        author: (!spec.author.is_empty()).then(|| spec.author.clone()),
        config: Some(container),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.diff_id).collect(),
        },
        history,
        extra,
    };
    let blobs = layers.iter().map(|l| l.blob.clone()).collect();
    Ok(store.put_image(&config, blobs)?)
}

/// The comment BuildKit's exporter gives the entries it adds for layers
/// that had none.
const PADDED_HISTORY_COMMENT: &str = "buildkit.exporter.image.v0";

/// Makes the entries that are not `empty_layer` as many as `layers`, as
/// the module docs say: surplus ones become `empty_layer` (the lowest
/// `layers` keep their layer), missing ones are appended, without a time
/// (they take their layer's, see `fill_created`).
fn pad_history(history: &mut Vec<History>, layers: usize) {
    let mut with_layer = 0;
    for entry in history.iter_mut().filter(|h| !h.empty_layer) {
        if with_layer == layers {
            entry.empty_layer = true;
        } else {
            with_layer += 1;
        }
    }
    history.extend((with_layer..layers).map(|_| History {
        comment: Some(PADDED_HISTORY_COMMENT.into()),
        ..History::default()
    }));
}

/// Whether the non-empty history entries pair one to one with `layers`.
fn pairs(layers: &[Layer], history: &[History]) -> bool {
    history.iter().filter(|h| !h.empty_layer).count() == layers.len()
}

/// Each layer's creation time (when its blob was stored), `None` for the empty
/// layer (shared by every step that changed nothing) and unreadable blobs.
fn layer_times(store: &Store, layers: &[Layer]) -> Vec<Option<String>> {
    layers
        .iter()
        .map(|l| {
            if is_empty_layer(l) {
                return None;
            }
            Some(format_rfc3339(store.blob_created(&l.blob.digest)?))
        })
        .collect()
}

/// Fills the `created` of entries that have none, BuildKit's way (see the
/// module docs); `times` are the layers' times, in the order of the
/// entries that are not `empty_layer`. Returns the last entry's time, the
/// image's `created`; `None` when no entry has or gets a time.
fn fill_created(history: &mut [History], times: Option<&[Option<String>]>) -> Option<String> {
    if let Some(times) = times {
        let mut next = times.iter();
        for entry in history.iter_mut().filter(|h| !h.empty_layer) {
            let time = next.next().cloned().flatten();
            if entry.created.is_none() {
                entry.created = time;
            }
        }
    }
    let first = history.iter().find_map(|h| h.created.clone())?;
    let mut last = first;
    for entry in history.iter_mut() {
        match &entry.created {
            Some(t) => last = t.clone(),
            None => entry.created = Some(last.clone()),
        }
    }
    history.last().and_then(|h| h.created.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(by: &str, empty: bool) -> History {
        History {
            created_by: Some(by.into()),
            empty_layer: empty,
            ..History::default()
        }
    }

    fn timed(by: &str, empty: bool, created: Option<&str>) -> History {
        History {
            created: created.map(str::to_string),
            ..entry(by, empty)
        }
    }

    #[test]
    fn missing_times_come_from_layers_then_from_the_entry_before() {
        let mut history = vec![
            timed("base", false, Some("2020")),
            timed("ENV a=b", true, None),
            timed("RUN x", false, None),
            timed("RUN true", false, None),
            timed("LABEL l=1", true, None),
        ];
        let times = [None, Some("2024".to_string()), None];
        let last = fill_created(&mut history, Some(&times));
        let got: Vec<_> = history.iter().map(|h| h.created.clone().unwrap()).collect();
        // The base keeps its own; ENV takes the base's; RUN x its layer's;
        // the empty RUN and the LABEL the RUN's before them.
        assert_eq!(got, ["2020", "2020", "2024", "2024", "2024"]);
        assert_eq!(last.as_deref(), Some("2024"));
    }

    #[test]
    fn history_is_padded_or_trimmed_to_the_layers() {
        let shape = |h: &[History]| -> Vec<(Option<String>, bool, Option<String>)> {
            h.iter()
                .map(|e| (e.created_by.clone(), e.empty_layer, e.comment.clone()))
                .collect()
        };
        // A base with no history for its two layers, then a RUN.
        let mut short = vec![entry("ENV a=b", true), entry("RUN x", false)];
        pad_history(&mut short, 3);
        let padded = Some(PADDED_HISTORY_COMMENT.to_string());
        assert_eq!(
            shape(&short),
            [
                (Some("ENV a=b".into()), true, None),
                (Some("RUN x".into()), false, None),
                (None, false, padded.clone()),
                (None, false, padded),
            ]
        );
        // More entries with a layer than layers: the top ones lose theirs.
        let mut long = vec![entry("a", false), entry("b", true), entry("c", false)];
        pad_history(&mut long, 1);
        let empty: Vec<bool> = long.iter().map(|e| e.empty_layer).collect();
        assert_eq!(empty, [false, true, true]);
        let mut exact = vec![entry("a", false), entry("b", true)];
        pad_history(&mut exact, 1);
        assert_eq!(exact.len(), 2);
    }

    #[test]
    fn leading_entries_without_time_take_the_first_known() {
        let mut history = vec![timed("ENV a=b", true, None), timed("RUN x", false, None)];
        let last = fill_created(&mut history, Some(&[Some("2024".into())]));
        assert_eq!(history[0].created.as_deref(), Some("2024"));
        assert_eq!(last.as_deref(), Some("2024"));
        let mut none = vec![timed("ENV a=b", true, None)];
        assert_eq!(fill_created(&mut none, None), None);
    }
}
