//! `rbk build -`: the build context read from standard input, as
//! `docker build - < ctx.tar.gz` does. Standard input is either a tar
//! archive (plain, gzip, bzip2, xz or zstd, told apart by magic bytes and
//! a valid tar header, never by a name) holding the context, with the
//! Dockerfile at its root or at the `-f` path inside it; or else a
//! Dockerfile alone, with an empty context.
//!
//! The archive is unpacked by the store's extractor (fd-relative, every
//! entry confined to the directory, device nodes skipped, bounded in bytes
//! and entries) into a scratch directory under the store's `tmp/`, which
//! goes to the trash when the build ends; a killed build's directory is an
//! orphan the next build clears.

use std::io::{Cursor, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use rbk_store::{unpack_layer, DevicePolicy, Store, UnpackOptions, Whiteouts, WorkDir};

/// At most this many bytes of (decompressed) context from stdin.
const MAX_CONTEXT_BYTES: u64 = 16 << 30;
/// At most this many entries in a context archive.
const MAX_CONTEXT_ENTRIES: u64 = 2_000_000;
/// At most this many bytes for a Dockerfile given alone on stdin.
const MAX_DOCKERFILE_BYTES: u64 = 16 << 20;

/// A context unpacked from stdin; removed (moved to the trash) on drop.
pub(crate) struct StdinContext {
    _work: WorkDir,
    /// The context directory.
    pub(crate) context: PathBuf,
    /// The Dockerfile to read.
    pub(crate) dockerfile: PathBuf,
}

/// Reads the context from stdin. `file` is `-f`: a path inside the archive.
pub(crate) fn read(store: &Store, file: Option<&Path>) -> anyhow::Result<StdinContext> {
    if file.is_some_and(|f| f.as_os_str() == "-") {
        bail!("the context and the Dockerfile cannot both come from stdin (`-` and `-f -`)");
    }
    from_reader(store, std::io::stdin().lock(), file)
}

pub(crate) fn from_reader(
    store: &Store,
    input: impl Read,
    file: Option<&Path>,
) -> anyhow::Result<StdinContext> {
    let work = store.work_dir()?;
    let context = work.path().join("context");
    let mut stream = decompress(input).context("reading the build context from stdin")?;
    let mut head = Vec::with_capacity(512);
    (&mut stream)
        .take(512)
        .read_to_end(&mut head)
        .context("reading the build context from stdin")?;
    if !is_tar_header(&head) {
        // A Dockerfile alone: the context is empty.
        let dockerfile = work.path().join("Dockerfile");
        let mut text = head;
        stream
            .take(MAX_DOCKERFILE_BYTES)
            .read_to_end(&mut text)
            .context("reading the Dockerfile from stdin")?;
        if text.len() as u64 >= MAX_DOCKERFILE_BYTES {
            bail!("the Dockerfile on stdin is larger than {MAX_DOCKERFILE_BYTES} bytes");
        }
        if file.is_some() {
            bail!("-f names a file inside the context archive, but stdin is not a tar archive");
        }
        std::fs::write(&dockerfile, text)
            .with_context(|| format!("writing {}", dockerfile.display()))?;
        std::fs::create_dir(&context).with_context(|| format!("creating {}", context.display()))?;
        return Ok(StdinContext {
            _work: work,
            context,
            dockerfile,
        });
    }
    let options = UnpackOptions::default()
        .whiteouts(Whiteouts::Apply)
        .devices(DevicePolicy::Skip)
        .chown(false)
        .max_bytes(MAX_CONTEXT_BYTES)
        .max_entries(MAX_CONTEXT_ENTRIES);
    unpack_layer(Cursor::new(head).chain(stream), &context, &options)
        .context("unpacking the build context archive from stdin")?;
    let dockerfile = match file {
        Some(f) => context.join(inside(f)?),
        None => context.join("Dockerfile"),
    };
    Ok(StdinContext {
        _work: work,
        context,
        dockerfile,
    })
}

/// `-f` as a relative path that stays inside the archive.
pub(crate) fn inside(file: &Path) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in file.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => bail!(
                "-f {}: the Dockerfile must be inside the context archive",
                file.display()
            ),
        }
    }
    Ok(out)
}

/// The decompressed stream, by magic bytes (gzip, bzip2, xz, zstd, none).
fn decompress<'a>(input: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut input = std::io::BufReader::new(input);
    let magic = std::io::BufRead::fill_buf(&mut input)?;
    Ok(match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(input)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(input))
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::stream::read::Decoder::new(input)?),
        _ => Box::new(input),
    })
}

/// Whether `block` is a tar header: 512 bytes, not all zeros, with a
/// checksum field matching the sum of its bytes (unsigned or signed).
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() != 512 || block.iter().all(|b| *b == 0) {
        return false;
    }
    let text: String = block[148..156]
        .iter()
        .map(|b| *b as char)
        .filter(|c| *c != ' ' && *c != '\0')
        .collect();
    let Ok(expected) = i64::from_str_radix(&text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    expected == unsigned || expected == signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_paths_stay_inside_the_archive() {
        assert_eq!(
            inside(Path::new("sub/Dockerfile")).unwrap(),
            Path::new("sub/Dockerfile")
        );
        assert_eq!(inside(Path::new("/x/D")).unwrap(), Path::new("x/D"));
        assert!(inside(Path::new("../D")).is_err());
        assert!(inside(Path::new("a/../../D")).is_err());
    }

    #[test]
    fn a_dockerfile_is_not_a_tar_header() {
        let mut text = b"FROM scratch\n".to_vec();
        text.resize(512, b' ');
        assert!(!is_tar_header(&text));
        assert!(!is_tar_header(&[0u8; 512]));
    }
}
