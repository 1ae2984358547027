//! rbk's build graph: ops as plain data, identified by digest.
//!
//! A frontend (the Dockerfile parser) produces a [`Definition`]: vertices whose
//! [`Op`]s are serde data. The graph gives each vertex a digest computed from
//! its op and its inputs' digests, prunes to the requested outputs, merges
//! identical vertices, and schedules the rest in parallel over any executor.
//!
//! ```
//! use rbk_graph::{Definition, Op, OpMetadata, SourceOp};
//!
//! let mut def = Definition::new();
//! let base = def.push(Op::Source(SourceOp::Scratch), OpMetadata::default());
//! assert_eq!(def.get(base).op.kind(), "source");
//! ```
#![deny(missing_docs)]

mod definition;
pub mod image;
pub mod op;

pub use definition::{Definition, Vertex};
pub use op::{
    CacheSharing, CopyAction, ExecOp, FileAction, FileOp, Input, MergeOp, Mount, MountKind,
    NetworkMode, NodeId, Op, OpMetadata, Owner, Platform, SecurityMode, SourceOp, SourceSpan,
};
pub use rbk_store::Digest;
