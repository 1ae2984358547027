//! Shared build caches (`--cache-to` / `--cache-from`), and the transports
//! that carry them (format and trust: `rbk_exec::remote_cache`).
//!
//! Specs use buildx's CSV syntax: `type=local,dest=DIR[,mode=min|max]`,
//! `type=local,src=DIR`, `type=registry,ref=REF[,mode=…]` (a bare `REF` is
//! `type=registry,ref=REF`). Also accepted: `tag=` (local; the name of the
//! cache in the layout's `index.json`, default `latest`),
//! `compression=gzip|zstd` (export), `ignore-error=true` (export), and
//! `image-manifest=`/`oci-mediatypes=` (accepted: a registry cache is
//! always one OCI image manifest). `--cache-to type=inline` puts the cache
//! in the image (`inline_cache.rs`); a `--cache-from` reference that names
//! an image reads that image's inline cache.
//!
//! Failure policy, as buildx: a `--cache-from` that cannot be read (missing
//! directory, garbled index, manifest or config) is a warning naming it, and
//! the build goes on without it; a `--cache-to` that fails is an error
//! unless `ignore-error=true`. A blob that fails verification while a
//! cached step's layers are being fetched is an error (the step was already
//! reported CACHED), and the blob never lands in the store. A blob the
//! source fails to deliver (the registry errs or goes away halfway) is not:
//! the engine solves the build again without its cache sources, keeping
//! what was already fetched, with a warning (`Engine::run`).
//!
//! A transport is a [`CacheTransport`]: [`LocalLayout`] is an OCI image
//! layout (`oci-layout`, `index.json` naming the cache manifest, annotated
//! with its tag, `blobs/sha256/…`; blobs already there are not rewritten);
//! [`RegistryCache`] is a registry reference. Tests hand in their own.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbk_exec::{
    export_cache, BlobFetcher, CacheMode, CacheSource, Compression, ImportedCache, Solver,
    CACHE_CONFIG,
};
use rbk_graph::Dag;
use rbk_store::image::{
    parse_document, Document, Index, IndexEntry, Manifest, OCI_INDEX, OCI_MANIFEST,
};
use rbk_store::{
    layout_blob_path, read_to_end_bounded, write_atomic, BlobRead, BlobWrite, Descriptor, Digest,
    Reference, Store, MAX_DOCUMENT_SIZE, REF_NAME_ANNOTATION,
};

use crate::error::BoxError;
use crate::images::Registries;
use crate::{Error, Result};

/// The transports' own result: any cause, boxed; it leaves the crate as
/// the [`BoxError`] of a [`CacheTransport`] or inside an [`Error`].
type Res<T> = std::result::Result<T, BoxError>;

/// What a transport was doing, over its cause (shown `what: cause`).
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Doing {
    what: String,
    #[source]
    source: BoxError,
}

/// `.doing(|| what)`: wraps an error in [`Doing`].
trait DoingExt<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Res<T>;
}

impl<T, E: Into<BoxError>> DoingExt<T> for std::result::Result<T, E> {
    fn doing(self, what: impl FnOnce() -> String) -> Res<T> {
        self.map_err(|e| {
            Box::new(Doing {
                what: what(),
                source: e.into(),
            }) as BoxError
        })
    }
}

/// Carries a build cache to and from somewhere.
pub trait CacheTransport: Send + Sync {
    /// How messages name it: `type=local (DIR)`, `type=registry (REF)`.
    fn describe(&self) -> String;

    /// Reads the cache.
    fn import(&self, store: &Store) -> std::result::Result<ImportedCache, BoxError>;

    /// Writes the cache whose manifest (in `store`) is `manifest`.
    fn export(&self, store: &Store, manifest: &Descriptor) -> std::result::Result<(), BoxError>;

    /// Writes a companion artifact (cache-mount contents) under this
    /// cache's name plus `suffix`.
    fn export_companion(
        &self,
        _store: &Store,
        _suffix: &str,
        _manifest: &Descriptor,
    ) -> std::result::Result<(), BoxError> {
        Err(format!(
            "{} cannot carry cache mounts (cache-mounts=true needs type=registry)",
            self.describe()
        )
        .into())
    }

