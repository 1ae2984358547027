//! The scheduler, driven by a toy executor: every vertex outputs 1 plus the
//! sum of its inputs, records when it ran, and can be told to sleep, fail,
//! panic or hit the cache.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{src, step};
use rbk_graph::synthetic::layered;
use rbk_graph::{
    CancelToken, Dag, DagVertex, Definition, Error, Event, ExecContext, Execute, LogStream, NodeId,
    NullReporter, Op, RecordingReporter, Scheduler, SourceOp,
};

#[derive(Debug, thiserror::Error)]
#[error("toy vertex {0} failed")]
struct ToyError(String);

#[derive(Clone, Debug)]
struct Record {
    name: String,
    start: Instant,
    end: Instant,
}

#[derive(Default)]
struct Toy {
    /// Sleep per vertex name (default: none).
    sleep: HashMap<String, Duration>,
    /// Names that fail right away.
    fail: HashSet<String>,
    /// Names that panic.
    panic: HashSet<String>,
    /// Names the cache has.
    cached: HashSet<String>,
    /// Names that sleep through cancellation instead of stopping.
    stubborn: HashSet<String>,
    records: Mutex<Vec<Record>>,
    /// Names that stopped because they saw the cancellation.
    cancelled: Mutex<Vec<String>>,
}

fn name(v: &DagVertex) -> String {
    match v.op() {
        Op::Source(SourceOp::Image { reference, .. }) => reference.clone(),
        Op::Exec(e) => e.args[0].clone(),
        other => other.kind().to_string(),
    }
}

impl Toy {
    fn with_sleep(names: &[&str], ms: u64) -> Self {
        let mut toy = Toy::default();
        toy.sleep_for(names, ms);
        toy
    }

    fn sleep_for(&mut self, names: &[&str], ms: u64) {
        for n in names {
            self.sleep.insert(n.to_string(), Duration::from_millis(ms));
        }
    }

    fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    fn record(&self, name: &str) -> Record {
        let records = self.records();
        let mut found = records.iter().filter(|r| r.name == name);
        let record = found.next().unwrap_or_else(|| panic!("{name} never ran"));
        assert!(found.next().is_none(), "{name} ran twice");
        record.clone()
    }

    fn ran(&self, name: &str) -> bool {
        self.records().iter().any(|r| r.name == name)
    }

    /// Sleeps `d`, in small steps so that cancellation is seen; false when
    /// it stopped early.
    fn nap(&self, name: &str, d: Duration, ctx: &ExecContext<'_>) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if ctx.is_cancelled() && !self.stubborn.contains(name) {
                return false;
            }
            sleep(Duration::from_millis(5).min(until - Instant::now()));
        }
        true
    }
}

impl Execute for Toy {
    type Output = u64;
    type Error = ToyError;

    fn cached(&self, v: &DagVertex, inputs: &[u64]) -> Result<Option<u64>, ToyError> {
        Ok(self
            .cached
            .contains(&name(v))
            .then(|| 1 + inputs.iter().sum::<u64>()))
    }

    fn execute(
        &self,
        v: &DagVertex,
        inputs: &[u64],
        ctx: &ExecContext<'_>,
    ) -> Result<u64, ToyError> {
        let name = name(v);
        let start = Instant::now();
        ctx.log(LogStream::Stdout, name.as_bytes());
        ctx.progress("work", 1, Some(1));
        let d = self.sleep.get(&name).copied().unwrap_or_default();
        let finished = self.nap(&name, d, ctx);
        let end = Instant::now();
        self.records.lock().unwrap().push(Record {
            name: name.clone(),
            start,
            end,
        });
        if self.panic.contains(&name) {
            panic!("toy panic in {name}");
        }
        if !finished {
            self.cancelled.lock().unwrap().push(name.clone());
            return Err(ToyError(format!("{name} (cancelled)")));
        }
        if self.fail.contains(&name) {
            return Err(ToyError(name));
        }
        Ok(1 + inputs.iter().sum::<u64>())
    }
}

