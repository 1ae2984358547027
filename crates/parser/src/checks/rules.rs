//! The rule table: BuildKit's Dockerfile checks (names, descriptions and
//! documentation links as in BuildKit's `linter/ruleset.go`) and rbk's own
//! advice rules, each with a reason and a suggested fix.

/// How loud a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Advice worth knowing; never fails a build.
    Info,
    /// BuildKit's level for every check (`WARN`).
    Warn,
}

/// Who defined a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// BuildKit's ruleset: runs in every build.
    BuildKit,
    /// rbk's advice: runs under `--check` and in `rbk analyze`.
    Rbk,
}

/// One check.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule name (`StageNameCasing`), as `# check=skip=` names it.
    pub name: &'static str,
    /// One line saying why it matters.
    pub description: &'static str,
    /// The documentation page.
    pub url: &'static str,
    /// Experimental rules run only when `# check=experimental=` names them.
    pub experimental: bool,
    /// How loud.
    pub level: Level,
    /// Who defined it.
    pub origin: Origin,
    /// What to do about it (rbk's rules; empty for BuildKit's).
    pub fix: &'static str,
}

const fn bk(name: &'static str, description: &'static str, url: &'static str) -> Rule {
    Rule {
        name,
        description,
        url,
        experimental: false,
        level: Level::Warn,
        origin: Origin::BuildKit,
        fix: "",
    }
}

/// rbk's rules are documented in the README's "Build checks" section.
const RBK_DOCS: &str = "";

const fn rbk(
    name: &'static str,
    level: Level,
    description: &'static str,
    fix: &'static str,
) -> Rule {
    Rule {
        name,
        description,
        url: RBK_DOCS,
        experimental: false,
        level,
        origin: Origin::Rbk,
        fix,
    }
}

/// BuildKit's `StageNameCasing`.
pub const STAGE_NAME_CASING: Rule = bk(
    "StageNameCasing",
    "Stage names should be lowercase",
    "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
);
/// BuildKit's `FromAsCasing`.
pub const FROM_AS_CASING: Rule = bk(
    "FromAsCasing",
    "The 'as' keyword should match the case of the 'from' keyword",
    "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
);
/// BuildKit's `NoEmptyContinuation`.
pub const NO_EMPTY_CONTINUATION: Rule = bk(
    "NoEmptyContinuation",
    "Empty continuation lines will become errors in a future release",
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
);
/// BuildKit's `ConsistentInstructionCasing`.
pub const CONSISTENT_INSTRUCTION_CASING: Rule = bk(
    "ConsistentInstructionCasing",
    "All commands within the Dockerfile should use the same casing (either upper or lower)",
    "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/",
);
/// BuildKit's `DuplicateStageName`.
pub const DUPLICATE_STAGE_NAME: Rule = bk(
    "DuplicateStageName",
    "Stage names should be unique",
    "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/",
);
/// BuildKit's `ReservedStageName`.
pub const RESERVED_STAGE_NAME: Rule = bk(
    "ReservedStageName",
    "Reserved words should not be used as stage names",
    "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/",
);
/// BuildKit's `JSONArgsRecommended`.
pub const JSON_ARGS_RECOMMENDED: Rule = bk(
    "JSONArgsRecommended",
    "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
);
/// BuildKit's `MaintainerDeprecated`.
pub const MAINTAINER_DEPRECATED: Rule = bk(
    "MaintainerDeprecated",
    "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
);
/// BuildKit's `UndefinedArgInFrom`.
pub const UNDEFINED_ARG_IN_FROM: Rule = bk(
    "UndefinedArgInFrom",
    "FROM command must use declared ARGs",
    "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/",
);
/// BuildKit's `WorkdirRelativePath`.
pub const WORKDIR_RELATIVE_PATH: Rule = bk(
    "WorkdirRelativePath",
    "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    "https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/",
);
/// BuildKit's `UndefinedVar`.
pub const UNDEFINED_VAR: Rule = bk(
    "UndefinedVar",
    "Variables should be defined before their use",
    "https://docs.docker.com/go/dockerfile/rule/undefined-var/",
);
/// BuildKit's `MultipleInstructionsDisallowed`.
pub const MULTIPLE_INSTRUCTIONS_DISALLOWED: Rule = bk(
    "MultipleInstructionsDisallowed",
    "Multiple instructions of the same type should not be used in the same stage",
    "https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/",
);
/// BuildKit's `LegacyKeyValueFormat`.
pub const LEGACY_KEY_VALUE_FORMAT: Rule = bk(
    "LegacyKeyValueFormat",
    "Legacy key/value format with whitespace separator should not be used",
    "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/",
);
/// BuildKit's `InvalidBaseImagePlatform` (no documentation page).
pub const INVALID_BASE_IMAGE_PLATFORM: Rule = bk(
    "InvalidBaseImagePlatform",
    "Base image platform does not match expected target platform",
    "",
);
/// BuildKit's `RedundantTargetPlatform`.
pub const REDUNDANT_TARGET_PLATFORM: Rule = bk(
    "RedundantTargetPlatform",
    "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    "https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/",
);
/// BuildKit's `SecretsUsedInArgOrEnv`.
pub const SECRETS_USED_IN_ARG_OR_ENV: Rule = bk(
    "SecretsUsedInArgOrEnv",
    "Sensitive data should not be used in the ARG or ENV commands",
    "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
);
/// BuildKit's `InvalidDefaultArgInFrom`.
pub const INVALID_DEFAULT_ARG_IN_FROM: Rule = bk(
    "InvalidDefaultArgInFrom",
    "Default value for global ARG results in an empty or invalid base image name",
    "https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/",
);
/// BuildKit's `FromPlatformFlagConstDisallowed`.
pub const FROM_PLATFORM_FLAG_CONST_DISALLOWED: Rule = bk(
    "FromPlatformFlagConstDisallowed",
    "FROM --platform flag should not use a constant value",
    "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/",
);
/// BuildKit's `CopyIgnoredFile`.
pub const COPY_IGNORED_FILE: Rule = bk(
    "CopyIgnoredFile",
    "Attempting to Copy file that is excluded by .dockerignore",
    "https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/",
);
/// BuildKit's `InvalidDefinitionDescription` (experimental).
pub const INVALID_DEFINITION_DESCRIPTION: Rule = Rule {
    experimental: true,
    ..bk(
        "InvalidDefinitionDescription",
        "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
        "https://docs.docker.com/go/dockerfile/rule/invalid-definition-description/",
    )
};
/// BuildKit's `ExposeProtoCasing`.
pub const EXPOSE_PROTO_CASING: Rule = bk(
    "ExposeProtoCasing",
    "Protocol in EXPOSE instruction should be lowercase",
    "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/",
);
/// BuildKit's `ExposeInvalidFormat`.
pub const EXPOSE_INVALID_FORMAT: Rule = bk(
    "ExposeInvalidFormat",
    "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/",
);

