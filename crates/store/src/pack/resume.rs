//! Hashing a layer that is mostly the last one of the same COPY, without
//! reading or hashing again the part of its tar that has not changed.
//!
//! An incremental COPY (exec's `reuse`) makes its new snapshot by linking
//! each unchanged file from the op's last snapshot, so after a one-file
//! edit of a monorepo the new tar is the last one's up to the edited file.
//! A tracked pack ([`hash_tracked`]) records, every [`EVERY`] entries, a
//! [`Checkpoint`]: the number of entries, the tar's length, the SHA-256
//! state there, and a chained digest of the *identities* of the entries so
//! far. The next pack of the same op walks its tree as always (stat and
//! order of every entry), but while it is in the prefix it neither opens
//! nor reads the files the copy linked: it only computes their identities,
//! and at each checkpoint compares the chain with the last pack's. From the
//! last checkpoint that matches it resumes the SHA-256, writing and hashing
//! the entries after it as a plain pack does.
//!
//! # Why the skipped bytes are the last tar's
//!
//! An entry's identity is its header bytes, except for a regular file with
//! content (not a hardlink entry): then it is its name, the header fields
//! taken from its stat (mode, owner, size, clamped mtime) and its inode
//! (device, number). Such a file is taken in the prefix only when its inode
//! is one the copy linked from the last snapshot, at the same path, so it
//! *is* that snapshot's file: snapshots are never written once committed,
//! so its content and xattrs (the rest of its header) are the ones the last
//! pack hashed, the snapshot's diff id being that pack's digest. Any other
//! file with content ends the prefix before it is hashed. Equal chains at
//! a checkpoint thus mean equal entries, in order, up to it, hence equal
//! bytes, and the saved SHA-256 state is the state after those bytes. A
//! chain that differs, a file not linked, or checkpoints that run out end
//! the prefix; the entries read since the last match are then written
//! whole. So a resumed pack's digest is always the digest of its own tree.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rustix::fs::Stat;
use sha2::{Digest as _, Sha256};

use super::header::Entry;
use super::midstate::Midstate;
use super::walk::{self, Sink};
use super::{stopped, ChunkOut, Chunks, PackOptions};
use crate::{BlobInfo, Error, Result};

/// Entries between two checkpoints.
pub(super) const EVERY: u64 = 64;
/// Messages in flight between the walk and the hasher.
const IN_FLIGHT: usize = 4;

/// The state of a tracked pack after a whole number of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Entries written before it.
    pub entries: u64,
    /// Bytes of tar before it (a multiple of 512).
    pub offset: u64,
    /// The SHA-256 state after those bytes.
    pub state: [u32; 8],
    /// The chained digest of the identities of those entries.
    pub chain: [u8; 32],
}

/// What a pack may resume from: the last pack's checkpoints, and the inodes
/// (device, number) the copy linked from that pack's snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Resume<'a> {
    /// The checkpoints of the last pack of the same op, in order.
    pub checkpoints: &'a [Checkpoint],
    /// Files of the new tree that are the last snapshot's, by inode.
    pub linked: &'a HashSet<(u64, u64)>,
}

/// A tracked pack's result.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The tar's digest and size.
    pub info: BlobInfo,
    /// Its checkpoints, for the next pack of the same op.
    pub checkpoints: Vec<Checkpoint>,
    /// Bytes of the tar taken from the last pack without being read (0
    /// when nothing was resumed).
    pub resumed: u64,
}

/// The digest and size of `dir`'s tar (as [`super::hash_layer_tar`]), its
/// checkpoints, and, given `resume`, without hashing the prefix it shares
/// with the last pack (see the module docs).
pub fn hash_tracked(
    dir: &Path,
    options: &PackOptions,
    resume: Option<Resume<'_>>,
) -> Result<Packed> {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    std::thread::scope(|scope| {
        let walk = std::thread::Builder::new()
            .name("rbk-pack".into())
            .stack_size(crate::WALK_STACK)
            .spawn_scoped(scope, move || {
                let mut out = Chunks::new(ToHasher {
                    tx: &tx,
                    marks: Vec::new(),
                });
                let result = walk::write_tracked(dir, &mut out, options, resume)
                    .and_then(|()| out.send().map_err(Error::io("hashing the layer of", dir)));
                let _ = tx.send(match result {
                    Ok(()) => Msg::Done,
                    Err(e) => Msg::Failed(e),
                });
            })
            .map_err(Error::io("starting a tree walk for", dir))?;
        let hashed = receive(&rx, resume.map(|r| r.checkpoints).unwrap_or_default());
        // Dropping the receiver stops a walk that is still sending.
        drop(rx);
        let joined = walk.join();
        match (hashed, joined) {
            (Ok(Some(packed)), _) => Ok(packed),
            (Err(e), _) => Err(e),
            _ => Err(Error::Pack {
                path: dir.to_path_buf(),
                reason: "the packing thread stopped without finishing".into(),
            }),
        }
    })
}

