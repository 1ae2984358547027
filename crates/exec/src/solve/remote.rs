//! The solver's side of the shared build cache: which records a build
//! produced or hit (for `--cache-to`), and hits from [`CacheSource`]s (for
//! `--cache-from`), fetched lazily.
//!
//! # Laziness
//!
//! A remote hit costs nothing at first: the vertex is reported CACHED and
//! its result names the record's layers, whose blobs may not be in the store
//! yet. They are registered as *lazy*, and fetched (verified, see
//! `remote_cache`) and unpacked only when something needs their content: a
//! later step that runs on top of them or copies from them
//! ([`Solver::lower_dirs`]), the final image ([`Solver::materialize`]), or
//! an export ([`Solver::cache_records`]). So a builder stage whose only use
//! is a COPY that itself hits the cache is never downloaded. The local
//! record of a remote hit is written once all its layers are present, so the
//! store's records always name content it has.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rbk_graph::{Dag, DagVertex, Op};
use rbk_store::{CacheRecord, Digest, Layer};

use super::{Solved, Solver};
use crate::remote_cache::{CacheMode, CacheSource};
use crate::Result;

/// What the solver remembers about cache records during one build.
#[derive(Default)]
pub(super) struct CacheTracker {
    /// Every record the build produced or hit, by key, with its vertex.
    used: Mutex<HashMap<Digest, (usize, CacheRecord)>>,
    /// Layer blobs a source has and the store may not, by blob digest.
    lazy: Mutex<HashMap<Digest, Arc<dyn CacheSource>>>,
    /// Remote hits whose local record waits for their layers.
    pending: Mutex<Vec<(Digest, CacheRecord)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Solver<'_> {
    /// Notes that `vertex` produced or hit `record` under `key`.
    pub(super) fn track(&self, key: Digest, vertex: &DagVertex, record: &CacheRecord) {
        lock(&self.tracker.used).insert(key, (vertex.index(), record.clone()));
    }

    /// Asks the cache sources, in order, for `key`; on a hit, registers the
    /// record's missing layers as lazy and returns the result.
    pub(super) fn remote_lookup(&self, key: &Digest, vertex: &DagVertex) -> Result<Option<Solved>> {
        for source in &self.options.cache_sources {
            let Some(mut record) = source.lookup(key) else {
                continue;
            };
            if record.description.is_empty() {
                record.description = vertex.meta().description.clone();
            }
            {
                let mut lazy = lock(&self.tracker.lazy);
                for layer in &record.layers {
                    if !self.store.exists(&layer.blob.digest)? {
                        lazy.entry(layer.blob.digest)
                            .or_insert_with(|| source.clone());
                    }
                }
            }
            self.track(*key, vertex, &record);
            lock(&self.tracker.pending).push((*key, record.clone()));
            self.flush_pending()?;
            return Ok(Some(Solved::from_layers(record.layers)));
        }
        Ok(None)
    }

    /// Fetches and unpacks every lazy layer among `layers`, then writes the
    /// local records that were waiting for them.
    pub fn materialize(&self, layers: &[Layer]) -> Result<()> {
        for layer in layers {
            let source = lock(&self.tracker.lazy).get(&layer.blob.digest).cloned();
            let Some(source) = source else { continue };
            source.fetch_blob(self.store, &layer.blob)?;
            self.store.ensure_snapshot(&layer.blob, &layer.diff_id)?;
            lock(&self.tracker.lazy).remove(&layer.blob.digest);
        }
        self.flush_pending()
    }

    /// The snapshot directories of `layers`, fetching lazy ones first.
    pub(crate) fn lower_dirs(&self, layers: &[Layer]) -> Result<Vec<PathBuf>> {
        self.materialize(layers)?;
        crate::snapshot::lower_dirs(self.store, layers)
    }

    /// Writes the local records of remote hits whose layers are all here.
    fn flush_pending(&self) -> Result<()> {
        let ready: Vec<(Digest, CacheRecord)> = {
            let lazy = lock(&self.tracker.lazy);
            let mut pending = lock(&self.tracker.pending);
            let (ready, waiting) = pending
                .drain(..)
                .partition(|(_, r)| r.layers.iter().all(|l| !lazy.contains_key(&l.blob.digest)));
            *pending = waiting;
            ready
        };
        for (key, record) in ready {
            for layer in &record.layers {
                self.store.ensure_snapshot(&layer.blob, &layer.diff_id)?;
            }
            self.store.cache_put(&key, &record)?;
        }
        Ok(())
    }

    /// The records this build produced or hit (locally or from a source),
    /// sorted by key, for an export: with [`CacheMode::Max`] all of them,
    /// with [`CacheMode::Min`] those of the vertices on the chain of the
    /// result of `dag`'s first root (see [`result_chain`]). Lazy layers of
    /// the chosen records are fetched, so every layer is in the store.
    pub fn cache_records(&self, dag: &Dag, mode: CacheMode) -> Result<Vec<(Digest, CacheRecord)>> {
        let chain = result_chain(dag);
        let mut chosen: Vec<(Digest, CacheRecord)> = lock(&self.tracker.used)
            .iter()
            .filter(|(_, (vertex, _))| mode == CacheMode::Max || chain.contains(vertex))
            .map(|(key, (_, record))| (*key, record.clone()))
            .collect();
        chosen.sort_by_key(|(key, _)| *key);
        for (_, record) in &chosen {
            self.materialize(&record.layers)?;
        }
        Ok(chosen)
    }
}

/// The vertices whose filesystems the result of `dag`'s first root is built
/// on: from the root, through each op's base (a RUN's root filesystem, a
/// file op's base, every input of a merge), down to a source. A stage that
/// is only copied from (`COPY --from`) or mounted is not on the chain: this
/// is BuildKit's `mode=min`, the records of the exported image's own steps.
pub fn result_chain(dag: &Dag) -> HashSet<usize> {
    let mut chain = HashSet::new();
    let mut stack: Vec<usize> = dag.roots().first().copied().into_iter().collect();
    while let Some(index) = stack.pop() {
        if !chain.insert(index) {
            continue;
        }
        let vertex = dag.vertex(index);
        let inputs = vertex.inputs();
        match vertex.op() {
            Op::Exec(_) => stack.extend(inputs.first().copied()),
            Op::File(op) => stack.extend(op.base.and_then(|b| inputs.get(b as usize).copied())),
            Op::Merge(_) => stack.extend(inputs.iter().copied()),
            Op::Source(_) => {}
        }
    }
    chain
}
