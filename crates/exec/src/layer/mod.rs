//! Layers: an overlay-format directory → an OCI layer tar in the store, and
//! the compressed forms of layers for export.
//!
//! [`commit_layer`] turns the upper directory of a `RUN` (or the tree a file
//! op wrote) into a [`Layer`]: it streams the directory's tar into the store
//! as an uncompressed blob (so the blob digest *is* the diff id), then moves
//! the directory itself into place as the layer's snapshot. Layers stay
//! uncompressed in the store; [`compress_layer`] makes the gzip or zstd form
//! once, when an image leaves rbk (save, push, `--output`).
//!
//! # The tar rules
//!
//! They follow the OCI image-spec `layer.md` and what BuildKit and containerd
//! produce, and make the bytes a function of the tree alone:
//!
//! - **Order.** Depth first; the children of a directory in byte order of
//!   their names on disk (the order of Go's `filepath.Walk`), so parents come
//!   before children and the creation order of the tree does not matter. A
//!   whiteout sits where the name it deletes would sort.
//! - **Names.** Relative, with no leading `./` or `/`; directories end in
//!   `/`. The root directory itself is not an entry.
//! - **Headers.** ustar with numeric ids only (`uname`/`gname` empty); mode
//!   is the permission bits with setuid, setgid and sticky; mtime in whole
//!   seconds, no atime or ctime. A PAX `x` header carries, records sorted by
//!   key, what ustar cannot: names or link targets over 100 bytes or not
//!   ASCII (`path`, `linkpath`), sizes of 8 GiB or more, ids over 2,097,151,
//!   mtimes before 1970, and xattrs (`SCHILY.xattr.<name>`).
//! - **Types.** Regular files, directories, symlinks (with their target),
//!   FIFOs, character and block devices (with major and minor). Sockets are
//!   skipped, as Docker does. An inode with more than one link that occurs
//!   twice in the tree is a regular file at its first name in walk order and
//!   hardlink entries at the later ones.
//! - **xattrs.** `user.*` and `security.capability` are kept; every other
//!   xattr, in particular every `trusted.overlay.*`, is dropped.
//! - **Whiteouts.** An overlay whiteout (a character device 0/0 `NAME`)
//!   becomes the OCI whiteout `.wh.NAME`: an empty regular file, mode 0,
//!   owned by 0:0, with the device's mtime. A directory with
//!   `trusted.overlay.opaque=y` is written, then immediately its opaque
//!   marker `DIR/.wh..wh..opq` (same form), then its children — layer.md
//!   asks for the marker right after the directory. A real file whose name
//!   starts with `.wh.` cannot be represented (layer.md: such names are
//!   reserved) and fails the layer, as does a `trusted.overlay.redirect` or
//!   `trusted.overlay.metacopy` xattr: with redirect_dir or metacopy the
//!   content lives elsewhere, and rbk's mounts keep both features off.
//! - **`source_date_epoch`.** When set, every mtime later than it is
//!   clamped to it (BuildKit's `rewrite-timestamp`); earlier ones are kept.
//! - **End.** Two zero blocks, no padding to a 10 KiB record (as Go writes).
//!
//! # Streaming
//!
//! Files are read with a 1 MiB buffer and never held whole; the tar bytes go
//! through a bounded channel to a second thread that hashes them and writes
//! them into the store's ingest, so reading and sha256 overlap.

mod compress;
mod diff;
mod header;

use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rbk_store::{BlobInfo, BlobWrite, Descriptor, Ingest, Ingestion, Layer, Store};

use crate::{Error, Result};

pub(crate) use compress::remember_compressed;
pub use compress::{compress_layer, Compression};
pub use diff::write_layer_tar;

/// The media type of an uncompressed OCI layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Size of the chunks handed to the hashing thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const IN_FLIGHT: usize = 4;

/// How a layer's tar is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// When set, mtimes later than this (seconds since the epoch) are
    /// clamped to it.
    pub source_date_epoch: Option<i64>,
}

/// Turns the overlay-format directory `dir` into a layer: streams its tar
/// into the store as an uncompressed blob ([`LAYER_TAR`], so the diff id is
/// the blob digest), then commits `dir` itself as the layer's snapshot
/// (`dir` is consumed and must be on the store's filesystem). Returns `None`,
/// leaving `dir` alone, when the directory is empty.
pub fn commit_layer(store: &Store, dir: &Path, options: &LayerOptions) -> Result<Option<Layer>> {
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    if entries.next().is_none() {
        return Ok(None);
    }
    let ingest = match store.ingest(None)? {
        Ingestion::Write(w) => w,
        Ingestion::Exists(_) => {
            return Err(Error::Layer {
                path: dir.to_path_buf(),
                reason: "the store offered no ingest for a new blob".into(),
            })
        }
    };
    let info = write_through_thread(dir, ingest, options)?;
    store.commit_snapshot(dir, &info.digest)?;
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

/// Writes the tar of `dir` into `ingest` on a second thread and commits it.
fn write_through_thread(
    dir: &Path,
    mut ingest: Box<dyn Ingest + '_>,
    options: &LayerOptions,
) -> Result<BlobInfo> {
    let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> io::Result<_> {
            for chunk in rx {
                ingest.write_all(&chunk)?;
                let _ = free_tx.try_send(chunk); // recycled if there is room
            }
            Ok(ingest)
        });
        let mut pipe = Pipe {
            tx: Some(tx),
            free: free_rx,
            buf: Vec::with_capacity(CHUNK),
        };
        let written = diff::write_unbuffered(dir, &mut pipe, options)
            .and_then(|()| pipe.close().map_err(|e| Error::io("writing layer", dir, e)));
        drop(pipe);
        let ingest = writer
            .join()
            .map_err(|_| Error::io("writing layer", dir, io::Error::other("writer panicked")))?
            .map_err(|e| Error::io("writing layer blob for", dir, e))?;
        written?;
        Ok(ingest.commit(None, None)?)
    })
}

/// The producer side: fills 1 MiB chunks and sends them to the writer.
struct Pipe {
    tx: Option<SyncSender<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl Pipe {
    fn send(&mut self) -> io::Result<()> {
        let mut fresh = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        fresh.clear();
        let full = std::mem::replace(&mut self.buf, fresh);
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("pipe closed"))?;
        // A send fails only when the writer stopped; its error is reported.
        tx.send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "layer writer stopped"))
    }

    /// Sends what is buffered and ends the stream.
    fn close(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        Ok(())
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // chunks are sent when full and at close
    }
}
