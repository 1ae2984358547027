//! What a build is asked to do: [`BuildRequest`], with its outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rbk_exec::{Compression, Entitlements, RemoteSettings, Secret, SnapshotterChoice};
use rbk_graph::Platform;
use rbk_store::Reference;

use crate::cache::{CacheFrom, CacheTo};
use crate::{Error, Result};

/// The Dockerfile of a build.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// Its name as errors show it (`Dockerfile`, `-` for stdin).
    pub name: String,
    /// Its path, unless it came from stdin (for `<name>.dockerignore`).
    pub path: Option<PathBuf>,
    /// Its text.
    pub text: String,
}

/// One build: everything `rbk build` resolved from its flags.
pub struct BuildRequest {
    /// The Dockerfile.
    pub dockerfile: Dockerfile,
    /// The context directory.
    pub context: PathBuf,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg`s, resolved.
    pub build_args: BTreeMap<String, String>,
    /// The platform to build for.
    pub platform: Platform,
    /// The platform rbk runs on.
    pub host_platform: Platform,
    /// Every platform of a multi-platform build (`--platform a,b`), in
    /// order; the result is an image index. Empty for a build of `platform`
    /// alone.
    pub platforms: Vec<Platform>,
    /// Where binfmt_misc handlers are registered (normally
    /// `/proc/sys/fs/binfmt_misc`), checked before a foreign RUN.
    pub binfmt_dir: PathBuf,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages that ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `--pull`: always pull base images.
    pub always_pull: bool,
    /// `--strict`: fail where rbk would build differently from what the
    /// Dockerfile asks (a `# syntax=` frontend rbk cannot run).
    pub strict: bool,
    /// `--label`s added to the image.
    pub labels: Vec<(String, String)>,
    /// `--allow`.
    pub entitlements: Entitlements,
    /// `--secret` values by id.
    pub secrets: BTreeMap<String, Secret>,
    /// `--ssh` agent sockets by id.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `SOURCE_DATE_EPOCH` (build arg or environment), in seconds.
    pub source_date_epoch: Option<i64>,
    /// `-t` names.
    pub tags: Vec<Reference>,
    /// `--output`s (and `--push`).
    pub outputs: Vec<Output>,
    /// Compression of layers leaving the store.
    pub compression: Compression,
    /// `--cache-from`.
    pub cache_from: Vec<CacheFrom>,
    /// `--cache-to`.
    pub cache_to: Vec<CacheTo>,
    /// Vertices solved at once.
    pub jobs: usize,
    /// How steps see their filesystems (overlay, copy, or overlay falling
    /// back to copy).
    pub snapshotter: SnapshotterChoice,
    /// `--annotation`s.
    pub annotations: Vec<crate::Annotation>,
    /// `--sbom`, `--provenance`, `--attest`.
    pub attest: crate::attest::AttestOptions,
    /// How `ADD <url>`/`ADD <git url>` reach the network (proxies,
    /// timeouts, retries, size limit).
    pub remote: RemoteSettings,
    /// `--build-context`s by (lower-case) name.
    pub build_contexts: BTreeMap<String, crate::BuildContext>,
}

/// `dest=-`: standard output, as in buildx.
pub const STDOUT: &str = "-";

/// One `--output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// `type=docker,dest=FILE`: a docker-archive.
    Docker(PathBuf),
    /// `type=oci,dest=FILE`: an OCI archive.
    Oci(PathBuf),
    /// `type=local,dest=DIR`: the final filesystem as files.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the final filesystem as one tarball.
    Tar(PathBuf),
    /// `type=registry[,name=REF]`: pushed to `REF`, else to every `-t` tag.
    Registry(Option<Reference>),
}

