//! The stat cache: content hashes of a context's files remembered across
//! builds, so a warm rescan only stats.
//!
//! A hash is reused only when the file's (device, inode, size, mtime,
//! ctime, mode) are all unchanged. ctime cannot be set by users, so a
//! rewrite that restores the mtime is still caught, and files changed too
//! close to a scan to be sure are never cached (see `scan.rs`).
//!
//! File format (little-endian), `<store>/db/statcache/<blake3 hex of the
//! canonical context path>`:
//!
//! ```text
//! "RBKSTATC" | version u32 = 1 | count u64 |
//! count × ( path_len u32 | path | dev u64 | ino u64 | size u64 |
//!           mtime_ns i64 | ctime_ns i64 | st_mode u32 | blake3 [32] ) |
//! blake3 of all preceding bytes [32]
//! ```
//!
//! Anything that does not decode exactly (bad magic, version, lengths or
//! checksum) is treated as an empty cache.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use foldhash::{HashMap, HashMapExt, HashSet};
use rustix::fs::Stat;

use crate::sealed;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"RBKSTATC";
const VERSION: u32 = 1;
/// Bytes of one record besides its path.
const RECORD_FIXED: usize = 4 + 8 * 5 + 4 + 32;

/// The stat fields that decide whether a cached hash is still valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) ctime_ns: i64,
    /// The full `st_mode`, type bits included.
    pub(super) mode: u32,
}

impl Meta {
    // The `as` casts only widen: `Stat`'s field types differ by architecture.
    #[allow(clippy::unnecessary_cast)]
    pub(super) fn of(st: &Stat) -> Meta {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            mode: st.st_mode as u32,
        }
    }
}

/// One cached file: the stat it had when hashed, and the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cached {
    pub(super) meta: Meta,
    pub(super) hash: [u8; 32],
}

/// Content hashes of one context directory's files from earlier scans, kept
/// in the store. Pass it to [`ContextIndex::scan`](super::ContextIndex::scan),
/// then [`save`](StatCache::save) it.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    entries: HashMap<Box<[u8]>, Cached>,
    /// Whether `entries` differ from what the file holds.
    dirty: bool,
}

impl StatCache {
    /// Loads the cache for context directory `context` from
    /// `<store root>/db/statcache/<blake3 of the canonical context path>`.
    /// A missing, unreadable or corrupt file gives an empty cache.
    pub fn load(store: &dyn crate::SolveStore, context: &Path) -> StatCache {
        StatCache::load_scoped(store, context, &[])
    }

    /// Loads the cache of the part `scope` of `context` (the paths a
    /// [`Within`](crate::Within) filter keeps; empty for all of it). A
    /// cache keeps exactly the records of its last scan, so each part has
    /// its own file: a build of one subtree does not drop the records of a
    /// build of the whole context.
    pub fn load_scoped(
        store: &dyn crate::SolveStore,
        context: &Path,
        scope: &[String],
    ) -> StatCache {
        let canonical = fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
        let mut hasher = blake3::Hasher::new();
        hasher.update(canonical.as_os_str().as_bytes());
        for path in scope {
            hasher.update(b"\0");
            hasher.update(path.as_bytes());
        }
        let name = hasher.finalize().to_hex();
        let file = store.db_dir().join("statcache").join(name.as_str());
        let entries = sealed::read_file(&file).and_then(|b| decode(&b));
        StatCache {
            file,
            dirty: entries.is_none(),
            entries: entries.unwrap_or_default(),
        }
    }

    /// Writes the cache back atomically (temporary file, fsync, rename,
    /// directory fsync). It holds exactly the files of the last scan whose
    /// hash is known. Does nothing when nothing changed since the last save.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let dir = self.file.parent().unwrap_or(Path::new("."));
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(Error::io("creating directory", dir, e));
            }
            _ => {}
        }
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        let written = write_synced(&tmp, &encode(&self.entries));
        let renamed = written.and_then(|()| fs::rename(&tmp, &self.file));
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("writing stat cache", &self.file, e));
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing directory", dir, e))?;
        self.dirty = false;
        Ok(())
    }

    /// How many files the cache holds.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cached hash of `path` if its stat is still `meta`.
    pub(super) fn lookup(&self, path: &[u8], meta: &Meta) -> Option<[u8; 32]> {
        self.entries
            .get(path)
            .filter(|c| c.meta == *meta)
            .map(|c| c.hash)
    }

    /// Replaces the contents with the records of a scan (unique paths).
    /// The map is updated in place: an edit of one file in a monorepo
    /// changes one record of 300,000, and building a second map of them
    /// all doubled the cache's memory while the copy ran beside it.
    pub(super) fn replace<'a>(
        &mut self,
        records: impl Iterator<Item = (&'a [u8], Cached)> + Clone,
    ) {
        let mut count = 0;
        for (path, record) in records.clone() {
            count += 1;
            match self.entries.get_mut(path) {
                Some(old) if *old == record => {}
                Some(old) => {
                    *old = record;
                    self.dirty = true;
                }
                None => {
                    self.entries.insert(path.into(), record);
                    self.dirty = true;
                }
            }
        }
        // Paths are unique: more entries than records means some files
        // are gone from the scan.
        if self.entries.len() > count {
            let scanned: HashSet<&[u8]> = records.map(|(path, _)| path).collect();
            self.entries.retain(|path, _| scanned.contains(&**path));
            self.dirty = true;
        }
    }
}