/// The hasher's side: `None` when the walk stopped without a word.
fn receive(rx: &Receiver<Msg>, last: &[Checkpoint]) -> Result<Option<Packed>> {
    let mut hasher = Midstate::new();
    let (mut checkpoints, mut resumed) = (Vec::new(), 0);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Resume(i) => {
                if let Some(cp) = last.get(i) {
                    hasher = Midstate::resume(cp.state, cp.offset);
                    checkpoints = last[..=i].to_vec();
                    resumed = cp.offset;
                }
            }
            Msg::Chunk(bytes, marks) => {
                let mut at = 0;
                for (pos, entries, chain) in marks {
                    hasher.update(&bytes[at..pos]);
                    at = pos;
                    // Entries end on 512-byte boundaries, so always.
                    if let Some(state) = hasher.saved() {
                        checkpoints.push(Checkpoint {
                            entries,
                            offset: hasher.len(),
                            state,
                            chain,
                        });
                    }
                }
                hasher.update(&bytes[at..]);
            }
            Msg::Done => {
                let info = BlobInfo {
                    size: hasher.len(),
                    digest: hasher.finish(),
                };
                return Ok(Some(Packed {
                    info,
                    checkpoints,
                    resumed,
                }));
            }
            Msg::Failed(e) => return Err(e),
        }
    }
    Ok(None)
}

enum Msg {
    /// Hashing starts from checkpoint `i` of the last pack (sent before any
    /// bytes, and only when the prefix matched up to it).
    Resume(usize),
    /// Tar bytes, and the checkpoints inside them: (position in the bytes,
    /// entries, chain).
    Chunk(Vec<u8>, Vec<(usize, u64, [u8; 32])>),
    Done,
    Failed(Error),
}

/// The walk's end of the channel to the hasher: chunks go with the
/// checkpoints marked inside them.
struct ToHasher<'a> {
    tx: &'a SyncSender<Msg>,
    marks: Vec<(usize, u64, [u8; 32])>,
}

impl ChunkOut for ToHasher<'_> {
    fn send_chunk(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        let marks = std::mem::take(&mut self.marks);
        self.tx
            .send(Msg::Chunk(chunk, marks))
            .map_err(|_| stopped("layer hasher"))
    }

    fn has_pending(&self) -> bool {
        !self.marks.is_empty()
    }
}

impl Sink for &mut Chunks<ToHasher<'_>> {
    fn mark(&mut self, entries: u64, chain: [u8; 32]) -> io::Result<()> {
        self.out.marks.push((self.buf.len(), entries, chain));
        Ok(())
    }

    fn resume(&mut self, from: usize) -> io::Result<()> {
        self.out
            .tx
            .send(Msg::Resume(from))
            .map_err(|_| stopped("layer hasher"))
    }
}

/// The walk's bookkeeping of a tracked pack: the identity chain, and while
/// in the prefix, what it matched and what it has not written yet.
pub(super) struct Track<'r> {
    entries: u64,
    chain: Sha256,
    prefix: Option<Prefix<'r>>,
}

struct Prefix<'r> {
    last: Resume<'r>,
    /// The next checkpoint of the last pack to compare with.
    next: usize,
    /// The last one that matched.
    matched: Option<usize>,
    /// The entries since it, to write when the prefix ends.
    pending: Vec<Pending>,
}

/// An entry of the prefix not written yet.
pub(super) enum Pending {
    /// Its header bytes (it has no content).
    Header(Vec<u8>),
    /// A linked file: its header and content are made when it is written.
    File {
        path: PathBuf,
        name: Vec<u8>,
        stat: Stat,
    },
}

/// What the end of an entry means.
pub(super) enum Boundary {
    None,
    /// A checkpoint to record (outside the prefix).
    Mark(u64, [u8; 32]),
    /// The prefix ends here, before the checkpoint to record.
    Mismatch(u64, [u8; 32]),
}

