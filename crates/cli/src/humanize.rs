//! Docker's human-readable sizes and durations (go-units `HumanSize…`,
//! `HumanDuration`), so `rbk images` reads like `docker images`.

/// `HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant digits.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(value, 3), UNITS[unit])
}

/// `HumanSize(size)` (precision 4), as `docker system df` and prune use.
pub(crate) fn size4(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(value, 4), UNITS[unit])
}

/// Like C's `%.{digits}g` for 0 ≤ value < 1000.
fn significant(value: f64, digits: usize) -> String {
    let int_digits = if value < 1.0 {
        1
    } else {
        value.log10().floor() as usize + 1
    };
    let decimals = digits.saturating_sub(int_digits);
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `HumanDuration(d) + " ago"`.
pub(crate) fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let text = match s {
        0 => return "Less than a second ago".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ => hours((s as f64 / 3600.0 + 0.5) as i64, s),
    };
    format!("{text} ago")
}

fn hours(h: i64, s: i64) -> String {
    match h {
        1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// The first 12 hex digits of a digest, as Docker names layers.
pub(crate) fn short_digest(digest: &rbk_store::Digest) -> String {
    digest.hex().chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(1000), "1kB");
        assert_eq!(size(1234), "1.23kB");
        assert_eq!(size(5_590_000), "5.59MB");
        assert_eq!(size(72_812_345), "72.8MB");
        assert_eq!(size(123_456_789), "123MB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(5), "5 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3600), "About an hour ago");
        assert_eq!(ago(5 * 3600), "5 hours ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(20 * 86400), "2 weeks ago");
        assert_eq!(ago(100 * 86400), "3 months ago");
        assert_eq!(ago(800 * 86400), "2 years ago");
    }
}
