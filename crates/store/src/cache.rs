//! The build-cache index: cache key → the filesystem a vertex produced.
//!
//! A key is a digest the executor computes from everything that determines a
//! vertex's output (its op, its inputs' content). A record lists the layers
//! of the result, lowest first, each with its blob; GC keeps those blobs and
//! snapshots alive while the record exists.
//!
//! # The index file
//!
//! Records live in one SQLite database, `db/cache.sqlite` (through
//! rusqlite, SQLite compiled in), one row per key: the record as JSON plus
//! the columns `system df` sums without parsing it (the top layer's diff id
//! and blob, the last use, the description). It replaced a file per record
//! (`db/cache/<key hex>.json`), which made every command that counts or
//! sweeps the cache read as many files as there are records — 1.5 s for
//! `system df` over 40,000 records (issue 19).
//!
//! - **Concurrent processes** share the file through SQLite's own locking
//!   (POSIX locks, released when a process dies, SIGKILL included); a
//!   reader or writer waits up to [`BUSY_TIMEOUT`] for a writer's commit
//!   (transactions are short: one record, or one prune's batch).
//! - **Crash safety**: every change is one transaction with a rollback
//!   journal (`journal_mode=TRUNCATE`, not WAL, whose shared-memory file
//!   must grow even to read: on a full disk the index could not be read),
//!   committed with `synchronous=FULL`, so a process
//!   killed at any instant leaves the old or the new record, as the atomic
//!   file writes did.
//! - **Damage**: a record whose JSON does not parse is a cache miss, and a
//!   file that is not a database at all is renamed to `cache.sqlite.damaged`
//!   (a backup; the previous one is replaced) and the index starts empty
//!   (docs/security.md F6: the cache index may be reset, content never).
//! - **Upgrade**: a store written by an older rbk still has `db/cache/`; the
//!   first process that opens the index imports its records (keeping any
//!   row the database already has) and then moves the directory to the
//!   trash. An import cut short is simply done again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::fsutil::read_small;
use crate::{BlobRead, Descriptor, Digest, Error, Result, Store};

/// How long a write waits for another process's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const INDEX_FILE: &str = "cache.sqlite";

/// The schema's version, kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

/// `records` holds the records; `tops` (one row per distinct top layer,
/// with how many records end in it) and `totals` (the record count) are
/// kept by triggers in the same transaction as each change, so `system df`
/// reads the distinct layers and one count instead of every record.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    key TEXT PRIMARY KEY NOT NULL,
    record TEXT NOT NULL,
    top_diff_id TEXT,
    top_digest TEXT,
    top_size INTEGER,
    top_media_type TEXT,
    last_used INTEGER NOT NULL,
    description TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tops (
    diff_id TEXT PRIMARY KEY NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    records INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    records INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS records_insert AFTER INSERT ON records BEGIN
    UPDATE totals SET records = records + 1 WHERE id = 0;
    INSERT INTO tops (diff_id, digest, size, media_type, records)
        SELECT NEW.top_diff_id, NEW.top_digest, NEW.top_size, NEW.top_media_type, 1
        WHERE NEW.top_diff_id IS NOT NULL
        ON CONFLICT (diff_id) DO UPDATE SET records = records + 1;
END;
CREATE TRIGGER IF NOT EXISTS records_delete AFTER DELETE ON records BEGIN
    UPDATE totals SET records = records - 1 WHERE id = 0;
    UPDATE tops SET records = records - 1 WHERE diff_id = OLD.top_diff_id;
    DELETE FROM tops WHERE diff_id = OLD.top_diff_id AND records <= 0;
END;
CREATE TRIGGER IF NOT EXISTS records_update AFTER UPDATE ON records BEGIN
    UPDATE tops SET records = records - 1 WHERE diff_id = OLD.top_diff_id;
    DELETE FROM tops WHERE diff_id = OLD.top_diff_id AND records <= 0;
    INSERT INTO tops (diff_id, digest, size, media_type, records)
        SELECT NEW.top_diff_id, NEW.top_digest, NEW.top_size, NEW.top_media_type, 1
        WHERE NEW.top_diff_id IS NOT NULL
        ON CONFLICT (diff_id) DO UPDATE SET records = records + 1;
END;
";

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

/// A record's summary row, read without parsing the record (`system df -v`).
#[derive(Clone, Debug)]
pub struct CacheRow {
    /// The cache key.
    pub key: Digest,
    /// The layer the step produced (the record's top layer), if any.
    pub top: Option<Layer>,
    /// Seconds since the epoch of its last use.
    pub last_used: u64,
    /// The step it records.
    pub description: String,
}

/// The process's open connection to the index, shared by a store's clones.
#[derive(Debug, Default, Clone)]
pub(crate) struct CacheIndex(Arc<Mutex<Option<Connection>>>);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether SQLite says the file is not a (sound) database.
fn is_damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // A rollback journal, not WAL: WAL's shared-memory file grows on
    // reads, so on a full disk `system verify` and prune could not even
    // read the index (found by build_faults' full-disk test).
    let _mode: String = conn.query_row("PRAGMA journal_mode = TRUNCATE", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Created once (user_version 1 marks it), so opening an existing index
    // writes nothing.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(conn)
}

fn to_sql_error(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Inserts or replaces (`replace`) the row of `key`.
fn put_row(
    conn: &Connection,
    key: &Digest,
    record: &CacheRecord,
    replace: bool,
) -> rusqlite::Result<()> {
    let json = serde_json::to_string(record).map_err(to_sql_error)?;
    let top = record.layers.last();
    let sql = if replace {
        "INSERT INTO records (key, record, top_diff_id, top_digest, top_size, top_media_type,
             last_used, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key) DO UPDATE SET record = excluded.record,
             top_diff_id = excluded.top_diff_id, top_digest = excluded.top_digest,
             top_size = excluded.top_size, top_media_type = excluded.top_media_type,
             last_used = excluded.last_used, description = excluded.description"
    } else {
        "INSERT INTO records (key, record, top_diff_id, top_digest, top_size, top_media_type,
             last_used, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key) DO NOTHING"
    };
    conn.prepare_cached(sql)?.execute(params![
        key.to_string(),
        json,
        top.map(|l| l.diff_id.to_string()),
        top.map(|l| l.blob.digest.to_string()),
        top.map(|l| l.blob.size as i64),
        top.map(|l| l.blob.media_type.as_str()),
        record.last_used as i64,
        record.description,
    ])?;
    Ok(())
}

