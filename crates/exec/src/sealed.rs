//! Sealed records: the small binary files rbk keeps under `db/` for its
//! own speed (the context stat cache, COPY reuse records). Each is a
//! magic, a version, a body, and a blake3 of everything before it. They are
//! written without fsync, so a torn, flipped or foreign file must read as
//! no record at all: every read is bounds-checked and the sum is checked
//! before anything is parsed.

use std::io::Read;
use std::path::Path;

/// The largest record read back; anything larger is not one of ours.
const MAX_FILE: u64 = 1 << 30;
const SUM_LEN: usize = 32;

/// A record's first bytes: `magic`, then `version`.
pub(crate) fn start(magic: &[u8; 8], version: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 12 + SUM_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out
}

/// Appends the blake3 of everything written so far.
pub(crate) fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The body of `bytes` after its magic and version, when its sum, magic
/// and version are right.
pub(crate) fn open<'a>(bytes: &'a [u8], magic: &[u8; 8], version: u32) -> Option<Reader<'a>> {
    let body_len = bytes.len().checked_sub(SUM_LEN)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = Reader(body);
    (r.take(8)? == magic && r.u32()? == version).then_some(r)
}

/// The file at `path`, when it can be read and is not too large.
pub(crate) fn read_file(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= MAX_FILE).then_some(bytes)
}

/// A cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_opens_and_any_damage_closes_it() {
        let mut out = start(b"RBKTESTR", 3, 8);
        out.extend_from_slice(&7u64.to_le_bytes());
        let sealed = seal(out);
        let mut r = open(&sealed, b"RBKTESTR", 3).unwrap();
        assert_eq!(r.u64(), Some(7));
        assert_eq!(r.u32(), None, "reads stop at the end of the body");
        assert!(open(&sealed, b"RBKOTHER", 3).is_none(), "magic");
        assert!(open(&sealed, b"RBKTESTR", 4).is_none(), "version");
        for at in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[at] ^= 1;
            assert!(open(&flipped, b"RBKTESTR", 3).is_none(), "flip at {at}");
            assert!(open(&sealed[..at], b"RBKTESTR", 3).is_none(), "cut at {at}");
        }
    }
}
