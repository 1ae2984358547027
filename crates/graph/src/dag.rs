//! [`Dag`]: a [`Definition`] pruned to its roots, with identical vertices merged.

use std::collections::HashMap;

use crate::definition::Definition;
use crate::digest::digests_where;
use crate::error::Error;
use crate::op::{NodeId, Op, OpMetadata};
use crate::Digest;

/// One vertex of a [`Dag`].
///
/// Its op's input edges are renumbered to point at [`Dag`] indexes, so
/// `op().inputs()[i].node.0 as usize == inputs()[i]`.
#[derive(Clone, Debug)]
pub struct DagVertex {
    index: usize,
    digest: Digest,
    op: Op,
    meta: OpMetadata,
    inputs: Vec<usize>,
    deps: Vec<usize>,
    dependents: Vec<usize>,
    stages: Vec<String>,
}

impl DagVertex {
    /// Position in [`Dag::vertices`] (topological order).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The vertex digest (see [`crate::op_digest`]).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The op, with inputs renumbered to Dag indexes.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// Metadata of the first definition vertex merged into this one.
    pub fn meta(&self) -> &OpMetadata {
        &self.meta
    }

    /// The Dag index of each op input, in the op's input order (an index may
    /// repeat when the op uses one vertex twice).
    pub fn inputs(&self) -> &[usize] {
        &self.inputs
    }

    /// The distinct vertices this one waits for, ascending.
    pub fn deps(&self) -> &[usize] {
        &self.deps
    }

    /// The distinct vertices that wait for this one, ascending.
    pub fn dependents(&self) -> &[usize] {
        &self.dependents
    }

    /// Every stage whose vertices were merged into this one, the first
    /// vertex's stage first, without repeats (empty when none had a stage).
    pub fn stages(&self) -> &[String] {
        &self.stages
    }

    /// The metadata description, or the op kind when there is none.
    pub fn label(&self) -> &str {
        if self.meta.description.is_empty() {
            self.op.kind()
        } else {
            &self.meta.description
        }
    }
}

/// The vertices a build must solve: those reachable from the requested
/// roots, one per distinct digest, in topological order.
#[derive(Clone, Debug, Default)]
pub struct Dag {
    vertices: Vec<DagVertex>,
    roots: Vec<usize>,
    by_digest: HashMap<Digest, usize>,
}

impl Dag {
    /// Keeps the vertices of `def` reachable from `roots`, merges vertices
    /// with equal digests (the first one's metadata wins; the others' stage
    /// names are recorded in [`DagVertex::stages`]) and orders them
    /// topologically (by first appearance in `def`).
    pub fn new(def: &Definition, roots: &[NodeId]) -> Result<Dag, Error> {
        validate(def, roots)?;
        let reachable = reachable(def, roots);
        let digests = digests_where(def, &reachable);
        let mut by_digest: HashMap<Digest, usize> = HashMap::new();
        let mut node_to_index: Vec<usize> = vec![usize::MAX; def.len()];
        let mut vertices: Vec<DagVertex> = Vec::new();
        for (node, vertex) in def.vertices.iter().enumerate() {
            let Some(digest) = digests[node] else {
                continue;
            };
            if let Some(&index) = by_digest.get(&digest) {
                node_to_index[node] = index;
                add_stage(&mut vertices[index].stages, &vertex.meta);
                continue;
            }
            let index = vertices.len();
            by_digest.insert(digest, index);
            node_to_index[node] = index;
            vertices.push(new_vertex(index, digest, vertex, &node_to_index));
        }
        link_dependents(&mut vertices);
        let roots = roots.iter().map(|r| node_to_index[r.0 as usize]).collect();
        Ok(Dag {
            vertices,
            roots,
            by_digest,
        })
    }

    /// All vertices, in topological order (inputs before their users).
    pub fn vertices(&self) -> &[DagVertex] {
        &self.vertices
    }

    /// The vertex at `index`.
    ///
    /// # Panics
    /// When `index >= self.len()`.
    pub fn vertex(&self, index: usize) -> &DagVertex {
        &self.vertices[index]
    }

    /// The index of the vertex with `digest`, if it is in the Dag.
    pub fn find(&self, digest: Digest) -> Option<usize> {
        self.by_digest.get(&digest).copied()
    }

    /// The roots, as Dag indexes, in the order they were requested (merged
    /// roots appear once per request).
    pub fn roots(&self) -> &[usize] {
        &self.roots
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// True when there is nothing to solve.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// Schedule levels: level 0 holds the vertices without inputs, level `n`
    /// those whose deepest input is in level `n - 1`. The vertices of a level
    /// may all run at once; each list is ascending.
    pub fn levels(&self) -> Vec<Vec<usize>> {
        let mut level = vec![0usize; self.len()];
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for v in &self.vertices {
            let l = v.deps.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
            level[v.index] = l;
            if levels.len() <= l {
                levels.resize_with(l + 1, Vec::new);
            }
            levels[l].push(v.index);
        }
        levels
    }
}

/// Checks roots and edges, so that later passes may index freely.
fn validate(def: &Definition, roots: &[NodeId]) -> Result<(), Error> {
    if let Some(&node) = roots.iter().find(|r| r.0 as usize >= def.len()) {
        return Err(Error::UnknownRoot {
            node,
            len: def.len(),
        });
    }
    for (i, vertex) in def.vertices.iter().enumerate() {
        if let Some(input) = vertex.op.inputs().iter().find(|x| x.node.0 as usize >= i) {
            return Err(Error::BadInput {
                node: NodeId(i as u32),
                input: input.node,
            });
        }
    }
    Ok(())
}

/// Marks the vertices reachable from `roots` (one backward pass, since
/// inputs always point at earlier vertices).
fn reachable(def: &Definition, roots: &[NodeId]) -> Vec<bool> {
    let mut wanted = vec![false; def.len()];
    for root in roots {
        wanted[root.0 as usize] = true;
    }
    for i in (0..def.len()).rev() {
        if wanted[i] {
            for input in def.vertices[i].op.inputs() {
                wanted[input.node.0 as usize] = true;
            }
        }
    }
    wanted
}

fn new_vertex(
    index: usize,
    digest: Digest,
    vertex: &crate::Vertex,
    node_to_index: &[usize],
) -> DagVertex {
    let mut op = vertex.op.clone();
    let mut inputs = Vec::with_capacity(op.inputs().len());
    for input in op.inputs_mut() {
        let target = node_to_index[input.node.0 as usize];
        input.node = NodeId(target as u32);
        inputs.push(target);
    }
    let mut deps = inputs.clone();
    deps.sort_unstable();
    deps.dedup();
    let mut stages = Vec::new();
    add_stage(&mut stages, &vertex.meta);
    DagVertex {
        index,
        digest,
        op,
        meta: vertex.meta.clone(),
        inputs,
        deps,
        dependents: Vec::new(),
        stages,
    }
}

fn add_stage(stages: &mut Vec<String>, meta: &OpMetadata) {
    if let Some(stage) = &meta.stage {
        if !stages.contains(stage) {
            stages.push(stage.clone());
        }
    }
}

fn link_dependents(vertices: &mut [DagVertex]) {
    for i in 0..vertices.len() {
        for d in 0..vertices[i].deps.len() {
            let dep = vertices[i].deps[d];
            vertices[dep].dependents.push(i);
        }
    }
}
