//! Encoding of ustar headers and PAX extended headers, byte for byte.
//!
//! Written by hand rather than through `tar::Builder` so every byte is fixed
//! by this file: numeric fields are zero-padded octal ending in NUL (as Go's
//! `archive/tar` writes them), `uname`/`gname` stay empty, and anything a
//! ustar field cannot hold exactly (a name over 100 bytes or not ASCII, a
//! size of 8 GiB or more, a large id, an mtime out of range, xattrs) goes
//! into a PAX `x` header whose records are sorted by key.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// A tar block.
pub(super) const BLOCK: usize = 512;

/// The ustar type flags rbk writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Regular,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Directory => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// Everything one entry's header(s) say.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The name in the archive (directories end with `/`).
    pub(super) name: Vec<u8>,
    pub(super) kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub(super) mode: u32,
    pub(super) uid: u64,
    pub(super) gid: u64,
    pub(super) size: u64,
    /// Seconds since the epoch.
    pub(super) mtime: i64,
    /// Symlink target or hardlink target name.
    pub(super) link: Vec<u8>,
    pub(super) dev_major: u32,
    pub(super) dev_minor: u32,
    /// Kept xattrs, by name.
    pub(super) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Entry {
    /// A bare entry: mode 0, owned by 0:0, empty.
    pub(super) fn new(name: Vec<u8>, kind: Kind, mtime: i64) -> Self {
        Entry {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: BTreeMap::new(),
        }
    }
}

/// Largest value of an octal field of `width` bytes (one byte is the NUL).
fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width - 1))) - 1
}

/// Writes the header(s) of `entry` (a PAX header first when needed).
pub(super) fn write_header(out: &mut impl Write, entry: &Entry) -> io::Result<()> {
    let pax = pax_records(entry);
    if !pax.is_empty() {
        let mut pax_header = Entry::new(pax_name(&entry.name), Kind::Regular, 0);
        pax_header.size = pax.len() as u64;
        let mut block = ustar_block(&pax_header)?;
        block[156] = b'x';
        set_checksum(&mut block);
        out.write_all(&block)?;
        out.write_all(&pax)?;
        out.write_all(&[0u8; BLOCK][..padding(pax.len() as u64)])?;
    }
    out.write_all(&ustar_block(entry)?)
}

/// Bytes of zero padding after `size` bytes of content.
pub(super) fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// The PAX records `entry` needs, sorted by key, concatenated; empty when
/// ustar holds everything.
fn pax_records(entry: &Entry) -> Vec<u8> {
    let mut records: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    if !fits_name(&entry.name) {
        records.insert(b"path".to_vec(), entry.name.clone());
    }
    if !fits_name(&entry.link) {
        records.insert(b"linkpath".to_vec(), entry.link.clone());
    }
    let numbers = [
        ("size", entry.size, 12),
        ("uid", entry.uid, 8),
        ("gid", entry.gid, 8),
    ];
    for (key, value, width) in numbers {
        if value > octal_max(width) {
            records.insert(key.as_bytes().to_vec(), value.to_string().into_bytes());
        }
    }
    if !(0..=octal_max(12) as i64).contains(&entry.mtime) {
        records.insert(b"mtime".to_vec(), entry.mtime.to_string().into_bytes());
    }
    for (name, value) in &entry.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        records.insert(key, value.clone());
    }
    let mut out = Vec::new();
    for (key, value) in &records {
        push_record(&mut out, key, value);
    }
    out
}

/// Appends one `"<len> key=value\n"` record; `len` counts itself.
fn push_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Whether a name fits a 100-byte ustar field as is.
fn fits_name(name: &[u8]) -> bool {
    name.len() <= 100 && name.iter().all(|b| b.is_ascii() && *b != 0)
}

/// The name of a PAX header: `<dir>/PaxHeaders.0/<base>` like Go, made
/// ASCII and cut to 100 bytes (readers ignore it).
fn pax_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|b| *b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = dir.to_vec();
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend_from_slice(base);
    ascii_prefix(&out, 100)
}

/// `bytes` with non-ASCII and NUL bytes replaced by `_`, cut to `max`.
fn ascii_prefix(bytes: &[u8], max: usize) -> Vec<u8> {
    bytes
        .iter()
        .take(max)
        .map(|b| if b.is_ascii() && *b != 0 { *b } else { b'_' })
        .collect()
}

