//! `rbk build --output`: where a build's result goes besides the store.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rbk_exec::{compress_layer, Compression};
use rbk_store::archive::{ArchiveFormat, SavedImage};
use rbk_store::image::Image;
use rbk_store::{BlobRead, Reference, Store, UnpackOptions, Whiteouts};

use crate::args::CompressionArg;

/// `dest=-`: standard output, as in buildx.
const STDOUT: &str = "-";

/// One `--output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// `type=docker,dest=FILE`: a docker-archive.
    Docker(PathBuf),
    /// `type=oci,dest=FILE`: an OCI archive.
    Oci(PathBuf),
    /// `type=local,dest=DIR`: the final filesystem as files.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the final filesystem as one tarball.
    Tar(PathBuf),
    /// `type=registry[,name=REF]`: pushed to `REF`, else to every `-t` tag.
    Registry(Option<Reference>),
}

/// Parses every `--output` value (`type=…,dest=…`, or a bare directory).
pub(crate) fn parse_all(raw: &[String]) -> anyhow::Result<Vec<Output>> {
    raw.iter().map(|s| parse(s)).collect()
}

fn parse(spec: &str) -> anyhow::Result<Output> {
    if spec == STDOUT {
        // buildx's shorthand: the filesystem as a tarball on stdout.
        return Ok(Output::Tar(PathBuf::from(STDOUT)));
    }
    if !spec.contains('=') {
        return Ok(Output::Local(PathBuf::from(spec)));
    }
    let (mut kind, mut dest, mut name) = (None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            Some(("name", v)) => name = Some(v.to_string()),
            _ => {
                bail!("invalid --output {spec:?}: unknown field {field:?} (expected type=…,dest=…)")
            }
        }
    }
    if kind.as_deref() == Some("registry") || name.is_some() {
        return parse_registry(spec, kind.as_deref(), dest.is_some(), name);
    }
    let dest = dest.with_context(|| format!("invalid --output {spec:?}: dest=… is required"))?;
    Ok(match kind.as_deref() {
        Some("docker") => Output::Docker(dest),
        Some("oci") => Output::Oci(dest),
        Some("local") | None if dest.as_os_str() == STDOUT => {
            bail!("invalid --output {spec:?}: type=local writes a directory; use type=tar,dest=- for stdout")
        }
        Some("local") | None => Output::Local(dest),
        Some("tar") => Output::Tar(dest),
        Some(other) => bail!(
            "invalid --output {spec:?}: unsupported type {other:?} (docker, oci, local or tar)"
        ),
    })
}

fn parse_registry(
    spec: &str,
    kind: Option<&str>,
    has_dest: bool,
    name: Option<String>,
) -> anyhow::Result<Output> {
    if kind != Some("registry") {
        bail!("invalid --output {spec:?}: name=… goes with type=registry");
    }
    if has_dest {
        bail!("invalid --output {spec:?}: type=registry takes name=…, not dest=…");
    }
    let name = name
        .map(|n| {
            n.parse::<Reference>()
                .with_context(|| format!("invalid --output {spec:?}: bad name {n:?}"))
        })
        .transpose()?;
    Ok(Output::Registry(name))
}