    /// Brings the companion artifact named with `suffix` (its manifest and
    /// blobs) into the store; `None` when there is none.
    fn import_companion(
        &self,
        _store: &Store,
        _suffix: &str,
    ) -> std::result::Result<Option<Descriptor>, BoxError> {
        Ok(None)
    }
}

/// One `--cache-to`.
#[derive(Clone)]
pub struct CacheTo {
    /// Where it goes.
    pub transport: Arc<dyn CacheTransport>,
    /// Which records: the final image's (`min`) or every step's (`max`).
    pub mode: CacheMode,
    /// Compression of the layers written.
    pub compression: Compression,
    /// A failure is a warning, not an error.
    pub ignore_error: bool,
    /// `cache-mounts=true`: also export the `RUN --mount=type=cache`
    /// directories (`cache_mounts.rs`).
    pub cache_mounts: bool,
}

/// One `--cache-from`.
#[derive(Clone)]
pub struct CacheFrom {
    /// Where it comes from.
    pub transport: Arc<dyn CacheTransport>,
}

impl CacheTo {
    /// `type=inline`: the cache goes into the image itself.
    pub fn is_inline(&self) -> bool {
        self.transport.describe() == crate::inline_cache::INLINE
    }
}

impl fmt::Debug for CacheTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheTo")
            .field("transport", &self.transport.describe())
            .field("mode", &self.mode)
            .field("compression", &self.compression)
            .field("ignore_error", &self.ignore_error)
            .finish()
    }
}

impl fmt::Debug for CacheFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheFrom")
            .field("transport", &self.transport.describe())
            .finish()
    }
}

/// An OCI image layout directory holding caches by tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalLayout {
    /// The layout's directory.
    pub dir: PathBuf,
    /// The cache's name in `index.json`.
    pub tag: String,
}

impl CacheTransport for LocalLayout {
    fn describe(&self) -> String {
        format!("type=local ({})", self.dir.display())
    }

    fn import(&self, _store: &Store) -> std::result::Result<ImportedCache, BoxError> {
        import_local(&self.dir, &self.tag)
    }

    fn export(&self, store: &Store, manifest: &Descriptor) -> std::result::Result<(), BoxError> {
        write_local(store, manifest, &self.dir, &self.tag)
    }
}

/// A cache at a registry reference.
///
/// Import fetches the manifest at the reference (hashed locally) and the
/// config it names (verified through the store's ingest; its media type
/// must be [`CACHE_CONFIG`]), and returns a cache whose fetcher downloads a
/// layer, verified, only when a cached step needs it. Export pushes every
/// blob the manifest names, skipping those the registry has, then the
/// manifest.
#[derive(Clone, Debug)]
pub struct RegistryCache {
    /// The reference, as given.
    pub reference: String,
    /// How registries are reached.
    pub registries: Registries,
}

impl RegistryCache {
    fn parsed(&self) -> Res<Reference> {
        self.reference
            .parse()
            .doing(|| format!("invalid cache reference {:?}", self.reference))
    }
}

impl CacheTransport for RegistryCache {
    fn describe(&self) -> String {
        format!("type=registry ({})", self.reference)
    }

    fn import(&self, store: &Store) -> std::result::Result<ImportedCache, BoxError> {
        let parsed = self.parsed()?;
        let client = self.registries.client(None)?;
        let (descriptor, bytes) = client.fetch_manifest(&parsed)?;
        let what = format!("cache manifest {}", descriptor.digest);
        let config = match parse_cache_manifest(&bytes, &what) {
            Ok(manifest) => {
                client.fetch_blob(store, &parsed, &manifest.config)?;
                store.read_bounded(&manifest.config.digest, MAX_DOCUMENT_SIZE)?
            }
            // An image: its inline cache (`--cache-to type=inline`).
            Err(e) => match inline_config(store, &client, &parsed, &bytes, &descriptor)? {
                Some(config) => config,
                None => return Err(e),
            },
        };
        let client = Arc::new(client);
        let fetch: BlobFetcher = Box::new(move |store: &dyn BlobWrite, d: &Descriptor| {
            client.fetch_blob(store, &parsed, d).map_err(|e| {
                // A blob that does not verify is an error; one the
                // registry cannot deliver only means building without it.
                if e.is_mismatch() {
                    rbk_exec::Error::Cache {
                        name: parsed.to_string(),
                        reason: format!("fetching {}: {e}", d.digest),
                    }
                } else {
                    rbk_exec::Error::CacheFetch {
                        name: parsed.to_string(),
                        digest: d.digest,
                        reason: crate::error::chain(&e),
                    }
                }
            })
        });
        Ok(ImportedCache::named(&self.reference, &config, fetch)?)
    }

