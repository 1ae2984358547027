//! The lowering context and the per-stage dispatch state.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rbk_graph::image::{ContainerConfig, History};
use rbk_graph::{Definition, NodeId, Op, OpMetadata, Platform, SourceOp, SourceSpan};

use super::stages::{stage_error, StageTable};
use super::{BaseRef, LowerOptions, StagePlan};
use crate::error::{Error, Location};
use crate::expand::{Env, Lexer};
use crate::instructions::{Command, Instruction, Stage};
use crate::syntax::Span;

/// BuildKit's default `PATH` for Linux images.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// An [`Env`] that notes the names looked up and found unset.
struct Recording<'e> {
    inner: &'e dyn Env,
    unset: &'e std::cell::RefCell<Vec<String>>,
}

impl Env for Recording<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let value = self.inner.get(name);
        if value.is_none() {
            self.unset.borrow_mut().push(name.to_string());
        }
        value
    }
}

/// Shared by all stages.
pub(crate) struct Lowerer<'a> {
    pub(crate) opts: &'a LowerOptions<'a>,
    pub(crate) lexer: Lexer,
    pub(crate) def: Definition,
    pub(crate) global: Vec<(String, String)>,
    pub(crate) warnings: Vec<String>,
    /// Build-check findings that need the stage's scope (`UndefinedVar`).
    pub(crate) findings: Vec<crate::checks::Finding>,
    /// BuildKit's `UndefinedVar` check is on.
    pub(crate) check_undefined: bool,
    /// Names a word of the current instruction looked up and found unset.
    unset_names: std::cell::RefCell<Vec<String>>,
    context: Option<NodeId>,
    images: BTreeMap<(String, Platform), NodeId>,
    /// Named contexts something resolved to.
    pub(crate) used_named: std::cell::RefCell<std::collections::BTreeSet<String>>,
    /// What is left of [`super::MAX_LOWERED_TEXT`].
    text_left: std::cell::Cell<usize>,
}

/// One stage being lowered (BuildKit's `dispatchState`).
pub(crate) struct StageState {
    pub(crate) index: usize,
    pub(crate) display: String,
    pub(crate) platform: Platform,
    pub(crate) output: NodeId,
    pub(crate) config: ContainerConfig,
    pub(crate) history: Vec<History>,
    /// The environment RUN sees and words expand in: ENV plus ARG values.
    pub(crate) env: Vec<(String, String)>,
    /// Every declared ARG with its value (empty when it has none), for
    /// RUN's `|N K=V` history prefix.
    pub(crate) args: Vec<(String, String)>,
    /// RUN's `|N K=V …` history prefix for the current `env` and `args`
    /// (RUNs often follow each other with neither changing); cleared by
    /// every change to either.
    pub(crate) run_prefix: Option<String>,
    /// RUN's environment for the current `env`, shared by the RUNs that
    /// see it; cleared by every change to `env`.
    pub(crate) run_env: Option<rbk_graph::EnvList>,
    pub(crate) cmd_set: bool,
    pub(crate) author: String,
    pub(crate) step: usize,
    pub(crate) steps: usize,
}

impl StageState {
    /// The working directory, `/` when unset.
    pub(crate) fn cwd(&self) -> String {
        self.cwd_str().to_string()
    }

    /// [`Self::cwd`], borrowed.
    pub(crate) fn cwd_str(&self) -> &str {
        if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        }
    }

    /// Sets `key` in the RUN/expansion environment, in place if present.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.run_prefix = None;
        self.run_env = None;
        upsert(&mut self.env, key, value);
    }

    /// Adds a history entry as BuildKit's `commitToHistory` does.
    pub(crate) fn commit(&mut self, mut created_by: String, layer: bool) {
        if layer {
            created_by.push_str(" # buildkit");
        }
        self.history.push(History {
            created_by: Some(created_by),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: !layer,
            ..History::default()
        });
    }
}