/// The ustar block of `entry`; fields PAX overrides hold a clamped value.
fn ustar_block(entry: &Entry) -> io::Result<[u8; BLOCK]> {
    let mut b = [0u8; BLOCK];
    put_ascii(&mut b[0..100], &entry.name);
    put_octal(&mut b[100..108], u64::from(entry.mode & 0o7777));
    put_octal(&mut b[108..116], entry.uid.min(octal_max(8)));
    put_octal(&mut b[116..124], entry.gid.min(octal_max(8)));
    put_octal(&mut b[124..136], entry.size.min(octal_max(12)));
    let mtime = entry.mtime.clamp(0, octal_max(12) as i64) as u64;
    put_octal(&mut b[136..148], mtime);
    b[156] = entry.kind.flag();
    put_ascii(&mut b[157..257], &entry.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    let (major, minor) = (u64::from(entry.dev_major), u64::from(entry.dev_minor));
    if major > octal_max(8) || minor > octal_max(8) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("device number {major}:{minor} does not fit a tar header"),
        ));
    }
    if matches!(entry.kind, Kind::CharDevice | Kind::BlockDevice) {
        put_octal(&mut b[329..337], major);
        put_octal(&mut b[337..345], minor);
    }
    set_checksum(&mut b);
    Ok(b)
}

/// [`ascii_prefix`] of `value`, as long as `field`, written into it.
fn put_ascii(field: &mut [u8], value: &[u8]) {
    for (f, b) in field.iter_mut().zip(value) {
        *f = if b.is_ascii() && *b != 0 { *b } else { b'_' };
    }
}

/// Zero-padded octal ending in NUL; the caller keeps `value` in range.
fn put_octal(field: &mut [u8], value: u64) {
    let last = field.len() - 1;
    octal_digits(&mut field[..last], value);
    field[last] = 0;
}

/// `value` as zero-padded octal filling `digits` (its low digits, should it
/// not fit); written by hand because a header has six such fields and a
/// layer may have a header per file.
fn octal_digits(digits: &mut [u8], mut value: u64) {
    for d in digits.iter_mut().rev() {
        *d = b'0' + (value & 7) as u8;
        value >>= 3;
    }
}

/// The checksum: the byte sum with the field as spaces, as 6 octal digits,
/// NUL, space.
fn set_checksum(b: &mut [u8; BLOCK]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
    octal_digits(&mut b[148..154], u64::from(sum));
    b[154] = 0;
    b[155] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut out = Vec::new();
        push_record(&mut out, b"path", b"a");
        assert_eq!(out, b"9 path=a\n");
        // 93 bytes of value: 4 + 93 + 3 = 100, plus 3 digits = 103.
        let mut out = Vec::new();
        push_record(&mut out, b"path", &[b'x'; 93]);
        assert_eq!(out.len(), 103);
        assert!(out.starts_with(b"103 path="));
        // 91 bytes: 98 + 2 digits = 100, which has 3 digits: 101.
        let mut out = Vec::new();
        push_record(&mut out, b"path", &[b'x'; 91]);
        assert!(out.starts_with(b"101 path="), "{:?}", &out[..9]);
        assert_eq!(out.len(), 101);
    }

    #[test]
    fn numbers_too_large_for_ustar_go_to_pax() {
        let mut entry = Entry::new(b"f".to_vec(), Kind::Regular, -1);
        entry.size = 1 << 34;
        entry.uid = 1 << 21; // one past the 7-digit octal maximum
        entry.gid = 5;
        let records = pax_records(&entry);
        assert_eq!(
            String::from_utf8(records).unwrap(),
            "12 mtime=-1\n20 size=17179869184\n15 uid=2097152\n"
        );
        let block = ustar_block(&entry).unwrap();
        assert_eq!(&block[124..136], b"77777777777\0", "size is clamped");
        assert_eq!(&block[136..148], b"00000000000\0", "mtime is clamped");
        entry.size = (1 << 33) - 1;
        entry.uid = (1 << 21) - 1;
        entry.mtime = 0;
        assert!(pax_records(&entry).is_empty());
    }

    #[test]
    fn device_numbers_must_fit() {
        let mut entry = Entry::new(b"dev".to_vec(), Kind::CharDevice, 0);
        entry.dev_major = 1 << 21;
        assert!(ustar_block(&entry).is_err());
        entry.dev_major = 4095;
        entry.dev_minor = 1 << 20;
        let block = ustar_block(&entry).unwrap();
        assert_eq!(&block[329..337], b"0007777\0");
        assert_eq!(&block[337..345], b"4000000\0");
    }

    #[test]
    fn octal_fields_are_zero_padded_and_end_in_nul() {
        let mut field = [b'x'; 8];
        put_octal(&mut field, 0o755);
        assert_eq!(&field, b"0000755\0");
        put_octal(&mut field, octal_max(8));
        assert_eq!(&field, b"7777777\0");
        let mut field = [b'x'; 12];
        put_octal(&mut field, 1_700_000_000);
        assert_eq!(&field, format!("{:011o}\0", 1_700_000_000).as_bytes());
        let mut block = [0u8; BLOCK];
        set_checksum(&mut block);
        assert_eq!(&block[148..156], b"000400\0 ", "8 spaces: 256");
    }

    #[test]
    fn pax_names_are_ascii_and_short() {
        assert_eq!(pax_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_name(b"dir/"), b"PaxHeaders.0/dir");
        assert_eq!(pax_name("é".as_bytes()), b"PaxHeaders.0/__");
        assert_eq!(pax_name(&[b'x'; 300]).len(), 100);
    }
}