    fn export(&self, store: &Store, manifest: &Descriptor) -> std::result::Result<(), BoxError> {
        let parsed = self.parsed()?;
        self.registries
            .client(None)?
            .push(store, manifest, &parsed)?;
        Ok(())
    }

    fn export_companion(
        &self,
        store: &Store,
        suffix: &str,
        manifest: &Descriptor,
    ) -> std::result::Result<(), BoxError> {
        let companion = self.companion(suffix)?;
        self.registries
            .client(None)?
            .push(store, manifest, &companion)?;
        Ok(())
    }

    fn import_companion(
        &self,
        store: &Store,
        suffix: &str,
    ) -> std::result::Result<Option<Descriptor>, BoxError> {
        let companion = self.companion(suffix)?;
        let client = self.registries.client(None)?;
        let (descriptor, bytes) = match client.fetch_manifest(&companion) {
            Ok(found) => found,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let info = store.put_bytes(&bytes)?;
        if info.digest != descriptor.digest {
            return Err(format!("{companion}: the manifest does not match its digest").into());
        }
        let manifest = parse_cache_manifest_any(&bytes, &companion.to_string())?;
        client.fetch_blob(store, &companion, &manifest.config)?;
        for layer in &manifest.layers {
            client.fetch_blob(store, &companion, layer)?;
        }
        Ok(Some(descriptor))
    }
}

impl RegistryCache {
    /// The reference of a companion artifact: the tag with `suffix`.
    fn companion(&self, suffix: &str) -> Res<Reference> {
        let parsed = self.parsed()?;
        let tag = format!("{}{suffix}", parsed.tag().unwrap_or("latest"));
        Ok(parsed.with_tag(&tag)?)
    }
}

/// A manifest of any config type (the store's parser takes images only).
fn parse_cache_manifest_any(bytes: &[u8], what: &str) -> Res<Manifest> {
    serde_json::from_slice(bytes).doing(|| format!("{what} is not a manifest"))
}

/// The inline cache config of the image `bytes` (a manifest, or an index
/// whose host-platform entry is fetched); `None` when it is no image.
fn inline_config(
    store: &Store,
    client: &rbk_registry::Client,
    reference: &Reference,
    bytes: &[u8],
    descriptor: &Descriptor,
) -> std::result::Result<Option<Vec<u8>>, BoxError> {
    let what = format!("{reference}");
    let manifest = match parse_document(bytes, Some(&descriptor.media_type), &what) {
        Ok(Document::Manifest(m)) => m,
        Ok(Document::Index(index)) => {
            let host = rbk_store::image::ImagePlatform::host();
            let Some(entry) = index.manifests.iter().find(|e| {
                !e.is_attestation()
                    && rbk_store::image::ImagePlatform::of_entry(e)
                        .is_some_and(|p| host.accepts(&p))
            }) else {
                return Err(format!("{reference} has no image for {host}").into());
            };
            let pinned: Reference =
                format!("{}@{}", reference.name(), entry.descriptor.digest).parse()?;
            let (d, b) = client.fetch_manifest(&pinned)?;
            match parse_document(&b, Some(&d.media_type), &what)? {
                Document::Manifest(m) => m,
                Document::Index(_) => {
                    return Err(format!("{reference}: an index inside an index").into())
                }
            }
        }
        Err(_) => return Ok(None),
    };
    client.fetch_blob(store, reference, &manifest.config)?;
    let config = store.read_bounded(&manifest.config.digest, MAX_DOCUMENT_SIZE)?;
    Ok(Some(crate::inline_cache::config_of_image(
        &config,
        &reference.to_string(),
    )?))
}

/// Parses a `--cache-from` value; registry caches are reached through
/// `registries`.
pub fn parse_cache_from(spec: &str, registries: &Registries) -> Result<CacheFrom> {
    parse_from(spec, registries).map_err(|e| Error::Invalid(crate::error::chain(e.as_ref())))
}

/// Parses a `--cache-to` value; registry caches are reached through
/// `registries`.
pub fn parse_cache_to(spec: &str, registries: &Registries) -> Result<CacheTo> {
    parse_to(spec, registries).map_err(|e| Error::Invalid(crate::error::chain(e.as_ref())))
}

/// The sources for `--cache-from`, and a warning for each one that could
/// not be read (it is left out).
pub(crate) fn sources(
    store: &Store,
    from: &[CacheFrom],
) -> (Vec<Arc<dyn CacheSource>>, Vec<String>) {
    let mut out: Vec<Arc<dyn CacheSource>> = Vec::new();
    let mut warnings = Vec::new();
    for spec in from {
        match spec.transport.import(store) {
            Ok(cache) => {
                out.push(Arc::new(cache));
                let seeded = spec
                    .transport
                    .import_companion(store, crate::cache_mounts::SUFFIX)
                    .and_then(|m| match m {
                        Some(m) => crate::cache_mounts::seed(store, &m).map(|_| ()),
                        None => Ok(()),
                    });
                if let Err(e) = seeded {
                    warnings.push(format!(
                        "--cache-from {}: cache mounts: {} (building without them)",
                        spec.transport.describe(),
                        crate::error::chain(e.as_ref())
                    ));
                }
            }
            Err(e) => warnings.push(format!(
                "--cache-from {}: {} (building without it)",
                spec.transport.describe(),
                crate::error::chain(e.as_ref())
            )),
        }
    }
    (out, warnings)
}

/// Writes every `--cache-to` after a successful build; returns warnings
/// for failures marked `ignore-error`.
pub(crate) fn export(
    store: &Store,
    solver: &Solver<'_>,
    dag: &Dag,
    to: &[CacheTo],
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for spec in to.iter().filter(|s| !s.is_inline()) {
        let done = export_one(store, solver, dag, spec);
        match done {
            Ok(()) => {}
            Err(source) if spec.ignore_error => warnings.push(format!(
                "--cache-to {}: {} (ignored: ignore-error=true)",
                spec.transport.describe(),
                crate::error::chain(source.as_ref())
            )),
            Err(source) => {
                return Err(Error::CacheExport {
                    what: spec.transport.describe(),
                    source,
                })
            }
        }
    }
    Ok(warnings)
}

fn export_one(
    store: &Store,
    solver: &Solver<'_>,
    dag: &Dag,
    spec: &CacheTo,
) -> std::result::Result<(), BoxError> {
    let records = solver.cache_records(dag, spec.mode)?;
    let manifest = export_cache(store, &records, spec.compression)?;
    spec.transport.export(store, &manifest)?;
    if spec.cache_mounts {
        if let Some(m) = crate::cache_mounts::pack(store, dag, spec.compression)? {
            spec.transport
                .export_companion(store, crate::cache_mounts::SUFFIX, &m)
                .map_err(|e| crate::cache_mounts::export_error(store, &m, e.as_ref()))?;
        }
    }
    Ok(())
}

/// What a parsed spec names, before it becomes a transport.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Transport {
    Local { dir: PathBuf, tag: String },
    Registry { reference: String },
    Inline,
}

