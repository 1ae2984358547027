//! `RUN` steps in real containers: overlay mounts, the init layer, the OCI
//! spec and the runtime that executes it.
//!
//! # Lifecycle
//!
//! The solver mounts the step's root with [`mount`] (an overlay of the
//! snapshot chain, the [init layer](ensure_init_layer) on top of the lower
//! dirs, and a fresh upper dir), fills a [`RunRequest`] and hands it to a
//! [`Runtime`]. [`Runc`] writes `config.json`, `hosts`, `resolv.conf` and
//! `hostname` into the request's bundle, runs `runc run`, streams the
//! process's output and always deletes the container afterwards. The upper
//! dir then holds exactly what the process wrote.
//!
//! # Decisions
//!
//! - **Network.** [`NetworkMode::Default`](rbk_graph::NetworkMode::Default)
//!   shares the host's network namespace: BuildKit's OCI worker does the
//!   same when no CNI is configured, and rbk has no bridge network of its
//!   own. `None` gives a new, empty network namespace (runc brings `lo`
//!   up). `Host` is the same namespace as `Default` but needs the
//!   `network.host` entitlement, as in BuildKit.
//! - **Entitlements** are checked in one place ([`check_entitlements`]),
//!   before anything is written; the match is exhaustive, so a new mode
//!   cannot silently fall into a permissive branch (docs/security.md rule 3).
//! - **Confinement** follows Docker's defaults: namespaces pid, ipc, uts,
//!   mount (and net unless shared), Docker's 14 default capabilities, its
//!   masked and read-only paths, a device cgroup that denies everything but
//!   runc's default devices. `--security=insecure` gives every capability,
//!   no masked or read-only paths, a writable `/sys` and an unrestricted
//!   device cgroup (host devices are not bind-mounted). No seccomp or
//!   AppArmor profile is applied yet.
//! - **`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`** are files in
//!   the bundle, bind-mounted read-only (as BuildKit does). Their
//!   mountpoints, and `/dev`, `/proc`, `/sys`, always exist as real entries
//!   in the init layer, so runc neither creates stubs in the upper dir nor
//!   follows an image's symlinks to host paths (CVE-2026-41579).
//! - **Working directory** is created, if missing, fd-relative inside the
//!   root with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (CVE-2024-21626),
//!   owned by root with mode 0755, as runc would.
//! - **Runtime version.** [`Runc::new`] refuses runc without the
//!   CVE-2024-21626 fix: upstream 1.1.12 or later, or a Debian 12 build
//!   (`+deb12uN`, N >= 1) that backports it. It does not yet require the
//!   CVE-2025-31133/52565/52881 fixes (1.2.8/1.3.3) that docs/security.md rule 10
//!   lists, since Debian 12's runc is the supported runtime; the init layer
//!   is what covers CVE-2026-41579.
//! - **Mountpoint stubs** for extra binds and tmpfs targets that do not
//!   exist in the root are created by runc in the upper dir; removing them
//!   before the layer is committed is the solver's job (as BuildKit's
//!   mount-stub cleanup).

mod cwd;
mod failed;
mod hosts;
mod init_layer;
mod runc;
mod secrets;
mod solve;
mod spec;

pub(crate) use solve::resolve_inside;

use std::path::{Path, PathBuf};

use rbk_graph::{NetworkMode, SecurityMode};

pub use init_layer::ensure_init_layer;
pub use runc::Runc;
pub(crate) use runc::{become_subreaper, runtime_errors, wait_init};
pub(crate) use secrets::{AgentProxy, SecretDir};
pub use secrets::{Secret, MAX_SECRET_SIZE};

/// Which output stream of the process a chunk of bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// What the build was granted on the command line (`--allow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `network.host`: `RUN --network=host` is allowed.
    pub network_host: bool,
    /// `security.insecure`: `RUN --security=insecure` is allowed.
    pub security_insecure: bool,
}

/// An extra bind mount of a host path into the container (`RUN --mount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// The host path, prepared by the solver.
    pub source: PathBuf,
    /// Where it appears in the container (absolute).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A fresh tmpfs in the container (`RUN --mount=type=tmpfs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmpfsMount {
    /// Where it appears in the container (absolute).
    pub target: String,
    /// Its size limit in bytes (`size=`); 0 for the kernel's default (half
    /// of RAM), as BuildKit leaves it.
    pub size: u64,
}

