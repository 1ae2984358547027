//! Rootless rbk: an ordinary user's `rbk` runs again inside a user
//! namespace (see `rbk_exec::userns` for how and why), so every command
//! then runs as that namespace's root.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use rbk_exec::userns::{self, Invoker};

/// Set on the re-run child: "make your namespace, your parent maps it".
const CHILD_ENV: &str = "RBK_USERNS_CHILD";
/// Set instead when the command works on a running container: "join the
/// namespaces of this pid" (the container's monitor), which own the
/// container's own namespaces.
const JOIN_ENV: &str = "RBK_USERNS_JOIN";

/// What `main` does next.
pub(crate) enum Entered {
    /// Carry on: root (or already inside the namespace).
    Continue,
    /// This process was the parent; the child ran the command and exited so.
    Done(ExitCode),
}

/// Enters the user namespace when rbk is not root. The parent only waits
/// for the child and passes its exit status on.
///
/// `container` names the running container the command works in (`rbk
/// exec`), whose namespaces the child joins instead of making its own.
pub(crate) fn enter(root: Option<&Path>, container: Option<&str>) -> anyhow::Result<Entered> {
    if rustix::process::geteuid().is_root() {
        return Ok(Entered::Continue);
    }
    if let Some(pid) = std::env::var_os(JOIN_ENV) {
        let pid = pid.to_string_lossy().parse::<u32>()?;
        userns::join(pid)?;
        std::env::remove_var(JOIN_ENV);
        return Ok(Entered::Continue);
    }
    if std::env::var_os(CHILD_ENV).is_some() {
        userns::become_mapped_root()?;
        // Processes rbk starts from here (runc, the container monitor) are
        // root in the namespace already and must not try again.
        std::env::remove_var(CHILD_ENV);
        return Ok(Entered::Continue);
    }
    if let Some(pid) = container.and_then(|c| monitor_of(root, c)) {
        let mut child = std::process::Command::new(std::env::current_exe()?);
        child
            .args(std::env::args_os().skip(1))
            .env(JOIN_ENV, pid.to_string());
        return Ok(Entered::Done(exit_code(child.status()?)));
    }
    let plan = userns::plan(&invoker())?;
    if let Some(why) = &plan.fallback {
        crate::render::warning(why);
    }
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe);
    child.args(std::env::args_os().skip(1)).env(CHILD_ENV, "1");
    let status = userns::run_mapped(&plan, child)?;
    Ok(Entered::Done(exit_code(status)))
}

/// The live monitor process of the running container `name` in the store
/// (read from outside the namespace: the store is the user's own files).
fn monitor_of(root: Option<&Path>, name: &str) -> Option<u32> {
    let root = crate::settings::store_root(root).ok()?;
    let store = rbk_store::Store::open(&root).ok()?;
    let monitor = store.find_container(name).ok()?.monitor?;
    rbk_exec::is_alive(&monitor).then_some(u32::try_from(monitor.pid).ok()?)
}

/// The child's exit status as ours; killed by a signal is 128 + signal, as
/// shells report it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Who runs rbk, with the id files and helpers `userns::plan` decides from.
fn invoker() -> Invoker {
    let uid = rustix::process::getuid().as_raw();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    // newuidmap lives in /usr/bin on Debian; a PATH without it should not
    // make rootless rbk fail.
    let mut search = path.clone();
    search.push(":/usr/bin:/bin:/usr/sbin:/sbin");
    let helpers =
        userns::find_on_path("newuidmap", &search).zip(userns::find_on_path("newgidmap", &search));
    Invoker {
        uid,
        gid: rustix::process::getgid().as_raw(),
        name: login_name(&read("/etc/passwd"), uid),
        subuid: read("/etc/subuid"),
        subgid: read("/etc/subgid"),
        helpers,
    }
}

/// The `/etc/passwd` name of `uid` (subordinate ranges are usually keyed
/// by name).
fn login_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// Whether rbk runs rootless (inside its user namespace), for the defaults
/// that differ: the store root.
pub(crate) fn is_rootless() -> bool {
    !rustix::process::geteuid().is_root() || userns::in_user_namespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_come_from_passwd() {
        let passwd = "root:x:0:0::/root:/bin/sh\nbuilder:x:1001:1001::/home/b:/bin/sh\n";
        assert_eq!(login_name(passwd, 1001).as_deref(), Some("builder"));
        assert_eq!(login_name(passwd, 7), None);
    }
}