impl Transport {
    fn into_arc(self, registries: &Registries) -> Arc<dyn CacheTransport> {
        match self {
            Transport::Local { dir, tag } => Arc::new(LocalLayout { dir, tag }),
            Transport::Registry { reference } => Arc::new(RegistryCache {
                reference,
                registries: registries.clone(),
            }),
            Transport::Inline => Arc::new(crate::inline_cache::InlineCache),
        }
    }
}

// ---- parsing ----

/// Splits a buildx CSV spec into key/value fields (a field may be quoted
/// with `"`, as in a CSV record; `""` inside quotes is one quote).
fn fields(spec: &str) -> Res<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = spec.chars().peekable();
    let mut quoted = false;
    loop {
        match chars.next() {
            Some('"') if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            Some('"') => quoted = !quoted,
            Some(',') if !quoted => out.push(std::mem::take(&mut field)),
            Some(c) => field.push(c),
            None if quoted => {
                return Err(format!("invalid cache spec {spec:?}: unterminated quote").into())
            }
            None => {
                out.push(field);
                break;
            }
        }
    }
    out.into_iter()
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_ascii_lowercase(), v.to_string())),
            None => {
                Err(format!("invalid cache spec {spec:?}: field {f:?} is not KEY=VALUE").into())
            }
        })
        .collect()
}

