//! Build-context checksums: what each COPY source's digest covers, and the
//! stat cache that makes rescans cheap.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rbk_exec::{ContextIndex, Error, IncludeAll, PathFilter, StatCache};
use rbk_store::{Digest, Store};
use tempfile::TempDir;

/// A context holding `files` (path, content); parent directories are created.
fn context(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        write(dir.path(), path, content);
    }
    dir
}

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn scan(root: &Path) -> ContextIndex {
    ContextIndex::scan(root, &IncludeAll, None).unwrap()
}

fn plain(index: &ContextIndex, src: &str) -> Digest {
    index.selector_digest(src, false, false, false).unwrap()
}

fn wild(index: &ContextIndex, src: &str) -> Digest {
    index.selector_digest(src, true, false, false).unwrap()
}

fn assert_not_found(result: rbk_exec::Result<Digest>, src: &str) {
    match result {
        Err(Error::NotFound { what, path }) => {
            assert_eq!(what, "source");
            assert_eq!(path, src);
        }
        other => panic!("expected NotFound for {src}, got {other:?}"),
    }
}

/// Files old enough that the stat cache trusts their timestamps (a file
/// changed within the last ~100 ms is always rehashed).
fn let_timestamps_settle() {
    std::thread::sleep(Duration::from_millis(150));
}

const BASIC: &[(&str, &str)] = &[
    ("a.txt", "alpha"),
    ("b.txt", "bravo"),
    ("c.md", "charlie"),
    ("dir/x", "x-ray"),
    ("dir/sub/y", "yankee"),
    ("other/x", "x-ray"),
];

#[test]
fn plain_selectors() {
    let ctx = context(BASIC);
    let index = scan(ctx.path());
    assert_eq!(index.len(), 9);
    assert!(!index.is_empty());
    // A leading '/', './' and '..' at the root name the same thing.
    assert_eq!(plain(&index, "a.txt"), plain(&index, "/a.txt"));
    assert_eq!(plain(&index, "a.txt"), plain(&index, "./dir/../../a.txt"));
    assert_ne!(plain(&index, "a.txt"), plain(&index, "b.txt"));
    assert_eq!(plain(&index, "."), index.digest().unwrap());
    assert_eq!(plain(&index, "/"), index.digest().unwrap());
    // Names are relative to the selection: the same tree elsewhere matches.
    assert_eq!(plain(&index, "dir/x"), plain(&index, "other/x"));
    assert_ne!(plain(&index, "dir"), plain(&index, "other"));
    assert_not_found(index.selector_digest("nope", false, false, false), "nope");
    assert_not_found(
        index.selector_digest("a.txt/x", false, false, false),
        "a.txt/x",
    );
}

#[test]
fn a_directory_covers_its_subtree_only() {
    let ctx = context(BASIC);
    let before = scan(ctx.path());
    write(ctx.path(), "dir/sub/y", "changed");
    let after = scan(ctx.path());
    assert_ne!(plain(&before, "dir"), plain(&after, "dir"));
    assert_ne!(plain(&before, "dir/sub"), plain(&after, "dir/sub"));
    assert_ne!(before.digest().unwrap(), after.digest().unwrap());
    // Unrelated sources, including a sibling sharing the prefix "dir".
    for src in ["a.txt", "dir/x", "other"] {
        assert_eq!(plain(&before, src), plain(&after, src), "{src}");
    }
    fs::create_dir(ctx.path().join("dir.d")).unwrap();
    write(ctx.path(), "dir.d/z", "zulu");
    let with_sibling = scan(ctx.path());
    assert_eq!(plain(&after, "dir"), plain(&with_sibling, "dir"));
}

