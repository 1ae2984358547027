//! Where a build's result goes besides the store (`--output`, `--push`),
//! and the form an image takes when it leaves the store.

use std::io::Write;
use std::path::Path;

use rbk_exec::{compress_layer, Compression};
use rbk_store::archive::{save_archive, save_archive_file, ArchiveFormat, SavedImage};
use rbk_store::image::{
    Image, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, OCI_CONFIG,
    OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
};
use rbk_store::output::OutputFile;
use rbk_store::{
    BlobRead, BlobWrite, Descriptor, DevicePolicy, Reference, Store, UnpackOptions, Whiteouts,
};

use crate::error::BoxError;
use crate::images::ImageProvider;
use crate::request::{Output, STDOUT};
use crate::{Error, Result};

/// Writes `image` to `out`; `tags` are the build's `-t` names, `epoch` the
/// build's `SOURCE_DATE_EPOCH` (the time of every file a local or tar
/// output writes, see [`date_tree`]).
pub(crate) fn write(
    store: &Store,
    provider: &dyn ImageProvider,
    image: &Image,
    tags: &[Reference],
    out: &Output,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<()> {
    let what = |path: &Path| format!("--output {}", path.display());
    match out {
        Output::Docker(path) | Output::Oci(path) => {
            let format = match out {
                Output::Docker(_) => ArchiveFormat::Docker,
                _ => ArchiveFormat::Oci,
            };
            let saved = [SavedImage {
                image: compressed_image(store, image, compression)?,
                references: tags.to_vec(),
            }];
            let written = if path.as_os_str() == STDOUT {
                stdout_writer().and_then(|mut w| {
                    save_archive(store, &saved, format, &mut w)?;
                    Ok(w.flush()?)
                })
            } else {
                save_archive_file(store, &saved, format, path).map_err(BoxError::from)
            };
            written.map_err(|source| Error::Output {
                what: what(path),
                source,
            })
        }
        Output::Local(dir) => flatten_local(store, image, dir, epoch),
        Output::Registry(name) => {
            let targets = match name {
                Some(n) => vec![n.clone()],
                None => tags.to_vec(),
            };
            if targets.is_empty() {
                return Err(Error::Invalid(
                    "--output type=registry needs a name: give name=REF or -t NAME".into(),
                ));
            }
            for target in &targets {
                push_image(store, provider, image, target, compression)?;
            }
            Ok(())
        }
        Output::Tar(path) => {
            let work = store.work_dir()?;
            let root = work.upper();
            flatten(store, image, &root, epoch)?;
            write_tree_tar(&root, path)
        }
    }
}

/// Runs `write` on the archive at `path` (`-`: standard output), written
/// beside the destination and renamed into place when whole.
pub(crate) fn write_archive_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> rbk_store::Result<()>,
) -> Result<()> {
    let written = (|| -> std::result::Result<(), BoxError> {
        if path.as_os_str() == STDOUT {
            let mut w = stdout_writer()?;
            write(&mut w)?;
            return Ok(w.flush()?);
        }
        let mut w = std::io::BufWriter::new(OutputFile::create(path)?);
        write(&mut w)?;
        Ok(w.into_inner().map_err(|e| e.into_error())?.commit()?)
    })();
    written.map_err(|source| Error::Output {
        what: format!("--output {}", path.display()),
        source,
    })
}

/// The tree at `root` as one tarball at `path` (`-`: standard output).
pub(crate) fn write_tree_tar(root: &Path, path: &Path) -> Result<()> {
    let written = (|| -> std::result::Result<(), BoxError> {
        if path.as_os_str() == STDOUT {
            let mut w = stdout_writer()?;
            rbk_exec::write_layer_tar(root, &mut w, &Default::default())?;
            return Ok(w.flush()?);
        }
        // Written beside the destination and renamed into place.
        let mut w = std::io::BufWriter::new(OutputFile::create(path)?);
        rbk_exec::write_layer_tar(root, &mut w, &Default::default())?;
        Ok(w.into_inner().map_err(|e| e.into_error())?.commit()?)
    })();
    written.map_err(|source| Error::Output {
        what: format!("--output {}", path.display()),
        source,
    })
}

