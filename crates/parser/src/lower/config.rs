//! Instructions that change only the image config (and ARG), with the
//! history lines Docker writes for them.

use rbk_graph::image::{Empty, Healthcheck};

use super::args::is_proxy_arg;
use super::run::with_shell;
use super::state::{concat, set_config_env, upsert, Lowerer, StageState};
use crate::error::Error;
use crate::expand::go_quote;
use crate::instructions::{
    format_go_duration, ArgDecl, CmdLine, Command, HealthcheckCommand, Instruction, KeyValue,
};

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub(crate) fn go_q_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a `[]string`: `[a b]`.
fn go_v_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

impl Lowerer<'_> {
    pub(crate) fn dispatch_arg(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        decls: &[ArgDecl],
    ) -> Result<(), Error> {
        // `ARG` and the words joined by one space, written in one string.
        let mut line = String::from("ARG ");
        let mut sep = "";
        st.run_prefix = None;
        for decl in decls {
            let value = match (self.opts.build_args.get(&decl.key), &decl.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(self.expand_in(default, &st.env, cmd.span)?),
                (None, None) => self
                    .global
                    .iter()
                    .find(|(k, _)| k == &decl.key)
                    .map(|(_, v)| v.clone()),
            };
            match &value {
                Some(v) => {
                    st.set_env(&decl.key, v);
                    upsert(&mut st.args, &decl.key, v);
                    line.push_str(sep);
                    line.push_str(&decl.key);
                    if !is_proxy_arg(&decl.key) {
                        line.push('=');
                        line.push_str(v);
                    }
                }
                None => {
                    // Still in scope for RUN's `|N K=V` history prefix, as
                    // `EMPTY=` (BuildKit keeps every declared ARG).
                    if !st.args.iter().any(|(k, _)| k == &decl.key) {
                        st.args.push((decl.key.clone(), String::new()));
                    }
                    line.push_str(sep);
                    line.push_str(&decl.key);
                }
            }
            sep = " ";
        }
        st.commit(line, false);
        Ok(())
    }

    pub(crate) fn dispatch_config(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
    ) -> Result<(), Error> {
        let created_by = match &cmd.instruction {
            Instruction::Env(kvs) => self.env(st, cmd, kvs)?,
            Instruction::Label(kvs) => self.label(st, cmd, kvs)?,
            Instruction::User(u) => self.user(st, cmd, u)?,
            Instruction::Expose(ports) => self.expose(st, cmd, ports)?,
            Instruction::Volume(vols) => self.volume(st, cmd, vols)?,
            Instruction::StopSignal(s) => self.stop_signal(st, cmd, s)?,
            Instruction::Cmd(line) => {
                let args = shell_args(st, line);
                st.config.cmd = Some(args.clone());
                // BuildKit sets it for CMD only (Docker image spec
                // compatibility); ENTRYPOINT leaves it as it was.
                st.config.args_escaped = true;
                st.cmd_set = true;
                format!("CMD {}", go_q_slice(&args))
            }
            Instruction::Entrypoint(line) => {
                let args = shell_args(st, line);
                st.config.entrypoint = (!args.is_empty()).then(|| args.clone());
                if !st.cmd_set {
                    st.config.cmd = None;
                }
                format!("ENTRYPOINT {}", go_q_slice(&args))
            }
            Instruction::Shell(shell) => {
                st.config.shell = shell.clone();
                format!("SHELL {}", go_v_slice(shell))
            }
            Instruction::Healthcheck(h) => {
                let hc = healthcheck(h);
                let line = healthcheck_history(&hc);
                st.config.healthcheck = Some(hc);
                line
            }
            Instruction::Onbuild(expr) => {
                // Only the config changes: BuildKit writes no history here.
                st.config.on_build.push(expr.clone());
                return Ok(());
            }
            Instruction::Maintainer(m) => {
                st.author = m.clone();
                format!("MAINTAINER {m}")
            }
            other => unreachable!("{} is dispatched elsewhere", other.name()),
        };
        st.commit(created_by, false);
        Ok(())
    }

    fn user(&self, st: &mut StageState, cmd: &Command, u: &str) -> Result<String, Error> {
        let u = self.expand_in(u, &st.env, cmd.span)?;
        check_user(&u).map_err(|m| self.cmd_error(cmd.span, m))?;
        st.config.user = u.clone();
        Ok(concat(&["USER ", &u]))
    }

    fn volume(&self, st: &mut StageState, cmd: &Command, vols: &[String]) -> Result<String, Error> {
        let mut out = Vec::new();
        for v in vols {
            let v = self.expand_in(v, &st.env, cmd.span)?;
            if v.trim().is_empty() {
                let msg = "VOLUME specified can not be an empty string".to_string();
                return Err(self.cmd_error(cmd.span, msg));
            }
            st.config.volumes.insert(v.clone(), Empty {});
            out.push(v);
        }
        Ok(format!("VOLUME {}", go_v_slice(&out)))
    }

    fn stop_signal(&self, st: &mut StageState, cmd: &Command, s: &str) -> Result<String, Error> {
        let s = self.expand_in(s, &st.env, cmd.span)?;
        check_signal(&s).map_err(|m| self.cmd_error(cmd.span, m))?;
        st.config.stop_signal = s.clone();
        Ok(format!("STOPSIGNAL {s}"))
    }

    fn env(&self, st: &mut StageState, cmd: &Command, kvs: &[KeyValue]) -> Result<String, Error> {
        // Every pair is expanded with the environment from before the
        // instruction, as BuildKit expands the whole command at once:
        // `ENV abc=bye def=$abc` gives `def` the old `abc`. So all pairs are
        // expanded first and applied after (no copy of the environment).
        let pairs = kvs
            .iter()
            .map(|kv| {
                let k = self.expand_in(&kv.key, &st.env, cmd.span)?;
                let v = self.expand_in(&kv.value, &st.env, cmd.span)?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut line = String::from("ENV");
        for (k, v) in &pairs {
            set_config_env(&mut st.config.env, k, v);
            st.set_env(k, v);
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(v);
        }
        Ok(line)
    }

    fn label(&self, st: &mut StageState, cmd: &Command, kvs: &[KeyValue]) -> Result<String, Error> {
        let mut line = String::from("LABEL");
        for kv in kvs {
            let k = self.expand_in(&kv.key, &st.env, cmd.span)?;
            let v = self.expand_in(&kv.value, &st.env, cmd.span)?;
            st.config.labels.insert(k.clone(), v.clone());
            for part in [" ", &k, "=", &v] {
                line.push_str(part);
            }
        }
        Ok(line)
    }

    fn expose(
        &self,
        st: &mut StageState,
        cmd: &Command,
        ports: &[String],
    ) -> Result<String, Error> {
        let mut set = std::collections::BTreeSet::new();
        for p in ports {
            let p = self.expand_in(p, &st.env, cmd.span)?;
            for spec in p.split_whitespace() {
                set.extend(parse_port_spec(spec).map_err(|m| self.cmd_error(cmd.span, m))?);
            }
        }
        for p in &set {
            st.config.exposed_ports.insert(p.clone(), Empty {});
        }
        // Go's `%v` of the port set: `map[80/tcp:{} 443/tcp:{}]`.
        let mut line = String::from("EXPOSE map[");
        for (i, p) in set.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(p);
            line.push_str(":{}");
        }
        line.push(']');
        Ok(line)
    }
}

