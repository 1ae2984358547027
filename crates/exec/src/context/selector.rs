//! Resolving COPY/ADD sources against a [`ContextIndex`]: lexical cleaning,
//! symlinks followed inside the context only, and wildcard expansion.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::{join, ContextIndex, Kind};
use crate::pathglob::{has_wildcard, match_component, match_path};
use crate::{Error, Result};

/// How many symlinks one resolution may follow (Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The components of `src` after lexical cleaning, as Go's `path.Clean` on
/// `"/" + src` does: empty and `.` components dropped, `..` removes the
/// previous one and stops at the root.
pub(super) fn clean(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for c in src.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out
}

impl ContextIndex {
    /// The entry `path` (relative, `/`-separated) resolves to. Symlinks in
    /// the middle are followed, the last component only with
    /// `follow_final`; an absolute target restarts at the context root and
    /// `..` stops there, like `openat2(RESOLVE_IN_ROOT)`. `Ok(None)` when
    /// something along the way is missing or not a directory. `src` is only
    /// used in errors.
    pub(super) fn resolve(
        &self,
        src: &str,
        path: &[u8],
        follow_final: bool,
    ) -> Result<Option<usize>> {
        let mut todo: VecDeque<&[u8]> = components(path).collect();
        let mut cur: Vec<u8> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                let cut = cur.iter().rposition(|&b| b == b'/').unwrap_or(0);
                cur.truncate(cut);
                continue;
            }
            let parent_len = cur.len();
            if !cur.is_empty() {
                cur.push(b'/');
            }
            cur.extend_from_slice(c);
            let Some(idx) = self.find(&cur) else {
                return Ok(None);
            };
            let e = &self.entries[idx];
            match e.kind {
                Kind::Symlink if follow_final || !todo.is_empty() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Error::Invalid(format!(
                            "source {src:?}: too many levels of symbolic links"
                        )));
                    }
                    cur.truncate(if e.target.starts_with(b"/") {
                        0
                    } else {
                        parent_len
                    });
                    for t in components(&e.target).rev() {
                        todo.push_front(t);
                    }
                }
                Kind::Dir => {}
                _ if !todo.is_empty() => return Ok(None),
                _ => {}
            }
        }
        Ok(self.find(&cur))
    }

    /// Expands the wildcard source `src` (cleaned into `comps`): each
    /// component with wildcards is matched against the names in the
    /// directories reached so far. Returns `(matched path, entry index)`
    /// sorted by matched path, without duplicates.
    pub(super) fn wildcard_matches(
        &self,
        src: &str,
        comps: &[&str],
        follow: bool,
    ) -> Result<Vec<(Vec<u8>, usize)>> {
        // Rejects malformed patterns even when nothing is there to match.
        match_path(src, "").map_err(|e| Error::Invalid(e.to_string()))?;
        // (matched name, resolved path) of every directory reached so far.
        let mut reached: Vec<(Vec<u8>, Vec<u8>)> = vec![(Vec::new(), Vec::new())];
        let mut found = Vec::new();
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            if *comp == "**" {
                // Any number of directories, none included; when last,
                // everything below too (matching `fileop`'s expansion).
                let mut next = Vec::new();
                for (name, dir) in &reached {
                    if last {
                        if let Some(idx) = self.find(dir) {
                            found.push((name.clone(), idx));
                        }
                    } else {
                        next.push((name.clone(), dir.clone()));
                    }
                    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
                    for e in self.subtree(dir) {
                        let below = join(name, &e.path[skip..]);
                        if last {
                            if let Some(idx) = self.find(&e.path) {
                                found.push((below, idx));
                            }
                        } else if e.kind == Kind::Dir {
                            next.push((below, e.path.to_vec()));
                        }
                    }
                }
                reached = next;
                continue;
            }
            let mut next = Vec::new();
            for (name, dir) in &reached {
                for base in self.matching_children(dir, comp)? {
                    let Some(idx) = self.resolve(src, &join(dir, &base), follow || !last)? else {
                        continue;
                    };
                    let name = join(name, &base);
                    if last {
                        found.push((name, idx));
                    } else if self.entries[idx].kind == Kind::Dir {
                        next.push((name, self.entries[idx].path.to_vec()));
                    }
                }
            }
            reached = next;
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// The names directly in directory `dir` that match the component
    /// `comp` (just `comp` itself when it has no wildcard).
    fn matching_children<'a>(&self, dir: &[u8], comp: &'a str) -> Result<Vec<Cow<'a, [u8]>>> {
        if !has_wildcard(comp) {
            return Ok(vec![Cow::Borrowed(comp.as_bytes())]);
        }
        let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
        let mut out = Vec::new();
        for e in self.subtree(dir) {
            let base = &e.path[skip..];
            if base.contains(&b'/') {
                continue;
            }
            let matched = match_component(comp, &String::from_utf8_lossy(base))
                .map_err(|e| Error::Invalid(e.to_string()))?;
            if matched {
                out.push(Cow::Owned(base.to_vec()));
            }
        }
        Ok(out)
    }
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}