/// Replaces URL credentials (`https://user:pass@host`) with `xxxxx` in
/// text meant for history, progress or logs.
pub(crate) fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("xxxxx");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The parts joined, in one allocation (`format!` costs more, and history
/// lines are written for every instruction).
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

pub(crate) fn upsert(list: &mut Vec<(String, String)>, key: &str, value: &str) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => {
            // Reuses the old value's buffer.
            slot.1.clear();
            slot.1.push_str(value);
        }
        None => list.push((key.to_string(), value.to_string())),
    }
}

/// Sets `KEY=value` in a Docker env list, in place if the key is present.
pub(crate) fn set_config_env(env: &mut Vec<String>, key: &str, value: &str) {
    let slot = match env
        .iter_mut()
        .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(i) => {
            // Reuses the old entry's buffer.
            env[i].clear();
            &mut env[i]
        }
        None => {
            env.push(String::with_capacity(key.len() + 1 + value.len()));
            env.last_mut().expect("just pushed")
        }
    };
    slot.push_str(key);
    slot.push('=');
    slot.push_str(value);
}

impl<'a> Lowerer<'a> {
    pub(crate) fn new(opts: &'a LowerOptions<'a>, escape: char) -> Self {
        Lowerer {
            opts,
            lexer: Lexer::new(escape),
            def: Definition::new(),
            global: Vec::new(),
            warnings: Vec::new(),
            findings: Vec::new(),
            check_undefined: true,
            unset_names: Default::default(),
            context: None,
            images: BTreeMap::new(),
            used_named: Default::default(),
            text_left: std::cell::Cell::new(super::MAX_LOWERED_TEXT),
        }
    }

    /// Counts `bytes` of lowered text against [`super::MAX_LOWERED_TEXT`];
    /// the fault once the Dockerfile has used it up.
    pub(crate) fn spend_text(&self, bytes: usize) -> Result<(), crate::expand::ExpandErrorKind> {
        match self.text_left.get().checked_sub(bytes) {
            Some(left) => {
                self.text_left.set(left);
                Ok(())
            }
            None => Err(crate::expand::ExpandErrorKind::TooMuchInTotal {
                limit: super::MAX_LOWERED_TEXT,
            }),
        }
    }

    pub(crate) fn file(&self) -> &str {
        &self.opts.file
    }

    /// Expands one word in `env`, noting the names it found unset (for the
    /// `UndefinedVar` check).
    pub(crate) fn expand_noting_unset(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<String, crate::expand::ExpandError> {
        let recording = Recording {
            inner: env,
            unset: &self.unset_names,
        };
        let out = self.lexer.process_word(word, &recording)?;
        self.spend_text(out.len())
            .map_err(|kind| crate::expand::ExpandError {
                word: word.to_string(),
                kind,
            })?;
        Ok(out)
    }

    /// Expands one word in `env`; failures become errors at `span`.
    pub(crate) fn expand_in(&self, word: &str, env: &dyn Env, span: Span) -> Result<String, Error> {
        self.expand_noting_unset(word, env)
            .map_err(|e| Error::Expand {
                location: Location::lines(self.file(), span.start_line, span.end_line),
                message: e.to_string(),
            })
    }

    pub(crate) fn meta(&self, st: &StageState, cmd: &Command) -> OpMetadata {
        let mut description = String::with_capacity(st.display.len() + 12 + cmd.original.len());
        description.push('[');
        description.push_str(&st.display);
        // Writing to a String cannot fail.
        let _ = write!(description, " {}/{}] ", st.step, st.steps);
        for (i, part) in cmd.original.split_whitespace().enumerate() {
            if i > 0 {
                description.push(' ');
            }
            description.push_str(part);
        }
        OpMetadata {
            description,
            stage: Some(st.display.clone()),
            span: Some(self.source_span(cmd.span)),
            ignore_cache: self.opts.no_cache,
            labels: BTreeMap::new(),
        }
    }

    pub(crate) fn source_span(&self, span: Span) -> SourceSpan {
        SourceSpan {
            file: self.opts.file.clone(),
            start_line: span.start_line,
            end_line: span.end_line,
        }
    }

    pub(crate) fn push(&mut self, op: Op, meta: OpMetadata) -> NodeId {
        self.def.push(op, meta)
    }

    /// The one shared build-context source vertex.
    pub(crate) fn context(&mut self) -> NodeId {
        if let Some(id) = self.context {
            return id;
        }
        let op = Op::Source(SourceOp::Local {
            name: "context".into(),
            include: Vec::new(),
            exclude: self.opts.context_excludes.clone(),
        });
        let meta = OpMetadata {
            description: "[internal] load build context".into(),
            ..Default::default()
        };
        let id = self.push(op, meta);
        self.context = Some(id);
        id
    }

    /// One source vertex per image reference and platform.
    pub(crate) fn image(&mut self, reference: &str, platform: &Platform) -> NodeId {
        let key = (reference.to_string(), platform.clone());
        if let Some(&id) = self.images.get(&key) {
            return id;
        }
        let op = Op::Source(SourceOp::Image {
            reference: reference.into(),
            platform: Some(platform.clone()),
        });
        let meta = OpMetadata {
            description: format!("[internal] load metadata for {reference}"),
            ignore_cache: self.opts.no_cache,
            ..Default::default()
        };
        let id = self.push(op, meta);
        self.images.insert(key, id);
        id
    }

    fn resolve_config(
        &self,
        reference: &str,
        platform: &Platform,
        span: Span,
    ) -> Result<ContainerConfig, Error> {
        match self.opts.image_resolver {
            None => Ok(ContainerConfig::default()),
            Some(r) => r.resolve(reference, platform).map_err(|e| {
                let mut message = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    let text = c.to_string();
                    if !message.ends_with(&text) {
                        message = format!("{message}: {text}");
                    }
                    cause = c.source();
                }
                stage_error(
                    self.file(),
                    span,
                    format!("failed to resolve source metadata for {reference}: {message}"),
                )
            }),
        }
    }

