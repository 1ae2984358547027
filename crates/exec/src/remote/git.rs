//! `ADD <git url>`: a checkout of a branch, tag or commit, with its
//! submodules, as a deterministic tree.
//!
//! # Why the `git` binary
//! rbk drives the `git` binary rather than linking gitoxide: submodules,
//! every transport (`https`, `git://`, `ssh` through an agent, proxies,
//! `extraheader` auth) and the server quirks of each are what users'
//! repositories need, and git implements all of them; gix's checkout of
//! submodules and its ssh transport are still partial. git is already a
//! dependency of the test suite and of every machine that builds from git.
//!
//! # How
//! - The remote's objects are cached in a bare repository in the store
//!   (`remote/git/<sha256 of the URL>/repo.git`, one lock per entry).
//! - The reference is resolved with `git ls-remote` (a branch, a tag — its
//!   peeled commit —, a full ref, `HEAD` when empty, or a commit id). The
//!   commit is fetched only when the cache lacks it, so a moving branch is
//!   fetched exactly when it moved, and the layer (and so the cache keys
//!   of later steps) changes exactly then.
//! - The checkout is a local clone of the cache at that commit, with
//!   submodules fetched recursively (relative submodule URLs resolve
//!   against the real remote).
//! - The result is made deterministic: `.git` removed (also in submodules)
//!   unless `--keep-git-dir`, directories 0755, files 0755 or 0644 as git
//!   records them, every mtime 0 (clamped to `SOURCE_DATE_EPOCH` by the
//!   packer otherwise), owner 0:0. With `--keep-git-dir` the `.git`
//!   directory (index, logs) is kept as git wrote it and is not
//!   reproducible across machines.
//!
//! # Credentials
//! git never prompts (`GIT_TERMINAL_PROMPT=0`, ssh in batch mode): a
//! repository that needs credentials nobody gave fails at once. Secrets
//! named `GIT_AUTH_TOKEN.<host>` (sent as basic auth, user
//! `x-access-token`) or `GIT_AUTH_HEADER.<host>` (a whole `Authorization`
//! value) are passed to git through `GIT_CONFIG_*` variables, never on its
//! command line, and only for URLs on that host. ssh uses the `--ssh`
//! agent `default`. Users' and system git config files are not read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rbk_store::{Digest, FileLock};

use super::{redact, RemoteSettings};
use crate::{Error, Result};

/// What `ADD <git url>` asks for.
pub(crate) struct GitSource<'a> {
    pub(crate) remote: &'a str,
    pub(crate) reference: &'a str,
    pub(crate) subdir: &'a str,
    pub(crate) keep_git_dir: bool,
}

/// How git is run: binary, proxies, credentials, ssh agent.
pub(crate) struct GitEnv<'a> {
    pub(crate) settings: &'a RemoteSettings,
    /// Secrets by id (`GIT_AUTH_TOKEN.<host>`).
    pub(crate) secrets: BTreeMap<String, Vec<u8>>,
    /// The agent socket of `--ssh default`.
    pub(crate) ssh_agent: Option<PathBuf>,
    /// An empty directory to be git's `HOME`.
    pub(crate) home: PathBuf,
}

/// Checks `source` out into `dest` (which must not exist; on the store's
/// filesystem), as the module docs describe. Returns the commit id.
pub(crate) fn checkout(
    env: &GitEnv<'_>,
    cache_root: &Path,
    source: &GitSource<'_>,
    scratch: &Path,
    dest: &Path,
) -> Result<String> {
    let remote = source.remote;
    let entry = cache_root.join(Digest::sha256_of(remote.as_bytes()).hex());
    fs::create_dir_all(&entry).map_err(|e| Error::io("creating directory", &entry, e))?;
    let _lock = FileLock::exclusive(&entry.join("lock"))?;
    let bare = entry.join("repo.git");
    if !bare.join("HEAD").is_file() {
        let _ = fs::remove_dir_all(&bare);
        env.run(remote, None, &["init", "--bare", "-q", path_str(&bare)?])?;
    }
    let commit = env.resolve(remote, source.reference)?;
    env.fetch_commit(remote, &bare, &commit, source.reference)?;
    let work = scratch.join("checkout");
    env.run(
        remote,
        None,
        &[
            "clone",
            "-q",
            "--no-checkout",
            path_str(&bare)?,
            path_str(&work)?,
        ],
    )?;
    env.run(
        remote,
        Some(&work),
        &["remote", "set-url", "origin", remote],
    )?;
    env.run(
        remote,
        Some(&work),
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            &commit,
        ],
    )?;
    if work.join(".gitmodules").is_file() {
        env.run(
            remote,
            Some(&work),
            &["submodule", "update", "-q", "--init", "--recursive"],
        )?;
    }
    if !source.keep_git_dir {
        remove_git_dirs(&work)?;
    }
    let tree = select_subdir(&work, source, &commit)?;
    normalise(&tree)?;
    fs::rename(&tree, dest).map_err(|e| Error::io("moving checkout to", dest, e))?;
    Ok(commit)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| Error::Invalid(format!("path {} is not UTF-8", p.display())))
}

