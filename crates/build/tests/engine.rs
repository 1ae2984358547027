//! The engine without root, registry or runc: a fake [`ImageProvider`]
//! serves the base image, a fake [`CacheTransport`] carries the cache, and
//! `rbk_exec`'s recording [`FakeRuntime`] stands in for runc, over the copy
//! snapshotter and a store in a temporary directory. Each fake records what
//! the engine asked of it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rbk_build::{
    BoxError, BuildRequest, BuildResult, CacheFrom, CacheTo, CacheTransport, Dockerfile, Engine,
    ImageProvider,
};
use rbk_exec::testing::{FakeRun, FakeRuntime};
use rbk_exec::{
    commit_image, commit_layer, CacheMode, Compression, ImageSpec, ImportedCache, LayerOptions,
    SnapshotterChoice, CACHE_CONFIG,
};
use rbk_graph::{Event, Platform, RecordingReporter};
use rbk_store::image::Manifest;
use rbk_store::{
    BlobRead, BlobWrite, Descriptor, Digest, Layer, MemStore, Reference, Store, MAX_DOCUMENT_SIZE,
};

/// The platform rbk runs on, as the CLI's settings give it.
fn host() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: String::new(),
    }
}

/// Serves one image, `base:1` (a layer holding `/etc/base-release`), and
/// records every pull.
#[derive(Default)]
struct FakeRegistry {
    pulls: Mutex<Vec<(String, Platform)>>,
}

impl FakeRegistry {
    fn pulls(&self) -> Vec<(String, Platform)> {
        self.pulls.lock().unwrap().clone()
    }
}

impl ImageProvider for FakeRegistry {
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Descriptor, BoxError> {
        self.pulls
            .lock()
            .unwrap()
            .push((reference.to_string(), platform.clone()));
        if reference.to_string() != "docker.io/library/base:1" {
            return Err(format!("{reference}: not found").into());
        }
        let work = store.work_dir()?;
        let etc = work.upper().join("etc");
        fs::create_dir(&etc)?;
        fs::write(etc.join("base-release"), "base 1\n")?;
        let options = LayerOptions {
            source_date_epoch: Some(0),
        };
        let layer = commit_layer(store, &work.upper(), &options)?.ok_or("an empty layer")?;
        let spec = ImageSpec {
            config: Default::default(),
            history: Vec::new(),
            platform: platform.clone(),
            author: String::new(),
            created: SystemTime::UNIX_EPOCH,
        };
        Ok(commit_image(store, &[layer], spec)?)
    }

    fn push(&self, _: &Store, _: &Descriptor, reference: &Reference) -> Result<(), BoxError> {
        Err(format!("pushing {reference}: the fake registry takes no pushes").into())
    }
}

/// A cache kept in memory: export copies the cache manifest and every blob
/// it names out of the store; import reads the last export back, and its
/// fetcher copies blobs into the importing store, recording each.
#[derive(Default)]
struct FakeCache {
    blobs: MemStore,
    exports: Mutex<Vec<Descriptor>>,
    imports: Mutex<usize>,
    fetched: Arc<Mutex<Vec<Digest>>>,
}

impl FakeCache {
    fn manifest(&self, descriptor: &Descriptor) -> Manifest {
        let bytes = self
            .blobs
            .read_bounded(&descriptor.digest, MAX_DOCUMENT_SIZE)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

impl CacheTransport for FakeCache {
    fn describe(&self) -> String {
        "type=fake".into()
    }

    fn import(&self, _store: &Store) -> Result<ImportedCache, BoxError> {
        *self.imports.lock().unwrap() += 1;
        let last = self.exports.lock().unwrap().last().cloned();
        let manifest = self.manifest(&last.ok_or("nothing exported yet")?);
        let config = self
            .blobs
            .read_bounded(&manifest.config.digest, MAX_DOCUMENT_SIZE)?;
        let (blobs, fetched) = (self.blobs.clone(), self.fetched.clone());
        let fetch = Box::new(move |store: &dyn BlobWrite, d: &Descriptor| {
            fetched.lock().unwrap().push(d.digest);
            store.put(&mut blobs.open(&d.digest)?, Some((d.digest, Some(d.size))))?;
            Ok(())
        });
        Ok(ImportedCache::named("fake", &config, fetch)?)
    }

    fn export(&self, store: &Store, manifest: &Descriptor) -> Result<(), BoxError> {
        let bytes = store.read_bounded(&manifest.digest, MAX_DOCUMENT_SIZE)?;
        let parsed: Manifest = serde_json::from_slice(&bytes)?;
        for blob in std::iter::once(&parsed.config).chain(&parsed.layers) {
            let mut reader = store.open(&blob.digest)?;
            self.blobs
                .put(&mut reader, Some((blob.digest, Some(blob.size))))?;
        }
        self.blobs.put_bytes(&bytes)?;
        self.exports.lock().unwrap().push(manifest.clone());
        Ok(())
    }
}

/// A store and a build context in a temporary directory.
struct Site {
    _dir: tempfile::TempDir,
    store: Store,
    context: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let context = dir.path().join("context");
        fs::create_dir(&context).unwrap();
        fs::write(context.join("app.txt"), "the app\n").unwrap();
        Site {
            _dir: dir,
            store,
            context,
        }
    }

    /// Builds `text` with the fakes, as `rbk build` would with these
    /// caches.
    fn build(
        &self,
        text: &str,
        registry: &FakeRegistry,
        runtime: &FakeRuntime,
        caches: (Vec<CacheFrom>, Vec<CacheTo>),
    ) -> (BuildResult, Vec<Event>) {
        let request = request(text, &self.context, caches);
        let engine = Engine::new(&self.store, registry, runtime);
        let planned = engine.plan(request).unwrap();
        let reporter = RecordingReporter::new();
        let result = engine.run(planned, &reporter).unwrap();
        (result, reporter.events())
    }
}

fn request(text: &str, context: &Path, caches: (Vec<CacheFrom>, Vec<CacheTo>)) -> BuildRequest {
    BuildRequest {
        dockerfile: Dockerfile {
            name: "Dockerfile".into(),
            path: None,
            text: text.into(),
        },
        context: context.to_path_buf(),
        target: None,
        build_args: BTreeMap::new(),
        platform: host(),
        host_platform: host(),
        platforms: Vec::new(),
        binfmt_dir: PathBuf::from(rbk_build::BINFMT_MISC),
        no_cache: false,
        no_cache_filter: Vec::new(),
        always_pull: false,
        strict: false,
        labels: Vec::new(),
        entitlements: Default::default(),
        secrets: BTreeMap::new(),
        ssh: BTreeMap::new(),
        source_date_epoch: Some(0),
        tags: vec!["app:1".parse().unwrap()],
        outputs: Vec::new(),
        compression: Compression::Gzip,
        cache_from: caches.0,
        cache_to: caches.1,
        jobs: 2,
        snapshotter: SnapshotterChoice::Copy,
        annotations: Vec::new(),
        attest: Default::default(),
        remote: Default::default(),
        build_contexts: BTreeMap::new(),
    }
}

/// `FROM base:1`, a RUN and a COPY from the context (chowned to the user
/// running the test, so that it needs no root).
fn dockerfile() -> String {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    format!("FROM base:1\nRUN make\nCOPY --chown={uid}:{gid} app.txt /app/\n")
}

fn diff_ids(result: &BuildResult) -> Vec<Digest> {
    result.image.config.rootfs.diff_ids.clone()
}

fn cached(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Cached { .. }))
        .count()
}

