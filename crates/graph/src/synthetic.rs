//! Synthetic graphs for benchmarks and tests.
//!
//! ```
//! use rbk_graph::synthetic::{layered, Noop};
//! use rbk_graph::{Dag, NullReporter, Scheduler};
//!
//! let (def, roots) = layered(10_000, 100);
//! let dag = Dag::new(&def, &roots).unwrap();
//! assert_eq!(dag.len(), 10_000);
//! let outputs = Scheduler::new(16).run(&dag, &Noop, &NullReporter).unwrap();
//! assert_eq!(outputs.len(), 100);
//! ```

use std::convert::Infallible;

use crate::dag::DagVertex;
use crate::definition::Definition;
use crate::execute::{ExecContext, Execute};
use crate::op::{ExecOp, Input, NetworkMode, NodeId, Op, OpMetadata, SecurityMode, SourceOp};

/// A definition of `vertices` distinct vertices in layers of `width`
/// (at least 1): the first layer are image sources, every later vertex is
/// an exec over the vertex above it and that one's right neighbour. Returns
/// the definition and the last layer as roots, so nothing is pruned.
pub fn layered(vertices: usize, width: usize) -> (Definition, Vec<NodeId>) {
    let width = width.max(1);
    let mut def = Definition::new();
    for i in 0..vertices {
        let op = if i < width {
            Op::Source(SourceOp::Image {
                reference: format!("example.com/base:{i}"),
                platform: None,
            })
        } else {
            let above = i - width;
            let layer_start = above - above % width;
            let right = layer_start + (above + 1 - layer_start) % width;
            let mut inputs = vec![Input::of(NodeId(above as u32))];
            if right != above {
                inputs.push(Input::of(NodeId(right as u32)));
            }
            Op::Exec(ExecOp {
                inputs,
                args: vec!["/bin/sh".into(), "-c".into(), format!("step {i}")],
                env: vec!["PATH=/usr/bin:/bin".to_string()].into(),
                cwd: "/".into(),
                user: String::new(),
                mounts: Vec::new(),
                network: NetworkMode::Default,
                security: SecurityMode::Sandbox,
                hostname: String::new(),
            })
        };
        def.push(op, OpMetadata::default());
    }
    let first_root = vertices - vertices.min(width);
    let roots = (first_root..vertices).map(|i| NodeId(i as u32)).collect();
    (def, roots)
}

/// An executor that does nothing and outputs `()`: measures the scheduler
/// alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl Execute for Noop {
    type Output = ();
    type Error = Infallible;

    fn execute(&self, _: &DagVertex, _: &[()], _: &ExecContext<'_>) -> Result<(), Infallible> {
        Ok(())
    }
}
