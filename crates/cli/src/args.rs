//! Command-line definitions (clap derive types only; no logic).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod global;
pub(crate) use global::{GlobalArgs, SnapshotterArg};

/// rbk — a daemonless container image builder.
#[derive(Debug, Parser)]
#[command(name = "rbk", version, about, disable_help_subcommand = true)]
pub(crate) struct Cli {
    /// The flags every command takes.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once per process: the size of the build variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Dockerfile (`rbk build ls`, `rbk build
    /// timeline`: past builds).
    #[command(args_conflicts_with_subcommands = true)]
    Build(BuildArgs),
    /// Inspect rbk's internals (parse tree, word expansion, build plan).
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Create an image from a rootfs tarball.
    Import(ImportArgs),
    /// Load images from a docker-archive or OCI archive.
    Load(LoadArgs),
    /// Save images to a docker-archive (or OCI archive).
    Save(SaveArgs),
    /// List images.
    Images(ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Manage the store (disk usage, consistency check).
    #[command(subcommand)]
    System(SystemCommand),
    /// Remove build cache, unused blobs and snapshots, and leftovers.
    Prune(PruneArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Log in to a registry (credentials go to the docker config.json).
    Login(LoginArgs),
    /// Run a command in a new container (in the foreground).
    Run(RunArgs),
    /// List containers.
    Ps(PsArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// List the files a container changed (A added, C changed, D deleted).
    Diff(ContainerArg),
    /// Make an image of a container's changes.
    Commit(CommitArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Show what each layer adds, changes and removes, and the bytes wasted.
    Analyze(AnalyzeArgs),
    /// Fetch the output of a container.
    Logs(LogsArgs),
    /// Stop running containers (the stop signal, then SIGKILL).
    Stop(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Start stopped containers.
    Start(StartArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(ContainersArg),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Write a container's file system as a tar archive.
    Export(ExportArgs),
    /// Copy files between a container and the host (`CONTAINER:PATH`,
    /// `-` for a tar stream on stdin or stdout).
    Cp(CpArgs),
    /// Manage named volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage containers (`rbk container prune`).
    #[command(subcommand)]
    Container(ContainerCommand),
    /// The per-container monitor of a detached container (internal).
    #[command(hide = true, name = "container-monitor")]
    ContainerMonitor(MonitorArgs),
}

/// `rbk pull`.
#[derive(Debug, clap::Args)]
pub(crate) struct PullArgs {
    /// The platform to pull from a multi-platform image (`os/arch[/variant]`);
    /// several, comma-separated, keep an index of them.
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// Pull every platform of a multi-platform image, kept as an index.
    #[arg(short = 'a', long, conflicts_with = "platform")]
    pub(crate) all_platforms: bool,
    /// The image, e.g. `registry:5000/app:1` or `app@sha256:…`.
    pub(crate) image: String,
}

/// `rbk push`.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// How layers are compressed on the way out.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub(crate) compression: CompressionArg,
    /// The image (its name says where it goes).
    pub(crate) image: String,
}

/// `rbk login`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// User name.
    #[arg(short, long)]
    pub(crate) username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub(crate) password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// The registry, e.g. `registry:5000` (default Docker Hub).
    pub(crate) server: Option<String>,
}

/// `rbk logout`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// The registry (default Docker Hub).
    pub(crate) server: Option<String>,
}

/// `rbk rmi`.
#[derive(Debug, clap::Args)]
pub(crate) struct RmiArgs {
    /// Remove an image referenced in several repositories by its id.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Image names or ids.
    #[arg(required = true)]
    pub(crate) images: Vec<String>,
}

/// `rbk inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// Format the output with a Go template (`{{.Id}}`, `{{json .Config}}`).
    #[arg(short, long)]
    pub(crate) format: Option<String>,
    /// Print the in-toto statements (SBOM, provenance) attached to the
    /// images instead.
    #[arg(long)]
    pub(crate) attestations: bool,
    /// Of a multi-platform image, inspect this platform's image.
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// Only look for `container`s or `image`s (default: containers, then
    /// images, as docker).
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) kind: Option<String>,
    /// Image or container names or ids.
    #[arg(required = true)]
    pub(crate) images: Vec<String>,
}

/// `rbk history`.
#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    pub(crate) no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Format the output with a Go template (`{{.ID}}: {{.CreatedBy}}`).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// The image name or id.
    pub(crate) image: String,
}