fn parse_common(spec: &str, flag: &str, dir_key: &str) -> Res<(Transport, Vec<(String, String)>)> {
    if !spec.contains('=') {
        // buildx: a bare value is a registry reference.
        if spec.is_empty() {
            return Err(format!("invalid {flag} \"\": expected type=…").into());
        }
        return Ok((
            Transport::Registry {
                reference: spec.to_string(),
            },
            Vec::new(),
        ));
    }
    let mut kind = None;
    let (mut dir, mut reference, mut tag) = (None, None, None);
    let mut rest = Vec::new();
    for (k, v) in fields(spec)? {
        match k.as_str() {
            "type" => kind = Some(v),
            "ref" => reference = Some(v),
            "tag" => tag = Some(v),
            k if k == dir_key => dir = Some(PathBuf::from(v)),
            _ => rest.push((k, v)),
        }
    }
    let transport = match kind.as_deref() {
        Some("local") => {
            let dir = dir.ok_or_else(|| {
                format!("invalid {flag} {spec:?}: type=local needs {dir_key}=DIR")
            })?;
            Transport::Local {
                dir,
                tag: tag.unwrap_or_else(|| "latest".into()),
            }
        }
        Some("registry") => Transport::Registry {
            reference: reference.ok_or_else(|| {
                format!("invalid {flag} {spec:?}: type=registry needs ref=REFERENCE")
            })?,
        },
        Some("inline") if flag == "--cache-to" => Transport::Inline,
        Some("inline") => return Err(format!(
            "invalid {flag} {spec:?}: type=inline is only for --cache-to; give the image instead (IMAGE or type=registry,ref=IMAGE)"
        ).into()),
        Some(other) => {
            return Err(format!("invalid {flag} {spec:?}: unsupported cache type {other:?} (local, registry or inline)").into())
        }
        None => return Err(format!("invalid {flag} {spec:?}: type=local or type=registry is required").into()),
    };
    Ok((transport, rest))
}

fn parse_to(spec: &str, registries: &Registries) -> Res<CacheTo> {
    let (transport, rest) = parse_common(spec, "--cache-to", "dest")?;
    let mut out = CacheTo {
        transport: transport.into_arc(registries),
        mode: CacheMode::Min,
        compression: Compression::Gzip,
        ignore_error: false,
        cache_mounts: false,
    };
    for (k, v) in rest {
        match (k.as_str(), v.as_str()) {
            ("mode", "min") => out.mode = CacheMode::Min,
            ("mode", "max") => out.mode = CacheMode::Max,
            ("mode", other) => {
                return Err(format!(
                    "invalid --cache-to {spec:?}: mode={other:?} (expected min or max)"
                )
                .into())
            }
            ("compression", "gzip") => out.compression = Compression::Gzip,
            ("compression", "zstd") => out.compression = Compression::Zstd,
            ("compression", other) => {
                return Err(format!(
                    "invalid --cache-to {spec:?}: compression={other:?} (gzip or zstd)"
                )
                .into())
            }
            // rbk's registry caches are always one OCI image manifest (what
            // BuildKit writes with image-manifest=true), with OCI media types.
            ("image-manifest" | "oci-mediatypes", "true" | "false") => {}
            ("cache-mounts", v) => {
                out.cache_mounts = v
                    .parse()
                    .doing(|| format!("invalid --cache-to {spec:?}: cache-mounts={v:?}"))?
            }
            ("ignore-error", v) => {
                out.ignore_error = v
                    .parse()
                    .doing(|| format!("invalid --cache-to {spec:?}: ignore-error={v:?}"))?
            }
            _ => return Err(format!("invalid --cache-to {spec:?}: unknown field {k:?}").into()),
        }
    }
    Ok(out)
}