/// Everything needed to run one `RUN` step.
#[derive(Clone, Debug)]
pub struct RunRequest<'a> {
    /// Unique container id.
    pub id: &'a str,
    /// The already-mounted, writable root (the merged overlay).
    pub rootfs: &'a Path,
    /// An empty scratch directory for `config.json` and the files that are
    /// bind-mounted into the container.
    pub bundle: &'a Path,
    /// The command line (`argv`).
    pub args: &'a [String],
    /// Environment, `KEY=value`.
    pub env: &'a [String],
    /// Working directory inside the container.
    pub cwd: &'a str,
    /// `USER` value (`name`, `uid`, `name:group`…; empty is root).
    pub user: &'a str,
    /// `RUN --network`.
    pub network: NetworkMode,
    /// `RUN --security`.
    pub security: SecurityMode,
    /// What the build was granted.
    pub entitlements: Entitlements,
    /// The container's hostname.
    pub hostname: &'a str,
    /// Extra bind mounts.
    pub mounts: &'a [BindMount],
    /// `RUN --mount=type=tmpfs` mounts.
    pub tmpfs: &'a [TmpfsMount],
}

/// An OCI runtime that can run a [`RunRequest`] to completion.
pub trait Runtime: Send + Sync {
    /// Runs the request's process to completion, streaming its output;
    /// returns its exit code (128 + signal if it was killed).
    fn run(
        &self,
        request: &RunRequest<'_>,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> crate::Result<i32>;
}

/// The one place where a request's privileges are checked against the
/// granted entitlements. `Err` carries the message for the user; a plain
/// `String` because the runtime wraps it into its [`crate::Error::Runtime`]
/// (named after the runtime binary), which this module does not know.
pub(crate) fn check_entitlements(request: &RunRequest<'_>) -> Result<(), String> {
    let granted = request.entitlements;
    match request.network {
        NetworkMode::Default | NetworkMode::None => {}
        NetworkMode::Host if granted.network_host => {}
        NetworkMode::Host => {
            return Err("entitlement network.host is not granted (--network=host \
                        needs --allow network.host)"
                .into())
        }
    }
    match request.security {
        SecurityMode::Sandbox => {}
        SecurityMode::Insecure if granted.security_insecure => {}
        SecurityMode::Insecure => {
            return Err("entitlement security.insecure is not granted \
                        (--security=insecure needs --allow security.insecure)"
                .into())
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        network: NetworkMode,
        security: SecurityMode,
        e: Entitlements,
    ) -> RunRequest<'static> {
        RunRequest {
            id: "x",
            rootfs: Path::new("/nonexistent"),
            bundle: Path::new("/nonexistent"),
            args: &[],
            env: &[],
            cwd: "/",
            user: "",
            network,
            security,
            entitlements: e,
            hostname: "h",
            mounts: &[],
            tmpfs: &[],
        }
    }

    #[test]
    fn privileges_need_entitlements() {
        let none = Entitlements::default();
        let all = Entitlements {
            network_host: true,
            security_insecure: true,
        };
        let sandbox = SecurityMode::Sandbox;
        assert!(check_entitlements(&request(NetworkMode::Default, sandbox, none)).is_ok());
        assert!(check_entitlements(&request(NetworkMode::None, sandbox, none)).is_ok());
        let err = check_entitlements(&request(NetworkMode::Host, sandbox, none)).unwrap_err();
        assert!(err.contains("network.host is not granted"), "{err}");
        let insecure = request(NetworkMode::Default, SecurityMode::Insecure, none);
        let err = check_entitlements(&insecure).unwrap_err();
        assert!(err.contains("security.insecure is not granted"), "{err}");
        let host_only = Entitlements {
            network_host: true,
            security_insecure: false,
        };
        assert!(check_entitlements(&request(NetworkMode::Host, sandbox, host_only)).is_ok());
        assert!(
            check_entitlements(&request(NetworkMode::Host, SecurityMode::Insecure, all)).is_ok()
        );
    }
}