/// `rbk system …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SystemCommand {
    /// Show disk usage.
    Df {
        /// Show detailed information on space usage.
        #[arg(short, long)]
        verbose: bool,
        /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Re-hash every blob and check every image and snapshot against its
    /// layer; repairs snapshots only with --repair, never blobs.
    Verify {
        /// Skip snapshot contents (re-unpacking layers, re-packing built
        /// ones): blobs, documents and names only.
        #[arg(long, conflicts_with = "repair")]
        quick: bool,
        /// Replace snapshots that no longer match their layer by a fresh,
        /// verified unpack of the layer blob.
        #[arg(long)]
        repair: bool,
    },
    /// Delete the store's trash (what GC moved aside) until it is empty;
    /// started in the background by the commands that fill it.
    #[command(hide = true)]
    EmptyTrash,
}

/// `rbk prune`.
#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    /// Remove all build cache, not just the dangling records.
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub(crate) force: bool,
}

/// `rbk import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The rootfs tarball (plain, gzip or zstd); `-` reads standard input.
    pub(crate) tarball: PathBuf,
    /// The name to give the image, `NAME[:TAG]`.
    pub(crate) reference: String,
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT,
    /// ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub(crate) changes: Vec<String>,
    /// A commit message recorded in the image history.
    #[arg(short, long)]
    pub(crate) message: Option<String>,
}

/// `rbk load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// Read from this archive instead of standard input.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

/// `rbk save`.
#[derive(Debug, clap::Args)]
pub(crate) struct SaveArgs {
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The archive format.
    #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
    pub(crate) format: SaveFormat,
    /// The images to save.
    #[arg(required = true)]
    pub(crate) images: Vec<String>,
}

/// Archive formats for `rbk save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SaveFormat {
    /// docker-archive, readable by `docker load` (and as an OCI archive).
    Docker,
    /// OCI image layout archive.
    Oci,
}

/// `rbk images`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImagesArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub(crate) digests: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub(crate) no_trunc: bool,
    /// Show all images (rbk keeps no intermediate images: the same list).
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Filter the list (`dangling=true`, `reference=PATTERN`, `label=K[=V]`,
    /// `before=IMAGE`, `since=IMAGE`).
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub(crate) filters: Vec<String>,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template.
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Only images of this repository (`NAME[:TAG]`).
    pub(crate) repository: Option<String>,
}

/// `rbk tag`.
#[derive(Debug, clap::Args)]
pub(crate) struct TagArgs {
    /// The existing image.
    pub(crate) source: String,
    /// The new name.
    pub(crate) target: String,
}

