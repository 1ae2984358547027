//! Ops: what a build vertex does, as plain data.
//!
//! Ops never touch the OS; `rbk-exec` gives them behaviour. Every field that
//! changes an op's output is part of the op (and so of its digest); labels,
//! Dockerfile spans and cache hints live in [`OpMetadata`] instead, so renaming
//! a step does not invalidate the cache. Maps are `BTreeMap` and lists keep
//! their order, so serialising an op is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Index of a vertex inside one [`crate::Definition`]. Inputs always point at
/// vertices pushed earlier, so a definition is a DAG in topological order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// One input edge: output `output` of vertex `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Input {
    /// The producing vertex.
    pub node: NodeId,
    /// Which of its outputs (ops here all have one filesystem output, `0`).
    pub output: u32,
}

impl Input {
    /// The (single) filesystem output of `node`.
    pub fn of(node: NodeId) -> Self {
        Input { node, output: 0 }
    }
}

/// What a vertex does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Produces a filesystem from outside the graph.
    Source(SourceOp),
    /// Runs a process over a root filesystem.
    Exec(ExecOp),
    /// Copies, creates or removes files.
    File(FileOp),
    /// Stacks its inputs' filesystems, later ones on top (`COPY --link`).
    Merge(MergeOp),
}

impl Op {
    /// The vertex's input edges, in order.
    pub fn inputs(&self) -> &[Input] {
        match self {
            Op::Source(_) => &[],
            Op::Exec(op) => &op.inputs,
            Op::File(op) => &op.inputs,
            Op::Merge(op) => &op.inputs,
        }
    }

    /// Mutable access to the input edges (used when vertices are renumbered).
    pub fn inputs_mut(&mut self) -> &mut [Input] {
        match self {
            Op::Source(_) => &mut [],
            Op::Exec(op) => &mut op.inputs,
            Op::File(op) => &mut op.inputs,
            Op::Merge(op) => &mut op.inputs,
        }
    }

    /// A short name of the op kind, for dumps.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source(_) => "source",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Merge(_) => "merge",
        }
    }
}

/// A target platform, as in the OCI image index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl std::fmt::Display for Platform {
    /// `os/arch[/variant]`, as `--platform` and `TARGETPLATFORM` spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// A filesystem that comes from outside the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOp {
    /// The empty filesystem (`FROM scratch`).
    Scratch,
    /// An image, by normalised reference (`docker.io/library/alpine:3.19`).
    Image {
        /// The image reference.
        reference: String,
        /// The platform to resolve an index to; `None` means the build platform.
        platform: Option<Platform>,
    },
    /// Files of a local directory handed to the build (the context).
    Local {
        /// Which local directory: `context`, or a named build context.
        name: String,
        /// Only these paths (patterns) are transferred; empty means all.
        include: Vec<String>,
        /// `.dockerignore` patterns.
        exclude: Vec<String>,
    },
    /// A git repository (`ADD https://…git#ref:subdir`).
    Git {
        /// The remote URL (userinfo redacted before it reaches any log).
        remote: String,
        /// Branch, tag or commit; empty for the default branch.
        reference: String,
        /// Subdirectory of the checkout to use; empty for the root.
        subdir: String,
        /// Keep the `.git` directory (`ADD --keep-git-dir`).
        keep_git_dir: bool,
    },
    /// A single file downloaded over HTTP(S) (`ADD https://…`).
    Http {
        /// The URL.
        url: String,
        /// The expected digest (`ADD --checksum`), if given.
        checksum: Option<String>,
        /// The file name to store it under.
        filename: String,
    },
}

/// Runs a process in a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOp {
    /// Input 0 is the root filesystem; mounts refer to further inputs by index.
    pub inputs: Vec<Input>,
    /// The process arguments (already wrapped in the stage's SHELL for shell form).
    pub args: Vec<String>,
    /// `KEY=value` pairs, in order.
    pub env: EnvList,
    /// Working directory (absolute, inside the root).
    pub cwd: String,
    /// `user[:group]` as written (name or id); empty means root.
    pub user: String,
    /// Extra mounts (`RUN --mount`).
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: NetworkMode,
    /// Security mode.
    pub security: SecurityMode,
    /// The container's hostname; empty means BuildKit's `buildkitsandbox`.
    /// (Left out of the serialised op when empty, so digests of ops that
    /// keep the default are unchanged.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}

/// The `KEY=value` pairs of an [`ExecOp`], shared between the ops that
/// have the same environment: the RUNs of a Dockerfile stage usually do,
/// and a stage's environment holds dozens of pairs, so a plan keeps one copy
/// per environment instead of one per RUN. It reads as a `[String]`,
/// serialises as the plain list (so op digests are those of a
/// `Vec<String>`), and copies on write.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvList(Arc<Vec<String>>);

impl EnvList {
    /// Appends a pair (copying the list first if it is shared).
    pub fn push(&mut self, pair: String) {
        Arc::make_mut(&mut self.0).push(pair);
    }
}

impl std::ops::Deref for EnvList {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for EnvList {
    fn from(pairs: Vec<String>) -> Self {
        EnvList(Arc::new(pairs))
    }
}

impl std::fmt::Debug for EnvList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for EnvList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // What serde does for a Vec<String>: the digests depend on it.
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for EnvList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(EnvList::from)
    }
}

