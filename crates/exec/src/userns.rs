//! Rootless rbk: an ordinary user's rbk runs inside a user namespace where
//! it is root, so everything it does as root (chown to any id of an image,
//! overlay mounts, runc) works on the user's own files only.
//!
//! # How the namespace is made
//!
//! The user's `rbk` (the *parent*) starts itself again as a *child*. The
//! child, still single-threaded, calls `unshare(CLONE_NEWUSER)` and stops
//! itself (`SIGSTOP`). The parent sees the stop, writes the child's id maps
//! and continues it (`SIGCONT`), then only waits and passes on the exit
//! status. The child, now uid 0 of its namespace with every capability
//! there, unshares a mount namespace and runs the command.
//!
//! The maps are the ones podman and BuildKit's rootlesskit use: inner id 0
//! is the user's own id and inner ids 1… are the user's subordinate range
//! from `/etc/subuid`/`/etc/subgid`, written by the setuid `newuidmap`/
//! `newgidmap` (Debian package `uidmap`). A file an image owns as 1000:1000
//! is stored as the range's 1000th id and read back as 1000, so layers,
//! image ids and cache keys are those of a root build. A user with no
//! range gets the one id the kernel lets anybody map (its own, as 0), and
//! files owned by any other id cannot be represented: extracting or
//! creating one fails with an error naming the file and the range.
//!
//! # Network
//!
//! No network namespace is made: `RUN` steps use the host's network, as
//! they do for root rbk (`--network=default` is the host network there
//! too); a user namespace may share its parent's network namespace, and it
//! needs no slirp4netns or pasta to reach out. `--network=none` gets a
//! private namespace with only loopback, made by runc inside ours.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use rustix::process::{Pid, Signal, WaitOptions};

use crate::{Error, Result};

/// One line of a `uid_map`/`gid_map`: `count` ids from `inner` in the
/// namespace are `outer` … in the parent namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// First id inside the namespace.
    pub inner: u32,
    /// First id outside.
    pub outer: u32,
    /// How many ids.
    pub count: u32,
}

/// The maps a rootless rbk runs with, decided before the namespace exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserNsPlan {
    /// Uid maps (the user as 0, then the subordinate range from 1).
    pub uids: Vec<IdMap>,
    /// Gid maps, likewise.
    pub gids: Vec<IdMap>,
    /// `newuidmap`/`newgidmap`, when there are subordinate ranges to map.
    pub helpers: Option<(PathBuf, PathBuf)>,
    /// Why the plan is a single-id mapping, to be said once; `None` with
    /// subordinate ranges.
    pub fallback: Option<String>,
}

/// Who is running rbk and where the id files are: plain data for [`plan`].
#[derive(Clone, Debug)]
pub struct Invoker {
    /// The real uid.
    pub uid: u32,
    /// The real gid.
    pub gid: u32,
    /// The login name (from `/etc/passwd`), if there is one.
    pub name: Option<String>,
    /// The contents of `/etc/subuid` (empty when the file is missing).
    pub subuid: String,
    /// The contents of `/etc/subgid`.
    pub subgid: String,
    /// `newuidmap` and `newgidmap` found on `PATH`, if they were.
    pub helpers: Option<(PathBuf, PathBuf)>,
}

/// The `usermod` line that gives `user` subordinate ids.
pub fn usermod_hint(user: &str) -> String {
    format!(
        "as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user} \
         (pick a range no other user has)"
    )
}

/// Decides the maps for `who`: its subordinate ranges when it has them
/// (an error when `newuidmap`/`newgidmap` are missing), else its own id only.
pub fn plan(who: &Invoker) -> Result<UserNsPlan> {
    let own = |id: u32| IdMap {
        inner: 0,
        outer: id,
        count: 1,
    };
    let subuid = subordinate(&who.subuid, who.uid, who.name.as_deref());
    let subgid = subordinate(&who.subgid, who.uid, who.name.as_deref());
    let user = who.name.clone().unwrap_or_else(|| who.uid.to_string());
    match (subuid, subgid) {
        (Some((uid_start, uid_count)), Some((gid_start, gid_count))) => {
            let helpers = who.helpers.clone().ok_or_else(|| Error::Rootless {
                message: "newuidmap and newgidmap were not found on PATH; they write the \
                          subordinate id maps of rootless rbk: install the `uidmap` package \
                          (Debian, Ubuntu) or `shadow-utils` (Fedora)"
                    .into(),
                source: None,
            })?;
            Ok(UserNsPlan {
                uids: vec![
                    own(who.uid),
                    IdMap {
                        inner: 1,
                        outer: uid_start,
                        count: uid_count,
                    },
                ],
                gids: vec![
                    own(who.gid),
                    IdMap {
                        inner: 1,
                        outer: gid_start,
                        count: gid_count,
                    },
                ],
                helpers: Some(helpers),
                fallback: None,
            })
        }
        _ => Ok(UserNsPlan {
            uids: vec![own(who.uid)],
            gids: vec![own(who.gid)],
            helpers: None,
            fallback: Some(format!(
                "user {user} has no subordinate ids in /etc/subuid and /etc/subgid: rootless \
                 rbk maps only your own id (as 0), so images with files owned by other ids \
                 cannot be built; to fix it, {}",
                usermod_hint(&user)
            )),
        }),
    }
}

