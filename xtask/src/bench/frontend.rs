//! Frontend and scheduler benchmarks: parse + expand + lower a generated
//! 10,000-instruction, 50-stage Dockerfile, and schedule a 10,000-vertex graph
//! with an executor that does nothing.

use std::fmt::Write as _;

use super::{time_runs, Figure};

const STAGES: usize = 50;
const INSTRUCTIONS: usize = 10_000;
const RUNS: usize = 15;

/// A Dockerfile with `STAGES` stages and `INSTRUCTIONS` instructions in all,
/// mixing every common instruction, variable references and cross-stage copies.
pub(crate) fn generated_dockerfile() -> String {
    let per_stage = INSTRUCTIONS / STAGES;
    let mut df = String::from("ARG BASE=busybox:1.36\nARG VERSION=1.0\n");
    for s in 0..STAGES {
        match s {
            0 => writeln!(df, "FROM ${{BASE}} AS s{s}"),
            _ if s % 5 == 0 => writeln!(df, "FROM s{} AS s{s}", s - 1),
            _ => writeln!(df, "FROM ${{BASE}} AS s{s}"),
        }
        .unwrap_or_default();
        // FROM counts as one; the loop writes the rest of the stage.
        for i in 1..per_stage {
            let line = match i % 10 {
                0 => format!("ARG A{i}=v{i}"),
                1 => format!("ENV E{i}=\"${{VERSION:-0}}-{i}\" PATH=/opt/s{s}/bin:$PATH"),
                2 => format!("RUN echo stage {s} step {i} && mkdir -p /opt/s{s}/{i}"),
                3 => format!("COPY src/f{i}.txt /opt/s{s}/f{i}.txt"),
                4 => format!("WORKDIR /opt/s{s}/w{i}"),
                5 => format!("LABEL l{i}=\"${{E{}}}\"", i - 4),
                6 if s > 0 => format!("COPY --from=s{} /opt/s{}/f3.txt /opt/from{}.txt", s - 1, s - 1, s - 1),
                6 => format!("COPY a{i} b{i} /dst{i}/"),
                7 => format!("RUN --mount=type=cache,target=/cache/{i} [\"/bin/sh\", \"-c\", \"ls /cache/{i}\"]"),
                8 => format!("EXPOSE {}", 8000 + i),
                _ => format!("USER u{i}:g{i}"),
            };
            df.push_str(&line);
            df.push('\n');
        }
    }
    df.push_str("CMD [\"/bin/sh\"]\n");
    df
}

pub(crate) fn figures() -> anyhow::Result<Vec<Figure>> {
    let text = generated_dockerfile();
    let parse = time_runs(RUNS, || {
        std::hint::black_box(rbk_parser::parse(&text, "Dockerfile")?);
        Ok(())
    })?;
    let parse_lower = time_runs(RUNS, || {
        std::hint::black_box(crate::frontend::plan(&text)?);
        Ok(())
    })?;
    let graph = crate::frontend::synthetic_graph(INSTRUCTIONS)?;
    let scheduler = rbk_graph::Scheduler::new(rbk_graph::Scheduler::DEFAULT_JOBS);
    let schedule = time_runs(RUNS, || crate::frontend::schedule_noop(&scheduler, &graph))?;
    let dag_build = time_runs(RUNS, || {
        std::hint::black_box(crate::frontend::synthetic_graph(INSTRUCTIONS)?);
        Ok(())
    })?;
    let per_vertex = |d: &std::time::Duration| d.as_secs_f64() * 1e6 / INSTRUCTIONS as f64;
    Ok(vec![
        Figure {
            name: "parse 10k instructions, 50 stages",
            unit: "ms",
            samples: parse.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
            target: "(part of < 20 ms)",
        },
        Figure {
            name: "parse+expand+lower 10k instructions, 50 stages",
            unit: "ms",
            samples: parse_lower.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
            target: "< 20 ms",
        },
        Figure {
            name: "scheduler overhead per vertex, 10k no-op vertices",
            unit: "µs",
            samples: schedule.iter().map(per_vertex).collect(),
            target: "< 20 µs",
        },
        Figure {
            name: "digest+prune+dedupe per vertex (Dag::new), 10k vertices",
            unit: "µs",
            samples: dag_build.iter().map(per_vertex).collect(),
            target: "(context)",
        },
    ])
}
