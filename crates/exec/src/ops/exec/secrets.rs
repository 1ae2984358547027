//! `RUN --mount=type=secret` and `RUN --mount=type=ssh`: what the build was
//! given (`--secret`, `--ssh`) made visible to one RUN and nothing else.
//!
//! # Decisions
//!
//! - **Secrets live in memory.** Each RUN that mounts secrets gets its own
//!   tmpfs (mode 0700, root only, `noexec,nosuid,nodev`), the secret files
//!   are written there with the mount's mode and owner (0400 root by
//!   default) and bind-mounted read-only at their targets. The tmpfs is
//!   unmounted when the RUN ends, so a value never reaches the store's disk,
//!   a layer (the target's mountpoint stub is removed like every mount stub)
//!   or a cache key: the op names the secret's id, never its value, so
//!   changing a value does not invalidate the cache, as in BuildKit.
//! - **SSH agents are proxied.** The container does not get the host's agent
//!   socket itself (a root process could chmod or replace the host inode):
//!   it gets a socket of its own, with the mount's mode and owner (0600 root
//!   by default), whose connections a thread forwards to the agent. Only
//!   agent sockets are accepted (`--ssh ID=PATH`); BuildKit's in-process
//!   agent loaded from key files is not supported.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::mount::{mount_tmpfs, MountGuard};
use crate::{Error, Result};

/// A secret's value: kept out of `Debug` output and error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: Vec<u8>) -> Secret {
        Secret(value)
    }

    /// The value.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Largest secret accepted (BuildKit's limit is 500 KiB).
pub const MAX_SECRET_SIZE: usize = 500 << 10;

/// A tmpfs holding one RUN's secret files; unmounted on drop.
pub(crate) struct SecretDir {
    path: PathBuf,
    _mount: MountGuard,
    next: usize,
}

impl SecretDir {
    /// Mounts an empty tmpfs at `path` (created here).
    pub(crate) fn new(path: PathBuf) -> Result<SecretDir> {
        fs::create_dir(&path).map_err(|e| Error::io("creating directory", &path, e))?;
        let size = 4 * MAX_SECRET_SIZE + (64 << 10);
        let mount = mount_tmpfs(&path, &format!("mode=0700,size={size}"))?;
        Ok(SecretDir {
            path,
            _mount: mount,
            next: 0,
        })
    }

    /// An empty directory on the tmpfs for the runtime's bundle.
    pub(crate) fn bundle(&self) -> Result<PathBuf> {
        let path = self.path.join("bundle");
        fs::create_dir(&path).map_err(|e| Error::io("creating directory", &path, e))?;
        Ok(path)
    }

    /// Writes `secret` into a new file with `mode`, `uid` and `gid`.
    pub(crate) fn write(
        &mut self,
        secret: &Secret,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<PathBuf> {
        let path = self.path.join(format!("s{}", self.next));
        self.next += 1;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("writing secret", &path, e))?;
        file.write_all(secret.bytes())
            .map_err(|e| Error::io("writing secret", &path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| Error::io("setting mode", &path, e))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| Error::io("changing owner", &path, e))?;
        Ok(path)
    }
}

/// A socket forwarding every connection to an SSH agent; stops on drop.
pub(crate) struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listens at `path` (with `mode`, `uid`, `gid`) and forwards to `agent`.
    pub(crate) fn start(
        path: PathBuf,
        agent: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<AgentProxy> {
        let meta =
            fs::metadata(agent).map_err(|e| Error::io("opening SSH agent socket", agent, e))?;
        if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            return Err(Error::Invalid(format!(
                "{}: not an SSH agent socket (only agent sockets can be forwarded)",
                agent.display()
            )));
        }
        let listener =
            UnixListener::bind(&path).map_err(|e| Error::io("creating socket", &path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| Error::io("setting mode", &path, e))?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|e| Error::io("changing owner", &path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = UnixStream::connect(&agent) else {
                    continue;
                };
                std::thread::spawn(move || forward(client, upstream));
            }
        });
        Ok(AgentProxy {
            path,
            stop,
            thread: Some(thread),
        })
    }

    /// The proxy's socket.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so that it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// Copies both ways until either side closes.
fn forward(client: UnixStream, upstream: UnixStream) {
    let (Ok(mut client_r), Ok(mut upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut upstream_w);
        let _ = upstream_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_r, mut client_w) = (upstream, client);
    let _ = std::io::copy(&mut upstream_r, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn the_proxy_forwards_both_ways_and_stops_on_drop() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let agent = UnixListener::bind(dir.join("agent")).unwrap();
        // A toy agent: answers each request with its bytes reversed.
        std::thread::spawn(move || {
            for conn in agent.incoming() {
                let mut conn = conn.unwrap();
                let mut buf = [0u8; 5];
                conn.read_exact(&mut buf).unwrap();
                buf.reverse();
                conn.write_all(&buf).unwrap();
            }
        });
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let proxy =
            AgentProxy::start(dir.join("proxy"), &dir.join("agent"), 0o600, uid, gid).unwrap();
        let mode = fs::metadata(proxy.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for _ in 0..2 {
            let mut client = UnixStream::connect(proxy.path()).unwrap();
            client.write_all(b"hello").unwrap();
            let mut reply = [0u8; 5];
            client.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"olleh");
        }
        let path = proxy.path().to_path_buf();
        drop(proxy);
        assert!(!path.exists());
    }

    #[test]
    fn only_sockets_are_agents() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("not-agent");
        fs::write(&file, "key").unwrap();
        let err = AgentProxy::start(file.with_extension("sock"), &file, 0o600, 0, 0)
            .err()
            .unwrap();
        assert!(err.to_string().contains("not an SSH agent socket"), "{err}");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = Secret::new(b"hunter2".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
