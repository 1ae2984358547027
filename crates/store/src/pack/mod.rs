//! Packing: an overlay-format directory (a snapshot or an upper dir) → its
//! OCI layer tar, deterministically.
//!
//! The packer lives in the store (rather than in `exec`, which commits
//! layers) because the store serves *packed blobs*: layers rbk built are kept
//! only as their snapshot, and reading their blob re-packs the snapshot on
//! the fly (see [`Store::commit_packed`](crate::Store::commit_packed)). That
//! is only sound because the tar is a function of the tree alone:
//!
//! # The tar rules
//!
//! They follow the OCI image-spec `layer.md` and what BuildKit and containerd
//! produce:
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
//! Files are read with a 1 MiB buffer and never held whole. [`PackReader`]
//! runs the walk on a second thread and hands 1 MiB chunks over a bounded
//! channel, so reading the tree and hashing (or copying) the tar overlap,
//! and memory stays at a few MiB whatever the layer's size.

mod header;
mod inspect;
mod midstate;
mod resume;
mod walk;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use serde::{Deserialize, Serialize};

use crate::{BlobInfo, Error, Result, Sha256Writer};

pub use resume::{hash_tracked, Checkpoint, Packed, Resume};
pub use walk::write_layer_tar;

/// Size of the chunks handed between the two threads.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const IN_FLIGHT: usize = 4;

/// How a layer's tar is written. Part of a packed blob's record: re-packing
/// uses the options of the first pack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackOptions {
    /// When set, mtimes later than this (seconds since the epoch) are
    /// clamped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<i64>,
}

/// The digest of `dir`'s tar with directory mtimes left out (see
/// `walk::content_digest_here`), on a thread with a stack for deep trees:
/// for comparing two unpacks of one layer.
pub(crate) fn content_digest(dir: &Path) -> Result<crate::Digest> {
    std::thread::scope(|scope| {
        let walk = std::thread::Builder::new()
            .name("rbk-compare".into())
            .stack_size(crate::WALK_STACK)
            .spawn_scoped(scope, || walk::content_digest_here(dir))
            .map_err(Error::io("starting a tree walk for", dir))?;
        walk.join().unwrap_or_else(|_| {
            Err(Error::io("walking", dir)(io::Error::other(
                "the walk panicked",
            )))
        })
    })
}

/// The digest and size of the tar of `dir`, without writing it anywhere.
pub fn hash_layer_tar(dir: &Path, options: &PackOptions) -> Result<BlobInfo> {
    let mut reader = PackReader::spawn(dir, options);
    let mut hasher = Sha256Writer::new();
    let mut size = 0u64;
    while let Some(chunk) = reader.next_chunk()? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok(BlobInfo {
        digest: hasher.finish(),
        size,
    })
}

/// The tar of a directory as a [`Read`]: the walk runs on its own thread.
/// Dropping the reader early stops the walk (its next send fails).
pub struct PackReader {
    rx: Receiver<Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl PackReader {
    /// Starts packing `dir` on a new thread.
    pub fn spawn(dir: &Path, options: &PackOptions) -> PackReader {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (dir, options) = (dir.to_path_buf(), options.clone());
        // The walk recurses once per directory level: room for the deepest
        // tree the store accepts (MAX_PATH_LEN), reserved, not committed.
        let spawned = std::thread::Builder::new()
            .name("rbk-pack".into())
            .stack_size(crate::WALK_STACK)
            .spawn(move || pack_into(dir, options, tx));
        if let Err(e) = spawned {
            // The receiver sees the channel closed; report why first.
            let (tx, rx) = sync_channel(1);
            let _ = tx.send(Err(Error::Io {
                op: "starting the packer thread",
                path: PathBuf::new(),
                source: e,
            }));
            return PackReader {
                rx,
                current: Vec::new(),
                pos: 0,
                done: false,
            };
        }
        PackReader {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// The next chunk of the tar, or `None` at its end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Ok(chunk)) if !chunk.is_empty() => Ok(Some(chunk)),
            Ok(Ok(_)) => {
                self.done = true; // the explicit end marker
                Ok(None)
            }
            Ok(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Err(_) => {
                self.done = true;
                Err(Error::Pack {
                    path: PathBuf::from("<packer>"),
                    reason: "the packing thread stopped without finishing".into(),
                })
            }
        }
    }
}

impl Read for PackReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.next_chunk() {
                Ok(Some(chunk)) => (self.current, self.pos) = (chunk, 0),
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The packing thread: walks `dir` into 1 MiB chunks; ends with an empty
/// chunk (so a reader can tell a finished tar from a dead thread) or with
/// the error.
fn pack_into(dir: PathBuf, options: PackOptions, tx: SyncSender<Result<Vec<u8>>>) {
    let mut out = Chunks::new(&tx);
    let result = walk::write_unbuffered(&dir, &mut out, &options).and_then(|()| {
        out.send()
            .map_err(Error::io("sending layer chunk of", dir.clone()))
    });
    let _ = match result {
        Ok(()) => tx.send(Ok(Vec::new())),
        Err(e) => tx.send(Err(e)),
    };
}

/// Where a walk's full chunks go: another thread (the reader of a layer,
/// or the hasher of a tracked pack).
trait ChunkOut {
    /// Hands `chunk` over. Fails only when the other end is gone, which
    /// stops the walk.
    fn send_chunk(&mut self, chunk: Vec<u8>) -> io::Result<()>;

    /// Whether something besides bytes waits for the next chunk.
    fn has_pending(&self) -> bool {
        false
    }
}

impl ChunkOut for &SyncSender<Result<Vec<u8>>> {
    fn send_chunk(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.send(Ok(chunk)).map_err(|_| stopped("layer reader"))
    }
}

/// The walk's writer: gathers the tar into [`CHUNK`]-sized buffers for
/// another thread, so the two exchange a message per MiB, not per entry.
struct Chunks<O> {
    buf: Vec<u8>,
    out: O,
}

impl<O: ChunkOut> Chunks<O> {
    fn new(out: O) -> Self {
        Chunks {
            buf: Vec::with_capacity(CHUNK),
            out,
        }
    }

    /// Sends what is gathered (when full, and at the end of the walk).
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() && !self.out.has_pending() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.out.send_chunk(full)
    }
}

impl walk::Sink for &mut Chunks<&SyncSender<Result<Vec<u8>>>> {}

impl<O: ChunkOut> Write for Chunks<O> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // chunks are sent when full and at the end
    }
}

/// The error of a send whose receiving thread (`who`) has stopped.
fn stopped(who: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, format!("{who} stopped"))
}
