//! Keeping a failed `RUN` step for `rbk debug step`: its changes (the upper
//! dir, moved, never copied) and how it ran, in the store until a prune
//! (see `rbk_store::FailedStep`).

use std::time::SystemTime;

use rbk_graph::{ExecOp, NetworkMode};
use rbk_store::{Digest, FailedStep, FailedStepMount, WorkDir};

use super::solve::HOSTNAME;
use crate::solve::{Solved, Solver};
use crate::Result;

impl Solver<'_> {
    /// Keeps the step `op` (vertex `digest`) that exited with `code` after
    /// writing into `work`'s upper dir over `root`.
    pub(crate) fn keep_failed(
        &self,
        op: &ExecOp,
        root: &Solved,
        mounts: Vec<FailedStepMount>,
        code: i32,
        digest: Digest,
        work: &WorkDir,
    ) -> Result<()> {
        let step = FailedStep {
            digest,
            args: op.args.clone(),
            // op.env: the step's own variables; values a secret mount put
            // in the environment are not among them.
            env: op.env.to_vec(),
            cwd: op.cwd.clone(),
            user: op.user.clone(),
            network: match op.network {
                NetworkMode::None => "none".into(),
                _ => "host".into(),
            },
            hostname: if op.hostname.is_empty() {
                HOSTNAME.into()
            } else {
                op.hostname.clone()
            },
            code,
            created: rbk_store::image::format_rfc3339(SystemTime::now()),
            layers: root.layers().to_vec(),
            mounts,
        };
        Ok(self.store.keep_failed_step(&step, &work.upper())?)
    }
}
