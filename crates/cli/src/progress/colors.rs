//! The live view's colours, as BuildKit picks them: finished steps blue,
//! failed red, cancelled and warnings yellow; none at all under `NO_COLOR`;
//! `BUILDKIT_COLORS="run=green:error=light-red:warning=255,165,0"` changes
//! them (a name or an `R,G,B` triple; bad entries are ignored, as BuildKit
//! ignores them after a warning).

/// ANSI sequences that start each colour (`None`: plain text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Colors {
    pub(crate) run: Option<String>,
    pub(crate) cancel: Option<String>,
    pub(crate) warning: Option<String>,
    pub(crate) error: Option<String>,
}

pub(crate) const RESET: &str = "\x1b[0m";
pub(crate) const FAINT: &str = "\x1b[2m";

impl Colors {
    /// From the values of `NO_COLOR` and `BUILDKIT_COLORS`.
    pub(crate) fn resolve(no_color: Option<&str>, buildkit_colors: Option<&str>) -> Colors {
        if no_color.is_some_and(|v| !v.is_empty()) {
            return Colors::default();
        }
        let mut colors = Colors {
            run: named("blue"),
            cancel: named("yellow"),
            warning: named("yellow"),
            error: named("red"),
        };
        for field in buildkit_colors.unwrap_or("").split(':') {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Some(color) = named(value).or_else(|| rgb(value)) else {
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "run" => colors.run = Some(color),
                "cancel" => colors.cancel = Some(color),
                "warning" => colors.warning = Some(color),
                "error" => colors.error = Some(color),
                _ => {}
            }
        }
        colors
    }
}

/// `text` in `color`, reset after.
pub(crate) fn paint(text: &str, color: Option<&str>) -> String {
    match color {
        Some(c) => format!("{c}{text}{RESET}"),
        None => text.to_string(),
    }
}

fn named(name: &str) -> Option<String> {
    let code = match name.to_ascii_lowercase().as_str() {
        "default" => 39,
        "black" => 30,
        "red" => 31,
        "green" => 32,
        "yellow" => 33,
        "blue" => 34,
        "magenta" => 35,
        "cyan" => 36,
        "white" => 37,
        "light-black" => 90,
        "light-red" => 91,
        "light-green" => 92,
        "light-yellow" => 93,
        "light-blue" => 94,
        "light-magenta" => 95,
        "light-cyan" => 96,
        "light-white" => 97,
        _ => return None,
    };
    Some(format!("\x1b[{code}m"))
}

/// `R,G,B` (0-255 each) as the nearest colour of the 256-colour cube.
fn rgb(value: &str) -> Option<String> {
    let parts: Vec<u8> = value
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [r, g, b] = parts[..] else { return None };
    let cube = |c: u8| u16::from(c) * 6 / 256;
    Some(format!(
        "\x1b[38;5;{}m",
        16 + 36 * cube(r) + 6 * cube(g) + cube(b)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_wins_and_buildkit_colors_override() {
        assert_eq!(
            Colors::resolve(Some("1"), Some("run=green")),
            Colors::default()
        );
        let c = Colors::resolve(None, Some("run=green:error=255,0,0:bogus:warning=nope"));
        assert_eq!(c.run.as_deref(), Some("\x1b[32m"));
        assert_eq!(c.error.as_deref(), Some("\x1b[38;5;196m"));
        assert_eq!(c.warning.as_deref(), Some("\x1b[33m"));
        assert_eq!(c.cancel.as_deref(), Some("\x1b[33m"));
    }
}
