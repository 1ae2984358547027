//! `rbk images [-a] [-q] [--digests] [--no-trunc] [-f FILTER] [--format T]
//! [REPOSITORY[:TAG]]`, like `docker images`.
//!
//! One row per tag, and one `<none> <none>` row per untagged image (a build
//! without `-t`), newest first. SIZE is the image's uncompressed size (see
//! `Store::layer_size`), so an image id shows the same size whether it was
//! built, loaded or pulled.
//!
//! `REPOSITORY[:TAG]` and `--filter reference=PATTERN` match as docker's
//! `reference.FamiliarMatch`: the glob (Go's `path.Match`: `*`, `?`, `[…]`,
//! none crossing `/`) against the familiar `name:tag`, then against the
//! familiar name (so `app` lists every tag of `app`, and
//! `localhost:5000/foo` the repository on that registry). A pattern without
//! glob characters that is a valid reference also matches its normalised
//! form (`docker.io/library/app`). Other filters: `dangling=true|false`,
//! `label=KEY` / `label=KEY=VALUE`, `before=IMAGE` and `since=IMAGE`
//! (created strictly before / after that image). Values of one key are
//! alternatives; different keys must all match. `-a` also lists
//! intermediate images, which rbk does not keep: it changes nothing.
//!
//! `--format` takes a Go template (see `crate::template`) over docker's
//! fields `.Repository`, `.Tag`, `.ID`, `.Digest`, `.CreatedSince`,
//! `.CreatedAt`, `.Size`, `.VirtualSize`, `.SharedSize`, `.UniqueSize` and
//! `.Containers`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use rbk_store::image::{format_rfc3339, parse_rfc3339, Image};
use rbk_store::{Descriptor, Digest, Reference, Store};
use serde_json::json;

use crate::args::ImagesArgs;
use crate::humanize;
use crate::table::write_table;
use crate::template::Format;

/// One row before formatting.
struct Row {
    reference: Option<Reference>,
    digest: Digest,
    id: Digest,
    created: Option<i64>,
    size: u64,
    labels: BTreeMap<String, String>,
}

const HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("Containers", "CONTAINERS"),
];

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: ImagesArgs,
) -> anyhow::Result<ExitCode> {
    let format = args.format.as_deref().map(Format::parse).transpose()?;
    let store = settings.open_store()?;
    let filters = Filters::parse(&store, &args)?;
    let rows: Vec<Row> = rows(&store)?
        .into_iter()
        .filter(|r| filters.keep(r))
        .collect();
    let mut out = std::io::stdout().lock();
    let id = |r: &Row| match args.no_trunc {
        true => r.id.to_string(),
        false => r.id.short(),
    };
    if args.quiet {
        for row in &rows {
            writeln!(out, "{}", id(row))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let since = |r: &Row| r.created.map_or("N/A".into(), |t| humanize::ago(now - t));
    if let Some(format) = format.filter(|f| !matches!(f, Format::DefaultTable)) {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                let (repository, tag) = names(r);
                json!({
                    "Containers": "N/A",
                    "CreatedAt": r.created.map_or(String::new(), created_at),
                    "CreatedSince": since(r),
                    "Digest": r.digest.to_string(),
                    "ID": id(r),
                    "Repository": repository,
                    "SharedSize": "N/A",
                    "Size": humanize::size(r.size),
                    "Tag": tag,
                    "UniqueSize": "N/A",
                    "VirtualSize": humanize::size(r.size),
                })
            })
            .collect();
        format.write(&mut out, &items, HEADERS)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    if args.digests {
        header.insert(2, "DIGEST");
    }
    let mut table = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in &rows {
        let (repository, tag) = names(r);
        let mut cells = vec![repository, tag, id(r), since(r), humanize::size(r.size)];
        if args.digests {
            cells.insert(2, r.digest.to_string());
        }
        table.push(cells);
    }
    write_table(&mut out, &table)?;
    Ok(ExitCode::SUCCESS)
}

/// REPOSITORY and TAG cells: `<none>` for an untagged image.
fn names(row: &Row) -> (String, String) {
    let Some(reference) = &row.reference else {
        return ("<none>".into(), "<none>".into());
    };
    let familiar = reference.familiar();
    let repo = match reference.tag() {
        Some(tag) => familiar
            .strip_suffix(&format!(":{tag}"))
            .unwrap_or(&familiar),
        None => familiar.split('@').next().unwrap_or(&familiar),
    };
    let tag = reference.tag().unwrap_or("<none>");
    (repo.to_string(), tag.to_string())
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05 +0000 UTC`.
fn created_at(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    let text = format_rfc3339(t);
    format!("{} +0000 UTC", text.trim_end_matches('Z').replace('T', " "))
}

/// Every tagged and untagged image, newest first: one read of the image
/// index, and each image's summary (cached in the store, so a big store
/// costs one file, not a manifest and a config per image).
fn rows(store: &Store) -> anyhow::Result<Vec<Row>> {
    let (list, mut summaries) = store.image_summaries_beside(|| store.image_list());
    let list = list?;
    let mut entries: Vec<(Option<Reference>, Descriptor)> =
        list.tagged.into_iter().map(|(r, d)| (Some(r), d)).collect();
    entries.extend(list.untagged.into_iter().map(|(_, d)| (None, d)));
    let mut rows = Vec::with_capacity(entries.len());
    for (reference, descriptor) in entries {
        let summary = summaries.get(store, &descriptor)?;
        // The digest the repository has in its registry (Docker's repo
        // digest) when rbk pulled or pushed it; else the local manifest's.
        let digest = reference
            .as_ref()
            .and_then(|r| repo_digest(&list.repo_digests, &summary.id, r))
            .unwrap_or(descriptor.digest);
        rows.push(Row {
            reference,
            digest,
            id: summary.id,
            created: summary.created.as_deref().and_then(parse_rfc3339),
            size: summary.size(),
            labels: summary.labels.clone(),
        });
    }
    // A cache: failing to write it back (a read-only store) changes no row.
    let _ = summaries.save(store);
    rows.sort_by_key(|r| std::cmp::Reverse(r.created));
    Ok(rows)
}

/// The recorded `repository@digest` of image `id` for `reference`'s
/// repository.
fn repo_digest(
    repo_digests: &BTreeMap<Digest, Vec<String>>,
    id: &Digest,
    reference: &Reference,
) -> Option<Digest> {
    let prefix = format!("{}@", reference.familiar_name());
    repo_digests
        .get(id)?
        .iter()
        .find_map(|d| d.strip_prefix(&prefix)?.parse().ok())
}

fn created(image: &Image) -> Option<i64> {
    image.config.created.as_deref().and_then(parse_rfc3339)
}

/// `--filter` values and the REPOSITORY argument.
#[derive(Default)]
struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    before: Option<i64>,
    since: Option<i64>,
}

impl Filters {
    fn parse(store: &Store, args: &ImagesArgs) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        f.references.extend(args.repository.iter().cloned());
        for raw in &args.filters {
            let Some((key, value)) = raw.split_once('=') else {
                bail!("invalid filter {raw:?}: expected KEY=VALUE");
            };
            match key.to_ascii_lowercase().as_str() {
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={value}': expected true or false"),
                    })
                }
                "reference" => f.references.push(value.to_string()),
                "label" => f.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "before" => f.before = Some(created_of(store, value)?),
                "since" => f.since = Some(created_of(store, value)?),
                _ => bail!("invalid filter '{key}'"),
            }
        }
        Ok(f)
    }

    fn keep(&self, row: &Row) -> bool {
        if self.dangling.is_some_and(|d| d != row.reference.is_none()) {
            return false;
        }
        if !self.references.is_empty() {
            let Some(reference) = &row.reference else {
                return false;
            };
            if !self
                .references
                .iter()
                .any(|p| reference_matches(p, reference))
            {
                return false;
            }
        }
        let labelled = |(k, v): &(String, Option<String>)| match (row.labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !self.labels.iter().all(labelled) {
            return false;
        }
        let created = row.created.unwrap_or(i64::MIN);
        self.before.is_none_or(|t| created < t) && self.since.is_none_or(|t| created > t)
    }
}

fn created_of(store: &Store, name: &str) -> anyhow::Result<i64> {
    let found = crate::lookup::find(store, name)?;
    Ok(created(&found.image).unwrap_or(i64::MIN))
}

/// docker's `reference.FamiliarMatch`, plus normalised names (module docs).
fn reference_matches(pattern: &str, reference: &Reference) -> bool {
    let familiar = reference.familiar();
    let name = match reference.tag() {
        Some(tag) => familiar
            .strip_suffix(&format!(":{tag}"))
            .unwrap_or(&familiar),
        None => familiar.split('@').next().unwrap_or(&familiar),
    };
    if glob(pattern, &familiar) || glob(pattern, name) {
        return true;
    }
    if pattern.contains(['*', '?', '[']) {
        return false;
    }
    let Ok(want) = pattern.parse::<Reference>() else {
        return false;
    };
    let last = pattern.rsplit('/').next().unwrap_or(pattern);
    match last.contains(':') || pattern.contains('@') {
        true => want == *reference,
        false => want.name() == reference.name(),
    }
}

/// Go's `path.Match` (without escapes): `*` and `?` never match `/`.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len())
            .take_while(|&i| i == 0 || t[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => t.first().is_some_and(|&c| c != '/') && glob_at(&p[1..], &t[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|&c| c == ']') else {
                return false;
            };
            let (class, negate) = match p.get(1) {
                Some('^') => (&p[2..end], true),
                _ => (&p[1..end], false),
            };
            let Some(&c) = t.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if class.get(i + 1) == Some(&'-') && i + 2 < class.len() {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && c != '/' && glob_at(&p[end + 1..], &t[1..])
        }
        Some(&c) => t.first() == Some(&c) && glob_at(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_match_as_docker_does() {
        let r = |s: &str| s.parse::<Reference>().unwrap();
        assert!(reference_matches("app", &r("app:1")));
        assert!(reference_matches("app:1", &r("app:1")));
        assert!(!reference_matches("app:2", &r("app:1")));
        assert!(reference_matches(
            "localhost:5000/foo",
            &r("localhost:5000/foo:x")
        ));
        assert!(!reference_matches("localhost:5000/foo", &r("foo:x")));
        assert!(reference_matches(
            "localhost:5000/foo:x",
            &r("localhost:5000/foo:x")
        ));
        assert!(reference_matches("docker.io/library/app", &r("app:1")));
        assert!(reference_matches("a*", &r("app:1")));
        assert!(reference_matches("*:1", &r("app:1")));
        assert!(!reference_matches("*", &r("user/app:1")));
        assert!(reference_matches("user/*", &r("user/app:1")));
        assert!(reference_matches("ap[a-z]", &r("app:1")));
    }
}
