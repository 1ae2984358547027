//! COPY, ADD and WORKDIR: file ops.

use rbk_graph::{
    CopyAction, FileAction, FileOp, Input, MergeOp, NodeId, Op, OpMetadata, Owner, SourceOp,
};

use super::run::{absolute_target, clean_path};
use super::stages::StageTable;
use super::state::{concat, Lowerer, StageState};
use super::StagePlan;
use crate::error::Error;
use crate::instructions::{Command, CopyCommand, CopySource, InlineFile};
use crate::syntax::Span;

/// The expanded words of one ADD/COPY.
struct Words {
    dest: String,
    owner: Option<Owner>,
    chmod: Option<String>,
    checksum: Option<String>,
    exclude: Vec<String>,
    from: Option<String>,
    /// Per source: the expanded path, `None` for heredocs.
    sources: Vec<Option<String>>,
}

/// One file op with a copy action per source; `--link` copies onto nothing.
fn copy_op(c: &CopyCommand, state: NodeId, srcs: Vec<Src>, dest: &str, w: &Words) -> FileOp {
    let base = if c.link { None } else { Some(state) };
    let mut inputs: Vec<Input> = base.map(Input::of).into_iter().collect();
    let mut actions = Vec::new();
    for src in srcs {
        let idx = inputs
            .iter()
            .position(|i| i.node == src.node)
            .unwrap_or_else(|| {
                inputs.push(Input::of(src.node));
                inputs.len() - 1
            });
        actions.push(FileAction::Copy(CopyAction {
            from: idx as u32,
            src: src.path,
            dest: dest.to_string(),
            owner: w.owner.clone(),
            mode: w.chmod.clone(),
            follow_symlinks: true,
            dir_contents_only: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            create_dest_path: true,
            auto_extract: src.extract,
            parents: c.parents,
            exclude: w.exclude.clone(),
        }));
    }
    FileOp {
        inputs,
        base: base.map(|_| 0),
        actions,
    }
}

/// Where one ADD/COPY source comes from.
struct Src {
    node: NodeId,
    path: String,
    extract: bool,
}