fn dag(def: &Definition, roots: &[NodeId]) -> Dag {
    Dag::new(def, roots).unwrap()
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn independent_vertices_run_together() {
    let mut def = Definition::new();
    let names = ["a", "b", "c", "d"];
    let roots: Vec<NodeId> = names.iter().map(|n| src(&mut def, n)).collect();
    let toy = Toy::with_sleep(&names, 100);
    let out = Scheduler::new(4)
        .run(&dag(&def, &roots), &toy, &NullReporter)
        .unwrap();
    assert_eq!(out, vec![1, 1, 1, 1]);
    let records = toy.records();
    let last_start = records.iter().map(|r| r.start).max().unwrap();
    let first_end = records.iter().map(|r| r.end).min().unwrap();
    assert!(last_start < first_end, "all four overlap: {records:?}");
}

#[test]
fn a_chain_never_overlaps() {
    let mut def = Definition::new();
    let mut prev = src(&mut def, "c0");
    for i in 1..5 {
        prev = step(&mut def, &format!("c{i}"), &[prev]);
    }
    let toy = Toy::with_sleep(&["c0", "c1", "c2", "c3", "c4"], 20);
    let out = Scheduler::new(8)
        .run(&dag(&def, &[prev]), &toy, &NullReporter)
        .unwrap();
    assert_eq!(out, vec![5]);
    for i in 1..5 {
        let (before, after) = (
            toy.record(&format!("c{}", i - 1)),
            toy.record(&format!("c{i}")),
        );
        assert!(
            after.start >= before.end,
            "c{i} started before its input ended"
        );
    }
}

#[test]
fn a_join_starts_after_all_its_inputs_end() {
    let mut def = Definition::new();
    let a = src(&mut def, "a");
    let b = src(&mut def, "b");
    let c = src(&mut def, "c");
    let join = step(&mut def, "join", &[a, b, c]);
    let mut toy = Toy::with_sleep(&["a"], 10);
    toy.sleep_for(&["b"], 60);
    toy.sleep_for(&["c"], 120);
    let out = Scheduler::new(4)
        .run(&dag(&def, &[join]), &toy, &NullReporter)
        .unwrap();
    assert_eq!(out, vec![4]);
    let start = toy.record("join").start;
    for input in ["a", "b", "c"] {
        assert!(
            start >= toy.record(input).end,
            "join started before {input} ended"
        );
    }
}

#[test]
fn a_shared_input_runs_once() {
    let mut def = Definition::new();
    let base = src(&mut def, "base");
    let users: Vec<NodeId> = (0..50)
        .map(|i| step(&mut def, &format!("u{i}"), &[base, base]))
        .collect();
    let top = step(&mut def, "top", &users);
    let toy = Toy::with_sleep(&["base"], 20);
    let out = Scheduler::new(8)
        .run(&dag(&def, &[top, base]), &toy, &NullReporter)
        .unwrap();
    // Each user sees base twice: 1 + 1 + 1 = 3; top = 1 + 50 * 3.
    assert_eq!(out, vec![151, 1]);
    assert_eq!(toy.records().len(), 52);
    toy.record("base"); // exactly once
}

#[test]
fn cached_vertices_are_not_executed() {
    let mut def = Definition::new();
    let a = src(&mut def, "a");
    let b = step(&mut def, "b", &[a]);
    let c = step(&mut def, "c", &[b]);
    let toy = Toy {
        cached: set(&["a", "b"]),
        ..Toy::default()
    };
    let dag = dag(&def, &[c]);
    let reporter = RecordingReporter::new();
    let out = Scheduler::new(2).run(&dag, &toy, &reporter).unwrap();
    assert_eq!(out, vec![3]);
    assert!(!toy.ran("a") && !toy.ran("b"));
    toy.record("c");
    let cached: Vec<usize> = reporter
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Cached { .. }))
        .map(Event::vertex)
        .collect();
    assert_eq!(cached, vec![0, 1]);
}

#[test]
fn ignore_cache_runs_a_cached_vertex() {
    let mut def = Definition::new();
    let a = src(&mut def, "a");
    def.vertices[a.0 as usize].meta.ignore_cache = true;
    let toy = Toy {
        cached: set(&["a"]),
        ..Toy::default()
    };
    Scheduler::new(1)
        .run(&dag(&def, &[a]), &toy, &NullReporter)
        .unwrap();
    toy.record("a");
}

/// `bad` fails at once while `gate` (which ignores cancellation) is still
/// running: nothing behind either of them may start.
#[test]
fn after_a_failure_nothing_new_starts() {
    let mut def = Definition::new();
    let bad = src(&mut def, "bad");
    let gate = src(&mut def, "gate");
    let mut prev = bad;
    for i in 0..10 {
        prev = step(&mut def, &format!("chain{i}"), &[prev]);
    }
    let queued: Vec<NodeId> = (0..10)
        .map(|i| step(&mut def, &format!("queued{i}"), &[gate]))
        .collect();
    let mut roots = queued.clone();
    roots.push(prev);
    let mut toy = Toy::with_sleep(&["gate"], 150);
    toy.fail = set(&["bad"]);
    toy.stubborn = set(&["gate"]);
    let dag = dag(&def, &roots);
    let reporter = RecordingReporter::new();
    let err = Scheduler::new(2).run(&dag, &toy, &reporter).unwrap_err();

    let bad_digest = dag.vertex(0).digest();
    assert_eq!(err.vertex_digest(), Some(bad_digest));
    assert!(matches!(err, Error::Vertex { digest, .. } if digest == bad_digest));
    assert_eq!(err.executor_error::<ToyError>().unwrap().0, "bad");
    assert!(!err.is_cancelled());
    let names: Vec<String> = toy.records().into_iter().map(|r| r.name).collect();
    assert_eq!(set(&["bad", "gate"]), names.into_iter().collect());
    let failed: Vec<Event> = reporter
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Failed { .. }))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(matches!(&failed[0], Event::Failed { digest, error, .. }
        if *digest == bad_digest && error == "toy vertex bad failed"));
}

