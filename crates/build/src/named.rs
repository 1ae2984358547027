//! `--build-context NAME=VALUE`: what each named context is, for the
//! lowering (`rbk_parser::NamedContext`) and for the solver (local
//! directories, each with its own `.dockerignore` and stat cache — the
//! stat cache is kept per directory by the solver).
//!
//! VALUE is `docker-image://REF` (from the store, pulled on a miss like
//! any base image), a git URL (`https://…/r.git#ref:dir`, `git@…`,
//! `git://…`, `ssh://…`), or a local directory. `oci-layout://` and https
//! tarball contexts are refused by name (not implemented yet).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rbk_exec::{LocalDir, PathFilter};
use rbk_parser::{Dockerignore, NamedContext};

use crate::{Error, Result};

/// One `--build-context`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildContext {
    /// A local directory.
    Local(PathBuf),
    /// `docker-image://REF`, normalized.
    Image(String),
    /// A git repository.
    Git {
        /// The remote URL.
        remote: String,
        /// Branch, tag or commit.
        reference: String,
        /// Subdirectory.
        subdir: String,
    },
}

impl BuildContext {
    /// Parses `NAME=VALUE` into the (lower-case) name and the context.
    pub fn parse(spec: &str) -> Result<(String, BuildContext)> {
        let bad = |why: String| Error::Invalid(format!("invalid --build-context {spec:?}: {why}"));
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=VALUE".into()))?;
        if name.is_empty() || value.is_empty() {
            return Err(bad("expected NAME=VALUE".into()));
        }
        let name = name.to_ascii_lowercase();
        if let Some(image) = value.strip_prefix("docker-image://") {
            let r = rbk_parser::normalize_image_reference(image).map_err(bad)?;
            return Ok((name, BuildContext::Image(r)));
        }
        if value.starts_with("oci-layout://") {
            return Err(bad("oci-layout:// contexts are not supported yet".into()));
        }
        if is_git_url(value) {
            let (remote, fragment) = value.split_once('#').unwrap_or((value, ""));
            let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
            return Ok((
                name,
                BuildContext::Git {
                    remote: remote.into(),
                    reference: reference.into(),
                    subdir: subdir.into(),
                },
            ));
        }
        if value.starts_with("http://") || value.starts_with("https://") {
            return Err(bad("tarball URL contexts are not supported yet".into()));
        }
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            return Err(bad(format!("{value} is not a directory")));
        }
        Ok((name, BuildContext::Local(dir)))
    }

    /// What the lowering sees.
    pub(crate) fn for_lowering(&self) -> NamedContext {
        match self {
            BuildContext::Local(_) => NamedContext::Local,
            BuildContext::Image(r) => NamedContext::Image(r.clone()),
            BuildContext::Git {
                remote,
                reference,
                subdir,
            } => NamedContext::Git {
                remote: remote.clone(),
                reference: reference.clone(),
                subdir: subdir.clone(),
            },
        }
    }
}

/// The lowering's view of every named context.
pub(crate) fn for_lowering(
    contexts: &BTreeMap<String, BuildContext>,
) -> BTreeMap<String, NamedContext> {
    contexts
        .iter()
        .map(|(name, c)| (name.clone(), c.for_lowering()))
        .collect()
}

/// The local directories among `contexts`, as the solver's local sources,
/// each filtered by its own `.dockerignore`.
pub(crate) fn local_dirs(
    contexts: &BTreeMap<String, BuildContext>,
) -> Result<Vec<(String, LocalDir)>> {
    let mut dirs = Vec::new();
    for (name, context) in contexts {
        let BuildContext::Local(root) = context else {
            continue;
        };
        let path = root.join(".dockerignore");
        let ignore = match std::fs::read_to_string(&path) {
            Ok(text) => Dockerignore::parse(&text, &path.display().to_string())
                .map_err(|e| Error::Invalid(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Dockerignore::from_patterns(&[]).map_err(|e| Error::Invalid(e.to_string()))?
            }
            Err(source) => {
                return Err(Error::Io {
                    what: "reading",
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let filter: Arc<dyn PathFilter> = Arc::new(crate::engine::IgnoreFilter(ignore));
        dirs.push((
            NamedContext::local_name(name),
            LocalDir {
                root: root.clone(),
                filter,
            },
        ));
    }
    Ok(dirs)
}

/// Whether `p` is a git URL as BuildKit recognises one (`git@…`,
/// `git://…`, `ssh://…`, or http(s) ending in `.git` before a fragment).
pub fn is_git_url(p: &str) -> bool {
    p.starts_with("git@")
        || p.starts_with("git://")
        || p.starts_with("ssh://")
        || ((p.starts_with("https://") || p.starts_with("http://"))
            && (p
                .split(['#', '?'])
                .next()
                .is_some_and(|u| u.ends_with(".git"))
                || p.contains(".git#")))
}
