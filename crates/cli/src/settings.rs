//! Turns command-line arguments and the environment into validated settings.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use rbk_build::Dockerfile;
use rbk_exec::{RemoteSettings, SnapshotterChoice};
use rbk_graph::Platform;
use rbk_registry::ClientOptions;
use rbk_store::Store;

use crate::args::{FrontendArgs, GlobalArgs, SnapshotterArg};

mod build;
pub(crate) mod secrets;

pub(crate) use build::build_request;

/// Settings every command shares, resolved once from the global flags and
/// the environment, then passed down (libraries read neither).
#[derive(Debug)]
pub(crate) struct GlobalSettings {
    /// `--root` or `$RBK_ROOT`, if given (else `open_store` picks the
    /// default).
    pub(crate) root: Option<PathBuf>,
    /// How registries are reached: `--insecure-registry`, `$DOCKER_CONFIG`,
    /// `$RBK_REGISTRY_PARALLEL`.
    pub(crate) registry: ClientOptions,
    /// `--runtime` or `$RBK_RUNTIME`: the OCI runtime binary (`None`:
    /// `runc` from `PATH`). An empty one counts as unset.
    pub(crate) runtime: Option<PathBuf>,
    /// `--snapshotter` or `$RBK_SNAPSHOTTER`: `overlay`, `native` (copying)
    /// or `auto` (overlay, falling back to copying where overlayfs is
    /// refused).
    pub(crate) snapshotter: SnapshotterChoice,
    /// `--jobs` or `$RBK_JOBS`: how many build steps are solved at once.
    pub(crate) jobs: usize,
    /// How remote sources are fetched: proxies from `HTTP_PROXY`,
    /// `HTTPS_PROXY`, `NO_PROXY` (or their lower-case forms), and
    /// `RBK_HTTP_TIMEOUT`/`RBK_HTTP_RETRIES`/`RBK_HTTP_MAX_SIZE`/`RBK_GIT`.
    pub(crate) remote: RemoteSettings,
}

/// Environment variable: how many blobs one pull or push moves at once
/// (default 4); `1` moves them one after another (benchmarks compare).
const PARALLEL_ENV: &str = "RBK_REGISTRY_PARALLEL";

/// Environment variables: how long (seconds, e.g. `30` or `0.5`) to wait
/// for a registry connection (default 30) and for the next bytes of a
/// response (default 60); timeouts are retried like other transient errors.
const CONNECT_TIMEOUT_ENV: &str = "RBK_REGISTRY_CONNECT_TIMEOUT";
const READ_TIMEOUT_ENV: &str = "RBK_REGISTRY_READ_TIMEOUT";

/// A positive number of seconds from the environment variable `key`.
fn seconds(key: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match std::env::var(key) {
        Ok(v) if !v.is_empty() => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map(|s| Some(std::time::Duration::from_secs_f64(s)))
            .with_context(|| format!("{key}={v:?}: expected a positive number of seconds")),
        _ => Ok(None),
    }
}

