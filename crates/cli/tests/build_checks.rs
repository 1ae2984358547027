//! Build checks through the binary (issue 16): `--check` and
//! `--call=check,format=json` run no step, normal builds print
//! `WARN: Rule: message (line N)`, `# check=error=true` fails the build,
//! rbk's advice appears under `--check` only, and bad check settings get a
//! clear message.

use std::path::PathBuf;

mod support;

use support::{build, context, rbk, stderr, stdout, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("build-checks-{name}"))
}

const DOCKERFILE: &str =
    "FROM rbk-busybox AS Build\nMAINTAINER me\nRUN echo ran-the-step > /ran\nCMD run\n";

#[test]
fn check_runs_no_step_and_reports_like_buildx() {
    let dir = scratch("check");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", DOCKERFILE)]);
    let out = build(&root, &ctx, &["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Check complete, 3 warnings have been found!\n"),
        "{text}"
    );
    for expected in [
        "WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\nStage name 'Build' should be lowercase\nDockerfile:1\n",
        "WARNING: MaintainerDeprecated - https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/\nMaintainer instruction is deprecated in favor of using label\n",
        "WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/\nJSON arguments recommended for CMD to prevent unintended behavior related to OS signals\nDockerfile:4\n",
        "   4 | >>> CMD run\n",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    // No step ran and no image was made.
    assert!(
        !stderr(&out).contains("DONE"),
        "a step ran:\n{}",
        stderr(&out)
    );
    let images = stdout(&rbk(&root, &["images", "-q"]));
    assert_eq!(images.lines().count(), 1, "only the base image: {images}");

    let out = build(&root, &ctx, &["--call=check,format=json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let w = &json["warnings"][0];
    assert_eq!(w["ruleName"], "StageNameCasing");
    assert_eq!(w["description"], "Stage names should be lowercase");
    assert_eq!(w["detail"], "Stage name 'Build' should be lowercase");
    assert_eq!(
        w["url"],
        "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
    );
    assert_eq!(w["location"]["ranges"][0]["start"]["line"], 1);
    assert_eq!(json["warnings"].as_array().unwrap().len(), 3);
    assert_eq!(json["sources"][0]["filename"], "Dockerfile");

    let clean = context(&dir, &[("Dockerfile", "FROM rbk-busybox\nCMD [\"run\"]\n")]);
    let out = build(&root, &clean, &["--check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Check complete, no warnings found.\n");

    let out = build(&root, &clean, &["--call=outline"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unsupported --call method \"outline\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn builds_warn_and_error_true_fails_before_any_step() {
    let dir = scratch("warn");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", DOCKERFILE)]);
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for line in [
        "WARN: StageNameCasing: Stage name 'Build' should be lowercase (line 1)\n",
        "WARN: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)\n",
        "WARN: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 4)\n",
    ] {
        assert!(err.contains(line), "{line:?} not in:\n{err}");
    }

    let failing = format!(
        "# check=error=true;skip=MaintainerDeprecated,NoSuchRule\n{}",
        DOCKERFILE.replace("ran-the-step", "step-two")
    );
    let ctx = context(&dir, &[("Dockerfile", &failing)]);
    let out = build(&root, &ctx, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("WARN: StageNameCasing: Stage name 'Build' should be lowercase (line 2)"),
        "{err}"
    );
    assert!(!err.contains("MaintainerDeprecated"), "{err}");
    assert!(
        err.contains(
            "WARNING: the # check= directive names \"NoSuchRule\", which is no build check"
        ),
        "{err}"
    );
    assert!(
        err.contains("ERROR: lint violation found for rules: JSONArgsRecommended, StageNameCasing"),
        "{err}"
    );
    assert!(!err.contains("step-two"), "a step ran:\n{err}");

    // The build arg overrides the directive, as in BuildKit.
    let out = build(
        &root,
        &ctx,
        &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARN:"), "{}", stderr(&out));
}

#[test]
fn unknown_check_names_and_bad_options_are_explained() {
    let dir = scratch("bad-config");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "# check=skip=JSONArgsRecomended\nFROM rbk-busybox\nCMD run\n",
        )],
    );
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("WARNING: the # check= directive names \"JSONArgsRecomended\", which is no build check (did you mean JSONArgsRecommended?); it has no effect"),
        "{err}"
    );
    // The misspelt skip skips nothing.
    assert!(err.contains("WARN: JSONArgsRecommended:"), "{err}");

    let ctx = context(
        &dir,
        &[("Dockerfile", "# check=error=maybe\nFROM rbk-busybox\n")],
    );
    let out = build(&root, &ctx, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "Dockerfile: the # check= directive: failed to parse check option \"error=maybe\""
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rbk_advice_and_ignored_copies_need_the_context() {
    let dir = scratch("advice");
    let root = store(&dir);
    let text = "FROM rbk-busybox\nWORKDIR /app\nCOPY . .\nRUN apt-get update && apt-get install -y gcc\nCOPY secret.txt /s\n";
    // 12 MiB of data the build never needs, beside a small source file.
    let big = "x".repeat(12 << 20);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", text),
            (".dockerignore", "secret.txt\n"),
            ("secret.txt", "s"),
            ("src/main.c", "int main(){}"),
            ("data/blob.bin", &big),
        ],
    );
    let out = build(&root, &ctx, &["--check"]);
    let text_out = stdout(&out);
    assert!(text_out.contains("WARNING: CopyIgnoredFile - https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/\nAttempting to Copy file \"secret.txt\" that is excluded by .dockerignore\n"), "{text_out}");
    assert!(text_out.contains("WARNING: DependencyInstallAfterSourceCopy\n`apt-get install` runs after the whole context was copied (line 3): any source edit reruns it\nWhy: "), "{text_out}");
    assert!(
        text_out.contains("WARNING: AptListsNotRemoved\n"),
        "{text_out}"
    );
    assert!(
        text_out.contains("INFO: AptInstallWithoutNoInstallRecommends\n"),
        "{text_out}"
    );
    assert!(
        text_out.contains("Fix: add --no-install-recommends to apt-get install"),
        "{text_out}"
    );
    // `COPY . .` uses the whole context: no LargeContext advice.
    assert!(
        !text_out.contains("LargeContextSentForSmallCopy"),
        "{text_out}"
    );

    let small = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nCOPY src/ /src/\n")],
    );
    let out = build(&root, &small, &["--check"]);
    let text_out = stdout(&out);
    assert!(text_out.contains("WARNING: LargeContextSentForSmallCopy\nthe context is 12.0 MiB in 4 files but COPY/ADD use 0.0 MiB"), "{text_out}");
    assert!(
        text_out.contains("Fix: list what the build does not need"),
        "{text_out}"
    );
    // A normal build shows BuildKit's rules only.
    let out = build(&root, &small, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("LargeContext"), "{}", stderr(&out));
}
