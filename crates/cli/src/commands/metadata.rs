//! `rbk build --metadata-file FILE`: the build result with buildx's keys,
//! written atomically (a temporary file beside FILE, then a rename).

use std::path::Path;

use anyhow::Context;
use rbk_build::{BuildResult, Dockerfile};
use rbk_parser::checks::Finding;
use rbk_store::Reference;
use serde_json::{json, Map, Value};

use super::build_check::base64_encode;

/// The metadata document of a finished build.
pub(crate) fn document(
    result: &BuildResult,
    tags: &[Reference],
    findings: &[Finding],
    dockerfile: &Dockerfile,
) -> Value {
    let image = &result.image;
    let mut descriptor = json!({
        "mediaType": image.descriptor.media_type,
        "digest": image.descriptor.digest.to_string(),
        "size": image.descriptor.size,
    });
    if !image.descriptor.annotations.is_empty() {
        descriptor["annotations"] = json!(image.descriptor.annotations);
    }
    let config = &image.config;
    if !config.os.is_empty() && !config.architecture.is_empty() {
        let mut platform = json!({"architecture": config.architecture, "os": config.os});
        if let Some(v) = config
            .extra
            .get("variant")
            .filter(|v| v.as_str() != Some(""))
        {
            platform["variant"] = v.clone();
        }
        descriptor["platform"] = platform;
    }
    let mut doc = Map::new();
    doc.insert(
        "containerimage.config.digest".into(),
        json!(image.id().to_string()),
    );
    doc.insert("containerimage.descriptor".into(), descriptor);
    doc.insert(
        "containerimage.digest".into(),
        json!(image.descriptor.digest.to_string()),
    );
    if let Some(index) = &result.index {
        // A multi-platform build is its index, as buildx reports it.
        doc.remove("containerimage.config.digest");
        doc.insert(
            "containerimage.descriptor".into(),
            json!({"mediaType": index.media_type, "digest": index.digest.to_string(), "size": index.size}),
        );
        doc.insert(
            "containerimage.digest".into(),
            json!(index.digest.to_string()),
        );
    }
    if !tags.is_empty() {
        let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        doc.insert("image.name".into(), json!(names.join(",")));
    }
    if !findings.is_empty() {
        let warnings: Vec<Value> = findings.iter().map(|f| warning(f, dockerfile)).collect();
        doc.insert("buildx.build.warnings".into(), json!(warnings));
    }
    Value::Object(doc)
}

/// BuildKit's `VertexWarning` as buildx records it: `short` and `detail`
/// are base64 (Go's `[]byte`).
fn warning(f: &Finding, dockerfile: &Dockerfile) -> Value {
    let mut w = json!({
        "level": 1,
        "short": base64_encode(f.to_string().as_bytes()),
        "detail": [base64_encode(f.rule.description.as_bytes())],
        "sourceInfo": {
            "filename": dockerfile.name,
            "language": "Dockerfile",
            "data": base64_encode(dockerfile.text.as_bytes()),
        },
    });
    if !f.rule.url.is_empty() {
        w["url"] = json!(f.rule.url);
    }
    if f.line > 0 {
        w["range"] = json!([{"start": {"line": f.line}, "end": {"line": f.end_line}}]);
    }
    w
}

/// Writes `doc` to `path` by the output rules of `rbk_store::output`
/// (temp + rename for a new or regular file; a device or FIFO written in
/// place, never replaced).
pub(crate) fn write(path: &Path, doc: &Value) -> anyhow::Result<()> {
    let what = || format!("writing --metadata-file {}", path.display());
    let text = serde_json::to_string_pretty(doc).with_context(what)?;
    rbk_store::output::write_output(path, text.as_bytes()).with_context(what)
}