/// Standard output for an archive, refused when it is a terminal (as
/// buildx refuses to write to the console).
pub(crate) fn stdout_writer() -> std::result::Result<std::io::BufWriter<std::io::Stdout>, BoxError>
{
    let stdout = std::io::stdout();
    if std::io::IsTerminal::is_terminal(&stdout) {
        return Err(
            "refusing to write an archive to a terminal: redirect standard output \
                    or give dest=FILE"
                .into(),
        );
    }
    Ok(std::io::BufWriter::new(stdout))
}

/// The same image with its layers compressed (layers leaving the store are
/// compressed; inside it they need not be).
pub fn compressed_image(store: &Store, image: &Image, compression: Compression) -> Result<Image> {
    compressed_image_with(store, image, compression, &mut |_| {})
}

/// [`compressed_image`], handing each compressed layer to `ready` as soon
/// as it is in the store.
fn compressed_image_with(
    store: &Store,
    image: &Image,
    compression: Compression,
    ready: &mut dyn FnMut(&Descriptor),
) -> Result<Image> {
    let mut layers = Vec::new();
    for (blob, diff_id) in image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
    {
        let layer = rbk_store::Layer {
            diff_id: *diff_id,
            blob: blob.clone(),
        };
        let compressed = compress_layer(store, &layer, compression)?;
        ready(&compressed);
        layers.push(compressed);
    }
    put_manifest_like(store, image, image.manifest.config.clone(), layers)
}

/// A manifest of `config` and `layers` that keeps `image`'s manifest and
/// descriptor annotations (`--annotation manifest:…`/`manifest-descriptor:…`
/// travel with the image wherever it goes).
fn put_manifest_like(
    store: &Store,
    image: &Image,
    config: Descriptor,
    layers: Vec<Descriptor>,
) -> Result<Image> {
    let mut descriptor = store.put_manifest(config.clone(), layers.clone())?;
    if !image.manifest.annotations.is_empty() {
        let mut manifest = image.manifest.clone();
        manifest.media_type = Some(rbk_store::image::OCI_MANIFEST.to_string());
        manifest.config = config;
        manifest.layers = layers;
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Invalid(format!("encoding the manifest: {e}")))?;
        let info = store.put_bytes(&bytes)?;
        descriptor.digest = info.digest;
        descriptor.size = info.size;
    }
    descriptor.annotations = image.descriptor.annotations.clone();
    Ok(store.read_image(&descriptor)?)
}

/// [`flatten`] for `--output type=local`: the files land on the host, in a
/// directory other users may enter, so device nodes are never created and
/// setuid/setgid bits are cleared (docs/security.md, the 2026-12 probe).
/// BuildKit's exporter, running as the client user, has the same effect.
pub(crate) fn flatten_local(
    store: &Store,
    image: &Image,
    dir: &Path,
    epoch: Option<i64>,
) -> Result<()> {
    let options = UnpackOptions::default()
        .whiteouts(Whiteouts::Apply)
        .devices(DevicePolicy::Skip)
        .strip_setid(true);
    flatten_with(store, image, dir, &options)?;
    epoch.map_or(Ok(()), |e| date_tree(dir, e))
}

/// Writes the image's filesystem into `dir` (created if missing), applying
/// each layer's whiteouts in turn; under `epoch`, dated by [`date_tree`].
pub(crate) fn flatten(store: &Store, image: &Image, dir: &Path, epoch: Option<i64>) -> Result<()> {
    let options = UnpackOptions::default().whiteouts(Whiteouts::Apply);
    flatten_with(store, image, dir, &options)?;
    epoch.map_or(Ok(()), |e| date_tree(dir, e))
}

