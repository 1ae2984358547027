//! RUN: an exec op over the stage's filesystem, with its mounts.

use rbk_graph::{
    CacheSharing, ExecOp, FileAction, FileOp, Input, Mount, MountKind, NodeId, Op, OpMetadata,
};

use super::args::is_proxy_arg;
use super::stages::{resolve_from, stage_error, FromRef, StageTable};
use super::state::{Lowerer, StageState};
use super::StagePlan;
use crate::error::Error;
use crate::expand::go_quote;
use crate::instructions::{
    heredoc_word, parse_mount, CmdLine, Command, MountType, RunCommand, RunMount, Sharing,
};

/// The stage's SHELL (default `/bin/sh -c`) around the joined arguments.
pub(crate) fn with_shell(st: &StageState, args: &[String]) -> Vec<String> {
    let shell = &st.config.shell;
    let mut out = Vec::with_capacity(shell.len().max(2) + 1);
    if shell.is_empty() {
        out.extend(["/bin/sh".to_string(), "-c".to_string()]);
    } else {
        out.extend(shell.iter().cloned());
    }
    out.push(args.join(" "));
    out
}

/// Inputs and mounts of an exec op under construction.
struct ExecParts {
    inputs: Vec<Input>,
    mounts: Vec<Mount>,
}

impl ExecParts {
    fn input(&mut self, node: NodeId) -> u32 {
        let pos = self
            .inputs
            .iter()
            .position(|i| i.node == node)
            .unwrap_or_else(|| {
                self.inputs.push(Input::of(node));
                self.inputs.len() - 1
            });
        pos as u32
    }
}

