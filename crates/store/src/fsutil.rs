//! Small filesystem helpers shared by the on-disk store.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// O_NOFOLLOW | O_CLOEXEC, for `custom_flags`.
pub(crate) fn nofollow() -> i32 {
    (rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOFOLLOW).bits() as i32
}

/// A name that no other process or thread will pick: pid, counter and time.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}-{n}-{nanos:08x}", std::process::id())
}

/// fsyncs a directory so a rename or create inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing directory", dir))
}

/// Replaces `dir/name` with `bytes` atomically and durably: temp file in the
/// same directory, fsync, rename, fsync the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(unique_name(&format!(".{name}.tmp-")));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nofollow())
            .open(&tmp)
            .map_err(Error::io("creating", &tmp))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(Error::io("writing", &tmp))?;
        let dest = dir.join(name);
        std::fs::rename(&tmp, &dest).map_err(Error::io("renaming into place", dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Reads a small file fully, failing past `limit` bytes.
pub(crate) fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(path)
        .map_err(Error::io("opening", path))?;
    crate::blob::read_to_end_bounded(f, limit, &path.display().to_string())
}