#[test]
fn running_vertices_are_told_to_cancel() {
    let mut def = Definition::new();
    let slow = src(&mut def, "slow");
    let bad = src(&mut def, "bad");
    let mut toy = Toy::with_sleep(&["slow"], 10_000);
    toy.sleep_for(&["bad"], 30);
    toy.fail = set(&["bad"]);
    let dag = dag(&def, &[slow, bad]);
    let reporter = RecordingReporter::new();
    let err = Scheduler::new(2).run(&dag, &toy, &reporter).unwrap_err();
    assert_eq!(err.vertex_digest(), Some(dag.vertex(1).digest()));
    assert_eq!(*toy.cancelled.lock().unwrap(), vec!["slow".to_string()]);
    let slow_digest = dag.vertex(0).digest();
    assert!(reporter.events().contains(&Event::Cancelled {
        vertex: 0,
        digest: slow_digest
    }));
}

#[test]
fn a_panic_becomes_an_error() {
    let mut def = Definition::new();
    let a = src(&mut def, "boom");
    let toy = Toy {
        panic: set(&["boom"]),
        ..Toy::default()
    };
    let dag = dag(&def, &[a]);
    let err = Scheduler::new(1)
        .run(&dag, &toy, &NullReporter)
        .unwrap_err();
    assert!(matches!(&err, Error::Panic { message, .. } if message == "toy panic in boom"));
    assert_eq!(err.vertex_digest(), Some(dag.vertex(0).digest()));
}

#[test]
fn an_outside_cancel_stops_the_run() {
    let mut def = Definition::new();
    let a = src(&mut def, "a");
    let b = step(&mut def, "b", &[a]);
    let token = CancelToken::new();
    token.cancel();
    let toy = Toy::default();
    let err = Scheduler::new(1)
        .run_with_cancel(&dag(&def, &[b]), &toy, &NullReporter, &token)
        .unwrap_err();
    assert!(err.is_cancelled());
    assert!(toy.records().is_empty());
}

#[test]
fn events_come_in_order_per_vertex() {
    let mut def = Definition::new();
    let a = src(&mut def, "a");
    let b = step(&mut def, "b", &[a]);
    let reporter = RecordingReporter::new();
    let dag = dag(&def, &[b]);
    Scheduler::new(2)
        .run(&dag, &Toy::default(), &reporter)
        .unwrap();
    let kinds: Vec<(usize, &str)> = reporter
        .events()
        .iter()
        .map(|e| {
            let kind = match e {
                Event::Started { .. } => "started",
                Event::Log { data, .. } => {
                    assert_eq!(data, name(dag.vertex(e.vertex())).as_bytes());
                    "log"
                }
                Event::Progress { .. } => "progress",
                Event::Completed { .. } => "completed",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(e.digest(), dag.vertex(e.vertex()).digest());
            (e.vertex(), kind)
        })
        .collect();
    let expected = ["started", "log", "progress", "completed"];
    let want: Vec<(usize, &str)> = [0, 1]
        .iter()
        .flat_map(|&v| expected.iter().map(move |&k| (v, k)))
        .collect();
    assert_eq!(kinds, want);
}

#[test]
fn an_empty_dag_solves_to_nothing() {
    let out = Scheduler::new(1)
        .run(
            &Dag::new(&Definition::new(), &[]).unwrap(),
            &Toy::default(),
            &NullReporter,
        )
        .unwrap();
    assert!(out.is_empty());
}

struct Counting(Vec<AtomicUsize>);

impl Execute for Counting {
    type Output = ();
    type Error = std::convert::Infallible;

    fn execute(&self, v: &DagVertex, _: &[()], _: &ExecContext<'_>) -> Result<(), Self::Error> {
        self.0[v.index()].fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn ten_thousand_vertices_each_run_once() {
    let (def, roots) = layered(10_000, 100);
    let dag = dag(&def, &roots);
    let counting = Counting((0..dag.len()).map(|_| AtomicUsize::new(0)).collect());
    let scheduler = Scheduler::new(16);
    for _ in 0..2 {
        counting
            .0
            .iter()
            .for_each(|c| c.store(0, Ordering::Relaxed));
        let out = scheduler.run(&dag, &counting, &NullReporter).unwrap();
        assert_eq!(out.len(), 100);
        assert!(counting.0.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }
}
