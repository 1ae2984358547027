//! The solver without root: the copy snapshotter and the recording
//! [`FakeRuntime`] instead of runc, over both stores the solver takes — the
//! in-memory [`MemSolveStore`] and the on-disk [`Store`] in a temporary
//! directory — through one suite (each test runs once per store, in the
//! `mem` and `disk` modules at the end). Covers cache hits and misses (RUN,
//! COPY from the context), failures that commit nothing, cancellation,
//! parallel steps, what a RUN request carries, and the typed errors of
//! sources.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbk_exec::testing::{FakeRun, FakeRuntime, MemSolveStore};
use rbk_exec::{
    ContextIndex, Error, IncludeAll, LocalDir, SnapshotterChoice, SolveOptions, SolveStore, Solved,
    Solver, StatCache,
};
use rbk_graph::{
    CancelToken, CopyAction, Dag, Definition, Event, ExecOp, FileAction, FileOp, Input, LogStream,
    NetworkMode, NodeId, Op, OpMetadata, RecordingReporter, Reporter, Scheduler, SourceOp,
};
use rbk_store::{BlobInfo, CacheRecord, Digest, FailedStep, Store};

/// What the tests read back from a store besides [`SolveStore`].
trait TestStore: SolveStore + Sized {
    fn create(dir: &Path) -> Self;
    fn cache_keys(&self) -> Vec<Digest>;
    fn failed_steps(&self) -> Vec<FailedStep>;
}

impl TestStore for Store {
    fn create(dir: &Path) -> Store {
        Store::open(&dir.join("store")).unwrap()
    }

    fn cache_keys(&self) -> Vec<Digest> {
        let records: Vec<(Digest, CacheRecord)> = self.cache_records().unwrap();
        records.into_iter().map(|(k, _)| k).collect()
    }

    fn failed_steps(&self) -> Vec<FailedStep> {
        Store::failed_steps(self).unwrap()
    }
}

impl TestStore for MemSolveStore {
    fn create(_dir: &Path) -> MemSolveStore {
        MemSolveStore::new().unwrap()
    }

    fn cache_keys(&self) -> Vec<Digest> {
        MemSolveStore::cache_keys(self)
    }

    fn failed_steps(&self) -> Vec<FailedStep> {
        MemSolveStore::failed_steps(self)
    }
}

/// Every blob of `store`, sorted.
fn blobs(store: &dyn SolveStore) -> Vec<BlobInfo> {
    let mut out = Vec::new();
    store
        .walk(&mut |info| {
            out.push(info);
            Ok(())
        })
        .unwrap();
    out.sort_by_key(|b| b.digest);
    out
}

struct Fixture<S> {
    _dir: tempfile::TempDir,
    store: S,
    context: PathBuf,
    runtime: FakeRuntime,
}

impl<S: TestStore> Fixture<S> {
    fn new() -> Fixture<S> {
        let dir = tempfile::tempdir().unwrap();
        let store = S::create(dir.path());
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
        let reporter = RecordingReporter::new();
        self.solve_with(def, root, &CancelToken::new(), &reporter)
    }

    fn solve_with(
        &self,
        def: &Definition,
        root: NodeId,
        cancel: &CancelToken,
        reporter: &RecordingReporter,
    ) -> Outcome {
        let dag = Dag::new(def, &[root]).unwrap();
        let solver = Solver::new(&self.store, &self.runtime, self.options()).unwrap();
        let watcher = CancelOn {
            cancel,
            inner: reporter,
        };
        let result = Scheduler::new(2).run_with_cancel(&dag, &solver, &watcher, cancel);
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

/// Passes events on, and cancels the build when a step prints [`CANCEL`].
struct CancelOn<'a> {
    cancel: &'a CancelToken,
    inner: &'a RecordingReporter,
}

const CANCEL: &[u8] = b"cancel the build\n";

impl Reporter for CancelOn<'_> {
    fn event(&self, event: Event) {
        if matches!(&event, Event::Log { data, .. } if data == CANCEL) {
            self.cancel.cancel();
        }
        self.inner.event(event);
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
        env: vec!["PATH=/usr/bin:/bin".to_string()].into(),
        cwd: "/".into(),
        user: String::new(),
        mounts: vec![],
        network: Default::default(),
        security: Default::default(),
        hostname: String::new(),
    }
}

/// Steps `left` and `right` on scratch, merged (left below right).
fn left_and_right_merged() -> (Definition, NodeId) {
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
    (def, merged)
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

fn a_run_step_writes_a_layer_and_runs_once_then_hits_the_cache<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

    assert_eq!(fx.store.cache_keys().len(), 1);

    let second = fx.solve(&def, run);
    assert_eq!(fx.runtime.commands().len(), 1, "a hit does not run");
    assert_eq!(second.cached(), 1);
    assert_eq!(second.solved().layers(), first.solved().layers());
}