/// Gives every entry under `dir` (and `dir`) the access and modification
/// time `epoch`, symlinks themselves rather than their targets: BuildKit's
/// local and tar exporters write every file with the `SOURCE_DATE_EPOCH`
/// time (docs/build-repro.md, `exporter/local/fs.go`), base image files
/// included.
pub(crate) fn date_tree(dir: &Path, epoch: i64) -> Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let failed = |path: &Path, e: std::io::Error| Error::Output {
        what: format!("dating {} to SOURCE_DATE_EPOCH", path.display()),
        source: e.into(),
    };
    let time = Timespec {
        tv_sec: epoch,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| failed(&path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| failed(&path, e))? {
                pending.push(entry.map_err(|e| failed(&path, e))?.path());
            }
        }
        utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| failed(&path, e.into()))?;
    }
    Ok(())
}

fn flatten_with(store: &Store, image: &Image, dir: &Path, options: &UnpackOptions) -> Result<()> {
    let failed = |source: BoxError| Error::Output {
        what: format!("writing the image's files into {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(e.into()))?;
    for layer in &image.manifest.layers {
        let reader = store.open(&layer.digest)?;
        rbk_store::unpack_layer_onto(reader, dir, options).map_err(|e| failed(e.into()))?;
    }
    Ok(())
}

/// Pushes `image` to `reference` through `provider` (see
/// [`distribution_image`] for what is sent) and records the repository
/// digest; returns the pushed image.
pub fn push_image(
    store: &Store,
    provider: &dyn ImageProvider,
    image: &Image,
    reference: &Reference,
    compression: Compression,
) -> Result<Image> {
    // The distribution manifest is untagged: keep GC off it until it is sent.
    let _lease = store.lease()?;
    let sent = distribution_image(store, image, compression)?;
    provider
        .push(store, &sent.descriptor, reference)
        .map_err(|source| Error::Registry {
            what: format!("pushing {}", reference.familiar()),
            source,
        })?;
    store.add_repo_digest(image.id(), reference, sent.descriptor.digest)?;
    Ok(sent)
}

/// What goes to the registry for `image`. An image whose layers are all
/// compressed already (one that was pulled, or loaded with compressed
/// layers) goes as it is stored: its manifest keeps its bytes and digest,
/// as `docker push` of a pulled image does. Otherwise its uncompressed
/// layers leave the store compressed (as with `rbk save`) in a new OCI
/// manifest, in which every descriptor gets its OCI media type: layers of
/// a base pulled with Docker's media types keep their bytes but are not
/// named as Docker's inside an OCI manifest (BuildKit's exporter converts
/// them the same way).
pub fn distribution_image(store: &Store, image: &Image, compression: Compression) -> Result<Image> {
    distribution_image_staged(store, image, compression, &mut |_| {})
}

/// [`distribution_image`], handing each layer that had to be compressed to
/// `ready` as soon as its compressed form is in the store, so that a push
/// can send it while the next one is compressed
/// (`rbk_registry::Client::push_staged`).
pub fn distribution_image_staged(
    store: &Store,
    image: &Image,
    compression: Compression,
    ready: &mut dyn FnMut(&Descriptor),
) -> Result<Image> {
    // The rule `compress_layer` uses: anything not ending in `.tar` is
    // compressed already and would be sent unchanged.
    if image
        .manifest
        .layers
        .iter()
        .all(|l| !l.media_type.ends_with(".tar"))
    {
        return Ok(image.clone());
    }
    let compressed = compressed_image_with(store, image, compression, ready)?;
    let config = with_oci_type(&compressed.manifest.config);
    let layers: Vec<Descriptor> = compressed
        .manifest
        .layers
        .iter()
        .map(with_oci_type)
        .collect();
    if config == compressed.manifest.config && layers == compressed.manifest.layers {
        return Ok(compressed);
    }
    put_manifest_like(store, image, config, layers)
}

/// `desc` named with the OCI media type for what Docker's type says.
fn with_oci_type(desc: &Descriptor) -> Descriptor {
    let media_type = match desc.media_type.as_str() {
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER => OCI_LAYER,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_ZSTD => OCI_LAYER_ZSTD,
        other => other,
    };
    Descriptor {
        media_type: media_type.to_string(),
        ..desc.clone()
    }
}
