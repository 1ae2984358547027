//! `rbk system df [-v]` and `rbk system verify`.
//!
//! `df` prints Docker's table (TYPE TOTAL ACTIVE SIZE RECLAIMABLE) with
//! sizes in blob bytes on disk, a blob shared by several images counted
//! once. rbk has no containers or volumes (those rows are zero) and its
//! index holds only tagged images, which `rbk prune` never removes: every
//! image counts as active and image space as not reclaimable (only
//! `rbk rmi` frees it). The Build Cache row counts the cache records; its
//! size is the blobs used by cache records and by no image, plus blobs
//! nothing references at all — exactly what `rbk prune -a` reclaims.
//! With `-v`, each image (one row per tag) shows SHARED SIZE (its blobs
//! another image also uses) and UNIQUE SIZE, and each cache record its
//! size, last use (CREATED too: records are rewritten when used) and
//! whether an image shares all its blobs.
//!
//! `verify` re-hashes every blob and checks every tagged image and snapshot
//! name (see `Store::verify`); it prints each problem as `PATH: WHAT` and
//! exits non-zero if there is any. It never repairs anything. Leftovers of
//! killed processes are listed as notes; `rbk prune` clears them.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use rbk_store::image::parse_rfc3339;
use rbk_store::Usage;

use super::images::write_table;
use crate::args::SystemCommand;
use crate::humanize;

pub(crate) fn run(root: Option<&Path>, command: SystemCommand) -> anyhow::Result<ExitCode> {
    let store = crate::settings::open_store(root)?;
    match command {
        SystemCommand::Df { verbose } => {
            let usage = store.usage()?;
            let mut out = std::io::stdout().lock();
            if verbose {
                df_verbose(&mut out, &usage)?;
            } else {
                df(&mut out, &usage)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SystemCommand::Verify => verify(&store),
    }
}

fn df(out: &mut impl Write, usage: &Usage) -> std::io::Result<()> {
    let images = usage.images.len().to_string();
    let image_size = humanize::size4(usage.images_size);
    let image_reclaim = if usage.images_size > 0 {
        "0B (0%)".to_string()
    } else {
        "0B".to_string()
    };
    let cache_size = humanize::size4(usage.cache_only_size + usage.unreferenced_size);
    let table: Vec<Vec<String>> = vec![
        row(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]),
        row(&["Images", &images, &images, &image_size, &image_reclaim]),
        row(&["Containers", "0", "0", "0B", "0B"]),
        row(&["Local Volumes", "0", "0", "0B", "0B"]),
        row(&[
            "Build Cache",
            &usage.cache.len().to_string(),
            "0",
            &cache_size,
            &cache_size,
        ]),
    ];
    write_table(out, &table)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn df_verbose(out: &mut impl Write, usage: &Usage) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    writeln!(out, "Images space usage:\n")?;
    let mut table = vec![row(&[
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ])];
    for image in &usage.images {
        let created = image
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or_else(|| "N/A".into(), |t| humanize::ago(now - t));
        for reference in &image.references {
            table.push(vec![
                repository(reference),
                reference.tag().unwrap_or("<none>").into(),
                image.id.short(),
                created.clone(),
                humanize::size4(image.size),
                humanize::size4(image.shared),
                humanize::size4(image.unique),
                "0".into(),
            ]);
        }
    }
    write_table(out, &table)?;
    writeln!(out, "\nContainers space usage:\n")?;
    let headers = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
    ];
    write_table(out, &[row(&[&headers[..], &["STATUS", "NAMES"]].concat())])?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    write_table(out, &[row(&["VOLUME NAME", "LINKS", "SIZE"])])?;
    let cache_size = usage.cache_only_size + usage.unreferenced_size;
    writeln!(
        out,
        "\nBuild cache usage: {}\n",
        humanize::size4(cache_size)
    )?;
    let mut table = vec![row(&[
        "CACHE ID",
        "CACHE TYPE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "USAGE",
        "SHARED",
    ])];
    for record in &usage.cache {
        let used = humanize::ago(now - record.last_used as i64);
        table.push(vec![
            record.key.short(),
            "regular".into(),
            humanize::size4(record.size),
            used.clone(),
            used,
            "1".into(),
            record.shared.to_string(),
        ]);
    }
    write_table(out, &table)
}

fn verify(store: &rbk_store::Store) -> anyhow::Result<ExitCode> {
    let report = store.verify()?;
    let mut out = std::io::stdout().lock();
    for problem in &report.problems {
        writeln!(out, "{}: {}", problem.path.display(), problem.what)?;
    }
    for orphan in &report.orphans {
        writeln!(
            out,
            "note: {} is a leftover of an interrupted process (`rbk prune` clears it)",
            orphan.display()
        )?;
    }
    writeln!(
        out,
        "verified {} blobs, {} images, {} snapshots",
        report.blobs, report.images, report.snapshots
    )?;
    if !report.problems.is_empty() {
        bail!(
            "the store has {} problem(s); nothing was repaired",
            report.problems.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `app` for `app:1`, `user/app` for `docker.io/user/app:1`.
fn repository(reference: &rbk_store::Reference) -> String {
    let familiar = reference.familiar();
    match reference.tag() {
        Some(tag) => familiar
            .strip_suffix(&format!(":{tag}"))
            .unwrap_or(&familiar)
            .to_string(),
        None => familiar,
    }
}
