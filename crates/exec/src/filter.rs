//! Which paths of a local source (the build context) the build may see.

/// A path filter for a local source, built by the caller from the
/// `.dockerignore` patterns (this crate does not parse Dockerfile-language
/// files). Paths are relative to the source root, `/`-separated, without a
/// leading `/` or `./`.
pub trait PathFilter: Send + Sync {
    /// Whether `path` is left out.
    fn is_excluded(&self, path: &str) -> bool;

    /// Whether some path under the excluded directory `dir` may be included
    /// again by a later `!` pattern (so the walk must descend into it).
    fn may_reinclude_under(&self, dir: &str) -> bool;

    /// The paths the filter is limited to ([`Within`]), empty when it is
    /// not: what the build sees of the source, part of the stat cache's
    /// name so that builds of different parts keep their own records.
    fn scope(&self) -> &[String] {
        &[]
    }
}

/// The filter that keeps everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct IncludeAll;

impl PathFilter for IncludeAll {
    fn is_excluded(&self, _path: &str) -> bool {
        false
    }

    fn may_reinclude_under(&self, _dir: &str) -> bool {
        false
    }
}

/// A filter that also leaves out everything but `paths` (and what lies
/// under them): the build reads only the parts of a local source its steps
/// name, as BuildKit's `FollowPaths` transfers only those (issue 19: a
/// COPY of three subtrees of a monorepo walked all of it on every build).
/// The directories above a path are walked through, without being listed.
pub struct Within<F> {
    /// Normalised relative paths, none under another.
    paths: Vec<String>,
    inner: F,
}

/// Where a path lies relative to a [`Within`]'s paths.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// One of the paths, or under one.
    Inside,
    /// A directory some path lies under.
    Above,
    Outside,
}

impl<F: PathFilter> Within<F> {
    /// `inner` restricted to `paths` (relative, `/`-separated, without `.`
    /// or `..` components); `inner` back when `paths` is empty or names
    /// the root, where nothing more is left out.
    pub fn new(mut paths: Vec<String>, inner: F) -> Result<Within<F>, F> {
        if paths.is_empty() || paths.iter().any(String::is_empty) {
            return Err(inner);
        }
        // Sorted by length, a path comes after any it lies under.
        paths.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        let mut kept: Vec<String> = Vec::with_capacity(paths.len());
        for p in paths {
            if !kept.iter().any(|k| is_under(&p, k)) {
                kept.push(p);
            }
        }
        kept.sort();
        Ok(Within { paths: kept, inner })
    }

    /// The paths kept, sorted.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    fn place(&self, path: &str) -> Place {
        let mut place = Place::Outside;
        for p in &self.paths {
            if is_under(path, p) {
                return Place::Inside;
            }
            if is_under(p, path) {
                place = Place::Above;
            }
        }
        place
    }
}

/// Whether `path` is `dir` or lies under it (everything lies under the
/// root, `""`).
fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl<F: PathFilter> PathFilter for Within<F> {
    fn is_excluded(&self, path: &str) -> bool {
        match self.place(path) {
            Place::Inside => self.inner.is_excluded(path),
            Place::Above | Place::Outside => true,
        }
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        match self.place(dir) {
            Place::Inside => self.inner.may_reinclude_under(dir),
            Place::Above => true,
            Place::Outside => false,
        }
    }

    fn scope(&self) -> &[String] {
        &self.paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.dockerignore` stand-in: leaves out `*.log` names, and may take
    /// back something under `logs`.
    struct NoLogs;

    impl PathFilter for NoLogs {
        fn is_excluded(&self, path: &str) -> bool {
            path.ends_with(".log") || is_under(path, "logs")
        }

        fn may_reinclude_under(&self, dir: &str) -> bool {
            dir == "logs"
        }
    }

    fn within(paths: &[&str]) -> Option<Within<NoLogs>> {
        Within::new(paths.iter().map(|p| p.to_string()).collect(), NoLogs).ok()
    }

    #[test]
    fn keeps_the_paths_what_lies_under_them_and_walks_through_their_parents() {
        let f = within(&["a/b", "c"]).unwrap();
        assert!(!f.is_excluded("a/b"));
        assert!(!f.is_excluded("a/b/x/y"));
        assert!(!f.is_excluded("c/z"));
        // A parent is walked through, not listed; a sibling is left out.
        assert!(f.is_excluded("a") && f.may_reinclude_under("a"));
        assert!(f.is_excluded("a/bb") && !f.may_reinclude_under("a/bb"));
        assert!(f.is_excluded("d") && !f.may_reinclude_under("d"));
        assert!(f.is_excluded("cc"));
    }

    #[test]
    fn the_inner_filter_still_applies_inside() {
        let f = within(&["src", "logs/keep"]).unwrap();
        assert!(f.is_excluded("src/x.log"));
        assert!(!f.is_excluded("src/x.rs"));
        assert!(f.is_excluded("logs/keep/a"));
        assert!(!f.may_reinclude_under("src/sub"));
        assert!(f.may_reinclude_under("logs"));
    }

    #[test]
    fn nested_and_repeated_paths_collapse_and_the_root_means_everything() {
        // `a/b!` sorts between `a/b` and `a/b/c`: still collapsed.
        let f = within(&["a/b/c", "a/b!", "a/b", "a/b", "a/bc"]).unwrap();
        assert_eq!(f.paths(), ["a/b", "a/b!", "a/bc"]);
        // The root is walked through, never listed.
        assert!(f.is_excluded("") && f.may_reinclude_under(""));
        assert_eq!(f.scope(), f.paths());
        assert!(within(&[]).is_none());
        assert!(within(&["a", ""]).is_none());
    }
}
