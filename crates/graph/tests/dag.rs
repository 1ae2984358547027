//! Dag construction: pruning, dedupe, errors, levels and the text dump.

mod common;

use std::path::Path;

use common::{exec, src, src_in, step, step_in};
use rbk_graph::{
    CacheSharing, CopyAction, Dag, Definition, Error, FileAction, FileOp, Input, MergeOp, Mount,
    MountKind, NodeId, Op, OpMetadata, Owner, SourceOp, Vertex,
};

#[test]
fn unreachable_vertices_are_pruned() {
    let mut def = Definition::new();
    let base = src_in(&mut def, "base", Some("base"));
    let test = step_in(&mut def, "test", &[base], Some("test"));
    let _test_more = step_in(&mut def, "test-more", &[test], Some("test"));
    let build = step_in(&mut def, "build", &[base], Some("build"));
    let dag = Dag::new(&def, &[build]).unwrap();
    assert_eq!(dag.len(), 2);
    let stages: Vec<&[String]> = dag.vertices().iter().map(|v| v.stages()).collect();
    assert_eq!(
        stages,
        vec![&["base".to_string()][..], &["build".to_string()][..]]
    );
    assert_eq!(dag.roots(), &[1]);
    assert_eq!(dag.vertex(1).inputs(), &[0]);
    assert_eq!(dag.vertex(1).op().inputs(), &[Input::of(NodeId(0))]);
    assert_eq!(dag.vertex(0).dependents(), &[1]);
}

#[test]
fn identical_vertices_are_merged() {
    let mut def = Definition::new();
    // Two stages that both start from alpine and run the same step.
    let a_base = src_in(&mut def, "alpine", Some("a"));
    let a_run = step_in(&mut def, "apk add gcc", &[a_base], Some("a"));
    let b_base = src_in(&mut def, "alpine", Some("b"));
    let b_run = step_in(&mut def, "apk add gcc", &[b_base], Some("b"));
    def.vertices[b_run.0 as usize].meta.description = "other label".into();
    let top = def.push(
        Op::Merge(MergeOp {
            inputs: vec![Input::of(a_run), Input::of(b_run)],
        }),
        OpMetadata::default(),
    );
    let dag = Dag::new(&def, &[top, b_run]).unwrap();
    assert_eq!(dag.len(), 3);
    let run = dag.vertex(1);
    assert_eq!(run.stages(), &["a".to_string(), "b".to_string()]);
    assert_eq!(run.meta().description, "step apk add gcc");
    assert_eq!(run.meta().stage.as_deref(), Some("a"));
    assert_eq!(dag.vertex(2).inputs(), &[1, 1]);
    assert_eq!(dag.vertex(2).deps(), &[1]);
    assert_eq!(dag.roots(), &[2, 1]);
    assert_eq!(dag.find(run.digest()), Some(1));
    assert_eq!(run.digest(), def.digests()[b_run.0 as usize]);
}

#[test]
fn unknown_roots_and_bad_edges_are_errors() {
    let mut def = Definition::new();
    src(&mut def, "a");
    let err = Dag::new(&def, &[NodeId(5)]).unwrap_err();
    assert!(matches!(
        err,
        Error::UnknownRoot {
            node: NodeId(5),
            len: 1
        }
    ));

    // Built by hand: an input that points forward.
    def.vertices.insert(
        0,
        Vertex {
            op: Op::Exec(exec("x", &[NodeId(1)])),
            meta: OpMetadata::default(),
        },
    );
    let err = Dag::new(&def, &[NodeId(1)]).unwrap_err();
    assert!(matches!(
        err,
        Error::BadInput {
            node: NodeId(0),
            input: NodeId(1)
        }
    ));
}

#[test]
fn levels_group_what_may_run_together() {
    let mut def = Definition::new();
    let a = src(&mut def, "a");
    let b = src(&mut def, "b");
    let c = step(&mut def, "c", &[a]);
    let d = step(&mut def, "d", &[c, b]);
    let e = step(&mut def, "e", &[b]);
    let dag = Dag::new(&def, &[d, e]).unwrap();
    assert_eq!(dag.levels(), vec![vec![0, 1], vec![2, 4], vec![3]]);
}

/// A small multi-stage build with every op kind.
fn sample() -> (Definition, Vec<NodeId>) {
    let mut def = Definition::new();
    let meta = |desc: &str, stage: &str| OpMetadata {
        description: desc.into(),
        stage: Some(stage.into()),
        ..OpMetadata::default()
    };
    let image = Op::Source(SourceOp::Image {
        reference: "docker.io/library/alpine:3.19".into(),
        platform: None,
    });
    let base = def.push(image.clone(), meta("[build 1/4] FROM alpine:3.19", "build"));
    let context = def.push(
        Op::Source(SourceOp::Local {
            name: "context".into(),
            include: vec![],
            exclude: vec![".git".into()],
        }),
        meta("[internal] load build context", "build"),
    );
    let copy = CopyAction {
        from: 1,
        src: "/src".into(),
        dest: "/app".into(),
        owner: Some(Owner {
            user: "app".into(),
            group: "app".into(),
        }),
        mode: None,
        follow_symlinks: true,
        dir_contents_only: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        create_dest_path: true,
        auto_extract: false,
        parents: false,
        exclude: vec![],
    };
    let copied = def.push(
        Op::File(FileOp {
            inputs: vec![Input::of(base), Input::of(context)],
            base: Some(0),
            actions: vec![
                FileAction::Mkdir {
                    path: "/app".into(),
                    mode: 0o755,
                    make_parents: true,
                    owner: None,
                },
                FileAction::Copy(copy),
            ],
        }),
        meta("[build 2/4] COPY src /app", "build"),
    );
    let mut run = exec("/bin/sh", &[copied]);
    run.args
        .extend(["-c".into(), "make && make install".into()]);
    run.cwd = "/app".into();
    run.env = vec!["PATH=/usr/bin:/bin".to_string()].into();
    run.mounts.push(Mount {
        target: "/root/.cache".into(),
        kind: MountKind::Cache {
            id: "go".into(),
            sharing: CacheSharing::Locked,
            input: None,
            source: String::new(),
            readonly: false,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
    });
    let built = def.push(
        Op::Exec(run),
        meta("[build 3/4] RUN make && make install", "build"),
    );
    let final_base = def.push(image, meta("[final 1/2] FROM alpine:3.19", "final"));
    let unused = def.push(
        Op::Source(SourceOp::Scratch),
        meta("[lint 1/1] FROM scratch", "lint"),
    );
    let _ = unused;
    let merged = def.push(
        Op::Merge(MergeOp {
            inputs: vec![Input::of(final_base), Input::of(built)],
        }),
        meta("[final 2/2] COPY --link --from=build /app /app", "final"),
    );
    (def, vec![merged])
}

#[test]
fn dump_matches_golden() {
    let (def, roots) = sample();
    let dag = Dag::new(&def, &roots).unwrap();
    assert_eq!(dag.len(), 5, "lint pruned, alpine merged");
    golden(&dag.dump(), "sample.dag.txt");
    assert_eq!(
        dag.summary(2),
        "file mkdir /app mode=0755 -p; copy context:/src -> /app chown=app:app"
    );
}

/// Compares with `tests/testdata/<name>`; `UPDATE_GOLDEN=1` rewrites it.
fn golden(actual: &str, name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}
