//! The content identity of a build context, for cache keys.
//!
//! rbk reads the context directory in place (COPY opens it fd-relative), so
//! nothing is transferred; what the cache needs is a checksum per COPY/ADD
//! source, so that editing one file re-runs only the steps that read it
//! (BuildKit's `contenthash` plays this role).
//!
//! [`ContextIndex::scan_lazy`] walks the context once per build and records,
//! for every visible entry, its kind, mode bits, size and symlink target;
//! [`ContextIndex::selector_digest`] then hashes the entries one source
//! selects, in O(log n + selection), reading (blake3, in parallel) the
//! regular files among them the first time they are selected. A file no
//! selector reaches is never read (issue 20, defect 9: an unused 4 GiB
//! sparse file was read on every build). [`ContextIndex::scan`] hashes
//! everything at once.
//! [`StatCache`] remembers content hashes across builds, keyed by
//! (device, inode, size, mtime, ctime, mode), so a warm rescan only stats.
//!
//! # Paths
//!
//! Entries are named by their path relative to the context root,
//! `/`-separated, without a leading `/` or `./`; the root itself is `""`.
//! Names are kept as raw bytes, so non-UTF-8 names are distinct and hashed
//! exactly. The [`PathFilter`] and wildcard matching see a lossy UTF-8 form
//! (invalid bytes become U+FFFD): two names that differ only in invalid
//! bytes are filtered and matched alike, but never confused in a digest.
//!
//! # What a digest covers
//!
//! Names, kinds (file, directory, symlink, other), permission bits with
//! setuid/setgid/sticky, symlink target text and content hashes — not
//! times, owners, link counts or device numbers. For a plain source the
//! names are relative to the selected path, so the same tree at another path
//! has the same digest (the COPY op itself carries the source path). For a
//! wildcard source each match also contributes its path from the context
//! root (as matched, before any symlink is followed), because the op only
//! carries the pattern and which names matched decides what is copied and
//! where (BuildKit likewise hashes the names of wildcard matches).

mod scan;
mod selector;
mod statcache;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;
use rbk_store::{Digest, Sha256Writer};

use crate::filter::PathFilter;
use crate::{Error, Result};

pub(crate) use scan::racy;
pub use statcache::StatCache;

/// What an entry is. `Other` covers FIFOs, sockets and devices, which are
/// recorded but never opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Dir => b'd',
            Kind::Symlink => b'l',
            Kind::Other => b'o',
        }
    }
}

/// One visible entry of the context.
#[derive(Clone, Debug)]
struct Entry {
    /// Relative path bytes; `""` for the root.
    path: Box<[u8]>,
    kind: Kind,
    /// Permission bits plus setuid, setgid and sticky (`st_mode & 0o7777`).
    mode: u32,
    /// For a regular file, its size when listed (what is hashed).
    size: u64,
    /// A symlink's target text; empty for other kinds.
    target: Box<[u8]>,
    /// blake3 of a regular file's content, once read (or from the stat
    /// cache); unset for other kinds.
    hash: OnceLock<[u8; 32]>,
    /// A regular file's stat when listed.
    listed: Option<statcache::Meta>,
    /// The hash came from the stat cache when the file was listed.
    from_cache: bool,
}

/// Every visible entry of a context directory, sorted by path bytes, with
/// the content hash of each regular file read when first selected. Built
/// once per build; cheap to query for many COPY sources.
pub struct ContextIndex {
    /// Sorted by `path`; the root (`""`) is always first.
    entries: Vec<Entry>,
    hasher: scan::FileHasher,
    /// [`ContextIndex::selector_digest`] by (source, wildcard, follow
    /// symlinks): a build's cache key and its record both ask for each
    /// COPY's digest, and at 200,000 selected entries hashing the tree
    /// twice showed in a no-op rebuild.
    selected: Mutex<HashMap<SelectorKey, Selected>>,
}

/// A COPY source as [`ContextIndex::selector_digest`] reads it: the path,
/// then whether wildcards match and whether a selected symlink is followed.
type SelectorKey = (String, bool, bool);

/// A selection's digest, and whether it is a wildcard that matched nothing.
type Selected = (Digest, bool);

