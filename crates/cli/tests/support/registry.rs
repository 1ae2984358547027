//! A real registry for tests: Debian's `docker-registry` (the reference
//! distribution implementation) on 127.0.0.1, a free port and a temporary
//! filesystem storage, optionally behind htpasswd basic auth; a small
//! fault-injecting TCP proxy to put in front of it; and Debian's nginx as
//! the reverse proxy with a request-body limit that many registries sit
//! behind.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running `docker-registry serve`; killed on drop.
pub(crate) struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) host: String,
    /// The storage root (`docker/registry/v2/...` lies under it).
    pub(crate) storage: PathBuf,
    /// The registry's log file.
    pub(crate) log: PathBuf,
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry under `dir`, with basic auth for `user` when given.
    /// Panics with the reason when it cannot start (a missing binary
    /// included): the tests that need one fail, they never skip.
    pub(crate) fn start(dir: &Path, user: Option<(&str, &str)>) -> Registry {
        Registry::start_logging(dir, user, "warn")
    }

    /// [`Registry::start`] logging at `level`: at `info` the log
    /// (`registry.log` in `dir`, see [`Registry::log`]) has a line per
    /// request, which tests count uploads in.
    pub(crate) fn start_logging(dir: &Path, user: Option<(&str, &str)>, level: &str) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).is_file(),
            "{REGISTRY_BIN} is missing (Debian package docker-registry; cargo xtask ci installs it)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let storage = dir.join("storage");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: {level}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            storage.display()
        );
        if let Some((name, password)) = user {
            let hash = bcrypt::hash(password, 5).unwrap();
            let htpasswd = dir.join("htpasswd");
            std::fs::write(&htpasswd, format!("{name}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: rbk-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {REGISTRY_BIN}: {e}"));
        let registry = Registry {
            child,
            host,
            storage,
            log: dir.join("registry.log"),
        };
        registry.wait_ready(dir);
        registry
    }

    /// Polls `GET /v2/` until the registry answers (bounded: 20 s).
    fn wait_ready(&self, dir: &Path) {
        for _ in 0..200 {
            if let Ok(mut s) = TcpStream::connect(&self.host) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on {}:\n{log}", self.host);
    }

    /// The file the registry keeps blob `digest` (`sha256:HEX`) in.
    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx (Debian's `nginx-light`) as a reverse proxy in front of a
/// registry, with `client_max_body_size`: a blob upload larger than that is
/// answered `413 Request Entity Too Large`, as by registries behind a
/// default nginx. Killed on drop.
pub(crate) struct Nginx {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(crate) host: String,
}

impl Nginx {
    /// Starts nginx under `dir` proxying to `upstream` (`HOST:PORT`),
    /// refusing request bodies over `max_body` (nginx's size syntax: `1m`).
    pub(crate) fn start(dir: &Path, upstream: &str, max_body: &str) -> Nginx {
        const NGINX: &str = "/usr/sbin/nginx";
        assert!(
            Path::new(NGINX).is_file(),
            "{NGINX} is missing (Debian package nginx-light; cargo xtask ci installs it)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let d = dir.display();
        let config = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
             events {{ worker_connections 64; }}
             http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
               fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
               server {{
    listen {host};
    client_max_body_size {max_body};
                 location / {{
      proxy_pass http://{upstream};
      proxy_set_header Host $http_host;
                   proxy_http_version 1.1;
      proxy_request_buffering off;
    }}
  }}
}}
"
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("nginx.log")).unwrap();
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&config_path)
            .arg("-p")
            .arg(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {NGINX}: {e}"));
        let nginx = Nginx { child, host };
        for _ in 0..200 {
            if TcpStream::connect(&nginx.host).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        panic!("nginx did not start on {}:\n{log}", nginx.host);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the proxy does with one connection, decided from its first request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Forward to the registry.
    Forward,
    /// Answer with this status (and `Connection: close`).
    Status(u16),
    /// Forward, but cut the response off after its headers and a few bytes.
    Truncate,
    /// Read the request's body (its `Content-Length`), then answer with this
    /// status, as a registry refusing an upload's `PUT` does.
    StatusAfterBody(u16),
}

/// A TCP proxy in front of a registry that injects faults. Stops on drop.
pub(crate) struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub(crate) host: String,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free port; `rule` sees each connection's first request
    /// line (`GET /v2/... HTTP/1.1`) and decides.
    pub(crate) fn start(
        upstream: &str,
        rule: impl Fn(&str) -> Fault + Send + Sync + 'static,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rule = Arc::new(rule);
        let upstream = upstream.to_string();
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (rule, upstream) = (rule.clone(), upstream.clone());
                        std::thread::spawn(move || serve(client, &upstream, &*rule));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FaultProxy { host, stop }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, upstream: &str, rule: &(dyn Fn(&str) -> Fault + Send + Sync)) {
    client.set_nonblocking(false).unwrap();
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    // Read the first request's head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let fault = rule(&line);
    if let Fault::StatusAfterBody(_) = fault {
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let _ = std::io::copy(&mut (&client).take(length), &mut std::io::sink());
    }
    match fault {
        Fault::Status(code) | Fault::StatusAfterBody(code) => {
            let body = format!("injected {code}");
            let reply = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(reply.as_bytes());
            let _ = client.shutdown(Shutdown::Both);
        }
        fault => {
            let Ok(mut up) = TcpStream::connect(upstream) else {
                return;
            };
            // One request per connection, so that the rule sees every request.
            head.truncate(head.len() - 2);
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            up.write_all(&head).unwrap();
            let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
            // Client → registry (the rest of this request and later ones).
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(Shutdown::Write);
            });
            if fault == Fault::Truncate {
                // Headers plus a little of the body, then hang up.
                let mut buf = vec![0u8; 4096];
                let mut sent = Vec::new();
                while let Ok(n) = up.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sent.extend_from_slice(&buf[..n]);
                    if let Some(end) = find(&sent, b"\r\n\r\n") {
                        let cut = (end + 4 + 10).min(sent.len());
                        let _ = client.write_all(&sent[..cut]);
                        break;
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = up.shutdown(Shutdown::Both);
            } else {
                let _ = std::io::copy(&mut up, &mut client);
                let _ = client.shutdown(Shutdown::Both);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Pushes `descriptor` (a manifest or index in `store`) to `image` through
/// rbk's registry client, with the docker config dir `cfg` (for documents
/// the CLI would never write, such as a config that lies).
pub(crate) fn push_descriptor(
    store: &rbk_store::Store,
    cfg: &Path,
    descriptor: &rbk_store::Descriptor,
    image: &str,
) -> rbk_registry::PushReport {
    let client = rbk_registry::Client::new(rbk_registry::ClientOptions {
        docker_config_dir: Some(cfg.to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    client
        .push(store, descriptor, &image.parse().unwrap())
        .unwrap()
}

/// The store's `rbk-busybox` base as a linux/arm64 image: the same layers
/// under a config that says arm64, written to the store untagged. Returns
/// the manifest and config descriptors.
pub(crate) fn arm64_variant(
    store: &rbk_store::Store,
) -> (rbk_store::Descriptor, rbk_store::Descriptor) {
    use rbk_store::{BlobRead, BlobWrite};
    let base = store.image(&"rbk-busybox:latest".parse().unwrap()).unwrap();
    let bytes = store
        .read_bounded(&base.manifest.config.digest, 1 << 22)
        .unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    config["os"] = "linux".into();
    config["architecture"] = "arm64".into();
    let info = store
        .put_bytes(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    let mut config_desc = base.manifest.config.clone();
    config_desc.digest = info.digest;
    config_desc.size = info.size;
    let manifest = store
        .put_manifest(config_desc.clone(), base.manifest.layers.clone())
        .unwrap();
    (manifest, config_desc)
}
