//! The image configuration a stage accumulates, as Docker writes it.
//!
//! This is the `config` object of an OCI/Docker image config, plus the history
//! entries. It rides along with a [`crate::Definition`] as metadata: it is not
//! part of any vertex digest, and the executor writes it into the final image.
//!
//! `rbk_store::image::ContainerConfig` describes the same object as stored
//! (keeping unknown fields of foreign images). The two stay apart because
//! `graph` may use `store` for `Digest` only and `store` is the leaf; the
//! executor converts this frontend-side value into the stored one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The runtime configuration of an image (Docker's `ContainerConfig` subset
/// that images carry). Field names serialise as Docker spells them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `EXPOSE`, as `port/proto` keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `ENV`, as `KEY=value`, in first-definition order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`; `None` when never set (or reset by `FROM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    /// `LABEL` (and `MAINTAINER`'s label-free form lives in the image's Author).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `SHELL`; empty means the default `["/bin/sh", "-c"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
    /// `ONBUILD` triggers, as written after the keyword.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// Set by every `CMD`, as BuildKit does for Docker image spec
    /// compatibility; inherited from base configs that carry it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
}

/// The `{}` value Docker uses in port and volume sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `HEALTHCHECK`. Durations are nanoseconds, as Docker stores them; zero
/// means "inherit the default".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`; empty
    /// (absent or `null` in a config) inherits the base image's.
    #[serde(default)]
    pub test: Vec<String>,
    /// `--interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// `--timeout`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// `--start-period`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// `--start-interval`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// `--retries`.
    #[serde(default, skip_serializing_if = "is_zero_i")]
    pub retries: i64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i(v: &i64) -> bool {
    *v == 0
}

/// One entry of an image's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What made it, as Docker writes it (`RUN /bin/sh -c make # buildkit`).
    pub created_by: String,
    /// Free-form comment (`buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// True for metadata-only instructions that produce no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}