/// rbk: a broad COPY before a dependency install in the same stage.
pub const DEPENDENCY_INSTALL_AFTER_SOURCE_COPY: Rule = rbk(
    "DependencyInstallAfterSourceCopy",
    Level::Warn,
    "Copying the whole source before installing dependencies reruns the install on every source edit",
    "COPY only the dependency manifests (package.json, requirements.txt, Cargo.toml, go.mod, Gemfile, …) first, run the install, then COPY the rest",
);
/// rbk: `apt-get install` without removing `/var/lib/apt/lists` in the same RUN.
pub const APT_LISTS_NOT_REMOVED: Rule = rbk(
    "AptListsNotRemoved",
    Level::Warn,
    "apt package lists downloaded by apt-get update stay in the layer",
    "end the same RUN with `&& rm -rf /var/lib/apt/lists/*` (or use a cache mount for /var/lib/apt/lists)",
);
/// rbk: `apt-get install` without `--no-install-recommends`.
pub const APT_INSTALL_WITHOUT_NO_INSTALL_RECOMMENDS: Rule = rbk(
    "AptInstallWithoutNoInstallRecommends",
    Level::Info,
    "apt-get install also installs recommended packages, which the image rarely needs",
    "add --no-install-recommends to apt-get install",
);
/// rbk: the context sent is much larger than what COPY/ADD use.
pub const LARGE_CONTEXT_SENT_FOR_SMALL_COPY: Rule = rbk(
    "LargeContextSentForSmallCopy",
    Level::Warn,
    "The build context is much larger than what COPY/ADD use, so every build reads and hashes files it never needs",
    "list what the build does not need (.git, node_modules, build output, data) in .dockerignore",
);
/// rbk: a path added by one layer and removed by a later one of the stage.
pub const DELETED_IN_LATER_LAYER: Rule = rbk(
    "DeletedInLaterLayer",
    Level::Warn,
    "A file deleted in a later layer still ships in the earlier layer that added it",
    "create and delete temporary files in the same RUN, or build them in another stage and COPY --from only the result",
);

/// Every rule rbk knows, BuildKit's first.
pub const ALL: &[&Rule] = &[
    &STAGE_NAME_CASING,
    &FROM_AS_CASING,
    &NO_EMPTY_CONTINUATION,
    &CONSISTENT_INSTRUCTION_CASING,
    &DUPLICATE_STAGE_NAME,
    &RESERVED_STAGE_NAME,
    &JSON_ARGS_RECOMMENDED,
    &MAINTAINER_DEPRECATED,
    &UNDEFINED_ARG_IN_FROM,
    &WORKDIR_RELATIVE_PATH,
    &UNDEFINED_VAR,
    &MULTIPLE_INSTRUCTIONS_DISALLOWED,
    &LEGACY_KEY_VALUE_FORMAT,
    &INVALID_BASE_IMAGE_PLATFORM,
    &REDUNDANT_TARGET_PLATFORM,
    &SECRETS_USED_IN_ARG_OR_ENV,
    &INVALID_DEFAULT_ARG_IN_FROM,
    &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    &COPY_IGNORED_FILE,
    &INVALID_DEFINITION_DESCRIPTION,
    &EXPOSE_PROTO_CASING,
    &EXPOSE_INVALID_FORMAT,
    &DEPENDENCY_INSTALL_AFTER_SOURCE_COPY,
    &APT_LISTS_NOT_REMOVED,
    &APT_INSTALL_WITHOUT_NO_INSTALL_RECOMMENDS,
    &LARGE_CONTEXT_SENT_FOR_SMALL_COPY,
    &DELETED_IN_LATER_LAYER,
];

/// The rule called `name` (exact, as BuildKit compares).
pub fn find(name: &str) -> Option<&'static Rule> {
    ALL.iter().copied().find(|r| r.name == name)
}
