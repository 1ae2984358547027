//! rbk's build graph: ops as plain data, identified by digest, solved in
//! parallel.
//!
//! A frontend (the Dockerfile parser) produces a [`Definition`]: vertices whose
//! [`Op`]s are serde data, pushed bottom-up. The main types:
//!
//! - [`Dag`] keeps the vertices reachable from the requested roots (pruning to
//!   `--target`), gives each a digest computed from its op and its inputs'
//!   digests ([`op_digest`]; metadata excluded) and merges vertices with equal
//!   digests. [`Dag::dump`] is the stable text form behind `rbk debug plan`.
//! - [`Scheduler`] solves a [`Dag`] on a thread pool through any [`Execute`]
//!   implementation, each vertex once and inputs first, stopping at the first
//!   failure ([`Error::Vertex`]).
//! - [`Reporter`] receives progress [`Event`]s, keyed by vertex digest.
//!
//! ```
//! use rbk_graph::{
//!     Dag, DagVertex, Definition, ExecContext, Execute, ExecOp, Input, Op, OpMetadata,
//!     RecordingReporter, Scheduler, SourceOp,
//! };
//!
//! // alpine, then one RUN over it.
//! let mut def = Definition::new();
//! let image = SourceOp::Image { reference: "docker.io/library/alpine:3.19".into(), platform: None };
//! let base = def.push(Op::Source(image), OpMetadata::default());
//! let run = def.push(
//!     Op::Exec(ExecOp {
//!         inputs: vec![Input::of(base)],
//!         args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
//!         env: Default::default(),
//!         cwd: "/src".into(),
//!         user: String::new(),
//!         mounts: vec![],
//!         network: Default::default(),
//!         security: Default::default(),
//!         hostname: String::new(),
//!     }),
//!     OpMetadata::default(),
//! );
//! let dag = Dag::new(&def, &[run]).unwrap();
//! assert!(dag.dump().contains("exec [/bin/sh -c make] cwd=/src"));
//!
//! // An executor that names what it would do.
//! struct Describe;
//! impl Execute for Describe {
//!     type Output = String;
//!     type Error = std::convert::Infallible;
//!     fn execute(&self, v: &DagVertex, inputs: &[String], _: &ExecContext<'_>) -> Result<String, Self::Error> {
//!         Ok(format!("{}({})", v.op().kind(), inputs.join(",")))
//!     }
//! }
//! let reporter = RecordingReporter::new();
//! let out = Scheduler::new(4).run(&dag, &Describe, &reporter).unwrap();
//! assert_eq!(out, vec!["exec(source())".to_string()]);
//! assert_eq!(reporter.events().len(), 4); // Started and Completed, twice
//! ```
#![deny(missing_docs)]

mod dag;
mod definition;
mod digest;
mod dump;
mod error;
mod execute;
pub mod image;
pub mod op;
mod report;
mod schedule;
pub mod synthetic;

pub use dag::{Dag, DagVertex};
pub use definition::{Definition, Vertex};
pub use digest::{canonical_bytes, op_digest};
pub use error::{BoxError, Error};
pub use execute::{CancelToken, ExecContext, Execute};
pub use op::{
    CacheSharing, CopyAction, EnvList, ExecOp, FileAction, FileOp, Input, MergeOp, Mount,
    MountKind, NetworkMode, NodeId, Op, OpMetadata, Owner, Platform, SecurityMode, SourceOp,
    SourceSpan,
};
pub use rbk_store::Digest;
pub use report::{Event, LogStream, NullReporter, RecordingReporter, Reporter};
pub use schedule::Scheduler;
