//! Images a build reads: base images for `FROM`, and the images of
//! `COPY --from` and `RUN --mount=from`. They come from the store, or from
//! an [`ImageProvider`] (a registry) on a miss or with `--pull`.

use rbk_graph::image::ContainerConfig;
use rbk_graph::{Dag, Op, Platform, SourceOp};
use rbk_parser::{ImageResolver, Location};
use rbk_registry::{Client, ClientOptions};
use rbk_store::image::{Image, ImagePlatform};
use rbk_store::{looks_like_image_id, Descriptor, Reference, Store};

use crate::error::BoxError;
use crate::platform::check_image_platform;
use crate::{Error, Result};

/// Where images the store lacks come from, and where pushed images go. The
/// engine asks it nothing else, so tests can hand in a fake.
pub trait ImageProvider: Sync {
    /// Pulls `reference` for `platform` into `store` (blobs and manifest,
    /// not tagged) and returns the manifest's descriptor.
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
    ) -> std::result::Result<Descriptor, BoxError>;

    /// Pushes the image whose manifest (in `store`) is `manifest` to
    /// `reference`.
    fn push(
        &self,
        store: &Store,
        manifest: &Descriptor,
        reference: &Reference,
    ) -> std::result::Result<(), BoxError>;
}

/// The real [`ImageProvider`]: OCI registries through `rbk-registry`.
#[derive(Clone, Debug, Default)]
pub struct Registries {
    options: ClientOptions,
}

impl Registries {
    /// Registries reached with `options` (the platform field is set per
    /// pull).
    pub fn new(options: ClientOptions) -> Registries {
        Registries { options }
    }

    /// A client for `platform` (`None`: the options' own).
    pub fn client(&self, platform: Option<&Platform>) -> rbk_registry::Result<Client> {
        let mut options = self.options.clone();
        if let Some(p) = platform.filter(|p| !p.os.is_empty()) {
            options.platform = Some(p.to_string());
        }
        Client::new(options)
    }
}

impl ImageProvider for Registries {
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
    ) -> std::result::Result<Descriptor, BoxError> {
        Ok(self.client(Some(platform))?.pull(store, reference)?)
    }

    fn push(
        &self,
        store: &Store,
        manifest: &Descriptor,
        reference: &Reference,
    ) -> std::result::Result<(), BoxError> {
        self.client(None)?.push(store, manifest, reference)?;
        Ok(())
    }
}

/// The image `reference` names for a build, from the store, else (or
/// always, with `always_pull`) from `provider`: pulled, tagged, and its
/// registry digest recorded.
pub fn image_for_build(
    store: &Store,
    provider: &dyn ImageProvider,
    reference: &Reference,
    platform: &Platform,
    always_pull: bool,
) -> Result<Image> {
    let wanted = crate::multi::image_platform(platform);
    // Set when the store has the name, but not for this platform.
    let mut other_platform: Option<String> = None;
    if !always_pull {
        // A name tagged to an index gives its entry for `platform`.
        match store.tagged_image_for_platform(reference, &wanted) {
            Ok(image) => match check_image_platform(&image.config, platform) {
                Ok(()) => return Ok(image),
                Err(why) => other_platform = Some(why),
            },
            Err(e) if e.is_not_found() => {}
            Err(e @ rbk_store::Error::PlatformNotFound { .. }) => {
                other_platform = Some(e.to_string())
            }
            Err(e) => return Err(e.into()),
        }
    }
    let name = reference.familiar();
    let what = match always_pull {
        true => format!("pulling image {name} (--pull)"),
        false => format!("image {name} is not in the store, and pulling it failed"),
    };
    let manifest = match provider.pull(store, reference, platform) {
        Ok(manifest) => manifest,
        Err(source) => {
            return Err(match other_platform {
                // What the store has says more than the registry's error.
                Some(why) => Error::Invalid(format!(
                    "{why} (pulling {name} for {platform} failed too: {})",
                    crate::error::chain(source.as_ref())
                )),
                None => Error::Registry { what, source },
            });
        }
    };
    // The platforms the name has already stay: it becomes an index.
    let tagged = with_platform(store, reference, &manifest, &wanted)?;
    store.tag(reference, tagged)?;
    let image = store.read_image(&manifest)?;
    store.add_repo_digest(image.id(), reference, manifest.digest)?;
    Ok(image)
}

