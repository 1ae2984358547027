//! The `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` files written
//! into the bundle and bind-mounted into the container.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Largest host `/etc/resolv.conf` read.
const MAX_RESOLV_CONF: u64 = 64 << 10;

/// Host paths of the three files, inside the bundle.
pub(crate) struct EtcFiles {
    /// For `/etc/hosts`.
    pub(crate) hosts: PathBuf,
    /// For `/etc/resolv.conf`.
    pub(crate) resolv_conf: PathBuf,
    /// For `/etc/hostname`.
    pub(crate) hostname: PathBuf,
}

/// Writes the three files into `bundle`. `own_netns`: the process gets a
/// network namespace of its own, so it can reach no nameserver at all
/// (rbk's only such mode is `--network=none`).
pub(crate) fn write_etc_files(bundle: &Path, hostname: &str, own_netns: bool) -> Result<EtcFiles> {
    check_hostname(hostname)?;
    let files = EtcFiles {
        hosts: bundle.join("hosts"),
        resolv_conf: bundle.join("resolv.conf"),
        hostname: bundle.join("hostname"),
    };
    let host_resolv = read_host_resolv_conf(Path::new("/etc/resolv.conf"))?;
    write(&files.hosts, &hosts(hostname))?;
    write(&files.resolv_conf, &resolv_conf(&host_resolv, own_netns))?;
    write(&files.hostname, &format!("{hostname}\n"))?;
    Ok(files)
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io("writing", path, e))
}

/// Like BuildKit's: loopback names plus the hostname on 127.0.0.1.
fn hosts(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// The host's resolv.conf, as Docker passes it to a container that shares
/// the host's network. In a namespace of its own the process has only `lo`,
/// so every nameserver is dropped (Docker drops the `127.x` ones for its
/// bridge network; with no bridge there is nothing else to keep); `search`
/// and `options` lines stay.
fn resolv_conf(host: &str, own_netns: bool) -> String {
    if !own_netns {
        return host.to_string();
    }
    let mut out = String::new();
    for line in host.lines() {
        if line.split_whitespace().next() != Some("nameserver") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The host's file, bounded; an absent file reads as empty.
fn read_host_resolv_conf(path: &Path) -> Result<String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RESOLV_CONF)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A hostname goes into `/etc/hosts` verbatim: only RFC 1123 characters.
fn check_hostname(hostname: &str) -> Result<()> {
    let valid = !hostname.is_empty()
        && hostname.len() <= 253
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid hostname {hostname:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_localhost_and_the_hostname() {
        let h = hosts("buildbox");
        assert!(h.starts_with("127.0.0.1\tlocalhost buildbox\n"));
        assert!(h.contains("::1\tlocalhost"));
    }

    #[test]
    fn own_netns_drops_nameservers_only() {
        let host = "# c\nnameserver 10.0.0.1\nnameserver 127.0.0.53\nsearch example.com\noptions ndots:2\n";
        assert_eq!(resolv_conf(host, false), host);
        assert_eq!(
            resolv_conf(host, true),
            "# c\nsearch example.com\noptions ndots:2\n"
        );
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(check_hostname("build-box.local").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname("a\n1.2.3.4 evil").is_err());
        assert!(check_hostname(&"a".repeat(254)).is_err());
    }

    #[test]
    fn files_land_in_the_bundle() {
        let bundle = tempfile::tempdir().unwrap();
        let files = write_etc_files(bundle.path(), "box", true).unwrap();
        assert_eq!(std::fs::read_to_string(files.hostname).unwrap(), "box\n");
        assert!(std::fs::read_to_string(files.hosts)
            .unwrap()
            .contains("box"));
        let resolv = std::fs::read_to_string(files.resolv_conf).unwrap();
        assert!(!resolv.contains("nameserver"));
    }
}
