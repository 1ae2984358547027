//! rbk's build engine: a Dockerfile and its context in, an image in the
//! store (and the requested outputs and caches) out.
//!
//! Where to start reading: [`Engine::plan`] then [`Engine::run`] in
//! `engine.rs`, which call, in order,
//! - `plan.rs`: the parser (text → stages → a graph of ops), with base
//!   images resolved through `images.rs`;
//! - `images.rs`: images from the store, else from an [`ImageProvider`]
//!   ([`Registries`] for real, a fake in tests);
//! - `context_paths.rs`: the parts of the context the pruned graph reads,
//!   so that the solver walks only those (BuildKit's `FollowPaths`);
//! - `rbk_exec::Solver` under `rbk_graph::Scheduler`: the steps themselves;
//! - `rbk_exec::commit_image`: the image config, history and manifest;
//! - `context_source.rs`: contexts from stdin, a URL or git, made into a
//!   directory before planning;
//! - `output.rs`: `--output` and `--push`;
//! - `cache.rs`: `--cache-from` / `--cache-to` over a [`CacheTransport`];
//! - `checks.rs`: the build checks' report (`--check`);
//! - [`attest`]: SBOM and provenance attestations;
//! - `analyze/`: `rbk analyze`'s layer-waste report.
//!
//! The engine reports progress through the graph's `Reporter` and returns
//! warnings as data; it never prints and never reads the environment: the
//! caller resolves settings into a [`BuildRequest`]. `run`, `commit` and
//! debug commands reuse it.
//!
//! Errors: everything public returns [`Error`]. Private helpers that
//! return `Result<_, String>` (the SBOM package-database parsers, the
//! image-platform check, `--attest` and `--output` option checks) give a
//! sentence their caller wraps into the variant that names the file, step
//! or flag (an SBOM parser's failure becomes a warning naming the
//! skipped file).

mod analyze;
mod annotate;
pub mod attest;
mod cache;
mod cache_mounts;
mod changes;
mod checks;
mod commit;
mod context_paths;
mod context_source;
mod engine;
mod error;
mod images;
mod inline_cache;
mod multi;
mod named;
mod output;
mod plan;
mod platform;
mod request;

pub use analyze::{analyze, Analysis, FinalFile, LayerReport, WastedPath};
pub use annotate::{Annotation, AnnotationTarget};
pub use cache::{
    parse_cache_from, parse_cache_to, CacheFrom, CacheTo, CacheTransport, LocalLayout,
    RegistryCache,
};
pub use changes::apply_change;
pub use checks::CheckReport;
pub use commit::{commit_container, CommitRequest};
pub use context_source::{
    context_from_stream, fetch_context, fetch_named_contexts, open_context, open_named_contexts,
    ContextSource, FetchedContext,
};
pub use engine::{BuildResult, Engine, PlannedBuild};
pub use error::{BoxError, Error, Result};
pub use images::{image_for_build, ImageProvider, Registries};
pub use inline_cache::{InlineCache, LABEL as INLINE_CACHE_LABEL};
pub use multi::distribution_index_of;
pub use named::{is_git_url, load_oci_layouts, BuildContext};
pub use output::{compressed_image, distribution_image, distribution_image_staged, push_image};
pub use plan::{plan, PlanOptions, Planned};
pub use platform::{check_can_run, parse_platforms, BINFMT_MISC};
pub use request::{BuildRequest, Dockerfile, Output, STDOUT};
