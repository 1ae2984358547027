//! Source ops: scratch, images from the store, local directories, and
//! remote sources (see `crate::remote`).

use std::sync::Arc;

use rbk_graph::{ExecContext, SourceOp};

use crate::context::{ContextIndex, StatCache};
use crate::solve::{LocalTree, Solved, SolvedFs, Solver};
use crate::{Error, Result};

impl Solver<'_> {
    /// Sources that need no work: scratch and images already in the store.
    /// A missing image or an unscanned local source is left to `execute`.
    pub(crate) fn resolve_source(&self, source: &SourceOp) -> Result<Option<Solved>> {
        match source {
            SourceOp::Scratch => Ok(Some(Solved::from_layers(Vec::new()))),
            SourceOp::Image {
                reference,
                platform,
            } => {
                let layers = self.store.image_layers(reference, platform.as_ref())?;
                Ok(Some(Solved::from_layers(layers)))
            }
            SourceOp::Local { .. } | SourceOp::Git { .. } | SourceOp::Http { .. } => Ok(None),
        }
    }

    pub(crate) fn execute_source(
        &self,
        source: &SourceOp,
        ctx: Option<&ExecContext<'_>>,
    ) -> Result<Solved> {
        match source {
            SourceOp::Scratch | SourceOp::Image { .. } => self
                .resolve_source(source)?
                .ok_or_else(|| Error::MalformedOp("unresolvable source".into())),
            SourceOp::Local { name, .. } => self.scan_local(name, ctx),
            SourceOp::Git {
                remote,
                reference,
                subdir,
                keep_git_dir,
            } => self.solve_git(&crate::remote::GitSource {
                remote,
                reference,
                subdir,
                keep_git_dir: *keep_git_dir,
            }),
            SourceOp::Http {
                url,
                checksum,
                filename,
            } => self.solve_http(url, checksum.as_deref(), filename, ctx),
        }
    }

    /// Scans a local source, reading no file: each is read when a COPY
    /// first selects it, unless its stat is unchanged since the last build
    /// of the same directory (the stat cache).
    /// The views show the visible files' total size as BuildKit's
    /// `transferring context` (rbk reads the directory in place, so that
    /// is what a transfer would carry).
    fn scan_local(&self, name: &str, ctx: Option<&ExecContext<'_>>) -> Result<Solved> {
        let dir = self
            .options
            .locals
            .get(name)
            .ok_or_else(|| Error::MissingLocal {
                name: name.to_string(),
            })?
            .clone();
        let (index, cache) = self.on_work_pool(|| {
            ContextIndex::scan_loading_cache(&dir.root, dir.filter.as_ref(), || {
                StatCache::load_scoped(self.store, &dir.root, dir.filter.scope())
            })
        })?;
        let index = Arc::new(index);
        if let Some(scans) = &self.options.scans {
            scans.keep(name, Arc::clone(&index));
        }
        if let Some(ctx) = ctx {
            let label = match name {
                "context" => "transferring context:".to_string(),
                other => format!("transferring {other}:"),
            };
            ctx.progress(&label, index.visible_bytes(), None);
        }
        Ok(Solved(Arc::new(SolvedFs {
            layers: Vec::new(),
            // Unused: keys read a local source through its index.
            content: crate::solve::key::chain_digest(&[]),
            local: Some(LocalTree::new(dir, index, Some(cache))),
        })))
    }
}
