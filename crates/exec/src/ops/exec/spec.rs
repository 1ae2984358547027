//! The OCI runtime spec (`config.json`) of a `RUN` step, after Docker's
//! defaults (moby `oci/defaults.go`).

use std::path::Path;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use oci_spec::OciSpecError;
use rbk_graph::{NetworkMode, SecurityMode};

use super::hosts::EtcFiles;
use super::RunRequest;
use crate::{Error, Ids, Result};

/// `PATH` when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows, indexed by its number in the kernel's
/// capability sets (`CAP_CHOWN` = 0 … `CAP_CHECKPOINT_RESTORE` = 40).
const ALL_CAPS: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// Docker's masked paths (bind-mounted over with /dev/null or an empty
/// read-only tmpfs by runc).
const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The spec for `request`, run as `ids` in `cwd` (already cleaned and
/// created), with the bundle's `etc` files.
pub(crate) fn build(
    request: &RunRequest<'_>,
    ids: &Ids,
    cwd: &Path,
    etc: &EtcFiles,
) -> Result<Spec> {
    if request.args.is_empty() {
        return Err(Error::Invalid("RUN has no command".into()));
    }
    let privileged = request.security == SecurityMode::Insecure;
    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(request.rootfs)
                .readonly(false)
                .build()
                .map_err(spec_error)?,
        )
        .hostname(request.hostname)
        .process(process(request, ids, cwd, privileged)?)
        .mounts(mounts(request, etc, privileged)?)
        .linux(linux(request.network, privileged)?)
        .build()
        .map_err(spec_error)
}

fn process(
    request: &RunRequest<'_>,
    ids: &Ids,
    cwd: &Path,
    privileged: bool,
) -> Result<oci_spec::runtime::Process> {
    let caps: Capabilities = if privileged {
        bounding_caps()
    } else {
        DEFAULT_CAPS.into_iter().collect()
    };
    // All five sets explicitly. Inheritable and ambient are empty for
    // everyone (oci-spec's default fills them, and ambient capabilities
    // survive exec into a non-root process); a non-root user also starts
    // with empty effective and permitted sets, as under Docker and BuildKit
    // (setuid-root binaries still gain the bounding set).
    let (effective, permitted) = match ids.uid {
        0 => (caps.clone(), caps.clone()),
        _ => (Capabilities::new(), Capabilities::new()),
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps)
        .effective(effective)
        .permitted(permitted)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(spec_error)?;
    let user = UserBuilder::default()
        .uid(ids.uid)
        .gid(ids.gid)
        .additional_gids(ids.additional_gids.clone())
        .build()
        .map_err(spec_error)?;
    ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(request.args.to_vec())
        .env(env(request.env, &ids.home))
        .cwd(cwd)
        .capabilities(capabilities)
        // As Docker and BuildKit: setuid binaries (su, sudo, passwd) work
        // for a non-root USER; oci-spec's default would set no_new_privs.
        .no_new_privileges(false)
        // No limits of its own: the process inherits the builder's, as
        // BuildKit's (which resets oci-spec's and runc's NOFILE 1024).
        .rlimits(Vec::new())
        .build()
        .map_err(spec_error)
}

/// For `--security=insecure`: every capability this process can pass on,
/// i.e. those in its own bounding set (Docker lists all the kernel's, which
/// runc cannot apply when the builder itself runs with fewer).
fn bounding_caps() -> Capabilities {
    ALL_CAPS
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| {
            let set = rustix::thread::CapabilitySet::from_bits_retain(1 << bit);
            rustix::thread::capability_is_in_bounding_set(set).unwrap_or(false)
        })
        .map(|(_, cap)| cap)
        .collect()
}

/// The request's environment plus Docker's `PATH` and the user's `HOME`
/// when it sets neither.
pub(crate) fn env(env: &[String], home: &str) -> Vec<String> {
    let has = |key: &str| {
        env.iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    };
    let mut out = env.to_vec();
    if !has("PATH") {
        out.push(DEFAULT_PATH.to_string());
    }
    if !has("HOME") {
        out.push(format!("HOME={home}"));
    }
    out
}

fn linux(network: NetworkMode, privileged: bool) -> Result<oci_spec::runtime::Linux> {
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    match network {
        NetworkMode::None => kinds.push(LinuxNamespaceType::Network),
        NetworkMode::Default | NetworkMode::Host => {}
    }
    let namespaces = kinds
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(spec_error)?;
    // Deny every device but the defaults runc adds after this rule; a
    // privileged step may use any.
    let devices = LinuxDeviceCgroupBuilder::default()
        .allow(privileged)
        .access("rwm")
        .build()
        .map_err(spec_error)?;
    let resources = LinuxResourcesBuilder::default()
        .devices(vec![devices])
        .build()
        .map_err(spec_error)?;
    let strings = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let (masked, readonly) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (strings(&MASKED_PATHS), strings(&READONLY_PATHS))
    };
    LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()
        .map_err(spec_error)
}

fn mounts(request: &RunRequest<'_>, etc: &EtcFiles, privileged: bool) -> Result<Vec<Mount>> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
    ];
    for (target, source) in [
        ("/etc/hosts", &etc.hosts),
        ("/etc/resolv.conf", &etc.resolv_conf),
        ("/etc/hostname", &etc.hostname),
    ] {
        out.push(bind(target, source, true)?);
    }
    for m in request.mounts {
        out.push(bind(&m.target, &m.source, m.readonly)?);
    }
    for tmpfs in request.tmpfs {
        let size = format!("size={}", tmpfs.size);
        let mut options = vec!["nosuid", "nodev"];
        if tmpfs.size > 0 {
            options.push(&size);
        }
        out.push(mount(&tmpfs.target, "tmpfs", "tmpfs", &options)?);
    }
    Ok(out)
}

