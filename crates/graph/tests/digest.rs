//! Vertex digests: pinned values, sensitivity to every op field, and
//! indifference to metadata.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::exec;
use rbk_graph::{
    canonical_bytes, op_digest, CacheSharing, CopyAction, Dag, Definition, Digest, FileAction,
    FileOp, Input, MergeOp, Mount, MountKind, NetworkMode, NodeId, Op, OpMetadata, Owner, Platform,
    SecurityMode, SourceOp, SourceSpan,
};

fn image(reference: &str) -> Op {
    Op::Source(SourceOp::Image {
        reference: reference.to_string(),
        platform: None,
    })
}

fn d(op: &Op) -> Digest {
    op_digest(op, &vec![Digest::sha256_of(b"input"); op.inputs().len()])
}

#[test]
fn golden_digests() {
    let scratch = Op::Source(SourceOp::Scratch);
    let alpine = image("docker.io/library/alpine:3.19");
    let alpine_digest = op_digest(&alpine, &[]);
    let run = Op::Exec(exec("make", &[NodeId(0)]));
    let got = [
        op_digest(&scratch, &[]).to_string(),
        alpine_digest.to_string(),
        op_digest(&run, &[alpine_digest]).to_string(),
    ];
    let want = GOLDEN.map(str::to_string);
    assert_eq!(got, want, "vertex digests changed: bump VERSION knowingly");
}

const GOLDEN: [&str; 3] = [
    "sha256:685585d663a5a0399858d1c89c765fb154e60db0a4f9862668c2ed3dff6de152",
    "sha256:0fe2572100269136840578bf9268665f9d2de88885dae1e7024ba5eb5fb00817",
    "sha256:6c6b482aa04993c76c065d05564900836851588db2f77901527b0b07751ba06a",
];

#[test]
fn canonical_bytes_are_tagged_json() {
    let bytes = canonical_bytes(&Op::Source(SourceOp::Scratch), &[]);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        r#"{"version":"rbk.vertex.v1","op":{"source":"scratch"},"inputs":[]}"#
    );
}

fn base_exec() -> rbk_graph::ExecOp {
    exec("make", &[NodeId(0)])
}

fn exec_variants() -> Vec<Op> {
    let mut out = vec![];
    let mut push = |f: &dyn Fn(&mut rbk_graph::ExecOp)| {
        let mut e = base_exec();
        f(&mut e);
        out.push(Op::Exec(e));
    };
    push(&|_| {});
    push(&|e| e.args.push("all".into()));
    push(&|e| e.env.push("A=1".into()));
    push(&|e| e.cwd = "/src".into());
    push(&|e| e.user = "nobody".into());
    push(&|e| e.network = NetworkMode::None);
    push(&|e| e.network = NetworkMode::Host);
    push(&|e| e.security = SecurityMode::Insecure);
    push(&|e| e.hostname = "builder".into());
    push(&|e| e.inputs[0].output = 1);
    push(&|e| e.inputs.push(Input::of(NodeId(0))));
    for kind in mount_kinds() {
        push(&|e| {
            e.mounts.push(Mount {
                target: "/m".into(),
                kind: kind.clone(),
            })
        });
        push(&|e| {
            e.mounts.push(Mount {
                target: "/other".into(),
                kind: kind.clone(),
            })
        });
    }
    out
}