impl Lowerer<'_> {
    /// Expands the words BuildKit expands for ADD/COPY.
    fn copy_words(&self, st: &StageState, cmd: &Command, c: &CopyCommand) -> Result<Words, Error> {
        let x = |w: &str| self.expand_in(w, &st.env, cmd.span);
        let opt = |w: &Option<String>| -> Result<Option<String>, Error> {
            Ok(w.as_deref().map(x).transpose()?.filter(|s| !s.is_empty()))
        };
        let chmod = opt(&c.chmod)?;
        if let Some(m) = &chmod {
            check_chmod(m).map_err(|e| self.cmd_error(cmd.span, e))?;
        }
        let sources = c
            .sources
            .iter()
            .map(|s| match s {
                CopySource::Path(p) => x(p).map(Some),
                CopySource::Heredoc(_) => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Words {
            dest: x(&c.dest)?,
            owner: opt(&c.chown)?.as_deref().map(parse_owner),
            chmod,
            checksum: opt(&c.checksum)?,
            exclude: c
                .exclude
                .iter()
                .map(|e| x(e))
                .collect::<Result<Vec<_>, _>>()?,
            from: c
                .from
                .as_deref()
                .map(|f| self.expand_in(f, &self.global, cmd.span))
                .transpose()?,
            sources,
        })
    }

    pub(crate) fn dispatch_copy(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        c: &CopyCommand,
        table: &StageTable,
        done: &[Option<StagePlan>],
    ) -> Result<(), Error> {
        let add = cmd.instruction.name() == "ADD";
        let w = self.copy_words(st, cmd, c)?;
        let mut dest = absolute_target(st.cwd_str(), &w.dest);
        if (w.dest.is_empty() || w.dest == "." || w.dest.ends_with('/')) && !dest.ends_with('/') {
            dest.push('/');
        }
        let from = match &w.from {
            Some(f) => Some(self.node_for_from(st, cmd, f, table, done)?),
            None => None,
        };
        let mut srcs: Vec<Src> = Vec::new();
        let mut created_by = cmd.instruction.name().to_string();
        for (source, word) in c.sources.iter().zip(&w.sources) {
            let src = match (source, word) {
                (CopySource::Heredoc(doc), _) => {
                    created_by.push_str(" <<");
                    created_by.push_str(&doc.name);
                    self.heredoc_source(st, cmd, doc)?
                }
                (_, p) => {
                    let p = p.as_deref().unwrap_or_default();
                    created_by.push(' ');
                    created_by.push_str(p);
                    let into_dir = dest.ends_with('/');
                    let checksum = w.checksum.as_deref();
                    self.path_source(st, cmd.span, add, p, from, checksum, c, into_dir)?
                }
            };
            srcs.push(src);
        }
        created_by.push(' ');
        created_by.push_str(&w.dest);
        let op = copy_op(c, st.output, srcs, &dest, &w);
        let meta = self.meta(st, cmd);
        st.output = if c.link {
            let file = self.push(Op::File(op), meta.clone());
            let merge = MergeOp {
                inputs: vec![Input::of(st.output), Input::of(file)],
            };
            self.push(Op::Merge(merge), meta)
        } else {
            self.push(Op::File(op), meta)
        };
        st.commit(created_by, true);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn path_source(
        &mut self,
        st: &StageState,
        span: Span,
        add: bool,
        p: &str,
        from: Option<NodeId>,
        checksum: Option<&str>,
        c: &CopyCommand,
        into_dir: bool,
    ) -> Result<Src, Error> {
        let remote = add && from.is_none() && is_remote(p);
        if checksum.is_some() && (!remote || is_git(p)) {
            return Err(self.cmd_error(
                span,
                "checksum can't be specified for non-HTTP(S) sources".into(),
            ));
        }
        if remote {
            return Ok(self.remote_source(st, span, p, checksum, c, into_dir));
        }
        let node = match from {
            Some(n) => n,
            None => self.context(),
        };
        let extract = add && c.unpack != Some(false);
        Ok(Src {
            node,
            path: source_path(p, c.parents),
            extract,
        })
    }

    /// `ADD <git url>` or `ADD <http url>`: a source vertex of its own.
    /// A URL whose path names no file, added into a directory, leaves the
    /// name to the download (`Content-Disposition`): the op's `filename`
    /// is empty and the copy takes the source's root contents.
    fn remote_source(
        &mut self,
        st: &StageState,
        span: Span,
        p: &str,
        checksum: Option<&str>,
        c: &CopyCommand,
        into_dir: bool,
    ) -> Src {
        if is_git(p) {
            let (remote_url, fragment) = p.split_once('#').unwrap_or((p, ""));
            let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
            let op = SourceOp::Git {
                remote: remote_url.into(),
                reference: reference.into(),
                subdir: subdir.into(),
                keep_git_dir: c.keep_git_dir,
            };
            let node = self.push(Op::Source(op), self.source_meta(st, span, p));
            return Src {
                node,
                path: "/".into(),
                extract: false,
            };
        }
        let url_path = p.split(['?', '#']).next().unwrap_or(p);
        let named = url_path
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(_, path)| path.rsplit('/').next())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..");
        let name = match (named, into_dir) {
            (Some(n), _) => n,
            (None, true) => "",
            (None, false) => "__unnamed__",
        };
        let op = SourceOp::Http {
            url: p.into(),
            checksum: checksum.map(str::to_string),
            filename: name.into(),
        };
        let node = self.push(Op::Source(op), self.source_meta(st, span, p));
        Src {
            node,
            path: format!("/{name}"),
            extract: c.unpack == Some(true),
        }
    }

    fn source_meta(&self, st: &StageState, span: Span, what: &str) -> OpMetadata {
        OpMetadata {
            description: format!(
                "[{}] load {}",
                st.display,
                super::state::redact_userinfo(what)
            ),
            stage: Some(st.display.clone()),
            span: Some(self.source_span(span)),
            ignore_cache: self.opts.no_cache,
            ..Default::default()
        }
    }

    fn heredoc_source(
        &mut self,
        st: &StageState,
        cmd: &Command,
        doc: &InlineFile,
    ) -> Result<Src, Error> {
        let mut data = doc.content();
        if doc.expand {
            let raw = self.lexer.clone().raw_quotes(true).raw_escapes(true);
            let expand_error = |message: String| Error::Expand {
                location: crate::error::Location::lines(
                    self.file(),
                    cmd.span.start_line,
                    cmd.span.end_line,
                ),
                message,
            };
            data = raw
                .process_word(&data, &st.env)
                .map_err(|e| expand_error(e.to_string()))?;
            self.spend_text(data.len())
                .map_err(|fault| expand_error(fault.to_string()))?;
        }
        let path = format!("/{}", doc.name);
        let op = FileOp {
            inputs: Vec::new(),
            base: None,
            actions: vec![FileAction::Mkfile {
                path: path.clone(),
                mode: 0o644,
                data,
                owner: None,
            }],
        };
        let meta = OpMetadata {
            description: "preparing inline document".into(),
            ..self.meta(st, cmd)
        };
        let node = self.push(Op::File(op), meta);
        Ok(Src {
            node,
            path,
            extract: false,
        })
    }

    pub(crate) fn dispatch_workdir(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        p: &str,
    ) -> Result<(), Error> {
        let p = self.expand_in(p, &st.env, cmd.span)?;
        let wd = absolute_target(st.cwd_str(), &p);
        st.config.working_dir = wd.clone();
        let layer = wd != "/";
        if layer {
            let owner = (!st.config.user.is_empty()).then(|| parse_owner(&st.config.user));
            let op = FileOp {
                inputs: vec![Input::of(st.output)],
                base: Some(0),
                actions: vec![FileAction::Mkdir {
                    path: wd.clone(),
                    mode: 0o755,
                    make_parents: true,
                    owner,
                }],
            };
            let meta = self.meta(st, cmd);
            st.output = self.push(Op::File(op), meta);
        }
        st.history.push(rbk_graph::image::History {
            created_by: Some(concat(&["WORKDIR ", &wd])),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: !layer,
            ..Default::default()
        });
        Ok(())
    }
}

