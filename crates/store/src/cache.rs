//! The build-cache index: cache key → the filesystem a vertex produced.
//!
//! A key is a digest the executor computes from everything that determines a
//! vertex's output (its op, its inputs' content). A record lists the layers
//! of the result, lowest first, each with its blob; GC keeps those blobs and
//! snapshots alive while the record exists. Records live one per file at
//! `db/cache/<key hex>.json`, written atomically, so concurrent builds never
//! see half a record and a corrupt record is only a cache miss (docs/security.md
//! F6: the cache index may be reset, content never).

use std::fs;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_small, write_atomic};
use crate::{BlobRead, Descriptor, Digest, Error, Result, Store};

/// One layer of a filesystem: its uncompressed digest and its stored blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the uncompressed tar (the image config's `diff_ids` entry,
    /// and the name of its snapshot).
    pub diff_id: Digest,
    /// The blob as stored (compressed or not).
    pub blob: Descriptor,
}

/// What the cache remembers for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The result's layers, lowest first.
    pub layers: Vec<Layer>,
    /// Seconds since the epoch when the record was written or last used.
    #[serde(default)]
    pub last_used: u64,
    /// A description of the step, for `system df -v` and debugging.
    #[serde(default)]
    pub description: String,
}

impl CacheRecord {
    /// A record for `layers`, stamped now.
    pub fn new(layers: Vec<Layer>, description: impl Into<String>) -> Self {
        CacheRecord {
            layers,
            last_used: now(),
            description: description.into(),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Store {
    fn cache_dir(&self) -> std::path::PathBuf {
        self.db_dir().join("cache")
    }

    /// The record for `key`, if there is a usable one: present, parseable,
    /// and with every blob and snapshot it names still in the store.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>> {
        let path = self.cache_dir().join(format!("{}.json", key.hex()));
        let bytes = match read_small(&path, 1 << 20) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(record) = serde_json::from_slice::<CacheRecord>(&bytes) else {
            return Ok(None);
        };
        let complete = record.layers.iter().all(|l| {
            self.has_snapshot(&l.diff_id) && matches!(self.exists(&l.blob.digest), Ok(true))
        });
        Ok(complete.then_some(record))
    }

    /// Records `record` under `key`, replacing any previous record.
    pub fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<()> {
        let dir = self.cache_dir();
        fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
        let bytes = serde_json::to_vec(record).map_err(|e| Error::InvalidDocument {
            what: "cache record".into(),
            reason: e.to_string(),
        })?;
        write_atomic(&dir, &format!("{}.json", key.hex()), &bytes)
    }

    /// Every readable record, with its key (for GC roots and `system df`).
    pub fn cache_records(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        let dir = self.cache_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(key) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            let Ok(bytes) = read_small(&entry.path(), 1 << 20) else {
                continue;
            };
            if let Ok(record) = serde_json::from_slice(&bytes) {
                out.push((key, record));
            }
        }
        out.sort_by_key(|a| a.0);
        Ok(out)
    }

    /// Forgets the record for `key` (a missing record is not an error).
    pub fn cache_remove(&self, key: &Digest) -> Result<()> {
        let path = self.cache_dir().join(format!("{}.json", key.hex()));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobWrite;

    #[test]
    fn records_round_trip_and_need_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let blob = store.put_bytes(b"layer").unwrap();
        let layer = Layer {
            diff_id: blob.digest,
            blob: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: blob.digest,
                size: 5,
                annotations: Default::default(),
            },
        };
        let key = Digest::sha256_of(b"key");
        store
            .cache_put(&key, &CacheRecord::new(vec![layer.clone()], "RUN x"))
            .unwrap();
        // The snapshot is missing: the record is not usable.
        assert_eq!(store.cache_get(&key).unwrap(), None);
        fs::create_dir(store.snapshot_path(&layer.diff_id)).unwrap();
        let got = store.cache_get(&key).unwrap().unwrap();
        assert_eq!(got.layers, vec![layer]);
        assert_eq!(store.cache_records().unwrap().len(), 1);
        store.cache_remove(&key).unwrap();
        assert_eq!(store.cache_get(&key).unwrap(), None);
    }

    #[test]
    fn a_corrupt_record_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let key = Digest::sha256_of(b"key");
        fs::create_dir_all(store.cache_dir()).unwrap();
        fs::write(
            store.cache_dir().join(format!("{}.json", key.hex())),
            "{garbage",
        )
        .unwrap();
        assert_eq!(store.cache_get(&key).unwrap(), None);
    }
}
