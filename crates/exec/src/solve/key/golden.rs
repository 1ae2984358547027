//! Pins cache keys: a table of ops over fixed inputs, each with its vertex
//! digest and its cache key, compared with
//! `tests/testdata/cache_keys.txt`. Any change to what a key covers (the op
//! digest, the key scheme, how inputs' content is hashed, the context
//! selector digest) shows up as a diff of that file. `UPDATE_GOLDEN=1`
//! rewrites it; review the diff, and bump `SCHEME` in `key.rs` when old
//! records would now be read with a new meaning.
//!
//! Lines that must be equal (metadata is not part of a key; a context file
//! a COPY does not select is not either) are also asserted here, so an
//! update cannot silently break them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rbk_graph::{
    CacheSharing, CopyAction, Dag, Definition, ExecOp, FileAction, FileOp, Input, Mount, MountKind,
    NetworkMode, NodeId, Op, OpMetadata, Owner, SecurityMode, SourceOp,
};
use rbk_store::{Descriptor, Digest, Layer};

use super::cache_key;
use crate::solve::{LocalDir, LocalTree, Solved, SolvedFs};
use crate::{ContextIndex, IncludeAll};

const GOLDEN: &str = "tests/testdata/cache_keys.txt";

fn layer(name: &str) -> Layer {
    let diff_id = Digest::sha256_of(name.as_bytes());
    Layer {
        diff_id,
        blob: Descriptor {
            media_type: crate::solve::OCI_LAYER.into(),
            digest: diff_id,
            size: 1024,
            annotations: BTreeMap::new(),
        },
    }
}