/// What changes when runc runs inside rootless rbk's user namespace (the
/// facts of `runc spec --rootless`): sysfs may only be mounted by a
/// namespace that owns its network namespace, so a step sharing the host's
/// network gets the host's `/sys` bound read-only instead; and devpts'
/// `gid=5` needs gid 5 mapped, else the option goes (ptys are then owned by
/// the step's group, as in podman's single-id mode).
pub(crate) fn for_user_namespace(spec: &mut Spec, own_netns: bool, tty_gid_mapped: bool) {
    let Some(mounts) = spec.mounts().clone() else {
        return;
    };
    let mounts = mounts
        .into_iter()
        .map(|m| {
            let mut m = m;
            if m.typ().as_deref() == Some("sysfs") && !own_netns {
                let mut options = vec!["rbind".to_string(), "nosuid".into(), "noexec".into()];
                options.push("nodev".into());
                options.push("ro".into());
                m.set_typ(Some("bind".into()));
                m.set_source(Some("/sys".into()));
                m.set_options(Some(options));
            }
            if m.typ().as_deref() == Some("devpts") && !tty_gid_mapped {
                let options = m.options().clone().unwrap_or_default();
                m.set_options(Some(options.into_iter().filter(|o| o != "gid=5").collect()));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

fn mount(target: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(target)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_error)
}

fn bind(target: &str, source: &Path, readonly: bool) -> Result<Mount> {
    let mode = if readonly { "ro" } else { "rw" };
    MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source)
        .options(vec![
            "rbind".to_string(),
            "rprivate".to_string(),
            mode.to_string(),
        ])
        .build()
        .map_err(spec_error)
}

fn spec_error(e: OciSpecError) -> Error {
    Error::OciSpec(format!("building the OCI spec: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::exec::{Entitlements, TmpfsMount};

    fn spec(network: NetworkMode, security: SecurityMode) -> Spec {
        let args = ["sh".to_string(), "-c".to_string(), "true".to_string()];
        let request = RunRequest {
            id: "t",
            rootfs: Path::new("/r"),
            bundle: Path::new("/b"),
            args: &args,
            env: &["PATH=/bin".to_string()],
            cwd: "/",
            user: "",
            network,
            security,
            entitlements: Entitlements::default(),
            hostname: "h",
            mounts: &[],
            tmpfs: &[TmpfsMount {
                target: "/cache".into(),
                size: 0,
            }],
        };
        let ids = Ids {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![27],
            home: "/home/u".into(),
        };
        let etc = EtcFiles {
            hosts: "/b/hosts".into(),
            resolv_conf: "/b/resolv.conf".into(),
            hostname: "/b/hostname".into(),
        };
        build(&request, &ids, Path::new("/"), &etc).unwrap()
    }

    fn has_netns(spec: &Spec) -> bool {
        let linux = spec.linux().as_ref().unwrap();
        linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network)
    }

    #[test]
    fn defaults_follow_docker() {
        let s = spec(NetworkMode::Default, SecurityMode::Sandbox);
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.user().uid(), 1000);
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[27][..]));
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(env.contains(&"HOME=/home/u".to_string()));
        let caps = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap();
        assert_eq!(caps.len(), 14);
        assert!(!caps.contains(&Capability::SysAdmin));
        let all = p.capabilities().as_ref().unwrap();
        assert_eq!(all.inheritable().as_ref().map(|c| c.len()), Some(0));
        assert_eq!(all.ambient().as_ref().map(|c| c.len()), Some(0));
        // uid 1000: nothing effective or permitted.
        assert_eq!(all.effective().as_ref().map(|c| c.len()), Some(0));
        assert_eq!(all.permitted().as_ref().map(|c| c.len()), Some(0));
        assert_eq!(p.no_new_privileges(), Some(false));
        assert_eq!(p.rlimits().as_ref().map(|r| r.len()), Some(0));
        assert!(!has_netns(&s));
        let linux = s.linux().as_ref().unwrap();
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        let mounts = s.mounts().as_ref().unwrap();
        let dests: Vec<_> = mounts
            .iter()
            .map(|m| m.destination().to_str().unwrap())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/etc/hosts",
            "/cache",
        ] {
            assert!(dests.contains(&d), "{d} missing from {dests:?}");
        }
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
    }

    #[test]
    fn network_none_gets_its_own_namespace() {
        assert!(has_netns(&spec(NetworkMode::None, SecurityMode::Sandbox)));
        assert!(!has_netns(&spec(NetworkMode::Host, SecurityMode::Sandbox)));
    }

    #[test]
    fn insecure_is_privileged() {
        let s = spec(NetworkMode::Default, SecurityMode::Insecure);
        let p = s.process().as_ref().unwrap();
        let caps = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap();
        assert!(caps.contains(&Capability::SysAdmin));
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    }

    #[test]
    fn capabilities_sit_at_their_kernel_numbers() {
        let bit = |cap| ALL_CAPS.iter().position(|c| *c == cap);
        assert_eq!(bit(Capability::Chown), Some(0));
        assert_eq!(bit(Capability::SysAdmin), Some(21));
        assert_eq!(bit(Capability::Mknod), Some(27));
        assert_eq!(bit(Capability::AuditRead), Some(37));
        assert_eq!(bit(Capability::CheckpointRestore), Some(40));
    }

    #[test]
    fn env_defaults_only_when_missing() {
        let e = env(&["HOME=/x".to_string()], "/root");
        assert_eq!(e, ["HOME=/x", DEFAULT_PATH]);
        let e = env(&[], "/root");
        assert_eq!(e, [DEFAULT_PATH, "HOME=/root"]);
    }
}
