//! `rbk system verify`: a consistency check of the whole store.
//!
//! Every blob is re-hashed (in parallel with rayon) and compared with its
//! name — a packed blob by re-packing its snapshot; every tagged manifest, its config and its layers must be present and
//! parse; every snapshot directory must be named by a digest, and every
//! snapshot unpacked from a layer blob still holds that layer (it is
//! unpacked again and compared, see `snapshots.rs`). [`VerifyOptions::quick`]
//! skips the snapshot contents (the re-unpacking and the re-packing of
//! packed blobs), the expensive half.
//!
//! Blobs are reported, never repaired: a damaged blob is evidence, and
//! repairing it silently would hide a failing disk (docs/security.md F5).
//! A damaged snapshot of a sound blob is derived data: with
//! [`VerifyOptions::repair`] it is replaced by a fresh, verified unpack.
//! Leftovers of killed processes are listed separately: they are not
//! damage, `rbk prune` clears them.

mod snapshots;

use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use rayon::prelude::*;

use crate::image::{self, Document};
use crate::{BlobRead, Digest, Error, Result, Sha256Writer, Store, MAX_DOCUMENT_SIZE};

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: String,
}

/// The outcome of [`Store::verify`].
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    /// Damage found, sorted by path.
    pub problems: Vec<Problem>,
    /// Leftovers of interrupted processes (not damage).
    pub orphans: Vec<PathBuf>,
    /// Blobs re-hashed.
    pub blobs: usize,
    /// Tagged images checked.
    pub images: usize,
    /// Snapshot directories checked.
    pub snapshots: usize,
    /// Snapshots whose contents were compared with their layer.
    pub snapshot_contents: usize,
    /// Snapshots replaced by a fresh unpack of their layer (`repair`).
    pub repaired: Vec<PathBuf>,
}

/// How thorough [`Store::verify_with`] is.
#[derive(Debug, Default, Clone, Copy)]
pub struct VerifyOptions {
    /// Skip snapshot contents: blobs, documents and names only.
    pub quick: bool,
    /// Replace snapshots that do not match their layer (under the GC lock,
    /// so no build is using them).
    pub repair: bool,
}

impl Store {
    /// Checks the whole store, snapshot contents included, without
    /// changing it.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(VerifyOptions::default())
    }

    /// Checks the store as `options` say; changes nothing unless
    /// [`VerifyOptions::repair`].
    pub fn verify_with(&self, options: VerifyOptions) -> Result<VerifyReport> {
        // Repairs wait for every build (lease) to end and keep new ones out.
        let _gc = options.repair.then(|| self.gc_lock()).transpose()?;
        let mut report = VerifyReport::default();
        self.verify_blobs(&mut report, options.quick)?;
        self.verify_images(&mut report)?;
        self.verify_snapshots(&mut report)?;
        if !options.quick {
            self.verify_snapshot_contents(&mut report, options.repair)?;
        }
        report.orphans = self.orphans()?;
        report.problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(report)
    }

    fn verify_blobs(&self, report: &mut VerifyReport, quick: bool) -> Result<()> {
        let dir = self.blobs_dir();
        let listing = |e: rustix::io::Errno| Error::io("listing", &dir)(e.into());
        // Each blob is opened relative to the directory's fd: one path
        // lookup for all of them instead of one per blob.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir_fd = rustix::fs::open(&dir, flags, Mode::empty()).map_err(listing)?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir_fd).map_err(listing)? {
            let name = entry.map_err(listing)?.file_name().to_owned();
            if !matches!(name.to_bytes(), b"." | b"..") {
                names.push(name);
            }
        }
        report.blobs = names.len();
        let problems: Vec<Problem> = names
            .par_iter()
            .filter_map(|name| {
                check_blob(&dir_fd, name.as_c_str())
                    .err()
                    .map(|what| Problem {
                        path: dir.join(OsStr::from_bytes(name.to_bytes())),
                        what,
                    })
            })
            .collect();
        report.problems.extend(problems);
        if quick {
            return Ok(()); // packed blobs are their snapshots: contents
        }
        let packed: Vec<Digest> = self
            .packed_records()?
            .into_iter()
            .filter(|d| !self.blob_path(d).is_file())
            .collect();
        report.blobs += packed.len();
        let problems: Vec<Problem> = packed
            .par_iter()
            .filter_map(|digest| {
                self.verify_packed(digest).err().map(|what| Problem {
                    path: self.snapshot_path(digest),
                    what,
                })
            })
            .collect();
        report.problems.extend(problems);
        Ok(())
    }

    fn verify_images(&self, report: &mut VerifyReport) -> Result<()> {
        for (reference, desc) in self.images()? {
            report.images += 1;
            let mut problem = |digest: &Digest, what: String| {
                report.problems.push(Problem {
                    path: self.blob_path(digest),
                    what: format!("{what} (image {reference})"),
                });
            };
            let bytes = match self.read_bounded(&desc.digest, MAX_DOCUMENT_SIZE) {
                Ok(b) => b,
                Err(e) => {
                    problem(&desc.digest, format!("manifest unreadable: {}", chain(&e)));
                    continue;
                }
            };
            let what = format!("manifest {}", desc.digest);
            let manifest = match image::parse_document(&bytes, Some(&desc.media_type), &what) {
                Ok(Document::Manifest(m)) => m,
                Ok(Document::Index(_)) => continue, // children are checked as blobs
                Err(e) => {
                    problem(&desc.digest, format!("manifest does not parse: {e}"));
                    continue;
                }
            };
            let cfg = &manifest.config.digest;
            let config = self
                .read_bounded(cfg, MAX_DOCUMENT_SIZE)
                .and_then(|b| image::parse_config(&b, &format!("config {cfg}")));
            if let Err(e) = config {
                problem(cfg, format!("config unusable: {}", chain(&e)));
            }
            for layer in &manifest.layers {
                match self.info(&layer.digest) {
                    Ok(info) if info.size == layer.size => {}
                    Ok(info) => problem(
                        &layer.digest,
                        format!("layer is {} bytes, manifest says {}", info.size, layer.size),
                    ),
                    Err(e) => problem(&layer.digest, format!("layer missing: {}", chain(&e))),
                }
            }
        }
        Ok(())
    }

    fn verify_snapshots(&self, report: &mut VerifyReport) -> Result<()> {
        let dir = self.snapshots_dir();
        for entry in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".unpack-") {
                continue; // an orphan, listed by `orphans()`
            }
            report.snapshots += 1;
            let valid = format!("sha256:{name}").parse::<Digest>().is_ok();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !valid || !is_dir {
                report.problems.push(Problem {
                    path: entry.path(),
                    what:
                        "not a snapshot: snapshot entries are directories named by a sha256 diff id"
                            .into(),
                });
            }
        }
        Ok(())
    }
}

