//! The incremental COPY: a COPY from the context that misses the cache, but
//! ran before in this store as the same op on the same other inputs, takes
//! the files that did not change from its previous snapshot by hardlink,
//! and copies only what is new or changed (issue 19: a one-file edit of a
//! monorepo must not copy the whole selection again).
//!
//! # Why a hardlink into a new snapshot is safe
//!
//! Snapshots are never written once committed. `RUN` steps see them as
//! overlay lower dirs (a write copies the file up; the lower inode is never
//! opened for writing), the copy snapshotter copies their data, and a file
//! op only creates new inodes in the tree it writes: a file in the way is
//! unlinked first, and owner, mode and times are applied to fresh inodes
//! only, never to a linked one. GC renames a snapshot away and unlinks it
//! later, which leaves the other links intact. The layer tar carries no
//! inode number, link count or ctime, and the packer writes hardlink
//! entries only for an inode met twice inside one tree, while a reused
//! file occurs once: the layer is byte for byte the one a full copy makes.
//!
//! # When a file is reused
//!
//! The op's reuse record names its last snapshot (by diff id) and, for each
//! regular file the copy wrote, its path there and the identity of the
//! source file it came from: (device, inode, size, mtime, ctime, mode,
//! owner) and the owner and mode the copy gave it. A file is linked only
//! when its source has exactly that identity now and a single link, and the
//! snapshot's entry at that path is a regular file with the size, owner,
//! mode and mtime the copy would give it. ctime cannot be set by users, so
//! a changed content, mode or xattr is always seen; files whose ctime was
//! too close to the copy to be sure (the stat cache's racy rule) are not
//! recorded. Anything else — no record, its snapshot pruned, a failed link —
//! copies, as a build without a record does.
//!
//! # The layer's hash
//!
//! The record also keeps the checkpoints of the layer's tracked pack
//! (`rbk_store::pack::hash_tracked`): the next pack of the op takes the
//! files linked here as the last snapshot's, and resumes its SHA-256 from
//! the last checkpoint before the first entry that differs, without
//! reading or hashing the files before it ([`Reuse::resume`]).
//!
//! Only file ops on nothing (no base, or `scratch`: no lower dirs) with one
//! copy action from the context, without wildcards or archive extraction,
//! are incremental (see [`Reuse::applies`]): their destination is a plain
//! directory on the store's filesystem, where links can be made, and every
//! destination path is written once.
//!
//! # Record format
//!
//! `<store>/db/copy-reuse/<blake3 hex of the reuse key>`, little-endian:
//!
//! ```text
//! "RBKCOPYR" | version u32 = 2 | diff id (71 bytes, "sha256:<hex>") |
//! blob size u64 | count u64 |
//! count × ( path_len u32 | path | dev ino size mtime_ns ctime_ns u64 ×5 |
//!           st_mode st_uid st_gid mode uid gid u32 ×6 ) |
//! checkpoints u64 |
//! checkpoints × ( entries offset u64 ×2 | sha256 state u32 ×8 | chain [32] ) |
//! blake3 of all preceding bytes [32]
//! ```
//!
//! Anything that does not decode exactly is no record. A record is written
//! without fsync: a torn one fails its checksum, and an old one still names
//! an old snapshot with that snapshot's files.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use foldhash::{HashMap, HashMapExt};
use rbk_graph::{FileAction, FileOp};
use rbk_store::pack::{Checkpoint, Resume};
use rbk_store::{Digest, Layer};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

use super::batch::{self, FileJob};
use super::meta::Meta;
use crate::pathglob::has_wildcard;
use crate::sealed;

const MAGIC: &[u8; 8] = b"RBKCOPYR";
const VERSION: u32 = 2;
/// "sha256:" and 64 hex digits.
const DIGEST_LEN: usize = 71;
/// Bytes of one entry besides its path.
const ENTRY_FIXED: usize = 4 + 8 * 5 + 4 * 6;
/// Bytes of one checkpoint.
const CHECKPOINT_LEN: usize = 8 * 2 + 4 * 8 + 32;

