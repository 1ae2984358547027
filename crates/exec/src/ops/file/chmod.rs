//! `--chmod` values: octal (`755`, `0644`) or symbolic (`u+x`, `g-w,o=r`,
//! `a+X`, `+x`, `go=u`), as chmod(1) writes them. An empty "who" means all
//! classes and no umask is applied (BuildKit passes no umask either).

use crate::{Error, Result};

/// A parsed `--chmod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Chmod {
    /// Replace the permission bits (including setuid, setgid, sticky).
    Octal(u32),
    /// Edit the source's bits clause by clause.
    Symbolic(Vec<Clause>),
}

/// One comma-separated clause: who, then one or more operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Clause {
    /// Mask of the bits the clause may touch (`u` = 0o4700, …).
    who: u32,
    ops: Vec<(u8, Perm)>,
}

/// What an operation adds, removes or sets.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Perm {
    /// Letters among `rwxXst`.
    Letters(Vec<u8>),
    /// Copy of another class's bits (`u`, `g` or `o`).
    Copy(u8),
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o1007;

impl Chmod {
    /// Parses a `--chmod` value; an invalid one is an error naming it.
    pub(crate) fn parse(value: &str) -> Result<Chmod> {
        let invalid = || Error::Invalid(format!("invalid chmod parameter {value:?}"));
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(value, 8) {
                Ok(mode) if mode <= 0o7777 => Ok(Chmod::Octal(mode)),
                _ => Err(invalid()),
            };
        }
        value
            .split(',')
            .map(|clause| parse_clause(clause.as_bytes()).ok_or_else(invalid))
            .collect::<Result<Vec<_>>>()
            .map(Chmod::Symbolic)
    }

    /// The new permission bits for an entry whose current bits are `mode`.
    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut mode = mode & 0o7777;
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                for clause in clauses {
                    for (op, perm) in &clause.ops {
                        let bits = perm_bits(perm, mode, is_dir, clause.who);
                        mode = match op {
                            b'+' => mode | bits,
                            b'-' => mode & !bits,
                            _ => (mode & !clause.who) | bits,
                        };
                    }
                }
                mode
            }
        }
    }
}

fn parse_clause(s: &[u8]) -> Option<Clause> {
    let split = s.iter().position(|b| !b"ugoa".contains(b))?;
    let (who_part, mut rest) = s.split_at(split);
    let mut who = 0;
    for b in who_part {
        who |= match b {
            b'u' => USER,
            b'g' => GROUP,
            b'o' => OTHER,
            _ => USER | GROUP | OTHER,
        };
    }
    if who == 0 {
        who = USER | GROUP | OTHER;
    }
    let mut ops = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        if !b"+-=".contains(&op) {
            return None;
        }
        let end = tail
            .iter()
            .position(|b| b"+-=".contains(b))
            .unwrap_or(tail.len());
        let (perm, next) = tail.split_at(end);
        let perm = match perm {
            [c @ (b'u' | b'g' | b'o')] => Perm::Copy(*c),
            letters if letters.iter().all(|b| b"rwxXst".contains(b)) => {
                Perm::Letters(letters.to_vec())
            }
            _ => return None,
        };
        ops.push((op, perm));
        rest = next;
    }
    if ops.is_empty() {
        return None;
    }
    Some(Clause { who, ops })
}

fn perm_bits(perm: &Perm, mode: u32, is_dir: bool, who: u32) -> u32 {
    let rwx = match perm {
        Perm::Copy(class) => {
            let bits = match class {
                b'u' => (mode >> 6) & 7,
                b'g' => (mode >> 3) & 7,
                _ => mode & 7,
            };
            bits * 0o111
        }
        Perm::Letters(letters) => letters.iter().fold(0, |acc, letter| {
            acc | match letter {
                b'r' => 0o444,
                b'w' => 0o222,
                b'x' => 0o111,
                b'X' if is_dir || mode & 0o111 != 0 => 0o111,
                b's' => 0o6000,
                b't' => 0o1000,
                _ => 0,
            }
        }),
    };
    rwx & who
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(spec: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(spec).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_and_symbolic_modes() {
        assert_eq!(apply("755", 0o600, false), 0o755);
        assert_eq!(apply("0644", 0o4777, false), 0o644);
        assert_eq!(apply("4755", 0o600, false), 0o4755);
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("g-w,o=r", 0o777, false), 0o754);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o644, true), 0o755);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        assert_eq!(apply("go=u", 0o640, false), 0o666);
        assert_eq!(apply("u+s,+t", 0o755, true), 0o5755);
        assert_eq!(apply("u=rw,go=", 0o777, false), 0o600);
    }

    #[test]
    fn invalid_modes_are_rejected() {
        for bad in ["", "8", "77777", "u", "u+q", "z+x", "u+x,", "+ux"] {
            let err = Chmod::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid chmod"), "{bad}: {err}");
        }
    }
}
