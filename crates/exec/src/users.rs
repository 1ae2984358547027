//! `USER` and `--chown` resolved through the root's own user database.
//!
//! Names are looked up in the root's `/etc/passwd` and `/etc/group`, opened
//! inside the root (a symlinked `/etc/passwd` cannot point at the host's) and
//! read with a size bound; no NSS module of the image is ever loaded
//! (docs/security.md rule 2). Numeric ids must fit in a non-negative `i32`, as
//! runc's and Docker's parsers require, so `USER 4294967296` cannot wrap to
//! root (CVE-2024-40635).

use std::os::fd::AsFd;
use std::path::Path;

use crate::inroot::read_in_root;
use crate::{Error, Result};

/// Largest accepted uid or gid.
const MAX_ID: u64 = i32::MAX as u64;
/// Largest accepted `/etc/passwd` or `/etc/group`.
const MAX_DB_SIZE: u64 = 16 << 20;

/// The ids a process runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: those in `/etc/group` listing the user by name.
    pub additional_gids: Vec<u32>,
    /// The user's home directory (`/` when unknown), for `HOME`.
    pub home: String,
}

/// Resolves a `USER` value (`name`, `uid`, `name:group`, `uid:gid`; empty is
/// root) inside `root`, like runc's `GetExecUser`: a numeric user need not
/// exist, a name must; the primary group comes from passwd unless a group is
/// given.
pub fn resolve_user(root: impl AsFd, spec: &str) -> Result<Ids> {
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    let passwd = read_db(&root, "/etc/passwd")?;
    let mut ids = Ids {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
    };
    let mut name = None;
    if !user.is_empty() {
        let entry = passwd.iter().find(|e| e.name == user).or_else(|| {
            let uid = parse_id(user).ok()?;
            passwd.iter().find(|e| e.id == Some(uid))
        });
        match entry {
            Some(e) => {
                ids.uid = e.id.ok_or_else(|| bad_entry("passwd", user))?;
                ids.gid = e.gid.unwrap_or(0);
                ids.home = if e.home.is_empty() {
                    "/".into()
                } else {
                    e.home.clone()
                };
                name = Some(e.name.clone());
            }
            None if is_numeric(user) => ids.uid = parse_id(user)?,
            None => return Err(unknown("user", user, "passwd")),
        }
    }
    let groups = read_db(&root, "/etc/group")?;
    if !group.is_empty() {
        ids.gid = lookup_group(&groups, group)?;
    }
    // Supplementary groups come with a user named alone; `name:group`
    // runs with the named group only, as runc's user lookup does.
    if let Some(name) = name.filter(|_| group.is_empty()) {
        ids.additional_gids = groups
            .iter()
            .filter(|g| g.members.contains(&name))
            .filter_map(|g| g.id)
            .filter(|gid| *gid != ids.gid)
            .collect();
    }
    Ok(ids)
}

/// Resolves `--chown=user[:group]` (and the owner of a `WORKDIR` made under
/// `USER`) inside the destination `root`, as BuildKit's file op does
/// (`readUser`): a user given by name without a group gets its primary
/// group from passwd; a numeric user without a group uses its id as the
/// group id too, as Docker documents. Names that are not in the root's
/// databases do not fail the step, as in BuildKit: an unknown user leaves
/// the ids at 0, an unknown group keeps the user's primary group.
pub fn resolve_owner(root: impl AsFd, user: &str, group: &str) -> Result<(u32, u32)> {
    let (uid, primary) = if is_numeric(user) {
        let uid = parse_id(user)?;
        (uid, uid)
    } else {
        let passwd = read_db(&root, "/etc/passwd")?;
        match passwd.iter().find(|e| e.name == user) {
            Some(e) => {
                let uid = e.id.ok_or_else(|| bad_entry("passwd", user))?;
                (uid, e.gid.unwrap_or(uid))
            }
            None => (0, 0),
        }
    };
    let gid = if group.is_empty() {
        primary
    } else if is_numeric(group) {
        parse_id(group)?
    } else {
        let groups = read_db(&root, "/etc/group")?;
        match groups.iter().find(|e| e.name == group) {
            Some(e) => e.id.ok_or_else(|| bad_entry("group", group))?,
            None => primary,
        }
    };
    Ok((uid, gid))
}

fn lookup_group(groups: &[Entry], group: &str) -> Result<u32> {
    if let Some(e) = groups.iter().find(|e| e.name == group) {
        return e.id.ok_or_else(|| bad_entry("group", group));
    }
    if is_numeric(group) {
        return parse_id(group);
    }
    Err(unknown("group", group, "group"))
}

/// One line of passwd (`name:x:uid:gid:gecos:home:shell`) or group
/// (`name:x:gid:members`).
#[derive(Debug)]
struct Entry {
    name: String,
    id: Option<u32>,
    gid: Option<u32>,
    home: String,
    members: Vec<String>,
}