/// The Dockerfile and build options shared by `build` and `debug plan`.
#[derive(Clone, Debug, Args)]
pub(crate) struct FrontendArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Option<PathBuf>,
    /// Build up to this stage.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub(crate) build_args: Vec<String>,
    /// Target platform (`os/arch[/variant]`).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// The build context directory (`-`: a tar archive, plain or compressed,
    /// or a lone Dockerfile, on stdin).
    #[arg(default_value = ".")]
    pub(crate) context: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Past builds instead of a new one (a context directory named like
    /// one of these is given as `./ls`).
    #[command(subcommand)]
    pub(crate) records: Option<BuildRecordsCommand>,
    #[command(flatten)]
    pub(crate) frontend: FrontendArgs,
    /// Print, for every step that was not cached, the first input that
    /// differs from the previous build of this Dockerfile and target.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Write a timeline of the build: `FILE.html` (a page with a Gantt
    /// chart) or `FILE.json` (Chrome trace events, for Perfetto).
    #[arg(long, value_name = "FILE")]
    pub(crate) timeline: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) supply: SupplyChainArgs,
    /// Name and optionally a tag (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Do not use the build cache.
    #[arg(long = "no-cache")]
    pub(crate) no_cache: bool,
    /// Do not use the build cache for these stages (may be repeated).
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub(crate) no_cache_filter: Vec<String>,
    /// Progress output: `auto` (tty when stderr is a terminal, else plain),
    /// `tty`, `plain`, `quiet`, `rawjson` (BuildKit's status stream as JSON
    /// lines) or `none`. Default: `$BUILDKIT_PROGRESS`, else `auto`.
    #[arg(long, value_enum)]
    pub(crate) progress: Option<ProgressMode>,
    /// Print only the image id on success.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,
    /// Extra outputs: `type=docker|oci|tar,dest=FILE` or `type=local,dest=DIR`
    /// (also a bare `DIR`, meaning type=local).
    #[arg(short, long = "output", value_name = "SPEC")]
    pub(crate) outputs: Vec<String>,
    /// Set metadata on the image (`KEY=VALUE`; may be repeated).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
    /// Grant an entitlement: `network.host` or `security.insecure`.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub(crate) allow: Vec<String>,
    /// Fail instead of warning where rbk would build differently from what
    /// the Dockerfile asks (a `# syntax=` frontend rbk cannot run).
    #[arg(long)]
    pub(crate) strict: bool,
    /// Compression of layers leaving the store through `--output`.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub(crate) compression: CompressionArg,
    /// Import build cache: `type=local,src=DIR` or `type=registry,ref=REF`
    /// (may be repeated).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub(crate) cache_from: Vec<String>,
    /// Export build cache: `type=local,dest=DIR` or `type=registry,ref=REF`,
    /// with `mode=min|max` (may be repeated).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub(crate) cache_to: Vec<String>,
    /// Push the tagged image to its registry (like `--output type=registry`).
    #[arg(long)]
    pub(crate) push: bool,
    /// Always check the registry for a newer base image.
    #[arg(long)]
    pub(crate) pull: bool,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or
    /// `id=ID,env=VAR` (may be repeated).
    #[arg(long = "secret", value_name = "SPEC")]
    pub(crate) secrets: Vec<String>,
    /// An extra named context: `NAME=DIR`, `NAME=docker-image://REF` or
    /// `NAME=<git url>` (may be repeated); `FROM NAME`, `COPY --from=NAME`
    /// and `RUN --mount=from=NAME` use it before any stage or image.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,
    /// An SSH agent for `RUN --mount=type=ssh`: `default` (`$SSH_AUTH_SOCK`)
    /// or `ID=SOCKET` (may be repeated).
    #[arg(long = "ssh", value_name = "SPEC")]
    pub(crate) ssh: Vec<String>,
    /// What to do when a RUN step fails: `fail`, or `shell` (on a terminal,
    /// a shell in the failed step's state before failing).
    #[arg(long = "on-error", value_enum, default_value_t = OnError::Fail)]
    pub(crate) on_error: OnError,
}

/// `rbk build ls|timeline`.
#[derive(Debug, Subcommand)]
pub(crate) enum BuildRecordsCommand {
    /// List past builds: id, start time, target, result, duration.
    Ls(BuildLsArgs),
    /// Write the timeline picture of a past build (default: the last).
    Timeline(TimelineArgs),
}

/// `rbk build ls`.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildLsArgs {
    /// `table` (default) or `json` (the records, one a line).
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
}

