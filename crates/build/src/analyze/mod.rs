//! `rbk analyze`: what each layer of an image adds, changes and removes,
//! the bytes that ship without reaching the final filesystem (files
//! overwritten or deleted by a later layer), an efficiency score, and the
//! checks the layers reveal (`DeletedInLaterLayer`, `AptListsNotRemoved`).
//!
//! Sizes are the uncompressed sizes of regular files, as `dive` counts
//! them; `compressed` is the layer blob's size.

mod walk;

use std::collections::BTreeMap;

use rbk_parser::checks::{rules, Finding};
use rbk_store::image::Image;
use rbk_store::{Digest, Store};
use serde::Serialize;

use crate::Result;

/// One layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// Position, base first.
    pub index: usize,
    /// The layer blob.
    pub digest: Digest,
    /// The history entry's `created_by`, shortened as `docker history` does.
    pub instruction: String,
    /// Bytes of regular files in the layer.
    pub size: u64,
    /// The blob's size.
    pub compressed: u64,
    /// Paths new in this layer.
    pub added: u64,
    /// Paths an earlier layer had that this one replaces.
    pub changed: u64,
    /// Paths this layer deletes (whiteouts, opaque directories).
    pub removed: u64,
}

/// A path whose earlier versions ship without being seen.
#[derive(Clone, Debug, Serialize)]
pub struct WastedPath {
    /// The path, without a leading `/`.
    pub path: String,
    /// Bytes of its versions overwritten or deleted later.
    pub wasted: u64,
    /// Layers whose version of it is overwritten or deleted later.
    pub layers: Vec<usize>,
}

/// One file of the final filesystem, for the tree view.
#[derive(Clone, Debug, Serialize)]
pub struct FinalFile {
    /// The path, without a leading `/`.
    pub path: String,
    /// Its size (0 for directories and links).
    pub size: u64,
    /// The layer it comes from.
    pub layer: usize,
    /// A directory.
    pub dir: bool,
}

/// The analysis of one image.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// The image id.
    pub id: Digest,
    /// Per layer, base first.
    pub layers: Vec<LayerReport>,
    /// Bytes of regular files over all layers.
    pub total: u64,
    /// Bytes of file versions that do not reach the final filesystem.
    pub wasted: u64,
    /// `1 - wasted / total` (1 for an empty image).
    pub efficiency: f64,
    /// The paths wasting most, largest first.
    pub top_wasted: Vec<WastedPath>,
    /// The checks the layers reveal.
    #[serde(serialize_with = "findings_json")]
    pub findings: Vec<Finding>,
    /// The final filesystem, sorted by path.
    pub files: Vec<FinalFile>,
}

fn findings_json<S: serde::Serializer>(
    f: &[Finding],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(f.len()))?;
    for finding in f {
        seq.serialize_element(&serde_json::json!({
            "rule": finding.rule.name,
            "level": format!("{:?}", finding.rule.level).to_lowercase(),
            "message": finding.message,
            "reason": finding.rule.description,
            "fix": finding.rule.fix,
        }))?;
    }
    seq.end()
}

/// Analyses `image` (its layers read from `store`), listing the `top`
/// most wasteful paths.
pub fn analyze(store: &Store, image: &Image, top: usize) -> Result<Analysis> {
    let instructions = instructions(image);
    let mut state = walk::State::default();
    let mut layers = Vec::new();
    for (index, desc) in image.manifest.layers.iter().enumerate() {
        let counts = state.apply_layer(store, index, &desc.digest)?;
        layers.push(LayerReport {
            index,
            digest: desc.digest,
            instruction: instructions.get(index).cloned().unwrap_or_default(),
            size: counts.size,
            compressed: desc.size,
            added: counts.added,
            changed: counts.changed,
            removed: counts.removed,
        });
    }
    let total: u64 = layers.iter().map(|l| l.size).sum();
    let wasted: u64 = state.wasted.values().map(|w| w.0).sum();
    let mut top_wasted: Vec<WastedPath> = state
        .wasted
        .iter()
        .map(|(path, (bytes, layers))| WastedPath {
            path: path.clone(),
            wasted: *bytes,
            layers: layers.clone(),
        })
        .filter(|w| w.wasted > 0)
        .collect();
    top_wasted.sort_by(|a, b| b.wasted.cmp(&a.wasted).then(a.path.cmp(&b.path)));
    top_wasted.truncate(top);
    let findings = findings(&state, &layers);
    Ok(Analysis {
        id: image.id(),
        efficiency: if total == 0 {
            1.0
        } else {
            1.0 - wasted as f64 / total as f64
        },
        layers,
        total,
        wasted,
        top_wasted,
        findings,
        files: state.final_files(),
    })
}

/// The instruction of each layer: history entries that made a layer, in
/// order.
fn instructions(image: &Image) -> Vec<String> {
    image
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| {
            let text = h.created_by.as_deref().unwrap_or_default();
            let text = text.strip_prefix("/bin/sh -c #(nop) ").unwrap_or(text);
            text.strip_suffix(" # buildkit")
                .unwrap_or(text)
                .trim()
                .to_string()
        })
        .collect()
}

/// `DeletedInLaterLayer` per pair of layers, and `AptListsNotRemoved` when
/// package lists reach the final filesystem.
fn findings(state: &walk::State, layers: &[LayerReport]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut pairs: BTreeMap<(usize, usize), (u64, u64, String)> = BTreeMap::new();
    for d in &state.deleted {
        let e = pairs
            .entry((d.added_in, d.removed_in))
            .or_insert((0, 0, d.path.clone()));
        e.0 += 1;
        e.1 += d.size;
        if d.size > 0 && e.2.is_empty() {
            e.2 = d.path.clone();
        }
    }
    for ((added, removed), (count, bytes, example)) in pairs {
        if bytes == 0 {
            continue;
        }
        let name = |i: usize| {
            layers
                .get(i)
                .map(|l| l.instruction.as_str())
                .unwrap_or_default()
                .to_string()
        };
        out.push(Finding {
            rule: &rules::DELETED_IN_LATER_LAYER,
            message: format!(
                "{count} files ({bytes} bytes, e.g. /{example}) added by layer {added} ({}) are deleted by layer {removed} ({}) but still ship in layer {added}",
                short(&name(added)),
                short(&name(removed)),
            ),
            line: 0,
            end_line: 0,
        });
    }
    let lists = state.apt_lists();
    if let Some(first) = lists.first() {
        let bytes: u64 = lists.iter().map(|f| f.1).sum();
        out.push(Finding {
            rule: &rules::APT_LISTS_NOT_REMOVED,
            message: format!(
                "{} files ({bytes} bytes) under /var/lib/apt/lists ship in the image (layer {}: {})",
                lists.len(),
                first.2,
                short(layers.get(first.2).map(|l| l.instruction.as_str()).unwrap_or_default())
            ),
            line: 0,
            end_line: 0,
        });
    }
    out
}

/// A path, its size and its layer.
pub(crate) type FinalFileRef = (String, u64, usize);

fn short(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