fn a_changed_step_or_a_changed_input_misses_the_cache<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

fn a_step_whose_input_came_out_the_same_hits_again<S: TestStore>() {
    // A re-run step (`--no-cache-filter`) that writes the same bytes gives
    // the same layer, so the step above it hits the cache: keys cover what
    // inputs contain (with clamped times), not when they were made.
    let fx = Fixture::<S>::new();
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

fn ignore_cache_runs_again<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

fn a_copy_from_the_context_is_keyed_on_the_files_it_selects<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

fn a_failing_step_is_an_error_commits_nothing_and_stops_what_depends_on_it<S: TestStore>() {
    let fx = Fixture::<S>::new();
    fx.runtime.on(
        "fail",
        FakeRun::new()
            .write("/half-done", "partial output")
            .stderr("oops\n")
            .exit(3),
    );
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let fail = exec(&mut def, base, "fail");
    let after = exec(&mut def, fail, "after");
    let blobs_before = blobs(&fx.store);

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
    // No record and no layer: what the step wrote is in no blob.
    assert!(fx.store.cache_keys().is_empty());
    assert_eq!(blobs(&fx.store), blobs_before);
    // It is kept for `rbk debug step` instead, outside the cache.
    let kept = fx.store.failed_steps();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].args.join(" "), kept[0].code),
        ("/bin/sh -c fail".into(), 3)
    );

    // Nothing was recorded: the next build runs it again.
    let out = fx.solve(&def, after);
    assert!(out.result.is_err());
    assert_eq!(out.cached(), 0);
    assert_eq!(fx.runtime.commands().len(), 2);
}

fn a_failure_cancels_the_other_branches<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

fn a_cancelled_build_runs_nothing<S: TestStore>() {
    let fx = Fixture::<S>::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let run = exec(&mut def, base, "never");
    let cancel = CancelToken::new();
    cancel.cancel();
    let out = fx.solve_with(&def, run, &cancel, &RecordingReporter::new());
    assert!(out.result.is_err());
    assert!(fx.runtime.commands().is_empty());
}

fn cancelling_during_a_step_stops_the_steps_still_pending<S: TestStore>() {
    let fx = Fixture::<S>::new();
    fx.runtime.on("first", FakeRun::new().stdout(CANCEL));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let first = exec(&mut def, base, "first");
    let second = exec(&mut def, first, "second");
    let third = exec(&mut def, second, "third");
    let cancel = CancelToken::new();
    let out = fx.solve_with(&def, third, &cancel, &RecordingReporter::new());
    let err = out.result.as_ref().expect_err("a cancelled build");
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(fx.runtime.commands(), ["/bin/sh -c first"]);

    // What finished before the cancel is kept: the next build goes on
    // from there.
    let out = fx.solve(&def, third);
    out.solved();
    assert_eq!(out.cached(), 1, "the first step hits");
    assert_eq!(
        fx.runtime.commands(),
        ["/bin/sh -c first", "/bin/sh -c second", "/bin/sh -c third"]
    );
}

fn independent_steps_run_at_the_same_time<S: TestStore>() {
    let fx = Fixture::<S>::new();
    // Each waits until the other has started too (or gives up, after
    // `PEER_WAIT`, and the assertion below fails).
    fx.runtime
        .on("left", FakeRun::new().write("/l", "l").with_peers(2));
    fx.runtime
        .on("right", FakeRun::new().write("/r", "r").with_peers(2));
    let (def, merged) = left_and_right_merged();
    let out = fx.solve(&def, merged);
    let solved = out.solved();
    assert_eq!(fx.runtime.most_at_once(), 2);
    assert_eq!(fx.runtime.commands().len(), 2);
    assert_eq!(fx.read(solved, "l").as_deref(), Some("l"));
    assert_eq!(fx.read(solved, "r").as_deref(), Some("r"));
    assert_eq!(fx.store.cache_keys().len(), 2);
}

fn the_request_carries_the_step<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

fn network_host_needs_its_entitlement<S: TestStore>() {
    let fx = Fixture::<S>::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let mut op = exec_op(base, "net");
    op.network = NetworkMode::Host;
    let run = def.push(Op::Exec(op), OpMetadata::default());
    let out = fx.solve(&def, run);
    let err = out.error().to_string();
    assert!(err.contains("network.host is not granted"), "{err}");
}