    fn start_stage(
        &mut self,
        stage: &Stage,
        idx: usize,
        table: &StageTable,
        done: &[Option<StagePlan>],
        base_state: Option<&StageState>,
    ) -> Result<StageState, Error> {
        let info = &table.stages[idx];
        let mut st = StageState {
            index: idx,
            display: table.display_name(idx),
            platform: info.platform.clone(),
            output: NodeId(0),
            config: ContainerConfig::default(),
            history: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            run_prefix: None,
            run_env: None,
            cmd_set: false,
            author: String::new(),
            step: 1,
            steps: stage.commands.len() + 1,
        };
        match &info.base {
            BaseRef::Scratch => {
                let meta = OpMetadata {
                    description: format!("[{} 1/{}] FROM scratch", st.display, st.steps),
                    ..Default::default()
                };
                st.output = self.push(Op::Source(SourceOp::Scratch), meta);
                // BuildKit's empty image (`emptyImage`) has `/` as its
                // working directory (and PATH, added below).
                st.config.working_dir = "/".into();
            }
            BaseRef::Image(r) => {
                st.output = self.image(r, &info.platform);
                st.config = self.resolve_config(r, &info.platform, stage.span)?;
            }
            BaseRef::Stage(b) => {
                let base = done[*b].as_ref().expect("base stage lowered first");
                st.output = base.output;
                st.config = base.config.clone();
                st.history = base.history.clone();
                st.author = base.author.clone();
                if let Some(bs) = base_state {
                    st.env = bs.env.clone();
                    st.args = bs.args.clone();
                }
            }
        }
        if !st.config.env.iter().any(|e| e.starts_with("PATH=")) && st.platform.os != "windows" {
            st.config.env.push(format!("PATH={DEFAULT_PATH}"));
        }
        if base_state.is_none() {
            for e in st.config.env.clone() {
                let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                st.set_env(k, v);
            }
        } else if !st.env.iter().any(|(k, _)| k == "PATH") {
            st.set_env("PATH", DEFAULT_PATH);
        }
        Ok(st)
    }

