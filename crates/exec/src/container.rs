//! Containers outside builds (`rbk run`, `rbk commit`, `rbk diff`): the
//! image's layers (plus the init layer) under the container's own upper dir,
//! run by the same [`Runtime`] as `RUN` steps, and that upper dir turned
//! into a layer or a list of changes afterwards.

use std::path::Path;

use rbk_graph::{NetworkMode, SecurityMode};
use rbk_store::{overlay_mount, BlobWrite, Descriptor, Layer, Store};

use crate::layer::{LayerOptions, LAYER_TAR};
use crate::ops::exec::{ensure_init_layer, Entitlements, OutputStream, RunRequest, Runtime};
use crate::snapshot::lower_dirs;
use crate::{mount, Error, Result};

/// How to run a container's process.
#[derive(Clone, Debug)]
pub struct ContainerProcess<'a> {
    /// The container id (also runc's).
    pub id: &'a str,
    /// Entrypoint and command, resolved.
    pub args: &'a [String],
    /// `KEY=VALUE` pairs.
    pub env: &'a [String],
    /// Working directory.
    pub cwd: &'a str,
    /// `user[:group]`, empty for root.
    pub user: &'a str,
    /// Hostname.
    pub hostname: &'a str,
    /// Network: `none` or the host's.
    pub network: NetworkMode,
}

/// Runs `process` in the container whose directory is `dir` (holding
/// `upper/`, `work/`, `merged/` and `bundle/`) over the image `layers`;
/// what it writes goes to `output` in order. Returns its exit code.
pub fn run_container(
    store: &Store,
    runtime: &dyn Runtime,
    layers: &[Layer],
    dir: &Path,
    process: &ContainerProcess<'_>,
    output: &mut dyn FnMut(&[u8]),
) -> Result<i32> {
    let mut lowers = lower_dirs(store, layers)?;
    lowers.push(ensure_init_layer(&store.root().join("init-layer"))?);
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    let m = overlay_mount(&lowers, Some((&upper, &work)));
    let _root = mount(&m, &merged)?;
    let bundle = dir.join("bundle");
    let request = RunRequest {
        id: process.id,
        rootfs: &merged,
        bundle: &bundle,
        args: process.args,
        env: process.env,
        cwd: process.cwd,
        user: process.user,
        network: process.network,
        security: SecurityMode::Sandbox,
        entitlements: Entitlements {
            network_host: true,
            ..Entitlements::default()
        },
        hostname: process.hostname,
        mounts: &[],
        tmpfs: &[],
    };
    runtime.run(&request, &mut |_: OutputStream, data: &[u8]| output(data))
}

/// The container's changes (its `upper` dir) as a layer in the store: the
/// same deterministic tar a build's step makes, so identical changes give
/// an identical layer. `None` when it changed nothing.
pub fn container_layer(store: &Store, upper: &Path) -> Result<Option<Layer>> {
    let empty = std::fs::read_dir(upper)
        .map_err(|e| Error::io("listing", upper, e))?
        .next()
        .is_none();
    if empty {
        return Ok(None);
    }
    // Packed straight into the store's ingest through a pipe: no temporary
    // tar on disk, each byte written and hashed once.
    let (mut reader, writer) = std::io::pipe().map_err(|e| Error::io("packing", upper, e))?;
    let dir = upper.to_path_buf();
    let packer = std::thread::spawn(move || -> Result<()> {
        let mut out = std::io::BufWriter::new(writer);
        crate::write_layer_tar(&dir, &mut out, &LayerOptions::default())?;
        std::io::Write::flush(&mut out).map_err(|e| Error::io("packing", &dir, e))
    });
    let stored = store.put(&mut reader, None);
    drop(reader); // a failed ingest stops the packer with EPIPE
    let packed = packer
        .join()
        .map_err(|_| Error::io("packing", upper, std::io::Error::other("packer panicked")))?;
    packed?;
    let info = stored?;
    Ok(Some(Layer {
        diff_id: info.digest,
        blob: Descriptor {
            media_type: LAYER_TAR.into(),
            digest: info.digest,
            size: info.size,
            annotations: Default::default(),
        },
    }))
}

/// A change `rbk diff` lists, as Docker prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// `A`: added.
    Added,
    /// `C`: changed (or a directory with changes inside).
    Changed,
    /// `D`: deleted.
    Deleted,
}

/// The container's changes against its image: each path of its upper dir,
/// `D` for whiteouts, `C` for what the image has, `A` for the rest; sorted
/// by path.
pub fn container_changes(
    store: &Store,
    layers: &[Layer],
    upper: &Path,
) -> Result<Vec<(Change, String)>> {
    let lowers = lower_dirs(store, layers)?;
    let in_image = |rel: &Path| {
        lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok())
    };
    let mut out = Vec::new();
    let mut pending = vec![std::path::PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = upper.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let path = rel.join(entry.file_name());
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            let change = match (whiteout, in_image(&path)) {
                (true, _) => Change::Deleted,
                (false, true) => Change::Changed,
                (false, false) => Change::Added,
            };
            out.push((change, format!("/{}", path.display())));
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}
