//! Solving build-graph vertices against the store: running `RUN` steps in
//! containers, file ops, snapshots and layer diffs.
//!
//! Execution lands with the build issue; until then this crate only fixes its
//! place in the workspace (`exec → {graph, store}`).
#![deny(missing_docs)]
