//! `rbk build`'s flags and environment resolved into the engine's
//! [`BuildRequest`].

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use rbk_build::{BuildRequest, Output};
use rbk_exec::Entitlements;
use rbk_store::Reference;

use super::secrets::{parse_secrets, parse_ssh};
use super::{FrontendSettings, GlobalSettings};
use crate::args::BuildArgs;

/// The request `args` (with `frontend`, the Dockerfile and build args
/// already read) describe, under the global `settings`.
pub(crate) fn build_request(
    settings: &GlobalSettings,
    registries: &rbk_build::Registries,
    args: &BuildArgs,
    frontend: FrontendSettings,
) -> anyhow::Result<BuildRequest> {
    let supply = &args.supply;
    let outputs = outputs(args)?;
    Ok(BuildRequest {
        source_date_epoch: source_date_epoch(&frontend.build_args, |k| std::env::var(k).ok())?,
        dockerfile: frontend.dockerfile,
        context: frontend.context,
        target: frontend.target,
        build_args: frontend.build_args,
        platform: frontend.platform,
        host_platform: super::host_platform(),
        platforms: frontend.platforms,
        binfmt_dir: super::binfmt_dir(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        always_pull: args.pull,
        strict: args.strict,
        labels: parse_labels(&args.labels)?,
        entitlements: parse_entitlements(&args.allow)?,
        secrets: parse_secrets(&args.secrets)?,
        ssh: parse_ssh(&args.ssh)?,
        tags: parse_tags(&args.tags)?,
        outputs,
        compression: super::compression(args.compression),
        cache_from: parse_all(&args.cache_from, |s| {
            rbk_build::parse_cache_from(s, registries)
        })?,
        cache_to: parse_all(&args.cache_to, |s| rbk_build::parse_cache_to(s, registries))?,
        jobs: settings.jobs,
        snapshotter: settings.snapshotter,
        annotations: parse_all(&supply.annotations, rbk_build::Annotation::parse)?,
        attest: rbk_build::attest::AttestOptions::parse(
            &supply.attest,
            supply.sbom.as_deref(),
            supply.provenance.as_deref(),
        )?,
        remote: settings.remote.clone(),
        build_contexts: parse_all(&args.build_contexts, rbk_build::BuildContext::parse)?,
    })
}

/// Every value of a repeated flag through `parse`.
fn parse_all<T, C: FromIterator<T>>(
    raw: &[String],
    parse: impl Fn(&str) -> rbk_build::Result<T>,
) -> rbk_build::Result<C> {
    raw.iter().map(|s| parse(s)).collect()
}

/// `--output`s, and `--push` as a registry output.
fn outputs(args: &BuildArgs) -> rbk_build::Result<Vec<Output>> {
    let mut outputs: Vec<Output> = parse_all(&args.outputs, Output::parse)?;
    if args.push {
        outputs.push(Output::Registry(None));
    }
    Ok(outputs)
}

fn parse_tags(raw: &[String]) -> anyhow::Result<Vec<Reference>> {
    raw.iter()
        .map(|t| {
            t.parse::<Reference>()
                .with_context(|| format!("invalid tag {t:?} given with -t"))
        })
        .collect()
}

/// `SOURCE_DATE_EPOCH` (seconds), when set: the build arg of that name,
/// else the environment variable `env` reads (which buildx passes on as
/// that build arg).
fn source_date_epoch(
    build_args: &BTreeMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<i64>> {
    let value = match build_args.get("SOURCE_DATE_EPOCH") {
        Some(v) => Some(v.clone()),
        None => env("SOURCE_DATE_EPOCH"),
    };
    match value {
        Some(v) if !v.is_empty() => {
            Ok(Some(v.parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}

fn parse_labels(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("invalid --label {l:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn parse_entitlements(raw: &[String]) -> anyhow::Result<Entitlements> {
    let mut e = Entitlements::default();
    for name in raw {
        match name.as_str() {
            "network.host" => e.network_host = true,
            "security.insecure" => e.security_insecure = true,
            other => bail!(
                "unknown entitlement {other:?} given with --allow (expected network.host or security.insecure)"
            ),
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_prefers_the_build_arg_to_the_environment() {
        let env = |k: &str| (k == "SOURCE_DATE_EPOCH").then(|| "5".to_string());
        let mut args = BTreeMap::new();
        assert_eq!(source_date_epoch(&args, env).unwrap(), Some(5));
        args.insert("SOURCE_DATE_EPOCH".to_string(), "7".to_string());
        assert_eq!(source_date_epoch(&args, env).unwrap(), Some(7));
        args.insert("SOURCE_DATE_EPOCH".to_string(), String::new());
        assert_eq!(source_date_epoch(&args, env).unwrap(), None);
        args.insert("SOURCE_DATE_EPOCH".to_string(), "soon".to_string());
        assert!(source_date_epoch(&args, env).is_err());
    }
}
