//! The solver without root: the copy snapshotter, a store in a temporary
//! directory and the recording [`FakeRuntime`] instead of runc. Covers cache
//! hits and misses (RUN, COPY from the context), failures, cancellation,
//! what a RUN request carries, and the typed errors of sources.
//!
//! The solver takes a concrete on-disk `Store` (it unpacks snapshots and
//! makes work dirs, which `MemStore` has not), hence a temporary directory
//! rather than `MemStore`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbk_exec::testing::{FakeRun, FakeRuntime};
use rbk_exec::{Error, IncludeAll, LocalDir, SnapshotterChoice, SolveOptions, Solved, Solver};
use rbk_graph::{
    CancelToken, CopyAction, Dag, Definition, Event, ExecOp, FileAction, FileOp, Input, LogStream,
    NetworkMode, NodeId, Op, OpMetadata, RecordingReporter, Scheduler, SourceOp,
};
use rbk_store::Store;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    context: PathBuf,
    runtime: FakeRuntime,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let context = dir.path().join("context");
        fs::create_dir(&context).unwrap();
        Fixture {
            _dir: dir,
            store,
            context,
            runtime: FakeRuntime::new(),
        }
    }

    fn write(&self, name: &str, data: &str) {
        let path = self.context.join(name);
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn options(&self) -> SolveOptions {
        SolveOptions {
            locals: [(
                "context".to_string(),
                LocalDir {
                    root: self.context.clone(),
                    filter: Arc::new(IncludeAll),
                },
            )]
            .into(),
            snapshotter: SnapshotterChoice::Copy,
            // Clamped file times: equal writes make equal layers.
            source_date_epoch: Some(0),
            ..Default::default()
        }
    }

    /// Solves `root` of `def` with a fresh solver (as a new build would).
    fn solve(&self, def: &Definition, root: NodeId) -> Outcome {
        self.solve_with(def, root, &CancelToken::new())
    }

    fn solve_with(&self, def: &Definition, root: NodeId, cancel: &CancelToken) -> Outcome {
        let dag = Dag::new(def, &[root]).unwrap();
        let solver = Solver::new(&self.store, &self.runtime, self.options()).unwrap();
        let reporter = RecordingReporter::new();
        let result = Scheduler::new(2).run_with_cancel(&dag, &solver, &reporter, cancel);
        let sources = dag
            .vertices()
            .iter()
            .filter(|v| matches!(v.op(), Op::Source(_)))
            .map(|v| v.index())
            .collect();
        Outcome {
            result: result.map(|mut out| out.remove(0)),
            events: reporter.events(),
            sources,
        }
    }

    /// The content of `path` in a solved filesystem, reading its layers'
    /// snapshots from the top.
    fn read(&self, solved: &Solved, path: &str) -> Option<String> {
        for layer in solved.layers().iter().rev() {
            let dir = self
                .store
                .ensure_snapshot(&layer.blob, &layer.diff_id)
                .unwrap();
            if let Ok(data) = fs::read_to_string(dir.join(path)) {
                return Some(data);
            }
        }
        None
    }
}

struct Outcome {
    result: Result<Solved, rbk_graph::Error>,
    events: Vec<Event>,
    /// Dag indexes of the sources (which resolve as cache hits).
    sources: Vec<usize>,
}

impl Outcome {
    fn solved(&self) -> &Solved {
        match &self.result {
            Ok(s) => s,
            Err(e) => panic!("solve failed: {e}: {:?}", e.executor_error::<Error>()),
        }
    }

    fn error(&self) -> &Error {
        let err = self.result.as_ref().expect_err("an error");
        err.executor_error::<Error>()
            .unwrap_or_else(|| panic!("not an exec error: {err}"))
    }

    /// How many steps (not sources) were cache hits.
    fn cached(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Cached { .. }))
            .filter(|e| !self.sources.contains(&e.vertex()))
            .count()
    }
}

fn exec(def: &mut Definition, base: NodeId, command: &str) -> NodeId {
    def.push(Op::Exec(exec_op(base, command)), OpMetadata::default())
}