impl Lowerer<'_> {
    pub(crate) fn dispatch_run(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        run: &RunCommand,
        table: &StageTable,
        done: &[Option<StagePlan>],
    ) -> Result<(), Error> {
        let mut parts = ExecParts {
            inputs: vec![Input::of(st.output)],
            mounts: Vec::new(),
        };
        let mut args = self.heredoc_args(st, cmd, &run.cmd, &mut parts)?;
        if run.cmd.prepend_shell {
            args = with_shell(st, &args);
        }
        let mut ssh_count = 0;
        for raw in &run.mounts {
            let expand = |w: &str| {
                self.expand_noting_unset(w, &st.env)
                    .map_err(|e| e.to_string())
            };
            let m = parse_mount(raw, Some(&expand)).map_err(|e| self.cmd_error(cmd.span, e))?;
            let mount = self.lower_mount(st, cmd, &m, &mut parts, &mut ssh_count, table, done)?;
            parts.mounts.push(mount);
        }
        let env = match &st.run_env {
            Some(env) => env.clone(),
            None => {
                let env = self.run_env(st);
                st.run_env = Some(env.clone());
                env
            }
        };
        self.spend_text(env.iter().map(String::len).sum())
            .map_err(|fault| self.cmd_error(cmd.span, fault.to_string()))?;
        let line = run_command_string(&args, st);
        let op = ExecOp {
            inputs: parts.inputs,
            args,
            env,
            cwd: st.cwd(),
            user: st.config.user.clone(),
            mounts: parts.mounts,
            network: run.network,
            security: run.security,
            // BuildKit's frontend reads the sandbox hostname from this build arg.
            hostname: self
                .opts
                .build_args
                .get("BUILDKIT_SANDBOX_HOSTNAME")
                .cloned()
                .unwrap_or_default(),
        };
        let meta = self.meta(st, cmd);
        st.output = self.push(Op::Exec(op), meta);
        st.commit(line, true);
        Ok(())
    }

    /// The stage's environment as `KEY=value` pairs, then the proxy build
    /// args it does not set.
    fn run_env(&self, st: &StageState) -> rbk_graph::EnvList {
        let mut env: Vec<String> = Vec::with_capacity(st.env.len());
        env.extend(st.env.iter().map(|(k, v)| key_value(k, v)));
        for (k, v) in &self.opts.build_args {
            if is_proxy_arg(k) && !st.env.iter().any(|(ek, _)| ek == k) {
                env.push(format!("{k}={v}"));
            }
        }
        env.into()
    }

    /// BuildKit's heredoc RUN rules: a lone heredoc runs its body (through a
    /// file at `/dev/pipes/` when it starts with `#!`); otherwise the
    /// heredocs are appended to the command for the shell to read.
    fn heredoc_args(
        &mut self,
        st: &StageState,
        cmd: &Command,
        line: &CmdLine,
        parts: &mut ExecParts,
    ) -> Result<Vec<String>, Error> {
        if line.files.is_empty() {
            return Ok(line.args.clone());
        }
        if line.args.len() != 1 || !line.prepend_shell {
            let msg = format!("parsing produced an invalid run command: {:?}", line.args);
            return Err(self.cmd_error(cmd.span, msg));
        }
        if heredoc_word(line.args[0].trim()).is_none() {
            let mut full = line.args[0].clone();
            for f in &line.files {
                full.push('\n');
                full.push_str(&f.data);
                full.push_str(&f.name);
            }
            return Ok(vec![full]);
        }
        let file = &line.files[0];
        let data = file.content();
        if !data.starts_with("#!") {
            return Ok(vec![data]);
        }
        let op = FileOp {
            inputs: Vec::new(),
            base: None,
            actions: vec![FileAction::Mkfile {
                path: format!("/{}", file.name),
                mode: 0o755,
                data,
                owner: None,
            }],
        };
        let meta = OpMetadata {
            description: "preparing inline document".into(),
            ..self.meta(st, cmd)
        };
        let doc = self.push(Op::File(op), meta);
        let input = parts.input(doc);
        parts.mounts.push(Mount {
            target: "/dev/pipes/".into(),
            kind: MountKind::Bind {
                input: Some(input),
                source: "/".into(),
                readwrite: false,
            },
        });
        Ok(vec![format!("/dev/pipes/{}", file.name)])
    }

    #[allow(clippy::too_many_arguments)]
    fn lower_mount(
        &mut self,
        st: &StageState,
        cmd: &Command,
        m: &RunMount,
        parts: &mut ExecParts,
        ssh_count: &mut usize,
        table: &StageTable,
        done: &[Option<StagePlan>],
    ) -> Result<Mount, Error> {
        let target =
            mount_target(st.cwd_str(), m, ssh_count).map_err(|e| self.cmd_error(cmd.span, e))?;
        let from_input = match &m.from {
            Some(f) => Some(self.node_for_from(st, cmd, f, table, done)?),
            None if m.kind == MountType::Bind => Some(self.context()),
            None => None,
        };
        let input = from_input.map(|n| parts.input(n));
        Ok(Mount {
            target,
            kind: mount_kind(m, input),
        })
    }

    /// The vertex a `--from` names: an earlier-lowered stage or an image.
    pub(crate) fn node_for_from(
        &mut self,
        st: &StageState,
        cmd: &Command,
        from: &str,
        table: &StageTable,
        done: &[Option<StagePlan>],
    ) -> Result<NodeId, Error> {
        let found = resolve_from(self, &table.names, from);
        match found.map_err(|m| stage_error(self.file(), cmd.span, m))? {
            FromRef::Named(name) => Ok(self.named_node(&name, &st.platform)),
            FromRef::Stage(i) => match &done[i] {
                Some(plan) => Ok(plan.output),
                None => Err(stage_error(
                    self.file(),
                    cmd.span,
                    format!(
                        "circular dependency detected on stage: {}",
                        table.display_name(st.index)
                    ),
                )),
            },
            FromRef::Image(r) => Ok(self.image(&r, &st.platform)),
        }
    }
}

/// The mount point with BuildKit's defaults (`/run/secrets/<id>`,
/// `/run/buildkit/ssh_agent.<n>`), relative targets joined to the workdir.
fn mount_target(cwd: &str, m: &RunMount, ssh_count: &mut usize) -> Result<String, String> {
    let mut target = m.target.clone().unwrap_or_default();
    match m.kind {
        MountType::Secret if target.is_empty() && m.env.is_some() => return Ok(String::new()),
        MountType::Secret if target.is_empty() => {
            target = format!("/run/secrets/{}", base_name(&secret_id(m)));
        }
        MountType::Ssh => {
            if target.is_empty() {
                target = format!("/run/buildkit/ssh_agent.{}", *ssh_count);
            }
            *ssh_count += 1;
        }
        _ => {}
    }
    let target = absolute_target(cwd, &target);
    if target == "/" {
        return Err(format!("invalid mount target {}", go_quote(&target)));
    }
    Ok(target)
}