#[test]
fn wildcards_select_every_match() {
    let ctx = context(BASIC);
    let index = scan(ctx.path());
    let txt = wild(&index, "*.txt");
    assert_eq!(txt, wild(&index, "/[ab].txt"));
    assert_ne!(txt, wild(&index, "a*.txt"));
    assert_eq!(wild(&index, "*/x"), wild(&index, "[do]*/x"));
    // Without wildcard characters the source is a plain path.
    assert_eq!(wild(&index, "a.txt"), plain(&index, "a.txt"));
    // Editing one match changes the wildcard, not the other patterns.
    write(ctx.path(), "b.txt", "BRAVO");
    let edited = scan(ctx.path());
    assert_ne!(txt, wild(&edited, "*.txt"));
    assert_eq!(wild(&index, "*.md"), wild(&edited, "*.md"));
    // Matched names count: the same content under another name differs.
    fs::rename(ctx.path().join("c.md"), ctx.path().join("d.md")).unwrap();
    let renamed = scan(ctx.path());
    assert_ne!(wild(&index, "*.md"), wild(&renamed, "*.md"));
    assert_eq!(plain(&index, "c.md"), plain(&renamed, "d.md"));
}

#[test]
fn wildcard_without_match_needs_allow_empty() {
    let ctx = context(BASIC);
    let index = scan(ctx.path());
    assert_not_found(index.selector_digest("*.rs", true, false, false), "*.rs");
    assert_not_found(
        index.selector_digest("nodir/*", true, false, false),
        "nodir/*",
    );
    let empty = index.selector_digest("*.rs", true, false, true).unwrap();
    assert_eq!(
        empty,
        index.selector_digest("*.go", true, false, true).unwrap()
    );
    assert_ne!(empty, wild(&index, "*.txt"));
    // Digests are remembered per source; the empty match is still refused
    // without `allow_empty` once it is known.
    assert_not_found(index.selector_digest("*.rs", true, false, false), "*.rs");
    // A malformed pattern is an error, not a silent empty match.
    let bad = index.selector_digest("[a", true, false, true);
    assert!(matches!(bad, Err(Error::Invalid(_))), "{bad:?}");
}

#[test]
fn symlinks_are_followed_only_inside_the_context() {
    let outside = context(&[("secret", "host secret")]);
    let ctx = context(&[("real/f", "data"), ("real2/f", "data")]);
    symlink("real", ctx.path().join("link")).unwrap();
    symlink("/real/f", ctx.path().join("abs")).unwrap();
    symlink(outside.path().join("secret"), ctx.path().join("escape")).unwrap();
    symlink("../../../../../../../../secret", ctx.path().join("dotdot")).unwrap();
    let index = scan(ctx.path());
    // Not followed: the link itself (its target text) is the source.
    let link = plain(&index, "link");
    assert_ne!(link, plain(&index, "real"));
    // Followed: the directory it points at.
    let followed = index.selector_digest("link", false, true, false).unwrap();
    assert_eq!(followed, plain(&index, "real"));
    // Absolute targets resolve from the context root; a link in the middle
    // of a path is always followed.
    let abs = index.selector_digest("abs", false, true, false).unwrap();
    assert_eq!(abs, plain(&index, "real/f"));
    assert_eq!(plain(&index, "link/f"), plain(&index, "real/f"));
    // (A wildcard match is named as matched, through the link.)
    assert_eq!(wild(&index, "lin?/f"), wild(&index, "l[i]nk/[f]"));
    assert_ne!(wild(&index, "lin?/f"), wild(&index, "real/[f]"));
    // A link aimed out of the context is never read: following it finds
    // nothing inside the context...
    assert_not_found(
        index.selector_digest("escape", false, true, false),
        "escape",
    );
    assert_not_found(
        index.selector_digest("dotdot", false, true, false),
        "dotdot",
    );
    // ...and `..` stops at the context root, where a "secret" may live.
    write(ctx.path(), "secret", "context secret");
    let index = scan(ctx.path());
    let dotdot = index.selector_digest("dotdot", false, true, false).unwrap();
    assert_eq!(dotdot, plain(&index, "secret"));
    // Unfollowed, a link to the host is just its target text.
    assert!(index.selector_digest("escape", false, false, false).is_ok());
}