impl Output {
    /// Parses an `--output` value (`type=…,dest=…`, a bare directory, or
    /// `-` for a tarball on stdout), with buildx's syntax.
    pub fn parse(spec: &str) -> Result<Output> {
        let bad = |why: String| Error::Invalid(format!("invalid --output {spec:?}: {why}"));
        if spec == STDOUT {
            return Ok(Output::Tar(PathBuf::from(STDOUT)));
        }
        if !spec.contains('=') {
            return Ok(Output::Local(PathBuf::from(spec)));
        }
        let (mut kind, mut dest, mut name, mut rewrite) = (None, None, None, None);
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                Some(("name", v)) => name = Some(v.to_string()),
                Some(("rewrite-timestamp", v)) => rewrite = Some(v.to_string()),
                _ => {
                    return Err(bad(format!(
                        "unknown field {field:?} (expected type=…,dest=…)"
                    )))
                }
            }
        }
        if let Some(value) = rewrite {
            check_rewrite_timestamp(kind.as_deref(), &value).map_err(bad)?;
        }
        if kind.as_deref() == Some("registry") || name.is_some() {
            if kind.as_deref() != Some("registry") {
                return Err(bad("name=… goes with type=registry".into()));
            }
            if dest.is_some() {
                return Err(bad("type=registry takes name=…, not dest=…".into()));
            }
            let name = name
                .map(|n| {
                    n.parse::<Reference>()
                        .map_err(|e| bad(format!("bad name {n:?}: {e}")))
                })
                .transpose()?;
            return Ok(Output::Registry(name));
        }
        let dest = dest.ok_or_else(|| bad("dest=… is required".into()))?;
        Ok(match kind.as_deref() {
            Some("local") | None if dest.as_os_str() == STDOUT => {
                return Err(bad(
                    "type=local writes a directory; use type=tar,dest=- for stdout".into(),
                ))
            }
            Some("docker") => Output::Docker(dest),
            Some("oci") => Output::Oci(dest),
            Some("local") | None => Output::Local(dest),
            Some("tar") => Output::Tar(dest),
            Some(other) => {
                return Err(bad(format!(
                    "unsupported type {other:?} (docker, oci, local or tar)"
                )))
            }
        })
    }

    /// Whether it writes to standard output.
    pub fn to_stdout(&self) -> bool {
        match self {
            Output::Docker(p) | Output::Oci(p) | Output::Local(p) | Output::Tar(p) => {
                p.as_os_str() == STDOUT
            }
            Output::Registry(_) => false,
        }
    }
}

/// `rewrite-timestamp=` of an image output (BuildKit's image exporter
/// option since v0.13): under `SOURCE_DATE_EPOCH`, file times later than
/// the epoch are clamped to it in the layers the build made. rbk does that
/// to every layer it makes under an epoch (see `LayerOptions`), so `true`
/// asks for what happens anyway; `false` (BuildKit's default: layers keep
/// the times the steps wrote) is not offered. The local and tar outputs
/// take no such option in BuildKit either.
fn check_rewrite_timestamp(kind: Option<&str>, value: &str) -> std::result::Result<(), String> {
    if !matches!(kind, Some("docker" | "oci" | "registry")) {
        return Err("rewrite-timestamp goes with type=docker, oci or registry".into());
    }
    match value {
        "true" | "1" => Ok(()),
        "false" | "0" => Err(
            "rbk always clamps the file times of new layers to SOURCE_DATE_EPOCH: \
             rewrite-timestamp=false is not supported"
                .into(),
        ),
        other => Err(format!(
            "rewrite-timestamp takes true or false, not {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_parse_like_buildx() {
        let parse = |s: &str| Output::parse(s);
        assert_eq!(parse("out").unwrap(), Output::Local("out".into()));
        assert_eq!(
            parse("type=local,dest=d").unwrap(),
            Output::Local("d".into())
        );
        assert_eq!(
            parse("type=docker,dest=i.tar").unwrap(),
            Output::Docker("i.tar".into())
        );
        assert_eq!(
            parse("type=oci,dest=o.tar").unwrap(),
            Output::Oci("o.tar".into())
        );
        assert_eq!(
            parse("type=tar,dest=t.tar").unwrap(),
            Output::Tar("t.tar".into())
        );
        assert!(parse("type=registry,dest=x").is_err());
        assert_eq!(parse("type=registry").unwrap(), Output::Registry(None));
        assert_eq!(
            parse("type=registry,name=localhost:5000/a:1").unwrap(),
            Output::Registry(Some("localhost:5000/a:1".parse().unwrap()))
        );
        assert!(parse("type=docker,name=a").is_err());
        assert!(parse("type=docker").is_err());
        assert!(parse("type=docker,dest=x,bogus=1").is_err());
        assert_eq!(parse("-").unwrap(), Output::Tar("-".into()));
        assert_eq!(
            parse("type=docker,dest=-").unwrap(),
            Output::Docker("-".into())
        );
        assert!(parse("type=local,dest=-").is_err());
        assert_eq!(
            parse("type=docker,dest=i.tar,rewrite-timestamp=true").unwrap(),
            Output::Docker("i.tar".into())
        );
        assert_eq!(
            parse("type=registry,rewrite-timestamp=true").unwrap(),
            Output::Registry(None)
        );
        let err = parse("type=oci,dest=o.tar,rewrite-timestamp=false").unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
        assert!(parse("type=local,dest=d,rewrite-timestamp=true").is_err());
        assert!(parse("type=docker,dest=i.tar,rewrite-timestamp=maybe").is_err());
    }
}
