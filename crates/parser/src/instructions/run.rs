//! Instructions with a command line: RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK.

use rbk_graph::{NetworkMode, SecurityMode};

use super::{err_at_least_one, parse_go_duration, parse_mount, FlagKind, Request};

/// A command in shell or exec form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CmdLine {
    /// Exec form: the JSON array. Shell form: one element, the command text.
    pub args: Vec<String>,
    /// Shell form: the stage's SHELL is put in front.
    pub prepend_shell: bool,
    /// Heredocs opened on the line (`RUN <<EOF`).
    pub files: Vec<InlineFile>,
}

/// A heredoc body attached to a command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InlineFile {
    /// The delimiter word.
    pub name: String,
    /// The body as written (chomping is applied by the consumer).
    pub data: String,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
    /// Variables expand in the body.
    pub expand: bool,
}

impl InlineFile {
    /// The body with `<<-` chomping applied.
    pub fn content(&self) -> String {
        if !self.chomp {
            return self.data.clone();
        }
        self.data
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// `RUN`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunCommand {
    /// The command.
    pub cmd: CmdLine,
    /// `--mount` values as written; [`parse_mount`] reads them once the
    /// stage's variables are known.
    pub mounts: Vec<String>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: SecurityMode,
}

/// `HEALTHCHECK`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthcheckCommand {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// `--interval`, nanoseconds (0: default).
    pub interval: u64,
    /// `--timeout`, nanoseconds.
    pub timeout: u64,
    /// `--start-period`, nanoseconds.
    pub start_period: u64,
    /// `--start-interval`, nanoseconds.
    pub start_interval: u64,
    /// `--retries` (0: default).
    pub retries: i64,
}

fn cmd_line(req: &Request<'_>) -> CmdLine {
    let args = if req.node.json || req.args.is_empty() {
        req.args.iter().map(|a| a.to_string()).collect()
    } else {
        vec![req.args.join(" ")]
    };
    let files = req
        .node
        .heredocs
        .iter()
        .map(|h| InlineFile {
            name: h.name.clone(),
            data: h.content.clone(),
            chomp: h.chomp,
            expand: h.expand,
        })
        .collect();
    CmdLine {
        args,
        prepend_shell: !req.node.json,
        files,
    }
}

pub(super) fn parse_run(req: &Request<'_>) -> Result<RunCommand, String> {
    let flags = req.flags(&[
        ("mount", FlagKind::Strings),
        ("network", FlagKind::String),
        ("security", FlagKind::String),
    ])?;
    let mounts = flags.strings("mount");
    for m in &mounts {
        parse_mount(m, None)?;
    }
    let network = match flags.string("network").unwrap_or("default") {
        "default" => NetworkMode::Default,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => return Err(format!("unsupported network mode {other:?}")),
    };
    let security = match flags.string("security").unwrap_or("sandbox") {
        "sandbox" => SecurityMode::Sandbox,
        "insecure" => SecurityMode::Insecure,
        other => return Err(format!("unsupported security mode {other:?}")),
    };
    Ok(RunCommand {
        cmd: cmd_line(req),
        mounts,
        network,
        security,
    })
}

/// CMD and ENTRYPOINT.
pub(super) fn parse_cmd(req: &Request<'_>, _empty_as_none: bool) -> Result<CmdLine, String> {
    req.flags(&[])?;
    Ok(cmd_line(req))
}

pub(super) fn parse_shell(req: &Request<'_>) -> Result<Vec<String>, String> {
    req.flags(&[])?;
    let line = cmd_line(req);
    if line.args.is_empty() {
        return Err(err_at_least_one("SHELL"));
    }
    if !req.node.json {
        return Err(format!(
            "SHELL requires the arguments to be in JSON form: {}",
            req.node.original.trim()
        ));
    }
    Ok(line.args)
}

pub(super) fn parse_healthcheck(req: &Request<'_>) -> Result<HealthcheckCommand, String> {
    let Some(kind) = req.args.first() else {
        return Err(err_at_least_one("HEALTHCHECK"));
    };
    let kind = kind.to_ascii_uppercase();
    let rest = &req.args[1..];
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(HealthcheckCommand {
            test: vec![kind],
            ..Default::default()
        });
    }
    let flags = req.flags(&[
        ("interval", FlagKind::String),
        ("timeout", FlagKind::String),
        ("start-period", FlagKind::String),
        ("start-interval", FlagKind::String),
        ("retries", FlagKind::String),
    ])?;
    if kind != "CMD" {
        return Err(format!("Unknown type {kind:?} in HEALTHCHECK (try CMD)"));
    }
    let cmd: Vec<String> = if req.node.json || rest.is_empty() {
        rest.iter().map(|a| a.to_string()).collect()
    } else {
        vec![rest.join(" ")]
    };
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let first = if req.node.json { "CMD" } else { "CMD-SHELL" };
    let mut test = vec![first.to_string()];
    test.extend(cmd);
    let interval = |name: &str| opt_interval(name, flags.string(name));
    Ok(HealthcheckCommand {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries: retries(flags.string("retries"))?,
    })
}

const MINIMUM_DURATION: u64 = 1_000_000;

fn opt_interval(name: &str, value: Option<&str>) -> Result<u64, String> {
    let Some(s) = value.filter(|s| !s.is_empty()) else {
        return Ok(0);
    };
    let d = parse_go_duration(s)?;
    if d == 0 {
        return Ok(0);
    }
    if d < MINIMUM_DURATION as i64 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(d as u64)
}

fn retries(value: Option<&str>) -> Result<i64, String> {
    let Some(s) = value.filter(|s| !s.is_empty()) else {
        return Ok(0);
    };
    let n: i32 = s
        .parse()
        .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))?;
    if n < 1 {
        return Err(format!("--retries must be at least 1 (not {n})"));
    }
    Ok(i64::from(n))
}