impl std::fmt::Debug for ContextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextIndex")
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Domain separators, so a plain and a wildcard selection never collide.
const PLAIN_HEADER: &[u8] = b"rbk-context-path-v1\0";
const WILDCARD_HEADER: &[u8] = b"rbk-context-wildcard-v1\0";
const SELECTION_HEADER: &[u8] = b"rbk-context-selection-v2\0";

impl ContextIndex {
    /// Walks `root` without following symlinks and hashes every regular
    /// file ([`ContextIndex::scan_lazy`], then all of it); with a stat
    /// cache, it is updated to hold exactly the files of this scan (call
    /// [`StatCache::save`]).
    pub fn scan(
        root: &Path,
        filter: &dyn PathFilter,
        cache: Option<&mut StatCache>,
    ) -> Result<ContextIndex> {
        let index = Self::scan_lazy(root, filter, cache.as_deref())?;
        index.digest()?;
        if let Some(cache) = cache {
            index.update_cache(cache);
        }
        Ok(index)
    }

    /// Walks `root` without following symlinks, reading no file. Entries
    /// `filter` excludes are skipped, and an excluded directory is
    /// descended only when `filter.may_reinclude_under(dir)` (it is then
    /// kept only if something under it is visible). A regular file whose
    /// (dev, inode, size, mtime, ctime, mode) the stat cache holds gets its
    /// hash from there; the others are read when first selected.
    pub fn scan_lazy(
        root: &Path,
        filter: &dyn PathFilter,
        cache: Option<&StatCache>,
    ) -> Result<ContextIndex> {
        Ok(Self::indexed(scan::scan(root, filter)?, cache))
    }

    /// [`ContextIndex::scan_lazy`] with the stat cache `load` gives, loaded
    /// beside the walk (on the pool); returns the cache too.
    pub fn scan_loading_cache(
        root: &Path,
        filter: &dyn PathFilter,
        load: impl FnOnce() -> StatCache + Send,
    ) -> Result<(ContextIndex, StatCache)> {
        let (cache, scanned) = rayon::join(load, || scan::scan(root, filter));
        Ok((Self::indexed(scanned?, Some(&cache)), cache))
    }

    /// The index of a walk's entries (sorted by path), with the hashes
    /// `cache` holds.
    fn indexed(
        (mut entries, hasher): (Vec<Entry>, scan::FileHasher),
        cache: Option<&StatCache>,
    ) -> ContextIndex {
        if let Some(cache) = cache {
            scan::take_hashes(&mut entries, cache);
        }
        ContextIndex {
            entries,
            hasher,
            selected: Mutex::default(),
        }
    }

    /// Makes `cache` hold the files of this index whose hash is known and
    /// trustworthy: from the cache itself, or read since the scan.
    pub fn update_cache(&self, cache: &mut StatCache) {
        let fresh = scan::lock(&self.hasher.fresh);
        // A record from the cache was found there by its path with the
        // same stat: it is the cache's own. When every file's record is,
        // and they are as many as the cache holds, nothing changed, and
        // comparing 300,000 records again showed in a no-op (issue 19).
        let from_cache = self.entries.iter().filter(|e| e.from_cache);
        if fresh.is_empty() && from_cache.clone().count() == cache.len() {
            return;
        }
        let listed = from_cache.filter_map(|e| {
            let cached = statcache::Cached {
                meta: e.listed?,
                hash: *e.hash.get()?,
            };
            Some((e.path.as_ref(), cached))
        });
        cache.replace(listed.chain(fresh.iter().map(|(p, c)| (p.as_ref(), *c))));
    }

