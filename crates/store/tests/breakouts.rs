//! Hostile layer archives (docs/security.md table C): each must leave the host
//! untouched, fail with a clear error where the archive is invalid, and leave
//! nothing half-extracted. "Host" files live in a temp dir outside the
//! extraction root, addressed by absolute symlinks and `../` escapes, so a
//! regression cannot damage the real machine. These tests run as root
//! (chown, mknod, trusted.* xattrs) and panic loudly otherwise; the last
//! one runs all the others again as an ordinary user in a user namespace
//! mapped like rootless rbk's (issue 18), where only the device node case
//! differs (the kernel creates none there).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rbk_store::{
    check_layer_stream, unpack_layer, unpack_layer_onto, DevicePolicy, Error, UnpackOptions,
    UnpackStats, UnpackVerdict, Whiteouts,
};
use tar::{EntryType, Header};

#[path = "../../cli/tests/support/users.rs"]
mod users;

/// Whether this process runs in a user namespace other than the initial
/// one: the rootless rerun of this table.
fn in_user_namespace() -> bool {
    let map = fs::read_to_string("/proc/self/uid_map").unwrap();
    map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]
}

fn require_root() {
    let uid = fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    assert_eq!(
        uid, 0,
        "breakout tests need root (chown, mknod, trusted.* xattrs): run them as root"
    );
}

/// A temp "host" with a victim file and directory, and a place to extract.
struct Env {
    _tmp: tempfile::TempDir,
    host: PathBuf,
    snaps: PathBuf,
}

impl Env {
    fn new() -> Env {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host");
        fs::create_dir_all(host.join("etc")).unwrap();
        fs::write(host.join("etc/passwd"), "root:x:0:0\n").unwrap();
        fs::set_permissions(host.join("etc/passwd"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(host.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
        let snaps = tmp.path().join("snapshots");
        fs::create_dir(&snaps).unwrap();
        Env {
            host,
            snaps,
            _tmp: tmp,
        }
    }

    fn etc(&self) -> String {
        self.host.join("etc").to_str().unwrap().to_string()
    }

    fn passwd(&self) -> String {
        self.host.join("etc/passwd").to_str().unwrap().to_string()
    }

    fn dest(&self) -> PathBuf {
        self.snaps.join("layer")
    }

    /// Unpacks `tar` with the default options, checking on the way that
    /// the extractor's dry run (what `rbk load` runs instead of unpacking)
    /// agrees: where it decides, it refuses with the extractor's own
    /// error, or the extractor unpacks. Only where rbk uses it: as root in
    /// the initial user namespace.
    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, Error> {
        let r = self.unpack_with(tar, &UnpackOptions::default());
        if !in_user_namespace() {
            match check_layer_stream(tar, &UnpackOptions::default()) {
                Ok(UnpackVerdict::Unpacks) => assert!(r.is_ok(), "dry run passed {r:?}"),
                Ok(UnpackVerdict::Undecided) => {}
                Err(e) => match &r {
                    Err(unpacked) => assert_eq!(e.to_string(), unpacked.to_string()),
                    Ok(_) => panic!("dry run refused what unpacks: {e}"),
                },
            }
        }
        r
    }

    fn unpack_with(&self, tar: &[u8], opts: &UnpackOptions) -> Result<UnpackStats, Error> {
        let r = unpack_layer(tar, &self.dest(), opts);
        if r.is_err() {
            let left: Vec<_> = fs::read_dir(&self.snaps).unwrap().collect();
            assert!(left.is_empty(), "failed extraction left {left:?}");
        }
        r
    }

    /// The host is exactly as created.
    fn assert_host_untouched(&self) {
        let names: Vec<_> = fs::read_dir(self.host.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["passwd"], "host etc/ gained entries");
        assert_eq!(fs::read_to_string(self.passwd()).unwrap(), "root:x:0:0\n");
        assert_eq!(
            fs::metadata(self.passwd()).unwrap().mode() & 0o7777,
            0o600,
            "host file mode changed"
        );
        assert_eq!(
            fs::metadata(self.etc()).unwrap().mode() & 0o7777,
            0o700,
            "host dir mode changed"
        );
        let top: Vec<_> = fs::read_dir(&self.host)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top, ["etc"], "host gained entries");
    }
}

/// Builds tars with raw header names, bypassing the tar crate's path checks.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn add(mut self, kind: EntryType, name: &str, link: &str, data: &[u8], mode: u32) -> Tar {
        let mut h = Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &str) -> Tar {
        self.add(EntryType::Regular, name, "", data.as_bytes(), 0o644)
    }

