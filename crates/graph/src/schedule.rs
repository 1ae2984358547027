//! [`Scheduler`]: solves a [`Dag`] in parallel on a rayon thread pool.
//!
//! A ready queue with in-degree counters: every vertex starts with a count of
//! its distinct inputs; when a vertex is solved, each of its dependents'
//! counts drops by one and a dependent whose count reaches zero is spawned on
//! the pool. The pool has `jobs` threads whatever the core count, because
//! most vertices (RUN steps, pulls) wait on something else. On the first
//! failure the run's [`CancelToken`] is cancelled: nothing new starts,
//! running vertices see [`crate::ExecContext::is_cancelled`], and the first
//! error is returned once they have all returned.
//!
//! The scheduler knows no op kinds; only the [`Execute`] implementation does.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::dag::{Dag, DagVertex};
use crate::error::Error;
use crate::execute::{CancelToken, ExecContext, Execute};
use crate::report::{Event, Reporter};

/// Runs the vertices of a [`Dag`] through an [`Execute`] implementation.
#[derive(Debug)]
pub struct Scheduler {
    jobs: usize,
    pool: OnceLock<rayon::ThreadPool>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new(Scheduler::DEFAULT_JOBS)
    }
}

impl Scheduler {
    /// The default number of vertices solved at once.
    pub const DEFAULT_JOBS: usize = 16;

    /// A scheduler that solves up to `jobs` vertices at once (at least 1).
    /// Its threads start on the first run.
    pub fn new(jobs: usize) -> Self {
        Scheduler {
            jobs: jobs.max(1),
            pool: OnceLock::new(),
        }
    }

    /// How many vertices may be solved at once.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Solves every vertex of `dag` once, inputs first, and returns the
    /// outputs of [`Dag::roots`] in order. Stops at the first failure and
    /// returns it as [`Error::Vertex`] (or [`Error::Panic`]).
    pub fn run<E: Execute>(
        &self,
        dag: &Dag,
        exec: &E,
        reporter: &dyn Reporter,
    ) -> Result<Vec<E::Output>, Error> {
        self.run_with_cancel(dag, exec, reporter, &CancelToken::new())
    }

    /// Like [`Scheduler::run`], watching `cancel`: cancelling it stops the
    /// run with [`Error::Cancelled`] (unless a vertex failed first). A
    /// failing vertex cancels `cancel` too.
    pub fn run_with_cancel<E: Execute>(
        &self,
        dag: &Dag,
        exec: &E,
        reporter: &dyn Reporter,
        cancel: &CancelToken,
    ) -> Result<Vec<E::Output>, Error> {
        let pool = self.pool()?;
        let run = Run {
            dag,
            exec,
            reporter,
            cancel,
            pending: dag
                .vertices()
                .iter()
                .map(|v| AtomicUsize::new(v.deps().len()))
                .collect(),
            outputs: (0..dag.len()).map(|_| OnceLock::new()).collect(),
            error: Mutex::new(None),
        };
        pool.scope(|scope| {
            for vertex in dag.vertices().iter().filter(|v| v.deps().is_empty()) {
                run.spawn(scope, vertex.index());
            }
        });
        run.finish()
    }

    fn pool(&self) -> Result<&rayon::ThreadPool, Error> {
        if let Some(pool) = self.pool.get() {
            return Ok(pool);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.jobs)
            .thread_name(|i| format!("rbk-sched-{i}"))
            // Room for tree walks over the deepest trees the store accepts
            // (rbk_store::MAX_PATH_LEN): 2 MiB overflowed at 2,000 levels.
            .stack_size(rbk_store::WALK_STACK)
            .build()
            .map_err(Error::ThreadPool)?;
        // A concurrent first run may have won; its pool is as good as ours.
        Ok(self.pool.get_or_init(|| pool))
    }
}

/// The state of one run, shared by its tasks.
struct Run<'a, E: Execute> {
    dag: &'a Dag,
    exec: &'a E,
    reporter: &'a dyn Reporter,
    cancel: &'a CancelToken,
    /// Inputs not solved yet, per vertex.
    pending: Vec<AtomicUsize>,
    outputs: Vec<OnceLock<E::Output>>,
    /// The first failure.
    error: Mutex<Option<Error>>,
}