fn sources_fail_with_typed_errors<S: TestStore>() {
    let fx = Fixture::<S>::new();
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

fn a_merge_stacks_layers_and_reads_later_ones_first<S: TestStore>() {
    let fx = Fixture::<S>::new();
    fx.runtime
        .on("left", FakeRun::new().write("/f", "left").write("/l", "l"));
    fx.runtime.on("right", FakeRun::new().write("/f", "right"));
    let (def, merged) = left_and_right_merged();
    let out = fx.solve(&def, merged);
    let solved = out.solved();
    assert_eq!(solved.layers().len(), 2);
    assert_eq!(fx.read(solved, "f").as_deref(), Some("right"));
    assert_eq!(fx.read(solved, "l").as_deref(), Some("l"));
}

/// Keeps the helper honest: paths read back are inside the snapshots.
fn read_finds_nothing_that_was_not_written<S: TestStore>() {
    let fx = Fixture::<S>::new();
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let run = exec(&mut def, base, "nothing");
    let out = fx.solve(&def, run);
    assert_eq!(fx.read(out.solved(), "out/app"), None);
    assert!(Path::new(&fx.context).is_dir());
}

/// Each test once per store.
macro_rules! suite {
    ($store:ty: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name::<$store>();
            }
        )*
    };
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod mem {
            suite!(rbk_exec::testing::MemSolveStore: $($name),*);
        }
        mod disk {
            suite!(rbk_store::Store: $($name),*);
        }
    };
}

both!(
    a_run_step_writes_a_layer_and_runs_once_then_hits_the_cache,
    a_changed_step_or_a_changed_input_misses_the_cache,
    a_step_whose_input_came_out_the_same_hits_again,
    ignore_cache_runs_again,
    a_copy_from_the_context_is_keyed_on_the_files_it_selects,
    a_failing_step_is_an_error_commits_nothing_and_stops_what_depends_on_it,
    a_failure_cancels_the_other_branches,
    a_cancelled_build_runs_nothing,
    cancelling_during_a_step_stops_the_steps_still_pending,
    independent_steps_run_at_the_same_time,
    the_request_carries_the_step,
    network_host_needs_its_entitlement,
    sources_fail_with_typed_errors,
    a_merge_stacks_layers_and_reads_later_ones_first,
    read_finds_nothing_that_was_not_written,
);

/// The in-memory store's images: a RUN on an image source stacks its layer
/// on the image's and reads the image's files.
#[test]
fn an_image_of_the_in_memory_store_is_a_source() {
    let fx = Fixture::<MemSolveStore>::new();
    let tree = fx.store.work_dir().unwrap();
    fs::write(tree.upper().join("greeting"), "hello").unwrap();
    let options = rbk_exec::LayerOptions {
        source_date_epoch: Some(0),
    };
    let layer = rbk_exec::commit_layer(&fx.store, &tree.upper(), &options)
        .unwrap()
        .expect("a layer");
    fx.store.add_image("base:1", vec![layer.clone()]).unwrap();
    fx.runtime
        .on("build", FakeRun::new().write("/built", "yes"));

    let mut def = Definition::new();
    let base = def.push(
        Op::Source(SourceOp::Image {
            reference: "docker.io/library/base:1".into(),
            platform: None,
        }),
        OpMetadata::default(),
    );
    let run = exec(&mut def, base, "build");
    let out = fx.solve(&def, run);
    let solved = out.solved();
    assert_eq!(solved.layers().len(), 2);
    assert_eq!(solved.layers()[0], layer);
    assert_eq!(fx.read(solved, "greeting").as_deref(), Some("hello"));
    assert_eq!(fx.read(solved, "built").as_deref(), Some("yes"));
    assert_eq!(fx.runtime.commands(), ["/bin/sh -c build"]);
}

/// The hashes a COPY from the context read are in the stat cache once the
/// build is over (the cache is saved beside the step, and the end of the
/// build waits for it): a scan with it hashes nothing again.
#[test]
fn a_build_leaves_the_hashes_it_read_in_the_stat_cache() {
    let fx = Fixture::<Store>::new();
    fx.write("a.txt", "a1");
    fx.write("b.txt", "b1");
    // Older than the stat cache's racy window, so it records them.
    std::thread::sleep(std::time::Duration::from_millis(150));
    let mut def = Definition::new();
    let base = scratch(&mut def);
    let ctx = context(&mut def);
    let copied = copy(&mut def, base, ctx, ".");
    fx.solve(&def, copied).solved();
    let mut cache = StatCache::load(&fx.store, &fx.context);
    let index = ContextIndex::scan(&fx.context, &IncludeAll, Some(&mut cache)).unwrap();
    index.digest().unwrap();
    assert_eq!(index.bytes_hashed(), 0, "every file came from the cache");
}
