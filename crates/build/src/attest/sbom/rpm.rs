//! RPM's package database. RPM 4.16 and later (Fedora 33+, RHEL/UBI 9,
//! Amazon Linux 2023, openSUSE) keep it in SQLite: `rpmdb.sqlite`, whose
//! `Packages` table holds one header blob per installed package. SQLite is
//! read with rusqlite (SQLite compiled in) from a private copy of the file
//! and its write-ahead log, so what a build left in the log counts too.
//!
//! A header blob is RPM's header without its 8-byte magic: two big-endian
//! u32s (the number of index entries, the size of the data store), the
//! entries (tag, type, offset, count: four big-endian u32s each), then the
//! data store. Only a few string and integer tags are needed, so the blob is
//! read here, every offset checked against the store's size.
//!
//! The older Berkeley DB (`Packages`) and SUSE's `Packages.db` formats are
//! not read: an image holding one gets a warning naming it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::Package;

/// Where RPM keeps its sqlite database: `/var/lib/rpm` (the classic
/// `%_dbpath`) and `/usr/lib/sysimage/rpm` (Fedora 36 and later).
const SQLITE_PATHS: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// The databases of older RPMs, which rbk does not read.
const OLD_PATHS: [&str; 4] = [
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
];

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const ARCH: u32 = 1022;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;

/// Whether `path` (relative to the image root) is one of RPM's databases or
/// the write-ahead log of one.
pub(super) fn interesting(path: &str) -> bool {
    SQLITE_PATHS
        .iter()
        .any(|p| path == *p || path.strip_prefix(p) == Some("-wal"))
        || OLD_PATHS.contains(&path)
}

/// Whether `path` is a database [`packages`] reads (not a log).
pub(super) fn is_database(path: &str) -> bool {
    SQLITE_PATHS.contains(&path) || OLD_PATHS.contains(&path)
}

/// The packages of the database at `path`, whose bytes are `db` and whose
/// write-ahead log (if the image has one) is `wal`.
pub(super) fn packages(
    path: &str,
    db: &[u8],
    wal: Option<&[u8]>,
    shown: &str,
) -> std::result::Result<Vec<Package>, String> {
    if OLD_PATHS.contains(&path) {
        return Err(
            "RPM's Berkeley DB and ndb formats are not read (only rpmdb.sqlite, RPM 4.16 and later)"
                .into(),
        );
    }
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let copy = dir.path().join("rpmdb.sqlite");
    std::fs::write(&copy, db).map_err(|e| format!("copying it: {e}"))?;
    if let Some(wal) = wal {
        std::fs::write(dir.path().join("rpmdb.sqlite-wal"), wal)
            .map_err(|e| format!("copying its log: {e}"))?;
    }
    let blobs = read_blobs(&copy).map_err(|e| format!("SQLite: {e}"))?;
    blobs
        .iter()
        .map(|(hnum, blob)| {
            header(blob, shown).map_err(|why| format!("the header of package #{hnum}: {why}"))
        })
        .collect()
}

fn read_blobs(path: &Path) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The file comes from an image: no schema-defined functions or triggers
    // run, and no write may corrupt it on purpose (it is a copy anyway).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
        false,
    )?;
    let mut statement = conn.prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// One entry of the header's index.
struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
    count: u32,
}

/// A package from one header blob.
fn header(blob: &[u8], shown: &str) -> std::result::Result<Package, String> {
    let word = |at: usize| -> std::result::Result<u32, String> {
        blob.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("ends at byte {} where a number was expected", blob.len()))
    };
    let entries = word(0)? as usize;
    let store_size = word(4)? as usize;
    let store_at = entries
        .checked_mul(16)
        .and_then(|n| n.checked_add(8))
        .filter(|end| end.checked_add(store_size) <= Some(blob.len()))
        .ok_or_else(|| {
            format!(
                "{entries} entries and {store_size} bytes of data do not fit in {} bytes",
                blob.len()
            )
        })?;
    let store = &blob[store_at..store_at + store_size];
    let mut index = Vec::with_capacity(entries);
    for i in 0..entries {
        let at = 8 + i * 16;
        index.push(Entry {
            tag: word(at)?,
            kind: word(at + 4)?,
            offset: word(at + 8)? as usize,
            count: word(at + 12)?,
        });
    }
    let string = |tag: u32| -> std::result::Result<Option<String>, String> {
        let Some(e) = index.iter().find(|e| e.tag == tag) else {
            return Ok(None);
        };
        if e.kind != TYPE_STRING {
            return Err(format!("tag {tag} has type {}, not a string", e.kind));
        }
        let rest = store
            .get(e.offset..)
            .ok_or_else(|| format!("tag {tag} points past the data"))?;
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| format!("tag {tag}'s string has no end"))?;
        Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()))
    };
    let epoch = match index.iter().find(|e| e.tag == EPOCH) {
        Some(e) if e.kind == TYPE_INT32 && e.count >= 1 => {
            let b = store
                .get(e.offset..e.offset + 4)
                .ok_or_else(|| "the epoch points past the data".to_string())?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        _ => None,
    };
    let name = string(NAME)?.ok_or("no name tag")?;
    let version = string(VERSION)?.unwrap_or_default();
    let release = string(RELEASE)?.unwrap_or_default();
    // `rpm -q` shows VERSION-RELEASE; the epoch goes first when there is one.
    let mut full = match release.is_empty() {
        true => version,
        false => format!("{version}-{release}"),
    };
    if let Some(epoch) = epoch {
        full = format!("{epoch}:{full}");
    }
    Ok(Package {
        kind: "rpm",
        name,
        version: full,
        arch: string(ARCH)?.unwrap_or_default(),
        source: shown.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob of `entries` (tag, type, data).
    fn blob(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, kind, data) in entries {
            for n in [*tag, *kind, store.len() as u32, 1] {
                index.extend(n.to_be_bytes());
            }
            store.extend_from_slice(data);
        }
        let mut out = Vec::new();
        out.extend((entries.len() as u32).to_be_bytes());
        out.extend((store.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(store);
        out
    }

    #[test]
    fn headers_read_and_bad_ones_are_named() {
        let b = blob(&[
            (NAME, TYPE_STRING, b"bash\0"),
            (VERSION, TYPE_STRING, b"5.2.15\0"),
            (RELEASE, TYPE_STRING, b"5.fc39\0"),
            (EPOCH, TYPE_INT32, &2u32.to_be_bytes()),
            (ARCH, TYPE_STRING, b"x86_64\0"),
        ]);
        let p = header(&b, "/x").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.arch.as_str()),
            ("bash", "2:5.2.15-5.fc39", "x86_64")
        );
        let mut cut = b.clone();
        cut.truncate(b.len() - 3);
        assert!(header(&cut, "/x").unwrap_err().contains("do not fit"));
        assert!(header(&[0, 0], "/x")
            .unwrap_err()
            .contains("ends at byte 2"));
        let unterminated = blob(&[(NAME, TYPE_STRING, b"bash")]);
        assert!(header(&unterminated, "/x").unwrap_err().contains("no end"));
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(header(&huge, "/x").unwrap_err().contains("do not fit"));
    }
}
