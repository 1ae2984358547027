//! `rbk system df [-v]` and `rbk system verify`.
//!
//! `df` prints Docker's table (TYPE TOTAL ACTIVE SIZE RECLAIMABLE) with
//! uncompressed layer sizes (see `rbk_store::Store::usage`), a layer shared
//! by several images counted once. Containers count their own layers
//! (upper dirs); ACTIVE is the running ones, and for images those a
//! container (of any state) was made from; as in Docker an image no
//! container uses, and a container that is not running, is reclaimable.
//! Volumes are not counted yet (the row is zero).
//! The Build Cache row counts the cache records; its size is the sum of the
//! sizes of the records that are not shared (with an image or an earlier
//! record), the same sum `-v` prints as "Build cache usage" over its rows.
//! With `-v`, each image (one row per tag, `<none>` for an untagged one)
//! shows SHARED SIZE (its layers another image also uses) and UNIQUE SIZE,
//! and each cache record its size, last use (CREATED too: records are
//! rewritten when used) and whether it is shared.
//!
//! `--format` takes a Go template (see `crate::template`) over one row per
//! type with docker's fields `.Type`, `.TotalCount`, `.Active`, `.Size` and
//! `.Reclaimable`.
//!
//! `verify` re-hashes every blob and checks every tagged image, snapshot
//! name and snapshot content against its diff id (see `Store::verify_with`;
//! `--quick` skips the contents); it prints each problem as `PATH: WHAT` and
//! exits non-zero if there is any. Only `--repair` changes anything: a
//! snapshot that no longer matches its (sound) layer blob is unpacked
//! again; blobs are never repaired. Leftovers of killed processes are
//! listed as notes; `rbk prune` clears them.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use rbk_store::image::parse_rfc3339;
use rbk_store::Usage;

use serde_json::{json, Value};

