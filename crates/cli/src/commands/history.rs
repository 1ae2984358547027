//! `rbk history [--no-trunc] [-q] [--format T] IMAGE`, like `docker history`.
//!
//! One row per entry of the config's `history`, newest first, with the
//! columns IMAGE, CREATED, CREATED BY, SIZE and COMMENT. The top row shows
//! the image id and the others `<missing>` (as Docker does for images it
//! did not build itself: intermediate images are not kept). CREATED BY is
//! cut to 45 characters with `…` unless `--no-trunc`; tabs become spaces.
//!
//! SIZE is `0B` for `empty_layer` entries; the other entries take the
//! manifest's layers in order. A layer's size is its uncompressed size (its
//! tar's length, see `Store::layer_size`), whatever the blob's compression;
//! the empty layer of a step that changed nothing shows `0B`, as in Docker.
//! With no `history` at all, each layer gets a row with an empty CREATED BY.
//!
//! `--format` takes a Go template (see `crate::template`) over docker's
//! fields `.ID`, `.CreatedSince`, `.CreatedAt`, `.CreatedBy`, `.Size` and
//! `.Comment`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use rbk_store::image::{parse_rfc3339, History, Image};
use rbk_store::{Descriptor, Store};
use serde_json::json;

use crate::args::HistoryArgs;
use crate::humanize;
use crate::template::Format;

/// One output row, before formatting.
struct Row {
    id: String,
    created_at: String,
    created_since: String,
    created_by: String,
    size: String,
    comment: String,
}

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: HistoryArgs,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    let found = crate::lookup::find(&store, &args.image)?;
    let rows = rows(&store, &found.image, args.no_trunc);
    let format = args.format.as_deref().map(Format::parse).transpose()?;
    let format = format.filter(|f| !matches!(f, Format::DefaultTable));
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for row in &rows {
            writeln!(out, "{}", row.id)?;
        }
    } else if let Some(format) = format {
        let data: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "ID": row.id, "CreatedSince": row.created_since, "CreatedAt": row.created_at,
                    "CreatedBy": row.created_by, "Size": row.size, "Comment": row.comment,
                })
            })
            .collect();
        let headers = [
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ];
        format.write(&mut out, &data, &headers)?;
    } else {
        let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec()];
        for row in rows {
            table.push(vec![
                row.id,
                row.created_since,
                row.created_by,
                row.size,
                row.comment,
            ]);
        }
        crate::table::write_table(&mut out, &table)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn rows(store: &Store, image: &Image, no_trunc: bool) -> Vec<Row> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut layers = image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids);
    let history = if image.config.history.is_empty() {
        vec![History::default(); image.manifest.layers.len()]
    } else {
        image.config.history.clone()
    };
    let mut rows: Vec<Row> = history
        .iter()
        .map(|h| {
            let layer = if h.empty_layer { None } else { layers.next() };
            let size = layer.map_or(0, |(blob, diff_id)| layer_size(store, blob, diff_id));
            let created_by = h.created_by.as_deref().unwrap_or("").replace('\t', " ");
            let created = h.created.as_deref();
            Row {
                id: "<missing>".into(),
                created_at: created.unwrap_or("").into(),
                created_since: created
                    .and_then(parse_rfc3339)
                    .map_or_else(|| "N/A".into(), |t| humanize::ago(now - t)),
                created_by: if no_trunc {
                    created_by
                } else {
                    ellipsis(&created_by, 45)
                },
                size: humanize::size(size),
                comment: h.comment.clone().unwrap_or_default(),
            }
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top.id = if no_trunc {
            image.id().to_string()
        } else {
            image.id().short()
        };
    }
    rows
}

/// The uncompressed size of a layer, as documented on this module.
fn layer_size(store: &Store, blob: &Descriptor, diff_id: &rbk_store::Digest) -> u64 {
    store.layer_size(blob, diff_id).unwrap_or(blob.size)
}

/// Docker's `stringutils.Ellipsis`: at most `max` characters, the last `…`.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_by_is_cut_to_45_characters() {
        let long = "/bin/sh -c apt-get update && apt-get install -y curl";
        let cut = ellipsis(long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with("install…"), "{cut}");
        assert_eq!(ellipsis("short", 45), "short");
    }
}
