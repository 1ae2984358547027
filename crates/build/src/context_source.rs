//! Build contexts that are not a directory on disk, made into one under the
//! store's `tmp/` for the length of a build:
//!
//! - an archive or a lone Dockerfile read from a stream (`rbk build -`
//!   reads standard input, as `docker build - < ctx.tar.gz` does): a tar
//!   archive (plain, gzip, bzip2, xz or zstd, told apart by magic bytes and
//!   a valid tar header, never by a name) holding the context, with the
//!   Dockerfile at its root or at the `-f` path inside it; or else a
//!   Dockerfile alone, with an empty context;
//! - a URL (`rbk build <https url>`, `--build-context NAME=<https url>`):
//!   downloaded (cached and revalidated like `ADD <url>`) and read as above;
//! - a git URL (`…/r.git#ref:dir`), checked out as `ADD <git url>` does.
//!
//! Archives are unpacked by the store's extractor (fd-relative, every entry
//! confined to the directory, device nodes skipped, bounded in bytes, in
//! entries and in expansion ratio) into a scratch directory that goes to the
//! trash when the [`FetchedContext`] is dropped; a killed build's directory
//! is an orphan the next build clears.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Component, Path, PathBuf};

use rbk_exec::{RemoteSettings, Secret};
use rbk_store::{unpack_layer, DevicePolicy, Store, UnpackOptions, Whiteouts, WorkDir};

use crate::named::BuildContext;
use crate::{Error, Result};

/// At most this many bytes of (decompressed) context from an archive.
const MAX_CONTEXT_BYTES: u64 = 16 << 30;
/// At most this many entries in a context archive.
const MAX_CONTEXT_ENTRIES: u64 = 2_000_000;
/// At most this many bytes for a Dockerfile given alone.
const MAX_DOCKERFILE_BYTES: u64 = 16 << 20;