fn exec_op(base: NodeId, command: &str) -> ExecOp {
    ExecOp {
        inputs: vec![Input::of(base)],
        args: vec!["/bin/sh".into(), "-c".into(), command.into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        cwd: "/".into(),
        user: String::new(),
        mounts: vec![],
        network: Default::default(),
        security: Default::default(),
        hostname: String::new(),
    }
}

fn scratch(def: &mut Definition) -> NodeId {
    def.push(Op::Source(SourceOp::Scratch), OpMetadata::default())
}

fn context(def: &mut Definition) -> NodeId {
    def.push(
        Op::Source(SourceOp::Local {
            name: "context".into(),
            include: vec![],
            exclude: vec![],
        }),
        OpMetadata::default(),
    )
}

fn copy_action(src: &str, dest: &str) -> CopyAction {
    CopyAction {
        from: 1,
        src: src.into(),
        dest: dest.into(),
        owner: None,
        mode: None,
        follow_symlinks: true,
        dir_contents_only: true,
        allow_wildcard: true,
        allow_empty_wildcard: false,
        create_dest_path: true,
        auto_extract: false,
        parents: false,
        exclude: vec![],
    }
}

/// `COPY --chown=<uid>:<gid> src /dest/` from the context onto `base`, as
/// the user running the test (a COPY from the context otherwise chowns to
/// root, which only root may do).
fn copy(def: &mut Definition, base: NodeId, ctx: NodeId, src: &str) -> NodeId {
    let owner = rbk_graph::Owner {
        user: rustix::process::getuid().as_raw().to_string(),
        group: rustix::process::getgid().as_raw().to_string(),
    };
    def.push(
        Op::File(FileOp {
            inputs: vec![Input::of(base), Input::of(ctx)],
            base: Some(0),
            actions: vec![FileAction::Copy(CopyAction {
                owner: Some(owner),
                ..copy_action(src, "/dest/")
            })],
        }),
        OpMetadata::default(),
    )
}

#[test]
fn a_run_step_writes_a_layer_and_runs_once_then_hits_the_cache() {
    let fx = Fixture::new();
    fx.runtime.on(
        "make",
        FakeRun::new().write("/out/app", "binary").stdout("built\n"),
    );
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let run = exec(&mut def, base, "make");

    let first = fx.solve(&def, run);
    assert_eq!(
        fx.read(first.solved(), "out/app").as_deref(),
        Some("binary")
    );
    assert_eq!(first.solved().layers().len(), 1);
    assert_eq!(fx.runtime.commands(), ["/bin/sh -c make"]);
    assert_eq!(first.cached(), 0);
    assert!(first.events.iter().any(|e| matches!(
        e,
        Event::Log { stream: LogStream::Stdout, data, .. } if data == b"built\n"
    )));

    let second = fx.solve(&def, run);
    assert_eq!(fx.runtime.commands().len(), 1, "a hit does not run");
    assert_eq!(second.cached(), 1);
    assert_eq!(second.solved().layers(), first.solved().layers());
}

#[test]
fn a_changed_step_or_a_changed_input_misses_the_cache() {
    let fx = Fixture::new();
    fx.runtime.on("one", FakeRun::new().write("/a", "1"));
    fx.runtime.on("one-b", FakeRun::new().write("/a", "1b"));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let one = exec(&mut def, base, "one");
    let two = exec(&mut def, one, "two");
    fx.solve(&def, two).solved();
    assert_eq!(fx.runtime.commands().len(), 2);

    // Another command: a miss for it only.
    let three = exec(&mut def, one, "three");
    let out = fx.solve(&def, three);
    out.solved();
    assert_eq!(out.cached(), 1, "the first RUN hits");
    assert_eq!(fx.runtime.commands().len(), 3);

    // Another base below an unchanged command: both miss.
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let one_b = exec(&mut def, base, "one-b");
    let two_b = exec(&mut def, one_b, "two");
    let out = fx.solve(&def, two_b);
    assert_eq!(fx.read(out.solved(), "a").as_deref(), Some("1b"));
    assert_eq!(out.cached(), 0);
    assert_eq!(fx.runtime.commands().len(), 5);
}

#[test]
fn a_step_whose_input_came_out_the_same_hits_again() {
    // A re-run step (`--no-cache-filter`) that writes the same bytes gives
    // the same layer, so the step above it hits the cache: keys cover what
    // inputs contain (with clamped times), not when they were made.
    let fx = Fixture::new();
    fx.runtime.on("gen", FakeRun::new().write("/v", "same"));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let meta = OpMetadata {
        ignore_cache: true,
        ..Default::default()
    };
    let gen = def.push(Op::Exec(exec_op(base, "gen")), meta);
    let top = exec(&mut def, gen, "consume");
    fx.solve(&def, top).solved();
    let out = fx.solve(&def, top);
    out.solved();
    assert_eq!(
        fx.runtime.commands(),
        ["/bin/sh -c gen", "/bin/sh -c consume", "/bin/sh -c gen"]
    );
    assert_eq!(out.cached(), 1);

    // Different bytes: the step above runs again.
    fx.runtime.on("gen", FakeRun::new().write("/v", "other"));
    let out = fx.solve(&def, top);
    assert_eq!(out.cached(), 0);
    assert_eq!(fx.runtime.commands().len(), 5);
}

#[test]
fn ignore_cache_runs_again() {
    let fx = Fixture::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let meta = OpMetadata {
        ignore_cache: true,
        ..Default::default()
    };
    let run = def.push(Op::Exec(exec_op(base, "always")), meta);
    fx.solve(&def, run).solved();
    fx.solve(&def, run).solved();
    assert_eq!(fx.runtime.commands().len(), 2);
}

#[test]
fn a_copy_from_the_context_is_keyed_on_the_files_it_selects() {
    let fx = Fixture::new();
    fx.write("a.txt", "a1");
    fx.write("b.txt", "b1");
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let ctx = context(&mut def);
    let copied = copy(&mut def, base, ctx, "a.txt");
    let run = exec(&mut def, copied, "after");

    let out = fx.solve(&def, run);
    assert_eq!(fx.read(out.solved(), "dest/a.txt").as_deref(), Some("a1"));
    assert_eq!(fx.runtime.commands().len(), 1);

    // A file the COPY does not read: everything hits.
    fx.write("b.txt", "b2");
    let out = fx.solve(&def, run);
    assert_eq!(out.cached(), 2, "COPY and RUN hit");
    assert_eq!(fx.runtime.commands().len(), 1);

    // The file it reads: both miss, and the new content is copied.
    fx.write("a.txt", "a2");
    let out = fx.solve(&def, run);
    assert_eq!(out.cached(), 0);
    assert_eq!(fx.read(out.solved(), "dest/a.txt").as_deref(), Some("a2"));
    assert_eq!(fx.runtime.commands().len(), 2);
}

#[test]
fn a_failing_step_is_an_error_is_not_cached_and_stops_what_depends_on_it() {
    let fx = Fixture::new();
    fx.runtime
        .on("fail", FakeRun::new().stderr("oops\n").exit(3));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let fail = exec(&mut def, base, "fail");
    let after = exec(&mut def, fail, "after");

    let out = fx.solve(&def, after);
    match out.error() {
        Error::ProcessFailed { command, code } => {
            assert_eq!((command.as_str(), *code), ("/bin/sh -c fail", 3));
        }
        other => panic!("{other}"),
    }
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Failed { error, .. } if error.contains("exit code: 3"))));
    assert_eq!(fx.runtime.commands(), ["/bin/sh -c fail"]);

    // Nothing was recorded: the next build runs it again.
    let out = fx.solve(&def, after);
    assert!(out.result.is_err());
    assert_eq!(out.cached(), 0);
    assert_eq!(fx.runtime.commands().len(), 2);
}

