//! The solver: gives every op kind its behaviour, with the build cache in
//! front of it. Implements [`rbk_graph::Execute`], so the graph's scheduler
//! decides order and parallelism; this module decides what one vertex does.
//!
//! # Results
//!
//! A vertex's result ([`Solved`]) is a filesystem as a stack of layers,
//! lowest first, each a committed snapshot plus its blob in the store. A step
//! that changed nothing adds the *empty layer* (the 1024-byte empty tar),
//! which stays in the final image as BuildKit keeps it (overlay mounts skip
//! it). A local source's result is the context
//! directory itself with its checksum index: rbk has no daemon, so the
//! context is read in place, never copied.
//!
//! # Cache keys
//!
//! A vertex's cache key is the sha256 of its op digest (the op with its
//! inputs' op digests, see `rbk_graph::op_digest`) and of what its inputs
//! *contain*: the chain of diff ids of a layered input, or, for a COPY from
//! the context, the checksum of exactly the files that COPY selects
//! ([`ContextIndex::selector_digest`]). So an edit of a file that only a late
//! COPY reads misses the cache from that COPY on and nowhere else, and a step
//! whose inputs came out identical hits the cache again after a re-run
//! (docs/security.md rule 8: every input that affects the output is in the key; no
//! secret value ever is — secrets reach RUN only through mounts).

pub(crate) mod key;
mod remote;
mod store;

pub use remote::result_chain;
pub use store::SolveStore;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rbk_graph::{DagVertex, ExecContext, Execute, Op};
use rbk_store::{CacheRecord, Digest, Layer};

use crate::context::{ContextIndex, StatCache};
use crate::ops;
use crate::ops::exec::{Entitlements, Runtime};
use crate::remote_cache::CacheSource;
use crate::snapshot::{Snapshotter, SnapshotterChoice};
use crate::{Error, PathFilter, Result};

/// The media type of the uncompressed layers rbk writes into its store.
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A local directory handed to the build (the context, or a named context).
#[derive(Clone)]
pub struct LocalDir {
    /// The directory.
    pub root: PathBuf,
    /// What of it the build may see (`.dockerignore`).
    pub filter: Arc<dyn PathFilter>,
}

/// What a [`Solver`] needs besides the store and the runtime.
#[derive(Clone, Default)]
pub struct SolveOptions {
    /// Local sources by name (`context`).
    pub locals: BTreeMap<String, LocalDir>,
    /// What RUN steps may ask for (`--network=host`, `--security=insecure`).
    pub entitlements: Entitlements,
    /// `SOURCE_DATE_EPOCH`: clamps file times in new layers.
    pub source_date_epoch: Option<i64>,
    /// Shared caches asked, in order, about keys the store misses
    /// (`--cache-from`; see `solve/remote.rs`).
    pub cache_sources: Vec<Arc<dyn CacheSource>>,
    /// `--secret`: values by id, for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, crate::Secret>,
    /// `--ssh`: agent sockets by id, for `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// How filesystems are made visible to steps (overlay, copy, or overlay
    /// falling back to copy; see `snapshot`).
    pub snapshotter: SnapshotterChoice,
    /// How `ADD <url>` and `ADD <git url>` reach the network.
    pub remote: crate::RemoteSettings,
    /// Where the scans of local sources are kept for the caller, when it
    /// wants them after the build.
    pub scans: Option<Arc<LocalScans>>,
}

/// The indexes of a build's local sources by name, as the build scanned
/// them: the CLI's build record reads the context's files from here
/// instead of walking the context a second time (issue 19: the second walk
/// was a third of a warm no-op rebuild of a monorepo).
#[derive(Default)]
pub struct LocalScans(std::sync::Mutex<BTreeMap<String, Arc<ContextIndex>>>);

impl LocalScans {
    /// The index the build scanned local source `name` into, if it
    /// scanned it (a build that failed before may not have).
    pub fn get(&self, name: &str) -> Option<Arc<ContextIndex>> {
        self.lock().get(name).cloned()
    }

    pub(crate) fn keep(&self, name: &str, index: Arc<ContextIndex>) {
        self.lock().insert(name.to_string(), index);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<ContextIndex>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for LocalScans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.lock().keys()).finish()
    }
}

/// Solves vertices against a store, running RUN steps with a runtime.
pub struct Solver<'a> {
    pub(crate) store: &'a dyn SolveStore,
    pub(crate) runtime: &'a dyn Runtime,
    pub(crate) options: SolveOptions,
    pub(crate) snapshotter: Box<dyn Snapshotter>,
    pub(crate) init_layer: PathBuf,
    pub(crate) http: std::sync::OnceLock<crate::HttpClient>,
    tracker: remote::CacheTracker,
    /// See [`Solver::on_work_pool`]; `None` when no pool could be made.
    work: std::sync::OnceLock<Option<rayon::ThreadPool>>,
}