/// `rbk build timeline`.
#[derive(Debug, clap::Args)]
pub(crate) struct TimelineArgs {
    /// `FILE.html`, or `FILE.json` for Chrome trace events.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// The build (its id or a prefix of it; default: the last one).
    pub(crate) build: Option<String>,
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// `tty` on a terminal, else `plain`.
    Auto,
    /// A live view.
    Tty,
    /// Log lines, for CI.
    Plain,
    /// Nothing but errors.
    Quiet,
    /// BuildKit's `SolveStatus` stream, one JSON object a line.
    Rawjson,
    /// Nothing but errors (as buildx's `none`).
    None,
}

/// `--compression`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CompressionArg {
    /// gzip (the default, what every client reads).
    Gzip,
    /// zstd (faster; needs a recent client).
    Zstd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Print a Dockerfile's parse tree as BuildKit's parser dump does.
    Ast {
        /// The Dockerfile.
        file: PathBuf,
    },
    /// Expand a word with the Dockerfile's shell-like rules.
    Expand {
        /// A variable, `KEY=VALUE`; may be repeated.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Split into words (as RUN's exec form and FROM do) and print one per line.
        #[arg(long)]
        words: bool,
        /// The escape character (`\` or `` ` ``).
        #[arg(long, default_value_t = '\\')]
        escape: char,
        /// The word to expand.
        #[arg(allow_hyphen_values = true)]
        word: String,
    },
    /// Print the pruned build graph with digests and the schedule.
    Plan(FrontendArgs),
    /// Open a shell in the state a failed RUN step left (its file system,
    /// mounts, environment, working directory and user); without DIGEST,
    /// list the failed steps kept (until `rbk prune`).
    Step(DebugStepArgs),
}

/// `rbk debug step`.
#[derive(Debug, clap::Args)]
pub(crate) struct DebugStepArgs {
    /// The failed step's digest (or a unique prefix of its hex).
    pub(crate) digest: Option<String>,
    /// What to run instead of `/bin/sh`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// `rbk build --on-error`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OnError {
    /// Fail (the default).
    #[default]
    Fail,
    /// On a terminal, open a shell in the failed RUN step's state (as
    /// `rbk debug step` does), then fail.
    Shell,
}

/// `rbk run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub(crate) rm: bool,
    /// Run in the background (a monitor process holds the container's
    /// output and records its exit); print the container id.
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Keep stdin open: the container reads this process's stdin.
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Give the process a pseudo-terminal.
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Bind a host path or a named volume: `HOST:CTR[:ro|rw]`, `NAME:CTR`,
    /// or `CTR` alone (an anonymous volume).
    #[arg(short, long = "volume", value_name = "SPEC")]
    pub(crate) volumes: Vec<String>,
    /// `type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=N]`.
    #[arg(long = "mount", value_name = "SPEC")]
    pub(crate) mounts: Vec<String>,
    /// Mount the container's root file system read-only.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Add a Linux capability (`NET_ADMIN`, `CAP_SYS_TIME`, `ALL`).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub(crate) cap_add: Vec<String>,
    /// Drop a Linux capability (`CHOWN`, `ALL`).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub(crate) cap_drop: Vec<String>,
    /// Every capability, no masked paths, every device (as docker).
    #[arg(long)]
    pub(crate) privileged: bool,
    /// Run an init (the host's tini) as pid 1 that reaps zombies and
    /// forwards signals.
    #[arg(long)]
    pub(crate) init: bool,
    /// Pull the image: `missing` (default), `always` or `never`.
    #[arg(long, default_value = "missing", value_name = "POLICY")]
    pub(crate) pull: String,
    /// Read environment variables from a file (`KEY=VALUE` lines).
    #[arg(long = "env-file", value_name = "FILE")]
    pub(crate) env_files: Vec<PathBuf>,
    /// The platform to pull (`os/arch[/variant]`).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// The container's name (default: made up).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` from this environment).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub(crate) env: Vec<String>,
    /// The working directory inside the container.
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// The user (`name|uid[:group|gid]`).
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// Override the image's entrypoint (`''` clears it).
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// `none` (loopback only) or `host` (the default: rbk has no bridge).
    #[arg(long, default_value = "host")]
    pub(crate) network: String,
    /// The container's hostname (default: the first 12 hex of its id).
    #[arg(long)]
    pub(crate) hostname: Option<String>,
    /// The image.
    pub(crate) image: String,
    /// The command and its arguments (default: the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// `rbk ps`.
