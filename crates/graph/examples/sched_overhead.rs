//! Measures scheduler overhead per vertex: a 10,000-vertex layered graph
//! solved with a no-op executor. Run with
//! `cargo run --release -p rbk-graph --example sched_overhead [vertices] [width] [jobs]`.
//!
//! Not a library: printing the result is the point.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use rbk_graph::synthetic::{layered, Noop};
use rbk_graph::{Dag, NullReporter, Scheduler};

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (vertices, width, jobs) = (arg(1, 10_000), arg(2, 100), arg(3, 16));
    let (def, roots) = layered(vertices, width);
    let start = Instant::now();
    let dag = Dag::new(&def, &roots).expect("synthetic graphs are valid");
    let build = start.elapsed();
    let scheduler = Scheduler::new(jobs);
    let mut runs = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        scheduler
            .run(&dag, &Noop, &NullReporter)
            .expect("no-op never fails");
        runs.push(start.elapsed());
    }
    runs.sort();
    let per_vertex = |d: std::time::Duration| d.as_secs_f64() * 1e6 / dag.len() as f64;
    println!(
        "{} vertices, width {width}, jobs {jobs}: Dag::new {:?}; run min {:?} median {:?} ({:.2} / {:.2} µs per vertex; first run incl. pool start {:?})",
        dag.len(),
        build,
        runs[0],
        runs[runs.len() / 2],
        per_vertex(runs[0]),
        per_vertex(runs[runs.len() / 2]),
        runs.last().unwrap(),
    );
}