#[test]
fn a_failure_cancels_the_other_branches() {
    let fx = Fixture::new();
    fx.runtime.on("fail", FakeRun::new().exit(1));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let fail = exec(&mut def, base, "fail");
    // A long chain beside it; the failure stops it before its end.
    let mut chain = base;
    for i in 0..40 {
        chain = exec(&mut def, chain, &format!("step-{i}"));
    }
    let merged = def.push(
        Op::Merge(rbk_graph::MergeOp {
            inputs: vec![Input::of(fail), Input::of(chain)],
        }),
        OpMetadata::default(),
    );
    let out = fx.solve(&def, merged);
    assert!(matches!(out.error(), Error::ProcessFailed { code: 1, .. }));
    let ran = fx.runtime.commands();
    assert!(
        ran.len() < 41,
        "the chain went on after the failure: {ran:?}"
    );
}

#[test]
fn a_cancelled_build_runs_nothing() {
    let fx = Fixture::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let run = exec(&mut def, base, "never");
    let cancel = CancelToken::new();
    cancel.cancel();
    let out = fx.solve_with(&def, run, &cancel);
    assert!(out.result.is_err());
    assert!(fx.runtime.commands().is_empty());
}

#[test]
fn the_request_carries_the_step() {
    let fx = Fixture::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let mut op = exec_op(base, "show");
    op.env.push("A=1".into());
    op.cwd = "/work".into();
    op.user = "1000:1000".into();
    op.network = NetworkMode::None;
    let run = def.push(Op::Exec(op), OpMetadata::default());
    fx.solve(&def, run).solved();
    let runs = fx.runtime.runs();
    let run = &runs[0];
    assert_eq!(run.env, ["PATH=/usr/bin:/bin", "A=1"]);
    assert_eq!(
        (run.cwd.as_str(), run.user.as_str()),
        ("/work", "1000:1000")
    );
    assert_eq!(run.network, NetworkMode::None);
    assert_eq!(run.hostname, "buildkitsandbox");
    // The root the process saw holds the init layer's mountpoints.
    assert!(run.id.starts_with("rbk-"));
}

