//! `RUN` in real containers: runc over an overlay of a busybox root.
//!
//! These tests need root, `/usr/sbin/runc` and `/usr/bin/busybox` (static).
//! When one is missing they fail and say which: a privileged test never
//! passes without having run.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use rbk_exec::{
    ensure_init_layer, mount, BindMount, Entitlements, MountGuard, OutputStream, RunRequest, Runc,
    Runtime,
};
use rbk_graph::{NetworkMode, SecurityMode};

const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/usr/bin/busybox";
const APPLETS: [&str; 12] = [
    "sh", "echo", "id", "cat", "ls", "ip", "pwd", "true", "readlink", "test", "touch", "mkdir",
];

/// Fails the test, naming what is missing.
fn require() {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root privileges".to_string());
    }
    for tool in [RUNC, BUSYBOX] {
        if !Path::new(tool).exists() {
            missing.push(tool.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "privileged RUN tests cannot run, missing: {}",
        missing.join(", ")
    );
}

/// A busybox root with a user `alice` (1000) who is also in `wheel` (10).
fn busybox_root(root: &Path) {
    for dir in ["bin", "etc", "tmp", "home/alice"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\n",
    )
    .unwrap();
}

/// A mounted overlay of `lower` + the init layer, with a bundle and runc.
struct Fixture {
    _mount: MountGuard,
    lower: PathBuf,
    upper: PathBuf,
    merged: PathBuf,
    bundle: PathBuf,
    runc: Runc,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(setup: impl FnOnce(&Path)) -> Fixture {
        require();
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let p = tmp.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (lower, upper, work, merged) = (dir("lower"), dir("upper"), dir("work"), dir("merged"));
        busybox_root(&lower);
        setup(&lower);
        let init = ensure_init_layer(&tmp.path().join("init")).unwrap();
        let m = rbk_store::overlay_mount(&[lower.clone(), init], Some((&upper, &work)));
        let guard = mount(&m, &merged).unwrap();
        let runc = Runc::new(Some(RUNC.into()), tmp.path().join("state")).unwrap();
        Fixture {
            _mount: guard,
            lower,
            upper,
            merged,
            bundle: dir("bundle"),
            runc,
            _tmp: tmp,
        }
    }

    fn request<'a>(&'a self, id: &'a str, args: &'a [String]) -> RunRequest<'a> {
        RunRequest {
            id,
            rootfs: &self.merged,
            bundle: &self.bundle,
            args,
            env: &[],
            cwd: "/",
            user: "",
            network: NetworkMode::Default,
            security: SecurityMode::Sandbox,
            entitlements: Entitlements::default(),
            hostname: "rbk-test",
            mounts: &[],
            tmpfs: &[],
        }
    }

    /// Runs `request`, returning (exit code, stdout, stderr).
    fn run(&self, request: &RunRequest<'_>) -> rbk_exec::Result<(i32, String, String)> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = self.runc.run(request, &mut |stream, bytes| match stream {
            OutputStream::Stdout => out.extend_from_slice(bytes),
            OutputStream::Stderr => err.extend_from_slice(bytes),
        })?;
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        Ok((code, text(out), text(err)))
    }

    /// `sh -c script` with the default request, which must succeed.
    fn sh(&self, script: &str) -> (i32, String, String) {
        let args = sh(script);
        let id = unique_id();
        self.run(&self.request(&id, &args)).unwrap()
    }

    fn upper_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.upper)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn sh(script: &str) -> Vec<String> {
    ["/bin/sh", "-c", script].map(String::from).to_vec()
}

fn unique_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("rbk-test-{}-{n}", std::process::id())
}

/// stdout and stderr share one pipe, so the output keeps the order the
/// process wrote it in (reported as one stream).
#[test]
fn stdout_and_stderr_arrive_in_the_order_written() {
    let fx = Fixture::new(|_| {});
    let (code, out, err) = fx.sh("for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done");
    let expected: String = (1..=5).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, expected.as_str(), "")
    );
}

#[test]
fn exit_codes_are_returned() {
    let fx = Fixture::new(|_| {});
    assert_eq!(fx.sh("exit 3").0, 3);
    assert_eq!(fx.sh("exit 255").0, 255);
    // A command that is not found is the process's failure (127), not the
    // runtime's.
    assert_eq!(fx.sh("no-such-command").0, 127);
}

#[test]
fn user_by_name_gets_its_ids_groups_and_home() {
    let fx = Fixture::new(|_| {});
    let args = sh("id; echo $HOME");
    let id = unique_id();
    let mut request = fx.request(&id, &args);
    request.user = "alice";
    let (code, out, err) = fx.run(&request).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("uid=1000(alice) gid=1000(alice)"), "{out}");
    assert!(out.contains("10(wheel)"), "{out}");
    assert!(out.ends_with("/home/alice\n"), "{out}");
}

#[test]
fn missing_cwd_is_created() {
    let fx = Fixture::new(|_| {});
    let args = sh("pwd");
    let id = unique_id();
    let mut request = fx.request(&id, &args);
    request.cwd = "/work/dir";
    let (code, out, _) = fx.run(&request).unwrap();
    assert_eq!((code, out.as_str()), (0, "/work/dir\n"));
    assert!(fx.upper.join("work/dir").is_dir());
}

#[test]
fn network_none_has_only_loopback() {
    let fx = Fixture::new(|_| {});
    let args = sh("ls /sys/class/net; cat /etc/resolv.conf");
    let id = unique_id();
    let mut request = fx.request(&id, &args);
    request.network = NetworkMode::None;
    let (code, out, err) = fx.run(&request).unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some("lo"), "{out}");
    // No nameserver is reachable from an empty network namespace.
    assert!(!out.contains("nameserver"), "{out}");
}