fn mount_kinds() -> Vec<MountKind> {
    let cache = |f: &dyn Fn(&mut MountKind)| {
        let mut k = MountKind::Cache {
            id: "c".into(),
            sharing: CacheSharing::Shared,
            input: None,
            source: String::new(),
            readonly: false,
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        f(&mut k);
        k
    };
    let mut kinds = vec![
        MountKind::Bind {
            input: None,
            source: "/".into(),
            readwrite: false,
        },
        MountKind::Bind {
            input: Some(0),
            source: "/".into(),
            readwrite: false,
        },
        MountKind::Bind {
            input: None,
            source: "/x".into(),
            readwrite: false,
        },
        MountKind::Bind {
            input: None,
            source: "/".into(),
            readwrite: true,
        },
        MountKind::Tmpfs { size: 0 },
        MountKind::Tmpfs { size: 1 },
        MountKind::Secret {
            id: "s".into(),
            required: false,
            mode: 0o400,
            uid: 0,
            gid: 0,
            env: None,
        },
        MountKind::Secret {
            id: "s".into(),
            required: true,
            mode: 0o400,
            uid: 0,
            gid: 0,
            env: None,
        },
        MountKind::Secret {
            id: "s".into(),
            required: false,
            mode: 0o400,
            uid: 0,
            gid: 0,
            env: Some("S".into()),
        },
        MountKind::Ssh {
            id: "default".into(),
            required: false,
            mode: 0o600,
            uid: 0,
            gid: 0,
        },
        MountKind::Ssh {
            id: "default".into(),
            required: false,
            mode: 0o600,
            uid: 1,
            gid: 0,
        },
    ];
    kinds.push(cache(&|_| {}));
    kinds.push(cache(&|k| {
        if let MountKind::Cache { sharing, .. } = k {
            *sharing = CacheSharing::Locked
        }
    }));
    kinds.push(cache(&|k| {
        if let MountKind::Cache { id, .. } = k {
            *id = "d".into()
        }
    }));
    kinds.push(cache(&|k| {
        if let MountKind::Cache { readonly, .. } = k {
            *readonly = true
        }
    }));
    kinds.push(cache(&|k| {
        if let MountKind::Cache { mode, .. } = k {
            *mode = 0o700
        }
    }));
    kinds.push(cache(&|k| {
        if let MountKind::Cache { gid, .. } = k {
            *gid = 7
        }
    }));
    kinds
}

fn copy() -> CopyAction {
    CopyAction {
        from: 1,
        src: "/src".into(),
        dest: "/app/".into(),
        owner: None,
        mode: None,
        follow_symlinks: true,
        dir_contents_only: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        create_dest_path: true,
        auto_extract: false,
        parents: false,
        exclude: vec![],
    }
}

fn file_variants() -> Vec<Op> {
    let file = |f: &dyn Fn(&mut FileOp)| {
        let mut op = FileOp {
            inputs: vec![Input::of(NodeId(0)), Input::of(NodeId(1))],
            base: Some(0),
            actions: vec![FileAction::Copy(copy())],
        };
        f(&mut op);
        Op::File(op)
    };
    let with_copy = |f: &dyn Fn(&mut CopyAction)| {
        file(&|op| {
            let mut c = copy();
            f(&mut c);
            op.actions = vec![FileAction::Copy(c)];
        })
    };
    let owner = Some(Owner {
        user: "1".into(),
        group: String::new(),
    });
    vec![
        file(&|_| {}),
        file(&|op| op.base = None),
        file(&|op| op.inputs[1].output = 1),
        with_copy(&|c| c.from = 0),
        with_copy(&|c| c.src = "/other".into()),
        with_copy(&|c| c.dest = "/app".into()),
        with_copy(&|c| c.owner = owner.clone()),
        with_copy(&|c| c.mode = Some("0755".into())),
        with_copy(&|c| c.follow_symlinks = false),
        with_copy(&|c| c.dir_contents_only = false),
        with_copy(&|c| c.allow_wildcard = false),
        with_copy(&|c| c.allow_empty_wildcard = false),
        with_copy(&|c| c.create_dest_path = false),
        with_copy(&|c| c.auto_extract = true),
        with_copy(&|c| c.parents = true),
        with_copy(&|c| c.exclude = vec!["*.o".into()]),
        file(&|op| {
            op.actions.push(FileAction::Mkdir {
                path: "/d".into(),
                mode: 0o755,
                make_parents: false,
                owner: None,
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Mkdir {
                path: "/d".into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Mkdir {
                path: "/d".into(),
                mode: 0o700,
                make_parents: false,
                owner: None,
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Mkdir {
                path: "/d".into(),
                mode: 0o755,
                make_parents: false,
                owner: owner.clone(),
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Mkfile {
                path: "/f".into(),
                mode: 0o644,
                data: "x".into(),
                owner: None,
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Mkfile {
                path: "/f".into(),
                mode: 0o644,
                data: "y".into(),
                owner: None,
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Rm {
                path: "/f".into(),
                allow_not_found: false,
            })
        }),
        file(&|op| {
            op.actions.push(FileAction::Rm {
                path: "/f".into(),
                allow_not_found: true,
            })
        }),
    ]
}

fn source_variants() -> Vec<Op> {
    let platform = |variant: &str| Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: variant.into(),
    };
    let local = |name: &str, include: &[&str], exclude: &[&str]| {
        Op::Source(SourceOp::Local {
            name: name.into(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        })
    };
    let git = |remote: &str, reference: &str, subdir: &str, keep: bool| {
        Op::Source(SourceOp::Git {
            remote: remote.into(),
            reference: reference.into(),
            subdir: subdir.into(),
            keep_git_dir: keep,
        })
    };
    let http = |url: &str, checksum: Option<&str>, filename: &str| {
        Op::Source(SourceOp::Http {
            url: url.into(),
            checksum: checksum.map(str::to_string),
            filename: filename.into(),
        })
    };
    vec![
        Op::Source(SourceOp::Scratch),
        image("alpine"),
        image("busybox"),
        Op::Source(SourceOp::Image {
            reference: "alpine".into(),
            platform: Some(platform("")),
        }),
        Op::Source(SourceOp::Image {
            reference: "alpine".into(),
            platform: Some(platform("v8")),
        }),
        local("context", &[], &[]),
        local("other", &[], &[]),
        local("context", &["src"], &[]),
        local("context", &[], &["target"]),
        git("https://x/r.git", "", "", false),
        git("https://x/s.git", "", "", false),
        git("https://x/r.git", "main", "", false),
        git("https://x/r.git", "", "sub", false),
        git("https://x/r.git", "", "", true),
        http("https://x/f", None, "f"),
        http("https://x/g", None, "f"),
        http("https://x/f", Some("sha256:00"), "f"),
        http("https://x/f", None, "g"),
        Op::Merge(MergeOp {
            inputs: vec![Input::of(NodeId(0)), Input::of(NodeId(1))],
        }),
        Op::Merge(MergeOp {
            inputs: vec![Input::of(NodeId(0))],
        }),
    ]
}

#[test]
fn every_op_field_changes_the_digest() {
    let ops: Vec<Op> = [exec_variants(), file_variants(), source_variants()].concat();
    let mut seen = HashSet::new();
    for op in &ops {
        assert!(seen.insert(d(op)), "another op has the digest of {op:?}");
    }
}

#[test]
fn input_digests_and_their_order_matter() {
    let merge = Op::Merge(MergeOp {
        inputs: vec![Input::of(NodeId(0)), Input::of(NodeId(1))],
    });
    let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
    assert_ne!(op_digest(&merge, &[a, b]), op_digest(&merge, &[b, a]));
    assert_ne!(op_digest(&merge, &[a, b]), op_digest(&merge, &[a, a]));
}

#[test]
fn input_node_numbers_do_not_matter() {
    let a = Op::Exec(exec("make", &[NodeId(0)]));
    let b = Op::Exec(exec("make", &[NodeId(7)]));
    let input = Digest::sha256_of(b"x");
    assert_eq!(op_digest(&a, &[input]), op_digest(&b, &[input]));
}

#[test]
fn metadata_does_not_change_the_digest() {
    let build = |meta: OpMetadata| {
        let mut def = Definition::new();
        let base = def.push(image("alpine"), meta.clone());
        let run = def.push(Op::Exec(exec("make", &[base])), meta);
        (
            def.digests(),
            Dag::new(&def, &[run]).unwrap().vertex(1).digest(),
        )
    };
    let plain = build(OpMetadata::default());
    let labelled = build(OpMetadata {
        description: "[build 2/2] RUN make".into(),
        stage: Some("build".into()),
        span: Some(SourceSpan {
            file: "Dockerfile".into(),
            start_line: 3,
            end_line: 4,
        }),
        ignore_cache: true,
        labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
    });
    assert_eq!(plain, labelled);
}

#[test]
fn a_shared_env_serialises_as_the_list_it_is() {
    let env: rbk_graph::EnvList = vec!["A=1".to_string(), "B=2".to_string()].into();
    assert_eq!(serde_json::to_string(&env).unwrap(), r#"["A=1","B=2"]"#);
    let back: rbk_graph::EnvList = serde_json::from_str(r#"["A=1","B=2"]"#).unwrap();
    assert_eq!(back, env);
    assert_eq!(format!("{env:?}"), r#"["A=1", "B=2"]"#);
    // Copy on write: the op that shared the list keeps its own.
    let mut other = env.clone();
    other.push("C=3".into());
    assert_eq!((env.len(), other.len()), (2, 3));
}