use crate::args::SystemCommand;
use crate::humanize;
use crate::table::write_table;
use crate::template::Format;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    command: SystemCommand,
) -> anyhow::Result<ExitCode> {
    if let SystemCommand::EmptyTrash = command {
        let root = crate::settings::store_root(settings.root.as_deref())?;
        crate::trash::run_emptier(&root)?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = crate::runtime::open_containers(settings)?;
    match command {
        SystemCommand::Df { verbose, format } => {
            let format = format.as_deref().map(Format::parse).transpose()?;
            // Only -v lists the records; the table's row needs their count
            // and size, which the cache index keeps.
            let usage = if verbose {
                store.usage()?
            } else {
                store.usage_summary()?
            };
            let usage = &Counted::new(&store, usage)?;
            let mut out = std::io::stdout().lock();
            if let Some(format) = format.filter(|f| !matches!(f, Format::DefaultTable)) {
                let rows: Vec<Value> = df_rows(usage)
                    .into_iter()
                    .map(|r| {
                        json!({"Type": r[0], "TotalCount": r[1], "Active": r[2],
                            "Size": r[3], "Reclaimable": r[4]})
                    })
                    .collect();
                format.write(&mut out, &rows, DF_HEADERS)?;
            } else if verbose {
                df_verbose(&mut out, usage)?;
            } else {
                df(&mut out, usage)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SystemCommand::Verify { quick, repair } => {
            // A killed build's container is stopped, not reported as damage.
            crate::runtime::reap_build_containers(settings, &store)?;
            verify(&store, rbk_store::VerifyOptions { quick, repair })
        }
        SystemCommand::EmptyTrash => unreachable!("handled above"),
    }
}

const DF_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

/// Docker's four rows: TYPE TOTAL ACTIVE SIZE RECLAIMABLE.
fn df_rows(counted: &Counted) -> Vec<Vec<String>> {
    let usage = &counted.usage;
    let images = usage.images.len().to_string();
    let image_size = humanize::size4(usage.images_size);
    let active: Vec<&rbk_store::ImageUsage> = usage
        .images
        .iter()
        .filter(|i| counted.image_ids.contains(&i.id))
        .collect();
    let active_size: u64 = active.iter().map(|i| i.size).sum();
    let reclaim = |total: u64, free: u64| match total {
        0 => "0B".to_string(),
        _ => format!("{} ({}%)", humanize::size4(free), free * 100 / total),
    };
    let image_reclaim = reclaim(
        usage.images_size,
        usage.images_size.saturating_sub(active_size),
    );
    let cache_size = humanize::size4(usage.cache_size);
    let (containers, running) = (counted.containers.len(), counted.running);
    let container_size: u64 = counted.containers.iter().map(|c| c.1).sum();
    let stopped_size: u64 = counted
        .containers
        .iter()
        .filter(|c| !c.0)
        .map(|c| c.1)
        .sum();
    let volume_size: u64 = counted.volumes.iter().map(|v| v.1).sum();
    let unused_volume_size: u64 = counted.volumes.iter().filter(|v| !v.0).map(|v| v.1).sum();
    vec![
        row(&[
            "Images",
            &images,
            &active.len().to_string(),
            &image_size,
            &image_reclaim,
        ]),
        row(&[
            "Containers",
            &containers.to_string(),
            &running.to_string(),
            &humanize::size4(container_size),
            &reclaim(container_size, stopped_size),
        ]),
        row(&[
            "Local Volumes",
            &counted.volumes.len().to_string(),
            &counted.volumes.iter().filter(|v| v.0).count().to_string(),
            &humanize::size4(volume_size),
            &reclaim(volume_size, unused_volume_size),
        ]),
        row(&[
            "Build Cache",
            &usage.cache_count.to_string(),
            "0",
            &cache_size,
            &cache_size,
        ]),
    ]
}

/// The store's usage plus what its containers use.
struct Counted {
    usage: Usage,
    /// Ids of images some container was made from.
    image_ids: std::collections::BTreeSet<rbk_store::Digest>,
    /// Each container: running, and its own layer's size.
    containers: Vec<(bool, u64)>,
    running: usize,
    /// Each named volume: in use by a container, and its size.
    volumes: Vec<(bool, u64)>,
}

impl Counted {
    fn new(store: &rbk_store::Store, usage: Usage) -> anyhow::Result<Counted> {
        let records = store.containers()?;
        let containers: Vec<(bool, u64)> = records
            .iter()
            .map(|c| {
                let running = c.state() == rbk_store::ContainerState::Running;
                (running, store.container_size(&c.id))
            })
            .collect();
        let used: std::collections::BTreeSet<&str> = records
            .iter()
            .flat_map(|c| &c.mounts)
            .filter(|m| m.kind == "volume")
            .map(|m| m.source.as_str())
            .collect();
        let volumes = store
            .volumes()?
            .into_iter()
            .map(|v| (used.contains(v.as_str()), store.volume_size(&v)))
            .collect();
        Ok(Counted {
            usage,
            volumes,
            image_ids: records.iter().map(|c| c.image).collect(),
            running: containers.iter().filter(|c| c.0).count(),
            containers,
        })
    }
}

fn df(out: &mut impl Write, usage: &Counted) -> std::io::Result<()> {
    let mut table = vec![row(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"])];
    table.extend(df_rows(usage));
    write_table(out, &table)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn df_verbose(out: &mut impl Write, counted: &Counted) -> std::io::Result<()> {
    let usage = &counted.usage;
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
        let untagged = [None];
        let names: Vec<Option<&rbk_store::Reference>> = match image.references.is_empty() {
            true => untagged.to_vec(),
            false => image.references.iter().map(Some).collect(),
        };
        for reference in names {
            table.push(vec![
                reference.map_or("<none>".into(), repository),
                reference.and_then(|r| r.tag()).unwrap_or("<none>").into(),
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
    let cache_size = usage.cache_size;
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

fn verify(store: &rbk_store::Store, options: rbk_store::VerifyOptions) -> anyhow::Result<ExitCode> {
    let report = store.verify_with(options)?;
    let mut out = std::io::stdout().lock();
    for problem in &report.problems {
        writeln!(out, "{}: {}", problem.path.display(), problem.what)?;
    }
    for path in &report.repaired {
        writeln!(
            out,
            "repaired: {} did not match its layer and was unpacked again",
            path.display()
        )?;
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
        "verified {} blobs, {} images, {} snapshots ({} compared with their layer)",
        report.blobs, report.images, report.snapshots, report.snapshot_contents
    )?;
    if !report.problems.is_empty() {
        let repaired = match report.repaired.len() {
            0 => "nothing was repaired".to_string(),
            n => format!("{n} snapshot(s) repaired"),
        };
        bail!(
            "the store has {} problem(s); {repaired}",
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