/// The first range of `/etc/subuid`-format `text` for the user `uid` or
/// `name`, as (start, count). A range whose count is 0, or that would pass
/// the top of the id space, is skipped.
fn subordinate(text: &str, uid: u32, name: Option<&str>) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        let ours = Some(who) == name || who.parse::<u32>().ok() == Some(uid);
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (ours && count > 0 && start.checked_add(count).is_some()).then_some((start, count))
    })
}

/// Whether this process runs in a user namespace other than the initial one
/// (its uid map is not the identity over every id).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            parse_map(&map)
                != [IdMap {
                    inner: 0,
                    outer: 0,
                    count: u32::MAX,
                }]
        }
        Err(_) => false,
    }
}

/// This process's uid map (empty outside a namespace that has one).
pub fn current_uid_map() -> Vec<IdMap> {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| parse_map(&m))
        .unwrap_or_default()
}

/// This process's gid map.
pub fn current_gid_map() -> Vec<IdMap> {
    std::fs::read_to_string("/proc/self/gid_map")
        .map(|m| parse_map(&m))
        .unwrap_or_default()
}

/// Says which inner ids `maps` cover, e.g. `0-65536`.
pub fn describe_maps(maps: &[IdMap]) -> String {
    let ranges: Vec<String> = maps
        .iter()
        .map(|m| match m.count {
            1 => m.inner.to_string(),
            n => format!("{}-{}", m.inner, u64::from(m.inner) + u64::from(n) - 1),
        })
        .collect();
    ranges.join(", ")
}

fn parse_map(text: &str) -> Vec<IdMap> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some(IdMap {
                inner: f.next()??,
                outer: f.next()??,
                count: f.next()??,
            })
        })
        .collect()
}

/// Parent side: runs `child` (this program again, told to call
/// [`become_mapped_root`] first), writes its maps once it has made its user
/// namespace, and returns its exit status.
pub fn run_mapped(plan: &UserNsPlan, mut child: Command) -> Result<ExitStatus> {
    let spawn_err = |source| Error::Rootless {
        message: "starting rbk in a user namespace".into(),
        source: Some(source),
    };
    let mut proc = child.spawn().map_err(spawn_err)?;
    let pid = Pid::from_raw(proc.id() as i32).expect("a child's pid is positive");
    // The child stops itself once it is in its namespace, or exits early
    // with its own error (user namespaces disabled…), which it printed.
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::UNTRACED) {
            Ok(Some((_, status))) => break status,
            Ok(None) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(spawn_err(e.into())),
        }
    };
    if !status.stopped() {
        return Ok(std::os::unix::process::ExitStatusExt::from_raw(
            status.as_raw() as i32,
        ));
    }
    let mapped = write_maps(plan, pid);
    // Continued either way: on a failed map it finds its map empty and
    // exits, so no process is left stopped.
    let _ = rustix::process::kill_process(pid, Signal::CONT);
    let status = proc.wait().map_err(spawn_err)?;
    mapped.map(|()| status)
}

fn write_maps(plan: &UserNsPlan, pid: Pid) -> Result<()> {
    match &plan.helpers {
        Some((newuidmap, newgidmap)) => {
            run_helper(newuidmap, pid, &plan.uids)?;
            run_helper(newgidmap, pid, &plan.gids)
        }
        None => {
            // One's own id may be mapped without help, once setgroups(2)
            // is denied in the namespace (user_namespaces(7)).
            let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
            let write = |file: &str, text: String| {
                std::fs::write(proc.join(file), text).map_err(|e| Error::Rootless {
                    message: format!("writing /proc/{}/{file}", pid.as_raw_nonzero()),
                    source: Some(e),
                })
            };
            write("setgroups", "deny".into())?;
            write("uid_map", map_text(&plan.uids))?;
            write("gid_map", map_text(&plan.gids))
        }
    }
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inner, m.outer, m.count))
        .collect()
}

fn run_helper(helper: &Path, pid: Pid, maps: &[IdMap]) -> Result<()> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.as_raw_nonzero().to_string());
    for m in maps {
        cmd.args([m.inner, m.outer, m.count].map(|n| n.to_string()));
    }
    let out = cmd.output().map_err(|e| Error::Rootless {
        message: format!("running {}", helper.display()),
        source: Some(e),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Rootless {
        message: format!(
            "{} refused the subordinate id map ({}): {}; check /etc/subuid and /etc/subgid \
             and that {} is setuid root (Debian package `uidmap`)",
            helper.display(),
            map_text(maps).trim().replace('\n', ", "),
            String::from_utf8_lossy(&out.stderr).trim(),
            helper.display()
        ),
        source: None,
    })
}

