//! [`Dag::dump`]: the stable text form of a plan (`rbk debug plan`, golden
//! `dag.txt` files).
//!
//! ```text
//! v0 1a2b3c4d5e6f source image docker.io/library/alpine:3.19
//!    stage: build
//! v1 6f5e4d3c2b1a exec [/bin/sh -c make] cwd=/src
//!    inputs: 1a2b3c4d5e6f
//!    env: PATH=/usr/bin
//!    stage: build, test
//!    desc: [build 2/2] RUN make
//! roots: 6f5e4d3c2b1a
//! levels:
//!   0: 1a2b3c4d5e6f
//!   1: 6f5e4d3c2b1a
//! ```
//!
//! One block per vertex in topological order: its index, short digest and a
//! one-line summary of its op, then indented detail lines only when they have
//! something to say. Times, paths of the machine and hash-map order never
//! appear, so the text only changes when the plan does.

use std::fmt::Write as _;

use crate::dag::{Dag, DagVertex};
use crate::op::{
    CacheSharing, CopyAction, ExecOp, FileAction, FileOp, MountKind, NetworkMode, Op, Owner,
    SecurityMode, SourceOp,
};

impl Dag {
    /// The plan as stable, readable text (see the module docs of `dump`).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for v in self.vertices() {
            dump_vertex(self, v, &mut out);
        }
        let roots: Vec<String> = self.roots().iter().map(|&r| self.short(r)).collect();
        let _ = writeln!(out, "roots: {}", roots.join(" "));
        out.push_str("levels:\n");
        for (i, level) in self.levels().iter().enumerate() {
            let names: Vec<String> = level.iter().map(|&v| self.short(v)).collect();
            let _ = writeln!(out, "  {i}: {}", names.join(" "));
        }
        out
    }

    /// A one-line summary of the op of the vertex at `index`, as in the
    /// dump (`exec [/bin/sh -c make] cwd=/src`).
    ///
    /// # Panics
    /// When `index >= self.len()`.
    pub fn summary(&self, index: usize) -> String {
        summary(self, self.vertex(index))
    }

    fn short(&self, index: usize) -> String {
        self.vertex(index).digest().short()
    }
}

fn dump_vertex(dag: &Dag, v: &DagVertex, out: &mut String) {
    let _ = writeln!(
        out,
        "v{} {} {}",
        v.index(),
        v.digest().short(),
        summary(dag, v)
    );
    if !v.inputs().is_empty() {
        let inputs: Vec<String> = v.inputs().iter().map(|&i| dag.short(i)).collect();
        let _ = writeln!(out, "   inputs: {}", inputs.join(" "));
    }
    if let Op::Exec(exec) = v.op() {
        if !exec.env.is_empty() {
            let _ = writeln!(out, "   env: {}", words(&exec.env));
        }
        for mount in &exec.mounts {
            let _ = writeln!(
                out,
                "   mount: {}",
                mount_summary(dag, v, &mount.kind, &mount.target)
            );
        }
    }
    if !v.stages().is_empty() {
        let _ = writeln!(out, "   stage: {}", v.stages().join(", "));
    }
    if !v.meta().description.is_empty() {
        let _ = writeln!(out, "   desc: {}", v.meta().description);
    }
}

/// A one-line summary of a vertex's op.
fn summary(dag: &Dag, v: &DagVertex) -> String {
    match v.op() {
        Op::Source(source) => source_summary(source),
        Op::Exec(exec) => exec_summary(exec),
        Op::File(file) => file_summary(dag, v, file),
        Op::Merge(merge) => format!("merge {} inputs", merge.inputs.len()),
    }
}

fn source_summary(source: &SourceOp) -> String {
    match source {
        SourceOp::Scratch => "source scratch".to_string(),
        SourceOp::Image {
            reference,
            platform,
        } => {
            let mut s = format!("source image {reference}");
            if let Some(p) = platform {
                let _ = write!(s, " platform={}/{}", p.os, p.architecture);
                if !p.variant.is_empty() {
                    let _ = write!(s, "/{}", p.variant);
                }
            }
            s
        }
        SourceOp::Local {
            name,
            include,
            exclude,
        } => {
            let mut s = format!("source local {name}");
            if !include.is_empty() {
                let _ = write!(s, " include=[{}]", words(include));
            }
            if !exclude.is_empty() {
                let _ = write!(s, " exclude=[{}]", words(exclude));
            }
            s
        }
        SourceOp::Git {
            remote,
            reference,
            subdir,
            keep_git_dir,
        } => {
            let mut s = format!("source git {remote}#{reference}");
            if !subdir.is_empty() {
                let _ = write!(s, ":{subdir}");
            }
            if *keep_git_dir {
                s.push_str(" keep-git-dir");
            }
            s
        }
        SourceOp::Http {
            url,
            checksum,
            filename,
        } => {
            let mut s = format!("source http {url} filename={}", word(filename));
            if let Some(sum) = checksum {
                let _ = write!(s, " checksum={sum}");
            }
            s
        }
    }
}

fn exec_summary(exec: &ExecOp) -> String {
    let mut s = format!("exec [{}] cwd={}", words(&exec.args), word(&exec.cwd));
    if !exec.user.is_empty() {
        let _ = write!(s, " user={}", word(&exec.user));
    }
    match exec.network {
        NetworkMode::Default => {}
        NetworkMode::None => s.push_str(" network=none"),
        NetworkMode::Host => s.push_str(" network=host"),
    }
    if exec.security == SecurityMode::Insecure {
        s.push_str(" security=insecure");
    }
    s
}