/// The graph's mount kind, with BuildKit's defaults for id, sharing,
/// mode, uid and gid.
fn mount_kind(m: &RunMount, input: Option<u32>) -> MountKind {
    let source = m
        .source
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/".into());
    let id = m.id.clone().filter(|s| !s.is_empty());
    match m.kind {
        MountType::Bind => MountKind::Bind {
            input,
            source,
            readwrite: !m.readonly,
        },
        MountType::Cache => MountKind::Cache {
            id: id.unwrap_or_else(|| m.target.clone().unwrap_or_default()),
            sharing: match m.sharing {
                Some(Sharing::Private) => CacheSharing::Private,
                Some(Sharing::Locked) => CacheSharing::Locked,
                _ => CacheSharing::Shared,
            },
            input,
            source,
            readonly: m.readonly,
            mode: m.mode.unwrap_or(0o755),
            uid: m.uid.unwrap_or(0),
            gid: m.gid.unwrap_or(0),
        },
        MountType::Tmpfs => MountKind::Tmpfs {
            size: m.size.unwrap_or(0),
        },
        MountType::Secret => MountKind::Secret {
            id: secret_id(m),
            required: m.required,
            mode: m.mode.unwrap_or(0o400),
            uid: m.uid.unwrap_or(0),
            gid: m.gid.unwrap_or(0),
            env: m.env.clone(),
        },
        MountType::Ssh => MountKind::Ssh {
            id: id.unwrap_or_else(|| "default".into()),
            required: m.required,
            mode: m.mode.unwrap_or(0o600),
            uid: m.uid.unwrap_or(0),
            gid: m.gid.unwrap_or(0),
        },
    }
}

fn secret_id(m: &RunMount) -> String {
    m.id.clone()
        .filter(|s| !s.is_empty())
        .or_else(|| m.source.clone().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| base_name(m.target.as_deref().unwrap_or("")))
}

fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Joins a relative target to the working directory and cleans it.
pub(crate) fn absolute_target(cwd: &str, target: &str) -> String {
    if target.starts_with('/') {
        clean_path(target)
    } else {
        clean_segments(
            cwd.split('/').chain(target.split('/')),
            cwd.len() + target.len() + 2,
        )
    }
}

/// `path.Clean` for absolute paths: no `.`, `..` or doubled slashes.
pub(crate) fn clean_path(p: &str) -> String {
    clean_segments(p.split('/'), p.len() + 1)
}

/// The clean absolute path of `segments`, written into one string (this
/// runs for every COPY, WORKDIR and mount of a file).
fn clean_segments<'s>(segments: impl Iterator<Item = &'s str>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    for seg in segments {
        match seg {
            "" | "." => {}
            ".." => {
                if let Some(i) = out.rfind('/') {
                    out.truncate(i);
                }
            }
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `KEY=value`, without going through the formatting machinery.
fn key_value(key: &str, value: &str) -> String {
    let mut s = String::with_capacity(key.len() + 1 + value.len());
    s.push_str(key);
    s.push('=');
    s.push_str(value);
    s
}

/// `RUN ` and BuildKit's `runCommandString`: `|N K=V … ` before the
/// command when ARGs are in scope. Written into one string (this runs for
/// every RUN of a file).
fn run_command_string(args: &[String], st: &mut StageState) -> String {
    let prefix = st
        .run_prefix
        .get_or_insert_with(|| run_prefix(&st.args, &st.env));
    let mut line =
        String::with_capacity(5 + prefix.len() + args.iter().map(|a| a.len() + 1).sum::<usize>());
    line.push_str("RUN ");
    line.push_str(prefix);
    // The words joined by one space, as Go's strings.Join.
    let mut sep = if prefix.is_empty() { "" } else { " " };
    for a in args {
        line.push_str(sep);
        line.push_str(a);
        sep = " ";
    }
    line
}

/// `|N K=V …` for the ARGs in scope (their values as the environment has
/// them), or nothing when there are none.
fn run_prefix(args: &[(String, String)], env: &[(String, String)]) -> String {
    let build_env = || args.iter().filter(|(k, _)| !is_proxy_arg(k));
    let count = build_env().count();
    let mut line = String::new();
    if count == 0 {
        return line;
    }
    line.push('|');
    line.push_str(&count.to_string());
    for (k, v) in build_env() {
        let value = env
            .iter()
            .find(|(ek, _)| ek == k)
            .map_or(v.as_str(), |(_, ev)| ev.as_str());
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(value);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{absolute_target, clean_path};

    #[test]
    fn paths_are_cleaned_as_go_does() {
        assert_eq!(clean_path("/a/./b/../c//d/"), "/a/c/d");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(clean_path(""), "/");
        assert_eq!(clean_path("a/b"), "/a/b");
        assert_eq!(absolute_target("/w", "x/../y"), "/w/y");
        assert_eq!(absolute_target("/", ".."), "/");
        assert_eq!(absolute_target("/a/b", "../../../c"), "/c");
        assert_eq!(absolute_target("/a", "/b/./c"), "/b/c");
        assert_eq!(absolute_target("/a", ""), "/a");
    }
}
