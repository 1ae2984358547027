//! File ops (COPY, ADD, WORKDIR's mkdir, heredoc files) and merges.

use std::os::unix::ffi::OsStrExt;

use rbk_graph::{DagVertex, FileAction, FileOp};

use super::reuse::Reuse;
use super::{apply_actions, CopySource, FileOpOptions};
use crate::layer::commit_layer_tracked;
use crate::snapshot::View;
use crate::solve::{Solved, Solver};
use crate::{Error, IncludeAll, Result};

impl Solver<'_> {
    pub(crate) fn run_file(
        &self,
        vertex: &DagVertex,
        op: &FileOp,
        inputs: &[Solved],
    ) -> Result<Solved> {
        let work = self.store.work_dir()?;
        let base =
            match op.base {
                Some(i) => Some(inputs.get(i as usize).ok_or_else(|| {
                    Error::MalformedOp(format!("file op base {i}: no such input"))
                })?),
                None => None,
            };
        let lowers = match base {
            Some(b) => self.lower_dirs(b.layers())?,
            None => Vec::new(),
        };
        let dest = self.snapshotter.writable(&lowers, &work)?;
        // Mount only the inputs a copy reads from.
        let mut views = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let read = op
                .actions
                .iter()
                .any(|a| matches!(a, FileAction::Copy(c) if c.from as usize == i));
            let view = if read {
                self.input_view(input, &work, &format!("src-{i}"))?
            } else {
                View::dir(work.path().to_path_buf())
            };
            views.push(view);
        }
        let sources: Vec<CopySource<'_>> = inputs
            .iter()
            .zip(&views)
            .map(|(input, view)| match &input.0.local {
                Some(local) => CopySource {
                    root: view.path(),
                    filter: local.dir.filter.as_ref(),
                    reset_owner: true,
                },
                None => CopySource {
                    root: view.path(),
                    filter: &IncludeAll,
                    reset_owner: false,
                },
            })
            .collect();
        let options = FileOpOptions {
            source_date_epoch: self.options.source_date_epoch,
        };
        // Links need a plain directory on the store's filesystem: no lowers.
        let reuse = lowers
            .is_empty()
            .then(|| self.copy_reuse(vertex, op, inputs))
            .flatten()
            .map(std::sync::Arc::new);
        apply_actions(dest.path(), &sources, &op.actions, &options, reuse.as_ref())?;
        drop(sources);
        drop(views);
        self.snapshotter.commit(dest)?;
        let empty = Solved::from_layers(Vec::new());
        let base = base.unwrap_or(&empty);
        let Some(reuse) = reuse else {
            return self.commit_on(base, &work);
        };
        // The layer of an incremental copy is a tracked pack: its
        // checkpoints go into the record, and the next pack resumes from
        // the prefix the two share.
        let linked = reuse.resume();
        let resume = linked.as_ref().map(|l| l.as_resume());
        let options = self.layer_options();
        let committed = commit_layer_tracked(self.store, &work.upper(), &options, resume)?;
        drop(linked);
        let Some((layer, checkpoints)) = committed else {
            return self.commit_on(base, &work);
        };
        // The record only makes the next run faster: not writing it
        // (a full disk, a read-only db) fails nothing.
        let _ = reuse.save(&layer, &checkpoints);
        let mut layers = base.layers().to_vec();
        layers.push(layer);
        Ok(Solved::from_layers(layers))
    }

    /// What an incremental copy may take from the op's last snapshot (see
    /// `reuse`); `None` for ops that copy everything: those `reuse` does
    /// not handle, and `--no-cache` steps. The caller checks that the op
    /// writes into a plain directory.
    fn copy_reuse(&self, vertex: &DagVertex, op: &FileOp, inputs: &[Solved]) -> Option<Reuse> {
        let [FileAction::Copy(copy)] = op.actions.as_slice() else {
            return None;
        };
        if vertex.meta().ignore_cache || !Reuse::applies(op) {
            return None;
        }
        inputs.get(copy.from as usize)?.0.local.as_ref()?;
        // The op without what its inputs contain: what else it reads and
        // writes is the same whenever this key is.
        let mut h = blake3::Hasher::new();
        h.update(b"rbk-copy-reuse-v1\0");
        h.update(vertex.digest().as_bytes());
        if let Some(epoch) = self.options.source_date_epoch {
            h.update(b"source-date-epoch\0");
            h.update(&epoch.to_le_bytes());
        }
        for input in inputs {
            match &input.0.local {
                Some(local) => {
                    h.update(b"local\0");
                    h.update(local.dir.root.as_os_str().as_bytes());
                    h.update(b"\0");
                }
                None => {
                    h.update(b"layers\0");
                    h.update(input.0.content.as_bytes());
                }
            }
        }
        let name = h.finalize().to_hex();
        let file = self.store.db_dir().join("copy-reuse").join(name.as_str());
        Some(Reuse::load(file, |layer| {
            if !self.store.has_snapshot(&layer.diff_id) {
                return None;
            }
            self.store.ensure_snapshot(&layer.blob, &layer.diff_id).ok()
        }))
    }
}
