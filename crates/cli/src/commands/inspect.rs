//! `rbk inspect [--format T] IMAGE...`: a JSON array like `docker image inspect`.
//!
//! Fields, in Docker's order: `Id`, `RepoTags`, `RepoDigests` (always empty:
//! rbk does not pull yet), `Parent` (`""`: rbk records no parent images),
//! `Comment`, `Created`, `DockerVersion` (`""`), `Author`, `Config` (the image
//! config's `config` object as stored), `Architecture`, `Variant` (when set),
//! `Os`, `Size` (blob bytes, as `rbk images` shows), `GraphDriver`
//! (`{"Name":"overlay","Data":null}`), `RootFS` (`Type` and the diff ids as
//! `Layers`) and `Metadata.LastTagTime` (rbk does not record tag times:
//! Go's zero time, as Docker shows for images never tagged locally).
//!
//! `--format` takes a subset of Go templates: literal text, `{{.Field}}`
//! and dotted paths (`{{.Config.Env}}`, `{{.RootFS.Layers}}`), `{{.}}`, and
//! `{{json PATH}}`. Values print like Go's `fmt`: strings bare, lists as
//! `[a b]`, objects as `map[k:v]`, null as `<nil>`, missing fields as
//! `<no value>`. Anything else in `{{ }}` is an error.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use rbk_store::image::Image;
use rbk_store::{Digest, Reference, Store};
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::InspectArgs;

/// An image found by name or id.
pub(crate) struct Found {
    pub(crate) image: Image,
    /// Every reference naming this image id, sorted.
    pub(crate) references: Vec<Reference>,
}

/// Finds `name` the way Docker does: as a reference first, then as a full
/// or short image id (with or without `sha256:`).
pub(crate) fn find(store: &Store, name: &str) -> anyhow::Result<Found> {
    let images = store.images()?;
    let by_ref = name
        .parse::<Reference>()
        .ok()
        .and_then(|r| images.iter().find(|(have, _)| *have == r));
    let mut found: Option<(Digest, rbk_store::Descriptor)> = None;
    let mut ids = Vec::with_capacity(images.len());
    for (reference, desc) in &images {
        let id = store.read_image(desc)?.id();
        ids.push((reference.clone(), id));
        if by_ref.is_some_and(|(r, _)| r == reference) {
            found = Some((id, desc.clone()));
        }
    }
    if found.is_none() {
        found = find_by_id(&images, &ids, name)?;
    }
    let Some((id, desc)) = found else {
        bail!("No such image: {name}");
    };
    let references = ids.into_iter().filter(|e| e.1 == id).map(|e| e.0).collect();
    Ok(Found {
        image: store.read_image(&desc)?,
        references,
    })
}

fn find_by_id(
    images: &[(Reference, rbk_store::Descriptor)],
    ids: &[(Reference, Digest)],
    name: &str,
) -> anyhow::Result<Option<(Digest, rbk_store::Descriptor)>> {
    let prefix = name.strip_prefix("sha256:").unwrap_or(name);
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let prefix = prefix.to_ascii_lowercase();
    let matches: Vec<usize> = (0..ids.len())
        .filter(|i| ids[*i].1.hex().starts_with(&prefix))
        .collect();
    let distinct: std::collections::BTreeSet<Digest> = matches.iter().map(|i| ids[*i].1).collect();
    match distinct.len() {
        0 => Ok(None),
        1 => Ok(Some((ids[matches[0]].1, images[matches[0]].1.clone()))),
        n => bail!("image id prefix {name:?} is ambiguous: it matches {n} images"),
    }
}