/// The result of one vertex: a filesystem. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Solved(pub(crate) Arc<SolvedFs>);

#[derive(Debug)]
pub(crate) struct SolvedFs {
    pub(crate) layers: Vec<Layer>,
    /// What the filesystem contains, as one digest (the input side of the
    /// cache keys of the vertices that read it).
    pub(crate) content: Digest,
    pub(crate) local: Option<LocalTree>,
}

/// A scanned local source.
pub(crate) struct LocalTree {
    pub(crate) dir: LocalDir,
    pub(crate) index: Arc<ContextIndex>,
    /// The stat cache the scan read, saved as files get hashed.
    cache: Arc<Mutex<Option<StatCache>>>,
    /// The save in progress (see [`LocalTree::save_cache`]).
    saving: Mutex<Option<JoinHandle<()>>>,
}

impl LocalTree {
    pub(crate) fn new(dir: LocalDir, index: Arc<ContextIndex>, cache: Option<StatCache>) -> Self {
        LocalTree {
            dir,
            index,
            cache: Arc::new(Mutex::new(cache)),
            saving: Mutex::new(None),
        }
    }

    /// Records the hashes read so far in the stat cache and writes it
    /// (nothing is written when nothing changed), on a thread of its own:
    /// for a monorepo that is 300,000 records and an fsync, which the step
    /// that asked does not wait for. The cache only saves work, so a save
    /// that fails is dropped: the next build hashes those files again.
    /// Saves run one at a time, and dropping the tree waits for the last.
    pub(crate) fn save_cache(&self) {
        let mut saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        finish_save(&mut saving);
        let (index, cache) = (Arc::clone(&self.index), Arc::clone(&self.cache));
        *saving = Some(std::thread::spawn(move || {
            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cache) = cache.as_mut() {
                index.update_cache(cache);
                let _ = cache.save();
            }
        }));
    }
}

impl Drop for LocalTree {
    fn drop(&mut self) {
        finish_save(
            self.saving
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}

/// Waits for the stat cache save in progress, if any (its failure was
/// already dropped: see [`LocalTree::save_cache`]).
fn finish_save(saving: &mut Option<JoinHandle<()>>) {
    if let Some(running) = saving.take() {
        let _ = running.join();
    }
}

impl std::fmt::Debug for LocalTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTree")
            .field("root", &self.dir.root)
            .finish()
    }
}

impl Solved {
    pub(crate) fn from_layers(layers: Vec<Layer>) -> Solved {
        let content = key::chain_digest(&layers);
        Solved(Arc::new(SolvedFs {
            layers,
            content,
            local: None,
        }))
    }

    /// The filesystem's layers, lowest first (empty layers included).
    pub fn layers(&self) -> &[Layer] {
        &self.0.layers
    }

    /// Whether this is a local directory rather than layers.
    pub fn is_local(&self) -> bool {
        self.0.local.is_some()
    }
}

impl<'a> Solver<'a> {
    /// A solver over `store` (a [`rbk_store::Store`], or any other
    /// [`SolveStore`]). Writes the init layer (see `run`) into the store's
    /// root if it is not there yet.
    pub fn new(
        store: &'a dyn SolveStore,
        runtime: &'a dyn Runtime,
        options: SolveOptions,
    ) -> Result<Self> {
        let init_layer = ops::exec::ensure_init_layer(&store.root().join("init-layer"))?;
        Ok(Solver {
            store,
            runtime,
            snapshotter: options.snapshotter.build(),
            options,
            init_layer,
            http: Default::default(),
            tracker: Default::default(),
            work: Default::default(),
        })
    }

