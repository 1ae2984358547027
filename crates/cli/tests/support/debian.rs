//! A real Debian bookworm base for the real-world build tests: made with
//! `debootstrap --variant=minbase` from this machine's own apt mirror,
//! imported with `docker import` (so its config is Docker's own, `null`s
//! and all), `docker save`d, and cached under `target/real-debian/` between
//! runs. A lock file keeps test binaries that start at once from making it
//! twice; the debootstrap takes a minute or two.
//!
//! Nothing here names a host: the apt mirror comes from the apt sources,
//! the npm registry and the pip index from the host's npm and pip
//! configuration, and the CA bundle is the host's. Tests pass them to the
//! builds as build args and a secret.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::docker::Docker;

/// The tag the imported base has in Docker and in every rbk store.
pub(crate) const IMAGE: &str = "rbk-real/debian:bookworm";
/// The Debian release.
pub(crate) const SUITE: &str = "bookworm";
/// The host's CA bundle, handed to RUN steps that use TLS.
pub(crate) const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `target/real-debian`: where the base is cached between runs.
pub(crate) fn cache_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("real-debian")
}

/// The `docker save` archive of the base, made on first use (by whichever
/// test process takes the lock first) with `docker`'s engine.
pub(crate) fn base_archive(docker: &Docker) -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let dir = cache_dir();
        fs::create_dir_all(&dir).unwrap();
        let archive = dir.join(format!("debian-{SUITE}.tar"));
        let lock = fs::File::create(dir.join("lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        if !archive.is_file() {
            make_archive(docker, &dir, &archive);
        }
        drop(lock);
        archive
    })
}

/// debootstrap → `tar | docker import` → `docker save`, each into a
/// temporary name renamed into place only when complete.
fn make_archive(docker: &Docker, dir: &Path, archive: &Path) {
    let mirror = mirror();
    let rootfs = dir.join("rootfs");
    if !rootfs.join("etc/debian_version").is_file() {
        // Half-made trees of an interrupted run are left for a later
        // cleanup: deleting thousands of files slows this filesystem.
        let tmp = dir.join(format!("rootfs.tmp{}", std::process::id()));
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", SUITE])
            .arg(&tmp)
            .arg(&mirror)
            .output()
            .expect("running debootstrap (Debian package debootstrap)");
        assert!(
            out.status.success(),
            "debootstrap --variant=minbase {SUITE} from {mirror} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if rootfs.exists() {
            fs::rename(
                &rootfs,
                dir.join(format!("rootfs.stale{}", std::process::id())),
            )
            .unwrap();
        }
        fs::rename(&tmp, &rootfs).unwrap();
    }
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running tar");
    let import = docker
        .command(&["import", "-", IMAGE])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success(), "tar of {rootfs:?} failed");
    assert!(
        import.status.success(),
        "docker import failed: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let tmp = archive.with_extension(format!("tmp{}", std::process::id()));
    docker.ok(&["save", "-o", tmp.to_str().unwrap(), IMAGE]);
    fs::rename(&tmp, archive).unwrap();
}

/// The Debian mirror this machine's apt uses: the first `URIs:` of a
/// deb822 source that carries the main suite, else the first classic
/// `deb` line for it.
pub(crate) fn mirror() -> String {
    let deb822 = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = fs::read_dir(deb822)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension() == Some("sources".as_ref()))
    {
        let text = fs::read_to_string(path).unwrap_or_default();
        if let Some(uri) = deb822_mirror(&text) {
            return uri;
        }
    }
    let classic = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    classic_mirror(&classic).unwrap_or_else(|| {
        panic!("no apt source for Debian {SUITE} in /etc/apt/sources.list{{,.d/*.sources}}")
    })
}

pub(crate) fn deb822_mirror(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        let suites = field("Suites:").unwrap_or_default();
        let types = field("Types:").unwrap_or_default();
        if types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == SUITE)
        {
            if let Some(uri) = field("URIs:").and_then(|u| first_http(&u)) {
                return Some(uri);
            }
        }
    }
    None
}

pub(crate) fn classic_mirror(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        match words.as_slice() {
            ["deb", uri, suite, ..] if *suite == SUITE => first_http(uri),
            _ => None,
        }
    })
}

fn first_http(uris: &str) -> Option<String> {
    uris.split_whitespace()
        .find(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_string)
}

/// The npm registry the host's npm is configured with, if npm is here.
pub(crate) fn npm_registry() -> Option<String> {
    let out = Command::new("npm")
        .args(["config", "get", "registry"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && url.starts_with("http")).then_some(url)
}

/// The pip index the host's pip is configured with (`PIP_INDEX_URL`, or
/// `index-url` in `pip config`), if any; none means pip's default.
pub(crate) fn pip_index() -> Option<String> {
    if let Some(url) = std::env::var("PIP_INDEX_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    let pip = ["pip3", "pip"].into_iter().find_map(|pip| {
        Command::new(pip)
            .args(["config", "list"])
            .stderr(Stdio::null())
            .output()
            .ok()
    })?;
    String::from_utf8_lossy(&pip.stdout).lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        key.ends_with(".index-url")
            .then(|| value.trim().trim_matches('\'').to_string())
    })
}

/// The `--build-arg`s and `--secret` that hand the host's package
/// configuration to a build: `NPM_REGISTRY`, `PIP_INDEX_URL` (each only
/// when configured) and the CA bundle as secret `ca`.
pub(crate) fn package_args() -> Vec<String> {
    let mut args = vec!["--secret".to_string(), format!("id=ca,src={CA_BUNDLE}")];
    if let Some(url) = npm_registry() {
        args.extend(["--build-arg".into(), format!("NPM_REGISTRY={url}")]);
    }
    if let Some(url) = pip_index() {
        args.extend(["--build-arg".into(), format!("PIP_INDEX_URL={url}")]);
    }
    args
}