fn layers_of(store: &Store, result: &BuildResult) -> Vec<Layer> {
    let image = store.read_image(&result.image.descriptor).unwrap();
    image.layers()
}

#[test]
fn a_base_image_comes_from_the_provider_once_and_the_cache_travels_through_the_transport() {
    let text = dockerfile();
    let registry = FakeRegistry::default();
    let cache = Arc::new(FakeCache::default());
    let to = CacheTo {
        transport: cache.clone(),
        mode: CacheMode::Max,
        compression: Compression::Gzip,
        ignore_error: false,
        cache_mounts: false,
    };

    // The first build: the base is pulled, the step runs, the cache is
    // exported.
    let first = Site::new();
    let runtime = FakeRuntime::new();
    runtime.on("make", FakeRun::new().write("/out/app", "binary"));
    let (built, _) = first.build(&text, &registry, &runtime, (vec![], vec![to.clone()]));
    assert_eq!(
        registry.pulls(),
        [("docker.io/library/base:1".to_string(), host())]
    );
    assert_eq!(runtime.commands(), ["/bin/sh -c make"]);
    let layers = layers_of(&first.store, &built);
    assert_eq!(layers.len(), 3, "base, RUN and COPY");
    let exports = cache.exports.lock().unwrap().clone();
    assert_eq!(exports.len(), 1);
    let exported = cache.manifest(&exports[0]);
    assert_eq!(exported.config.media_type, CACHE_CONFIG);
    // The travelling layers are the build's own two and the base's.
    assert_eq!(exported.layers.len(), 3);
    assert!(first.store.resolve(&"app:1".parse().unwrap()).is_ok());

    // Again in the same store: nothing is pulled, nothing runs.
    let (again, events) = first.build(&text, &registry, &runtime, (vec![], vec![]));
    assert_eq!(registry.pulls().len(), 1);
    assert_eq!(runtime.commands().len(), 1);
    assert_eq!(diff_ids(&again), diff_ids(&built));
    assert!(cached(&events) >= 2, "RUN and COPY hit the store's cache");

    // Another store, reading the cache: the base is pulled there, the
    // steps hit the imported records, and their layers are fetched.
    let second = Site::new();
    let elsewhere = FakeRuntime::new();
    let from = CacheFrom {
        transport: cache.clone(),
    };
    let (imported, events) = second.build(&text, &registry, &elsewhere, (vec![from], vec![]));
    assert_eq!(registry.pulls().len(), 2);
    assert!(
        elsewhere.commands().is_empty(),
        "{:?}",
        elsewhere.commands()
    );
    assert_eq!(*cache.imports.lock().unwrap(), 1);
    assert!(cached(&events) >= 2, "RUN and COPY hit the imported cache");
    assert_eq!(diff_ids(&imported), diff_ids(&built));
    let fetched = cache.fetched.lock().unwrap().clone();
    assert!(!fetched.is_empty());
    assert!(fetched
        .iter()
        .all(|d| exported.layers.iter().any(|l| l.digest == *d)));
    let files = second
        .store
        .ensure_snapshot(&layers[1].blob, &layers[1].diff_id)
        .unwrap();
    assert_eq!(fs::read_to_string(files.join("out/app")).unwrap(), "binary");
}

#[test]
fn a_base_the_provider_cannot_serve_fails_the_plan_naming_it() {
    let site = Site::new();
    let registry = FakeRegistry::default();
    let runtime = FakeRuntime::new();
    let request = request(
        "FROM missing:2\nRUN make\n",
        &site.context,
        (vec![], vec![]),
    );
    let engine = Engine::new(&site.store, &registry, &runtime);
    let err = match engine.plan(request) {
        Ok(_) => panic!("planned a build over a missing base"),
        Err(e) => rbk_build::Error::to_string(&e),
    };
    assert!(err.contains("missing:2"), "{err}");
    assert_eq!(registry.pulls()[0].0, "docker.io/library/missing:2");
    assert!(runtime.commands().is_empty());
}