#[test]
fn symlink_loops_are_an_error() {
    let ctx = context(&[]);
    symlink("b", ctx.path().join("a")).unwrap();
    symlink("a", ctx.path().join("b")).unwrap();
    let index = scan(ctx.path());
    assert!(index.selector_digest("a", false, false, false).is_ok());
    let looped = index.selector_digest("a", false, true, false);
    assert!(matches!(looped, Err(Error::Invalid(_))), "{looped:?}");
}

#[test]
fn mtime_does_not_count_but_mode_does() {
    let ctx = context(BASIC);
    let before = scan(ctx.path());
    let file = fs::File::options()
        .write(true)
        .open(ctx.path().join("a.txt"))
        .unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    let touched = scan(ctx.path());
    assert_eq!(before.digest().unwrap(), touched.digest().unwrap());
    assert_eq!(plain(&before, "a.txt"), plain(&touched, "a.txt"));
    let path = ctx.path().join("a.txt");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let chmodded = scan(ctx.path());
    assert_ne!(plain(&before, "a.txt"), plain(&chmodded, "a.txt"));
    assert_eq!(plain(&before, "b.txt"), plain(&chmodded, "b.txt"));
    // Setuid and friends are part of the mode.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o4755)).unwrap();
    assert_ne!(plain(&chmodded, "a.txt"), plain(&scan(ctx.path()), "a.txt"));
}

/// Excludes `*.log` files and the `build` directory, but brings back
/// `build/keep` (like `.dockerignore` `build` + `!build/keep`).
struct TestFilter;

impl PathFilter for TestFilter {
    fn is_excluded(&self, path: &str) -> bool {
        path.ends_with(".log") || (path.starts_with("build") && path != "build/keep")
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        dir == "build"
    }
}

#[test]
fn filtered_files_change_nothing() {
    let ctx = context(&[("a.txt", "alpha"), ("x.log", "one"), ("build/out", "o")]);
    let scan_filtered = |p: &Path| ContextIndex::scan(p, &TestFilter, None).unwrap();
    let before = scan_filtered(ctx.path());
    assert_eq!(
        before.len(),
        1,
        "only a.txt; empty excluded build/ is dropped"
    );
    write(ctx.path(), "x.log", "two");
    write(ctx.path(), "build/out", "changed");
    let after = scan_filtered(ctx.path());
    assert_eq!(before.digest().unwrap(), after.digest().unwrap());
    assert_not_found(after.selector_digest("x.log", false, false, false), "x.log");
    // A re-included file brings its excluded parent directory with it.
    write(ctx.path(), "build/keep", "k");
    let kept = scan_filtered(ctx.path());
    assert_eq!(kept.len(), 3);
    assert_ne!(kept.digest().unwrap(), after.digest().unwrap());
    assert!(kept
        .selector_digest("build/keep", false, false, false)
        .is_ok());
    assert_not_found(
        kept.selector_digest("build/out", false, false, false),
        "build/out",
    );
}

#[test]
fn stat_cache_skips_unchanged_files() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let ctx = context(BASIC);
    let total: u64 = BASIC.iter().map(|(_, c)| c.len() as u64).sum();
    let_timestamps_settle();
    let rescan = || {
        let mut cache = StatCache::load(&store, ctx.path());
        let index = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut cache)).unwrap();
        cache.save().unwrap();
        index
    };
    let first = rescan();
    assert_eq!(first.bytes_hashed(), total);
    let cache_file = || {
        let dir = store_dir.path().join("db/statcache");
        let file = fs::read_dir(dir).unwrap().next().unwrap().unwrap();
        std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap())
    };
    let written = cache_file();
    let second = rescan();
    assert_eq!(second.bytes_hashed(), 0);
    assert_eq!(first.digest().unwrap(), second.digest().unwrap());
    assert_eq!(cache_file(), written, "an unchanged cache is not rewritten");
    // An edit rehashes exactly the edited file.
    write(ctx.path(), "dir/x", "x-ray!!");
    let edited = rescan();
    assert_eq!(edited.bytes_hashed(), 7);
    assert_ne!(edited.digest().unwrap(), first.digest().unwrap());
    assert_eq!(plain(&edited, "a.txt"), plain(&first, "a.txt"));
    // A touch with the same content rehashes it, and nothing changes.
    let_timestamps_settle();
    let file = fs::File::options()
        .write(true)
        .open(ctx.path().join("a.txt"))
        .unwrap();
    file.set_modified(SystemTime::now()).unwrap();
    let touched = rescan();
    assert!(touched.bytes_hashed() >= 5, "{}", touched.bytes_hashed());
    assert_eq!(touched.digest().unwrap(), edited.digest().unwrap());
}

