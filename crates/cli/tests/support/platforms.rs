//! Multi-platform test bases: busybox rootfs tarballs for linux/amd64 (the
//! host's busybox-static) and linux/arm64 (Debian's `busybox-static:arm64`,
//! downloaded once with apt and cached under the target dir), qemu-aarch64
//! registered in binfmt_misc, and a busybox image index for both platforms
//! that rbk itself builds from the two tarballs (`FROM scratch` + `ADD
//! rootfs-${TARGETARCH}.tar`, which needs no emulation).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The binfmt_misc entry the arm64 tests need.
pub(crate) const QEMU_AARCH64: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

fn run(program: &str, args: &[&str], dir: &Path) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"))
        .success()
}

/// Debian's arm64 busybox-static binary, cached under the target dir.
pub(crate) fn arm64_busybox() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-arm64");
        if path.is_file() {
            return path;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let archs = Command::new("dpkg")
            .arg("--print-foreign-architectures")
            .output()
            .expect("dpkg");
        if !String::from_utf8_lossy(&archs.stdout).contains("arm64") {
            assert!(run("dpkg", &["--add-architecture", "arm64"], &tmp));
            assert!(run("apt-get", &["update", "-qq"], &tmp));
        }
        let fetch = || {
            run(
                "apt-get",
                &["download", "-qq", "busybox-static:arm64"],
                &tmp,
            )
        };
        if !fetch() {
            assert!(run("apt-get", &["update", "-qq"], &tmp), "apt-get update");
            assert!(fetch(), "apt-get download busybox-static:arm64 failed");
        }
        let deb = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .expect("the downloaded .deb");
        let x = tmp.join("x");
        assert!(run(
            "dpkg-deb",
            &["-x", deb.to_str().unwrap(), x.to_str().unwrap()],
            &tmp
        ));
        fs::rename(x.join("bin/busybox"), &path).unwrap();
        let _ = fs::remove_dir_all(&tmp);
        path
    })
}

/// Makes sure qemu-aarch64 is registered with the F flag: mounts
/// binfmt_misc when it is not, and enables the handler qemu-user-static
/// installed. Panics naming the packages when it cannot.
pub(crate) fn ensure_emulation() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new("/proc/sys/fs/binfmt_misc");
        if !dir.join("register").exists() {
            let _ = run(
                "mount",
                &["-t", "binfmt_misc", "binfmt_misc", dir.to_str().unwrap()],
                Path::new("/"),
            );
        }
        if !Path::new(QEMU_AARCH64).exists() {
            assert!(
                Path::new("/usr/sbin/update-binfmts").is_file()
                    && Path::new("/usr/bin/qemu-aarch64-static").is_file(),
                "qemu-user-static and binfmt-support are missing (cargo xtask ci installs them)"
            );
            let _ = run(
                "update-binfmts",
                &["--enable", "qemu-aarch64"],
                Path::new("/"),
            );
        }
        let entry = fs::read_to_string(QEMU_AARCH64)
            .unwrap_or_else(|e| panic!("{QEMU_AARCH64} is not registered: {e}"));
        assert!(entry.starts_with("enabled"), "{QEMU_AARCH64}: {entry}");
        assert!(
            entry
                .lines()
                .any(|l| l.starts_with("flags:") && l.contains('F')),
            "{QEMU_AARCH64} lacks the F flag: {entry}"
        );
    });
}

/// The busybox rootfs tarball for `arch` (`amd64` or `arm64`).
pub(crate) fn rootfs_tarball(arch: &str) -> PathBuf {
    match arch {
        "amd64" => super::base_tarball().to_path_buf(),
        "arm64" => {
            static TARBALL: OnceLock<PathBuf> = OnceLock::new();
            TARBALL
                .get_or_init(|| {
                    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-arm64.tar");
                    super::busybox_tarball(arm64_busybox(), &path);
                    path
                })
                .clone()
        }
        other => panic!("no test base for {other}"),
    }
}

/// Builds `rbk-busybox:multi`, an image index for linux/amd64 and
/// linux/arm64, into the store at `root` (context under `dir/base-ctx`),
/// and makes sure arm64 binaries can run here.
pub(crate) fn multi_base(root: &Path, dir: &Path) {
    ensure_emulation();
    let ctx = dir.join("base-ctx");
    fs::create_dir_all(&ctx).unwrap();
    for arch in ["amd64", "arm64"] {
        fs::copy(rootfs_tarball(arch), ctx.join(format!("rootfs-{arch}.tar"))).unwrap();
    }
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar /\nCMD [\"sh\"]\n",
    )
    .unwrap();
    super::ok(
        root,
        &[
            "build",
            "-q",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "rbk-busybox:multi",
            ctx.to_str().unwrap(),
        ],
    );
}