fn is_remote(p: &str) -> bool {
    p.starts_with("http://") || p.starts_with("https://") || is_git(p)
}

fn is_git(p: &str) -> bool {
    p.starts_with("git@")
        || p.starts_with("git://")
        || p.starts_with("ssh://")
        || ((p.starts_with("https://") || p.starts_with("http://"))
            && (p
                .split(['#', '?'])
                .next()
                .is_some_and(|u| u.ends_with(".git"))
                || p.contains(".git#")))
}

fn parse_owner(s: &str) -> Owner {
    let (user, group) = s.split_once(':').unwrap_or((s, ""));
    Owner {
        user: user.into(),
        group: group.into(),
    }
}

/// `--chmod`: octal (`0755`) or symbolic (`u+x,g-w`).
fn check_chmod(m: &str) -> Result<(), String> {
    if m.bytes().all(|b| (b'0'..=b'7').contains(&b)) && m.len() <= 4 {
        return Ok(());
    }
    let symbolic = m.split(',').all(|clause| {
        let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        !ops.is_empty()
            && ops.starts_with(['+', '-', '='])
            && ops.chars().all(|c| "+-=rwxXst".contains(c))
    });
    if symbolic {
        Ok(())
    } else {
        Err(format!("invalid chmod parameter: {m:?}"))
    }
}

/// A local source as the file op takes it: cleaned and absolute, except
/// that `COPY --parents` keeps its last `/./` pivot (the part before it is
/// not kept under the destination).
fn source_path(p: &str, parents: bool) -> String {
    let full = concat(&["/", p]);
    match full.rfind("/./") {
        Some(i) if parents && i > 0 => {
            let (before, after) = (clean_path(&full[..i]), clean_path(&full[i + 2..]));
            format!("{}/.{after}", before.trim_end_matches('/'))
        }
        _ => clean_path(&full),
    }
}
