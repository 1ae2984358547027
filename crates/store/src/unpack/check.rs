//! The dry run of the extractor: reads a layer the way [`super::unpack_layer`]
//! does and refuses what it would refuse, without writing a file.
//!
//! `rbk load` must refuse a layer the first build could not unpack (issue
//! 20, defect 10), but unpacking a 1 GiB layer of 20,000 files costs many
//! times the load itself on a disk that creates files slowly. The dry run
//! keeps a model of the tree the layer makes (each path's kind) and applies
//! the extractor's rules to it. It decides only what the model decides
//! exactly: the checks of the shared entry walk (limits, PAX sizes, names,
//! lengths), the root, whiteouts, hardlink targets, owners and modes. Where
//! the outcome depends on the filesystem — a symlink on a parent path or a
//! hardlink's, a parent that is not a directory, xattrs, device nodes,
//! names or link targets longer than the kernel takes, very many hardlinks —
//! it answers [`UnpackVerdict::Undecided`] and the caller unpacks for real.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;

use tar::EntryType;

use super::entry::{invalid, mode_of, owner_ids, walk, whiteout_target, Item};
use super::entry::{OPAQUE_MARKER, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX};
use super::fsops::Components;
use super::{read_error, tar_stream, UnpackOptions, Whiteouts};
use crate::Result;

/// What the dry run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpackVerdict {
    /// The extractor would unpack the layer.
    Unpacks,
    /// The model cannot tell: unpack to know.
    Undecided,
}

/// Longest file name component Linux filesystems take (NAME_MAX).
const NAME_MAX: usize = 255;
/// Longest symlink target the kernel takes, less its NUL (PATH_MAX - 1).
const TARGET_MAX: usize = 4095;
/// Hardlinks beyond this many in one layer may hit a filesystem's link
/// limit (ext4: 65,000 per inode).
const MAX_HARDLINKS: u64 = 60_000;
/// Mtimes past this (year 2514) are left to the filesystem to judge.
const MAX_MTIME: u64 = 1 << 34;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    /// A whiteout (a character device 0/0 in overlay form).
    Node,
}

/// Dry-runs [`super::unpack_layer`] of the layer `reader` (with
/// [`Whiteouts::Overlay`], as snapshots are made, and chown on, as root
/// unpacks): `Err` with the error the extractor would return, when the
/// model can tell that it refuses the layer; otherwise the [`UnpackVerdict`].
/// The stream is read to its end (and verified, when `options` say so)
/// unless the verdict is [`UnpackVerdict::Undecided`] before it.
pub fn check_layer_stream(reader: impl Read, options: &UnpackOptions) -> Result<UnpackVerdict> {
    let options = UnpackOptions {
        whiteouts: Whiteouts::Overlay,
        chown: true,
        ..options.clone()
    };
    let hit = Rc::new(Cell::new(false));
    let stream = tar_stream(reader, &options, &hit)?;
    let mut model = Model::default();
    let walked = walk(stream, &options, &hit, |n, item, entry| {
        model.entry(&item)?;
        if model.undecided {
            // Stops the walk; the caller sees `UnpackVerdict::Undecided`.
            return Err(invalid(&item.name, "undecided"));
        }
        // The data is read (and so hashed) as the extractor reads it.
        io::copy(entry, &mut io::sink()).map_err(|e| read_error(&hit, &options, n, e))?;
        Ok(())
    });
    match walked {
        Ok(_) if !model.undecided => Ok(UnpackVerdict::Unpacks),
        Ok(_) => Ok(UnpackVerdict::Undecided),
        Err(_) if model.undecided => Ok(UnpackVerdict::Undecided),
        Err(e) => Err(e),
    }
}

/// The paths the layer has made, by kind, plus the extractor's own sets.
#[derive(Default)]
struct Model {
    kinds: BTreeMap<Components, Kind>,
    written: HashSet<Components>,
    whited_out: HashSet<Components>,
    hardlinks: u64,
    undecided: bool,
}