    /// Reads the regular files of `entries` not hashed yet, in parallel.
    fn hash_files(&self, entries: &[Entry]) -> Result<()> {
        let todo: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.kind == Kind::File && e.hash.get().is_none())
            .collect();
        todo.par_iter().try_for_each(|e| {
            let Some(listed) = &e.listed else {
                return Ok(());
            };
            let hash = self.hasher.hash(&e.path, listed)?;
            let _ = e.hash.set(hash);
            Ok(())
        })
    }

    /// Hashes what [`ContextIndex::write_tree`] of `idx` will read.
    fn hash_tree(&self, idx: usize) -> Result<()> {
        let Some(top) = self.entries.get(idx) else {
            return Ok(());
        };
        self.hash_files(std::slice::from_ref(top))?;
        if top.kind == Kind::Dir {
            self.hash_files(self.subtree(&top.path))?;
        }
        Ok(())
    }

    /// The checksum of what a COPY/ADD source selects. `src` is the path as
    /// written (a leading `/` is optional; `..` is cleaned lexically and
    /// cannot leave the root). With `wildcard`, a source containing
    /// wildcard characters is matched component-wise (Go `path.Match`
    /// rules); several matches are all covered. A directory selects its
    /// whole subtree. Symlinks in the middle of a path are always followed
    /// inside the context (an absolute target or `..` never leaves it); a
    /// selected path that is itself a symlink is followed only with
    /// `follow_symlinks`. See the module docs for what the digest covers.
    ///
    /// A missing path, or a wildcard matching nothing, is
    /// [`Error::NotFound`] naming `src`, unless `allow_empty` is set for a
    /// wildcard, which gives the digest of an empty selection.
    ///
    /// The index is immutable once scanned, so a digest is computed once
    /// per (source, wildcard, follow) and remembered.
    pub fn selector_digest(
        &self,
        src: &str,
        wildcard: bool,
        follow_symlinks: bool,
        allow_empty: bool,
    ) -> Result<Digest> {
        let key = (src.to_string(), wildcard, follow_symlinks);
        let known = scan::lock(&self.selected).get(&key).copied();
        let (digest, matched_nothing) = match known {
            Some(known) => known,
            None => {
                let computed = self.hash_selection(src, wildcard, follow_symlinks)?;
                scan::lock(&self.selected).insert(key, computed);
                computed
            }
        };
        if matched_nothing && !allow_empty {
            return Err(Error::NotFound {
                what: "source",
                path: src.to_string(),
            });
        }
        Ok(digest)
    }

    /// [`ContextIndex::selector_digest`], computed, and whether a wildcard
    /// matched nothing (which only `allow_empty` accepts).
    fn hash_selection(
        &self,
        src: &str,
        wildcard: bool,
        follow_symlinks: bool,
    ) -> Result<(Digest, bool)> {
        let not_found = || Error::NotFound {
            what: "source",
            path: src.to_string(),
        };
        let clean = selector::clean(src);
        let mut h = Sha256Writer::new();
        let mut matched_nothing = false;
        if wildcard && crate::has_wildcard(src) {
            let matches = self.wildcard_matches(src, &clean, follow_symlinks)?;
            matched_nothing = matches.is_empty();
            for (_, idx) in &matches {
                self.hash_tree(*idx)?;
            }
            h.update(WILDCARD_HEADER);
            h.update(&(matches.len() as u64).to_le_bytes());
            for (name, idx) in &matches {
                write_bytes(&mut h, name);
                self.write_tree(&mut h, *idx);
            }
        } else {
            let idx = self
                .resolve(src, clean.join("/").as_bytes(), follow_symlinks)?
                .ok_or_else(not_found)?;
            self.hash_tree(idx)?;
            h.update(PLAIN_HEADER);
            self.write_tree(&mut h, idx);
        }
        Ok((h.finish(), matched_nothing))
    }

    /// Each entry a source selects, by its path from the context root, with
    /// the digest of that entry alone (kind, mode, size and content, or a
    /// symlink's target): what `rbk build --explain` compares between two
    /// builds to name the file whose change made a COPY miss the cache.
    /// Selection follows [`ContextIndex::selector_digest`]; a missing
    /// source selects nothing.
    pub fn selected_entries(
        &self,
        src: &str,
        wildcard: bool,
        follow_symlinks: bool,
    ) -> Result<Vec<(String, Digest)>> {
        let mut out = Vec::new();
        for idx in self.selected_tops(src, wildcard, follow_symlinks)? {
            self.hash_tree(idx)?;
            let top = &self.entries[idx];
            let below = match top.kind {
                Kind::Dir => self.subtree(&top.path),
                _ => &[],
            };
            for e in std::iter::once(top).chain(below) {
                let mut h = Sha256Writer::new();
                write_entry(&mut h, b"", e);
                out.push((String::from_utf8_lossy(&e.path).into_owned(), h.finish()));
            }
        }
        Ok(out)
    }

    /// A digest of what [`ContextIndex::selected_entries`] lists: two
    /// selections with the same digest give the same list. It covers each
    /// selected top's path from the context root, then the
    /// [`ContextIndex::selector_digest`] of the source, which covers the
    /// trees below them (remembered from the cache key, not hashed again).
    /// It names a selection's list without building it (a monorepo COPY
    /// selects 200,000 entries).
    pub fn selection_digest(
        &self,
        src: &str,
        wildcard: bool,
        follow_symlinks: bool,
    ) -> Result<Digest> {
        let mut h = Sha256Writer::new();
        h.update(SELECTION_HEADER);
        let tops = self.selected_tops(src, wildcard, follow_symlinks)?;
        if tops.is_empty() {
            return Ok(h.finish());
        }
        h.update(&(tops.len() as u64).to_le_bytes());
        for idx in tops {
            write_bytes(&mut h, &self.entries[idx].path);
        }
        let trees = self.selector_digest(src, wildcard, follow_symlinks, true)?;
        h.update(trees.as_bytes());
        Ok(h.finish())
    }

    /// The entries a source selects at its top (a wildcard's matches, or
    /// the one entry a plain path resolves to); none when it is missing.
    fn selected_tops(
        &self,
        src: &str,
        wildcard: bool,
        follow_symlinks: bool,
    ) -> Result<Vec<usize>> {
        let clean = selector::clean(src);
        Ok(if wildcard && crate::has_wildcard(src) {
            let matches = self.wildcard_matches(src, &clean, follow_symlinks)?;
            matches.into_iter().map(|(_, idx)| idx).collect()
        } else {
            self.resolve(src, clean.join("/").as_bytes(), follow_symlinks)?
                .into_iter()
                .collect()
        })
    }

    /// The checksum of the whole visible context (the same as the plain
    /// source `/`); reads every file not read yet.
    pub fn digest(&self) -> Result<Digest> {
        self.hash_files(&self.entries)?;
        let mut h = Sha256Writer::new();
        h.update(PLAIN_HEADER);
        self.write_tree(&mut h, 0);
        Ok(h.finish())
    }

    /// The number of entries, not counting the root directory itself.
    pub fn len(&self) -> usize {
        self.entries.len().saturating_sub(1)
    }

    /// Whether the context holds nothing visible besides its root.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total size of the visible regular files.
    pub fn visible_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.size)
            .sum()
    }

    /// Bytes read and hashed so far (0 when every file's hash came from
    /// the stat cache, or none was selected).
    pub fn bytes_hashed(&self) -> u64 {
        self.hasher.hashed.load(Ordering::Relaxed)
    }

    /// The index of the entry at `path`, by binary search.
    fn find(&self, path: &[u8]) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.path.as_ref().cmp(path))
            .ok()
    }

    /// The entries strictly under directory `dir`: all paths sharing the
    /// prefix `dir/` are contiguous in byte order, so two binary searches
    /// find them.
    fn subtree(&self, dir: &[u8]) -> &[Entry] {
        if dir.is_empty() {
            return self.entries.get(1..).unwrap_or_default();
        }
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        let start = self
            .entries
            .partition_point(|e| e.path.as_ref() < prefix.as_slice());
        let rest = &self.entries[start..];
        let len = rest.partition_point(|e| e.path.starts_with(&prefix));
        &rest[..len]
    }

    /// Hashes entry `idx` under the name `""` and, for a directory, every
    /// entry below it named relative to it.
    fn write_tree(&self, h: &mut Sha256Writer, idx: usize) {
        let Some(top) = self.entries.get(idx) else {
            return;
        };
        write_entry(h, b"", top);
        if top.kind != Kind::Dir {
            return;
        }
        let skip = if top.path.is_empty() {
            0
        } else {
            top.path.len() + 1
        };
        for e in self.subtree(&top.path) {
            write_entry(h, &e.path[skip..], e);
        }
    }
}

fn write_bytes(h: &mut Sha256Writer, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The canonical record of one entry: length-prefixed name, kind, mode, then
/// size and content hash for a file or the target for a symlink.
fn write_entry(h: &mut Sha256Writer, name: &[u8], e: &Entry) {
    write_bytes(h, name);
    h.update(&[e.kind.tag()]);
    h.update(&e.mode.to_le_bytes());
    match e.kind {
        Kind::File => {
            h.update(&e.size.to_le_bytes());
            // Set by `hash_tree`/`hash_files` before any write.
            h.update(e.hash.get().unwrap_or(&[0; 32]));
        }
        Kind::Symlink => write_bytes(h, &e.target),
        Kind::Dir | Kind::Other => {}
    }
}

/// `dir/name`, or just `name` at the root.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !dir.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}