/// Child side: makes the user namespace, waits for the parent to map it,
/// and becomes its root in a mount namespace of its own. Must be called
/// while the process has one thread (unshare(2) refuses a user namespace
/// to a multi-threaded process).
pub fn become_mapped_root() -> Result<()> {
    // SAFETY: CLONE_NEWUSER and CLONE_NEWNS do not unshare the file
    // descriptor table, the case `unshare_unsafe` warns about.
    #[allow(unsafe_code)]
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }.map_err(
        |e| Error::Rootless {
            message: userns_refused_hint(e),
            source: Some(e.into()),
        },
    )?;
    rustix::process::kill_process(rustix::process::getpid(), Signal::STOP).map_err(|e| {
        Error::Rootless {
            message: "waiting for the user namespace's id maps".into(),
            source: Some(e.into()),
        }
    })?;
    if current_uid_map().is_empty() {
        return Err(Error::Rootless {
            message: "the user namespace was not given an id map".into(),
            source: None,
        });
    }
    #[allow(unsafe_code)]
    // SAFETY: as above, no CLONE_FILES.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.map_err(
        |e| Error::Rootless {
            message: "making a mount namespace inside the user namespace".into(),
            source: Some(e.into()),
        },
    )?;
    // Mounts made here never reach the host (the kernel already turned the
    // inherited shared mounts into slaves; private says so outright).
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| Error::Rootless {
        message: "making the mount namespace private".into(),
        source: Some(e.into()),
    })
}

/// Child side, instead of [`become_mapped_root`]: joins the user and
/// mount namespaces of `pid`, a process of an earlier rootless rbk of the
/// same user (the monitor of a detached container), so that runc can enter
/// the container's namespaces, which that user namespace owns. The user
/// owns the namespace, so it may join it without help. Single-threaded
/// only, like `become_mapped_root`.
pub fn join(pid: u32) -> Result<()> {
    let open = |kind: &str| {
        let path = format!("/proc/{pid}/ns/{kind}");
        std::fs::File::open(&path).map_err(|e| Error::Rootless {
            message: format!("opening {path} to join the container's namespaces"),
            source: Some(e),
        })
    };
    let (user, mnt) = (open("user")?, open("mnt")?);
    let setns = |file: &std::fs::File, kind| {
        use std::os::fd::AsFd;
        rustix::thread::move_into_link_name_space(file.as_fd(), Some(kind)).map_err(|e| {
            Error::Rootless {
                message: format!("joining the namespaces of process {pid}"),
                source: Some(e.into()),
            }
        })
    };
    setns(&user, rustix::thread::LinkNameSpaceType::User)?;
    setns(&mnt, rustix::thread::LinkNameSpaceType::Mount)
}

/// What to do when the kernel refuses an unprivileged user namespace.
fn userns_refused_hint(errno: rustix::io::Errno) -> String {
    let sysctls = "ask the administrator to allow unprivileged user namespaces: \
                   sysctl -w user.max_user_namespaces=15000 (and, on Debian/Ubuntu kernels \
                   that have it, sysctl -w kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 \
                   also kernel.apparmor_restrict_unprivileged_userns=0); in a container, \
                   run it with a seccomp profile that allows unshare";
    match errno {
        rustix::io::Errno::NOSPC => format!(
            "user namespaces are disabled or exhausted (user.max_user_namespaces): {sysctls}"
        ),
        _ => format!("the kernel refused an unprivileged user namespace: {sysctls}"),
    }
}

/// Whether `path` names an executable file, for finding the helpers.
pub fn find_on_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(subuid: &str) -> Invoker {
        Invoker {
            uid: 1001,
            gid: 1001,
            name: Some("builder".into()),
            subuid: subuid.into(),
            subgid: subuid.into(),
            helpers: Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into())),
        }
    }

    #[test]
    fn a_user_with_ranges_is_root_over_its_range() {
        let p = plan(&who("other:1:5\nbuilder:200000:65536\n")).unwrap();
        assert_eq!(p.fallback, None);
        assert_eq!(
            p.uids,
            [
                IdMap {
                    inner: 0,
                    outer: 1001,
                    count: 1
                },
                IdMap {
                    inner: 1,
                    outer: 200000,
                    count: 65536
                }
            ]
        );
        assert_eq!(describe_maps(&p.uids), "0, 1-65536");
        // By uid as well as by name.
        assert!(plan(&who("1001:300000:10")).unwrap().fallback.is_none());
    }

    #[test]
    fn no_range_falls_back_to_one_id_and_says_how_to_add_one() {
        let p = plan(&who("other:100000:65536\nbuilder:5:0\n")).unwrap();
        assert_eq!(p.uids.len(), 1);
        assert!(p.helpers.is_none());
        let why = p.fallback.unwrap();
        assert!(why.contains("usermod --add-subuids"), "{why}");
        assert!(why.contains("builder"), "{why}");
    }

    #[test]
    fn ranges_without_newuidmap_name_the_package() {
        let mut w = who("builder:200000:65536");
        w.helpers = None;
        let err = plan(&w).unwrap_err().to_string();
        assert!(err.contains("uidmap"), "{err}");
    }

    #[test]
    fn disabled_user_namespaces_name_the_sysctl() {
        let hint = userns_refused_hint(rustix::io::Errno::NOSPC);
        assert!(hint.contains("user.max_user_namespaces"), "{hint}");
    }
}