impl GlobalSettings {
    /// Resolves the global flags (clap has read the variables that stand in
    /// for flags) and the rest of the environment.
    pub(crate) fn resolve(args: GlobalArgs) -> anyhow::Result<Self> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let parallel_blobs = match std::env::var(PARALLEL_ENV) {
            Ok(v) => Some(
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{PARALLEL_ENV}={v:?}: expected a positive number"))?,
            ),
            Err(_) => None,
        };
        let connect_timeout = seconds(CONNECT_TIMEOUT_ENV)?;
        let read_timeout = seconds(READ_TIMEOUT_ENV)?;
        let home = env("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        let docker_config_dir = env("DOCKER_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".docker"));
        Ok(GlobalSettings {
            root: args.root.filter(|r| !r.as_os_str().is_empty()),
            registry: ClientOptions {
                insecure_registries: args.insecure_registries,
                docker_config_dir: Some(docker_config_dir),
                platform: None,
                parallel_blobs,
                connect_timeout,
                read_timeout,
            },
            runtime: args.runtime.filter(|r| !r.as_os_str().is_empty()),
            snapshotter: match args.snapshotter {
                SnapshotterArg::Native => SnapshotterChoice::Copy,
                SnapshotterArg::Overlay => SnapshotterChoice::Overlay,
                SnapshotterArg::Auto => SnapshotterChoice::Auto,
            },
            jobs: args.jobs.max(1),
            remote: remote_settings(|k| std::env::var(k).ok())?,
        })
    }

    /// Opens the store selected by `--root` and the environment.
    pub(crate) fn open_store(&self) -> anyhow::Result<Store> {
        open_store(self.root.as_deref())
    }

    /// Registries, as the build engine reaches them.
    pub(crate) fn registries(&self) -> rbk_build::Registries {
        rbk_build::Registries::new(self.registry.clone())
    }

    /// Where Docker's `config.json` (credentials) lives.
    pub(crate) fn docker_config_dir(&self) -> PathBuf {
        // Always set by `resolve`.
        self.registry.docker_config_dir.clone().unwrap_or_default()
    }

    /// A registry client picking `platform` (`os/arch[/variant]`) from indexes.
    pub(crate) fn client(&self, platform: Option<&str>) -> anyhow::Result<rbk_registry::Client> {
        let mut options = self.registry.clone();
        options.platform = platform.map(str::to_string);
        Ok(rbk_registry::Client::new(options)?)
    }
}

/// The remote-source settings from the environment `var` reads.
pub(crate) fn remote_settings(
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<RemoteSettings> {
    let get = |upper: &str| {
        var(upper)
            .or_else(|| var(&upper.to_ascii_lowercase()))
            .filter(|v| !v.is_empty())
    };
    let number = |name: &str| -> anyhow::Result<Option<u64>> {
        get(name)
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("{name}={v:?}: expected a whole number"))
            })
            .transpose()
    };
    let mut remote = RemoteSettings {
        http_proxy: get("HTTP_PROXY"),
        https_proxy: get("HTTPS_PROXY"),
        no_proxy: get("NO_PROXY"),
        ..RemoteSettings::default()
    };
    if let Some(secs) = number("RBK_HTTP_TIMEOUT")? {
        remote.idle_timeout = std::time::Duration::from_secs(secs.max(1));
        remote.connect_timeout = remote.idle_timeout;
    }
    if let Some(n) = number("RBK_HTTP_RETRIES")? {
        remote.retries = n.min(20) as u32;
    }
    if let Some(n) = number("RBK_HTTP_MAX_SIZE")? {
        remote.max_size = n;
    }
    if let Some(git) = get("RBK_GIT") {
        remote.git = PathBuf::from(git);
    }
    Ok(remote)
}

/// What the frontend needs: the Dockerfile and the build options.
#[derive(Debug)]
pub(crate) struct FrontendSettings {
    /// The Dockerfile.
    pub(crate) dockerfile: Dockerfile,
    /// The context directory.
    pub(crate) context: PathBuf,
    /// `--target`.
    pub(crate) target: Option<String>,
    /// `--build-arg`s, resolved.
    pub(crate) build_args: BTreeMap<String, String>,
    /// `--platform` (its first platform), or the host's.
    pub(crate) platform: Platform,
    /// Every platform `--platform` names (one: the host's, without it).
    pub(crate) platforms: Vec<Platform>,
    /// What parsing `--platform` warns about (a platform named twice).
    pub(crate) platform_warnings: Vec<String>,
}

