//! What `rbk run`'s options add to the build's runtime spec: mounts (`-v`,
//! `--mount`), `--read-only`, `--cap-add`/`--cap-drop`, `--init` and the
//! terminal. The spec is written by the same code as a `RUN` step's and
//! patched here, so build steps keep exactly their spec.

use std::path::{Path, PathBuf};

use rbk_store::{ContainerRecord, Store};
use serde_json::Value;

use crate::ops::exec::{BindMount, TmpfsMount};
use crate::{Error, Result};

/// Where `--init`'s binary appears in the container, as docker puts it.
const INIT_PATH: &str = "/sbin/docker-init";

/// The capabilities the kernel may have, by number (`CAP_CHOWN` = 0 …).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The record's mounts as the runtime takes them: named volumes become
/// their directories under the store.
pub(crate) fn mounts(
    store: &Store,
    record: &ContainerRecord,
) -> Result<(Vec<BindMount>, Vec<TmpfsMount>)> {
    let mut binds = Vec::new();
    let mut tmpfs = Vec::new();
    for m in &record.mounts {
        match m.kind.as_str() {
            "tmpfs" => tmpfs.push(TmpfsMount {
                target: m.target.clone(),
                size: m.size,
            }),
            kind => {
                let source = match kind {
                    "volume" => store.volume_dir(&m.source)?,
                    _ => PathBuf::from(&m.source),
                };
                binds.push(BindMount {
                    source,
                    target: m.target.clone(),
                    readonly: m.readonly,
                });
            }
        }
    }
    if let Some(init) = &record.init {
        binds.push(BindMount {
            source: PathBuf::from(init),
            target: INIT_PATH.into(),
            readonly: true,
        });
    }
    Ok((binds, tmpfs))
}

/// The process's argv: behind `docker-init --` with `--init`.
pub(crate) fn args(record: &ContainerRecord) -> Vec<String> {
    match record.init {
        Some(_) => [INIT_PATH.to_string(), "--".to_string()]
            .into_iter()
            .chain(record.args.iter().cloned())
            .collect(),
        None => record.args.clone(),
    }
}

/// Applies the record's read-only root and capabilities, and the terminal,
/// to the spec at `config`.
pub(crate) fn patch_spec(config: &Path, record: &ContainerRecord, terminal: bool) -> Result<()> {
    let text = std::fs::read(config).map_err(|e| Error::io("reading", config, e))?;
    let mut spec: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::OciSpec(format!("reading back the OCI spec: {e}")))?;
    spec["process"]["terminal"] = Value::Bool(terminal);
    if record.read_only {
        spec["root"]["readonly"] = Value::Bool(true);
    }
    if !record.privileged && (!record.cap_add.is_empty() || !record.cap_drop.is_empty()) {
        let current: Vec<String> = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .map(|caps| {
                caps.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let caps = Value::from(adjust_caps(current, &record.cap_add, &record.cap_drop));
        for set in ["bounding", "effective", "permitted"] {
            spec["process"]["capabilities"][set] = caps.clone();
        }
    }
    let json = serde_json::to_vec(&spec)
        .map_err(|e| Error::OciSpec(format!("serializing the OCI spec: {e}")))?;
    std::fs::write(config, json).map_err(|e| Error::io("writing", config, e))
}

/// Docker's order: drops first (`ALL` drops every one), then adds (`ALL`
/// adds every one this kernel has).
fn adjust_caps(mut caps: Vec<String>, add: &[String], drop: &[String]) -> Vec<String> {
    if drop.iter().any(|d| d == "ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .unwrap_or(40);
    let known = &CAPABILITIES[..=last.min(CAPABILITIES.len() - 1)];
    let wanted: Vec<&str> = if add.iter().any(|a| a == "ALL") {
        known.to_vec()
    } else {
        add.iter().map(String::as_str).collect()
    };
    for cap in wanted {
        if !caps.iter().any(|c| c == cap) {
            caps.push(cap.to_string());
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_then_adds() {
        let base = vec!["CAP_CHOWN".to_string(), "CAP_KILL".to_string()];
        let out = adjust_caps(
            base.clone(),
            &["CAP_NET_ADMIN".into()],
            &["CAP_KILL".into()],
        );
        assert_eq!(out, ["CAP_CHOWN", "CAP_NET_ADMIN"]);
        let out = adjust_caps(base, &["CAP_KILL".into()], &["ALL".into()]);
        assert_eq!(out, ["CAP_KILL"]);
    }
}
