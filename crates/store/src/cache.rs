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
//! - **Deferred deletes**: removing records only names them in the
//!   `dropped` table (a few small new pages); their rows are deleted later
//!   by the trash emptier ([`Store::cache_purge_dropped`]), as dead files
//!   are (see `SCHEMA`).
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
use std::time::{Duration, Instant, SystemTime};

use rayon::prelude::*;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::fsutil::read_small;
use crate::image::EMPTY_LAYER_DIFF_ID;
use crate::{BlobRead, Descriptor, Digest, Error, Result, Store};

/// How long a write waits for another process's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const INDEX_FILE: &str = "cache.sqlite";

/// The schema's version, kept in SQLite's `user_version`: 1 without
/// `dropped`, 2 with it, 3 with `top_bytes`.
const SCHEMA_VERSION: i64 = 3;

/// Dropped rows deleted per transaction by [`Store::cache_purge_dropped`]:
/// short enough that a build's write waits little for one.
const PURGE_BATCH: usize = 2_000;

/// `records` holds the records; `tops` (one row per distinct top layer,
/// with how many records end in it) and `totals` (the record count) are
/// kept by triggers in the same transaction as each change, so `system df`
/// reads the distinct layers and one count instead of every record.
///
/// `dropped` names records that are gone for every reader but whose rows
/// are still in `records`: removing a record inserts its key there (the
/// `dropped_insert` trigger takes it off `tops` and `totals` at once), and
/// the rows are deleted later by [`Store::cache_purge_dropped`] (whose
/// deletes the `records_delete` trigger then does not count again). A
/// prune drops half of 200,000 records: deleting their rows rewrites
/// nearly every page of the table (~250 MB, and as much again in the
/// journal), while the keys are a few MB of new pages.
///
/// `top_bytes` holds the sum of the sizes of the top layers stored
/// uncompressed (blob digest = diff id: the blob's size is the layer's
/// size), kept by triggers on `tops` itself, so every path that changes
/// `tops` (put, replace, drop, delete) moves it in the same transaction:
/// it cannot disagree with `tops`. With it and the `tops_compressed` index
/// (the few tops whose size must be looked up elsewhere), `system df` reads
/// no list of tops (45,000 rows in a big store).
///
/// Upgrading from version 1 replaces `records_delete`; upgrading to 3 sums
/// `top_bytes` from `tops` once (see `connect`).
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
CREATE TABLE IF NOT EXISTS dropped (
    key TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS records_delete AFTER DELETE ON records
    WHEN NOT EXISTS (SELECT 1 FROM dropped WHERE key = OLD.key) BEGIN
    UPDATE totals SET records = records - 1 WHERE id = 0;
    UPDATE tops SET records = records - 1 WHERE diff_id = OLD.top_diff_id;
    DELETE FROM tops WHERE diff_id = OLD.top_diff_id AND records <= 0;
END;
CREATE TRIGGER IF NOT EXISTS dropped_insert AFTER INSERT ON dropped BEGIN
    UPDATE totals SET records = records - 1 WHERE id = 0;
    UPDATE tops SET records = records - 1
        WHERE diff_id = (SELECT top_diff_id FROM records WHERE key = NEW.key);
    DELETE FROM tops WHERE records <= 0
        AND diff_id = (SELECT top_diff_id FROM records WHERE key = NEW.key);
END;
CREATE TABLE IF NOT EXISTS top_bytes (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    plain INTEGER NOT NULL
);
INSERT OR IGNORE INTO top_bytes
    SELECT 0, coalesce(sum(size), 0) FROM tops WHERE digest = diff_id;
CREATE TRIGGER IF NOT EXISTS tops_insert AFTER INSERT ON tops
    WHEN NEW.digest = NEW.diff_id BEGIN
    UPDATE top_bytes SET plain = plain + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS tops_delete AFTER DELETE ON tops
    WHEN OLD.digest = OLD.diff_id BEGIN
    UPDATE top_bytes SET plain = plain - OLD.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS tops_update AFTER UPDATE OF diff_id, digest, size ON tops BEGIN
    UPDATE top_bytes SET plain = plain
        - (CASE WHEN OLD.digest = OLD.diff_id THEN OLD.size ELSE 0 END)
        + (CASE WHEN NEW.digest = NEW.diff_id THEN NEW.size ELSE 0 END)
        WHERE id = 0;
END;
CREATE INDEX IF NOT EXISTS tops_compressed ON tops (diff_id) WHERE digest != diff_id;
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

/// The cache's part of `system df`, read by [`Store::cache_totals`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheTotals {
    /// How many records there are.
    pub(crate) count: usize,
    /// The summed sizes of the uncompressed top layers counted.
    pub(crate) plain_bytes: u64,
    /// The compressed top layers counted, whose sizes are not in the index.
    pub(crate) compressed: Vec<Layer>,
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
    // Created once (user_version marks it), so opening an existing index
    // writes nothing. An older version is upgraded in one transaction
    // under SQLite's write lock; the script is idempotent, so two
    // processes upgrading at once both succeed. Version 1's
    // `records_delete` counted every delete: it is replaced by the one
    // that skips dropped rows. Version 3's `top_bytes` is summed from
    // `tops` by the script, under the same lock (`INSERT OR IGNORE`: a
    // second upgrader finds it there, kept since by the triggers).
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP TRIGGER IF EXISTS records_delete; {SCHEMA}
             PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
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
    // A dropped row still there is deleted first (uncounted: it is in
    // `dropped`), so the new record is counted as new.
    conn.prepare_cached(
        "DELETE FROM records WHERE key = ?1 AND key IN (SELECT key FROM dropped WHERE key = ?1)",
    )?
    .execute([key.to_string()])?;
    conn.prepare_cached("DELETE FROM dropped WHERE key = ?1")?
        .execute([key.to_string()])?;
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

/// The layer in four columns from `first`: diff id, blob digest, size
/// and media type; `None` when one is missing or malformed.
fn layer_columns(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Layer>> {
    let (Some(diff_id), Some(digest)) =
        (digest_column(row, first)?, digest_column(row, first + 1)?)
    else {
        return Ok(None);
    };
    let size: Option<i64> = row.get(first + 2)?;
    let media_type: Option<String> = row.get(first + 3)?;
    let (Some(size), Some(media_type)) = (size.and_then(|s| u64::try_from(s).ok()), media_type)
    else {
        return Ok(None);
    };
    Ok(Some(Layer {
        diff_id,
        blob: Descriptor {
            media_type,
            digest,
            size,
            annotations: BTreeMap::new(),
        },
    }))
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
            c.prepare_cached(
                "SELECT record FROM records WHERE key = ?1
                     AND NOT EXISTS (SELECT 1 FROM dropped WHERE key = ?1)",
            )?
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
        self.cache_put_all(&[(*key, record.clone())])
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
    /// prune). The rows are read under the connection's lock and parsed in
    /// parallel after it (200,000 records are 200,000 JSON documents).
    pub fn cache_records(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        let rows = self.with_cache_index(|c| {
            let mut statement = c.prepare_cached(
                "SELECT key, record FROM records
                     WHERE key NOT IN (SELECT key FROM dropped) ORDER BY key",
            )?;
            let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<(String, String)>>>()
        })?;
        Ok(rows
            .into_par_iter()
            .filter_map(|(key, json)| {
                let key = key.parse().ok()?;
                Some((key, serde_json::from_str(&json).ok()?))
            })
            .collect())
    }

    /// Every record's summary row, sorted by key, without parsing the
    /// records (`system df -v`).
    pub fn cache_rows(&self) -> Result<Vec<CacheRow>> {
        self.with_cache_index(|c| {
            let mut statement = c.prepare_cached(
                "SELECT key, top_diff_id, top_digest, top_size, top_media_type, last_used,
                     description FROM records
                     WHERE key NOT IN (SELECT key FROM dropped) ORDER BY key",
            )?;
            let rows = statement.query_map([], |r| {
                let Some(key) = digest_column(r, 0)? else {
                    return Ok(None);
                };
                Ok(Some(CacheRow {
                    key,
                    top: layer_columns(r, 1)?,
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
            let rows = statement.query_map([], |r| layer_columns(r, 0))?;
            let mut tops = Vec::new();
            for row in rows {
                tops.extend(row?);
            }
            Ok((usize::try_from(count).unwrap_or(0), tops))
        })
    }

    /// What `system df` sums, from one read transaction: the record
    /// count, the summed sizes of the uncompressed top layers (less those
    /// in `excluded`, an image's layers, and the empty layer, which counts
    /// 0), and the compressed top layers not in `excluded`, whose sizes
    /// the caller looks up. Reads `top_bytes` and one row per excluded
    /// layer, not every top.
    pub(crate) fn cache_totals(&self, excluded: &BTreeMap<Digest, u64>) -> Result<CacheTotals> {
        let empty: Digest = EMPTY_LAYER_DIFF_ID.parse().expect("a valid digest");
        self.with_cache_index(|c| {
            // One snapshot of the tables: a commit between the statements
            // would mix two states.
            let tx = c.transaction()?;
            let count: i64 = tx
                .prepare_cached("SELECT records FROM totals WHERE id = 0")?
                .query_row([], |r| r.get(0))?;
            let mut plain: i64 = tx
                .prepare_cached("SELECT plain FROM top_bytes WHERE id = 0")?
                .query_row([], |r| r.get(0))?;
            let mut size_of =
                tx.prepare_cached("SELECT size FROM tops WHERE diff_id = ?1 AND digest = diff_id")?;
            let also_empty = (!excluded.contains_key(&empty)).then_some(&empty);
            for diff_id in excluded.keys().chain(also_empty) {
                let size: Option<i64> = size_of
                    .query_row([diff_id.to_string()], |r| r.get(0))
                    .optional()?;
                plain -= size.unwrap_or(0);
            }
            let mut statement = tx.prepare_cached(
                "SELECT diff_id, digest, size, media_type FROM tops
                     WHERE digest != diff_id ORDER BY diff_id",
            )?;
            let rows = statement.query_map([], |r| layer_columns(r, 0))?;
            let mut compressed = Vec::new();
            for row in rows {
                compressed.extend(row?.filter(|l| !excluded.contains_key(&l.diff_id)));
            }
            Ok(CacheTotals {
                count: usize::try_from(count).unwrap_or(0),
                plain_bytes: u64::try_from(plain).unwrap_or(0),
                compressed,
            })
        })
    }

    /// Forgets the record for `key` (a missing record is not an error).
    pub fn cache_remove(&self, key: &Digest) -> Result<()> {
        self.cache_remove_all(std::slice::from_ref(key))
    }

    /// Forgets the records of `keys` in one transaction: from then on no
    /// reader sees them, and [`Store::cache_purge_dropped`] deletes their
    /// rows later (see `SCHEMA`).
    pub fn cache_remove_all(&self, keys: &[Digest]) -> Result<()> {
        self.with_cache_index(|c| {
            let tx = c.transaction()?;
            for key in keys {
                // Only a key that has a row, and once.
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO dropped (key) SELECT key FROM records WHERE key = ?1",
                )?
                .execute([key.to_string()])?;
            }
            tx.commit()
        })
    }

    /// Deletes the rows of dropped records, a batch per transaction, until
    /// none is left (`true`) or `deadline` has passed (`false`). The
    /// detached trash emptier calls it, so a prune does not wait for the
    /// deletes. A store without an index has nothing to purge (and gets
    /// none: the emptier must not create files in a store being deleted).
    pub fn cache_purge_dropped(&self, deadline: Option<Instant>) -> Result<bool> {
        if !self.cache_index_path().exists() {
            return Ok(true);
        }
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let purged = self.with_cache_index(|c| {
                let tx = c.transaction()?;
                let keys: Vec<String> = tx
                    .prepare_cached("SELECT key FROM dropped LIMIT ?1")?
                    .query_map([PURGE_BATCH as i64], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for key in &keys {
                    // The row first: the trigger skips it while its key is
                    // still in `dropped`.
                    tx.prepare_cached("DELETE FROM records WHERE key = ?1")?
                        .execute([key])?;
                    tx.prepare_cached("DELETE FROM dropped WHERE key = ?1")?
                        .execute([key])?;
                }
                tx.commit()?;
                Ok(keys.len())
            })?;
            if purged < PURGE_BATCH {
                return Ok(true);
            }
        }
    }

    /// Whether dropped records still have rows to purge.
    pub fn cache_has_dropped(&self) -> Result<bool> {
        if !self.cache_index_path().exists() {
            return Ok(false);
        }
        self.with_cache_index(|c| {
            c.prepare_cached("SELECT EXISTS (SELECT 1 FROM dropped)")?
                .query_row([], |r| r.get(0))
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

    fn raw_rows(store: &Store) -> (i64, i64) {
        store
            .with_cache_index(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM dropped)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .unwrap()
    }

    #[test]
    fn removed_records_are_gone_at_once_and_their_rows_purged_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let (a, b) = (layer_of(&store, b"a"), layer_of(&store, b"b"));
        fs::create_dir(store.snapshot_path(&a.diff_id)).unwrap();
        fs::create_dir(store.snapshot_path(&b.diff_id)).unwrap();
        let keys: Vec<Digest> = (0..3).map(|n| Digest::sha256_of(&[n])).collect();
        store
            .cache_put_all(&[
                (keys[0], CacheRecord::new(vec![a.clone()], "0")),
                (keys[1], CacheRecord::new(vec![a.clone(), b.clone()], "1")),
                (keys[2], CacheRecord::new(vec![b.clone()], "2")),
            ])
            .unwrap();
        let unknown = Digest::sha256_of(b"never recorded");
        store
            .cache_remove_all(&[keys[1], keys[2], unknown, keys[2]])
            .unwrap();
        // Gone for every reader, and for the counts, before any purge.
        let other = Store::open(store.root()).unwrap();
        for s in [&store, &other] {
            assert_eq!(s.cache_get(&keys[1]).unwrap(), None);
            assert_eq!(s.cache_get(&keys[2]).unwrap(), None);
            assert!(s.cache_get(&keys[0]).unwrap().is_some());
            let listed: Vec<Digest> = s
                .cache_records()
                .unwrap()
                .into_iter()
                .map(|r| r.0)
                .collect();
            assert_eq!(listed, vec![keys[0]]);
            assert_eq!(s.cache_rows().unwrap().len(), 1);
            let (n, tops) = s.cache_tops().unwrap();
            assert_eq!((n, tops), (1, vec![a.clone()]));
        }
        assert_eq!(raw_rows(&store), (3, 2));
        assert!(!store.trash_is_empty().unwrap(), "rows wait for a purge");
        // A dropped key recorded again before the purge is a new record,
        // counted once, and the purge leaves it.
        store
            .cache_put(&keys[2], &CacheRecord::new(vec![a.clone()], "2 again"))
            .unwrap();
        assert_eq!(
            store.cache_get(&keys[2]).unwrap().unwrap().description,
            "2 again"
        );
        assert_eq!(store.cache_tops().unwrap(), (2, vec![a.clone()]));
        assert_eq!(raw_rows(&store), (3, 1));
        // A deadline already past purges nothing.
        assert!(!store.cache_purge_dropped(Some(Instant::now())).unwrap());
        assert_eq!(raw_rows(&store), (3, 1));
        store.empty_trash().unwrap();
        assert_eq!(raw_rows(&store), (2, 0));
        assert!(store.trash_is_empty().unwrap());
        // The purge's deletes are not counted a second time.
        assert_eq!(store.cache_tops().unwrap(), (2, vec![a.clone()]));
        // A later remove of a purged key's neighbour still counts.
        store.cache_remove(&keys[0]).unwrap();
        assert_eq!(store.cache_tops().unwrap(), (1, vec![a]));
    }

    /// The schema of version 1 (before `dropped`), as older rbk wrote it.
    const SCHEMA_V1_DELETE_TRIGGER: &str = "
        DROP TRIGGER records_delete;
        DROP TRIGGER dropped_insert;
        DROP TABLE dropped;
        CREATE TRIGGER records_delete AFTER DELETE ON records BEGIN
            UPDATE totals SET records = records - 1 WHERE id = 0;
            UPDATE tops SET records = records - 1 WHERE diff_id = OLD.top_diff_id;
            DELETE FROM tops WHERE diff_id = OLD.top_diff_id AND records <= 0;
        END;
        PRAGMA user_version = 1;";

    #[test]
    fn a_version_1_index_is_upgraded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let store = Store::open(&root).unwrap();
        let a = layer_of(&store, b"a");
        fs::create_dir(store.snapshot_path(&a.diff_id)).unwrap();
        let keys: Vec<Digest> = (0..2).map(|n| Digest::sha256_of(&[n])).collect();
        for key in &keys {
            store
                .cache_put(key, &CacheRecord::new(vec![a.clone()], "x"))
                .unwrap();
        }
        store
            .with_cache_index(|c| c.execute_batch(SCHEMA_V1_DELETE_TRIGGER))
            .unwrap();
        drop(store);
        let upgraded = Store::open(&root).unwrap();
        assert_eq!(upgraded.cache_tops().unwrap(), (2, vec![a.clone()]));
        let version: i64 = upgraded
            .with_cache_index(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        upgraded.cache_remove(&keys[0]).unwrap();
        upgraded.empty_trash().unwrap();
        // Counted once: by the drop, not again by the purge's delete.
        assert_eq!(upgraded.cache_tops().unwrap(), (1, vec![a]));
        assert_eq!(raw_rows(&upgraded), (1, 0));
        assert!(upgraded.cache_get(&keys[1]).unwrap().is_some());
    }

    /// A layer whose blob is compressed (digest != diff id): its size is
    /// not in the index.
    fn compressed_layer(n: u8) -> Layer {
        Layer {
            diff_id: Digest::sha256_of(&[b'd', n]),
            blob: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                digest: Digest::sha256_of(&[b'z', n]),
                size: 7,
                annotations: Default::default(),
            },
        }
    }

    /// The uncompressed empty layer, which `system df` counts as 0 bytes.
    fn empty_layer() -> Layer {
        let diff_id: Digest = EMPTY_LAYER_DIFF_ID.parse().unwrap();
        Layer {
            diff_id,
            blob: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: diff_id,
                size: 1024,
                annotations: Default::default(),
            },
        }
    }

    /// [`Store::cache_totals`] computed the long way, from every top.
    fn totals_from_tops(store: &Store, excluded: &BTreeMap<Digest, u64>) -> CacheTotals {
        let (count, tops) = store.cache_tops().unwrap();
        let (plain, compressed): (Vec<Layer>, Vec<Layer>) = tops
            .into_iter()
            .filter(|l| !excluded.contains_key(&l.diff_id))
            .partition(|l| l.blob.digest == l.diff_id);
        let empty = empty_layer().diff_id;
        let plain_bytes = plain.iter().filter(|l| l.diff_id != empty);
        CacheTotals {
            count,
            plain_bytes: plain_bytes.map(|l| l.blob.size).sum(),
            compressed,
        }
    }

    /// Checks the kept totals against the long way, with no layer
    /// excluded and with some (an image's layers).
    fn assert_totals_exact(store: &Store, image_layers: &[&Layer]) {
        let some: BTreeMap<Digest, u64> = image_layers.iter().map(|l| (l.diff_id, 0)).collect();
        for excluded in [BTreeMap::new(), some] {
            let kept = store.cache_totals(&excluded).unwrap();
            assert_eq!(kept, totals_from_tops(store, &excluded));
        }
    }

    #[test]
    fn the_kept_df_totals_follow_every_change_from_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let other = Store::open(store.root()).unwrap();
        let (a, b, c) = (
            layer_of(&store, b"a"),
            layer_of(&store, b"bb"),
            layer_of(&store, b"ccc"),
        );
        let (z, y, empty) = (compressed_layer(0), compressed_layer(1), empty_layer());
        let image = [&a, &z, &empty];
        let keys: Vec<Digest> = (0..6).map(|n| Digest::sha256_of(&[n])).collect();
        let record = |layers: &[&Layer], what: &str| {
            CacheRecord::new(layers.iter().map(|l| (*l).clone()).collect(), what)
        };
        assert_totals_exact(&store, &image);
        store
            .cache_put_all(&[
                (keys[0], record(&[&a], "0")),
                (keys[1], record(&[&a, &b], "1")),
                (keys[2], record(&[&z], "2")),
                (keys[3], record(&[&b, &empty], "3")),
                (keys[4], record(&[], "4")),
            ])
            .unwrap();
        assert!(store.cache_totals(&BTreeMap::new()).unwrap().plain_bytes > 0);
        assert_totals_exact(&store, &image);
        // Another process replaces records: a top moves, a new one appears.
        other
            .cache_put(&keys[1], &record(&[&c], "1 again"))
            .unwrap();
        other.cache_put(&keys[5], &record(&[&y], "5")).unwrap();
        assert_totals_exact(&store, &image);
        // Drops, a re-put of a dropped key, the purge, plain removes.
        store.cache_remove_all(&[keys[0], keys[2]]).unwrap();
        assert_totals_exact(&other, &image);
        other
            .cache_put(&keys[0], &record(&[&b], "0 again"))
            .unwrap();
        assert_totals_exact(&store, &image);
        store.empty_trash().unwrap();
        assert_totals_exact(&store, &image);
        other.cache_remove_all(&keys).unwrap();
        other.empty_trash().unwrap();
        assert_eq!(
            store.cache_totals(&BTreeMap::new()).unwrap(),
            CacheTotals::default()
        );
    }

    #[test]
    fn a_change_cut_short_leaves_the_kept_totals_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("root")).unwrap();
        let (a, b) = (layer_of(&store, b"a"), layer_of(&store, b"bb"));
        let key = Digest::sha256_of(b"k");
        store
            .cache_put(&key, &CacheRecord::new(vec![a.clone()], "k"))
            .unwrap();
        let before = store.cache_totals(&BTreeMap::new()).unwrap();
        // A process killed mid-transaction: its changes, the totals' with
        // them, are rolled back (SQLite replays the journal on next open).
        store
            .with_cache_index(|c| {
                let tx = c.transaction()?;
                put_row(&tx, &key, &CacheRecord::new(vec![b.clone()], "k'"), true)?;
                put_row(
                    &tx,
                    &Digest::sha256_of(b"new"),
                    &CacheRecord::new(vec![b.clone()], "n"),
                    true,
                )?;
                drop(tx);
                Ok(())
            })
            .unwrap();
        assert_eq!(store.cache_totals(&BTreeMap::new()).unwrap(), before);
        assert_totals_exact(&store, &[&b]);
    }

    /// Version 2's schema: version 3's table, triggers and index removed.
    const SCHEMA_V2: &str = "
        DROP TRIGGER tops_insert;
        DROP TRIGGER tops_delete;
        DROP TRIGGER tops_update;
        DROP INDEX tops_compressed;
        DROP TABLE top_bytes;
        PRAGMA user_version = 2;";

    #[test]
    fn a_version_2_index_is_upgraded_with_its_totals_summed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let store = Store::open(&root).unwrap();
        let (a, b, z) = (
            layer_of(&store, b"a"),
            layer_of(&store, b"bb"),
            compressed_layer(0),
        );
        store
            .cache_put_all(&[
                (
                    Digest::sha256_of(b"1"),
                    CacheRecord::new(vec![a.clone()], "1"),
                ),
                (
                    Digest::sha256_of(b"2"),
                    CacheRecord::new(vec![z.clone()], "2"),
                ),
            ])
            .unwrap();
        store
            .with_cache_index(|c| c.execute_batch(SCHEMA_V2))
            .unwrap();
        // Version 2 goes on without the totals.
        store
            .cache_put(
                &Digest::sha256_of(b"3"),
                &CacheRecord::new(vec![b.clone()], "3"),
            )
            .unwrap();
        drop(store);
        let upgraded = Store::open(&root).unwrap();
        assert_totals_exact(&upgraded, &[&b]);
        let version: i64 = upgraded
            .with_cache_index(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A second upgrader (it read the old version before the first
        // committed) runs the script again: the totals are not summed twice.
        upgraded.cache_remove(&Digest::sha256_of(b"1")).unwrap();
        upgraded
            .with_cache_index(|c| c.execute_batch("PRAGMA user_version = 2"))
            .unwrap();
        drop(upgraded);
        let again = Store::open(&root).unwrap();
        assert_totals_exact(&again, &[&z]);
        assert_eq!(
            again.cache_totals(&BTreeMap::new()).unwrap().plain_bytes,
            2,
            "only b's two bytes are left uncompressed"
        );
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
