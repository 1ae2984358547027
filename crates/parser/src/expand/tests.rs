//! Unit tests: one per operator and per error.

use std::collections::{BTreeMap, HashMap};

use super::*;

fn env() -> BTreeMap<String, String> {
    build_envs(["PWD=/home", "SHELL=bash", "NULL=", "V=a.b.c", "S=a  b"])
}

fn word(w: &str) -> String {
    Lexer::new('\\').process_word(w, &env()).unwrap()
}

fn err(w: &str) -> String {
    Lexer::new('\\')
        .process_word(w, &env())
        .unwrap_err()
        .to_string()
}

#[test]
fn plain_references() {
    assert_eq!(word("$PWD ${SHELL} $NOPE ${NOPE}."), "/home bash  .");
    assert_eq!(word("$ $. $1x ${1}"), "$ $. x ");
}

#[test]
fn default_and_alternative() {
    assert_eq!(
        word("${NULL:-d} ${NULL-d} ${NOPE-d} ${PWD:-d}"),
        "d  d /home"
    );
    assert_eq!(word("${NULL:+a}|${NULL+a}|${NOPE+a}|${PWD:+a}"), "|a||a");
}

#[test]
fn required() {
    assert_eq!(word("${PWD:?x} ${NULL?x}"), "/home ");
    assert_eq!(
        err("${NULL:?}"),
        "failed to process \"${NULL:?}\": NULL: is not allowed to be empty"
    );
    assert_eq!(
        err("${NOPE?}"),
        "failed to process \"${NOPE?}\": NOPE: is not allowed to be unset"
    );
    assert_eq!(
        err("${NOPE:?m $PWD}"),
        "failed to process \"${NOPE:?m $PWD}\": NOPE: m /home"
    );
}

#[test]
fn prefix_and_suffix() {
    assert_eq!(word("${V#*.} ${V##*.} ${V%.*} ${V%%.*}"), "b.c c a.b a");
    assert_eq!(word("${V#x} ${V%} ${NOPE#a}"), "a.b.c a.b.c ");
}