/// Inside the previous snapshot only, through no symlink.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What decides whether a copied file can be taken from the last snapshot:
/// its source's stat and what the copy gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    st_mode: u32,
    st_uid: u32,
    st_gid: u32,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Ident {
    // The `as` casts only widen: `Stat`'s field types differ by architecture.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &Stat, meta: Meta) -> Ident {
        Ident {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: u64::try_from(st.st_size).unwrap_or(u64::MAX),
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            st_mode: st.st_mode as u32,
            st_uid: st.st_uid,
            st_gid: st.st_gid,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
        }
    }

    /// Whether `st`, a snapshot's entry, is what copying this file made.
    #[allow(clippy::unnecessary_cast)]
    fn made(&self, st: &Stat) -> bool {
        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_size as u64 == self.size
            && st.st_mode as u32 & 0o7777 == self.mode & 0o7777
            && (st.st_uid, st.st_gid) == (self.uid, self.gid)
            && ns(st.st_mtime as i64, st.st_mtime_nsec as i64) == self.mtime_ns
    }
}

fn ns(s: i64, n: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(n)
}

/// The last snapshot of an op and the files it may give.
struct Prev {
    root: OwnedFd,
    files: HashMap<Box<[u8]>, Ident>,
    /// The checkpoints of its layer's pack.
    checkpoints: Vec<Checkpoint>,
}

/// One incremental copy: what it may link from the last snapshot, and what
/// it records for the next one.
pub(crate) struct Reuse {
    file: PathBuf,
    prev: Option<Prev>,
    /// When the copy started, for the racy-ctime rule.
    start_ns: i64,
    seen: Mutex<Seen>,
}

/// The last layer's checkpoints and the inodes linked from its snapshot.
pub(crate) struct Linked<'a> {
    checkpoints: &'a [Checkpoint],
    inodes: HashSet<(u64, u64)>,
}

impl Linked<'_> {
    /// The pack's view of it.
    pub(crate) fn as_resume(&self) -> Resume<'_> {
        Resume {
            checkpoints: self.checkpoints,
            linked: &self.inodes,
        }
    }
}

/// What the copy wrote: the files to record, and the inodes (device,
/// number) it linked from the last snapshot.
#[derive(Default)]
struct Seen {
    entries: Vec<Entry>,
    linked: Vec<(u64, u64)>,
}

impl Reuse {
    /// Whether `op`, writing into a plain directory (its base has no lower
    /// dirs), is a copy this module handles (see the module docs).
    pub(crate) fn applies(op: &FileOp) -> bool {
        let [FileAction::Copy(copy)] = op.actions.as_slice() else {
            return false;
        };
        let wildcard = copy.allow_wildcard && has_wildcard(&copy.src);
        !(copy.auto_extract || wildcard)
    }

