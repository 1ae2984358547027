//! File ops (COPY, ADD, WORKDIR's mkdir, heredoc files) and merges.

use rbk_graph::{FileAction, FileOp};

use super::{apply_file_actions_with, CopySource, FileOpOptions};
use crate::snapshot::View;
use crate::solve::{Solved, Solver};
use crate::{Error, IncludeAll, Result};

impl Solver<'_> {
    pub(crate) fn run_file(&self, op: &FileOp, inputs: &[Solved]) -> Result<Solved> {
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
        apply_file_actions_with(dest.path(), &sources, &op.actions, &options)?;
        drop(sources);
        drop(views);
        self.snapshotter.commit(dest)?;
        let empty = Solved::from_layers(Vec::new());
        self.commit_on(base.unwrap_or(&empty), &work)
    }
}