impl FrontendSettings {
    /// Reads the Dockerfile and resolves build args.
    pub(crate) fn resolve(args: FrontendArgs) -> anyhow::Result<Self> {
        let (name, path, text) = read_dockerfile(&args)?;
        let (platforms, platform_warnings) = match &args.platform {
            Some(p) => rbk_build::parse_platforms(p, &host_platform())?,
            None => (vec![host_platform()], Vec::new()),
        };
        let platform = platforms[0].clone();
        Ok(FrontendSettings {
            dockerfile: Dockerfile { name, path, text },
            context: args.context,
            target: args.target,
            build_args: build_args(&args.build_args, |k| std::env::var(k).ok())?,
            platform,
            platforms,
            platform_warnings,
        })
    }
}

fn read_dockerfile(args: &FrontendArgs) -> anyhow::Result<(String, Option<PathBuf>, String)> {
    let path = match &args.file {
        Some(p) if p.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            return Ok(("-".to_string(), None, text));
        }
        Some(p) => p.clone(),
        None => args.context.join("Dockerfile"),
    };
    let bytes =
        std::fs::read(&path).with_context(|| format!("reading Dockerfile {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("Dockerfile {} is not valid UTF-8", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((name, Some(path), text))
}

/// `KEY=VALUE` sets a value; a bare `KEY` takes it from the environment and
/// is dropped when the environment has none, as `docker build` does.
pub(crate) fn build_args(
    raw: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for arg in raw {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (arg.as_str(), env(arg)),
        };
        if key.is_empty() {
            bail!("invalid --build-arg {arg:?}: expected KEY=VALUE");
        }
        if let Some(value) = value {
            out.insert(key.to_string(), value);
        }
    }
    Ok(out)
}

/// The platform rbk runs on, in OCI's vocabulary.
pub(crate) fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: String::new(),
    }
}

/// The one platform `--platform` names (`os/arch[/variant]`), for the
/// commands that look at one image.
pub(crate) fn one_platform(text: &str) -> anyhow::Result<rbk_store::image::ImagePlatform> {
    let (list, _) = rbk_build::parse_platforms(text, &host_platform())?;
    let [p] = list.as_slice() else {
        bail!("--platform {text:?}: give one platform");
    };
    Ok(rbk_store::image::ImagePlatform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
    })
}

/// Where binfmt_misc handlers are registered: `$RBK_BINFMT_MISC_DIR` (tests
/// point it at an empty directory to simulate a machine without
/// emulators), else the kernel's.
pub(crate) fn binfmt_dir() -> PathBuf {
    std::env::var_os("RBK_BINFMT_MISC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(rbk_build::BINFMT_MISC))
}

/// The store root: `--root` (or `$RBK_ROOT`, which clap reads for it),
/// else `/var/lib/rbk` for root, else `$XDG_DATA_HOME/rbk`
/// (`~/.local/share/rbk`). An empty one counts as unset.
pub(crate) fn store_root(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(root) = flag.filter(|r| !r.as_os_str().is_empty()) {
        return Ok(root.to_path_buf());
    }
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if !crate::rootless::is_rootless() {
        return Ok("/var/lib/rbk".into());
    }
    if let Some(data) = env("XDG_DATA_HOME") {
        return Ok(PathBuf::from(data).join("rbk"));
    }
    let home = env("HOME").context("cannot choose a store root: set --root, RBK_ROOT or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/rbk"))
}

/// Opens the store selected by `flag` and the environment.
fn open_store(flag: Option<&Path>) -> anyhow::Result<Store> {
    // Absolute, because paths under the root are handed to runc, which
    // resolves them from the bundle directory, not from our cwd.
    let root = store_root(flag)?;
    let root = std::path::absolute(&root)
        .with_context(|| format!("resolving the store root {}", root.display()))?;
    match Store::open(&root) {
        Ok(store) => Ok(store),
        // Inside rootless rbk's namespace another user's files show as the
        // overflow id; say what that means instead.
        Err(err @ rbk_store::Error::ForeignOwner { .. }) if crate::rootless::is_rootless() => {
            Err(anyhow::Error::new(err).context(format!(
                "opening the store at {}: it belongs to another user, and rootless rbk uses \
                 only its user's own stores (the default is $XDG_DATA_HOME/rbk, \
                 ~/.local/share/rbk); rbk never changes a store's owner or mode",
                root.display()
            )))
        }
        Err(err) => Err(err).with_context(|| format!("opening the store at {}", root.display())),
    }
}

