//! Content digests. A [`Digest`] can only be built from bytes or from a string
//! that passed validation, so a path or URL built from one can never contain
//! `..`, `/` or upper-case hex (CVE-2024-3727).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A validated `sha256:` digest (the only algorithm OCI requires).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

/// Why a string is not a valid digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    /// The part before `:` is not `sha256`.
    #[error("unsupported digest algorithm in {0:?}: expected \"sha256:\"")]
    Algorithm(String),
    /// The hex part has the wrong length or contains other than `[0-9a-f]`.
    #[error("invalid digest {0:?}: expected 64 lower-case hex characters after \"sha256:\"")]
    Encoded(String),
}

impl Digest {
    /// The digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The digest whose raw bytes are `bytes` (a hash computed elsewhere).
    pub(crate) fn from_raw(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The lower-case hex part, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        String::from_utf8_lossy(&self.hex_bytes()).into_owned()
    }

    /// The lower-case hex part as ASCII bytes, without allocating.
    fn hex_bytes(&self) -> [u8; 64] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }

    /// The first 12 hex characters, as Docker shows image ids.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex_bytes();
        // Always ASCII: the digits come from `HEX`.
        let hex = std::str::from_utf8(&hex).map_err(|_| fmt::Error)?;
        write!(f, "sha256:{hex}")
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Marks a character that is not lower-case hex in [`NIBBLE`].
const INVALID: u8 = 0x80;

/// Hex digit (`0-9`, `a-f`) → value; [`INVALID`] for every other byte.
const NIBBLE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(DigestError::Algorithm(s.to_string()));
        };
        // One pass: each character through the table, an invalid one
        // (anything but `0-9a-f`) marking `bad`. `system df` parses one
        // digest per cache record's layer, so this is on the hot path.
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(DigestError::Encoded(s.to_string()));
        }
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            bad |= hi | lo;
            *o = (hi << 4) | (lo & 0x0f);
        }
        if bad & INVALID != 0 {
            return Err(DigestError::Encoded(s.to_string()));
        }
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than `String::deserialize`: the text is parsed
        // where the deserializer holds it, without a copy (an image index
        // of 10,000 entries holds tens of thousands of digests).
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sha256 digest string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Digest, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Computes a digest incrementally, for callers that hash structured data piece
/// by piece rather than holding it in one buffer.
#[derive(Default, Clone)]
pub struct Sha256Writer(Sha256);

impl Sha256Writer {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_string_and_json() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    /// Parsed in place: from an escaped string, as a map key, and from a
    /// reader (where serde hands over a transient buffer); not from a number.
    #[test]
    fn deserializes_from_every_kind_of_json_string() {
        let d = Digest::sha256_of(b"x");
        let hex = d.hex();
        let escaped = format!("\"\\u0073ha256:{hex}\"");
        assert_eq!(serde_json::from_str::<Digest>(&escaped).unwrap(), d);
        let map = format!("{{\"{d}\": 1}}");
        let parsed: std::collections::BTreeMap<Digest, u32> = serde_json::from_str(&map).unwrap();
        assert_eq!(parsed[&d], 1);
        let quoted = format!("\"{d}\"");
        assert_eq!(
            serde_json::from_reader::<_, Digest>(quoted.as_bytes()).unwrap(),
            d
        );
        assert!(serde_json::from_str::<Digest>("12").is_err());
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(format!("sha256:{hex}").parse::<Digest>(), Ok(d));
    }

    /// Every byte that is not lower-case hex is refused, at either end.
    #[test]
    fn the_table_refuses_every_other_byte() {
        let hex = Digest::sha256_of(b"t").hex();
        for b in 0..=255u8 {
            let ok = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            for at in [0, 63] {
                let mut bytes = hex.clone().into_bytes();
                bytes[at] = b;
                let Ok(text) = String::from_utf8(bytes) else {
                    continue;
                };
                let parsed = format!("sha256:{text}").parse::<Digest>();
                assert_eq!(parsed.is_ok(), ok, "byte {b} at {at}");
            }
        }
    }

    #[test]
    fn rejects_malformed_digests() {
        let bad = [
            "sha256:../../x",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
        ];
        for s in bad {
            assert!(s.parse::<Digest>().is_err(), "{s} should be rejected");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn incremental_hash_matches_one_shot() {
        let mut w = Sha256Writer::new();
        w.update(b"hel");
        w.update(b"lo");
        assert_eq!(w.finish(), Digest::sha256_of(b"hello"));
    }
}