    pub(crate) fn lower_stage(
        &mut self,
        stage: &Stage,
        idx: usize,
        table: &StageTable,
        done: &[Option<StagePlan>],
        states: &[Option<StageState>],
    ) -> Result<(StagePlan, StageState), Error> {
        let base_state = match table.stages[idx].base {
            BaseRef::Stage(b) => states[b].as_ref(),
            _ => None,
        };
        let mut st = self.start_stage(stage, idx, table, done, base_state)?;
        self.run_onbuild_triggers(&mut st, table, done, stage.span)?;
        for cmd in &stage.commands {
            st.step += 1;
            self.unset_names.borrow_mut().clear();
            self.dispatch(&mut st, cmd, table, done)?;
            self.report_undefined(&st, cmd);
        }
        let plan = StagePlan {
            name: table.stages[idx].name.clone(),
            index: idx,
            base: table.stages[idx].base.clone(),
            output: st.output,
            // The stage state lives on only for its env and args.
            config: std::mem::take(&mut st.config),
            history: std::mem::take(&mut st.history),
            platform: st.platform.clone(),
            author: st.author.clone(),
        };
        Ok((plan, st))
    }

    /// BuildKit's `UndefinedVar` warning for each name `cmd`'s words used
    /// unset, except ARGs the stage declared without a value.
    fn report_undefined(&mut self, st: &StageState, cmd: &Command) {
        let names = std::mem::take(&mut *self.unset_names.borrow_mut());
        if !self.check_undefined {
            return;
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in names {
            if st.args.iter().any(|(k, _)| *k == name) || !seen.insert(name.clone()) {
                continue;
            }
            let options = st.env.iter().map(|(k, _)| k.as_str());
            let hint = crate::checks::suggest(&name, options)
                .map(|m| format!(" (did you mean ${m}?)"))
                .unwrap_or_default();
            self.findings.push(crate::checks::Finding::new(
                &crate::checks::rules::UNDEFINED_VAR,
                format!("Usage of undefined variable '${name}'{hint}"),
                cmd.span,
            ));
        }
    }

    pub(crate) fn dispatch(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        table: &StageTable,
        done: &[Option<StagePlan>],
    ) -> Result<(), Error> {
        match &cmd.instruction {
            Instruction::Run(r) => self.dispatch_run(st, cmd, r, table, done),
            Instruction::Add(c) | Instruction::Copy(c) => {
                self.dispatch_copy(st, cmd, c, table, done)
            }
            Instruction::Workdir(p) => self.dispatch_workdir(st, cmd, p),
            Instruction::Arg(decls) => self.dispatch_arg(st, cmd, decls),
            _ => self.dispatch_config(st, cmd),
        }
    }

    /// An error about `cmd`'s arguments.
    pub(crate) fn cmd_error(&self, span: Span, message: String) -> Error {
        crate::instructions::instruction_error(self.file(), span, message)
    }

    /// Runs the base's ONBUILD triggers first, as BuildKit does, then
    /// clears them from the config; errors point at the FROM line.
    fn run_onbuild_triggers(
        &mut self,
        st: &mut StageState,
        table: &StageTable,
        done: &[Option<StagePlan>],
        span: Span,
    ) -> Result<(), Error> {
        let triggers = std::mem::take(&mut st.config.on_build);
        for trigger in &triggers {
            let ast = crate::syntax::parse(trigger, self.file()).map_err(|e| {
                stage_error(
                    self.file(),
                    span,
                    format!("failed to parse ONBUILD trigger {trigger:?}: {e}"),
                )
            })?;
            for node in &ast.root.children {
                let mut node = node.clone();
                node.span = span;
                let cmd = match crate::instructions::parse_node(&node, self.file())? {
                    crate::instructions::Parsed::Command(cmd) => cmd,
                    crate::instructions::Parsed::Stage(_) => {
                        return Err(stage_error(
                            self.file(),
                            span,
                            "FROM isn't allowed as an ONBUILD trigger".into(),
                        ))
                    }
                };
                self.dispatch(st, &cmd, table, done)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact_userinfo;

    #[test]
    fn credentials_never_reach_history() {
        assert_eq!(
            redact_userinfo("ADD https://u:p@host/x.tgz git://tok@h/r.git /d"),
            "ADD https://xxxxx@host/x.tgz git://xxxxx@h/r.git /d"
        );
        assert_eq!(redact_userinfo("COPY a /b"), "COPY a /b");
        assert_eq!(redact_userinfo("x https://host/a@b"), "x https://host/a@b");
    }
}