impl Model {
    /// [`super::entry::Unpacker`]'s `entry`, on the model.
    fn entry(&mut self, item: &Item) -> Result<()> {
        let name = &item.name;
        let Some((base, parent)) = item.comps.split_last() else {
            if item.kind.is_dir() {
                return Ok(());
            }
            return Err(invalid(name, "entry would replace the extraction root"));
        };
        if item.comps.iter().any(|c| c.len() > NAME_MAX)
            || item.header.mtime().unwrap_or(0) > MAX_MTIME
            || item
                .xattrs
                .iter()
                .any(|(k, _)| !crate::overlay_xattrs().is_overlay(k.as_bytes()))
        {
            return self.undecided();
        }
        if base.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(item, base, parent);
        }
        if self.whited_out.contains(&item.comps) {
            return Err(invalid(
                name,
                "entry conflicts with a whiteout in the same layer",
            ));
        }
        if !self.parent(parent, true) {
            return self.undecided();
        }
        let kind = match item.kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => {
                let target = item.link.as_deref().filter(|t| !t.is_empty());
                let target = target.ok_or_else(|| invalid(name, "symlink without a target"))?;
                if target.len() > TARGET_MAX {
                    return self.undecided();
                }
                Kind::Symlink
            }
            EntryType::Link => match self.hardlink(item)? {
                Some(kind) => kind,
                None => return self.undecided(),
            },
            EntryType::Char | EntryType::Block | EntryType::Fifo => return self.undecided(),
            other => {
                return Err(invalid(
                    name,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ))
            }
        };
        // Owners and modes as the extractor reads them: a hardlink takes
        // none, a symlink no mode.
        match item.kind {
            EntryType::Link => {}
            EntryType::Symlink => drop(owner_ids(item)?),
            _ => {
                owner_ids(item)?;
                mode_of(item)?;
            }
        }
        self.put(&item.comps, kind);
        for n in (1..=item.comps.len()).rev() {
            if !self.written.insert(item.comps[..n].to_vec()) {
                break;
            }
        }
        Ok(())
    }

    fn undecided(&mut self) -> Result<()> {
        self.undecided = true;
        Ok(())
    }

    /// Whether the directory `comps` resolves without the filesystem's
    /// say: every existing component a directory (none a symlink), missing
    /// ones made as directories when `create`.
    fn parent(&mut self, comps: &[Vec<u8>], create: bool) -> bool {
        for n in 1..=comps.len() {
            match self.kinds.get(&comps[..n]) {
                Some(Kind::Dir) => {}
                Some(_) => return false,
                None if create => {
                    self.kinds.insert(comps[..n].to_vec(), Kind::Dir);
                }
                None => return false,
            }
        }
        true
    }

    /// Replaces whatever is at `comps` (a directory with all below it,
    /// as the extractor moves it to its graveyard) with `kind`.
    fn put(&mut self, comps: &Components, kind: Kind) {
        if self.kinds.get(comps) == Some(&Kind::Dir) && kind == Kind::Dir {
            return;
        }
        let below: Vec<Components> = self
            .kinds
            .range(comps.clone()..)
            .skip(1)
            .take_while(|(k, _)| k.starts_with(comps))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.kinds.remove(&k);
        }
        self.kinds.insert(comps.clone(), kind);
    }

    /// The kind of the hardlink `item` (its target's), `None` when only the
    /// filesystem can tell; `Err` where the extractor refuses it.
    fn hardlink(&mut self, item: &Item) -> Result<Option<Kind>> {
        let name = &item.name;
        let target = item
            .link
            .as_deref()
            .ok_or_else(|| invalid(name, "hardlink without a target"))?;
        let tcomps = super::fsops::clean(target);
        let Some((_, tparent)) = tcomps.split_last() else {
            return Err(invalid(name, "hardlink to the extraction root"));
        };
        if tcomps == item.comps {
            return Err(invalid(name, "hardlink to itself"));
        }
        self.hardlinks += 1;
        if self.hardlinks > MAX_HARDLINKS {
            return Ok(None);
        }
        for n in 1..=tparent.len() {
            match self.kinds.get(&tparent[..n]) {
                Some(Kind::Dir) => {}
                None => return Err(invalid(name, "hardlink target is not in this layer")),
                Some(_) => return Ok(None),
            }
        }
        match self.kinds.get(&tcomps) {
            None => Err(invalid(name, "hardlink target is not in this layer")),
            Some(Kind::Dir) => Err(invalid(name, "hardlink to a directory")),
            Some(kind) => Ok(Some(*kind)),
        }
    }

    /// [`super::entry::Unpacker`]'s `whiteout` and `opaque`, on the model.
    fn whiteout(&mut self, item: &Item, base: &[u8], parent: &[Vec<u8>]) -> Result<()> {
        let name = &item.name;
        if !matches!(item.kind, EntryType::Regular | EntryType::Continuous) {
            return Err(invalid(name, "whiteouts must be regular files"));
        }
        if base == OPAQUE_MARKER {
            return match self.parent(parent, true) {
                true => Ok(()),
                false => self.undecided(),
            };
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // aufs metadata, skipped
        }
        let tcomps = whiteout_target(name, parent, base, &self.written)?;
        if !self.parent(parent, true) {
            return self.undecided();
        }
        self.put(&tcomps, Kind::Node);
        self.whited_out.insert(tcomps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::Header;

    fn tar(entries: &[(EntryType, &str, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, link, data) in entries {
            let mut h = Header::new_gnu();
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_000_000);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn verdict(
        entries: &[(EntryType, &str, &str, &[u8])],
    ) -> std::result::Result<UnpackVerdict, String> {
        check_layer_stream(&tar(entries)[..], &UnpackOptions::default()).map_err(|e| e.to_string())
    }

    use EntryType::{Directory as D, Fifo, Link as L, Regular as F, Symlink as S};

    #[test]
    fn the_dry_run_decides_what_the_model_knows_and_leaves_the_rest() {
        let unpacks = [
            vec![
                (D, "etc", "", &b""[..]),
                (F, "etc/passwd", "", b"x"),
                (L, "p", "etc/passwd", b""),
            ],
            vec![
                (F, "a/b/c", "", b"x"),
                (F, "a/.wh..wh..opq", "", b""),
                (F, ".wh.gone", "", b""),
            ],
            vec![(S, "s", "x", b""), (L, "t", "s", b"")],
            vec![
                (D, "d", "", b""),
                (F, "d", "", b"now a file"),
                (D, "d", "", b""),
            ],
        ];
        for entries in unpacks {
            assert_eq!(verdict(&entries), Ok(UnpackVerdict::Unpacks), "{entries:?}");
        }
        let undecided = [
            vec![(S, "etc", "/x", &b""[..]), (F, "etc/f", "", b"x")],
            vec![(F, "f", "", b"x"), (F, "f/child", "", b"x")],
            vec![(Fifo, "p", "", b"")],
            vec![
                (S, "s", "d", b""),
                (D, "d", "", b""),
                (F, "d/f", "", b""),
                (L, "l", "s/f", b""),
            ],
        ];
        // A parent that is not a directory: the extractor fails on it, but
        // with the filesystem's error, which the model leaves to it.
        let undecided = [
            undecided.to_vec(),
            vec![vec![
                (F, "d/f", "", &b"x"[..]),
                (F, "d", "", b"x"),
                (L, "l", "d/f", b""),
            ]],
        ]
        .concat();
        for entries in undecided {
            assert_eq!(
                verdict(&entries),
                Ok(UnpackVerdict::Undecided),
                "{entries:?}"
            );
        }
        let refused = [
            (
                vec![
                    (F, "a", "", &b"a"[..]),
                    (L, "evil", "../../etc/passwd", b""),
                ],
                "hardlink target is not in this layer",
            ),
            (
                vec![(F, ".", "", b"x")],
                "entry would replace the extraction root",
            ),
            (vec![(F, "d/.wh..", "", b"")], "invalid whiteout"),
            (
                vec![(F, "f", "", b"f"), (F, ".wh.f", "", b"")],
                "whiteout conflicts with an entry",
            ),
            (
                vec![(F, ".wh.f", "", b""), (F, "f", "", b"f")],
                "entry conflicts with a whiteout",
            ),
            (
                vec![(D, "d", "", b""), (L, "l", "d", b"")],
                "hardlink to a directory",
            ),
            (vec![(L, "l", "l", b"")], "hardlink to itself"),
            // The directory went to the extractor's graveyard with what it held.
            (
                vec![
                    (F, "d/f", "", b"x"),
                    (F, "d", "", b"x"),
                    (D, "d", "", b""),
                    (L, "l", "d/f", b""),
                ],
                "hardlink target is not in this layer",
            ),
            (vec![(S, "s", "", b"")], "symlink without a target"),
            (
                vec![(D, ".wh.d", "", b"")],
                "whiteouts must be regular files",
            ),
        ];
        for (entries, reason) in refused {
            let got = verdict(&entries);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(reason)),
                "{entries:?}: {got:?}"
            );
        }
    }
}