    /// Runs `f` on a pool of one thread per core, made on first use: the
    /// data-parallel work inside a step (the context walk, a copy's
    /// batches of links and copies). The scheduler's pool has `jobs`
    /// threads whatever the core count, because most steps wait on
    /// something else; on 2 cores its 16 threads made a 300,000-file
    /// monorepo's no-op rebuild and one-file edit about 10% slower than 2
    /// threads did (switching, sleeping on each other's directory locks;
    /// issue 19). Without a pool `f` runs where it is called.
    pub(crate) fn on_work_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let pool = self.work.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            rayon::ThreadPoolBuilder::new()
                .num_threads(cores.max(2))
                .thread_name(|i| format!("rbk-work-{i}"))
                // The same room for deep trees as the scheduler's threads.
                .stack_size(rbk_store::WALK_STACK)
                .build()
                .ok()
        });
        let Some(pool) = pool else {
            return f();
        };
        // Already on it: blocking one of its threads on itself could
        // leave the work nobody to run it.
        if pool.current_thread_index().is_some() {
            return f();
        }
        if rayon::current_thread_index().is_none() {
            return pool.install(f);
        }
        // From a worker of another pool (the scheduler's), `install` keeps
        // the caller busy with that pool's jobs until `f` is done: another
        // step's RUN, say, which would then hold this step's result back.
        // A plain thread waits for `f` without taking work.
        std::thread::scope(|s| {
            s.spawn(|| pool.install(f))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The store solved against.
    pub fn store(&self) -> &dyn SolveStore {
        self.store
    }
}

impl Execute for Solver<'_> {
    type Output = Solved;
    type Error = Error;

    fn cached(&self, vertex: &DagVertex, inputs: &[Solved]) -> Result<Option<Solved>> {
        match vertex.op() {
            // Sources are cheap to resolve and have no cache record.
            Op::Source(source) => self.resolve_source(source),
            Op::Merge(_) => Ok(Some(ops::merge::merge(inputs))),
            Op::Exec(_) | Op::File(_) if vertex.meta().ignore_cache => Ok(None),
            Op::Exec(_) | Op::File(_) => {
                let key = key::cache_key(vertex, inputs, self.options.source_date_epoch)?;
                match self.store.cache_get(&key)? {
                    Some(record) => {
                        self.track(key, vertex, &record);
                        Ok(Some(Solved::from_layers(record.layers)))
                    }
                    None => self.remote_lookup(&key, vertex),
                }
            }
        }
    }

    fn execute(
        &self,
        vertex: &DagVertex,
        inputs: &[Solved],
        ctx: &ExecContext<'_>,
    ) -> Result<Solved> {
        let solved = match vertex.op() {
            Op::Source(source) => return self.execute_source(source, Some(ctx)),
            Op::Merge(_) => return Ok(ops::merge::merge(inputs)),
            Op::Exec(op) => self.run_exec(op, inputs, ctx),
            Op::File(op) => self.on_work_pool(|| self.run_file(vertex, op, inputs)),
        };
        if let Some(warning) = self.snapshotter.take_warning() {
            ctx.warn(&warning);
        }
        let solved = solved?;
        let key = key::cache_key(vertex, inputs, self.options.source_date_epoch)?;
        let record = CacheRecord::new(solved.layers().to_vec(), vertex.meta().description.clone());
        self.store.cache_put(&key, &record)?;
        self.track(key, vertex, &record);
        Ok(solved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeRuntime, MemSolveStore};

    #[test]
    fn step_work_runs_on_one_pool_of_a_thread_per_core() {
        let (store, runtime) = (MemSolveStore::new().unwrap(), FakeRuntime::new());
        let solver = Solver::new(&store, &runtime, SolveOptions::default()).unwrap();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let on_pool = || {
            let name = std::thread::current().name().map(String::from);
            (name, rayon::current_num_threads())
        };
        for _ in 0..2 {
            let (name, threads) = solver.on_work_pool(on_pool);
            assert!(name.is_some_and(|n| n.starts_with("rbk-work-")));
            assert_eq!(threads, cores.max(2));
        }
        // Called again from the pool, it runs in place.
        let inner = solver.on_work_pool(|| {
            let outer = std::thread::current().id();
            solver.on_work_pool(|| std::thread::current().id() == outer)
        });
        assert!(inner);
    }

    #[test]
    fn a_scheduler_thread_waiting_for_step_work_takes_no_other_job() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (store, runtime) = (MemSolveStore::new().unwrap(), FakeRuntime::new());
        let solver = Solver::new(&store, &runtime, SolveOptions::default()).unwrap();
        // One thread, as if all the scheduler's others were busy.
        let scheduler = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let other_ran = Arc::new(AtomicBool::new(false));
        let (name, ran_meanwhile) = scheduler.install(|| {
            let flag = Arc::clone(&other_ran);
            rayon::spawn(move || flag.store(true, Ordering::SeqCst));
            solver.on_work_pool(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let name = std::thread::current().name().map(String::from);
                (name, other_ran.load(Ordering::SeqCst))
            })
        });
        assert!(name.is_some_and(|n| n.starts_with("rbk-work-")));
        assert!(!ran_meanwhile, "the waiting thread ran another job");
    }
}