    /// Reads the record `file`. `snapshot` gives the directory of a
    /// recorded layer when its snapshot is still in the store; a record
    /// whose snapshot is gone is deleted, and the copy then copies all.
    pub(crate) fn load(file: PathBuf, snapshot: impl FnOnce(&Layer) -> Option<PathBuf>) -> Reuse {
        let prev = sealed::read_file(&file)
            .and_then(|b| decode(&b))
            .and_then(|(layer, files, checkpoints)| match snapshot(&layer) {
                Some(dir) => Some((dir, files, checkpoints)),
                None => {
                    let _ = fs::remove_file(&file);
                    None
                }
            })
            .and_then(|(dir, files, checkpoints)| {
                let root = crate::open_root(&dir).ok()?;
                Some(Prev {
                    root,
                    files,
                    checkpoints,
                })
            });
        Reuse {
            file,
            prev,
            start_ns: now_ns(),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Copies one queued file, or links it from the last snapshot.
    pub(crate) fn copy(&self, job: &FileJob) -> io::Result<()> {
        let ident = Ident::of(&job.st, job.meta);
        let path = job.drel.as_os_str().as_bytes();
        let single = job.st.st_nlink == 1;
        let linked = match single {
            true => self.link(path, &ident, job).unwrap_or(None),
            false => None,
        };
        if linked.is_none() {
            batch::copy_file(job)?;
        }
        let record = single && !crate::context::racy(ident.ctime_ns, self.start_ns);
        if record || linked.is_some() {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if record {
                seen.entries.push((path.into(), ident));
            }
            seen.linked.extend(linked);
        }
        Ok(())
    }

    /// Links `path` of the last snapshot in place of `job` when it is what
    /// copying the file would make, and returns its inode; `None` when it
    /// is not.
    fn link(&self, path: &[u8], ident: &Ident, job: &FileJob) -> io::Result<Option<(u64, u64)>> {
        let Some(prev) = &self.prev else {
            return Ok(None);
        };
        if prev.files.get(path) != Some(ident) {
            return Ok(None);
        }
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        // The files of one destination directory share their parent path:
        // it is resolved in the last snapshot once, and reused for a file
        // only when its parent path is that one.
        let cached = job.ddir.prev.get_or_init(|| {
            let fd = open_dir(&prev.root, dir).ok()?;
            Some((dir.into(), fd))
        });
        let uncached;
        let parent = match cached {
            Some((at, fd)) if **at == *dir => fd,
            _ => {
                uncached = open_dir(&prev.root, dir)?;
                &uncached
            }
        };
        let name = OsStr::from_bytes(name);
        let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if !ident.made(&st) {
            return Ok(None);
        }
        if !job.ddir.fresh {
            super::tree::remove_all(job.ddir.fd.as_fd(), &job.dname)?;
        }
        rfs::linkat(parent, name, &job.ddir.fd, &job.dname, AtFlags::empty())?;
        // The snapshot is never written, so the name still has the inode
        // just inspected: the one now linked.
        #[allow(clippy::unnecessary_cast)] // the types differ by architecture
        Ok(Some((st.st_dev as u64, st.st_ino as u64)))
    }

    /// What the pack of the new layer may resume from (see the module
    /// docs): the last layer's checkpoints, and the inodes linked from its
    /// snapshot. `None` without a last snapshot or checkpoints.
    pub(crate) fn resume(&self) -> Option<Linked<'_>> {
        let prev = self.prev.as_ref().filter(|p| !p.checkpoints.is_empty())?;
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        Some(Linked {
            checkpoints: &prev.checkpoints,
            inodes: seen.linked.iter().copied().collect(),
        })
    }

    /// Records what this copy wrote, in the snapshot of `layer` whose pack
    /// made `checkpoints`, for the next run of the op. A path written twice
    /// is left out.
    pub(crate) fn save(&self, layer: &Layer, checkpoints: &[Checkpoint]) -> io::Result<()> {
        let mut seen =
            std::mem::take(&mut self.seen.lock().unwrap_or_else(|e| e.into_inner()).entries);
        seen.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let kept: Vec<&Entry> = seen
            .chunk_by(|a, b| a.0 == b.0)
            .filter_map(|group| match group {
                [one] => Some(one),
                _ => None,
            })
            .collect();
        let dir = self.file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), now_ns()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&encode(layer, &kept, checkpoints)));
        let renamed = written.and_then(|()| fs::rename(&tmp, &self.file));
        if renamed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        renamed
    }
}

/// Directory `dir` (relative, empty for the root) of the last snapshot.
fn open_dir(root: &OwnedFd, dir: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = if dir.is_empty() { &b"."[..] } else { dir };
    Ok(rfs::openat2(
        root,
        OsStr::from_bytes(dir),
        flags,
        Mode::empty(),
        BENEATH,
    )?)
}

fn now_ns() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

