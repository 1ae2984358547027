//! `rbk import`: a rootfs tarball (plain, gzip or zstd) becomes one
//! uncompressed layer, whose digest is therefore also its diff_id.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::time::SystemTime;

use crate::image::{format_rfc3339, History, ImageConfig, RootFs, OCI_LAYER};
use crate::{BlobWrite, Descriptor, Digest, Error, Ingestion, Result, Store};

/// The layer [`import_rootfs`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedLayer {
    /// The layer's descriptor (media type [`OCI_LAYER`]).
    pub descriptor: Descriptor,
    /// Its diff_id (equal to its digest: the layer is stored uncompressed).
    pub diff_id: Digest,
    /// Entries in the tarball.
    pub entries: u64,
}

/// Copies what it reads into a blob ingest.
struct Tee<'a, R> {
    inner: R,
    sink: &'a mut dyn Write,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Streams a rootfs tarball into the store as one uncompressed layer. The
/// stream is parsed as tar while it is stored, so a corrupt, truncated or
/// non-tar input is an error and nothing is committed. The layer is then
/// unpacked into its snapshot (verified against its digest), so an archive
/// the extractor refuses (entries replacing the root, bad whiteouts,
/// hardlinks out of the layer, a sparse bomb…) fails the import rather than
/// the first build on the image.
pub fn import_rootfs(store: &Store, reader: impl Read) -> Result<ImportedLayer> {
    let what = "rootfs tarball";
    let tar_stream = super::decompress_bounded(reader).map_err(|e| super::bad(what, &e))?;
    let mut ingest = match store.ingest(None)? {
        Ingestion::Write(w) => w,
        Ingestion::Exists(_) => unreachable_exists()?,
    };
    let mut tee = Tee {
        inner: tar_stream,
        sink: &mut ingest,
    };
    let entries = super::check_tar(&mut tee, what)?;
    if entries == 0 {
        return Err(super::bad(what, &"archive has no entries"));
    }
    // Keep the end-of-archive blocks and padding: the layer is the whole tar.
    io::copy(&mut tee, &mut io::sink()).map_err(|e| super::bad(what, &e))?;
    let info = ingest.commit(None, None)?;
    let descriptor = Descriptor {
        media_type: OCI_LAYER.to_string(),
        digest: info.digest,
        size: info.size,
        annotations: BTreeMap::new(),
    };
    super::validate_layer(store, &descriptor, &info.digest, what, super::check_layer)?;
    Ok(ImportedLayer {
        descriptor,
        diff_id: info.digest,
        entries,
    })
}

fn unreachable_exists() -> Result<Box<dyn crate::Ingest>> {
    Err(Error::InvalidImageArchive {
        reason: "blob store answered \"exists\" to an ingest without a digest".to_string(),
    })
}

/// The config of a freshly imported one-layer image: host platform, creation
/// time `now`, and one history entry `rbk import` carrying `message`.
pub fn rootfs_config(diff_id: Digest, now: SystemTime, message: Option<&str>) -> ImageConfig {
    let created = format_rfc3339(now);
    ImageConfig {
        architecture: host_architecture().to_string(),
        os: "linux".to_string(),
        created: Some(created.clone()),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(created),
            created_by: Some("rbk import".to_string()),
            comment: message.map(str::to_string),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The host CPU in GOARCH spelling, as image configs use it.
pub(crate) fn host_architecture() -> &'static str {
    // `consts::ARCH` is the compile-time target, not an environment read.
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}
