//! Go binaries' build info: the modules a binary was built from, as
//! `go version -m` lists them. The Go linker puts them in the ELF section
//! `.go.buildinfo` (found with the `object` crate): a 32-byte header (the
//! magic `\xff Go buildinf:`, the pointer size, a flags byte), then, since
//! Go 1.18 (flag bit 2), two length-prefixed strings: the Go version and
//! the module info. The module info is text between two 16-byte sentinels,
//! one line per record: `path`, `mod` (the main module), `dep` (a
//! dependency), `=>` (the replacement of the line before), `build`.
//!
//! Binaries from Go before 1.18 point at their strings through the data
//! segment instead; rbk does not follow those pointers and says so.

use object::{Object, ObjectSection};

use super::Package;

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Flag: the version and module info follow the header inline.
const INLINE: u8 = 0x2;

/// Whether a file starting with `head` is worth reading as a binary.
pub(super) fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// The modules of the ELF file `bytes`; `None` when it is not a Go binary.
pub(super) fn packages(
    bytes: &[u8],
    shown: &str,
) -> Option<std::result::Result<Vec<Package>, String>> {
    let file = object::File::parse(bytes).ok()?;
    let section = file.section_by_name(".go.buildinfo")?;
    Some(match section.data() {
        Ok(data) => parse(data, shown),
        Err(e) => Err(format!("its .go.buildinfo section cannot be read: {e}")),
    })
}

fn parse(data: &[u8], shown: &str) -> std::result::Result<Vec<Package>, String> {
    if !data.starts_with(MAGIC) || data.len() < 32 {
        return Err("its .go.buildinfo section has no Go build info header".into());
    }
    if data[15] & INLINE == 0 {
        return Err(
            "it was built by Go older than 1.18, whose build info rbk does not read".into(),
        );
    }
    let mut rest = &data[32..];
    let go = string(&mut rest)?;
    let info = string(&mut rest)?;
    // The module info sits between two 16-byte sentinels.
    let info = match info.len() >= 33 && info.as_bytes()[info.len() - 17] == b'\n' {
        true => &info[16..info.len() - 16],
        false => info.as_str(),
    };
    let package = |name: &str, version: &str| Package {
        kind: "golang",
        name: name.to_string(),
        version: version.to_string(),
        arch: String::new(),
        source: shown.to_string(),
    };
    let mut out = vec![package("stdlib", &go)];
    for line in info.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", path, version, ..] => out.push(package(path, version)),
            // A replacement keeps the module's path (what the code imports)
            // and, when it has one, takes the replacement's version.
            ["=>", _, version, ..] if !version.is_empty() => {
                if let Some(last) = out.last_mut().filter(|p| p.name != "stdlib") {
                    last.version = version.to_string();
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A uvarint length, then that many bytes.
fn string(rest: &mut &[u8]) -> std::result::Result<String, String> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, tail) = rest
            .split_first()
            .ok_or("its build info ends inside a length")?;
        *rest = tail;
        if shift > 63 {
            return Err("its build info has an overlong length".into());
        }
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= rest.len())
        .ok_or("its build info has a string longer than the section")?;
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    Ok(String::from_utf8_lossy(s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(version: &str, info: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend([8, INLINE]);
        out.resize(32, 0);
        for s in [version, info] {
            let mut n = s.len();
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
            out.extend(s.as_bytes());
        }
        out
    }

    #[test]
    fn build_info_reads() {
        let sentinel = "0123456789abcdef";
        let info = format!(
            "{sentinel}path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\ndep\texample.com/greet\tv1.0.0\t\n=>\t../greet\t\t\ndep\tgolang.org/x/text\tv0.3.0\th1:x=\nbuild\t-compiler=gc\n{sentinel}"
        );
        let p = parse(&section("go1.19.8", &info), "/bin/hello").unwrap();
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdlib", "go1.19.8"),
                ("example.com/hello", "(devel)"),
                ("example.com/greet", "v1.0.0"),
                ("golang.org/x/text", "v0.3.0")
            ]
        );
        let mut old = section("go1.17", "");
        old[15] = 0;
        assert!(parse(&old, "x").unwrap_err().contains("older than 1.18"));
        let mut cut = section("go1.19.8", &info);
        cut.truncate(40);
        assert!(parse(&cut, "x").unwrap_err().contains("longer than"));
        assert!(parse(b"nope", "x")
            .unwrap_err()
            .contains("no Go build info"));
    }
}