fn encode(layer: &Layer, entries: &[&Entry], checkpoints: &[Checkpoint]) -> Vec<u8> {
    let size = 124 + entries.len() * (ENTRY_FIXED + 48) + checkpoints.len() * CHECKPOINT_LEN;
    let mut out = sealed::start(MAGIC, VERSION, size);
    out.extend_from_slice(layer.diff_id.to_string().as_bytes());
    out.extend_from_slice(&layer.blob.size.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, i) in entries.iter().copied() {
        // Paths come from directory walks, far below 4 GiB.
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        for v in [i.dev, i.ino, i.size, i.mtime_ns as u64, i.ctime_ns as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [i.st_mode, i.st_uid, i.st_gid, i.mode, i.uid, i.gid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&(checkpoints.len() as u64).to_le_bytes());
    for cp in checkpoints {
        out.extend_from_slice(&cp.entries.to_le_bytes());
        out.extend_from_slice(&cp.offset.to_le_bytes());
        for word in cp.state {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&cp.chain);
    }
    sealed::seal(out)
}

type Decoded = (Layer, HashMap<Box<[u8]>, Ident>, Vec<Checkpoint>);
/// One recorded file: its path in the snapshot and where it came from.
type Entry = (Box<[u8]>, Ident);

fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut r = sealed::open(bytes, MAGIC, VERSION)?;
    let diff_id: Digest = std::str::from_utf8(r.take(DIGEST_LEN)?)
        .ok()?
        .parse()
        .ok()?;
    let size = r.u64()?;
    let layer = Layer {
        diff_id,
        blob: rbk_store::Descriptor {
            media_type: crate::layer::LAYER_TAR.into(),
            digest: diff_id,
            size,
            annotations: Default::default(),
        },
    };
    let count = usize::try_from(r.u64()?).ok()?;
    if count > r.0.len() / ENTRY_FIXED {
        return None;
    }
    let mut files = HashMap::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(r.u32()?).ok()?;
        let path: Box<[u8]> = r.take(len)?.into();
        let ident = Ident {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            st_mode: r.u32()?,
            st_uid: r.u32()?,
            st_gid: r.u32()?,
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
        };
        files.insert(path, ident);
    }
    let count = usize::try_from(r.u64()?).ok()?;
    if count > r.0.len() / CHECKPOINT_LEN {
        return None;
    }
    let mut checkpoints = Vec::with_capacity(count);
    for _ in 0..count {
        let (entries, offset) = (r.u64()?, r.u64()?);
        let mut state = [0u32; 8];
        for word in &mut state {
            *word = r.u32()?;
        }
        let chain = r.take(32)?.try_into().ok()?;
        checkpoints.push(Checkpoint {
            entries,
            offset,
            state,
            chain,
        });
    }
    r.0.is_empty().then_some((layer, files, checkpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoints() -> Vec<Checkpoint> {
        (1..3)
            .map(|i| Checkpoint {
                entries: 64 * i,
                offset: 512 * 100 * i,
                state: [i as u32; 8],
                chain: [i as u8; 32],
            })
            .collect()
    }

    fn sample() -> (Layer, Vec<Entry>) {
        let ident = Ident {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: -4,
            ctime_ns: 5,
            st_mode: 0o100644,
            st_uid: 6,
            st_gid: 7,
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let diff_id = Digest::sha256_of(b"layer");
        let layer = Layer {
            diff_id,
            blob: rbk_store::Descriptor {
                media_type: crate::layer::LAYER_TAR.into(),
                digest: diff_id,
                size: 2048,
                annotations: Default::default(),
            },
        };
        let entries = vec![
            (b"a/b".to_vec().into(), ident),
            (b"\xff".to_vec().into(), Ident { ino: 9, ..ident }),
        ];
        (layer, entries)
    }

    #[test]
    fn round_trips() {
        let (layer, entries) = sample();
        let entries_ref = entries.iter().collect::<Vec<_>>();
        let (back, files, cps) = decode(&encode(&layer, &entries_ref, &checkpoints())).unwrap();
        assert_eq!(back, layer);
        assert_eq!(files, entries.into_iter().collect());
        assert_eq!(cps, checkpoints());
    }

    #[test]
    fn any_truncation_or_bit_flip_is_rejected() {
        let (layer, entries) = sample();
        let bytes = encode(&layer, &entries.iter().collect::<Vec<_>>(), &checkpoints());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none(), "prefix of {len} bytes");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_none(), "flipped byte {i}");
        }
    }
}
