//! rbk's own advice, from the rules every image-building course teaches:
//! order instructions so the cache can reuse the dependency install, and
//! keep package-manager leftovers out of layers. Each finding names the
//! instructions involved; the rule carries the reason and the fix.

use super::rules::*;
use super::{Finding, Nodes};
use crate::instructions::{parse_mount, CopySource, Instruction, MountType, Parsed, RunCommand};
use crate::Span;

/// Words that start a dependency install, per package manager.
const INSTALLERS: &[&str] = &[
    "apt-get install",
    "apt install",
    "apk add",
    "pip install",
    "pip3 install",
    "poetry install",
    "pipenv install",
    "uv sync",
    "npm install",
    "npm ci",
    "yarn install",
    "pnpm install",
    "cargo build",
    "cargo fetch",
    "go mod download",
    "go build",
    "bundle install",
    "composer install",
    "mvn ",
    "gradle ",
    "dotnet restore",
];

/// The text a RUN executes: the shell line or the exec words, plus heredoc bodies.
fn run_text(run: &RunCommand) -> String {
    let mut text = run.cmd.args.join(" ");
    for f in &run.cmd.files {
        text.push('\n');
        text.push_str(&f.data);
    }
    // Continuations and doubled spaces should not hide a match.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn installer(text: &str) -> Option<&'static str> {
    INSTALLERS.iter().copied().find(|w| text.contains(w))
}

/// A COPY/ADD of the whole context (`.`, `./`, `*`, `/`), unless `--from`.
fn broad_copy(ins: &Instruction) -> bool {
    let (Instruction::Copy(c) | Instruction::Add(c)) = ins else {
        return false;
    };
    c.from.is_none()
        && c.sources.iter().any(|s| {
            matches!(s, CopySource::Path(p) if matches!(p.trim_end_matches('/'), "." | "" | "*" | "./*"))
        })
}

fn cache_mount_on(run: &RunCommand, dir: &str) -> bool {
    run.mounts.iter().any(|m| {
        parse_mount(m, None).is_ok_and(|m| {
            m.kind == MountType::Cache
                && m.target
                    .as_deref()
                    .is_some_and(|t| dir.starts_with(t.trim_end_matches('/')))
        })
    })
}

pub(super) fn dockerfile_advice(nodes: &Nodes<'_>, out: &mut Vec<Finding>) {
    let mut broad: Option<Span> = None;
    for (node, parsed) in nodes {
        let cmd = match parsed {
            Parsed::Stage(_) => {
                broad = None;
                continue;
            }
            Parsed::Command(cmd) => cmd,
        };
        if broad_copy(&cmd.instruction) && broad.is_none() {
            broad = Some(node.span);
        }
        let Instruction::Run(run) = &cmd.instruction else {
            continue;
        };
        let text = run_text(run);
        if let (Some(copy), Some(tool)) = (broad, installer(&text)) {
            let msg = format!(
                "`{}` runs after the whole context was copied (line {}): any source edit reruns it",
                tool.trim(),
                copy.start_line
            );
            out.push(Finding::new(
                &DEPENDENCY_INSTALL_AFTER_SOURCE_COPY,
                msg,
                node.span,
            ));
        }
        apt(run, &text, node.span, out);
    }
}

fn apt(run: &RunCommand, text: &str, span: Span, out: &mut Vec<Finding>) {
    let installs = text.contains("apt-get install") || text.contains("apt install");
    if !installs {
        return;
    }
    let updates = text.contains("apt-get update") || text.contains("apt update");
    let removed = text.contains("/var/lib/apt/lists");
    if updates && !removed && !cache_mount_on(run, "/var/lib/apt/lists") {
        let msg = "apt-get update without `rm -rf /var/lib/apt/lists/*` in the same RUN leaves the package lists in the layer".to_string();
        out.push(Finding::new(&APT_LISTS_NOT_REMOVED, msg, span));
    }
    let no_recommends = text.contains("--no-install-recommends")
        || text.contains("Install-Recommends=false")
        || text.contains("Install-Recommends=0");
    if !no_recommends {
        let msg =
            "apt-get install without --no-install-recommends also installs recommended packages"
                .to_string();
        out.push(Finding::new(
            &APT_INSTALL_WITHOUT_NO_INSTALL_RECOMMENDS,
            msg,
            span,
        ));
    }
}

/// How much of the context a build reads, for `LargeContextSentForSmallCopy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextUse {
    /// Bytes of the context after `.dockerignore` (what is transferred).
    pub sent: u64,
    /// Bytes under the paths COPY/ADD name.
    pub used: u64,
    /// Files in the context after `.dockerignore`.
    pub files: u64,
}

/// `LargeContextSentForSmallCopy`: more than 10 MiB sent and under a tenth
/// of it used.
pub fn context_advice(usage: ContextUse) -> Option<Finding> {
    const LARGE: u64 = 10 << 20;
    if usage.sent < LARGE || usage.used.saturating_mul(10) >= usage.sent {
        return None;
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    Some(Finding {
        rule: &LARGE_CONTEXT_SENT_FOR_SMALL_COPY,
        message: format!(
            "the context is {:.1} MiB in {} files but COPY/ADD use {:.1} MiB; add what the build does not need to .dockerignore",
            mib(usage.sent),
            usage.files,
            mib(usage.used)
        ),
        line: 0,
        end_line: 0,
    })
}