    fn dir(self, name: &str, mode: u32) -> Tar {
        self.add(EntryType::Directory, name, "", b"", mode)
    }

    fn symlink(self, name: &str, target: &str) -> Tar {
        self.add(EntryType::Symlink, name, target, b"", 0o777)
    }

    fn hardlink(self, name: &str, target: &str) -> Tar {
        self.add(EntryType::Link, name, target, b"", 0o644)
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn assert_invalid(r: Result<UnpackStats, Error>, needle: &str) {
    match r {
        Err(e @ Error::InvalidArchive { .. }) => {
            assert!(
                e.to_string().contains(needle),
                "error {e} should mention {needle:?}"
            );
        }
        other => panic!("expected an invalid-archive error mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn c1_dotdot_and_absolute_names_are_confined() {
    let env = Env::new();
    let abs = format!("{}/absolute", env.etc());
    let tar = Tar::new()
        .file("../../../../host/etc/passwd", "pwned")
        .file(&abs, "pwned")
        .bytes();
    env.unpack(&tar).unwrap();
    env.assert_host_untouched();
    assert_eq!(
        fs::read_to_string(env.dest().join("host/etc/passwd")).unwrap(),
        "pwned"
    );
    assert!(env.dest().join(abs.trim_start_matches('/')).is_file());
}

#[test]
fn c2_write_through_absolute_symlink_stays_inside() {
    let env = Env::new();
    let tar = Tar::new()
        .symlink("localetc", &env.etc())
        .file("localetc/unbroken", "x")
        .bytes();
    env.unpack(&tar).unwrap();
    env.assert_host_untouched();
    let inside = env
        .dest()
        .join(env.etc().trim_start_matches('/'))
        .join("unbroken");
    assert_eq!(fs::read_to_string(inside).unwrap(), "x");
    // Replacing the symlink itself by a file never writes through it.
    let env = Env::new();
    let tar = Tar::new()
        .symlink("passwd", &env.passwd())
        .file("passwd", "pwned")
        .bytes();
    env.unpack(&tar).unwrap();
    env.assert_host_untouched();
    assert_eq!(
        fs::read_to_string(env.dest().join("passwd")).unwrap(),
        "pwned"
    );
}

#[test]
fn c3_hardlinks_resolve_inside_the_root() {
    for target in [Env::new().passwd(), "../../../host/etc/passwd".to_string()] {
        let env = Env::new();
        let target = target.replace(
            Env::new().host.to_str().unwrap(),
            env.host.to_str().unwrap(),
        );
        let tar = Tar::new().hardlink("link", &target).bytes();
        assert_invalid(env.unpack(&tar), "not in this layer");
        env.assert_host_untouched();
    }
    let env = Env::new();
    let tar = Tar::new()
        .symlink("ldir", &env.etc())
        .hardlink("link", "ldir/passwd")
        .bytes();
    assert_invalid(env.unpack(&tar), "not in this layer");
    env.assert_host_untouched();
    // A legitimate hardlink works.
    let env = Env::new();
    env.unpack(&Tar::new().file("a", "data").hardlink("b", "a").bytes())
        .unwrap();
    assert_eq!(
        fs::metadata(env.dest().join("a")).unwrap().ino(),
        fs::metadata(env.dest().join("b")).unwrap().ino()
    );
}

#[test]
fn c4_symlink_then_hardlink_then_chmod_leaves_host_mode() {
    let env = Env::new();
    let tar = Tar::new()
        .symlink("s", &env.passwd())
        .hardlink("h", "s")
        .add(EntryType::Regular, "h", "", b"", 0o777)
        .dir("s", 0o777)
        .bytes();
    env.unpack(&tar).unwrap();
    env.assert_host_untouched();
}

#[test]
fn c5_entries_naming_the_root_are_rejected() {
    for name in [".", "/", "..", "./", "a/.."] {
        let env = Env::new();
        assert_invalid(
            env.unpack(&Tar::new().symlink(name, &env.etc()).bytes()),
            "replace the extraction root",
        );
        env.assert_host_untouched();
    }
    let env = Env::new();
    assert_invalid(
        env.unpack(&Tar::new().symlink("", "/").bytes()),
        "empty file name",
    );
    // A "./" directory entry is common and harmless: skipped.
    let env = Env::new();
    env.unpack(&Tar::new().dir("./", 0o777).file("./a", "x").bytes())
        .unwrap();
    assert_eq!(fs::metadata(env.dest()).unwrap().mode() & 0o777, 0o755);
}

#[test]
fn c6_directory_entry_replaces_symlink() {
    let env = Env::new();
    let tar = Tar::new()
        .symlink("foo", &env.etc())
        .dir("foo/", 0o777)
        .file("foo/x", "x")
        .bytes();
    env.unpack(&tar).unwrap();
    env.assert_host_untouched();
    let foo = fs::symlink_metadata(env.dest().join("foo")).unwrap();
    assert!(foo.is_dir());
    assert_eq!(foo.mode() & 0o777, 0o777);
}

#[test]
fn c7_implied_parents_through_symlinks_stay_inside() {
    let env = Env::new();
    let tar = Tar::new()
        .symlink("a", &env.etc())
        .file("a/b/c/file", "x")
        .symlink("up", "../../../../../..")
        .file("up/host/etc/new", "x")
        .bytes();
    env.unpack(&tar).unwrap();
    env.assert_host_untouched();
    assert!(env
        .dest()
        .join(env.etc().trim_start_matches('/'))
        .join("b/c/file")
        .is_file());
    assert!(env.dest().join("host/etc/new").is_file());
}

#[test]
fn c8_invalid_whiteouts_are_rejected() {
    for name in [".wh..", ".wh...", ".wh.", "dir/.wh..", "dir/.wh.."] {
        let env = Env::new();
        assert_invalid(
            env.unpack(&Tar::new().dir("dir", 0o755).file(name, "").bytes()),
            "invalid whiteout",
        );
    }
    let env = Env::new();
    assert_invalid(
        env.unpack(&Tar::new().dir(".wh.etc", 0o755).bytes()),
        "regular files",
    );
    let env = Env::new();
    assert_invalid(
        env.unpack(&Tar::new().file("a", "x").file(".wh.a", "").bytes()),
        "same layer",
    );
}

#[test]
fn c9_whiteouts_through_symlinks_and_opaque_after_siblings() {
    let env = Env::new();
    let tar = Tar::new()
        .symlink("s", &env.etc())
        .file("s/.wh.passwd", "")
        .bytes();
    let stats = env.unpack(&tar).unwrap();
    env.assert_host_untouched();
    assert_eq!(stats.whiteouts, 1);
    let wh = fs::symlink_metadata(
        env.dest()
            .join(env.etc().trim_start_matches('/'))
            .join("passwd"),
    )
    .unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "overlay whiteout is char 0/0"
    );

    let env = Env::new();
    let tar = Tar::new()
        .dir("d", 0o755)
        .file("d/keep", "k")
        .file("d/.wh..wh..opq", "")
        .bytes();
    env.unpack(&tar).unwrap();
    assert!(
        env.dest().join("d/keep").is_file(),
        "opaque marker must not hide its own layer's siblings"
    );
    // trusted.overlay.opaque as root, user.overlay.opaque rootless.
    let opaque = rbk_store::overlay_xattrs().opaque.to_str().unwrap();
    let xattr = read_xattr(&env.dest().join("d"), opaque);
    assert_eq!(xattr.as_deref(), Some(&b"y"[..]));
}

#[test]
fn whiteouts_applied_when_flattening() {
    let env = Env::new();
    let flat = env.snaps.join("flat");
    fs::create_dir(&flat).unwrap();
    let lower = Tar::new()
        .dir("d", 0o755)
        .file("d/old", "o")
        .file("gone", "g")
        .file("kept", "k")
        .bytes();
    let opts = UnpackOptions::default().whiteouts(Whiteouts::Apply);
    unpack_layer_onto(&lower[..], &flat, &opts).unwrap();
    let upper = Tar::new()
        .file("d/new", "n")
        .file("d/.wh..wh..opq", "")
        .file(".wh.gone", "")
        .bytes();
    unpack_layer_onto(&upper[..], &flat, &opts).unwrap();
    assert!(flat.join("d/new").is_file() && !flat.join("d/old").exists());
    assert!(!flat.join("gone").exists() && flat.join("kept").is_file());
}

#[test]
fn c10_pax_size_mismatch_is_rejected() {
    let env = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("size", &b"100"[..])]).unwrap();
    let mut h = Header::new_ustar();
    h.set_path("smuggled").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &[0u8; 0][..]).unwrap();
    b.append_data(&mut Header::new_ustar(), "hidden", &[b'x'; 100][..])
        .unwrap();
    assert_invalid(
        env.unpack(&b.into_inner().unwrap()),
        "PAX size 100 disagrees with header size 0",
    );
}

