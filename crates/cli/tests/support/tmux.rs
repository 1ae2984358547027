//! A tmux server of a test's own (a real pseudo-terminal of a fixed size),
//! on a socket named after the test, killed when dropped.

use std::process::Command;
use std::time::{Duration, Instant};

use super::stderr;

pub(crate) struct Tmux {
    pub(crate) socket: String,
}

impl Tmux {
    /// A server named after `name` and this process.
    pub(crate) fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("rbk-test-{name}-{}", std::process::id()),
        }
    }

    /// Starts session `t`, a `width`×`height` window running `script`.
    pub(crate) fn start(&self, width: u16, height: u16, script: &str) {
        self.cmd(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "-s",
            "t",
            script,
        ]);
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is missing: install it (cargo xtask ci does)");
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        out
    }

    /// The visible screen, trailing blanks dropped.
    pub(crate) fn pane(&self) -> String {
        super::stdout(&self.cmd(&["capture-pane", "-p", "-t", "t"]))
    }

    /// The screen and its scrollback; `escapes` keeps the colours.
    pub(crate) fn history(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-S", "-", "-t", "t"];
        if escapes {
            args.push("-e");
        }
        super::stdout(&self.cmd(&args))
    }

    /// Waits until the pane shows `text`.
    pub(crate) fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pane = self.pane();
            if pane.contains(text) {
                return pane;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