fn parse_from(spec: &str, registries: &Registries) -> Res<CacheFrom> {
    let (transport, rest) = parse_common(spec, "--cache-from", "src")?;
    if let Some((k, _)) = rest.first() {
        return Err(format!("invalid --cache-from {spec:?}: unknown field {k:?}").into());
    }
    Ok(CacheFrom {
        transport: transport.into_arc(registries),
    })
}

// ---- the local transport ----

/// Reads a document blob of the layout, verified against its digest.
fn read_layout_blob(dir: &Path, d: &Descriptor) -> Res<Vec<u8>> {
    let path = layout_blob_path(dir, &d.digest);
    let file = fs::File::open(&path).doing(|| format!("opening {}", path.display()))?;
    let bytes = read_to_end_bounded(file, MAX_DOCUMENT_SIZE, &path.display().to_string())?;
    if Digest::sha256_of(&bytes) != d.digest || bytes.len() as u64 != d.size {
        return Err(format!("{} does not match its digest {}", path.display(), d.digest).into());
    }
    Ok(bytes)
}

/// Parses a cache manifest: an OCI image manifest whose config is a cache
/// config (which the store's image parser, made for images, refuses).
fn parse_cache_manifest(bytes: &[u8], what: &str) -> Res<Manifest> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).doing(|| format!("{what} is not a manifest"))?;
    if manifest
        .media_type
        .as_deref()
        .is_some_and(|t| t != OCI_MANIFEST)
    {
        return Err(format!(
            "{what} has media type {:?}, not {OCI_MANIFEST:?}",
            manifest.media_type
        )
        .into());
    }
    if manifest.config.media_type != CACHE_CONFIG {
        return Err(format!(
            "{what} is not an rbk build cache (config media type {:?}, expected {CACHE_CONFIG:?})",
            manifest.config.media_type
        )
        .into());
    }
    Ok(manifest)
}

fn read_index(dir: &Path) -> Res<Index> {
    let path = dir.join("index.json");
    let file = fs::File::open(&path).doing(|| format!("opening {}", path.display()))?;
    let bytes = read_to_end_bounded(file, MAX_DOCUMENT_SIZE, &path.display().to_string())?;
    match parse_document(&bytes, None, &path.display().to_string())? {
        Document::Index(index) => Ok(index),
        Document::Manifest(_) => {
            Err(format!("{} is a manifest, not an index", path.display()).into())
        }
    }
}

fn import_local(dir: &Path, tag: &str) -> Res<ImportedCache> {
    let index = read_index(dir)?;
    let tagged = |e: &&IndexEntry| {
        e.descriptor
            .annotations
            .get(REF_NAME_ANNOTATION)
            .map(String::as_str)
            == Some(tag)
    };
    let entry = match index.manifests.iter().find(tagged) {
        Some(e) => e,
        None if index.manifests.len() == 1 => &index.manifests[0],
        None => return Err(format!("{} names no cache tagged {tag:?}", dir.display()).into()),
    };
    let what = format!("cache manifest {}", entry.descriptor.digest);
    let bytes = read_layout_blob(dir, &entry.descriptor)?;
    let manifest = parse_cache_manifest(&bytes, &what)?;
    let config = read_layout_blob(dir, &manifest.config)?;
    let root = dir.to_path_buf();
    let fetch: BlobFetcher = Box::new(move |store: &dyn BlobWrite, d: &Descriptor| {
        let path = layout_blob_path(&root, &d.digest);
        let mut file = fs::File::open(&path)
            .map_err(|e| rbk_exec::Error::io("opening cache blob", &path, e))?;
        store.put(&mut file, Some((d.digest, Some(d.size))))?;
        Ok(())
    });
    Ok(ImportedCache::named(
        &dir.display().to_string(),
        &config,
        fetch,
    )?)
}

