//! Build checks: for every rule a Dockerfile that triggers it and one that
//! does not. The expected messages are BuildKit's (its
//! `dockerfile_check_test.go` and `linter/ruleset.go`), so they are
//! compared verbatim.

use std::collections::BTreeMap;

use rbk_parser::checks::{self, rules, Checks, Finding};
use rbk_parser::{lower, parse, LowerOptions};

/// Every finding (pure checks plus lowering's) that `# check=` leaves,
/// as `Rule: message (line N)`.
fn findings_with(text: &str, excludes: &[&str], build_args: &[(&str, &str)]) -> Vec<String> {
    let ast = parse(text, "Dockerfile").expect("parses");
    let opts = LowerOptions {
        context_excludes: excludes.iter().map(|s| s.to_string()).collect(),
        build_args: build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..LowerOptions::default()
    };
    let mut all: Vec<Finding> = checks::run(&ast, text, &opts);
    if let Ok(plan) = lower(&ast, &opts) {
        all.extend(plan.findings);
    }
    let config = Checks::new(ast.directives.check.as_deref(), None, text).expect("config");
    config
        .filter(all)
        .iter()
        .filter(|f| f.rule.origin == checks::Origin::BuildKit)
        .map(|f| f.to_string())
        .collect()
}

fn findings(text: &str) -> Vec<String> {
    findings_with(text, &[], &[])
}