fn digest_column(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Digest>> {
    // Borrowed, not copied into a String: `system df` reads one per top layer.
    let text = row.get_ref(i)?.as_str_or_null().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(text.and_then(|t| t.parse().ok()))
}

fn layer(
    diff_id: Option<Digest>,
    digest: Option<Digest>,
    size: Option<i64>,
    media_type: Option<String>,
) -> Option<Layer> {
    Some(Layer {
        diff_id: diff_id?,
        blob: Descriptor {
            media_type: media_type?,
            digest: digest?,
            size: u64::try_from(size?).ok()?,
            annotations: BTreeMap::new(),
        },
    })
}

impl Store {
    fn cache_index_path(&self) -> PathBuf {
        self.db_dir().join(INDEX_FILE)
    }

    /// Runs `f` on this process's connection to the index, opening it
    /// first if needed.
    fn with_cache_index<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut guard: MutexGuard<'_, Option<Connection>> =
            self.cache_index.0.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.open_cache_index()?);
        }
        let conn = guard.as_mut().expect("opened above");
        f(conn).map_err(|source| Error::CacheIndex {
            path: self.cache_index_path(),
            source,
        })
    }

    fn open_cache_index(&self) -> Result<Connection> {
        let path = self.cache_index_path();
        let index_error = |source| Error::CacheIndex {
            path: path.clone(),
            source,
        };
        let mut conn = match connect(&path) {
            Err(e) if is_damaged(&e) => {
                // Not a database: the index may be reset, content never.
                // The damaged files are kept beside it (the last damage
                // only, so repeated damage cannot fill the disk) for
                // whoever wants to look at them.
                for suffix in ["", "-journal", "-wal", "-shm"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    if file.exists() {
                        let backup = PathBuf::from(format!("{}.damaged", file.display()));
                        fs::rename(&file, &backup)
                            .map_err(Error::io("backing up the damaged index", &file))?;
                    }
                }
                connect(&path).map_err(index_error)?
            }
            other => other.map_err(index_error)?,
        };
        self.import_record_files(&mut conn)?;
        Ok(conn)
    }

    /// Imports the records of an older store's `db/cache/` (one JSON file
    /// per key), keeping the rows the index already has, then moves the
    /// directory to the trash.
    fn import_record_files(&self, conn: &mut Connection) -> Result<()> {
        let dir = self.db_dir().join("cache");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut records = Vec::new();
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
            if let Ok(record) = serde_json::from_slice::<CacheRecord>(&bytes) {
                records.push((key, record));
            }
        }
        let path = self.cache_index_path();
        let index_error = |source| Error::CacheIndex {
            path: path.clone(),
            source,
        };
        let tx = conn.transaction().map_err(index_error)?;
        for (key, record) in &records {
            put_row(&tx, key, record, false).map_err(index_error)?;
        }
        tx.commit().map_err(index_error)?;
        // Another process may have moved it already.
        match self.move_to_trash(&dir) {
            Err(_) if dir.exists() => Err(Error::io("moving to trash", &dir)(
                std::io::Error::other("the directory stayed in place"),
            )),
            _ => Ok(()),
        }
    }

    /// The record for `key`, if there is a usable one: present, parseable,
    /// and with every blob and snapshot it names still in the store.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>> {
        let json: Option<String> = self.with_cache_index(|c| {
            c.prepare_cached("SELECT record FROM records WHERE key = ?1")?
                .query_row([key.to_string()], |r| r.get(0))
                .optional()
        })?;
        let Some(record) = json.and_then(|j| serde_json::from_str::<CacheRecord>(&j).ok()) else {
            return Ok(None);
        };
        let complete = record.layers.iter().all(|l| {
            self.has_snapshot(&l.diff_id) && matches!(self.exists(&l.blob.digest), Ok(true))
        });
        Ok(complete.then_some(record))
    }

    /// Records `record` under `key`, replacing any previous record.
    pub fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<()> {
        self.with_cache_index(|c| put_row(c, key, record, true))
    }

    /// Records each `(key, record)`, replacing previous records, in one
    /// transaction (all or none).
    pub fn cache_put_all(&self, records: &[(Digest, CacheRecord)]) -> Result<()> {
        self.with_cache_index(|c| {
            let tx = c.transaction()?;
            for (key, record) in records {
                put_row(&tx, key, record, true)?;
            }
            tx.commit()
        })
    }

    /// Every readable record, with its key, sorted by key (for GC roots and
    /// prune).
    pub fn cache_records(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        self.with_cache_index(|c| {
            let mut statement = c.prepare_cached("SELECT key, record FROM records ORDER BY key")?;
            let rows =
                statement.query_map([], |r| Ok((digest_column(r, 0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (key, json) = row?;
                let Some(key) = key else { continue };
                if let Ok(record) = serde_json::from_str(&json) {
                    out.push((key, record));
                }
            }
            Ok(out)
        })
    }

    /// Every record's summary row, sorted by key, without parsing the
    /// records (`system df -v`).
    pub fn cache_rows(&self) -> Result<Vec<CacheRow>> {
        self.with_cache_index(|c| {
            let mut statement = c.prepare_cached(
                "SELECT key, top_diff_id, top_digest, top_size, top_media_type, last_used,
                     description FROM records ORDER BY key",
            )?;
            let rows = statement.query_map([], |r| {
                let Some(key) = digest_column(r, 0)? else {
                    return Ok(None);
                };
                Ok(Some(CacheRow {
                    key,
                    top: layer(
                        digest_column(r, 1)?,
                        digest_column(r, 2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ),
                    last_used: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    description: r.get(6)?,
                }))
            })?;
            let mut out = Vec::new();
            for row in rows {
                out.extend(row?);
            }
            Ok(out)
        })
    }

    /// How many records there are, and the distinct top layers they end in
    /// (what `system df` sums), read from the tables the triggers keep.
    pub fn cache_tops(&self) -> Result<(usize, Vec<Layer>)> {
        self.with_cache_index(|c| {
            let count: i64 = c
                .prepare_cached("SELECT records FROM totals WHERE id = 0")?
                .query_row([], |r| r.get(0))?;
            let mut statement = c.prepare_cached(
                "SELECT diff_id, digest, size, media_type FROM tops ORDER BY diff_id",
            )?;
            let rows = statement.query_map([], |r| {
                Ok(layer(
                    digest_column(r, 0)?,
                    digest_column(r, 1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })?;
            let mut tops = Vec::new();
            for row in rows {
                tops.extend(row?);
            }
            Ok((usize::try_from(count).unwrap_or(0), tops))
        })
    }

    /// Forgets the record for `key` (a missing record is not an error).
    pub fn cache_remove(&self, key: &Digest) -> Result<()> {
        self.cache_remove_all(std::slice::from_ref(key))
    }

    /// Forgets the records of `keys` in one transaction.
    pub fn cache_remove_all(&self, keys: &[Digest]) -> Result<()> {
        self.with_cache_index(|c| {
            let tx = c.transaction()?;
            for key in keys {
                tx.prepare_cached("DELETE FROM records WHERE key = ?1")?
                    .execute([key.to_string()])?;
            }
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobWrite;

    fn layer_of(store: &Store, bytes: &[u8]) -> Layer {
        let blob = store.put_bytes(bytes).unwrap();
        Layer {
            diff_id: blob.digest,
            blob: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: blob.digest,
                size: bytes.len() as u64,
                annotations: Default::default(),
            },
        }
    }

    #[test]
    fn records_round_trip_and_need_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let layer = layer_of(&store, b"layer");
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
        // Another process (a fresh handle) sees it too.
        let other = Store::open(store.root()).unwrap();
        assert_eq!(other.cache_get(&key).unwrap().unwrap().description, "RUN x");
        store.cache_remove(&key).unwrap();
        assert_eq!(other.cache_get(&key).unwrap(), None);
    }

    #[test]
    fn the_count_and_distinct_tops_follow_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let (a, b, c) = (
            layer_of(&store, b"a"),
            layer_of(&store, b"b"),
            layer_of(&store, b"c"),
        );
        let keys: Vec<Digest> = (0..4).map(|n| Digest::sha256_of(&[n])).collect();
        store
            .cache_put_all(&[
                (keys[0], CacheRecord::new(vec![a.clone()], "0")),
                (keys[1], CacheRecord::new(vec![a.clone(), b.clone()], "1")),
                (keys[2], CacheRecord::new(vec![b.clone()], "2")),
                (keys[3], CacheRecord::new(vec![], "3")),
            ])
            .unwrap();
        let tops = |s: &Store| {
            let (n, layers) = s.cache_tops().unwrap();
            (n, layers.into_iter().map(|l| l.diff_id).collect::<Vec<_>>())
        };
        let mut ab = vec![a.diff_id, b.diff_id];
        ab.sort();
        assert_eq!(tops(&store), (4, ab.clone()));
        // Replacing a record moves its top; removing the last user drops it.
        store
            .cache_put(&keys[2], &CacheRecord::new(vec![c.clone()], "2 again"))
            .unwrap();
        let mut abc = vec![a.diff_id, b.diff_id, c.diff_id];
        abc.sort();
        assert_eq!(tops(&store), (4, abc));
        store.cache_remove_all(&[keys[1], keys[3]]).unwrap();
        let mut ac = vec![a.diff_id, c.diff_id];
        ac.sort();
        assert_eq!(tops(&store), (2, ac));
        let rows = store.cache_rows().unwrap();
        let described: Vec<&str> = rows.iter().map(|r| r.description.as_str()).collect();
        assert_eq!(rows.len(), 2, "{described:?}");
        assert!(described.contains(&"2 again"), "{described:?}");
        assert_eq!(rows.iter().find(|r| r.key == keys[0]).unwrap().top, Some(a));
    }

    #[test]
    fn a_corrupt_record_is_a_miss_and_a_corrupt_index_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let key = Digest::sha256_of(b"key");
        store
            .cache_put(&key, &CacheRecord::new(vec![], "RUN x"))
            .unwrap();
        store
            .with_cache_index(|c| {
                c.execute("UPDATE records SET record = '{garbage'", [])
                    .map(|_| ())
            })
            .unwrap();
        assert_eq!(store.cache_get(&key).unwrap(), None);
        assert!(store.cache_records().unwrap().is_empty());

        // A file that is not a database: a fresh process starts an empty
        // index and keeps the old file as a backup.
        let fresh = dir.path().join("fresh");
        let fresh_store = Store::open(&fresh).unwrap();
        fs::write(fresh_store.cache_index_path(), vec![0x5a; 8192]).unwrap();
        assert_eq!(fresh_store.cache_get(&key).unwrap(), None);
        fresh_store
            .cache_put(&key, &CacheRecord::new(vec![], "RUN y"))
            .unwrap();
        assert_eq!(fresh_store.cache_records().unwrap().len(), 1);
        let backup = fresh_store
            .cache_index_path()
            .with_extension("sqlite.damaged");
        assert_eq!(fs::read(backup).unwrap(), vec![0x5a; 8192]);
    }

    #[test]
    fn record_files_of_an_older_store_are_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let layer = layer_of(&store, b"layer");
        fs::create_dir(store.snapshot_path(&layer.diff_id)).unwrap();
        let files = store.db_dir().join("cache");
        fs::create_dir_all(&files).unwrap();
        let key = Digest::sha256_of(b"old key");
        let record = CacheRecord::new(vec![layer], "RUN old");
        fs::write(
            files.join(format!("{}.json", key.hex())),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        fs::write(files.join("not-a-key.json"), "{}").unwrap();
        let reopened = Store::open(store.root()).unwrap();
        assert_eq!(reopened.cache_get(&key).unwrap(), Some(record));
        assert!(!files.exists());
        assert_eq!(reopened.cache_tops().unwrap().0, 1);
    }
}
