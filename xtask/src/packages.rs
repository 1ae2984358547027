//! The real components the test suite drives: `runc`, `busybox`
//! (busybox-static), `skopeo`, `umoci`, `dockerd` (docker.io, for the
//! acceptance, differential and interop suites), `buildah` and `podman` (the
//! interop matrix), `debootstrap` (the real Debian base), qemu-user-static
//! with binfmt-support (multi-platform builds) and `chromium` (loads
//! `rbk analyze --html` pages), `tmux` (a terminal for `run -it`), `rpm`
//! and `golang-go` (the SBOM's RPM database and Go binary), `newuidmap`
//! (uidmap, for rootless rbk), `nginx-light` (a registry that refuses
//! large blobs), `strace` (the fsync order a power loss would test),
//! installed from Debian's packages when
//! missing.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// Program → the Debian package that provides it.
const PROGRAMS: [(&str, &str); 20] = [
    ("runc", "runc"),
    ("busybox", "busybox-static"),
    ("skopeo", "skopeo"),
    ("umoci", "umoci"),
    // The registry the registry tests push to and pull from.
    ("docker-registry", "docker-registry"),
    ("dockerd", "docker.io"),
    ("buildah", "buildah"),
    ("podman", "podman"),
    ("debootstrap", "debootstrap"),
    // Emulation for the multi-platform tests: qemu-aarch64 registered in
    // binfmt_misc with the F flag (the tests mount binfmt_misc and enable
    // the handler when needed).
    ("qemu-aarch64-static", "qemu-user-static"),
    ("update-binfmts", "binfmt-support"),
    // The headless browser that loads `rbk analyze --html` pages.
    ("chromium", "chromium"),
    // The pseudo-terminal that `rbk run -it` is tested under.
    ("tmux", "tmux"),
    // The remote-source tests: an HTTP server and `git daemon`.
    ("python3", "python3"),
    ("git", "git"),
    // The SBOM tests: a real RPM database (rpmbuild, rpm --initdb) and a
    // Go binary with build info.
    ("rpmbuild", "rpm"),
    ("go", "golang-go"),
    // Rootless rbk (the rootless tests): the setuid helpers that map a
    // user's subordinate ids into its user namespace.
    ("newuidmap", "uidmap"),
    // A registry refusing large blobs: docker-registry behind nginx's
    // client_max_body_size.
    ("nginx", "nginx-light"),
    // F2 (power loss): the order of fsyncs and renames of a load and a
    // build, read from strace's record of them.
    ("strace", "strace"),
];

/// Checks for each program on `PATH` and in `/usr/sbin`, and installs the
/// missing ones with `apt-get install -y --no-install-recommends`, running
/// `apt-get update` first only when the install fails (stale lists).
pub(crate) fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::say(&format!(
        "installing missing packages: {}",
        missing.join(" ")
    ));
    if apt_install(&missing)? {
        return Ok(());
    }
    crate::run(Path::new("/"), "apt-get", &["update"])?;
    if !apt_install(&missing)? {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> anyhow::Result<bool> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("starting apt-get")?;
    Ok(status.success())
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([Path::new("/usr/sbin").to_path_buf()])
        .any(|dir| dir.join(program).is_file())
}
