//! A [`Definition`]: the vertices a frontend produced, in topological order.

use serde::{Deserialize, Serialize};

use crate::op::{NodeId, Op, OpMetadata};

/// One vertex: what it does and how to describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    /// The op (its identity).
    pub op: Op,
    /// Labels, spans and cache hints (not its identity).
    pub meta: OpMetadata,
}

/// The output of a frontend: vertices whose inputs always point at earlier
/// vertices. Build one with [`Definition::push`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// All vertices, in the order they were pushed.
    pub vertices: Vec<Vertex>,
}

impl Definition {
    /// An empty definition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a vertex and returns its id.
    ///
    /// # Panics
    /// When an input points at a vertex not pushed yet: frontends build
    /// definitions bottom-up, so that is a bug in the caller.
    pub fn push(&mut self, op: Op, meta: OpMetadata) -> NodeId {
        let id = NodeId(u32::try_from(self.vertices.len()).expect("fewer than 2^32 vertices"));
        assert!(
            op.inputs().iter().all(|input| input.node < id),
            "vertex inputs must point at earlier vertices"
        );
        self.vertices.push(Vertex { op, meta });
        id
    }

    /// The vertex with id `id`.
    pub fn get(&self, id: NodeId) -> &Vertex {
        &self.vertices[id.0 as usize]
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// True when there are no vertices.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }
}