impl GitEnv<'_> {
    /// Runs git with a clean environment; its stdout on success.
    fn run(&self, remote: &str, dir: Option<&Path>, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.settings.git);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/false")
            .env("SSH_ASKPASS", "/bin/false")
            .env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            )
            .args(args)
            .stdin(Stdio::null());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        if let Some(sock) = &self.ssh_agent {
            cmd.env("SSH_AUTH_SOCK", sock);
        }
        for (name, value) in [
            ("http_proxy", &self.settings.http_proxy),
            ("https_proxy", &self.settings.https_proxy),
            ("no_proxy", &self.settings.no_proxy),
        ] {
            if let Some(v) = value {
                cmd.env(name, v);
            }
        }
        let config = self.auth_config(remote);
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        let out = cmd.output().map_err(|e| Error::Remote {
            url: redact(remote),
            reason: format!("cannot run {}: {e}", self.settings.git.display()),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Remote {
                url: redact(remote),
                reason: format!("git {} failed: {}", args[0], clean_stderr(&stderr)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `http.<scheme>://<host>/.extraheader` from a `GIT_AUTH_HEADER.<host>`
    /// or `GIT_AUTH_TOKEN.<host>` secret, as BuildKit sends them.
    fn auth_config(&self, remote: &str) -> Vec<(String, String)> {
        let Some((scheme, rest)) = remote.split_once("://") else {
            return Vec::new();
        };
        if scheme != "https" && scheme != "http" {
            return Vec::new();
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        let hostname = host.split(':').next().unwrap_or(host);
        let secret = |kind: &str| {
            self.secrets
                .get(&format!("{kind}.{hostname}"))
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
        };
        let header = match (secret("GIT_AUTH_HEADER"), secret("GIT_AUTH_TOKEN")) {
            (Some(header), _) => header,
            (None, Some(token)) => {
                use base64::Engine;
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("x-access-token:{token}"));
                format!("basic {basic}")
            }
            (None, None) => return Vec::new(),
        };
        vec![(
            format!("http.{scheme}://{host}/.extraheader"),
            format!("Authorization: {header}"),
        )]
    }

    /// The commit `reference` names on the remote.
    fn resolve(&self, remote: &str, reference: &str) -> Result<String> {
        let listing = self.run(remote, None, &["ls-remote", "--", remote])?;
        let refs: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
        let find = |name: &str| refs.iter().find(|(_, r)| *r == name).map(|(c, _)| *c);
        let found = if reference.is_empty() {
            find("HEAD")
        } else {
            // A tag's peeled commit first, then branches, then a full ref.
            [
                format!("refs/tags/{reference}^{{}}"),
                format!("refs/tags/{reference}"),
                format!("refs/heads/{reference}"),
                format!("{reference}^{{}}"),
                reference.to_string(),
            ]
            .iter()
            .find_map(|name| find(name))
        };
        if let Some(commit) = found {
            return Ok(commit.to_string());
        }
        if is_commit_id(reference) {
            return Ok(reference.to_ascii_lowercase());
        }
        Err(Error::Remote {
            url: redact(remote),
            reason: if reference.is_empty() {
                "the repository has no HEAD (is it empty?)".into()
            } else {
                format!("git reference {reference:?} not found (no such branch, tag or commit)")
            },
        })
    }

    /// Fetches `commit` into the cache unless it is there already.
    fn fetch_commit(&self, remote: &str, bare: &Path, commit: &str, reference: &str) -> Result<()> {
        let present = |env: &Self| {
            env.run(
                remote,
                Some(bare),
                &["cat-file", "-e", &format!("{commit}^{{commit}}")],
            )
            .is_ok()
        };
        if present(self) {
            return Ok(());
        }
        // By id first (servers with protocol v2 allow it), then every
        // branch and tag (servers that only serve advertised refs).
        let by_id = self.run(
            remote,
            Some(bare),
            &["fetch", "-q", "--no-tags", remote, commit],
        );
        if by_id.is_err() || !present(self) {
            self.run(
                remote,
                Some(bare),
                &[
                    "fetch",
                    "-q",
                    "--force",
                    remote,
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ],
            )?;
        }
        if !present(self) {
            return Err(Error::Remote {
                url: redact(remote),
                reason: format!("git reference {reference:?}: commit {commit} not found"),
            });
        }
        // Keep the commit reachable in the cache (and clonable from it).
        self.run(
            remote,
            Some(bare),
            &["update-ref", &format!("refs/rbk/{commit}"), commit],
        )?;
        Ok(())
    }
}

fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// git's error output without its `hint:` lines, on one line.
fn clean_stderr(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect();
    redact_all(&lines.join("; "))
}

/// Redacts every URL's userinfo in `text`.
fn redact_all(text: &str) -> String {
    text.split(' ').map(redact).collect::<Vec<_>>().join(" ")
}

/// Removes `.git` (a directory at the top, files in submodules), walking
/// iteratively.
fn remove_git_dirs(root: &Path) -> Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("reading the type of", &path, e))?;
            if entry.file_name() == ".git" {
                let removed = if kind.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.map_err(|e| Error::io("removing", &path, e))?;
            } else if kind.is_dir() {
                dirs.push(path);
            }
        }
    }
    Ok(())
}

