//! moby/patternmatcher's test vectors (patternmatcher_test.go) and
//! ignorefile's ReadAll behaviour, run through [`Dockerignore`].

use rbk_parser::Dockerignore;

fn matcher(patterns: &[&str]) -> Result<Dockerignore, rbk_parser::Error> {
    Dockerignore::from_patterns(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// (pattern, path, matches-or-a-parent-matches). patternmatcher's TestMatches
/// table; its texts "/" are left out because rbk never excludes the context
/// root, and trailing slashes are cleaned away before matching.
const MATCHES: &[(&str, &str, bool)] = &[
    ("**", "file", true),
    ("**", "file/", true),
    ("**/", "file", true),
    ("**/", "file/", true),
    ("**", "dir/file", true),
    ("**/", "dir/file", true),
    ("**", "dir/file/", true),
    ("**/", "dir/file/", true),
    ("**/**", "dir/file", true),
    ("**/**", "dir/file/", true),
    ("dir/**", "dir/file", true),
    ("dir/**", "dir/file/", true),
    ("dir/**", "dir/dir2/file", true),
    ("dir/**", "dir/dir2/file/", true),
    ("**/dir", "dir", true),
    ("**/dir", "dir/file", true),
    ("**/dir2/*", "dir/dir2/file", true),
    ("**/dir2/*", "dir/dir2/file/", true),
    ("**/dir2/**", "dir/dir2/dir3/file", true),
    ("**/dir2/**", "dir/dir2/dir3/file/", true),
    ("**file", "file", true),
    ("**file", "dir/file", true),
    ("**/file", "dir/file", true),
    ("**file", "dir/dir/file", true),
    ("**/file", "dir/dir/file", true),
    ("**/file*", "dir/dir/file", true),
    ("**/file*", "dir/dir/file.txt", true),
    ("**/file*txt", "dir/dir/file.txt", true),
    ("**/file*.txt", "dir/dir/file.txt", true),
    ("**/file*.txt*", "dir/dir/file.txt", true),
    ("**/**/*.txt", "dir/dir/file.txt", true),
    ("**/**/*.txt2", "dir/dir/file.txt", false),
    ("**/*.txt", "file.txt", true),
    ("**/**/*.txt", "file.txt", true),
    ("a**/*.txt", "a/file.txt", true),
    ("a**/*.txt", "a/dir/file.txt", true),
    ("a**/*.txt", "a/dir/dir/file.txt", true),
    ("a/*.txt", "a/dir/file.txt", false),
    ("a/*.txt", "a/file.txt", true),
    ("a/*.txt**", "a/file.txt", true),
    ("a[b-d]e", "ae", false),
    ("a[b-d]e", "ace", true),
    ("a[b-d]e", "aae", false),
    ("a[^b-d]e", "aze", true),
    (".*", ".foo", true),
    (".*", "foo", false),
    ("abc.def", "abcdef", false),
    ("abc.def", "abc.def", true),
    ("abc.def", "abcZdef", false),
    ("abc?def", "abcZdef", true),
    ("abc?def", "abcdef", false),
    ("**/foo/bar", "foo/bar", true),
    ("**/foo/bar", "dir/foo/bar", true),
    ("**/foo/bar", "dir/dir2/foo/bar", true),
    ("abc/**", "abc", false),
    ("abc/**", "abc/def", true),
    ("abc/**", "abc/def/ghi", true),
    ("**/.foo", ".foo", true),
    ("**/.foo", "bar.foo", false),
    ("a(b)c/def", "a(b)c/def", true),
    ("a(b)c/def", "a(b)c/xyz", false),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    ("a\\\\", "a\\", true),
    ("a\\*b", "a*b", true),
];

/// patternmatcher's matchTests (from Go's filepath.Match tests):
/// (pattern, path, matches, is-an-invalid-pattern).
const GLOB: &[(&str, &str, bool, bool)] = &[
    ("abc", "abc", true, false),
    ("*", "abc", true, false),
    ("*c", "abc", true, false),
    ("a*", "a", true, false),
    ("a*", "abc", true, false),
    ("a*", "ab/c", true, false),
    ("a*/b", "abc/b", true, false),
    ("a*/b", "a/c/b", false, false),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", true, false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false),
    ("a*b?c*x", "abxbbxdbxebxczzx", true, false),
    ("a*b?c*x", "abxbbxdbxebxczzy", false, false),
    ("ab[c]", "abc", true, false),
    ("ab[b-d]", "abc", true, false),
    ("ab[e-g]", "abc", false, false),
    ("ab[^c]", "abc", false, false),
    ("ab[^b-d]", "abc", false, false),
    ("ab[^e-g]", "abc", true, false),
    ("a\\*b", "a*b", true, false),
    ("a\\*b", "ab", false, false),
    ("a?b", "a☺b", true, false),
    ("a[^a]b", "a☺b", true, false),
    ("a???b", "a☺b", false, false),
    ("a[^a][^a][^a]b", "a☺b", false, false),
    ("[a-ζ]*", "α", true, false),
    ("*[a-ζ]", "A", false, false),
    ("a?b", "a/b", false, false),
    ("a*b", "a/b", false, false),
    ("[\\]a]", "]", true, false),
    ("[\\-]", "-", true, false),
    ("[x\\-]", "x", true, false),
    ("[x\\-]", "-", true, false),
    ("[x\\-]", "z", false, false),
    ("[\\-x]", "x", true, false),
    ("[\\-x]", "-", true, false),
    ("[\\-x]", "a", false, false),
    ("[]a]", "]", false, true),
    ("[-]", "-", false, true),
    ("[x-]", "x", false, true),
    ("[x-]", "-", false, true),
    ("[x-]", "z", false, true),
    ("[-x]", "x", false, true),
    ("[-x]", "-", false, true),
    ("[-x]", "a", false, true),
    ("\\", "a", false, true),
    ("[a-b-c]", "a", false, true),
    ("[", "a", false, true),
    ("[^", "a", false, true),
    ("[^bc", "a", false, true),
    ("a[", "a", false, true),
    ("a[", "ab", false, true),
    ("*x", "xxx", true, false),
];

#[test]
fn patternmatcher_matches_table() {
    for &(pattern, path, want) in MATCHES {
        let m = matcher(&[pattern]).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(
            m.is_excluded(path),
            want,
            "pattern={pattern:?} path={path:?}"
        );
    }
}

#[test]
fn patternmatcher_glob_table() {
    for &(pattern, path, want, invalid) in GLOB {
        match matcher(&[pattern]) {
            Err(e) => assert!(invalid, "{pattern}: unexpected {e}"),
            Ok(m) => {
                assert!(!invalid, "{pattern}: should be invalid");
                assert_eq!(
                    m.is_excluded(path),
                    want,
                    "pattern={pattern:?} path={path:?}"
                );
            }
        }
    }
}

#[test]
fn patternmatcher_multi_pattern_and_exclusions() {
    let whl = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl";
    let cases: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            whl,
            false,
        ),
        (&["**", "!dist/*.whl"], whl, false),
        (&["*"], "fileutils.go", true),
        (&["*.go"], "fileutils.go", true),
        (&["!fileutils.go", "*.go"], "fileutils.go", true),
        (&["docs", "!docs/README.md"], "docs/README.md", false),
        (&["docs/", "!docs/README.md"], "docs/README.md", false),
        (&["docs/*", "!docs/README.md"], "docs/README.md", false),
        (&["*.go", "!fileutils.go"], "fileutils.go", false),
        (&["*.go"], ".", false),
        (&[], "any/path/there", false),
    ];
    for &(patterns, path, want) in cases {
        let m = matcher(patterns).unwrap();
        assert_eq!(
            m.is_excluded(path),
            want,
            "patterns={patterns:?} path={path:?}"
        );
    }
    assert!(matcher(&["!"]).is_err());
    assert!(matcher(&["["]).is_err());
    assert_eq!(
        matcher(&["docs", "config", ""]).unwrap().patterns().len(),
        2
    );
    let trimmed = matcher(&["docs", "  !docs/README.md  "]).unwrap();
    assert_eq!(trimmed.patterns(), ["docs", "!docs/README.md"]);
}

#[test]
fn ignorefile_read_all() {
    let text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n";
    let err = Dockerignore::parse(text, ".dockerignore").unwrap_err();
    assert_eq!(
        err.location().line,
        8,
        "a lone ! is an error in Docker too: {err}"
    );
    let text =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n";
    let d = Dockerignore::parse(text, ".dockerignore").unwrap();
    assert_eq!(
        d.patterns(),
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "!inverted/abs/path"
        ]
    );
    let d = Dockerignore::parse("\u{feff}a\r\nb\r\n", ".dockerignore").unwrap();
    assert_eq!(d.patterns(), ["a", "b"]);
}

#[test]
fn local_only_pattern_is_an_error_not_a_panic() {
    // moby/patternmatcher#9: dockerd panicked on this pattern.
    let err = Dockerignore::parse("node_modules\n[Local-Only]/\n", ".dockerignore").unwrap_err();
    assert_eq!(err.location().line, 2);
    assert!(err.to_string().contains("[Local-Only]/"), "{err}");
}