fn shell_args(st: &StageState, line: &CmdLine) -> Vec<String> {
    if line.prepend_shell {
        with_shell(st, &line.args)
    } else {
        line.args.clone()
    }
}

fn healthcheck(h: &HealthcheckCommand) -> Healthcheck {
    Healthcheck {
        test: h.test.clone(),
        interval: h.interval,
        timeout: h.timeout,
        start_period: h.start_period,
        start_interval: h.start_interval,
        retries: h.retries,
    }
}

/// Go's `%+v` of a `HealthcheckConfig` value, as current BuildKit writes
/// it to history: `{Test:[CMD-SHELL cmd] Interval:5s … Retries:2}`.
fn healthcheck_history(h: &Healthcheck) -> String {
    let d = |ns: u64| format_go_duration(ns as i64);
    format!(
        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        go_v_slice(&h.test),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval),
        h.retries
    )
}

/// `docker/go-connections/nat.ParsePortSpec`, container side only.
fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let port = port.rsplit(':').next().unwrap_or(port);
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {port}"))
    };
    let (lo, hi) = match port.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(port)?, num(port)?),
    };
    if hi < lo {
        return Err(format!(
            "invalid range specified for container Port: {port}"
        ));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A numeric uid or gid must fit in 32 bits (no wrap-around to root).
fn check_user(u: &str) -> Result<(), String> {
    for part in u.split(':') {
        if !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && part.parse::<u32>().is_err()
        {
            return Err(format!("invalid user {u:?}: id {part} is out of range"));
        }
    }
    Ok(())
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// `moby/sys/signal.ParseSignal`: a number, a name, or `RTMIN+n`.
fn check_signal(s: &str) -> Result<(), String> {
    if let Ok(n) = s.parse::<u32>() {
        return if n == 0 {
            Err(format!("Invalid signal: {s}"))
        } else {
            Ok(())
        };
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    let rt = |base: &str| {
        name.strip_prefix(base).is_some_and(|r| {
            r.is_empty()
                || r.strip_prefix(['+', '-'])
                    .is_some_and(|n| n.parse::<u8>().is_ok())
        })
    };
    if SIGNALS.contains(&name.as_str()) || rt("RTMIN") || rt("RTMAX") {
        Ok(())
    } else {
        Err(format!("Invalid signal: {s}"))
    }
}