/// A context directory with fixed names, modes and contents.
fn context(dir: &Path, files: &[(&str, &str)]) -> Solved {
    for (name, data) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    for sub in ["", "src"] {
        let path = dir.join(sub);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let index = ContextIndex::scan(dir, &IncludeAll, None).unwrap();
    Solved(Arc::new(SolvedFs {
        layers: Vec::new(),
        content: index.digest().unwrap(),
        local: Some(LocalTree::new(
            LocalDir {
                root: dir.to_path_buf(),
                filter: Arc::new(IncludeAll),
            },
            Arc::new(index),
            None,
        )),
    }))
}

fn exec_op(inputs: Vec<Input>) -> ExecOp {
    ExecOp {
        inputs,
        args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
        env: vec!["PATH=/usr/bin:/bin".to_string()].into(),
        cwd: "/src".into(),
        user: String::new(),
        mounts: vec![],
        network: NetworkMode::Default,
        security: SecurityMode::Sandbox,
        hostname: String::new(),
    }
}

fn copy(src: &str, dest: &str) -> CopyAction {
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

fn file_op(actions: Vec<FileAction>, inputs: Vec<Input>) -> Op {
    Op::File(FileOp {
        inputs,
        base: Some(0),
        actions,
    })
}

/// Which solved filesystem each source of the table stands for.
struct Inputs {
    image: NodeId,
    other_image: NodeId,
    context: NodeId,
}

/// The table: (name, op, metadata). Inputs name the sources of `inputs`.
fn cases(i: &Inputs) -> Vec<(&'static str, Op, OpMetadata)> {
    let img = Input::of(i.image);
    let ctx = Input::of(i.context);
    let plain = OpMetadata::default;
    let exec = |f: &dyn Fn(&mut ExecOp)| {
        let mut op = exec_op(vec![img]);
        f(&mut op);
        Op::Exec(op)
    };
    let mut out = vec![
        ("run", exec(&|_| {}), plain()),
        (
            "run/other-description",
            exec(&|_| {}),
            OpMetadata {
                description: "[stage 2/2] RUN make".into(),
                stage: Some("build".into()),
                ..Default::default()
            },
        ),
        (
            "run/other-args",
            exec(&|o| o.args[2] = "make all".into()),
            plain(),
        ),
        ("run/env", exec(&|o| o.env.push("A=1".into())), plain()),
        ("run/cwd", exec(&|o| o.cwd = "/".into()), plain()),
        ("run/user", exec(&|o| o.user = "1000:1000".into()), plain()),
        (
            "run/network-none",
            exec(&|o| o.network = NetworkMode::None),
            plain(),
        ),
        (
            "run/network-host",
            exec(&|o| o.network = NetworkMode::Host),
            plain(),
        ),
        (
            "run/insecure",
            exec(&|o| o.security = SecurityMode::Insecure),
            plain(),
        ),
        (
            "run/hostname",
            exec(&|o| o.hostname = "box".into()),
            plain(),
        ),
        (
            "run/on-other-image",
            Op::Exec(exec_op(vec![Input::of(i.other_image)])),
            plain(),
        ),
        (
            "run/cache-mount",
            exec(&|o| {
                o.mounts.push(Mount {
                    target: "/root/.cache".into(),
                    kind: MountKind::Cache {
                        id: "go".into(),
                        sharing: CacheSharing::Shared,
                        input: None,
                        source: String::new(),
                        readonly: false,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    },
                })
            }),
            plain(),
        ),
        (
            "run/secret-mount",
            exec(&|o| {
                o.mounts.push(Mount {
                    target: "/run/secrets/token".into(),
                    kind: MountKind::Secret {
                        id: "token".into(),
                        required: true,
                        mode: 0o400,
                        uid: 0,
                        gid: 0,
                        env: None,
                    },
                })
            }),
            plain(),
        ),
        (
            "run/tmpfs-mount",
            exec(&|o| {
                o.mounts.push(Mount {
                    target: "/tmp".into(),
                    kind: MountKind::Tmpfs { size: 0 },
                })
            }),
            plain(),
        ),
        (
            "run/bind-context",
            Op::Exec(ExecOp {
                mounts: vec![Mount {
                    target: "/ctx".into(),
                    kind: MountKind::Bind {
                        input: Some(1),
                        source: "/".into(),
                        readwrite: false,
                    },
                }],
                ..exec_op(vec![img, ctx])
            }),
            plain(),
        ),
    ];
    let copy_case =
        |src: &str, dest: &str| file_op(vec![FileAction::Copy(copy(src, dest))], vec![img, ctx]);
    out.extend([
        ("copy/a.txt", copy_case("a.txt", "/app/"), plain()),
        ("copy/a.txt-elsewhere", copy_case("a.txt", "/opt/"), plain()),
        ("copy/src", copy_case("src", "/app/"), plain()),
        ("copy/wildcard", copy_case("*.txt", "/app/"), plain()),
        (
            "copy/chown",
            file_op(
                vec![FileAction::Copy(CopyAction {
                    owner: Some(Owner {
                        user: "1000".into(),
                        group: "1000".into(),
                    }),
                    ..copy("a.txt", "/app/")
                })],
                vec![img, ctx],
            ),
            plain(),
        ),
        (
            "copy/chmod",
            file_op(
                vec![FileAction::Copy(CopyAction {
                    mode: Some("0755".into()),
                    ..copy("a.txt", "/app/")
                })],
                vec![img, ctx],
            ),
            plain(),
        ),
        (
            "mkdir",
            file_op(
                vec![FileAction::Mkdir {
                    path: "/app".into(),
                    mode: 0o755,
                    make_parents: true,
                    owner: None,
                }],
                vec![img],
            ),
            plain(),
        ),
        (
            "mkfile",
            file_op(
                vec![FileAction::Mkfile {
                    path: "/app/x".into(),
                    mode: 0o644,
                    data: "hello\n".into(),
                    owner: None,
                }],
                vec![img],
            ),
            plain(),
        ),
        (
            "rm",
            file_op(
                vec![FileAction::Rm {
                    path: "/app/x".into(),
                    allow_not_found: false,
                }],
                vec![img],
            ),
            plain(),
        ),
    ]);
    out
}

/// `name op=<vertex digest> key=<cache key>` for every case, with the
/// context as `files`.
fn table(files: &[(&str, &str)]) -> Vec<(String, Digest, Digest)> {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = context(tmp.path(), files);
    let mut def = Definition::new();
    let source = |reference: &str| {
        Op::Source(SourceOp::Image {
            reference: reference.into(),
            platform: None,
        })
    };
    let image = def.push(source("example.com/base:1"), OpMetadata::default());
    let other_image = def.push(source("example.com/other:1"), OpMetadata::default());
    let context = def.push(
        Op::Source(SourceOp::Local {
            name: "context".into(),
            include: vec![],
            exclude: vec![],
        }),
        OpMetadata::default(),
    );
    let solved_image = Solved::from_layers(vec![layer("base-1"), layer("base-2")]);
    let solved_other = Solved::from_layers(vec![layer("base-1"), layer("other-2")]);
    let nodes = Inputs {
        image,
        other_image,
        context,
    };
    let mut out = Vec::new();
    for (name, op, meta) in cases(&nodes) {
        let inputs: Vec<Solved> = op
            .inputs()
            .iter()
            .map(|input| match input.node {
                n if n == image => solved_image.clone(),
                n if n == other_image => solved_other.clone(),
                _ => ctx.clone(),
            })
            .collect();
        let node = def.push(op, meta);
        let dag = Dag::new(&def, &[node]).unwrap();
        let vertex = dag.vertex(dag.roots()[0]);
        let key = cache_key(vertex, &inputs, None).unwrap();
        out.push((name.to_string(), vertex.digest(), key));
    }
    out
}

const FILES: &[(&str, &str)] = &[
    ("a.txt", "a\n"),
    ("b.txt", "b\n"),
    ("src/main.c", "int main(void) { return 0; }\n"),
];

fn render(rows: &[(String, Digest, Digest)]) -> String {
    let mut out = String::from(
        "# Cache keys of solve/key.rs over fixed inputs (see solve/key/golden.rs).\n\
         # name  op=<vertex digest>  key=<cache key>; UPDATE_GOLDEN=1 rewrites.\n",
    );
    for (name, op, key) in rows {
        out.push_str(&format!("{name:<22} op={} key={}\n", op.hex(), key.hex()));
    }
    out
}

fn key_of<'a>(rows: &'a [(String, Digest, Digest)], name: &str) -> &'a Digest {
    &rows.iter().find(|r| r.0 == name).expect(name).2
}