/// The layer compression `--compression` names.
pub(crate) fn compression(arg: crate::args::CompressionArg) -> rbk_exec::Compression {
    match arg {
        crate::args::CompressionArg::Gzip => rbk_exec::Compression::Gzip,
        crate::args::CompressionArg::Zstd => rbk_exec::Compression::Zstd,
    }
}

/// The progress view from `--progress` (else `$BUILDKIT_PROGRESS`, else
/// `auto`), `--quiet`, whether stderr is a terminal, `NO_COLOR`,
/// `BUILDKIT_COLORS` and `BUILDKIT_TTY_LOG_LINES`, as buildx resolves them.
pub(crate) fn progress_settings(
    flag: Option<crate::args::ProgressMode>,
    quiet: bool,
    env: impl Fn(&str) -> Option<String>,
    terminal: bool,
) -> anyhow::Result<crate::progress::ProgressSettings> {
    use crate::args::ProgressMode as Flag;
    use crate::progress::Mode;
    let flag = match flag {
        Some(f) => f,
        None => match env("BUILDKIT_PROGRESS").filter(|v| !v.is_empty()) {
            None => Flag::Auto,
            Some(v) => <Flag as clap::ValueEnum>::from_str(&v, true).map_err(|_| {
                anyhow::anyhow!(
                    "BUILDKIT_PROGRESS={v:?}: expected auto, tty, plain, quiet, rawjson or none"
                )
            })?,
        },
    };
    let mode = match flag {
        _ if quiet => Mode::Quiet,
        Flag::Quiet | Flag::None => Mode::Quiet,
        Flag::Plain => Mode::Plain,
        Flag::Rawjson => Mode::RawJson,
        Flag::Auto if !terminal => Mode::Plain,
        Flag::Tty if !terminal => bail!("--progress=tty needs stderr to be a terminal"),
        Flag::Auto | Flag::Tty => Mode::Tty,
    };
    let log_lines = env("BUILDKIT_TTY_LOG_LINES")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(6);
    Ok(crate::progress::ProgressSettings {
        mode,
        colors: crate::progress::Colors::resolve(
            env("NO_COLOR").as_deref(),
            env("BUILDKIT_COLORS").as_deref(),
        ),
        log_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(args: &[&str]) -> GlobalSettings {
        use clap::Parser;
        let cli = crate::args::Cli::try_parse_from(args).unwrap();
        GlobalSettings::resolve(cli.global).unwrap()
    }

    #[test]
    fn global_flags_become_settings_wherever_they_are_given() {
        let s = global(&[
            "rbk",
            "build",
            "--jobs",
            "3",
            "--snapshotter",
            "native",
            ".",
        ]);
        assert_eq!((s.jobs, s.snapshotter), (3, SnapshotterChoice::Copy));
        let s = global(&["rbk", "--jobs", "0", "--snapshotter", "overlay", "images"]);
        assert_eq!((s.jobs, s.snapshotter), (1, SnapshotterChoice::Overlay));
        let s = global(&["rbk", "--root", "", "images"]);
        assert_eq!(s.root, None, "an empty root counts as unset");
    }

    #[test]
    fn build_args_take_bare_keys_from_the_environment() {
        let raw = [
            "A=1".to_string(),
            "B".to_string(),
            "C".to_string(),
            "D=x=y".to_string(),
        ];
        let env = |k: &str| (k == "B").then(|| "from-env".to_string());
        let args = build_args(&raw, env).unwrap();
        let expected: BTreeMap<String, String> = [("A", "1"), ("B", "from-env"), ("D", "x=y")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(args, expected);
        assert!(build_args(&["=v".to_string()], env).is_err());
    }
}
