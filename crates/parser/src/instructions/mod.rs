//! Typed instructions: each [`Node`] of the parse tree becomes a
//! [`Command`] (or a [`Stage`] for `FROM`) with its flags checked, following
//! BuildKit's `frontend/dockerfile/instructions`.
//!
//! Nothing is expanded here: words keep their `$VAR`s and quotes, and
//! [`crate::lower`] expands the instructions BuildKit expands, with the
//! scope in effect at that point of the stage.

mod copy;
mod duration;
mod flags;
mod meta;
mod mount;
mod run;

use crate::error::{Error, Location};
use crate::syntax::{Node, Span};

pub use copy::{CopyCommand, CopySource};
pub use duration::{format_go_duration, parse_go_duration};
pub use meta::{ArgDecl, KeyValue};
pub use mount::{parse_mount, Expander, MountType, RunMount, Sharing};
pub use run::{CmdLine, HealthcheckCommand, InlineFile, RunCommand};

pub(crate) use copy::heredoc_word;
pub(crate) use flags::{FlagKind, Flags};

/// A Dockerfile split into global ARGs and stages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`.
    pub meta_args: Vec<Command>,
    /// The stages, in file order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base as written (expanded during lowering).
    pub base_name: String,
    /// `--platform`, as written.
    pub platform: Option<String>,
    /// The instructions of the stage.
    pub commands: Vec<Command>,
    /// The `FROM` line as written.
    pub original: String,
    /// Where the `FROM` is.
    pub span: Span,
}

/// One instruction with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// What it says.
    pub instruction: Instruction,
    /// The instruction as written.
    pub original: String,
    /// Where it is.
    pub span: Span,
}

/// The typed instructions (every one but `FROM`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Instruction {
    /// `RUN`.
    Run(RunCommand),
    /// `CMD`.
    Cmd(CmdLine),
    /// `ENTRYPOINT`; an empty JSON array gives `None` args.
    Entrypoint(CmdLine),
    /// `SHELL` (JSON form only).
    Shell(Vec<String>),
    /// `LABEL k=v …`.
    Label(Vec<KeyValue>),
    /// `MAINTAINER`.
    Maintainer(String),
    /// `EXPOSE` port specs (sorted, unexpanded).
    Expose(Vec<String>),
    /// `ENV k=v …`.
    Env(Vec<KeyValue>),
    /// `ARG k[=v] …`.
    Arg(Vec<ArgDecl>),
    /// `ADD`.
    Add(CopyCommand),
    /// `COPY`.
    Copy(CopyCommand),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `USER`.
    User(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `ONBUILD`: the trigger as written after the keyword.
    Onbuild(String),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(HealthcheckCommand),
}

impl Instruction {
    /// The instruction keyword, upper case.
    pub fn name(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

/// What [`parse_node`] makes of one instruction node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A `FROM`.
    Stage(Stage),
    /// Anything else.
    Command(Command),
}

/// Splits the parse tree's root into global ARGs and stages.
pub fn parse_dockerfile(root: &Node, file: &str) -> Result<Dockerfile, Error> {
    let mut out = Dockerfile::default();
    for node in &root.children {
        match parse_node(node, file)? {
            Parsed::Stage(stage) => out.stages.push(stage),
            Parsed::Command(cmd) => match out.stages.last_mut() {
                Some(stage) => stage.commands.push(cmd),
                None if matches!(cmd.instruction, Instruction::Arg(_)) => out.meta_args.push(cmd),
                None => {
                    return Err(instruction_error(
                        file,
                        node.span,
                        "no build stage in current context".to_string(),
                    ))
                }
            },
        }
    }
    Ok(out)
}

/// Types one instruction node; errors name `file` and the node's lines.
pub fn parse_node(node: &Node, file: &str) -> Result<Parsed, Error> {
    let req = Request::new(node);
    parse_request(&req).map_err(|message| instruction_error(file, node.span, message))
}

pub(crate) fn instruction_error(file: &str, span: Span, message: String) -> Error {
    Error::Instruction {
        location: Location::lines(file, span.start_line, span.end_line),
        message,
    }
}

/// One node, flattened the way BuildKit's `parseRequest` sees it.
pub(crate) struct Request<'a> {
    pub(crate) node: &'a Node,
    /// The argument words, borrowed from the node.
    pub(crate) args: Vec<&'a str>,
}

impl<'a> Request<'a> {
    fn new(node: &'a Node) -> Self {
        Request {
            node,
            args: node_args(&node.next),
        }
    }

    /// Checks the node's flags against `spec`.
    pub(crate) fn flags(&self, spec: &[(&str, FlagKind)]) -> Result<Flags, String> {
        Flags::parse(&self.node.flags, spec)
    }
}

fn node_args(next: &[Node]) -> Vec<&str> {
    let mut out = Vec::with_capacity(next.len());
    for arg in next {
        match arg.children.as_slice() {
            [] => out.push(arg.value.as_str()),
            [child] => {
                out.push(child.value.as_str());
                out.extend(node_args(&child.next));
            }
            _ => {}
        }
    }
    out
}

fn parse_request(req: &Request<'_>) -> Result<Parsed, String> {
    // The parser lower-cases the name already; a hand-made node may not.
    let value = &req.node.value;
    let name = if value.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(value.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(value.as_str())
    };
    let instruction = match name.as_ref() {
        "from" => return parse_from(req).map(Parsed::Stage),
        "run" => Instruction::Run(run::parse_run(req)?),
        "cmd" => Instruction::Cmd(run::parse_cmd(req, false)?),
        "entrypoint" => Instruction::Entrypoint(run::parse_cmd(req, true)?),
        "shell" => Instruction::Shell(run::parse_shell(req)?),
        "healthcheck" => Instruction::Healthcheck(run::parse_healthcheck(req)?),
        "add" => Instruction::Add(copy::parse_copy(req, true)?),
        "copy" => Instruction::Copy(copy::parse_copy(req, false)?),
        other => meta::parse_meta(req, other)?,
    };
    Ok(Parsed::Command(Command {
        instruction,
        original: req.node.original.clone(),
        span: req.node.span,
    }))
}

fn parse_from(req: &Request<'_>) -> Result<Stage, String> {
    let args = &req.args;
    let name = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_ascii_lowercase();
            if !valid_stage_name(&name) {
                return Err(format!(
                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                    args[2]
                ));
            }
            Some(name)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".to_string()),
    };
    let flags = req.flags(&[("platform", FlagKind::String)])?;
    Ok(Stage {
        name,
        base_name: args[0].to_string(),
        platform: flags
            .string("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        commands: Vec::new(),
        original: req.node.original.trim().to_string(),
        span: req.node.span,
    })
}

/// `^[a-z][a-z0-9-_.]*$`, BuildKit's rule for stage names.
pub fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

pub(crate) fn err_at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

pub(crate) fn err_exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}
