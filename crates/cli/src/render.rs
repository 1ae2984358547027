//! Error rendering: Dockerfile errors get the offending lines, like BuildKit.

use std::fmt;

/// A Dockerfile error together with the text it refers to, so the renderer
/// can show the lines.
#[derive(Debug)]
pub(crate) struct DockerfileError {
    pub(crate) text: String,
    pub(crate) error: rbk_parser::Error,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for DockerfileError {}

/// Prints `err` to stderr: the snippet for Dockerfile errors, then the chain.
#[allow(clippy::print_stderr)] // the CLI is where errors are shown
pub(crate) fn error(err: &anyhow::Error) {
    if let Some(df) = err.downcast_ref::<DockerfileError>() {
        eprint!(
            "{}",
            rbk_parser::render_snippet(&df.text, df.error.location())
        );
    }
    if let Some(step) = err.downcast_ref::<StepError>() {
        if let Some(location) = &step.location {
            eprint!("{}", rbk_parser::render_snippet(&step.text, location));
        }
    }
    eprintln!("ERROR: {err:#}");
}

/// A failed build step, with the Dockerfile lines it came from.
#[derive(Debug)]
pub(crate) struct StepError {
    pub(crate) text: String,
    pub(crate) location: Option<rbk_parser::Location>,
    pub(crate) message: String,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to solve: {}", self.message)
    }
}

impl std::error::Error for StepError {}

/// Turns a scheduler error into a [`StepError`] naming the step's lines.
pub(crate) fn solve_error(
    err: rbk_graph::Error,
    planned: &crate::commands::frontend::Planned,
) -> anyhow::Error {
    let location = err
        .vertex_digest()
        .and_then(|d| planned.dag.find(d))
        .and_then(|i| planned.dag.vertex(i).meta().span.clone())
        .map(|span| rbk_parser::Location::lines(&span.file, span.start_line, span.end_line));
    let message = match &err {
        rbk_graph::Error::Vertex { source, .. } => {
            let mut m = source.to_string();
            let mut cause = source.source();
            while let Some(c) = cause {
                m.push_str(&format!(": {c}"));
                cause = c.source();
            }
            m
        }
        other => other.to_string(),
    };
    anyhow::Error::new(StepError {
        text: planned.settings.text.clone(),
        location,
        message,
    })
}