fn mount_summary(dag: &Dag, v: &DagVertex, kind: &MountKind, target: &str) -> String {
    let input = |i: &Option<u32>| match i {
        Some(i) => input_name(dag, v, *i),
        None => "context".to_string(),
    };
    match kind {
        MountKind::Bind {
            input: i,
            source,
            readwrite,
        } => {
            let rw = if *readwrite { " rw" } else { "" };
            format!("bind {}:{} -> {}{rw}", input(i), word(source), word(target))
        }
        MountKind::Cache { .. } => cache_summary(dag, v, kind, target),
        MountKind::Tmpfs { size } => format!("tmpfs -> {} size={size}", word(target)),
        MountKind::Secret {
            id,
            required,
            mode,
            uid,
            gid,
            env,
        } => {
            let mut s = format!("secret id={} -> {}", word(id), word(target));
            if let Some(env) = env {
                let _ = write!(s, " env={env}");
            }
            if *required {
                s.push_str(" required");
            }
            let _ = write!(s, " mode={mode:04o} uid={uid} gid={gid}");
            s
        }
        MountKind::Ssh {
            id,
            required,
            mode,
            uid,
            gid,
        } => {
            let req = if *required { " required" } else { "" };
            format!(
                "ssh id={} -> {}{req} mode={mode:04o} uid={uid} gid={gid}",
                word(id),
                word(target)
            )
        }
    }
}

fn cache_summary(dag: &Dag, v: &DagVertex, kind: &MountKind, target: &str) -> String {
    let MountKind::Cache {
        id,
        sharing,
        input,
        source,
        readonly,
        mode,
        uid,
        gid,
    } = kind
    else {
        return String::new();
    };
    let mut s = format!("cache id={} -> {}", word(id), word(target));
    match sharing {
        CacheSharing::Shared => {}
        CacheSharing::Private => s.push_str(" sharing=private"),
        CacheSharing::Locked => s.push_str(" sharing=locked"),
    }
    if let Some(i) = input {
        let _ = write!(s, " from={}:{}", input_name(dag, v, *i), word(source));
    }
    if *readonly {
        s.push_str(" ro");
    }
    let _ = write!(s, " mode={mode:04o} uid={uid} gid={gid}");
    s
}

fn file_summary(dag: &Dag, v: &DagVertex, file: &FileOp) -> String {
    let mut s = String::from("file");
    if file.base.is_none() {
        s.push_str(" (on scratch)");
    }
    let actions: Vec<String> = file
        .actions
        .iter()
        .map(|a| action_summary(dag, v, a))
        .collect();
    let _ = write!(s, " {}", actions.join("; "));
    s
}

fn action_summary(dag: &Dag, v: &DagVertex, action: &FileAction) -> String {
    match action {
        FileAction::Copy(copy) => copy_summary(dag, v, copy),
        FileAction::Mkdir {
            path,
            mode,
            make_parents,
            owner,
        } => {
            let p = if *make_parents { " -p" } else { "" };
            format!("mkdir {} mode={mode:04o}{p}{}", word(path), chown(owner))
        }
        FileAction::Mkfile {
            path,
            mode,
            data,
            owner,
        } => format!(
            "mkfile {} mode={mode:04o} ({} bytes){}",
            word(path),
            data.len(),
            chown(owner)
        ),
        FileAction::Rm {
            path,
            allow_not_found,
        } => {
            let a = if *allow_not_found {
                " allow-not-found"
            } else {
                ""
            };
            format!("rm {}{a}", word(path))
        }
    }
}

fn copy_summary(dag: &Dag, v: &DagVertex, c: &CopyAction) -> String {
    let mut s = format!(
        "copy {}:{} -> {}{}",
        input_name(dag, v, c.from),
        word(&c.src),
        word(&c.dest),
        chown(&c.owner)
    );
    if let Some(mode) = &c.mode {
        let _ = write!(s, " chmod={mode}");
    }
    // Flags are shown where they differ from what a plain COPY sets.
    let flags = [
        (!c.follow_symlinks, "no-follow-symlinks"),
        (!c.dir_contents_only, "copy-dir-itself"),
        (!c.allow_wildcard, "no-wildcard"),
        (!c.allow_empty_wildcard, "no-empty-wildcard"),
        (!c.create_dest_path, "no-create-dest"),
        (c.auto_extract, "auto-extract"),
        (c.parents, "parents"),
    ];
    for (_, flag) in flags.iter().filter(|(on, _)| *on) {
        let _ = write!(s, " {flag}");
    }
    if !c.exclude.is_empty() {
        let _ = write!(s, " exclude=[{}]", words(&c.exclude));
    }
    s
}

/// How a file or mount input is named: the local source's name (`context`)
/// when it is one, else the input vertex's short digest.
fn input_name(dag: &Dag, v: &DagVertex, input: u32) -> String {
    let Some(&index) = v.inputs().get(input as usize) else {
        return format!("input#{input}");
    };
    let source = dag.vertex(index);
    match source.op() {
        Op::Source(SourceOp::Local { name, .. }) => name.clone(),
        _ => source.digest().short(),
    }
}

fn chown(owner: &Option<Owner>) -> String {
    match owner {
        Some(Owner { user, group }) if group.is_empty() => format!(" chown={user}"),
        Some(Owner { user, group }) => format!(" chown={user}:{group}"),
        None => String::new(),
    }
}

/// A word, quoted when it is empty or has whitespace or quotes in it.
fn word(s: &str) -> String {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("{s:?}")
    } else {
        s.to_string()
    }
}

fn words(list: &[String]) -> String {
    list.iter().map(|s| word(s)).collect::<Vec<_>>().join(" ")
}