#[test]
fn c11_decompression_bombs_are_bounded() {
    let big = Tar::new()
        .add(EntryType::Regular, "zeros", "", &vec![0u8; 32 << 20], 0o644)
        .bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&big).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&big[..], 19).unwrap();
    assert!(gz.len() < 1 << 20 && zst.len() < 1 << 20);
    for bomb in [&gz, &zst] {
        let env = Env::new();
        let r = env.unpack_with(bomb, &UnpackOptions::default().max_bytes(4 << 20));
        assert!(
            matches!(r, Err(Error::ArchiveTooLarge { limit }) if limit == 4 << 20),
            "got {r:?}"
        );
    }
    // Under the limit both decompress fine.
    let env = Env::new();
    assert_eq!(env.unpack(&zst).unwrap().bytes, 32 << 20);
    // Nested compression is not a tar.
    let mut gz2 = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz2.write_all(&gz).unwrap();
    let env = Env::new();
    assert!(env
        .unpack(&gz2.finish().unwrap())
        .unwrap_err()
        .is_invalid_archive());
}

#[test]
fn c12_truncated_garbage_and_empty_streams_fail_cleanly() {
    let tar = Tar::new().file("a", &"x".repeat(10_000)).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage after the gzip stream");
    let cases: [(&str, &[u8]); 5] = [
        ("truncated gzip", &gz[..gz.len() / 2]),
        ("trailing garbage", &trailing),
        (
            "not a tar",
            &b"this is not a tar archive, just text that goes on and on"[..],
        ),
        ("empty stream", &b""[..]),
        ("truncated tar", &tar[..700]),
    ];
    for (what, bytes) in cases {
        let env = Env::new();
        let err = env.unpack(bytes).expect_err(what);
        assert!(err.is_invalid_archive(), "{what}: {err:?}");
        assert!(!env.dest().exists(), "{what}: partial snapshot committed");
    }
    let env = Env::new();
    let stats = env
        .unpack(&[0u8; 1024])
        .expect("an empty tar is a valid empty layer");
    assert_eq!(stats.entries, 0);
}