impl<'r> Track<'r> {
    pub(super) fn new(resume: Option<Resume<'r>>) -> Track<'r> {
        let prefix = resume
            .filter(|r| !r.checkpoints.is_empty())
            .map(|last| Prefix {
                last,
                next: 0,
                matched: None,
                pending: Vec::new(),
            });
        Track {
            entries: 0,
            chain: Sha256::new(),
            prefix,
        }
    }

    pub(super) fn in_prefix(&self) -> bool {
        self.prefix.is_some()
    }

    /// Whether the prefix may take the file of inode `key` unread.
    pub(super) fn linked(&self, key: (u64, u64)) -> bool {
        self.prefix
            .as_ref()
            .is_some_and(|p| p.last.linked.contains(&key))
    }

    /// Adds the identity of the current entry to the chain.
    pub(super) fn identity(&mut self, bytes: &[u8]) {
        self.chain.update((bytes.len() as u64).to_le_bytes());
        self.chain.update(bytes);
    }

    /// Keeps an entry of the prefix for later.
    pub(super) fn defer(&mut self, entry: Pending) {
        if let Some(p) = &mut self.prefix {
            p.pending.push(entry);
        }
    }

    /// Ends the current entry: at a checkpoint, matches it against the
    /// last pack's (in the prefix) or returns it to be recorded.
    pub(super) fn end_entry(&mut self) -> Boundary {
        self.entries += 1;
        if !self.entries.is_multiple_of(EVERY) {
            return Boundary::None;
        }
        let chain: [u8; 32] = self.chain.finalize_reset().into();
        self.chain.update(chain);
        let Some(p) = &mut self.prefix else {
            return Boundary::Mark(self.entries, chain);
        };
        match p.last.checkpoints.get(p.next) {
            Some(cp) if cp.entries == self.entries && cp.chain == chain => {
                p.matched = Some(p.next);
                p.next += 1;
                p.pending.clear();
                Boundary::None
            }
            _ => Boundary::Mismatch(self.entries, chain),
        }
    }

    /// Whether every checkpoint of the last pack has matched: nothing is
    /// left to compare, and the prefix should end.
    pub(super) fn exhausted(&self) -> bool {
        self.prefix
            .as_ref()
            .is_some_and(|p| p.next == p.last.checkpoints.len())
    }

    /// Ends the prefix: the checkpoint to resume from, and the entries to
    /// write after it.
    pub(super) fn end_prefix(&mut self) -> Option<(Option<usize>, Vec<Pending>)> {
        self.prefix.take().map(|p| (p.matched, p.pending))
    }
}

/// The identity of a regular file with content (see the module docs).
pub(super) fn file_identity(entry: &Entry, key: (u64, u64)) -> Vec<u8> {
    let mut id = Vec::with_capacity(entry.name.len() + 64);
    id.extend_from_slice(b"file\0");
    id.extend_from_slice(&entry.name);
    id.push(0);
    id.extend_from_slice(&entry.mode.to_le_bytes());
    for v in [
        entry.uid,
        entry.gid,
        entry.size,
        entry.mtime as u64,
        key.0,
        key.1,
    ] {
        id.extend_from_slice(&v.to_le_bytes());
    }
    id
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::pack::hash_layer_tar;

    /// Four directories of 50 files (some empty, one with an xattr): 204
    /// entries, three checkpoints.
    fn tree(root: &Path) {
        for d in 0..4 {
            let dir = root.join(format!("d{d}"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..50 {
                let size = (d * 50 + f) * 37 % 1500;
                let data: Vec<u8> = (0..size).map(|i| (i + f + d) as u8).collect();
                fs::write(dir.join(format!("f{f:03}")), data).unwrap();
            }
        }
        let flags = rustix::fs::XattrFlags::empty();
        rustix::fs::setxattr(root.join("d1/f007"), "user.rbk", b"x", flags).unwrap();
    }

    /// Gives the directories of `new` the mtimes of `old`'s, as the copy
    /// gives them their sources' (made in another second, they differ).
    fn same_dir_times(old: &Path, new: &Path) {
        for d in 0..4 {
            let mtime = fs::metadata(old.join(format!("d{d}")))
                .unwrap()
                .modified()
                .unwrap();
            let dir = fs::File::open(new.join(format!("d{d}"))).unwrap();
            dir.set_modified(mtime).unwrap();
        }
    }

    /// `new` as the copy makes it from `old`: every file linked, except
    /// `changed` (rewritten); the linked inodes.
    fn relink(old: &Path, new: &Path, changed: &[&str]) -> HashSet<(u64, u64)> {
        let mut linked = HashSet::new();
        for d in 0..4 {
            fs::create_dir_all(new.join(format!("d{d}"))).unwrap();
            for f in 0..50 {
                let rel = format!("d{d}/f{f:03}");
                if changed.contains(&rel.as_str()) {
                    fs::write(new.join(&rel), format!("changed {rel}")).unwrap();
                } else {
                    fs::hard_link(old.join(&rel), new.join(&rel)).unwrap();
                    let m = fs::metadata(new.join(&rel)).unwrap();
                    linked.insert((m.dev(), m.ino()));
                }
            }
        }
        same_dir_times(old, new);
        linked
    }

    fn check(changed: &[&str], expect_resumed: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
        tree(&old);
        let options = PackOptions::default();
        let first = hash_tracked(&old, &options, None).unwrap();
        assert_eq!(first.info, hash_layer_tar(&old, &options).unwrap());
        assert_eq!(first.checkpoints.len(), 3);
        assert_eq!(first.resumed, 0);
        let linked = relink(&old, &new, changed);
        let resume = Resume {
            checkpoints: &first.checkpoints,
            linked: &linked,
        };
        let again = hash_tracked(&new, &options, Some(resume)).unwrap();
        let plain = hash_tracked(&new, &options, None).unwrap();
        assert_eq!(
            again.info,
            hash_layer_tar(&new, &options).unwrap(),
            "{changed:?}"
        );
        assert_eq!(again.checkpoints, plain.checkpoints, "{changed:?}");
        assert_eq!(again.resumed > 0, expect_resumed, "{changed:?}");
    }

    #[test]
    fn a_resumed_pack_hashes_what_a_full_pack_hashes() {
        // Unchanged: resumed at the last checkpoint.
        check(&[], true);
        // A change after the second checkpoint: the linked files since it
        // are read when the prefix ends.
        check(&["d2/f040"], true);
        check(&["d3/f049"], true);
        // A change before the first checkpoint: nothing is resumed.
        check(&["d0/f000"], false);
        check(&["d0/f010", "d3/f000"], false);
    }

    /// Checkpoints of another tree, a file the copy did not link (the same
    /// bytes, another inode), a renamed file: the prefix ends where they
    /// differ, and the digest is the tree's own.
    #[test]
    fn a_prefix_that_differs_is_hashed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
        tree(&old);
        let options = PackOptions::default();
        let first = hash_tracked(&old, &options, None).unwrap();
        let mut linked = relink(&old, &new, &[]);
        // The same content at a new inode, and its link not claimed.
        let copy = new.join("d0/f001");
        let data = fs::read(&copy).unwrap();
        let mtime = fs::metadata(&copy).unwrap().modified().unwrap();
        let m = fs::metadata(&copy).unwrap();
        linked.remove(&(m.dev(), m.ino()));
        fs::remove_file(&copy).unwrap();
        fs::write(&copy, data).unwrap();
        fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        same_dir_times(&old, &new);
        let resume = Resume {
            checkpoints: &first.checkpoints,
            linked: &linked,
        };
        let again = hash_tracked(&new, &options, Some(resume)).unwrap();
        assert_eq!(again.info, hash_layer_tar(&new, &options).unwrap());
        assert_eq!(again.info, first.info, "the same bytes");
        assert_eq!(again.resumed, 0, "no checkpoint before the unlinked file");

        // Checkpoints whose chains are another tree's.
        let mut other = first.checkpoints.clone();
        for cp in &mut other {
            cp.chain[0] ^= 1;
        }
        let linked = relink(&old, &tmp.path().join("third"), &[]);
        let resume = Resume {
            checkpoints: &other,
            linked: &linked,
        };
        let third = hash_tracked(&tmp.path().join("third"), &options, Some(resume)).unwrap();
        assert_eq!(third.info, first.info);
        assert_eq!(third.resumed, 0);

        // A renamed file (linked, same inode): its chain differs.
        let fourth = tmp.path().join("fourth");
        let linked = relink(&old, &fourth, &[]);
        fs::rename(fourth.join("d1/f020"), fourth.join("d1/f020b")).unwrap();
        same_dir_times(&old, &fourth);
        let resume = Resume {
            checkpoints: &first.checkpoints,
            linked: &linked,
        };
        let renamed = hash_tracked(&fourth, &options, Some(resume)).unwrap();
        assert_eq!(renamed.info, hash_layer_tar(&fourth, &options).unwrap());
        assert_ne!(renamed.info, first.info);
        assert_eq!(renamed.resumed, first.checkpoints[0].offset);
    }
}