#[test]
fn host_network_without_entitlement_is_refused() {
    let fx = Fixture::new(|_| {});
    let args = sh("true");
    let id = unique_id();
    let mut request = fx.request(&id, &args);
    request.network = NetworkMode::Host;
    let err = fx.run(&request).unwrap_err().to_string();
    assert!(
        err.contains("entitlement network.host is not granted"),
        "{err}"
    );
    request.network = NetworkMode::Default;
    request.security = SecurityMode::Insecure;
    let err = fx.run(&request).unwrap_err().to_string();
    assert!(err.contains("security.insecure is not granted"), "{err}");
    // Nothing was prepared for a refused request.
    assert!(!fx.bundle.join("config.json").exists());
}

#[test]
fn a_run_of_true_leaves_the_upper_dir_empty() {
    let fx = Fixture::new(|_| {});
    assert_eq!(fx.sh("true").0, 0);
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn writes_land_in_the_upper_dir() {
    let fx = Fixture::new(|_| {});
    assert_eq!(fx.sh("echo data > /out.txt; mkdir -p /tmp/a").0, 0);
    assert_eq!(
        std::fs::read_to_string(fx.upper.join("out.txt")).unwrap(),
        "data\n"
    );
    assert!(fx.upper.join("tmp/a").is_dir());
    assert!(!fx.lower.join("out.txt").exists());
}

#[test]
fn image_symlinks_over_dev_and_resolv_conf_are_masked() {
    let fx = Fixture::new(|root| {
        symlink("/etc/shadow-host", root.join("etc/resolv.conf")).unwrap();
        symlink("/tmp", root.join("dev")).unwrap();
    });
    let script = "test -L /dev && echo dev-is-link; test -c /dev/null && echo null-ok; \
                  cat /etc/resolv.conf";
    let (code, out, err) = fx.sh(script);
    assert_eq!(code, 0, "{err}");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(out, format!("null-ok\n{host_resolv}"));
    // runc made nothing in the image's /tmp (where /dev pointed) nor a
    // stub in the upper dir.
    assert_eq!(std::fs::read_dir(fx.lower.join("tmp")).unwrap().count(), 0);
    assert!(!fx.lower.join("etc/shadow-host").exists());
    assert!(!Path::new("/etc/shadow-host").exists());
    assert_eq!(fx.upper_entries(), Vec::<String>::new());
}

#[test]
fn extra_binds_and_tmpfs_are_mounted() {
    let fx = Fixture::new(|root| {
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("cache")).unwrap();
    });
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("in.txt"), "from host\n").unwrap();
    let binds = [BindMount {
        source: shared.path().to_path_buf(),
        target: "/src".into(),
        readonly: true,
    }];
    let tmpfs = [rbk_exec::TmpfsMount {
        target: "/cache".to_string(),
        size: 1 << 20,
    }];
    let args = sh(
        "cat /src/in.txt; touch /src/x 2>/dev/null || echo ro; touch /cache/y && echo tmp; \
            df -k /cache | tail -1 | awk '{print $2}'",
    );
    let id = unique_id();
    let mut request = fx.request(&id, &args);
    request.mounts = &binds;
    request.tmpfs = &tmpfs;
    let (code, out, err) = fx.run(&request).unwrap();
    assert_eq!(code, 0, "{err}");
    // size= reaches the tmpfs: 1 MiB is 1024 KiB in df.
    assert_eq!(out, "from host\nro\ntmp\n1024\n");
    assert!(!fx.upper.join("cache/y").exists());
}

#[test]
fn a_runtime_failure_is_an_error_and_the_container_is_deleted() {
    let fx = Fixture::new(|_| {});
    let args = vec!["/no/such/binary".to_string()];
    let id = unique_id();
    let err = fx.run(&fx.request(&id, &args)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, rbk_exec::Error::Runtime { .. }), "{msg}");
    assert!(msg.contains(&id), "{msg}");
    // `runc delete --force` ran: no state is left for the id.
    let state = fx._tmp.path().join("state");
    assert!(!state.join(&id).exists());
}

/// The effective capability mask of the container's init.
fn cap_eff(status: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).unwrap()
}

#[test]
fn insecure_with_entitlement_is_privileged() {
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    // Docker's 14 default capabilities.
    const DOCKER_DEFAULT: u64 = 0xa80425fb;
    let fx = Fixture::new(|_| {});
    let (code, status, _) = fx.sh("cat /proc/self/status");
    assert_eq!(code, 0);
    assert_eq!(cap_eff(&status), DOCKER_DEFAULT);
    let args = sh("cat /proc/self/status");
    let id = unique_id();
    let mut request = fx.request(&id, &args);
    request.security = SecurityMode::Insecure;
    request.entitlements.security_insecure = true;
    let (code, status, err) = fx.run(&request).unwrap();
    assert_eq!(code, 0, "{err}");
    assert_ne!(cap_eff(&status) & CAP_SYS_ADMIN, 0);
}

#[test]
fn mounts_are_undone_on_drop_and_single_lowers_are_read_only_binds() {
    require();
    let tmp = tempfile::tempdir().unwrap();
    let (lower, target) = (tmp.path().join("lower"), tmp.path().join("mnt"));
    std::fs::create_dir_all(lower.join("d")).unwrap();
    std::fs::create_dir(&target).unwrap();
    let m = rbk_store::overlay_mount(std::slice::from_ref(&lower), None);
    assert_eq!(m.fstype, "bind");
    let guard = mount(&m, &target).unwrap();
    assert_eq!(guard.target(), target);
    assert!(target.join("d").is_dir());
    let err = std::fs::write(target.join("x"), "x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    drop(guard);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}