impl Store {
    /// Every live snapshot with a layer blob, unpacked again and compared.
    fn verify_snapshot_contents(&self, report: &mut VerifyReport, repair: bool) -> Result<()> {
        let live = self.live_set()?;
        // A layer whose blob is already reported corrupt cannot be unpacked
        // to compare: one problem per cause.
        let reported: std::collections::HashSet<std::path::PathBuf> =
            report.problems.iter().map(|p| p.path.clone()).collect();
        let todo: Vec<(Digest, crate::BlobInfo)> = live
            .layers
            .into_iter()
            .filter(|(diff_id, layer)| {
                self.has_snapshot(diff_id)
                    && !self.is_packed(diff_id)
                    && !reported.contains(&self.blob_path(&layer.digest))
            })
            .collect();
        let results: Vec<_> = todo
            .par_iter()
            .map(|(diff_id, layer)| (diff_id, self.check_snapshot(diff_id, layer, repair)))
            .collect();
        for (diff_id, result) in results {
            let path = self.snapshot_path(diff_id);
            match result? {
                Ok(snapshots::Checked::Sound) => report.snapshot_contents += 1,
                Ok(snapshots::Checked::Repaired) => {
                    report.snapshot_contents += 1;
                    report.repaired.push(path);
                }
                Ok(snapshots::Checked::NoBlob) => {}
                Err(what) => {
                    report.snapshot_contents += 1;
                    report.problems.push(Problem { path, what });
                }
            }
        }
        Ok(())
    }
}

/// Re-hashes one file of `blobs/sha256/`. `Err` is the `what` of the
/// [`Problem`] that `system verify` reports (data for the report, not an
/// error that stops it), hence a plain `String`.
fn check_blob(dir: &OwnedFd, name: &CStr) -> std::result::Result<(), String> {
    let text = String::from_utf8_lossy(name.to_bytes());
    let Ok(expected) = format!("sha256:{text}").parse::<Digest>() else {
        return Err("not a blob: the name is not a sha256 digest".into());
    };
    // No symlink is followed, and a FIFO does not block the open: what is
    // not a regular file is found by fstat on the fd.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Err("not a regular file".into()),
        Err(e) => return Err(format!("cannot open: {}", io::Error::from(e))),
    };
    let stat =
        rustix::fs::fstat(&fd).map_err(|e| format!("cannot inspect: {}", io::Error::from(e)))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err("not a regular file".into());
    }
    let mut file = fs::File::from(fd);
    let mut hasher = Sha256Writer::new();
    io::copy(&mut file, &mut hasher).map_err(|e| format!("cannot read: {e}"))?;
    let actual = hasher.finish();
    if actual != expected {
        return Err(format!(
            "content hashes to {actual}, not to its name {expected}"
        ));
    }
    Ok(())
}

/// An error with its causes, on one line.
pub(crate) fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobWrite;

    /// Each kind of bad entry in `blobs/sha256/` is named for what it is,
    /// a FIFO does not hang the check, and a sound blob passes.
    #[test]
    fn quick_verify_names_every_bad_blob_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        store.put_bytes(b"sound").unwrap();
        let blobs = store.blobs_dir();
        let hex = |b: &[u8]| Digest::sha256_of(b).hex();
        std::os::unix::fs::symlink(blobs.join(hex(b"sound")), blobs.join(hex(b"link"))).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            blobs.join(hex(b"fifo")),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        fs::create_dir(blobs.join(hex(b"dir"))).unwrap();
        fs::write(blobs.join(hex(b"claimed")), b"other").unwrap();
        fs::write(blobs.join("README"), b"x").unwrap();

        let report = store
            .verify_with(VerifyOptions {
                quick: true,
                repair: false,
            })
            .unwrap();
        assert_eq!(report.blobs, 6);
        let what = |name: String| {
            let found = report.problems.iter().find(|p| p.path == blobs.join(&name));
            found.map(|p| p.what.clone()).unwrap_or_default()
        };
        for name in [hex(b"link"), hex(b"fifo"), hex(b"dir")] {
            assert_eq!(what(name), "not a regular file");
        }
        assert!(what(hex(b"claimed")).starts_with("content hashes to"));
        assert_eq!(
            what("README".into()),
            "not a blob: the name is not a sha256 digest"
        );
        assert_eq!(report.problems.len(), 5, "{:?}", report.problems);
    }
}
