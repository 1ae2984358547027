//! The library calls the benchmarks measure, kept apart from the timing code.

use rbk_graph::synthetic::{layered, Noop};
use rbk_graph::{Dag, NullReporter, Scheduler};

/// A 10,000-vertex-style graph: layers of 100 with two inputs per vertex.
pub(crate) fn synthetic_graph(vertices: usize) -> anyhow::Result<Dag> {
    let (def, roots) = layered(vertices, 100);
    Ok(Dag::new(&def, &roots)?)
}

/// Solves `dag` with an executor that does nothing.
pub(crate) fn schedule_noop(scheduler: &Scheduler, dag: &Dag) -> anyhow::Result<()> {
    scheduler.run(dag, &Noop, &NullReporter)?;
    Ok(())
}

/// Parses, expands and lowers `text`, as `rbk build` does before solving.
pub(crate) fn plan(text: &str) -> anyhow::Result<rbk_parser::Plan> {
    let ast = rbk_parser::parse(text, "Dockerfile")?;
    Ok(rbk_parser::lower(
        &ast,
        &rbk_parser::LowerOptions::default(),
    )?)
}
