//! Headless Chromium (Debian's `chromium`, which `cargo xtask ci`
//! installs) for the HTML pages rbk writes: the DOM after the page's
//! scripts ran, its console log, and screenshots decoded to pixels.

use std::path::Path;
use std::process::{Command, Output};

/// Runs headless Chromium on `page` with `extra` flags (`--dump-dom`,
/// `--screenshot=FILE`); its profile lives in `dir`. Fails the test when
/// it cannot start.
pub(crate) fn chromium(dir: &Path, page: &Path, extra: &[&str]) -> Output {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (cargo xtask ci installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The page's DOM once loaded, asserting the console stayed silent.
pub(crate) fn dom(dir: &Path, page: &Path) -> String {
    let out = chromium(dir, page, &["--dump-dom"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("Uncaught") && !log.contains(":CONSOLE"),
        "console output:\n{log}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of the page in a `width`×`height` window: its pixels as
/// RGB rows.
pub(crate) fn screenshot(dir: &Path, page: &Path, width: u32, height: u32) -> Vec<Vec<[u8; 3]>> {
    let shot = dir.join("shot.png");
    chromium(
        dir,
        page,
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size={width},{height}"),
        ],
    );
    let file = std::io::BufReader::new(std::fs::File::open(&shot).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(info.line_size)
        .map(|row| row.chunks(channels).map(|p| [p[0], p[1], p[2]]).collect())
        .collect()
}

/// Whether a pixel is within 8 of `rgb` on each channel.
pub(crate) fn near(p: [u8; 3], rgb: [u8; 3]) -> bool {
    p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 8)
}