#[test]
fn a_cache_loaded_beside_the_walk_gives_the_same_hashes() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let ctx = context(BASIC);
    let_timestamps_settle();
    let mut cache = StatCache::load(&store, ctx.path());
    let first = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut cache)).unwrap();
    cache.save().unwrap();
    write(ctx.path(), "dir/x", "x-ray!!");
    let_timestamps_settle();
    let (lazy, mut loaded) = ContextIndex::scan_loading_cache(ctx.path(), &IncludeAll, || {
        StatCache::load(&store, ctx.path())
    })
    .unwrap();
    // Only the edited file is read; every other hash is the cache's.
    let digest = lazy.digest().unwrap();
    assert_eq!(lazy.bytes_hashed(), 7);
    assert_eq!(plain(&lazy, "a.txt"), plain(&first, "a.txt"));
    let fresh = ContextIndex::scan(ctx.path(), &IncludeAll, None).unwrap();
    assert_eq!(digest, fresh.digest().unwrap());
    assert_ne!(digest, first.digest().unwrap());
    // The cache it returns is the store's, brought up to date by the scan.
    lazy.update_cache(&mut loaded);
    let again = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut loaded)).unwrap();
    assert_eq!(again.bytes_hashed(), 0);
    assert_eq!(again.digest().unwrap(), digest);
}

#[test]
fn same_size_rewrite_with_restored_mtime_is_caught() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let ctx = context(&[("f", "aaaa")]);
    let path = ctx.path().join("f");
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let_timestamps_settle();
    let mut cache = StatCache::load(&store, ctx.path());
    let before = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut cache)).unwrap();
    fs::write(&path, "bbbb").unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut cache)).unwrap();
    assert_eq!(after.bytes_hashed(), 4);
    assert_ne!(before.digest().unwrap(), after.digest().unwrap());
}

#[test]
fn corrupt_stat_cache_is_ignored() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let ctx = context(BASIC);
    let_timestamps_settle();
    let mut cache = StatCache::load(&store, ctx.path());
    let good = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut cache)).unwrap();
    cache.save().unwrap();
    let dir = store_dir.path().join("db/statcache");
    let files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one cache file, no temporary left behind");
    let valid = fs::read(&files[0]).unwrap();
    let mut flipped = valid.clone();
    flipped[20] ^= 1;
    for garbage in [
        b"garbage".to_vec(),
        valid[..valid.len() / 2].to_vec(),
        flipped,
    ] {
        fs::write(&files[0], &garbage).unwrap();
        let mut cache = StatCache::load(&store, ctx.path());
        let index = ContextIndex::scan(ctx.path(), &IncludeAll, Some(&mut cache)).unwrap();
        assert_eq!(index.bytes_hashed(), good.bytes_hashed());
        assert_eq!(index.digest().unwrap(), good.digest().unwrap());
    }
}

#[test]
fn a_fifo_is_recorded_without_blocking() {
    let ctx = context(&[("a", "alpha")]);
    let fifo = ctx.path().join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let root = ctx.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(ContextIndex::scan(&root, &IncludeAll, None));
    });
    let index = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("scan blocked")
        .unwrap();
    assert_eq!(index.len(), 2);
    assert!(index.selector_digest("pipe", false, false, false).is_ok());
}