#[test]
fn cache_keys_match_the_golden_file() {
    let rows = table(FILES);
    let text = render(&rows);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    // A test-only environment read: the golden-file convention of the
    // parser tests (`UPDATE_GOLDEN=1` rewrites the file).
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &text).unwrap();
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        text, want,
        "cache keys changed: review, then UPDATE_GOLDEN=1"
    );
}

#[test]
fn metadata_is_not_part_of_a_key_and_every_field_of_the_op_is() {
    let rows = table(FILES);
    assert_eq!(key_of(&rows, "run"), key_of(&rows, "run/other-description"));
    let mut keys: Vec<&Digest> = rows
        .iter()
        .filter(|r| r.0 != "run/other-description")
        .map(|r| &r.2)
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "two different ops share a key");
}

#[test]
fn a_copy_is_keyed_on_the_context_files_it_selects_only() {
    let before = table(FILES);
    let mut edited = FILES.to_vec();
    edited[1] = ("b.txt", "b changed\n");
    let after = table(&edited);
    for name in ["copy/a.txt", "copy/src", "run"] {
        assert_eq!(key_of(&before, name), key_of(&after, name), "{name}");
    }
    for name in ["copy/wildcard", "run/bind-context"] {
        assert_ne!(key_of(&before, name), key_of(&after, name), "{name}");
    }
}