/// `work/<subdir>`, which must be a directory inside the checkout, reached
/// without following symlinks.
fn select_subdir(work: &Path, source: &GitSource<'_>, commit: &str) -> Result<PathBuf> {
    let mut path = work.to_path_buf();
    for part in source
        .subdir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
    {
        let missing = || Error::Remote {
            url: redact(source.remote),
            reason: format!(
                "subdirectory {:?} not found in the checkout of commit {commit}",
                source.subdir
            ),
        };
        if part == ".." {
            return Err(missing());
        }
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(missing()),
        }
    }
    Ok(path)
}

/// Fixed modes and times for everything under `root` (see the module docs).
fn normalise(root: &Path) -> Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    let mut all_dirs = Vec::new();
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                super::solve::set_meta(&path, mode, 0)?;
            } else if meta.file_type().is_symlink() {
                set_link_time(&path)?;
            }
        }
        all_dirs.push(dir);
    }
    // Deepest first, so setting a child's time does not touch its parent's.
    for dir in all_dirs.iter().rev() {
        super::solve::set_dir_meta(dir, 0o755, 0)?;
    }
    Ok(())
}

fn set_link_time(path: &Path) -> Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: zero,
        last_modification: zero,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("setting the times of", path, e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(secrets: &[(&str, &str)]) -> (RemoteSettings, BTreeMap<String, Vec<u8>>) {
        let secrets = secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        (RemoteSettings::default(), secrets)
    }

    #[test]
    fn tokens_go_only_to_their_host() {
        let (settings, secrets) = env(&[("GIT_AUTH_TOKEN.example.com", "tok\n")]);
        let git = GitEnv {
            settings: &settings,
            secrets,
            ssh_agent: None,
            home: PathBuf::from("/nonexistent"),
        };
        let config = git.auth_config("https://example.com/org/repo.git");
        assert_eq!(config.len(), 1);
        assert_eq!(config[0].0, "http.https://example.com/.extraheader");
        // base64("x-access-token:tok")
        assert_eq!(config[0].1, "Authorization: basic eC1hY2Nlc3MtdG9rZW46dG9r");
        assert!(git.auth_config("https://other.org/repo.git").is_empty());
        assert!(git.auth_config("git@example.com:org/repo.git").is_empty());
    }

    #[test]
    fn commit_ids_are_full_hex() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(!is_commit_id("abc123"));
        assert!(!is_commit_id(&"g".repeat(40)));
    }
}
