//! `rbk prune [-a] [-f]`: `docker image prune` and `docker builder prune` in one.
//!
//! What goes:
//!
//! - untagged ("dangling") images: build results without a tag, each
//!   printed as `Deleted: sha256:<image id>`;
//! - *dangling* build-cache records: records whose layers are not all part
//!   of a tagged image (their content exists only for the cache), and
//!   records whose content is gone; with `-a`, every record (BuildKit's
//!   `builder prune --all`, which also drops the `RUN --mount=type=cache`
//!   contents and the remote download and clone caches, printed as
//!   `Deleted: cache-mounts/` and `Deleted: remote/`);
//! - then every blob and snapshot that no image and no remaining record uses
//!   (a GC run), and the leftovers of killed processes (partial ingests,
//!   work dirs, interrupted extractions).
//!
//! - the records and step logs of past builds (`<root>/logs/`), but the
//!   last of each Dockerfile and target (`--explain` compares with it);
//!   with `-a`, all of them (`Deleted: build <id>`).
//!
//! What it moved to the trash is deleted for up to a second, and the rest
//! by a background `rbk system empty-trash` (see `crate::trash`), so a
//! prune of a big store is not held up by deleting; past
//! `trash::INLINE_ENTRIES` entries (more than a second could delete) all of
//! it is left to the background emptier.
//!
//! It waits for running builds and loads to finish (the GC lock). Output:
//! one `Deleted: …` line per cache record (`Deleted: cache sha256:<key>`)
//! and per blob, then `Total reclaimed space: 1.2MB` (blobs, snapshots and
//! leftovers). Without `-f` it asks for confirmation on a terminal; when
//! standard input is not a terminal it refuses with an error asking for
//! `-f` rather than read an answer from a pipe.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;

use crate::args::PruneArgs;
use crate::humanize;

const WARNING_DANGLING: &str = "WARNING! This will remove:
  - all dangling images
  - all build cache not used by a tagged image
  - all blobs and snapshots no image or build cache uses
  - leftovers of interrupted rbk processes
";
const WARNING_ALL: &str = "WARNING! This will remove:
  - all dangling images
  - all build cache, RUN --mount=type=cache contents and remote downloads
  - all blobs and snapshots no image uses
  - leftovers of interrupted rbk processes
";

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: PruneArgs,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    if !args.force && !confirm(args.all)? {
        return Ok(ExitCode::SUCCESS);
    }
    // A build killed mid-step leaves its container running and its mounts
    // under tmp/: stop the one, then detach the others (when no other
    // process holds the store) so their dirs can go.
    crate::runtime::reap_build_containers(settings, &store)?;
    rbk_exec::recover_store(&store)?;
    let report = store.prune(args.all)?;
    let builds = crate::progress::record::prune(&store, args.all)?;
    let moved = builds.len()
        + report.cache.len()
        + report.source_caches.len()
        + report.blobs.len()
        + report.snapshots.len()
        + report.orphans.removed.len();
    crate::trash::empty(&store, crate::trash::budget_for(moved))?;
    // One write per line would be 100,000 writes after a big prune.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for id in &builds {
        writeln!(out, "Deleted: build {id} (its record and logs)")?;
    }
    for id in &report.images {
        writeln!(out, "Deleted: {id}")?;
    }
    for key in &report.cache {
        writeln!(out, "Deleted: cache {key}")?;
    }
    for (dir, _) in &report.source_caches {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        writeln!(out, "Deleted: {name}/")?;
    }
    for blob in &report.blobs {
        writeln!(out, "Deleted: {}", blob.digest)?;
    }
    for path in &report.orphans.mounted {
        writeln!(
            out,
            "Skipped: {} (still mounted; a build may be running)",
            path.display()
        )?;
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        humanize::size4(report.reclaimed())
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Docker's prompt: only `y` or `Y` proceeds.
fn confirm(all: bool) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to prune without confirmation: standard input is not a terminal (pass -f to prune without a prompt)");
    }
    let mut err = std::io::stderr().lock();
    let warning = if all { WARNING_ALL } else { WARNING_DANGLING };
    write!(err, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}