/// Writes `image` to `out`.
pub(crate) fn write(
    store: &Store,
    image: &Image,
    tags: &[Reference],
    out: &Output,
    compression: CompressionArg,
) -> anyhow::Result<()> {
    match out {
        Output::Docker(path) | Output::Oci(path) => {
            let format = match out {
                Output::Docker(_) => ArchiveFormat::Docker,
                _ => ArchiveFormat::Oci,
            };
            let compressed = compressed_image(store, image, compression)?;
            let saved = [SavedImage {
                image: compressed,
                references: tags.to_vec(),
            }];
            if path.as_os_str() == STDOUT {
                let mut w = stdout_writer()?;
                rbk_store::archive::save_archive(store, &saved, format, &mut w)?;
                return Ok(std::io::Write::flush(&mut w)?);
            }
            crate::commands::save::write_file(store, &saved, format, path)
        }
        Output::Local(dir) => flatten(store, image, dir),
        Output::Registry(name) => {
            let targets = match name {
                Some(n) => vec![n.clone()],
                None => tags.to_vec(),
            };
            if targets.is_empty() {
                bail!("--output type=registry needs a name: give name=REF or -t NAME");
            }
            for target in &targets {
                crate::commands::push::push_image(store, image, target, compression)?;
            }
            Ok(())
        }
        Output::Tar(path) => {
            let work = store.work_dir()?;
            let root = work.upper();
            flatten(store, image, &root)?;
            let mut w: Box<dyn std::io::Write> = if path.as_os_str() == STDOUT {
                Box::new(stdout_writer()?)
            } else {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                Box::new(std::io::BufWriter::new(file))
            };
            rbk_exec::write_layer_tar(&root, &mut w, &Default::default())?;
            std::io::Write::flush(&mut w)?;
            Ok(())
        }
    }
}

/// Standard output for an archive, refused when it is a terminal (as
/// buildx refuses to write to the console).
fn stdout_writer() -> anyhow::Result<std::io::BufWriter<std::io::Stdout>> {
    let stdout = std::io::stdout();
    if std::io::IsTerminal::is_terminal(&stdout) {
        bail!("refusing to write an archive to a terminal: redirect standard output or give dest=FILE");
    }
    Ok(std::io::BufWriter::new(stdout))
}

/// The same image with its layers compressed (layers leaving the store are
/// compressed; inside it they need not be).
pub(crate) fn compressed_image(
    store: &Store,
    image: &Image,
    compression: CompressionArg,
) -> anyhow::Result<Image> {
    let compression = match compression {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
    };
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
        layers.push(compress_layer(store, &layer, compression)?);
    }
    let manifest = store.put_manifest(image.manifest.config.clone(), layers)?;
    Ok(store.read_image(&manifest)?)
}

/// Writes the image's filesystem into `dir` (created if missing), applying
/// each layer's whiteouts in turn.
fn flatten(store: &Store, image: &Image, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let options = UnpackOptions::default().whiteouts(Whiteouts::Apply);
    for layer in &image.manifest.layers {
        let reader = store.open(&layer.digest)?;
        rbk_store::unpack_layer_onto(reader, dir, &options)
            .with_context(|| format!("writing layer {} into {}", layer.digest, dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_parse_like_buildx() {
        assert_eq!(parse("out").unwrap(), Output::Local("out".into()));
        assert_eq!(
            parse("type=local,dest=d").unwrap(),
            Output::Local("d".into())
        );
        assert_eq!(
            parse("type=docker,dest=i.tar").unwrap(),
            Output::Docker("i.tar".into())
        );
        assert_eq!(
            parse("type=oci,dest=o.tar").unwrap(),
            Output::Oci("o.tar".into())
        );
        assert_eq!(
            parse("type=tar,dest=t.tar").unwrap(),
            Output::Tar("t.tar".into())
        );
        assert!(parse("type=registry,dest=x").is_err());
        assert_eq!(parse("type=registry").unwrap(), Output::Registry(None));
        assert_eq!(
            parse("type=registry,name=localhost:5000/a:1").unwrap(),
            Output::Registry(Some("localhost:5000/a:1".parse().unwrap()))
        );
        assert!(parse("type=docker,name=a").is_err());
        assert!(parse("type=docker").is_err());
        assert!(parse("type=docker,dest=x,bogus=1").is_err());
        assert_eq!(parse("-").unwrap(), Output::Tar("-".into()));
        assert_eq!(
            parse("type=docker,dest=-").unwrap(),
            Output::Docker("-".into())
        );
        assert!(parse("type=local,dest=-").is_err());
    }
}
