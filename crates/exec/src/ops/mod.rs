//! What each op kind does, one place per kind. The solver (`solve`) looks
//! the cache up and dispatches here; these modules make the result.
//!
//! - `source.rs`: scratch, images from the store, local directories (the
//!   context, scanned with the stat cache; see `context`).
//! - `exec/`: `RUN`. `exec/solve.rs` prepares the root (a writable view of
//!   the input plus the init layer) and the `--mount`s, and commits what the
//!   process wrote; the rest of the folder is the container machinery: the
//!   [`Runtime`](crate::Runtime) trait and its `runc` implementation, the
//!   OCI spec, `/etc/hosts` and friends, the working directory, secrets and
//!   SSH agents, the init layer.
//! - `file/`: `COPY`, `ADD`, mkdir, mkfile, rm with Docker's semantics.
//!   `file/solve.rs` gives the op its views; `file/mod.rs`
//!   ([`apply_file_actions`](crate::apply_file_actions)) and its siblings
//!   work on plain directories, fd-relative.
//! - `merge.rs`: `COPY --link`'s stacking of layers.

pub(crate) mod exec;
pub(crate) mod file;
pub(crate) mod merge;
pub(crate) mod source;
