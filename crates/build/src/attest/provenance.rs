//! The SLSA provenance v1 predicate, shaped as BuildKit writes it
//! (`buildType` `https://mobyproject.org/buildkit@v1`,
//! `externalParameters.request`, `resolvedDependencies`, `runDetails`).
//! Secrets are named by id only; build args appear in `mode=max` only.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ProvenanceMode;

/// What the provenance says about a build.
pub struct ProvenanceInput<'a> {
    /// The image name (first tag, or the image id).
    pub name: &'a str,
    /// The Dockerfile's name.
    pub dockerfile_name: &'a str,
    /// The Dockerfile's text (only its digest is recorded).
    pub dockerfile_text: &'a str,
    /// `--target`.
    pub target: Option<&'a str>,
    /// `--build-arg`s.
    pub build_args: &'a BTreeMap<String, String>,
    /// Secret ids (never values).
    pub secret_ids: Vec<String>,
    /// Base images: (reference, manifest digest, platform).
    pub materials: Vec<(String, String, String)>,
    /// The build steps, in order (`mode=max`).
    pub steps: Vec<String>,
    /// The platform rbk ran on.
    pub builder_platform: String,
    /// Start and finish times, RFC 3339.
    pub started: String,
    /// When the image was made, RFC 3339.
    pub created: &'a str,
}

pub(crate) fn predicate(input: &ProvenanceInput<'_>, mode: ProvenanceMode) -> Value {
    let digest = rbk_store::Digest::sha256_of(input.dockerfile_text.as_bytes()).to_string();
    let hex = digest.trim_start_matches("sha256:").to_string();
    let mut args = serde_json::Map::new();
    args.insert("source".into(), json!(input.dockerfile_name));
    if let Some(t) = input.target {
        args.insert("target".into(), json!(t));
    }
    if mode == ProvenanceMode::Max {
        for (k, v) in input.build_args {
            args.insert(format!("build-arg:{k}"), json!(v));
        }
    }
    let mut request = json!({
        "frontend": "dockerfile.v0",
        "args": args,
        "locals": [{"name": "context"}, {"name": "dockerfile"}],
    });
    if !input.secret_ids.is_empty() {
        let secrets: Vec<Value> = input
            .secret_ids
            .iter()
            .map(|id| json!({"id": id}))
            .collect();
        request["secrets"] = json!(secrets);
    }
    let deps: Vec<Value> = input
        .materials
        .iter()
        .map(|(name, digest, platform)| {
            json!({
                "uri": format!("pkg:docker/{name}?platform={}", platform.replace('/', "%2F")),
                "digest": {"sha256": digest.trim_start_matches("sha256:")},
            })
        })
        .collect();
    let mut internal = json!({
        "builderPlatform": input.builder_platform,
        "dockerfileDigest": {"sha256": hex},
    });
    if mode == ProvenanceMode::Max {
        let steps: Vec<Value> = input
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"id": format!("step{i}"), "name": s}))
            .collect();
        internal["buildConfig"] = json!({"llbDefinition": steps});
    }
    json!({
        "buildDefinition": {
            "buildType": "https://mobyproject.org/buildkit@v1",
            "externalParameters": {
                "configSource": {
                    "path": input.dockerfile_name,
                    "digest": {"sha256": hex},
                },
                "request": request,
            },
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": ""},
            "metadata": {
                "invocationID": format!("rbk-{}", &hex[..16]),
                "startedOn": input.started,
                "finishedOn": input.created,
                "buildkit_completeness": {"request": true, "resolvedDependencies": true},
                "buildkit_hermetic": false,
                "buildkit_metadata": {"mode": match mode { ProvenanceMode::Min => "min", ProvenanceMode::Max => "max" }},
            },
        },
    })
}