#[test]
fn non_utf8_names_are_distinct() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let ctx = context(&[]);
    fs::write(ctx.path().join(OsStr::from_bytes(b"bad\xff")), "1").unwrap();
    fs::write(ctx.path().join(OsStr::from_bytes(b"bad\xfe")), "1").unwrap();
    let index = scan(ctx.path());
    assert_eq!(index.len(), 2);
    // Both match (lossily) and both count in the digest.
    let both = wild(&index, "bad*");
    fs::remove_file(ctx.path().join(OsStr::from_bytes(b"bad\xfe"))).unwrap();
    assert_ne!(both, wild(&scan(ctx.path()), "bad*"));
}

#[test]
fn a_2000_file_tree_scans_correctly() {
    let ctx = tempfile::tempdir().unwrap();
    for d in 0..40 {
        for f in 0..50 {
            write(
                ctx.path(),
                &format!("d{d}/s{}/f{f}", f % 5),
                &format!("{d}-{f}"),
            );
        }
    }
    let index = scan(ctx.path());
    assert_eq!(index.len(), 2000 + 40 + 200);
    let total: u64 = (0..40)
        .flat_map(|d| (0..50).map(move |f| format!("{d}-{f}").len() as u64))
        .sum();
    assert_eq!(index.bytes_hashed(), total);
    // Each file is addressable, and one edit changes only its ancestors.
    write(ctx.path(), "d7/s3/f13", "edited");
    let edited = scan(ctx.path());
    assert_ne!(plain(&index, "d7"), plain(&edited, "d7"));
    assert_ne!(plain(&index, "d7/s3/f13"), plain(&edited, "d7/s3/f13"));
    assert_eq!(plain(&index, "d8"), plain(&edited, "d8"));
    assert_eq!(plain(&index, "d7/s2"), plain(&edited, "d7/s2"));
    assert_eq!(wild(&index, "d1*/s?/f4*"), wild(&edited, "d1*/s?/f4*"));
}

