//! `--build-context NAME=VALUE`: what each named context is, for the
//! lowering (`rbk_parser::NamedContext`) and for the solver (local
//! directories, each with its own `.dockerignore` and stat cache — the
//! stat cache is kept per directory by the solver).
//!
//! VALUE is `docker-image://REF` (from the store, pulled on a miss like
//! any base image), `oci-layout://DIR[:TAG|@DIGEST]` (loaded into the
//! store untagged, see [`load_oci_layouts`]), a git URL
//! (`https://…/r.git#ref:dir`, `git@…`, `git://…`, `ssh://…`), or a local
//! directory, or an http(s) URL of a context archive (fetched and unpacked
//! by the caller, as `rbk build <url>` is).

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
    /// `oci-layout://DIR[:TAG|@DIGEST]`: an image in an OCI layout
    /// directory, loaded into the store (untagged) by [`load_oci_layouts`].
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick, if given.
        tag: Option<String>,
        /// The manifest digest to pick, if given.
        digest: Option<String>,
    },
    /// An http(s) URL of a context archive; the caller fetches and unpacks
    /// it and replaces it with [`BuildContext::Local`] before the build.
    Url(String),
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
        if let Some(rest) = value.strip_prefix("oci-layout://") {
            let (dir, digest) = match rest.split_once('@') {
                Some((d, digest)) => (d, Some(digest.to_string())),
                None => (rest, None),
            };
            let (dir, tag) = match dir.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && digest.is_none() => (d, Some(t.to_string())),
                _ => (dir, None),
            };
            return Ok((
                name,
                BuildContext::OciLayout {
                    dir: PathBuf::from(dir),
                    tag,
                    digest,
                },
            ));
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
            return Ok((name, BuildContext::Url(value.to_string())));
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
            BuildContext::Local(_) | BuildContext::Url(_) => NamedContext::Local,
            BuildContext::Image(r) => NamedContext::Image(r.clone()),
            // Replaced by an image id before lowering (load_oci_layouts).
            BuildContext::OciLayout { dir, .. } => NamedContext::Image(dir.display().to_string()),
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

/// Loads every `oci-layout://` context into the store (the one manifest
/// picked by tag, digest, or being the only one; untagged) and turns it
/// into an image context naming the loaded image's id. A layout whose
/// `index.json` cannot be read or picks nothing fails naming the directory.
pub fn load_oci_layouts(
    store: &rbk_store::Store,
    contexts: &mut BTreeMap<String, BuildContext>,
) -> Result<()> {
    for (name, context) in contexts.iter_mut() {
        let BuildContext::OciLayout { dir, tag, digest } = context else {
            continue;
        };
        let bad = |why: String| {
            Error::Invalid(format!(
                "build context {name:?}: oci-layout {}: {why}",
                dir.display()
            ))
        };
        let index_path = dir.join("index.json");
        let text =
            std::fs::read(&index_path).map_err(|e| bad(format!("reading index.json: {e}")))?;
        if text.len() > 4 << 20 {
            return Err(bad("index.json is larger than 4 MiB".into()));
        }
        let index: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("index.json is not valid JSON: {e}")))?;
        let manifests = index["manifests"]
            .as_array()
            .ok_or_else(|| bad("index.json has no manifests list".into()))?;
        let ref_name = |m: &serde_json::Value| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        };
        let picked: Vec<&serde_json::Value> = manifests
            .iter()
            .filter(|m| match (&tag, &digest) {
                (_, Some(d)) => m["digest"].as_str() == Some(d.as_str()),
                (Some(t), None) => ref_name(m).as_deref() == Some(t.as_str()),
                (None, None) => true,
            })
            .collect();
        let [one] = picked.as_slice() else {
            return Err(bad(format!(
                "{} manifests match {} (of {} in index.json)",
                picked.len(),
                tag.as_deref()
                    .or(digest.as_deref())
                    .unwrap_or("(no tag or digest)"),
                manifests.len()
            )));
        };
        let mut only = (*one).clone();
        if let Some(map) = only.as_object_mut() {
            map.remove("annotations");
        }
        let rewritten = serde_json::json!({"schemaVersion": 2, "manifests": [only]});
        let id = load_layout(store, dir, &rewritten).map_err(|e| bad(crate::error::chain(&*e)))?;
        *context = BuildContext::Image(id);
    }
    Ok(())
}

/// Tars `dir` (with `index` in place of its index.json) into the store's
/// loader; returns the image id.
fn load_layout(
    store: &rbk_store::Store,
    dir: &std::path::Path,
    index: &serde_json::Value,
) -> std::result::Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let work = store.work_dir()?;
    let tar_path = work.path().join("layout.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path)?);
        let bytes = serde_json::to_vec(index)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "index.json", bytes.as_slice())?;
        b.append_path_with_name(dir.join("oci-layout"), "oci-layout")?;
        b.append_dir_all("blobs", dir.join("blobs"))?;
        b.into_inner()?.sync_all()?;
    }
    let images = rbk_store::archive::load_archive(store, std::fs::File::open(&tar_path)?)?;
    let image = images.first().ok_or("the layout holds no image")?;
    Ok(image.id.to_string())
}