/// What `reference` should point at once `manifest` (for `platform`) is
/// pulled: `manifest` alone, or an index of the platforms the name had
/// (its old entry for `platform` replaced) plus this one.
fn with_platform(
    store: &Store,
    reference: &Reference,
    manifest: &Descriptor,
    platform: &ImagePlatform,
) -> Result<Descriptor> {
    let Ok(existing) = store.resolve(reference) else {
        return Ok(manifest.clone());
    };
    let mut entries = match store.read_index(&existing) {
        Ok(Some(index)) => store.index_platforms(&index),
        Ok(None) => match store.read_image(&existing) {
            Ok(image) => vec![(existing.clone(), config_platform(&image))],
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(), // a damaged entry is replaced
    };
    entries.retain(|(d, p)| !platform.accepts(p) && d.digest != manifest.digest);
    if entries.is_empty() {
        return Ok(manifest.clone());
    }
    entries.push((manifest.clone(), platform.clone()));
    Ok(store.put_index(&entries)?)
}

/// The platform an image's config names.
pub(crate) fn config_platform(image: &Image) -> ImagePlatform {
    let config = &image.config;
    ImagePlatform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config
            .extra
            .get("variant")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
    }
}

/// Base image configs for the frontend: the store, then the provider.
pub(crate) struct Resolver<'a> {
    pub(crate) store: &'a Store,
    pub(crate) provider: &'a dyn ImageProvider,
    pub(crate) always_pull: bool,
}

impl ImageResolver for Resolver<'_> {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ContainerConfig, rbk_parser::ResolveError> {
        // An image id (full, short or `sha256:`) names a local image; only
        // then is every image read to match it.
        if looks_like_image_id(reference) {
            if let Some(found) = self
                .store
                .find_image(reference)
                .ok()
                .filter(|f| f.named.is_none())
            {
                return Ok(runtime_config(&found.image));
            }
        }
        let parsed: Reference = reference.parse()?;
        let image = image_for_build(
            self.store,
            self.provider,
            &parsed,
            platform,
            self.always_pull,
        )?;
        check_image_platform(&image.config, platform).map_err(Error::Invalid)?;
        Ok(runtime_config(&image))
    }
}

/// The image's `config` object as a build inherits it: without the fields
/// rbk does not model (Docker's `Hostname`, `Tty`, …), as BuildKit.
fn runtime_config(image: &Image) -> ContainerConfig {
    let mut config = image.config.config.clone().unwrap_or_default();
    config.extra.clear();
    config
}

/// Makes sure every image the graph reads is in the store before anything
/// runs. `FROM` images were resolved (and pulled on a miss) by the frontend;
/// this covers `COPY --from=IMAGE` and `RUN --mount=from=IMAGE`, which are
/// pulled on a store miss too. A failure names the instruction that wanted
/// the image (the image vertex itself has no Dockerfile lines).
pub(crate) fn fetch_images(
    store: &Store,
    provider: &dyn ImageProvider,
    dag: &Dag,
    default_platform: &Platform,
    text: &str,
) -> Result<()> {
    for vertex in dag.vertices() {
        let Op::Source(SourceOp::Image {
            reference,
            platform,
        }) = vertex.op()
        else {
            continue;
        };
        let parsed: Reference = match reference.parse() {
            Ok(r) => r,
            Err(_) => continue, // the solver reports it
        };
        let stored = store.resolve(&parsed).is_ok()
            || (looks_like_image_id(reference) && store.find_image(reference).is_ok());
        if stored {
            continue; // a name or an image id in the store
        }
        let platform = platform.clone().unwrap_or_else(|| default_platform.clone());
        let Err(err) = image_for_build(store, provider, &parsed, &platform, false) else {
            continue;
        };
        let span = vertex
            .dependents()
            .iter()
            .find_map(|&d| dag.vertex(d).meta().span.clone());
        return Err(Error::Step {
            text: text.to_string(),
            location: span.map(|s| Location::lines(&s.file, s.start_line, s.end_line)),
            context: Some(format!("failed to resolve source metadata for {reference}")),
            source: Box::new(err),
            failed_run: None,
        });
    }
    Ok(())
}
