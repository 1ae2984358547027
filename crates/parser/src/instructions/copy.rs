//! ADD and COPY.

use super::{FlagKind, InlineFile, Request};

/// One source of ADD/COPY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// A path, wildcard or URL, unexpanded.
    Path(String),
    /// A heredoc (`COPY <<EOF /dest`), its name is the file name.
    Heredoc(InlineFile),
}

/// ADD or COPY with their flags (unexpanded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyCommand {
    /// Sources in order.
    pub sources: Vec<CopySource>,
    /// The destination.
    pub dest: String,
    /// `--from` (COPY only).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--exclude`, repeatable.
    pub exclude: Vec<String>,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack` (ADD only), when given.
    pub unpack: Option<bool>,
}

const ADD_FLAGS: &[(&str, FlagKind)] = &[
    ("exclude", FlagKind::Strings),
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("keep-git-dir", FlagKind::Bool),
    ("checksum", FlagKind::String),
    ("unpack", FlagKind::Bool),
];

const COPY_FLAGS: &[(&str, FlagKind)] = &[
    ("exclude", FlagKind::Strings),
    ("parents", FlagKind::Bool),
    ("chown", FlagKind::String),
    ("from", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
];

pub(super) fn parse_copy(req: &Request<'_>, add: bool) -> Result<CopyCommand, String> {
    let cmd = if add { "ADD" } else { "COPY" };
    if req.args.len() < 2 {
        return Err(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let flags = req.flags(if add { ADD_FLAGS } else { COPY_FLAGS })?;
    let (srcs, dest) = req.args.split_at(req.args.len() - 1);
    let dest = dest[0].to_string();
    if heredoc_word(&dest).is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let sources = srcs
        .iter()
        .map(|src| match heredoc_word(src) {
            Some((name, chomp)) => {
                let doc = req.node.heredocs.iter().find(|h| h.name == name);
                CopySource::Heredoc(InlineFile {
                    data: doc.map(|h| h.content.clone()).unwrap_or_default(),
                    expand: doc.is_none_or(|h| h.expand),
                    chomp: doc.map_or(chomp, |h| h.chomp),
                    name,
                })
            }
            None => CopySource::Path(src.to_string()),
        })
        .collect();
    let string = |name: &str| {
        flags
            .string(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    Ok(CopyCommand {
        sources,
        dest,
        from: string("from"),
        chown: string("chown"),
        chmod: string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.strings("exclude"),
        checksum: string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.used("unpack").then(|| flags.bool("unpack")),
    })
}

/// Recognises a heredoc word (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) and
/// returns its name and whether it chomps tabs.
pub(crate) fn heredoc_word(word: &str) -> Option<(String, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    let name = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest.strip_prefix(q)?.strip_suffix(q)?,
        _ => rest,
    };
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| (name.to_string(), chomp))
}