impl<'a, E: Execute> Run<'a, E> {
    fn spawn<'s>(&'s self, scope: &rayon::Scope<'s>, index: usize) {
        scope.spawn(move |scope| self.solve(scope, index));
    }

    fn solve<'s>(&'s self, scope: &rayon::Scope<'s>, index: usize) {
        if self.cancel.is_cancelled() {
            return;
        }
        let vertex = self.dag.vertex(index);
        let inputs: Vec<E::Output> = vertex
            .inputs()
            .iter()
            .map(|&i| self.outputs[i].get().expect("inputs are solved").clone())
            .collect();
        match self.solve_one(vertex, &inputs) {
            Ok(output) => {
                // Each vertex is spawned once, so the cell is empty.
                let _ = self.outputs[index].set(output);
                self.release(scope, vertex);
            }
            Err(error) => self.fail(error),
        }
    }

    /// Looks the vertex up in the cache, or executes it.
    fn solve_one(&self, vertex: &DagVertex, inputs: &[E::Output]) -> Result<E::Output, Error> {
        let (index, digest) = (vertex.index(), vertex.digest());
        if !vertex.meta().ignore_cache {
            let cached = catch_unwind(AssertUnwindSafe(|| self.exec.cached(vertex, inputs)));
            let cached = into_result(vertex, cached).inspect_err(|error| {
                self.report_failure(vertex, error, Instant::now());
            })?;
            if let Some(output) = cached {
                self.reporter.event(Event::Cached {
                    vertex: index,
                    digest,
                });
                return Ok(output);
            }
        }
        self.reporter.event(Event::Started {
            vertex: index,
            digest,
        });
        let start = Instant::now();
        let ctx = ExecContext {
            vertex: index,
            digest,
            reporter: self.reporter,
            cancel: self.cancel,
        };
        let result = catch_unwind(AssertUnwindSafe(|| self.exec.execute(vertex, inputs, &ctx)));
        let output = into_result(vertex, result).inspect_err(|error| {
            self.report_failure(vertex, error, start);
        })?;
        self.reporter.event(Event::Completed {
            vertex: index,
            digest,
            duration: start.elapsed(),
        });
        Ok(output)
    }

    fn report_failure(&self, vertex: &DagVertex, error: &Error, start: Instant) {
        let (vertex, digest) = (vertex.index(), vertex.digest());
        if self.cancel.is_cancelled() {
            self.reporter.event(Event::Cancelled { vertex, digest });
            return;
        }
        self.reporter.event(Event::Failed {
            vertex,
            digest,
            duration: start.elapsed(),
            error: render_cause(error),
        });
    }

    /// Spawns the dependents whose last input this vertex was.
    fn release<'s>(&'s self, scope: &rayon::Scope<'s>, vertex: &DagVertex) {
        for &dependent in vertex.dependents() {
            if self.pending[dependent].fetch_sub(1, Ordering::AcqRel) == 1
                && !self.cancel.is_cancelled()
            {
                self.spawn(scope, dependent);
            }
        }
    }

    /// Records the first failure and stops the run. A vertex that fails
    /// after the run was cancelled was most likely stopped by it, so its
    /// error is not the cause.
    fn fail(&self, error: Error) {
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() && !self.cancel.is_cancelled() {
            *first = Some(error);
        }
        self.cancel.cancel();
    }

    fn finish(self) -> Result<Vec<E::Output>, Error> {
        let error = self.error.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(error) = error {
            return Err(error);
        }
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        // Without failure or cancellation every vertex was solved.
        let outputs = self.outputs;
        self.dag
            .roots()
            .iter()
            .map(|&r| outputs[r].get().cloned().ok_or(Error::Cancelled))
            .collect()
    }
}

/// Flattens an executor call (which may have panicked) into our error.
fn into_result<T, X: std::error::Error + Send + Sync + 'static>(
    vertex: &DagVertex,
    result: std::thread::Result<Result<T, X>>,
) -> Result<T, Error> {
    let digest = vertex.digest();
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Vertex {
            digest,
            source: Box::new(source),
        }),
        Err(payload) => {
            let message = match payload.downcast::<String>() {
                Ok(s) => *s,
                Err(payload) => match payload.downcast::<&str>() {
                    Ok(s) => s.to_string(),
                    Err(_) => "non-string panic payload".to_string(),
                },
            };
            Err(Error::Panic { digest, message })
        }
    }
}

/// The executor's error and its causes, `a: b: c` (without our own
/// "failed to solve vertex" prefix, which the event already implies).
fn render_cause(error: &Error) -> String {
    let mut current: Option<&(dyn std::error::Error + 'static)> = match error {
        Error::Vertex { source, .. } => Some(source.as_ref()),
        other => Some(other),
    };
    let mut parts = Vec::new();
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.join(": ")
}