#[derive(Debug, clap::Args)]
pub(crate) struct PsArgs {
    /// Show all containers (rbk's run in the foreground, so every listed
    /// one has exited; kept for docker's muscle memory).
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Only the ids.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Format the output with a Go template (`{{.ID}}`, `{{.Status}}`,
    /// `table …`, `json`).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Do not shorten ids and commands.
    #[arg(long)]
    pub(crate) no_trunc: bool,
}

/// `rbk rm`.
#[derive(Debug, clap::Args)]
pub(crate) struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Accepted for docker compatibility (rbk has no anonymous volumes).
    #[arg(short, long)]
    pub(crate) volumes: bool,
    /// Container names or ids.
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

/// A command taking one container.
#[derive(Debug, clap::Args)]
pub(crate) struct ContainerArg {
    /// The container's name or id.
    pub(crate) container: String,
}

/// `rbk commit`.
#[derive(Debug, clap::Args)]
pub(crate) struct CommitArgs {
    /// A commit message, recorded in the history entry.
    #[arg(short, long)]
    pub(crate) message: Option<String>,
    /// The author.
    #[arg(short, long)]
    pub(crate) author: Option<String>,
    /// Apply a Dockerfile instruction to the image config (as `import -c`).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub(crate) changes: Vec<String>,
    /// Freeze a running container while its layer is packed
    /// (`--pause=false` packs it running).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub(crate) pause: bool,
    /// The container's name or id.
    pub(crate) container: String,
    /// The new image's name, `REPO[:TAG]` (default: untagged).
    pub(crate) reference: Option<String>,
}

/// `rbk build` flags for CI pipelines: checks, metadata, annotations.
#[derive(Debug, Args)]
pub(crate) struct SupplyChainArgs {
    /// Run the build checks only (`--call=check`): no step runs.
    #[arg(long)]
    pub(crate) check: bool,
    /// What to do with the Dockerfile: `build` (default) or
    /// `check[,format=json]`.
    #[arg(long, value_name = "METHOD")]
    pub(crate) call: Option<String>,
    /// Write the build result metadata (buildx's keys) to FILE.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Add an annotation: `[TYPE[,TYPE…][\[PLATFORM\]]:]KEY=VALUE`, TYPE
    /// one of manifest, index, manifest-descriptor, index-descriptor.
    #[arg(long = "annotation", value_name = "ANNOTATION")]
    pub(crate) annotations: Vec<String>,
    /// Attach an SBOM attestation (`true`, `false`, or `key=value,…`).
    #[arg(long, value_name = "VALUE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) sbom: Option<String>,
    /// Attach a SLSA provenance attestation (`true`, `false`,
    /// `mode=min|max`).
    #[arg(long, value_name = "VALUE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) provenance: Option<String>,
    /// An attestation: `type=sbom` or `type=provenance[,mode=min|max]`.
    #[arg(long = "attest", value_name = "SPEC")]
    pub(crate) attest: Vec<String>,
}

/// `rbk analyze`.
#[derive(Debug, clap::Args)]
pub(crate) struct AnalyzeArgs {
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text")]
    pub(crate) format: String,
    /// Also write a self-contained HTML page (layer size chart, file tree).
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
    /// How many of the most wasteful paths to list.
    #[arg(long, default_value_t = 10)]
    pub(crate) top: usize,
    /// The image (name or id).
    pub(crate) image: String,
}

/// Commands taking containers.
#[derive(Debug, clap::Args)]
pub(crate) struct ContainersArg {
    /// Container names or ids.
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

/// `rbk logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// A build's step logs instead of a container's: `--build [BUILD_ID]
    /// [STEP]` (default: the last build; STEP is `#n`, a digest prefix or
    /// part of the step's name; without STEP, every step).
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "BUILD_ID")]
    pub(crate) build: Option<String>,
    /// Follow the output until the container stops.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Only the last N lines (`all` for every one).
    #[arg(short = 'n', long, default_value = "all")]
    pub(crate) tail: String,
    /// Prefix each line with its time (RFC 3339 with nanoseconds).
    #[arg(short, long)]
    pub(crate) timestamps: bool,
    /// The container's name or id (with `--build`: the step).
    #[arg(required_unless_present = "build")]
    pub(crate) container: Option<String>,
}

