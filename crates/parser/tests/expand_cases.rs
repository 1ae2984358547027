//! Runs the word-expansion vectors in `testdata-expand/` (BuildKit's
//! envVarTest and wordsTest cases) through [`Lexer`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rbk_parser::expand::{build_envs, Env, Lexer};

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata-expand")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_word(lex: &Lexer, env: &dyn Env, source: &str, expected: &str) -> Result<(), String> {
    match (lex.process_word(source, env), expected) {
        (Err(_), "error") => Ok(()),
        (Ok(got), want) if got == want => Ok(()),
        (got, want) => Err(format!("{source:?}: want {want:?}, got {got:?}")),
    }
}

#[test]
fn env_var_vectors() {
    let text = data("envVarTest.txt");
    let pairs = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="];
    let tree: BTreeMap<String, String> = build_envs(pairs);
    let hash: HashMap<String, String> = tree.clone().into_iter().collect();
    let lex = Lexer::new('\\');
    let (mut ran, mut failures) = (0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(fields.len(), 3, "line {}: {line:?}", n + 1);
        let (tag, source, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        assert!(
            matches!(tag, "A" | "U" | "W"),
            "line {}: bad tag {tag:?}",
            n + 1
        );
        if tag == "W" {
            continue;
        }
        ran += 1;
        for env in [&tree as &dyn Env, &hash] {
            if let Err(e) = check_word(&lex, env, source, expected) {
                failures.push(format!("line {}: {e}", n + 1));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran > 250, "only {ran} vectors ran");
}

#[test]
fn words_vectors() {
    let text = data("wordsTest.txt");
    let lex = Lexer::new('\\');
    let mut envs: Vec<String> = Vec::new();
    let (mut ran, mut failures) = (0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            envs.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let (source, expected) = line.split_once('|').expect("one | per line");
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = lex
            .process_words(source.trim(), &build_envs(&envs))
            .unwrap_or_else(|_| vec!["error".to_string()]);
        ran += 1;
        if got != expected {
            failures.push(format!(
                "line {}: {source:?}: want {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 25, "only {ran} vectors ran");
}

#[test]
fn process_with_matches_vectors() {
    // BuildKit's TestProcessWithMatches cases: (input, env, expected or None
    // for an error, matched, unmatched).
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a [&'a str],
        &'a [&'a str],
    );
    let fx: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
    let cases: &[Case] = &[
        ("x", &[("DUMMY", "dummy")], Some("x"), &[], &[]),
        (
            "x ${UNUSED}",
            &[("DUMMY", "dummy")],
            Some("x "),
            &[],
            &["UNUSED"],
        ),
        ("x ${FOO}", &[("FOO", "y")], Some("x y"), &["FOO"], &[]),
        (
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            fx,
            Some("xxx  ccc"),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        (
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            fx,
            Some("xxx bbb ccc"),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ("${FOO:-}", fx, Some("xxx"), &["FOO"], &[]),
        ("${FOO:-}", &[], Some(""), &[], &["FOO"]),
        (
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            fx,
            Some("aaa bbb "),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        (
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            fx,
            Some("aaa  "),
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ("${FOO?aaa}", fx, Some("xxx"), &["FOO"], &[]),
        ("${BAR?bbb}", fx, Some(""), &["BAR"], &[]),
        ("${BAZ?ccc}", fx, None, &[], &[]),
        ("${FOO:?aaa}", fx, Some("xxx"), &["FOO"], &[]),
        ("${BAR:?bbb}", fx, None, &[], &[]),
        ("${BAZ:?ccc}", fx, None, &[], &[]),
        ("${BAZ:?}", fx, None, &[], &[]),
        ("${FOO=aaa}", fx, None, &[], &[]),
        ("${FOO=:aaa}", fx, None, &[], &[]),
        ("${FOO=}", &[], None, &[], &[]),
        (
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")],
            Some("x"),
            &["FOO"],
            &[],
        ),
        (
            "${FOO%%\\**}",
            &[("FOO", "xx**")],
            Some("xx"),
            &["FOO"],
            &[],
        ),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y"), &["FOO"], &[]),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        (
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "x")],
            Some("xyy"),
            &["FOO", "BAR"],
            &[],
        ),
        (
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("xxyy"),
            &["FOO", "BAR"],
            &[],
        ),
        ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy"), &["FOO"], &[]),
        ("${FOO##}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y"), &["FOO"], &[]),
        (
            "${ABC:-.}${FOO%x}${ABC:-.}",
            &[("FOO", "xxyy")],
            Some(".xxyy."),
            &["FOO"],
            &["ABC"],
        ),
        (
            "${FOO%%\\**\\*}",
            &[("FOO", "a***yy*")],
            Some("a"),
            &["FOO"],
            &[],
        ),
        ("${FOO%}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        (
            "${FOO%%$BAR}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("xxyy"),
            &["FOO", "BAR"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
            &["FOO", "NEEDLE"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
            &["FOO", "NEEDLE"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "/a/foo/b/c.txt"),
                ("NEEDLE", "/?/"),
                ("REPLACEMENT", "/"),
            ],
            Some("/foo/b/c.txt - /foo/c.txt"),
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("REPLACEMENT", "https://"),
            ],
            Some("https://google.de"),
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        (
            "${FOO//\\//\\/}",
            &[("FOO", "/tmp/foo.txt")],
            Some("\\/tmp\\/foo.txt"),
            &["FOO"],
            &[],
        ),
        (
            "${FOO/$BAR/ww}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("wwxxyy"),
            &["FOO", "BAR"],
            &[],
        ),
        ("${FOO//ww}", &[("FOO", "xxyy")], None, &[], &[]),
        ("${FOO//}", &[("FOO", "xxyy")], None, &[], &[]),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
        ("${FOO///}", &[], Some(""), &[], &["FOO"]),
    ];
    let lex = Lexer::new('\\');
    for &(input, env, expected, matched, unmatched) in cases {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let result = lex.process_word_with_matches(input, &env);
        let Some(expected) = expected else {
            assert!(result.is_err(), "{input:?}: want error, got {result:?}");
            continue;
        };
        let (word, m) = result.unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(word, expected, "{input:?}");
        assert!(
            m.matched.iter().eq(sorted(matched).iter()),
            "{input:?}: matched {m:?}"
        );
        assert!(
            m.unmatched.iter().eq(sorted(unmatched).iter()),
            "{input:?}: unmatched {m:?}"
        );
    }
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn mandatory_vars_and_platform_release_name() {
    let lex = Lexer::new('\\');
    let set = build_envs(["VAR=plain", "ARG=x"]);
    let empty = build_envs(["VAR=", "ARG=x"]);
    let unset = build_envs(["ARG=x"]);
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    assert_eq!(lex.process_word(no_empty, &set).unwrap(), "plain");
    assert!(lex
        .process_word(no_empty, &empty)
        .unwrap_err()
        .to_string()
        .contains("message herex"));
    assert!(lex
        .process_word(no_empty, &unset)
        .unwrap_err()
        .to_string()
        .contains("message herex"));
    assert_eq!(lex.process_word(no_unset, &set).unwrap(), "plain");
    assert_eq!(lex.process_word(no_unset, &empty).unwrap(), "");
    assert!(lex
        .process_word(no_unset, &unset)
        .unwrap_err()
        .to_string()
        .contains("message herex"));

    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let env = build_envs([
        "VERSION=v1.2.3",
        "TARGETOS=linux",
        "TARGETARCH=arm",
        "TARGETVARIANT=v7",
    ]);
    assert_eq!(
        lex.process_word(release, &env).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    let env = build_envs(["VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=amd64"]);
    let (word, m) = lex.process_word_with_matches(release, &env).unwrap();
    assert_eq!(word, "something-v1.2.3.linux-amd64.tar.gz");
    assert!(m.unmatched.contains("TARGETVARIANT"));
}
