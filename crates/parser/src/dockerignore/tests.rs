//! Unit tests for reading and matching `.dockerignore`.

use super::*;

fn ignore(text: &str) -> Dockerignore {
    Dockerignore::parse(text, ".dockerignore").unwrap()
}

fn pats(ps: &[&str]) -> Dockerignore {
    Dockerignore::from_patterns(&ps.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn read_all_normalises() {
    let text = "\u{feff}# c\n\n  a  \n ./b/ \n/c\n!/d\n! e \n #x\n/\nf/../g\r\n";
    assert_eq!(
        ignore(text).patterns(),
        ["a", "b", "c", "!d", "!e", "#x", "/", "g"].map(String::from)
    );
}

#[test]
fn lone_bang_is_an_error_naming_the_line() {
    let err = Dockerignore::parse("a\n!\n", ".dockerignore").unwrap_err();
    assert_eq!(err.location().line, 2);
    assert_eq!(
        err.to_string(),
        ".dockerignore:2: invalid .dockerignore pattern \"!\": illegal exclusion pattern: \"!\""
    );
}

#[test]
fn invalid_patterns_are_errors() {
    for bad in ["[Local-Only]/", "a[", "[]", "[a-]", "a\\", "[\\", "[^]"] {
        let err = Dockerignore::parse(&format!("ok\n{bad}\n"), "ctx/.dockerignore").unwrap_err();
        assert_eq!(err.location().line, 2, "{bad}");
        assert!(
            err.to_string().contains("syntax error in pattern"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn last_match_wins_and_parents_match() {
    let d = ignore("build\n!build/keep\nbuild/keep/tmp\n");
    assert!(d.is_excluded("build") && d.is_excluded("build/x/y"));
    assert!(!d.is_excluded("build/keep") && !d.is_excluded("build/keep/a"));
    assert!(d.is_excluded("build/keep/tmp/z"));
    assert!(!d.is_excluded(".") && !d.is_excluded(""));
    assert!(d.is_excluded("./build/x") && d.is_excluded("/build"));
}

#[test]
fn wildcards() {
    let d = pats(&[
        "*.o",
        "docs/**/*.md",
        "**/secret",
        "tmp/**",
        "?x",
        "[ab]c",
        "\\*lit",
    ]);
    assert!(d.is_excluded("a.o") && !d.is_excluded("src/a.o"));
    assert!(d.is_excluded("docs/a.md") && d.is_excluded("docs/x/y/a.md"));
    assert!(
        d.is_excluded("secret") && d.is_excluded("a/b/secret") && !d.is_excluded("notsecret/x")
    );
    assert!(d.is_excluded("tmp/a") && d.is_excluded("tmp/a/b"));
    assert!(d.is_excluded("ax") && !d.is_excluded("x") && !d.is_excluded("/x"));
    assert!(d.is_excluded("ac") && d.is_excluded("bc") && !d.is_excluded("cc"));
    assert!(d.is_excluded("*lit") && !d.is_excluded("alit"));
}

#[test]
fn reinclude_hints() {
    let d = ignore("build\n!build/keep\n");
    assert!(d.may_reinclude_under("build"));
    assert!(!d.may_reinclude_under("other"));
    assert!(d.may_reinclude_under("build/keep/x"));
    assert!(!d.may_reinclude_under("build/lose"));
    assert!(ignore("*\n!**/*.go\n").may_reinclude_under("any/dir"));
    assert!(!ignore("*\n").may_reinclude_under("any"));
}

#[test]
fn clean_is_go_filepath_clean() {
    for (i, o) in [
        ("", "."),
        ("a/./b/", "a/b"),
        ("../a", "../a"),
        ("/../a", "/a"),
        ("a/..", "."),
        ("//a", "/a"),
    ] {
        assert_eq!(clean(i), o, "{i}");
    }
}

#[test]
fn never_panics_on_random_patterns() {
    let alphabet: Vec<char> = "[]^-\\*?!/.a:b{}()|$ ".chars().collect();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..(seed % 10) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        if let Ok(d) = Dockerignore::parse(&s, "f") {
            let _ = d.is_excluded("a/b.c");
            let _ = d.may_reinclude_under("a");
        }
    }
}

/// The verdict as it was before directories were remembered: every
/// pattern tried on the path and on each parent.
fn unremembered(d: &Dockerignore, path: &str) -> bool {
    let path = clean(path);
    let path = path.trim_start_matches('/');
    if path.is_empty() || path == "." {
        return false;
    }
    let mut candidates = vec![path];
    candidates.extend(path.match_indices('/').map(|(at, _)| &path[..at]));
    let last = candidates
        .iter()
        .flat_map(|c| (0..d.compiled.len()).filter(|&i| d.compiled[i].matches(c)))
        .max();
    last.is_some_and(|i| !d.compiled[i].exclusion)
}

#[test]
fn remembered_directory_verdicts_change_no_verdict() {
    let d = pats(&[
        "**/node_modules",
        "**/build",
        "*.log",
        "services/svc1/**/gen-*",
        "services/*/pkg2/tmp",
        "!services/svc1/pkg0/build/out0/keep.txt",
        "services/svc1/pkg0/build/out0/keep.txt/x",
        "docs",
        "!docs/README.md",
        "a/b",
        "a",
        "!a/b/c",
    ]);
    let mut paths = Vec::new();
    for top in ["services", "docs", "a", "x.log", "services/svc1", "a/b"] {
        for mid in ["", "/svc1/pkg0", "/svc2/pkg2", "/b", "/b/c"] {
            for leaf in [
                "",
                "/build",
                "/build/out0",
                "/build/out0/keep.txt",
                "/build/out0/keep.txt/x",
                "/node_modules/m/f.js",
                "/tmp/t",
                "/src/gen-1/f.rs",
                "/README.md",
                "/c/d.log",
                "/c/d",
            ] {
                paths.push(format!("{top}{mid}{leaf}"));
            }
        }
    }
    // Children before parents, parents before children, and again with
    // everything remembered.
    let reversed: Vec<&String> = paths.iter().rev().collect();
    for path in reversed.into_iter().chain(&paths).chain(&paths) {
        assert_eq!(d.is_excluded(path), unremembered(&d, path), "{path}");
    }
    assert!(d.is_excluded("services/svc1/pkg0/build/out0/f.txt"));
    assert!(!d.is_excluded("services/svc1/pkg0/build/out0/keep.txt"));
    assert!(!d.is_excluded("a/b/c/d") && d.is_excluded("a/b/e"));
    // A clone starts with nothing remembered and agrees.
    let c = d.clone();
    for path in &paths {
        assert_eq!(c.is_excluded(path), d.is_excluded(path), "{path}");
    }
}

/// Only the set of all regexes is compiled; a pattern that does not
/// compile is still named by its own line, among valid regex patterns.
#[test]
fn a_bad_pattern_among_regexes_is_named_by_its_line() {
    for bad in ["[Local-Only]/", "x[z-a]", "a[b"] {
        let text = format!("a*\n# c\nb?/c\n{bad}\n**/d*\n");
        let err = Dockerignore::parse(&text, ".dockerignore").unwrap_err();
        assert_eq!(err.location().line, 4, "{bad}: {err}");
        assert!(err.to_string().contains("syntax error in pattern"), "{err}");
    }
    let d = ignore("a*\nb?/c\n**/d*\n!a1/**/d?\n");
    assert!(d.is_excluded("ab") && d.is_excluded("bx/c/e") && d.is_excluded("x/y/dz"));
    assert!(!d.is_excluded("a1/q/dz") && d.is_excluded("a1/q/dzz"));
    assert!(d.may_reinclude_under("a1/q") && !d.may_reinclude_under("b1"));
}

/// The shortcut for paths that are clean already agrees with `clean`.
#[test]
fn clean_paths_are_recognised() {
    for path in ["a", "a/b", "a.b/c..d", ".a/b.", "a b/ c"] {
        assert!(is_clean(path), "{path}");
        assert_eq!(clean(path), path);
    }
    // Rooted and leading-`..` paths are clean to Go, but take the long way.
    for path in ["/a", "../a", "..", "."] {
        assert!(!is_clean(path), "{path}");
    }
    for path in ["", "a/", "a//b", "./a", "a/./b", "a/.."] {
        assert!(!is_clean(path), "{path}");
        assert_ne!(clean(path), path, "{path}");
    }
    let d = pats(&["a/b", "!a/b/keep"]);
    assert!(d.is_excluded("a/b/x") && d.is_excluded("./a//b/x"));
    assert!(!d.is_excluded("a/b/keep") && !d.is_excluded("a/./b/keep/"));
}
