//! Metadata instructions: ENV, LABEL, ARG, EXPOSE, VOLUME, USER, WORKDIR,
//! ONBUILD, STOPSIGNAL, MAINTAINER.

use super::{err_at_least_one, err_exactly_one, Instruction, Request};

/// A `key=value` of ENV or LABEL, both unexpanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
}

/// One name of an `ARG` line, with its default if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub key: String,
    /// `=default`, unexpanded.
    pub value: Option<String>,
}

pub(super) fn parse_meta(req: &Request<'_>, name: &str) -> Result<Instruction, String> {
    let args = &req.args;
    let no_flags = || req.flags(&[]);
    Ok(match name {
        "env" => {
            no_flags()?;
            Instruction::Env(parse_kvps(args, "ENV")?)
        }
        "label" => {
            no_flags()?;
            Instruction::Label(parse_kvps(args, "LABEL")?)
        }
        "arg" => {
            no_flags()?;
            Instruction::Arg(parse_arg(args)?)
        }
        "maintainer" => Instruction::Maintainer(one(req, "MAINTAINER")?),
        "user" => Instruction::User(one(req, "USER")?),
        "workdir" => Instruction::Workdir(one(req, "WORKDIR")?),
        "stopsignal" => Instruction::StopSignal(one(req, "STOPSIGNAL")?),
        "expose" => {
            if args.is_empty() {
                return Err(err_at_least_one("EXPOSE"));
            }
            no_flags()?;
            let mut ports: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            ports.sort();
            Instruction::Expose(ports)
        }
        "volume" => Instruction::Volume(parse_volume(req)?),
        "onbuild" => Instruction::Onbuild(parse_onbuild(req)?),
        other => {
            return Err(format!(
                "unknown instruction: {}",
                other.to_ascii_uppercase()
            ))
        }
    })
}

fn one(req: &Request<'_>, cmd: &str) -> Result<String, String> {
    if req.args.len() != 1 {
        return Err(err_exactly_one(cmd));
    }
    req.flags(&[])?;
    Ok(req.args[0].to_string())
}

/// ENV and LABEL arguments come as `name, value, separator` triples (the
/// separator is `=` or empty for the legacy `ENV k v` form); plain pairs are
/// accepted too.
fn parse_kvps(args: &[&str], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(err_at_least_one(cmd));
    }
    let triples =
        args.len().is_multiple_of(3) && args.chunks(3).all(|c| c[2].is_empty() || c[2] == "=");
    let step = if triples { 3 } else { 2 };
    if !args.len().is_multiple_of(step) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(step)
        .map(|c| {
            if c[0].is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue {
                key: c[0].to_string(),
                value: c[1].to_string(),
            })
        })
        .collect()
}

fn parse_arg(args: &[&str]) -> Result<Vec<ArgDecl>, String> {
    if args.is_empty() {
        return Err(err_at_least_one("ARG"));
    }
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".to_string()),
            Some((k, v)) => Ok(ArgDecl {
                key: k.to_string(),
                value: Some(v.to_string()),
            }),
            None => Ok(ArgDecl {
                key: arg.to_string(),
                value: None,
            }),
        })
        .collect()
}

fn parse_volume(req: &Request<'_>) -> Result<Vec<String>, String> {
    if req.args.is_empty() {
        return Err(err_at_least_one("VOLUME"));
    }
    req.flags(&[])?;
    req.args
        .iter()
        .map(|v| {
            let v = v.trim();
            if v.is_empty() {
                Err("VOLUME specified can not be an empty string".to_string())
            } else {
                Ok(v.to_string())
            }
        })
        .collect()
}

fn parse_onbuild(req: &Request<'_>) -> Result<String, String> {
    let Some(trigger) = req.args.first() else {
        return Err(err_at_least_one("ONBUILD"));
    };
    req.flags(&[])?;
    let trigger = trigger.trim().to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"))
        }
        _ => {}
    }
    let original = req.node.original.trim_start();
    let rest = match original.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => &original[7..],
        _ => original,
    };
    Ok(rest.trim_start().to_string())
}