/// (rule, Dockerfile that triggers it, the findings expected, Dockerfile that does not).
const CASES: &[(&str, &str, &[&str], &str)] = &[
    (
        "StageNameCasing",
        "\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n",
        &["StageNameCasing: Stage name 'BadStageName' should be lowercase (line 4)"],
        "FROM scratch AS good\n",
    ),
    (
        "FromAsCasing",
        "\nfrom scratch AS base\n\nfrom scratch as base2\n",
        &["FromAsCasing: 'AS' and 'from' keywords' casing do not match (line 2)"],
        "FROM scratch AS base\nFROM scratch AS base2\n",
    ),
    (
        "NoEmptyContinuation",
        "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n",
        &["NoEmptyContinuation: Empty continuation line (line 6)"],
        "FROM scratch\nCOPY Dockerfile \\\n.\n",
    ),
    (
        "ConsistentInstructionCasing",
        "\nFROM scratch\n# warning: 'copy' should match command majority's casing (uppercase)\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n",
        &["ConsistentInstructionCasing: Command 'copy' should match the case of the command majority (uppercase) (line 4)"],
        "\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n",
    ),
    (
        "DuplicateStageName",
        "\nFROM scratch AS b\nFROM scratch AS b\n",
        &["DuplicateStageName: Duplicate stage name \"b\", stage names should be unique (line 3)"],
        "\nFROM scratch AS b1\nFROM scratch AS b2\n",
    ),
    (
        "ReservedStageName",
        "\nFROM scratch AS scratch\nFROM scratch AS context\n",
        &[
            "ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (line 2)",
            "ReservedStageName: Stage name should not use the same name as reserved stage \"context\" (line 3)",
        ],
        "\nFROM scratch\nFROM scratch AS a\n",
    ),
    (
        "JSONArgsRecommended",
        "\nFROM scratch\nCMD mycommand\n",
        &["JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 3)"],
        "\nFROM scratch AS base\nSHELL [\"/usr/bin/customshell\"]\n\nFROM base\nENTRYPOINT mycommand\n",
    ),
    (
        "MaintainerDeprecated",
        "\nFROM scratch\nMAINTAINER me@example.org\n",
        &["MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 3)"],
        "\nFROM scratch\nLABEL org.opencontainers.image.authors=\"me@example.org\"\n",
    ),
    (
        "UndefinedArgInFrom",
        "\nFROM --platform=$BULIDPLATFORM scratch\n",
        &["UndefinedArgInFrom: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?) (line 2)"],
        "\nARG DEBUG\nFROM scratch${DEBUG}\n",
    ),
    (
        "WorkdirRelativePath",
        "\nFROM scratch\nWORKDIR app/\n",
        &["WorkdirRelativePath: Relative workdir \"app/\" can have unexpected results if the base image changes (line 3)"],
        "\nFROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n",
    ),
    (
        "UndefinedVar",
        "\nFROM scratch\nARG DIR_ASSETS=assets/\nCOPY $DIR_ASSET /\n",
        &["UndefinedVar: Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?) (line 4)"],
        "\nFROM scratch\nARG foo=Dockerfile\nCOPY $foo .\n",
    ),
    (
        "MultipleInstructionsDisallowed",
        "\nFROM scratch\nENTRYPOINT [\"/myapp\"]\nENTRYPOINT [\"/myotherapp\"]\nCMD [\"/myapp\"]\nCMD [\"/myotherapp\"]\nHEALTHCHECK CMD [\"/myapp\"]\nHEALTHCHECK CMD [\"/myotherapp\"]\n",
        &[
            "MultipleInstructionsDisallowed: Multiple ENTRYPOINT instructions should not be used in the same stage because only the last one will be used (line 3)",
            "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 5)",
            "MultipleInstructionsDisallowed: Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used (line 7)",
        ],
        "\nFROM scratch AS a\nENTRYPOINT [\"/myapp\"]\nCMD [\"/myapp\"]\nHEALTHCHECK CMD [\"/myapp\"]\n\nFROM a AS b\nENTRYPOINT [\"/myotherapp\"]\nCMD [\"/myotherapp\"]\nHEALTHCHECK CMD [\"/myotherapp\"]\n",
    ),
    (
        "LegacyKeyValueFormat",
        "\nFROM scratch\nENV testkey value\nLABEL testkey value\n",
        &[
            "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 3)",
            "LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format (line 4)",
        ],
        "\nFROM scratch\nENV testkey=value\nLABEL testkey=value\n",
    ),
    (
        "RedundantTargetPlatform",
        "\nFROM --platform=${TARGETPLATFORM} scratch\n",
        &["RedundantTargetPlatform: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior (line 2)"],
        "# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n",
    ),
    (
        "SecretsUsedInArgOrEnv",
        "FROM scratch\nARG SECRET_PASSPHRASE\nENV password=bar secret=baz\n",
        &[
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"SECRET_PASSPHRASE\") (line 2)",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"password\") (line 3)",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"secret\") (line 3)",
        ],
        "FROM scratch\nENV PUBLIC_KEY= sunflower=foo\nARG public_token\nARG SECRET_PASSPHRASE_FILE\nARG AUTH_MODULE_VERSION\n# check=skip=SecretsUsedInArgOrEnv // allow secret in environment\nENV password=bar\n",
    ),
    (
        "InvalidDefaultArgInFrom",
        "\nARG IMAGE\nFROM $IMAGE\n",
        &["InvalidDefaultArgInFrom: Default value for ARG $IMAGE results in empty or invalid base image name (line 3)"],
        "\nARG VERSION=\"latest\"\nFROM busybox:${VERSION}\n",
    ),
    (
        "FromPlatformFlagConstDisallowed",
        "\nFROM --platform=linux/amd64 scratch\n",
        &["FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 2)"],
        "\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n",
    ),
    (
        "InvalidDefinitionDescription",
        "# check=experimental=InvalidDefinitionDescription\n# bar this is the bar\nARG foo=bar\n# BasE this is the BasE image\nFROM scratch AS base\n# definitely a bad comment\nARG foo=baz bar=qux baz=quux\n",
        &[
            "InvalidDefinitionDescription: Comment for ARG should follow the format: `# foo <description>` (line 3)",
            "InvalidDefinitionDescription: Comment for FROM should follow the format: `# base <description>` (line 5)",
            "InvalidDefinitionDescription: Comment for ARG should follow the format: `# <arg_key> <description>` (line 7)",
        ],
        "# check=skip=all;experimental=InvalidDefinitionDescription\n# foo this is the foo\nARG foo=bar\n\n# base this is the base image\nFROM scratch AS base\n#\nARG bit=bat\n",
    ),
    (
        "ExposeProtoCasing",
        "\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n",
        &[
            "ExposeProtoCasing: Defined protocol '80/TcP' in EXPOSE instruction should be lowercase (line 3)",
            "ExposeProtoCasing: Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase (line 3)",
        ],
        "\nFROM scratch\nEXPOSE 80/tcp 8080/udp 9000\n",
    ),
    (
        "ExposeInvalidFormat",
        "\nFROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n",
        &[
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80' (line 3)",
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080' (line 3)",
            "ExposeInvalidFormat: EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000' (line 3)",
        ],
        "\nFROM scratch\nEXPOSE 8000 9000/udp\n",
    ),
];

