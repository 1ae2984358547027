//! Cache keys and content digests (see the module docs of `solve`).

use rbk_graph::{DagVertex, FileAction, Op};
use rbk_store::{Digest, Layer, Sha256Writer};

use super::Solved;
use crate::Result;

/// Version of the key scheme: bump it when what goes into a key changes, so
/// old records are never read with a new meaning.
const SCHEME: &[u8] = b"rbk-cache-v1\0";

/// The digest of a stack of layers: sha256 over their diff ids in order.
pub(crate) fn chain_digest(layers: &[Layer]) -> Digest {
    let mut h = Sha256Writer::new();
    h.update(b"layers\0");
    for layer in layers {
        h.update(layer.diff_id.as_bytes());
    }
    h.finish()
}

/// The cache key of `vertex` given its solved `inputs`, for a build under
/// `source_date_epoch` if any: the epoch clamps the file times of new
/// layers and dates the directories file ops create, so a layer made under
/// another epoch (or none) is not this step's result. Without an epoch
/// nothing is added, so those keys are what they always were.
pub(super) fn cache_key(
    vertex: &DagVertex,
    inputs: &[Solved],
    source_date_epoch: Option<i64>,
) -> Result<Digest> {
    let mut h = Sha256Writer::new();
    h.update(SCHEME);
    h.update(vertex.digest().as_bytes());
    if let Some(epoch) = source_date_epoch {
        h.update(b"source-date-epoch\0");
        h.update(&epoch.to_le_bytes());
    }
    for (i, input) in inputs.iter().enumerate() {
        h.update(&(i as u64).to_le_bytes());
        match (&input.0.local, vertex.op()) {
            // A COPY from the context depends on the files it selects only.
            (Some(local), Op::File(op)) => {
                for action in &op.actions {
                    let FileAction::Copy(copy) = action else {
                        continue;
                    };
                    if copy.from as usize != i {
                        continue;
                    }
                    let selected = local.index.selector_digest(
                        &copy.src,
                        copy.allow_wildcard,
                        copy.follow_symlinks,
                        copy.allow_empty_wildcard,
                    )?;
                    h.update(selected.as_bytes());
                }
                local.save_cache();
            }
            // Anything else that reads a local source reads all of it.
            (Some(local), _) => {
                h.update(local.index.digest()?.as_bytes());
                local.save_cache();
            }
            _ => h.update(input.0.content.as_bytes()),
        }
    }
    Ok(h.finish())
}

// The golden test that pins what keys cover: `solve/key/golden.rs`.
#[cfg(test)]
mod golden;
