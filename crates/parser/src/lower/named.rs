//! Named contexts (`--build-context NAME=VALUE`): a name that `FROM NAME`,
//! `COPY --from=NAME` and `RUN --mount=from=NAME` resolve to before stages
//! and images, as buildx does (so a named context overrides a stage of the
//! same name).

use rbk_graph::{NodeId, Op, OpMetadata, Platform, SourceOp};

use super::state::Lowerer;

/// What a named context is, as the lowering sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// `docker-image://REF`: an image (normalized reference).
    Image(String),
    /// A local directory, handed to the solver as the local source
    /// [`NamedContext::local_name`].
    Local,
    /// A git repository (`ref` and `subdir` from the URL fragment).
    Git {
        /// The remote URL.
        remote: String,
        /// Branch, tag or commit; empty for the default branch.
        reference: String,
        /// Subdirectory; empty for the root.
        subdir: String,
    },
}

impl NamedContext {
    /// The solver's local-source name of the local named context `name`.
    pub fn local_name(name: &str) -> String {
        format!("named:{name}")
    }
}

impl Lowerer<'_> {
    /// The named context `name` (lower-case), marking it used.
    pub(crate) fn named_context(&self, name: &str) -> Option<&NamedContext> {
        let found = self.opts.named_contexts.get(name)?;
        self.used_named.borrow_mut().insert(name.to_string());
        Some(found)
    }

    /// The source vertex of named context `name`.
    pub(crate) fn named_node(&mut self, name: &str, platform: &Platform) -> NodeId {
        let Some(ctx) = self.named_context(name).cloned() else {
            unreachable!("resolve_from returns only known named contexts")
        };
        let (op, what) = match ctx {
            NamedContext::Image(r) => return self.image(&r, platform),
            NamedContext::Local => (
                SourceOp::Local {
                    name: NamedContext::local_name(name),
                    include: Vec::new(),
                    exclude: Vec::new(),
                },
                format!("[internal] load build context {name}"),
            ),
            NamedContext::Git {
                remote,
                reference,
                subdir,
            } => {
                let what = format!("[{name}] load {}", super::state::redact_userinfo(&remote));
                let op = SourceOp::Git {
                    remote,
                    reference,
                    subdir,
                    keep_git_dir: false,
                };
                (op, what)
            }
        };
        let meta = OpMetadata {
            description: what,
            ignore_cache: self.opts.no_cache,
            ..Default::default()
        };
        self.push(Op::Source(op), meta)
    }

    /// A warning per named context nothing in the Dockerfile used.
    pub(crate) fn unused_named_warnings(&self) -> Vec<String> {
        let used = self.used_named.borrow();
        self.opts
            .named_contexts
            .keys()
            .filter(|name| !used.contains(*name))
            .map(|name| {
                format!("build context {name:?} (--build-context) is not used by any stage")
            })
            .collect()
    }
}