/// A context made into a directory; moved to the trash when dropped, so
/// keep it for the whole build.
pub struct FetchedContext {
    _work: WorkDir,
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile in it (the `-f` path inside it, else `Dockerfile`; for
    /// a lone Dockerfile, that file beside the empty context).
    pub dockerfile: PathBuf,
}

/// Reads a context from `input`: a tar archive (any compression) or a lone
/// Dockerfile. `file` is `-f`: a path inside the archive. Messages speak of
/// stdin, where such a stream usually comes from; the caller names any
/// other source.
pub fn context_from_stream(
    store: &Store,
    input: impl Read,
    file: Option<&Path>,
) -> Result<FetchedContext> {
    let work = store.work_dir()?;
    let context = work.path().join("context");
    let reading =
        |source: std::io::Error| context_error("reading the build context from stdin", source);
    let mut input = BufReader::new(input);
    // An empty stream is an empty Dockerfile (which the parser refuses
    // with its own message), not an empty archive.
    let empty = input.fill_buf().map_err(reading)?.is_empty();
    let mut stream: Box<dyn Read> = match empty {
        true => Box::new(std::io::empty()),
        false => rbk_store::decompress(input).map_err(reading)?,
    };
    let mut head = Vec::with_capacity(512);
    (&mut stream)
        .take(512)
        .read_to_end(&mut head)
        .map_err(reading)?;
    if !rbk_store::is_tar_header(&head) {
        // A Dockerfile alone: the context is empty.
        let dockerfile = work.path().join("Dockerfile");
        let mut text = head;
        stream
            .take(MAX_DOCKERFILE_BYTES)
            .read_to_end(&mut text)
            .map_err(|e| context_error("reading the Dockerfile from stdin", e))?;
        if text.len() as u64 >= MAX_DOCKERFILE_BYTES {
            return Err(Error::Invalid(format!(
                "the Dockerfile on stdin is larger than {MAX_DOCKERFILE_BYTES} bytes"
            )));
        }
        if file.is_some() {
            return Err(Error::Invalid(
                "-f names a file inside the context archive, but stdin is not a tar archive".into(),
            ));
        }
        std::fs::write(&dockerfile, text)
            .map_err(|e| context_error(format!("writing {}", dockerfile.display()), e))?;
        std::fs::create_dir(&context)
            .map_err(|e| context_error(format!("creating {}", context.display()), e))?;
        return Ok(FetchedContext {
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
        .map_err(|e| context_error("unpacking the build context archive from stdin", e))?;
    let dockerfile = match file {
        Some(f) => context.join(inside(f)?),
        None => context.join("Dockerfile"),
    };
    Ok(FetchedContext {
        _work: work,
        context,
        dockerfile,
    })
}

/// Fetches the context `url` names: a git URL is checked out (with
/// `secrets` and `ssh_agent` for private repositories), any other http(s)
/// URL is downloaded and read as [`context_from_stream`] reads a stream.
/// `None` when `url` is not a URL (a local directory).
pub fn fetch_context(
    store: &Store,
    remote: &RemoteSettings,
    secrets: &BTreeMap<String, Secret>,
    ssh_agent: Option<PathBuf>,
    url: &str,
    file: Option<&Path>,
) -> Result<Option<FetchedContext>> {
    let fetching = || format!("fetching the build context {url}");
    if crate::is_git_url(url) {
        let (work, tree) = rbk_exec::checkout_git_url(store, remote, secrets, ssh_agent, url)
            .map_err(|e| context_error(fetching(), e))?;
        let dockerfile = match file {
            Some(f) => tree.join(inside(f)?),
            None => tree.join("Dockerfile"),
        };
        return Ok(Some(FetchedContext {
            _work: work,
            context: tree,
            dockerfile,
        }));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Ok(None);
    }
    let body = rbk_exec::fetch_url(store, remote, url).map_err(|e| context_error(fetching(), e))?;
    let ctx = context_from_stream(store, body, file)
        .map_err(|e| context_error(format!("reading the build context {url}"), e))?;
    Ok(Some(ctx))
}

/// Where `rbk build`'s context comes from, as the command line names it.
pub struct ContextSource<'a> {
    /// The context argument: a local directory, `-` (the stream), or a URL.
    pub context: &'a Path,
    /// `-f` as given: `-` when the Dockerfile comes from the stream, else a
    /// path (inside the archive or checkout, for a context made here).
    pub file: Option<&'a Path>,
    /// Secrets for a private git repository.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// The ssh agent socket for a git repository reached over ssh.
    pub ssh_agent: Option<PathBuf>,
}

/// `source`'s context made into a directory: `-` is read from `stream`
/// ([`context_from_stream`]), a URL is fetched ([`fetch_context`]). `None`
/// for a local directory, used as it is. When the Dockerfile comes from the
/// stream (`-f -`), the context cannot.
pub fn open_context(
    store: &Store,
    remote: &RemoteSettings,
    source: ContextSource<'_>,
    stream: impl Read,
) -> Result<Option<FetchedContext>> {
    let stdin_dockerfile = source.file.is_some_and(|f| f.as_os_str() == "-");
    if source.context.as_os_str() == "-" {
        if stdin_dockerfile {
            return Err(Error::Invalid(
                "the context and the Dockerfile cannot both come from stdin (`-` and `-f -`)"
                    .into(),
            ));
        }
        return context_from_stream(store, stream, source.file).map(Some);
    }
    let Some(url) = source.context.to_str() else {
        return Ok(None);
    };
    let file = source.file.filter(|_| !stdin_dockerfile);
    fetch_context(store, remote, source.secrets, source.ssh_agent, url, file)
}

/// The named contexts made ready to build with: `oci-layout://` ones loaded
/// into the store ([`load_oci_layouts`](crate::load_oci_layouts)), URL ones
/// fetched and unpacked ([`fetch_named_contexts`]); keep the returned
/// contexts for the build.
pub fn open_named_contexts(
    store: &Store,
    remote: &RemoteSettings,
    contexts: &mut BTreeMap<String, BuildContext>,
) -> Result<Vec<FetchedContext>> {
    crate::named::load_oci_layouts(store, contexts)?;
    fetch_named_contexts(store, remote, contexts)
}

/// Fetches and unpacks every `--build-context NAME=<https url>` (an
/// archive, like a remote build context), replacing it with the unpacked
/// directory; keep the returned contexts for the build.
pub fn fetch_named_contexts(
    store: &Store,
    remote: &RemoteSettings,
    contexts: &mut BTreeMap<String, BuildContext>,
) -> Result<Vec<FetchedContext>> {
    let mut kept = Vec::new();
    for (name, context) in contexts.iter_mut() {
        let BuildContext::Url(url) = context else {
            continue;
        };
        let body = rbk_exec::fetch_url(store, remote, url)
            .map_err(|e| context_error(format!("fetching build context {name:?} ({url})"), e))?;
        let ctx = context_from_stream(store, body, None)
            .map_err(|e| context_error(format!("reading build context {name:?} ({url})"), e))?;
        *context = BuildContext::Local(ctx.context.clone());
        kept.push(ctx);
    }
    Ok(kept)
}

fn context_error(what: impl Into<String>, source: impl Into<crate::error::BoxError>) -> Error {
    Error::Context {
        what: what.into(),
        source: source.into(),
    }
}

/// `-f` as a relative path that stays inside the archive.
fn inside(file: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in file.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Invalid(format!(
                    "-f {}: the Dockerfile must be inside the context archive",
                    file.display()
                )))
            }
        }
    }
    Ok(out)
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
        assert!(!rbk_store::is_tar_header(&text));
        assert!(!rbk_store::is_tar_header(&[0u8; 512]));
    }
}
