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
