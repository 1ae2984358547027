//! Real servers for the remote-source tests, on loopback: a Python
//! `http.server` (testdata/remote/http_server.py) and `git daemon`. Each
//! dies with its guard. A server that cannot start fails the test.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The HTTP server, serving `dir`, logging to `log`.
pub(crate) struct HttpServer {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
}

impl HttpServer {
    pub(crate) fn start(base: &Path) -> HttpServer {
        let dir = base.join("served");
        fs::create_dir_all(&dir).unwrap();
        let log = base.join("http.log");
        fs::write(&log, "").unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/remote/http_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is missing (Debian package python3; cargo xtask ci installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the HTTP server did not start: {line:?}"));
        HttpServer {
            child,
            port,
            dir,
            log,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The log's lines so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git daemon` exporting every repository under `base`.
pub(crate) struct GitDaemon {
    child: Child,
    pub(crate) port: u16,
}

impl GitDaemon {
    pub(crate) fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        // git-daemon itself, not `git daemon`: the wrapper would leave it
        // running when killed.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon cannot start");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, port }
    }

    pub(crate) fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The git binary on these machines.
pub(crate) const GIT: &str = "git";

/// Runs git in `dir` with a fixed identity and dates; panics on failure.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(GIT)
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git is missing (Debian package git)");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The sha256 of `data`, in hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
