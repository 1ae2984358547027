//! The incremental COPY (`ops/file/reuse.rs`): after a change to the
//! context, a `COPY . /repo` that misses the cache links the unchanged files
//! from its last snapshot, and its layer is byte for byte the one a
//! `--no-cache` copy makes. One case per kind of change, plus a record
//! whose snapshot was pruned.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rbk_exec::testing::FakeRuntime;
use rbk_exec::{IncludeAll, LocalDir, SnapshotterChoice, SolveOptions, Solver};
use rbk_graph::{
    CancelToken, CopyAction, Dag, Definition, FileAction, FileOp, Input, NodeId, Op, OpMetadata,
    RecordingReporter, Scheduler, SourceOp,
};
use rbk_store::{Layer, Store};

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    context: PathBuf,
    runtime: FakeRuntime,
}

impl Fixture {
    /// A context of a few files in a small tree, old enough (see the racy
    /// rule) for the first build to record them.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let context = dir.path().join("context");
        let fx = Fixture {
            store,
            context,
            runtime: FakeRuntime::new(),
            dir,
        };
        for (name, data) in [
            ("top.txt", "top\n"),
            ("a/one.txt", "one\n"),
            ("a/b/two.txt", "two\n"),
            ("a/b/three.txt", "three\n"),
            ("c/four.txt", "four\n"),
        ] {
            fx.write(name, data);
        }
        std::os::unix::fs::symlink("b/two.txt", fx.context.join("a/link")).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        fx
    }

    fn write(&self, name: &str, data: &str) {
        let path = self.context.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn options(&self) -> SolveOptions {
        let local = LocalDir {
            root: self.context.clone(),
            filter: Arc::new(IncludeAll),
        };
        SolveOptions {
            locals: [("context".to_string(), local)].into(),
            snapshotter: SnapshotterChoice::Copy,
            ..Default::default()
        }
    }

    /// `COPY --chown=<uid>:<gid> . /repo` on scratch (as the user running
    /// the test: a COPY from the context otherwise chowns to root), solved
    /// by a fresh solver; its layer.
    fn build(&self, no_cache: bool) -> Layer {
        let mut def = Definition::new();
        let (base, ctx) = scratch_and_context(&mut def);
        let copy = copy_op(base, ctx);
        let meta = OpMetadata {
            ignore_cache: no_cache,
            ..OpMetadata::default()
        };
        let root: NodeId = def.push(Op::File(copy), meta);
        let dag = Dag::new(&def, &[root]).unwrap();
        let solver = Solver::new(&self.store, &self.runtime, self.options()).unwrap();
        let reporter = RecordingReporter::new();
        let mut out = Scheduler::new(2)
            .run_with_cancel(&dag, &solver, &reporter, &CancelToken::new())
            .unwrap();
        let layers = out.remove(0).layers().to_vec();
        assert_eq!(layers.len(), 1);
        layers[0].clone()
    }

    fn snapshot(&self, layer: &Layer) -> PathBuf {
        self.store
            .ensure_snapshot(&layer.blob, &layer.diff_id)
            .unwrap()
    }

    fn records(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.store.db_dir().join("copy-reuse")) {
            Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The scratch source and the local source `context`, pushed to `def`.
fn scratch_and_context(def: &mut Definition) -> (NodeId, NodeId) {
    let base = def.push(Op::Source(SourceOp::Scratch), OpMetadata::default());
    let ctx = def.push(
        Op::Source(SourceOp::Local {
            name: "context".into(),
            include: vec![],
            exclude: vec![],
        }),
        OpMetadata::default(),
    );
    (base, ctx)
}

/// As `FROM scratch` + `COPY . /repo` lowers: scratch is the base.
fn copy_op(base: NodeId, ctx: NodeId) -> FileOp {
    let owner = rbk_graph::Owner {
        user: rustix::process::getuid().as_raw().to_string(),
        group: rustix::process::getgid().as_raw().to_string(),
    };
    FileOp {
        inputs: vec![Input::of(base), Input::of(ctx)],
        base: Some(0),
        actions: vec![FileAction::Copy(CopyAction {
            from: 1,
            src: ".".into(),
            dest: "/repo".into(),
            owner: Some(owner),
            mode: None,
            follow_symlinks: true,
            dir_contents_only: true,
            allow_wildcard: true,
            allow_empty_wildcard: false,
            create_dest_path: true,
            auto_extract: false,
            parents: false,
            exclude: vec![],
        })],
    }
}

fn ino(dir: &Path, rel: &str) -> u64 {
    fs::symlink_metadata(dir.join("repo").join(rel))
        .unwrap()
        .ino()
}

/// Builds, applies `change`, builds again: the second layer is the one a
/// `--no-cache` build makes, and an untouched file was linked, not copied.
/// Returns the second build's snapshot.
fn check(fx: &Fixture, change: impl FnOnce(&Path)) -> PathBuf {
    let first = fx.build(false);
    let before = fx.snapshot(&first);
    assert_eq!(fx.records().len(), 1, "the first COPY left a record");
    change(&fx.context);
    let second = fx.build(false);
    assert_ne!(
        second.diff_id, first.diff_id,
        "the change reached the layer"
    );
    let after = fx.snapshot(&second);
    assert_eq!(
        ino(&before, "c/four.txt"),
        ino(&after, "c/four.txt"),
        "an untouched file is linked from the last snapshot"
    );
    let fresh = fx.build(true);
    assert_eq!(
        second.diff_id, fresh.diff_id,
        "the incremental copy's layer differs from --no-cache's"
    );
    after
}

#[test]
fn an_edited_file_is_copied_again_and_the_rest_linked() {
    let fx = Fixture::new();
    let first = fx.snapshot(&fx.build(false));
    let after = check(&fx, |ctx| {
        fs::write(ctx.join("a/b/two.txt"), "two, edited\n").unwrap()
    });
    assert_eq!(
        fs::read_to_string(after.join("repo/a/b/two.txt")).unwrap(),
        "two, edited\n"
    );
    assert_ne!(ino(&first, "a/b/two.txt"), ino(&after, "a/b/two.txt"));
    assert_eq!(
        fs::read_to_string(first.join("repo/a/b/two.txt")).unwrap(),
        "two\n",
        "the last snapshot is untouched"
    );
}

/// Each directory of the last snapshot is resolved once for all its
/// files: every untouched file, beside the edited one or elsewhere, is
/// linked from its own path.
#[test]
fn every_untouched_file_of_every_directory_is_linked() {
    let fx = Fixture::new();
    let first = fx.snapshot(&fx.build(false));
    let after = check(&fx, |ctx| {
        fs::write(ctx.join("a/b/two.txt"), "two, edited\n").unwrap()
    });
    for rel in ["top.txt", "a/one.txt", "a/b/three.txt", "c/four.txt"] {
        assert_eq!(ino(&first, rel), ino(&after, rel), "{rel} is linked");
        let want = fs::read(first.join("repo").join(rel)).unwrap();
        assert_eq!(fs::read(after.join("repo").join(rel)).unwrap(), want);
    }
}

#[test]
fn an_added_file_is_copied() {
    let fx = Fixture::new();
    let after = check(&fx, |ctx| {
        fs::write(ctx.join("a/b/new.txt"), "new\n").unwrap()
    });
    assert_eq!(
        fs::read_to_string(after.join("repo/a/b/new.txt")).unwrap(),
        "new\n"
    );
}

#[test]
fn a_deleted_file_is_not_in_the_new_layer() {
    let fx = Fixture::new();
    let after = check(&fx, |ctx| {
        fs::remove_file(ctx.join("a/b/three.txt")).unwrap()
    });
    assert!(!after.join("repo/a/b/three.txt").exists());
}

#[test]
fn a_mode_change_alone_is_seen() {
    let fx = Fixture::new();
    let after = check(&fx, |ctx| {
        let path = ctx.join("a/one.txt");
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    });
    let mode = fs::metadata(after.join("repo/a/one.txt")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn a_renamed_file_is_at_its_new_path_only() {
    let fx = Fixture::new();
    let after = check(&fx, |ctx| {
        fs::rename(ctx.join("a/b/three.txt"), ctx.join("c/three.txt")).unwrap();
    });
    assert!(!after.join("repo/a/b/three.txt").exists());
    assert_eq!(
        fs::read_to_string(after.join("repo/c/three.txt")).unwrap(),
        "three\n"
    );
}

/// A record whose snapshot was pruned is dropped, and the copy copies all.
#[test]
fn a_record_whose_snapshot_was_pruned_falls_back_to_a_full_copy() {
    let fx = Fixture::new();
    fx.build(false);
    let records = fx.records();
    assert_eq!(records.len(), 1);
    fx.store.prune(true).unwrap();
    fx.write("a/one.txt", "one, edited\n");
    let second = fx.build(false);
    let fresh = fx.build(true);
    assert_eq!(second.diff_id, fresh.diff_id);
    let after = fx.snapshot(&second);
    assert_eq!(
        fs::read_to_string(after.join("repo/a/one.txt")).unwrap(),
        "one, edited\n"
    );
    assert_eq!(fx.records(), records, "the record is written anew");
    assert_eq!(
        fs::symlink_metadata(after.join("repo/c/four.txt"))
            .unwrap()
            .nlink(),
        1
    );
    drop(fx.dir);
}

/// With hundreds of files the layer's pack has checkpoints, and the next
/// pack resumes its hash from the last one before the edit
/// (`rbk_store::pack::hash_tracked`): early, in the middle or last in the
/// tar, the layer is the one a `--no-cache` copy makes.
#[test]
fn a_layer_hashed_from_the_last_ones_checkpoints_is_the_full_copys() {
    let fx = Fixture::new();
    for d in 0..3 {
        for f in 0..100 {
            fx.write(&format!("m{d}/f{f:03}.txt"), &format!("{d} {f}\n"));
        }
    }
    std::thread::sleep(Duration::from_millis(250));
    let mut last = fx.build(false);
    let edits = [
        "m2/f090.txt",
        "m1/f050.txt",
        "a/one.txt",
        "top.txt",
        "m0/f001.txt",
    ];
    for (i, rel) in edits.into_iter().enumerate() {
        fx.write(rel, &format!("edit {i}\n"));
        let layer = fx.build(false);
        assert_ne!(
            layer.diff_id, last.diff_id,
            "{rel}: the edit reached the layer"
        );
        assert_eq!(layer.diff_id, fx.build(true).diff_id, "{rel}");
        let after = fx.snapshot(&layer);
        assert_eq!(
            fs::read_to_string(after.join("repo").join(rel)).unwrap(),
            format!("edit {i}\n")
        );
        last = layer;
    }
}

#[test]
fn concurrent_copies_of_many_directories_all_finish() {
    let fx = Fixture::new();
    // 300 directories: each copy dispatches several batches (a batch is
    // run once it holds 128 directories), and four copies run at once on
    // the solver's pool of one thread per core.
    for d in 0..300 {
        fx.write(&format!("many/d{d}/x.txt"), &format!("{d}\n"));
    }
    let mut def = Definition::new();
    let (base, ctx) = scratch_and_context(&mut def);
    let roots: Vec<NodeId> = (0..4)
        .map(|i| {
            let mut copy = copy_op(base, ctx);
            let FileAction::Copy(action) = &mut copy.actions[0] else {
                unreachable!("copy_op makes one copy")
            };
            action.dest = format!("/repo{i}");
            def.push(Op::File(copy), OpMetadata::default())
        })
        .collect();
    let dag = Dag::new(&def, &roots).unwrap();
    let solver = Solver::new(&fx.store, &fx.runtime, fx.options()).unwrap();
    let out = Scheduler::new(4)
        .run_with_cancel(
            &dag,
            &solver,
            &RecordingReporter::new(),
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(out.len(), 4);
    for (i, solved) in out.iter().enumerate() {
        let snapshot = fx.snapshot(&solved.layers()[0]);
        let repo = snapshot.join(format!("repo{i}"));
        for d in [0, 127, 128, 299] {
            let text = fs::read_to_string(repo.join(format!("many/d{d}/x.txt"))).unwrap();
            assert_eq!(text, format!("{d}\n"));
        }
        assert_eq!(fs::read_dir(repo.join("many")).unwrap().count(), 300);
    }
}