#[test]
fn network_host_needs_its_entitlement() {
    let fx = Fixture::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let mut op = exec_op(base, "net");
    op.network = NetworkMode::Host;
    let run = def.push(Op::Exec(op), OpMetadata::default());
    let out = fx.solve(&def, run);
    let err = out.error().to_string();
    assert!(err.contains("network.host is not granted"), "{err}");
}

#[test]
fn sources_fail_with_typed_errors() {
    let fx = Fixture::new();
    let cases = [
        (
            SourceOp::Image {
                reference: "docker.io/library/missing:1".into(),
                platform: None,
            },
            "image",
        ),
        (
            SourceOp::Git {
                // Nothing listens on port 1: git fails at once.
                remote: "git://127.0.0.1:1/r.git".into(),
                reference: String::new(),
                subdir: String::new(),
                keep_git_dir: false,
            },
            "git",
        ),
        (
            SourceOp::Local {
                name: "elsewhere".into(),
                include: vec![],
                exclude: vec![],
            },
            "local",
        ),
    ];
    for (source, what) in cases {
        let mut def = Definition::new();
        let src = def.push(Op::Source(source), OpMetadata::default());
        let run = exec(&mut def, src, "x");
        let out = fx.solve(&def, run);
        let err = out.error();
        match what {
            "image" => {
                assert!(matches!(err, Error::ImageNotFound { .. }), "{err}");
                assert!(err.to_string().contains("rbk load"), "{err}");
            }
            "git" => assert!(matches!(err, Error::Remote { .. }), "{err}"),
            _ => assert!(matches!(err, Error::MissingLocal { .. }), "{err}"),
        }
        assert_eq!(err.is_not_found(), what != "git");
    }
    assert!(fx.runtime.commands().is_empty());
}

#[test]
fn a_merge_stacks_layers_and_reads_later_ones_first() {
    let fx = Fixture::new();
    fx.runtime
        .on("left", FakeRun::new().write("/f", "left").write("/l", "l"));
    fx.runtime.on("right", FakeRun::new().write("/f", "right"));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let left = exec(&mut def, base, "left");
    let right = exec(&mut def, base, "right");
    let merged = def.push(
        Op::Merge(rbk_graph::MergeOp {
            inputs: vec![Input::of(left), Input::of(right)],
        }),
        OpMetadata::default(),
    );
    let out = fx.solve(&def, merged);
    let solved = out.solved();
    assert_eq!(solved.layers().len(), 2);
    assert_eq!(fx.read(solved, "f").as_deref(), Some("right"));
    assert_eq!(fx.read(solved, "l").as_deref(), Some("l"));
}

/// Keeps the helper honest: paths read back are inside the snapshots.
#[test]
fn read_finds_nothing_that_was_not_written() {
    let fx = Fixture::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let run = exec(&mut def, base, "nothing");
    let out = fx.solve(&def, run);
    assert_eq!(fx.read(out.solved(), "out/app"), None);
    assert!(Path::new(&fx.context).is_dir());
}