/// A name part that differs between calls in one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn encode(entries: &HashMap<Box<[u8]>, Cached>) -> Vec<u8> {
    let mut out = sealed::start(MAGIC, VERSION, 8 + entries.len() * (RECORD_FIXED + 32));
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, c) in entries {
        // Paths come from directory entries, far below 4 GiB.
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        let m = &c.meta;
        for v in [m.dev, m.ino, m.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&m.mtime_ns.to_le_bytes());
        out.extend_from_slice(&m.ctime_ns.to_le_bytes());
        out.extend_from_slice(&m.mode.to_le_bytes());
        out.extend_from_slice(&c.hash);
    }
    sealed::seal(out)
}

fn decode(bytes: &[u8]) -> Option<HashMap<Box<[u8]>, Cached>> {
    let mut r = sealed::open(bytes, MAGIC, VERSION)?;
    let count = usize::try_from(r.u64()?).ok()?;
    if count > r.0.len() / RECORD_FIXED {
        return None;
    }
    let mut entries = HashMap::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(r.u32()?).ok()?;
        let path: Box<[u8]> = r.take(len)?.into();
        let meta = Meta {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            mode: r.u32()?,
        };
        let hash = r.take(32)?.try_into().ok()?;
        entries.insert(path, Cached { meta, hash });
    }
    r.0.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HashMap<Box<[u8]>, Cached> {
        let meta = Meta {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: -4,
            ctime_ns: 5,
            mode: 0o100644,
        };
        let mut map = HashMap::new();
        map.insert(
            b"a/b".to_vec().into(),
            Cached {
                meta,
                hash: [7; 32],
            },
        );
        map.insert(
            b"\xff".to_vec().into(),
            Cached {
                meta,
                hash: [8; 32],
            },
        );
        map
    }

    #[test]
    fn round_trips() {
        let map = sample();
        assert_eq!(decode(&encode(&map)), Some(map));
        assert_eq!(decode(&encode(&HashMap::new())), Some(HashMap::new()));
    }

    #[test]
    fn any_truncation_or_bit_flip_is_rejected() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), None, "prefix of {len} bytes");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(decode(&bad), None, "flipped byte {i}");
        }
    }

    /// A scan's records replace the cache's: unchanged ones keep it clean,
    /// a changed or new record is taken, and a file the scan no longer has
    /// is dropped.
    #[test]
    fn replace_keeps_exactly_the_scans_records() {
        let mut cache = StatCache {
            file: PathBuf::from("unused"),
            entries: sample(),
            dirty: false,
        };
        let records = |cache: &StatCache| -> Vec<(Box<[u8]>, Cached)> {
            cache.entries.iter().map(|(p, c)| (p.clone(), *c)).collect()
        };
        let same = records(&cache);
        cache.replace(same.iter().map(|(p, c)| (&**p, *c)));
        assert!(!cache.dirty, "every record unchanged");
        assert_eq!(cache.entries, sample());

        let mut changed = same.clone();
        changed[0].1.hash = [9; 32];
        changed.push((b"new".to_vec().into(), changed[0].1));
        cache.replace(changed.iter().map(|(p, c)| (&**p, *c)));
        assert!(cache.dirty);
        assert_eq!(cache.entries.len(), 3);
        assert_eq!(cache.entries[&changed[0].0].hash, [9; 32]);

        cache.dirty = false;
        let fewer = &changed[1..];
        cache.replace(fewer.iter().map(|(p, c)| (&**p, *c)));
        assert!(cache.dirty, "a file left the scan");
        let want: HashMap<Box<[u8]>, Cached> = fewer.iter().cloned().collect();
        assert_eq!(cache.entries, want);
    }
}
