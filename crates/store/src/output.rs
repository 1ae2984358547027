//! Files rbk writes for the user outside the store (`save -o`, `--output
//! dest=`, `--iidfile`, `--metadata-file`, …): one rule for all of them.
//!
//! - A new path, or an existing regular file (also through a symlink), is
//!   written to a temporary file beside it and renamed into place on
//!   [`OutputFile::commit`], so a failed or killed write leaves the old
//!   content (or nothing) behind.
//! - Anything else that exists — a character device such as `/dev/null`, a
//!   FIFO, a socket, `/dev/stdout` — is opened and written directly, never
//!   unlinked or replaced. Renaming a temp file over `/dev/null` as root
//!   turns the machine's null device into a regular file (the 2026-12 probe,
//!   docs/security.md); `docker save -o /dev/null` writes into the device.
//! - A directory, or a symlink to one, is an error naming the path.
//!
//! The files are not fsynced: they are the user's output, not store state.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil::unique_name;
use crate::{Error, Result};

/// An output being written; see the module docs. Dropping it without
/// [`commit`](Self::commit) removes its temporary file (a device or FIFO
/// keeps whatever was written).
#[derive(Debug)]
pub struct OutputFile {
    file: Option<File>,
    /// `(temporary, final)` paths when the output is renamed into place.
    rename: Option<(PathBuf, PathBuf)>,
    path: PathBuf,
}

/// Where an output path leads.
enum Target {
    /// Nothing there yet: temp + rename at this path.
    New(PathBuf),
    /// A regular file (this path, symlinks resolved): temp + rename.
    Regular(PathBuf),
    /// A device, FIFO or socket: written in place.
    Special,
}

fn classify(path: &Path) -> Result<Target> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Target::New(path.to_path_buf()))
        }
        Err(e) => return Err(Error::io("inspecting output", path)(e)),
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(Error::io("writing output", path)(io::Error::new(
            io::ErrorKind::IsADirectory,
            "the destination is a directory; give a file name",
        )));
    }
    if !kind.is_file() {
        return Ok(Target::Special);
    }
    let is_link = std::fs::symlink_metadata(path)
        .map_err(Error::io("inspecting output", path))?
        .file_type()
        .is_symlink();
    if !is_link {
        return Ok(Target::Regular(path.to_path_buf()));
    }
    let real = std::fs::canonicalize(path).map_err(Error::io("resolving output", path))?;
    // `/dev/stdout` redirected to a file leads through /proc's magic links:
    // the shell holds that file open, so write through it, never beside it.
    if real.starts_with("/proc") || path.starts_with("/proc") || path.starts_with("/dev") {
        return Ok(Target::Special);
    }
    Ok(Target::Regular(real))
}

impl OutputFile {
    /// Opens `path` for writing by the rules in the module docs.
    pub fn create(path: &Path) -> Result<OutputFile> {
        let dest = match classify(path)? {
            Target::Special => {
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
                    .open(path)
                    .map_err(Error::io("opening output", path))?;
                return Ok(OutputFile {
                    file: Some(file),
                    rename: None,
                    path: path.to_path_buf(),
                });
            }
            Target::New(dest) | Target::Regular(dest) => dest,
        };
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(unique_name(&format!(".{name}.rbk-tmp-")));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(crate::fsutil::nofollow())
            .open(&tmp)
            .map_err(Error::io("creating output", &tmp))?;
        Ok(OutputFile {
            file: Some(file),
            rename: Some((tmp, dest)),
            path: path.to_path_buf(),
        })
    }

    /// The path the user gave.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes the output: flushes it and renames a temporary file into
    /// place.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("output committed once");
        drop(file);
        if let Some((tmp, dest)) = self.rename.take() {
            if let Err(e) = std::fs::rename(&tmp, &dest) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("writing output", dest)(e));
            }
        }
        Ok(())
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("output already committed"))
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.rename {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Writes `bytes` to the output `path` (see the module docs).
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = OutputFile::create(path)?;
    out.write_all(bytes)
        .map_err(Error::io("writing output", path))?;
    out.commit()
}