#[test]
fn every_buildkit_rule_has_a_positive_and_a_negative_case() {
    let mut failures = Vec::new();
    for (rule, bad, expected, good) in CASES {
        let got = findings(bad);
        if got != *expected {
            failures.push(format!(
                "{rule} positive:\n  want {expected:?}\n  got  {got:?}"
            ));
        }
        let got = findings(good);
        if !got.is_empty() {
            failures.push(format!("{rule} negative: got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every rule BuildKit documents is covered (InvalidBaseImagePlatform
    // needs a pulled image and CopyIgnoredFile the context: tested apart).
    for rule in rules::ALL
        .iter()
        .filter(|r| r.origin == checks::Origin::BuildKit)
    {
        let covered = CASES.iter().any(|c| c.0 == rule.name)
            || ["CopyIgnoredFile", "InvalidBaseImagePlatform"].contains(&rule.name);
        assert!(covered, "{} has no case", rule.name);
    }
}

#[test]
fn copy_ignored_file_uses_the_dockerignore_patterns() {
    let text = "\nFROM scratch\nCOPY Dockerfile .\nADD Dockerfile /windy\nCOPY src /src\n";
    assert_eq!(
        findings_with(text, &["Dockerfile"], &[]),
        [
            "CopyIgnoredFile: Attempting to Copy file \"Dockerfile\" that is excluded by .dockerignore (line 3)",
            "CopyIgnoredFile: Attempting to Add file \"Dockerfile\" that is excluded by .dockerignore (line 4)",
        ]
    );
    // `!` exceptions turn the check off, as in BuildKit; so does no match.
    assert!(findings_with(text, &["Dockerfile", "!Dockerfile"], &[]).is_empty());
    assert!(findings_with(text, &["other"], &[]).is_empty());
    // The context root only when everything is ignored.
    let root = "FROM scratch\nCOPY . /app\n";
    assert!(findings_with(root, &["node_modules"], &[]).is_empty());
    assert_eq!(
        findings_with(root, &["*"], &[]),
        ["CopyIgnoredFile: Attempting to Copy file \".\" that is excluded by .dockerignore (line 2)"]
    );
}

#[test]
fn skips_errors_and_per_instruction_comments() {
    let text = "# check=skip=MaintainerDeprecated;error=true\nFROM scratch AS Bad\nMAINTAINER me\n# check=skip=JSONArgsRecommended\nCMD run\nENTRYPOINT run\n";
    let got = findings(text);
    assert_eq!(
        got,
        [
            "StageNameCasing: Stage name 'Bad' should be lowercase (line 2)",
            "JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals (line 6)",
        ]
    );
    let ast = parse(text, "Dockerfile").unwrap();
    let checks = Checks::new(ast.directives.check.as_deref(), None, text).unwrap();
    let shown = checks.filter(checks::run(&ast, text, &LowerOptions::default()));
    assert_eq!(
        checks.violation(&shown).as_deref(),
        Some("lint violation found for rules: JSONArgsRecommended, StageNameCasing")
    );
    // The build arg replaces the directive.
    let all = Checks::new(ast.directives.check.as_deref(), Some("skip=all"), text).unwrap();
    assert!(all
        .filter(checks::run(&ast, text, &LowerOptions::default()))
        .is_empty());
    assert_eq!(all.violation(&[]), None);
}

#[test]
fn unknown_rule_names_and_bad_options_are_reported() {
    let checks = Checks::new(Some("skip=JSONArgsRecomended,StageNameCasing"), None, "").unwrap();
    assert_eq!(
        checks.notes,
        ["the # check= directive names \"JSONArgsRecomended\", which is no build check (did you mean JSONArgsRecommended?); it has no effect"]
    );
    let err = Checks::new(Some("skip=A;bogus"), None, "").unwrap_err();
    assert_eq!(
        err,
        "the # check= directive: invalid check option \"bogus\""
    );
}

#[test]
fn rbk_advice_names_the_instructions() {
    let text = "FROM debian\nWORKDIR /app\nCOPY . .\nRUN apt-get update && apt-get install -y gcc\nRUN npm ci\n";
    let ast = parse(text, "Dockerfile").unwrap();
    let got: Vec<String> = checks::run(&ast, text, &LowerOptions::default())
        .iter()
        .filter(|f| f.rule.origin == checks::Origin::Rbk)
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "DependencyInstallAfterSourceCopy: `apt-get install` runs after the whole context was copied (line 3): any source edit reruns it (line 4)",
            "AptListsNotRemoved: apt-get update without `rm -rf /var/lib/apt/lists/*` in the same RUN leaves the package lists in the layer (line 4)",
            "AptInstallWithoutNoInstallRecommends: apt-get install without --no-install-recommends also installs recommended packages (line 4)",
            "DependencyInstallAfterSourceCopy: `npm ci` runs after the whole context was copied (line 3): any source edit reruns it (line 5)",
        ]
    );
    let good = "FROM debian\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nRUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*\nCOPY . .\n";
    let ast = parse(good, "Dockerfile").unwrap();
    let rbk: Vec<Finding> = checks::run(&ast, good, &LowerOptions::default())
        .into_iter()
        .filter(|f| f.rule.origin == checks::Origin::Rbk)
        .collect();
    assert!(rbk.is_empty(), "{rbk:?}");
    assert_eq!(
        rules::APT_INSTALL_WITHOUT_NO_INSTALL_RECOMMENDS.level,
        rules::Level::Info
    );
    assert!(rules::ALL
        .iter()
        .filter(|r| r.origin == checks::Origin::Rbk)
        .all(|r| !r.fix.is_empty()));
}

#[test]
fn large_context_advice() {
    use checks::{context_advice, ContextUse};
    let big = ContextUse {
        sent: 200 << 20,
        used: 1 << 20,
        files: 1000,
    };
    let f = context_advice(big).expect("finding");
    assert_eq!(f.rule.name, "LargeContextSentForSmallCopy");
    assert!(
        f.message.contains("200.0 MiB in 1000 files"),
        "{}",
        f.message
    );
    assert!(context_advice(ContextUse {
        sent: 200 << 20,
        used: 100 << 20,
        files: 10
    })
    .is_none());
    assert!(context_advice(ContextUse {
        sent: 1 << 20,
        used: 0,
        files: 10
    })
    .is_none());
}