#[test]
fn replacement() {
    assert_eq!(
        word("${V/./-} ${V//./-} ${V//?/x} ${V/\\//x}"),
        "a-b.c a-b-c xxxxx a.b.c"
    );
    assert_eq!(
        err("${V/a"),
        "failed to process \"${V/a\": syntax error: missing '/' in ${}"
    );
    assert_eq!(
        err("${V/a/b"),
        "failed to process \"${V/a/b\": syntax error: missing '}'"
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        err("${"),
        "failed to process \"${\": syntax error: missing '}'"
    );
    assert_eq!(
        err("${}"),
        "failed to process \"${}\": syntax error: bad substitution"
    );
    assert_eq!(
        err("${:-a}"),
        "failed to process \"${:-a}\": syntax error: bad substitution"
    );
    assert_eq!(
        err("${a"),
        "failed to process \"${a\": unsupported modifier (\u{FFFD}) in substitution"
    );
    assert_eq!(
        err("${a:=b}"),
        "failed to process \"${a:=b}\": unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        err("${.}"),
        "failed to process \"${.}\": unsupported modifier (.) in substitution"
    );
    assert_eq!(
        err("${a:-b"),
        "failed to process \"${a:-b\": syntax error: missing '}'"
    );
    assert_eq!(err("'a"), "failed to process \"'a\": unexpected end of statement while looking for matching single-quote");
    assert_eq!(err("\"a"), "failed to process \"\\\"a\": unexpected end of statement while looking for matching double-quote");
    assert_eq!(
        err("${V#\\x}"),
        "failed to process \"${V#\\\\x}\": invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
}

#[test]
fn quotes_and_escapes() {
    assert_eq!(
        word(r#"'$PWD' "$PWD" \$PWD "\$\"\\\a" 'a\'"#),
        r#"$PWD /home $PWD $"\\a a\"#
    );
    assert_eq!(
        Lexer::new('`').process_word("a`$b`\\c", &env()).unwrap(),
        "a$b\\c"
    );
    assert_eq!(word("end\\"), "end");
}

#[test]
fn options() {
    let e = env();
    let raw = Lexer::new('\\').raw_quotes(true).skip_unset_env(true);
    assert_eq!(
        raw.process_word("'a' \"$PWD\" $X ${X} ${X:-y} ${X/a/b}", &e)
            .unwrap(),
        "'a' \"/home\" $X ${X} ${X:-y} ${X/a/b}"
    );
    let esc = Lexer::new('\\').raw_escapes(true);
    assert_eq!(esc.process_word("a\\b", &e).unwrap(), "a\\b");
    let noq = Lexer::new('\\').skip_process_quotes(true);
    assert_eq!(noq.process_word("'$PWD'", &e).unwrap(), "'/home'");
}

#[test]
fn words_split_after_expansion() {
    let lex = Lexer::new('\\');
    let e = env();
    assert_eq!(
        lex.process_words("x${S}y \"$S\" '' a\\ b", &e).unwrap(),
        ["xa", "by", "a  b", "a b"]
    );
    assert!(lex.process_words("  ", &e).unwrap().is_empty());
}

#[test]
fn matches_are_reported() {
    let lex = Lexer::new('\\');
    let (w, m) = lex
        .process_word_with_matches("${PWD} $NOPE ${NULL:-x}", &env())
        .unwrap();
    assert_eq!(w, "/home  x");
    assert_eq!(m.matched.iter().collect::<Vec<_>>(), ["NULL", "PWD"]);
    assert_eq!(m.unmatched.iter().collect::<Vec<_>>(), ["NOPE"]);
}

#[test]
fn env_impls() {
    let pairs = vec![
        ("A".to_string(), "1".to_string()),
        ("A".to_string(), "2".to_string()),
    ];
    assert_eq!(Env::get(&pairs, "A"), Some("2"));
    assert_eq!(Env::get(pairs.as_slice(), "B"), None);
    let map: HashMap<String, String> = HashMap::from([("A".into(), "x".into())]);
    assert_eq!(Lexer::default().process_word("$A", &map).unwrap(), "x");
    assert_eq!(
        build_envs(["A", "B=1=2", "B=3"]),
        BTreeMap::from([("A".into(), "".into()), ("B".into(), "3".into())])
    );
}

#[test]
fn never_panics_on_random_input() {
    let alphabet: Vec<char> = "${}:-+?#%/\\'\"` abAB01_*.[]é\u{feff}\n".chars().collect();
    let e = env();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..(seed % 16) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        for lex in [
            Lexer::new('\\'),
            Lexer::new('`')
                .raw_quotes(true)
                .skip_unset_env(true)
                .raw_escapes(true),
        ] {
            let _ = lex.process_word(&s, &e);
            let _ = lex.process_words(&s, &e);
        }
    }
}

/// `${V//p/r}` nested in its own replacement multiplies the length at
/// every level (the `expand` fuzz target's slow inputs: ~30 s and 1.6 GB
/// for 300 bytes). Past the bound it fails at once, whichever way the word
/// grows; up to the bound it expands as before.
#[test]
fn expansions_stop_at_the_bound() {
    let env = build_envs(["V=a.b.c", "EMPTY="]);
    let lex = Lexer::new('\\');
    // An empty pattern matches between all six characters: x7 per level.
    let mut nested = "x".to_string();
    for _ in 0..12 {
        nested = format!("${{V//$EMPTY/{nested}}}");
    }
    let started = std::time::Instant::now();
    let e = lex.process_word(&nested, &env).unwrap_err();
    assert_eq!(
        e.kind,
        ExpandErrorKind::TooLong {
            limit: MAX_EXPANDED_LEN
        }
    );
    assert!(
        e.to_string()
            .ends_with("expansion longer than 1048576 bytes"),
        "{e}"
    );
    assert!(lex.process_words(&nested, &env).is_err());
    assert!(lex.process_word(&format!("\"{nested}\""), &env).is_err());
    // Well under a second, whatever the machine: the work stops near
    // the bound instead of at 7^12 copies.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());

    // Growth by repetition, and by a single replacement, stop too.
    let big = "y".repeat(MAX_EXPANDED_LEN / 2 + 1);
    let env = build_envs([format!("B={big}").as_str(), "V=a.b.c"]);
    assert!(lex.process_word("$B$B", &env).is_err());
    assert!(lex.process_word("\"$B$B\"", &env).is_err());
    assert!(lex.process_word("${V/a/$B$B}", &env).is_err());
    assert!(lex.process_word("${B/y/$B}", &env).is_err());
    assert!(lex.process_word("${B//y/yy}", &env).is_err());
    // One copy is fine, and so is a word of exactly the bound.
    assert_eq!(lex.process_word("$B", &env).unwrap(), big);
    let exact = "z".repeat(MAX_EXPANDED_LEN);
    let env = build_envs([format!("E={exact}").as_str()]);
    assert_eq!(
        lex.process_word("${E}", &env).unwrap().len(),
        MAX_EXPANDED_LEN
    );
}

/// A pattern built up to near the word bound used to be compiled anyway
/// (0.1 s per level here, 6 s under the fuzzers' sanitizer, before the regex
/// crate's size limit refused it with the whole pattern in the message),
/// and a long pattern over a long value took seconds to match. Both fail at
/// once now, by length; below the bounds patterns work as before.
#[test]
fn costly_patterns_fail_at_once() {
    let lex = Lexer::new('\\');
    let costly = |pattern: usize, value: usize| ExpandErrorKind::PatternTooCostly {
        len: pattern,
        value_len: value,
        max_len: MAX_PATTERN_LEN,
        max_work: MAX_PATTERN_WORK,
    };
    // Too long whatever the value.
    let long = "p".repeat(MAX_PATTERN_LEN + 1);
    let env = build_envs([format!("L={long}").as_str(), "V=ppp"]);
    for word in [
        "${V/$L/x}",
        "${V//$L/x}",
        "${V#$L}",
        "${V##$L}",
        "${V%$L}",
        "${V%%$L}",
    ] {
        let e = lex.process_word(word, &env).unwrap_err();
        assert_eq!(e.kind, costly(MAX_PATTERN_LEN + 1, 3), "{word}");
        assert!(
            e.to_string().contains(
                "pattern of 65537 bytes over a value of 3 bytes in substitution: too costly"
            ),
            "{word}: {e}"
        );
    }
    // 1 KiB of `??*` over 512 Ki two-byte characters: 7 s before.
    let env = build_envs([
        format!("P={}", "??*".repeat(341)).as_str(),
        format!("U={}", "\u{e9}".repeat(512 * 1024)).as_str(),
    ]);
    let started = std::time::Instant::now();
    for word in ["${U/$P/x}", "${U//$P/x}", "${U#$P}", "${U%%$P}"] {
        let e = lex.process_word(word, &env).unwrap_err();
        assert_eq!(e.kind, costly(1023, 1024 * 1024), "{word}");
    }
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    // At the bounds, patterns still match.
    let exact = "p".repeat(MAX_PATTERN_LEN);
    let env = build_envs([format!("X={exact}").as_str(), "V=ab"]);
    assert_eq!(lex.process_word("${V%$X}", &env).unwrap(), "ab");
    let value = "p".repeat(MAX_PATTERN_WORK / 256);
    let env = build_envs([
        format!("P={}", "p".repeat(256)).as_str(),
        format!("W={value}").as_str(),
    ]);
    assert_eq!(
        lex.process_word("${W#$P}", &env).unwrap().len(),
        value.len() - 256
    );
}