#[test]
fn c13_device_nodes_follow_policy() {
    // A real device (1, 3: /dev/null's numbers), not the 0/0 whiteout
    // shape a user namespace may create.
    let dev = || {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_path("dev/null").unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b""[..]).unwrap();
        b.into_inner().unwrap()
    };
    let env = Env::new();
    assert_invalid(
        env.unpack_with(
            &dev(),
            &UnpackOptions::default().devices(DevicePolicy::Reject),
        ),
        "device",
    );
    let env = Env::new();
    let stats = env
        .unpack_with(
            &dev(),
            &UnpackOptions::default().devices(DevicePolicy::Skip),
        )
        .unwrap();
    assert_eq!(stats.skipped, 1);
    assert!(!env.dest().join("dev/null").exists());
    let env = Env::new();
    if in_user_namespace() {
        // Rootless: mknod is refused by the kernel, and a placeholder would
        // change the layer, so creating one is an error that says why.
        let err = env.unpack(&dev()).unwrap_err().to_string();
        assert!(err.contains("user namespace"), "{err}");
        return;
    }
    env.unpack(&dev()).unwrap();
    let m = fs::symlink_metadata(env.dest().join("dev/null")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(
        (m.mode() & 0o777, m.rdev()),
        (0o666, rustix::fs::makedev(1, 3))
    );
}