pub(crate) fn run(root: Option<&Path>, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = crate::settings::open_store(root)?;
    let mut docs = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match find(&store, name) {
            Ok(found) => docs.push(document(&found)?),
            Err(e) => {
                crate::render::error(&e);
                failed = true;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match &args.format {
        Some(template) => {
            for doc in &docs {
                let data = serde_json::to_value(doc)?;
                writeln!(out, "{}", render_template(template, &data)?)?;
            }
        }
        None => {
            serde_json::to_writer_pretty(&mut out, &docs)?;
            writeln!(out)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The `docker image inspect` object, fields in Docker's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: &'static str,
    comment: Value,
    created: String,
    docker_version: &'static str,
    author: String,
    config: Value,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<Value>,
    os: String,
    size: u64,
    graph_driver: Value,
    #[serde(rename = "RootFS")]
    root_fs: Value,
    metadata: Value,
}

/// The `docker image inspect` object for one image.
fn document(found: &Found) -> anyhow::Result<Document> {
    let image = &found.image;
    let config = &image.config;
    let container = match &config.config {
        Some(c) => serde_json::to_value(c)?,
        None => json!({}),
    };
    let layers: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    let doc = Document {
        id: image.id().to_string(),
        repo_tags: found.references.iter().map(|r| r.familiar()).collect(),
        repo_digests: Vec::new(),
        parent: "",
        comment: config.extra.get("comment").cloned().unwrap_or(json!("")),
        created: config
            .created
            .clone()
            .unwrap_or("0001-01-01T00:00:00Z".into()),
        docker_version: "",
        author: config.author.clone().unwrap_or_default(),
        config: container,
        architecture: config.architecture.clone(),
        variant: config.extra.get("variant").cloned(),
        os: config.os.clone(),
        size: image.size(),
        graph_driver: json!({"Data": null, "Name": "overlay"}),
        root_fs: json!({"Type": config.rootfs.kind, "Layers": layers}),
        metadata: json!({"LastTagTime": "0001-01-01T00:00:00Z"}),
    };
    Ok(doc)
}

/// Renders the Go-template subset documented on this module.
pub(crate) fn render_template(template: &str, data: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("template {template:?}: unclosed {{{{"))?;
        out.push_str(&action(after[..end].trim(), data, template)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn action(action: &str, data: &Value, template: &str) -> anyhow::Result<String> {
    if let Some(path) = action.strip_prefix("json ") {
        let value = lookup(data, path.trim(), template)?;
        return Ok(value.map_or_else(|| "null".into(), |v| v.to_string()));
    }
    Ok(match lookup(data, action, template)? {
        Some(v) => go_fmt(v),
        None => "<no value>".into(),
    })
}

fn lookup<'a>(data: &'a Value, path: &str, template: &str) -> anyhow::Result<Option<&'a Value>> {
    if path == "." {
        return Ok(Some(data));
    }
    let Some(fields) = path.strip_prefix('.') else {
        bail!("template {template:?}: unsupported action {{{{{path}}}}} (supported: .Field.Path, json .Field)");
    };
    let mut value = data;
    for field in fields.split('.') {
        if field.is_empty() || !field.chars().all(|c| c.is_alphanumeric() || c == '_') {
            bail!("template {template:?}: bad field name {field:?}");
        }
        match value.get(field) {
            Some(v) => value = v,
            None => return Ok(None),
        }
    }
    Ok(Some(value))
}

/// A JSON value printed the way Go's `fmt` prints the decoded Go value.
fn go_fmt(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_fmt).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_print_like_go() {
        let data =
            json!({"Id": "sha256:ab", "Config": {"Env": ["A=1", "B=2"], "Cmd": null}, "Size": 12});
        let r = |t: &str| render_template(t, &data).unwrap();
        assert_eq!(r("{{.Id}}"), "sha256:ab");
        assert_eq!(
            r("env={{.Config.Env}} size={{ .Size }}"),
            "env=[A=1 B=2] size=12"
        );
        assert_eq!(r("{{json .Config.Env}}"), r#"["A=1","B=2"]"#);
        assert_eq!(r("{{.Config.Cmd}} {{.Nope}}"), "<nil> <no value>");
        assert!(render_template("{{if .Id}}", &data).is_err());
        assert!(render_template("{{.Id", &data).is_err());
    }
}