/// Copies the manifest `manifest` and every blob it names from the store
/// into the layout `dir`, and names it `tag` in `index.json`.
fn write_local(store: &Store, manifest: &Descriptor, dir: &Path, tag: &str) -> Res<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).doing(|| format!("creating {}", blobs.display()))?;
    let bytes = store.read_bounded(&manifest.digest, MAX_DOCUMENT_SIZE)?;
    let doc = parse_cache_manifest(&bytes, "the exported cache manifest")?;
    for d in doc.layers.iter().chain([&doc.config, manifest]) {
        copy_blob(store, d, dir)?;
    }
    write_atomic(dir, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    // Keep other tags' entries of an existing, readable index.
    let mut entries: Vec<IndexEntry> = read_index(dir)
        .map(|i| i.manifests)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.descriptor
                .annotations
                .get(REF_NAME_ANNOTATION)
                .map(String::as_str)
                != Some(tag)
        })
        .collect();
    let mut named = manifest.clone();
    named
        .annotations
        .insert(REF_NAME_ANNOTATION.into(), tag.to_string());
    entries.push(IndexEntry {
        descriptor: named,
        platform: None,
    });
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: entries,
        annotations: Default::default(),
    };
    write_atomic(dir, "index.json", &serde_json::to_vec(&index)?)?;
    Ok(())
}

/// Copies one blob unless the layout has it already (same name and size:
/// names are digests, so the content is the same or the layout is corrupt,
/// which an import detects).
fn copy_blob(store: &Store, d: &Descriptor, dir: &Path) -> Res<()> {
    let path = layout_blob_path(dir, &d.digest);
    if fs::metadata(&path).is_ok_and(|m| m.len() == d.size) {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(dir);
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .doing(|| format!("creating a file in {}", parent.display()))?;
    let mut reader = store.open_verified(&d.digest)?;
    std::io::copy(&mut reader, &mut tmp)
        .doing(|| format!("copying blob {} to {}", d.digest, path.display()))?;
    tmp.as_file()
        .sync_all()
        .doing(|| format!("writing {}", path.display()))?;
    tmp.persist(&path)
        .doing(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_to(spec: &str) -> Res<CacheTo> {
        super::parse_to(spec, &Registries::default())
    }

    fn parse_from(spec: &str) -> Res<CacheFrom> {
        super::parse_from(spec, &Registries::default())
    }

    #[test]
    fn specs_parse_like_buildx() {
        let to = parse_to("type=local,dest=/tmp/c,mode=max").unwrap();
        assert_eq!(to.transport.describe(), "type=local (/tmp/c)");
        assert_eq!(to.mode, CacheMode::Max);
        assert_eq!(parse_to("type=local,dest=d").unwrap().mode, CacheMode::Min);
        let to = parse_to("type=registry,ref=localhost:5000/app:cache,mode=max,compression=zstd")
            .unwrap();
        assert_eq!(
            to.transport.describe(),
            "type=registry (localhost:5000/app:cache)"
        );
        assert_eq!(to.compression, Compression::Zstd);
        let from = parse_from("localhost:5000/app:cache").unwrap();
        assert!(from.transport.describe().starts_with("type=registry"));
        let from = parse_from("\"type=local,src=a,b\"").unwrap_err();
        assert!(
            format!("{from:#}").contains("unsupported cache type"),
            "{from:#}"
        );
        let from = parse_from("type=local,\"src=a,b\"").unwrap();
        assert_eq!(from.transport.describe(), "type=local (a,b)");
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        for (spec, want) in [
            ("type=local", "needs dest=DIR"),
            ("type=s3,dest=x", "unsupported cache type \"s3\""),
            ("type=local,dest=x,mode=all", "mode=\"all\""),
            ("type=local,dest=x,colour=red", "unknown field \"colour\""),
            ("type=registry", "needs ref=REFERENCE"),
            ("dest=x", "type=local or type=registry is required"),
        ] {
            let e = format!("{:#}", parse_to(spec).unwrap_err());
            assert!(e.contains(want), "{spec}: {e}");
        }
        let e = format!("{:#}", parse_from("type=local,src=x,mode=max").unwrap_err());
        assert!(e.contains("unknown field \"mode\""), "{e}");
    }
}
