//! Replays layers over a map of paths, as an overlay would stack them.

use std::collections::BTreeMap;

use rbk_store::{decompress, BlobRead, Digest, Store};

use super::{FinalFile, FinalFileRef};
use crate::{Error, Result};

/// A path of the filesystem so far.
#[derive(Clone, Debug)]
struct Entry {
    layer: usize,
    size: u64,
    dir: bool,
}

/// A file version one layer deleted.
#[derive(Clone, Debug)]
pub(crate) struct Deleted {
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) added_in: usize,
    pub(crate) removed_in: usize,
}

/// What one layer did.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) size: u64,
    pub(crate) added: u64,
    pub(crate) changed: u64,
    pub(crate) removed: u64,
}

/// The filesystem after the layers applied so far.
#[derive(Default)]
pub(crate) struct State {
    paths: BTreeMap<String, Entry>,
    /// Wasted bytes and the layers whose version of the path was wasted.
    pub(crate) wasted: BTreeMap<String, (u64, Vec<usize>)>,
    pub(crate) deleted: Vec<Deleted>,
}

impl State {
    /// Applies layer `index` (blob `digest`).
    pub(crate) fn apply_layer(
        &mut self,
        store: &Store,
        index: usize,
        digest: &Digest,
    ) -> Result<Counts> {
        let fail = |e: std::io::Error| Error::Invalid(format!("reading layer {digest}: {e}"));
        let blob = store.open(digest)?;
        let mut archive = tar::Archive::new(decompress(blob).map_err(fail)?);
        let mut counts = Counts::default();
        let mut seen: Vec<String> = Vec::new();
        for entry in archive.entries().map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let raw = entry.path().map_err(fail)?.to_string_lossy().into_owned();
            let path = normalize(&raw);
            if path.is_empty() {
                continue;
            }
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                counts.removed += self.remove_under(&parent, false, index, &seen);
                continue;
            }
            if let Some(target) = name.strip_prefix(".wh.") {
                let target = if parent.is_empty() {
                    target.to_string()
                } else {
                    format!("{parent}/{target}")
                };
                counts.removed += self.remove_under(&target, true, index, &seen);
                continue;
            }
            let kind = entry.header().entry_type();
            let dir = kind.is_dir();
            let size = if kind.is_file() {
                entry.header().size().map_err(fail)?
            } else {
                0
            };
            counts.size += size;
            match self.paths.get(&path) {
                Some(old) if !(old.dir && dir) => {
                    counts.changed += 1;
                    self.waste(&path, old.size, old.layer);
                }
                Some(_) => {}
                None => counts.added += 1,
            }
            self.paths.insert(
                path.clone(),
                Entry {
                    layer: index,
                    size,
                    dir,
                },
            );
            seen.push(path);
        }
        Ok(counts)
    }

    fn waste(&mut self, path: &str, size: u64, from: usize) {
        let w = self.wasted.entry(path.to_string()).or_default();
        w.0 += size;
        if !w.1.contains(&from) {
            w.1.push(from);
        }
    }

    /// Deletes `path` (with itself when `inclusive`) and everything under
    /// it that lower layers made; returns how many paths went.
    fn remove_under(&mut self, path: &str, inclusive: bool, index: usize, seen: &[String]) -> u64 {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .paths
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .chain(
                inclusive
                    .then(|| path.to_string())
                    .filter(|p| self.paths.contains_key(p)),
            )
            // An opaque directory hides lower layers only, not this layer's own entries.
            .filter(|k| !seen.contains(k))
            .collect();
        for k in &doomed {
            if let Some(old) = self.paths.remove(k) {
                self.waste(k, old.size, old.layer);
                self.deleted.push(Deleted {
                    path: k.clone(),
                    size: old.size,
                    added_in: old.layer,
                    removed_in: index,
                });
            }
        }
        doomed.len() as u64
    }

    /// The final filesystem.
    pub(crate) fn final_files(&self) -> Vec<FinalFile> {
        self.paths
            .iter()
            .map(|(path, e)| FinalFile {
                path: path.clone(),
                size: e.size,
                layer: e.layer,
                dir: e.dir,
            })
            .collect()
    }

    /// Package lists left in the final filesystem (not `lock`, not
    /// `partial/`, not empty).
    pub(crate) fn apt_lists(&self) -> Vec<FinalFileRef> {
        self.paths
            .range("var/lib/apt/lists/".to_string()..)
            .take_while(|(k, _)| k.starts_with("var/lib/apt/lists/"))
            .filter(|(k, e)| {
                !e.dir && e.size > 0 && !k.ends_with("/lock") && !k.contains("/partial/")
            })
            .map(|(k, e)| (k.clone(), e.size, e.layer))
            .collect()
    }
}

/// `./a/b/` → `a/b`.
fn normalize(raw: &str) -> String {
    let p = raw.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_string()
}