fn read_db(root: &impl AsFd, path: &str) -> Result<Vec<Entry>> {
    let bytes = read_in_root(root.as_fd(), Path::new(path), MAX_DB_SIZE)
        .map_err(|e| Error::io("reading", path, e))?
        .unwrap_or_default();
    let group = path.ends_with("group");
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l, group))
        .collect())
}

fn parse_line(line: &str, group: bool) -> Entry {
    let fields: Vec<&str> = line.split(':').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let id = |s: &str| parse_id(s).ok();
    if group {
        Entry {
            name: field(0).into(),
            id: id(field(2)),
            gid: None,
            home: String::new(),
            members: field(3)
                .split(',')
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
        }
    } else {
        Entry {
            name: field(0).into(),
            id: id(field(2)),
            gid: id(field(3)),
            home: field(5).into(),
            members: Vec::new(),
        }
    }
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_id(s: &str) -> Result<u32> {
    if !is_numeric(s) {
        return Err(Error::Invalid(format!("invalid id {s:?}")));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_ID => Ok(n as u32),
        _ => Err(Error::Invalid(format!(
            "id {s} is out of range (largest is {MAX_ID})"
        ))),
    }
}

fn unknown(kind: &'static str, name: &str, file: &'static str) -> Error {
    Error::UnknownUser {
        kind,
        name: name.into(),
        file,
    }
}

fn bad_entry(file: &str, name: &str) -> Error {
    Error::Invalid(format!("invalid id for {name:?} in /etc/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inroot::open_root;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:app,other\napps:x:1001:\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn user_specs_resolve_like_runc() {
        let dir = root();
        let fd = open_root(dir.path()).unwrap();
        let app = resolve_user(&fd, "app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1001, "/home/app")
        );
        assert_eq!(app.additional_gids, vec![50]);
        assert_eq!(resolve_user(&fd, "").unwrap().uid, 0);
        let numeric = resolve_user(&fd, "1000").unwrap();
        assert_eq!((numeric.uid, numeric.gid), (1000, 1001));
        let unknown_numeric = resolve_user(&fd, "4242:7").unwrap();
        assert_eq!((unknown_numeric.uid, unknown_numeric.gid), (4242, 7));
        assert_eq!(resolve_user(&fd, "app:staff").unwrap().gid, 50);
        let err = resolve_user(&fd, "nobody").unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to find user nobody: no matching entries in passwd file"
        );
        let err = resolve_user(&fd, "app:nogroup").unwrap_err().to_string();
        assert!(err.contains("unable to find group nogroup"), "{err}");
    }

    #[test]
    fn ids_never_wrap_to_root() {
        let dir = root();
        let fd = open_root(dir.path()).unwrap();
        for spec in ["4294967296", "2147483648:0", "0:4294967296"] {
            let err = resolve_user(&fd, spec).unwrap_err().to_string();
            assert!(err.contains("out of range"), "{spec}: {err}");
        }
        assert!(resolve_owner(&fd, "99999999999", "").is_err());
    }

    #[test]
    fn chown_without_group_follows_buildkit() {
        let dir = root();
        let fd = open_root(dir.path()).unwrap();
        // By name: the primary group from passwd (BuildKit's readUser).
        assert_eq!(resolve_owner(&fd, "app", "").unwrap(), (1000, 1001));
        // By id: the id doubles as the group id, even for a known user.
        assert_eq!(resolve_owner(&fd, "1000", "").unwrap(), (1000, 1000));
        assert_eq!(resolve_owner(&fd, "app", "staff").unwrap(), (1000, 50));
        assert_eq!(resolve_owner(&fd, "10", "11").unwrap(), (10, 11));
        // Unknown names do not fail (BuildKit's readUser): ids stay 0, an
        // unknown group keeps the user's primary group.
        assert_eq!(resolve_owner(&fd, "ghost", "").unwrap(), (0, 0));
        assert_eq!(resolve_owner(&fd, "ghost", "staff").unwrap(), (0, 50));
        assert_eq!(resolve_owner(&fd, "app", "ghosts").unwrap(), (1000, 1001));
    }

    #[test]
    fn a_named_group_replaces_the_supplementary_groups() {
        let dir = root();
        let fd = open_root(dir.path()).unwrap();
        assert_eq!(resolve_user(&fd, "app").unwrap().additional_gids, vec![50]);
        let with_group = resolve_user(&fd, "app:apps").unwrap();
        assert_eq!((with_group.gid, with_group.additional_gids), (1001, vec![]));
    }

    #[test]
    fn a_passwd_symlinked_to_the_host_is_read_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
        let fd = open_root(dir.path()).unwrap();
        // The link points at itself inside the root: a loop, never the host file.
        assert!(resolve_user(&fd, "root").is_err());
    }
}