/// `rbk stop`.
#[derive(Debug, clap::Args)]
pub(crate) struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub(crate) time: u64,
    /// The signal to send first (default: the image's StopSignal, SIGTERM).
    #[arg(short, long)]
    pub(crate) signal: Option<String>,
    /// Container names or ids.
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

/// `rbk kill`.
#[derive(Debug, clap::Args)]
pub(crate) struct KillArgs {
    /// The signal (`KILL`, `SIGTERM`, `9`…).
    #[arg(short, long, default_value = "KILL")]
    pub(crate) signal: String,
    /// Container names or ids.
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

/// `rbk start`.
#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    /// Attach to the output and wait; exit with the container's code.
    #[arg(short, long)]
    pub(crate) attach: bool,
    /// Container names or ids.
    #[arg(required = true)]
    pub(crate) containers: Vec<String>,
}

/// `rbk exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    pub(crate) interactive: bool,
    /// Give the process a pseudo-terminal.
    #[arg(short, long)]
    pub(crate) tty: bool,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` from this environment).
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub(crate) env: Vec<String>,
    /// The user (`name|uid[:group|gid]`).
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// The working directory.
    #[arg(short, long = "workdir", value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// Start the command and return (its output is discarded).
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// The container's name or id.
    pub(crate) container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// `rbk container-monitor` (internal).
#[derive(Debug, clap::Args)]
pub(crate) struct MonitorArgs {
    /// The container id.
    pub(crate) id: String,
}

/// `rbk container …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ContainerCommand {
    /// Remove every stopped container.
    Prune {
        /// Do not ask (rbk never asks; accepted for docker's scripts).
        #[arg(short, long)]
        force: bool,
    },
}

/// `rbk volume …`.
#[derive(Debug, Subcommand)]
pub(crate) enum VolumeCommand {
    /// Create a volume (a name is made up when none is given).
    Create {
        /// The name: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volumes as JSON (docker's shape).
    Inspect {
        /// The volumes.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    #[command(alias = "remove")]
    Rm {
        /// Remove them even if containers use them.
        #[arg(short, long)]
        force: bool,
        /// The volumes.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses.
    Prune {
        /// Do not ask (rbk never asks; accepted for docker's scripts).
        #[arg(short, long)]
        force: bool,
        /// Named volumes too (docker's default removes only anonymous ones;
        /// rbk removes both unless they are in use).
        #[arg(short, long)]
        all: bool,
    },
}

/// `rbk cp`.
#[derive(Debug, clap::Args)]
pub(crate) struct CpArgs {
    /// Archive mode: keep the source's uid/gid (and setuid bits on the host).
    #[arg(short, long)]
    pub(crate) archive: bool,
    /// Follow a symlink named by SRC.
    #[arg(short = 'L', long)]
    pub(crate) follow_link: bool,
    /// Say nothing about what was copied.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// `CONTAINER:PATH`, a host path, or `-` (a tar on stdin).
    pub(crate) source: String,
    /// `CONTAINER:PATH`, a host path, or `-` (a tar on stdout).
    pub(crate) destination: String,
}

/// `rbk export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The container's name or id.
    pub(crate) container: String,
}