/// Makes `depth` nested directories `d/d/…` under `root` (fd-relative, since
/// the full path outgrows PATH_MAX) with a file at the bottom.
fn nest(root: &Path, depth: usize) {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let mut cur = rbk_exec::open_root(root).unwrap();
    for _ in 0..depth {
        mkdirat(&cur, "d", Mode::from_raw_mode(0o755)).unwrap();
        cur = openat(&cur, "d", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    let flags = OFlags::WRONLY | OFlags::CREATE;
    openat(&cur, "f", flags, Mode::from_raw_mode(0o644)).unwrap();
}

#[test]
fn deep_trees_scan_or_fail_cleanly() {
    let ctx = tempfile::tempdir().unwrap();
    nest(ctx.path(), 1000);
    let index = scan(ctx.path());
    assert_eq!(index.len(), 1001);
    let bottom = format!("{}f", "d/".repeat(1000));
    assert!(index.selector_digest(&bottom, false, false, false).is_ok());
    // Deeper than PATH_MAX allows: an error naming the directory, not a
    // stack overflow.
    let ctx = tempfile::tempdir().unwrap();
    nest(ctx.path(), 3000);
    match ContextIndex::scan(ctx.path(), &IncludeAll, None) {
        Err(Error::Io { path, .. }) => assert!(path.starts_with(ctx.path()), "{path:?}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// `selected_entries` names each entry a source selects with a digest of
/// that entry alone: only the edited file's digest changes.
#[test]
fn selected_entries_name_each_file_with_its_own_digest() {
    let ctx = context(&[("src/a.rs", "a"), ("src/sub/b.rs", "b"), ("other", "o")]);
    let entries = |index: &ContextIndex, src: &str, wildcard: bool| {
        index
            .selected_entries(src, wildcard, false)
            .unwrap()
            .into_iter()
            .collect::<std::collections::BTreeMap<String, Digest>>()
    };
    let before = entries(&scan(ctx.path()), "src", false);
    let names: Vec<&str> = before.keys().map(String::as_str).collect();
    assert_eq!(names, ["src", "src/a.rs", "src/sub", "src/sub/b.rs"]);
    write(ctx.path(), "src/sub/b.rs", "B");
    let after = entries(&scan(ctx.path()), "src", false);
    let changed: Vec<&str> = before
        .keys()
        .filter(|k| before[*k] != after[*k])
        .map(String::as_str)
        .collect();
    assert_eq!(changed, ["src/sub/b.rs"]);
    let matched = entries(&scan(ctx.path()), "src/*.rs", true);
    assert_eq!(matched.keys().collect::<Vec<_>>(), ["src/a.rs"]);
    assert!(entries(&scan(ctx.path()), "missing", false).is_empty());
}

/// `selection_digest` names a selection's list of entries: equal for the
/// same files at the same paths, different when one is edited or the same
/// tree sits elsewhere (the list names paths from the root, the cache key
/// does not), and the same empty name for whatever selects nothing.
#[test]
fn selection_digests_name_the_selected_list() {
    let ctx = context(&[("a/x.rs", "x"), ("b/x.rs", "x"), ("c.txt", "c")]);
    let selection = |index: &ContextIndex, src: &str, wildcard: bool| {
        index.selection_digest(src, wildcard, false).unwrap()
    };
    let index = scan(ctx.path());
    assert_eq!(plain(&index, "a"), plain(&index, "b"));
    assert_ne!(selection(&index, "a", false), selection(&index, "b", false));
    assert_eq!(
        selection(&index, "a", false),
        selection(&scan(ctx.path()), "a", false),
        "a rescan of the same files"
    );
    assert_ne!(
        selection(&index, "*/x.rs", true),
        selection(&index, "a", false)
    );
    let nothing = selection(&index, "missing", false);
    assert_eq!(nothing, selection(&index, "*.go", true));
    write(ctx.path(), "a/x.rs", "edited");
    let edited = scan(ctx.path());
    assert_ne!(
        selection(&index, "a", false),
        selection(&edited, "a", false)
    );
    assert_eq!(
        selection(&index, "b", false),
        selection(&edited, "b", false)
    );
    assert_ne!(
        selection(&index, "*/x.rs", true),
        selection(&edited, "*/x.rs", true)
    );
}

/// Excludes `node_modules` wholesale, or (like `node_modules` then
/// `!**/keep`) brings back any `keep` under it.
struct NodeModules {
    exception: bool,
}

impl PathFilter for NodeModules {
    fn is_excluded(&self, path: &str) -> bool {
        let keep = self.exception && path.ends_with("/keep");
        path.starts_with("node_modules") && !keep
    }

    fn may_reinclude_under(&self, dir: &str) -> bool {
        self.exception && dir.starts_with("node_modules")
    }
}

/// The walk never enters a directory the filter excludes with no `!`
/// exception below it (issue 19: a monorepo's `node_modules` costs one
/// stat). The excluded subtree here is deeper than PATH_MAX, so walking it
/// would fail the scan; with an exception below it, the walk must enter and
/// does fail.
#[test]
fn excluded_subtrees_are_not_walked() {
    let ctx = context(&[("a.txt", "alpha")]);
    fs::create_dir(ctx.path().join("node_modules")).unwrap();
    nest(&ctx.path().join("node_modules"), 3000);
    let pruned = NodeModules { exception: false };
    let index = ContextIndex::scan(ctx.path(), &pruned, None).unwrap();
    assert_eq!(index.len(), 1, "only a.txt");
    let entered = NodeModules { exception: true };
    match ContextIndex::scan(ctx.path(), &entered, None) {
        Err(Error::Io { path, .. }) => assert!(path.starts_with(ctx.path()), "{path:?}"),
        other => panic!("expected the walk to enter node_modules and fail, got {other:?}"),
    }
}