#[test]
fn c14_absolute_symlinked_dirs_are_followed_inside() {
    let env = Env::new();
    let tar = Tar::new()
        .dir("run", 0o755)
        .symlink("var/run", "/run")
        .file("var/run/pid", "1")
        .bytes();
    env.unpack(&tar).unwrap();
    assert_eq!(fs::read_to_string(env.dest().join("run/pid")).unwrap(), "1");
}

/// Deep nesting: up to rbk_store::MAX_PATH_LEN bytes of path unpack (no
/// stack overflow); a longer path is refused naming the limit.
#[test]
fn c15_deep_nesting_does_not_overflow() {
    let deep_tar = |levels: usize| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(1);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("{}f", "d/".repeat(levels)), &b"x"[..])
            .unwrap();
        b.into_inner().unwrap()
    };
    let env = Env::new();
    env.unpack(&deep_tar(1500)).unwrap();
    let env = Env::new();
    let err = env.unpack(&deep_tar(2000)).unwrap_err().to_string();
    assert!(err.contains("more than the 3072"), "{err}");
}

#[test]
fn metadata_is_kept() {
    let env = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.rbk", &b"v"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
    ])
    .unwrap();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(2000);
    h.set_mtime(1_234_567);
    h.set_size(2);
    b.append_data(&mut h, "usr/bin/tool", &b"#!"[..]).unwrap();
    let mut d = Header::new_gnu();
    d.set_entry_type(EntryType::Directory);
    d.set_mode(0o750);
    d.set_mtime(7_654_321);
    d.set_size(0);
    d.set_uid(0);
    d.set_gid(0);
    b.append_data(&mut d, "usr", &b""[..]).unwrap();
    let stats = env.unpack(&b.into_inner().unwrap()).unwrap();
    let m = fs::metadata(env.dest().join("usr/bin/tool")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o4755, 1000, 2000, 1_234_567)
    );
    assert_eq!(
        read_xattr(&env.dest().join("usr/bin/tool"), "user.rbk").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        read_xattr(&env.dest().join("usr/bin/tool"), "trusted.overlay.opaque"),
        None
    );
    assert_eq!(stats.skipped, 1, "forged overlay xattr dropped");
    let d = fs::metadata(env.dest().join("usr")).unwrap();
    assert_eq!((d.mode() & 0o7777, d.mtime()), (0o750, 7_654_321));
}

#[test]
fn existing_destination_is_refused() {
    let env = Env::new();
    fs::create_dir(env.dest()).unwrap();
    assert!(unpack_layer(
        &Tar::new().file("a", "x").bytes()[..],
        &env.dest(),
        &UnpackOptions::default()
    )
    .is_err());
}

fn read_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// The table above, run again by this same test binary as the ordinary
/// user `rbk-rootless` inside a user namespace mapped over its subordinate
/// ids (newuidmap/newgidmap), as rootless rbk runs: every case passes
/// there too, with the victim "host" files owned by that user, so an
/// escape would have been able to change them.
#[test]
fn rootless_rerun_of_the_whole_table() {
    require_root();
    let user = users::user(users::WITH_RANGES);
    // A copy the user can run (the checkout may not be reachable for it).
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("breakouts");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let out = user
        .in_user_namespace(&exe)
        .args(["--skip", "rootless_", "--test-threads", "2"])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the rootless rerun failed:\n{log}");
    // Every other test of this file ran, none was skipped or ignored.
    let source = include_str!("breakouts.rs");
    let tests = source.matches("#[test]\nfn ").count() - 1;
    assert!(
        log.contains(&format!(
            "test result: ok. {tests} passed; 0 failed; 0 ignored"
        )),
        "expected {tests} passing tests:\n{log}"
    );
}
