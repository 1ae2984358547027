//! `ADD` of a local tar archive.
//!
//! A file is an archive when, after in-process decompression chosen by magic
//! bytes (gzip, bzip2, xz, zstd, or none), its first 512-byte block is a tar
//! header with a valid checksum — what Docker's `IsArchivePath` checks by
//! reading one header, never the file name. An empty archive (only the zero
//! end blocks) is not one, as in Docker, and is copied as a file.
//!
//! The archive is unpacked by `rbk_store::unpack_layer` (fd-relative, every
//! entry confined, limits on size and entry count) into a fresh private
//! directory inside the destination root, then copied into place with the
//! copier's own rules (merging into existing directories, following
//! destination symlinks inside the root, applying `--chown`), and the
//! private directory is removed. An ADDed tar is not a layer, but the store
//! has no literal mode for `.wh.` names: [`Whiteouts::Apply`] is used, so in
//! a fresh directory a whiteout deletes nothing and simply does not appear.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rbk_store::{unpack_layer, UnpackOptions, Whiteouts};
use rustix::fs::{self as rfs, Mode};
use rustix::io::Errno;

use super::tree;
use crate::{Error, Result};

/// Returns the decompressed tar stream when `file` is a tar archive.
pub(crate) fn archive_reader(file: File) -> io::Result<Option<Box<dyn Read>>> {
    // The store's decoder, so the expansion-ratio bound that stops
    // decompression bombs on load and import holds for ADD too.
    let mut stream = match rbk_store::decompress(file) {
        Ok(stream) => stream,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = vec![0u8; 512];
    // A stream that fails to decompress or is too short is just not an archive.
    if stream.read_exact(&mut header).is_err() || !rbk_store::is_tar_header(&header) {
        return Ok(None);
    }
    Ok(Some(Box::new(Cursor::new(header).chain(stream))))
}

/// A private directory inside the destination root holding an unpacked
/// archive at `path`.
pub(crate) struct TempTree {
    root: OwnedFd,
    name: OsString,
    /// The unpacked tree.
    pub path: PathBuf,
}

impl TempTree {
    /// Removes the private directory and everything in it.
    pub(crate) fn remove(self) -> Result<()> {
        tree::remove_all(self.root.as_fd(), &self.name)
            .map_err(|e| Error::io("removing", Path::new("/").join(&self.name), e))
    }
}

/// Unpacks `reader` into a new private directory of `dest_root` (the
/// directory at `dest_path`). The private directory is created by us with a
/// unique name, so the path-based unpacker cannot meet a symlink in it.
pub(crate) fn unpack_to_temp(
    dest_path: &Path,
    dest_root: BorrowedFd<'_>,
    reader: impl Read,
) -> Result<TempTree> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let root = dest_root
        .try_clone_to_owned()
        .map_err(|e| Error::io("opening", dest_path, e))?;
    let name = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = OsString::from(format!(".rbk-add-{}-{n}", std::process::id()));
        match rfs::mkdirat(&root, &name, Mode::from_raw_mode(0o700)) {
            Ok(()) => break name,
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(Error::io("creating", dest_path.join(&name), e.into())),
        }
    };
    let temp = TempTree {
        path: dest_path.join(&name).join("tree"),
        root,
        name,
    };
    let options = UnpackOptions::default().whiteouts(Whiteouts::Apply);
    match unpack_layer(reader, &temp.path, &options) {
        Ok(_) => Ok(temp),
        Err(e) => {
            let _ = temp.remove();
            Err(Error::Store(e))
        }
    }
}
