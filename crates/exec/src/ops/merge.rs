//! Merge ops: a merge stacks its inputs' layers, later ones on top
//! (`COPY --link`). Nothing is copied or mounted.

use crate::solve::Solved;

/// The merge of `inputs`.
pub(crate) fn merge(inputs: &[Solved]) -> Solved {
    let layers = inputs
        .iter()
        .flat_map(|s| s.layers().iter().cloned())
        .collect();
    Solved::from_layers(layers)
}
