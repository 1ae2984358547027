//! `rbk images [-q] [--digests] [--no-trunc] [REPOSITORY[:TAG]]`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use rbk_store::image::parse_rfc3339;
use rbk_store::{Reference, Store};

use crate::args::ImagesArgs;
use crate::humanize;

pub(crate) fn run(root: Option<&Path>, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = crate::settings::open_store(root)?;
    let rows = rows(&store, &args)?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for row in rows {
            writeln!(out, "{}", row[if args.digests { 3 } else { 2 }])?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    if args.digests {
        header.insert(2, "DIGEST");
    }
    let mut table = vec![header.iter().map(|s| s.to_string()).collect()];
    table.extend(rows);
    write_table(&mut out, &table)?;
    Ok(ExitCode::SUCCESS)
}

fn matches(filter: &Option<String>, r: &Reference) -> bool {
    let Some(f) = filter else { return true };
    match f.parse::<Reference>() {
        Ok(want) if f.contains(':') => want == *r,
        Ok(want) => want.name() == r.name(),
        Err(_) => false,
    }
}

fn rows(store: &Store, args: &ImagesArgs) -> anyhow::Result<Vec<Vec<String>>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut rows = Vec::new();
    for (reference, descriptor) in store.images()? {
        if !matches(&args.repository, &reference) {
            continue;
        }
        let image = store.read_image(&descriptor)?;
        let familiar = reference.familiar();
        let repo = familiar
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map_or(familiar.as_str(), |(name, _)| name)
            .to_string();
        let id = if args.no_trunc {
            image.id().to_string()
        } else {
            image.id().short()
        };
        let created = image
            .config
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or_else(|| "N/A".to_string(), |t| humanize::ago(now - t));
        let mut row = vec![
            repo,
            reference.tag().unwrap_or("<none>").to_string(),
            id,
            created,
            humanize::size(image.size()),
        ];
        if args.digests {
            row.insert(2, descriptor.digest.to_string());
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`, as the docker CLI uses.
pub(crate) fn write_table(out: &mut impl Write, table: &[Vec<String>]) -> std::io::Result<()> {
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            let w = table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                + 3;
            w.max(10)
        })
        .collect();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}