/// `RUN --network`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The builder's default (see rbk-exec's docs).
    #[default]
    Default,
    /// No network but loopback.
    None,
    /// The host's network namespace (needs the `network.host` entitlement).
    Host,
}

/// `RUN --security`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// The default confinement.
    #[default]
    Sandbox,
    /// Privileged (needs the `security.insecure` entitlement).
    Insecure,
}

/// One `RUN --mount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Where it appears in the container (absolute).
    pub target: String,
    /// What is mounted.
    pub kind: MountKind,
}

/// How `RUN --mount` cache mounts are shared between concurrent builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Concurrent writers share one directory.
    #[default]
    Shared,
    /// Each concurrent user gets its own copy.
    Private,
    /// Users wait for each other.
    Locked,
}

/// The kinds of `RUN --mount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A path of another filesystem (`type=bind`).
    Bind {
        /// Index into the exec op's `inputs`; `None` is the build context
        /// when it was lowered into an input, never the host.
        input: Option<u32>,
        /// Path inside that filesystem.
        source: String,
        /// Writes are allowed (and thrown away).
        readwrite: bool,
    },
    /// A persistent cache directory (`type=cache`).
    Cache {
        /// Opaque cache id (never a path).
        id: String,
        /// Sharing mode.
        sharing: CacheSharing,
        /// Seed from this input (`from=`), by index into `inputs`.
        input: Option<u32>,
        /// Path inside the seed filesystem.
        source: String,
        /// Read-only.
        readonly: bool,
        /// Mode of the cache directory when created.
        mode: u32,
        /// Owner uid when created.
        uid: u32,
        /// Owner gid when created.
        gid: u32,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Size limit in bytes; 0 for the runtime's default.
        size: u64,
    },
    /// A secret file (`type=secret`); only the id is part of the op, never the value.
    Secret {
        /// Secret id.
        id: String,
        /// Fail when the secret is not provided.
        required: bool,
        /// File mode.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
        /// Also (or only) expose as this environment variable.
        env: Option<String>,
    },
    /// An SSH agent socket (`type=ssh`).
    Ssh {
        /// SSH id.
        id: String,
        /// Fail when the agent is not provided.
        required: bool,
        /// Socket mode.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
}

/// A sequence of file actions applied to a base filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// Filesystems the actions read from or apply to.
    pub inputs: Vec<Input>,
    /// Index into `inputs` of the filesystem the actions modify; `None` starts
    /// from an empty one (as `COPY --link` does).
    pub base: Option<u32>,
    /// Applied in order.
    pub actions: Vec<FileAction>,
}

/// `--chown` as written: names are resolved inside the destination root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// User name or numeric id.
    pub user: String,
    /// Group name or numeric id; empty means the user's primary group.
    pub group: String,
}

/// One file action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Copies `src` (may contain wildcards) from input `from` to `dest` in the base.
    Copy(CopyAction),
    /// Creates a directory.
    Mkdir {
        /// Absolute path.
        path: String,
        /// Mode bits.
        mode: u32,
        /// Create missing parents.
        make_parents: bool,
        /// Owner.
        owner: Option<Owner>,
    },
    /// Creates a file with the given contents (heredocs).
    Mkfile {
        /// Absolute path.
        path: String,
        /// Mode bits.
        mode: u32,
        /// Contents.
        data: String,
        /// Owner.
        owner: Option<Owner>,
    },
    /// Removes a path.
    Rm {
        /// Absolute path (may contain wildcards).
        path: String,
        /// Succeed when nothing matches.
        allow_not_found: bool,
    },
}

/// The copy action of `COPY` and `ADD`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyAction {
    /// Index into the file op's `inputs` of the source filesystem.
    pub from: u32,
    /// Source path inside that filesystem (may contain wildcards).
    pub src: String,
    /// Destination path, absolute; a trailing `/` means "into this directory".
    pub dest: String,
    /// `--chown`.
    pub owner: Option<Owner>,
    /// `--chmod`, as written (octal or symbolic); resolved by the executor.
    pub mode: Option<String>,
    /// Follow a symlink given as the source itself.
    pub follow_symlinks: bool,
    /// Copy a directory's contents rather than the directory.
    pub dir_contents_only: bool,
    /// Expand wildcards in `src`.
    pub allow_wildcard: bool,
    /// A wildcard that matches nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Create missing parents of `dest`.
    pub create_dest_path: bool,
    /// Unpack local tar archives (`ADD`).
    pub auto_extract: bool,
    /// Keep the source's parent directories (`COPY --parents`).
    pub parents: bool,
    /// Paths to leave out (`--exclude`).
    pub exclude: Vec<String>,
}

/// Stacks filesystems.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOp {
    /// Lowest first.
    pub inputs: Vec<Input>,
}

/// Everything about a vertex that is not part of its identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpMetadata {
    /// A progress label, such as `[build 2/4] RUN make`.
    pub description: String,
    /// The stage it belongs to, by name or index.
    pub stage: Option<String>,
    /// Where it came from in the Dockerfile.
    pub span: Option<SourceSpan>,
    /// Run even when the cache has a result (`--no-cache`, `--no-cache-filter`).
    pub ignore_cache: bool,
    /// Free-form extra labels for dumps and progress.
    pub labels: BTreeMap<String, String>,
}

/// A range of lines in a source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpan {
    /// The file (as the user named it).
    pub file: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
}
