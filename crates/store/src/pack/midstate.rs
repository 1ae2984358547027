//! SHA-256 whose state can be saved at a block boundary and resumed later
//! (`sha2::Sha256` keeps its state private). The layer packer saves it at
//! tar entry boundaries, which are 512-byte aligned and so always on a
//! 64-byte block boundary, and resumes from one when the start of a new
//! layer's tar is known to be byte for byte that of the last (`resume.rs`).
//! The blocks go through `sha2::compress256`, the same (SHA-NI) code
//! `Sha256` uses.

use sha2::digest::generic_array::typenum::U64;
use sha2::digest::generic_array::GenericArray;

use crate::Digest;

const BLOCK: usize = 64;
/// Blocks copied into the buffer `compress256` takes per call.
const BATCH: usize = 32;
const INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A running SHA-256.
pub(super) struct Midstate {
    state: [u32; 8],
    /// Bytes fed so far.
    len: u64,
    /// The bytes of an unfinished block.
    tail: [u8; BLOCK],
    tail_len: usize,
}

impl Midstate {
    pub(super) fn new() -> Midstate {
        Midstate::resume(INIT, 0)
    }

    /// The hasher as it was after `len` bytes (a multiple of 64) left it
    /// in `state`.
    pub(super) fn resume(state: [u32; 8], len: u64) -> Midstate {
        Midstate {
            state,
            len,
            tail: [0; BLOCK],
            tail_len: 0,
        }
    }

    /// Bytes fed so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The state to resume from, when the bytes fed so far are whole blocks.
    pub(super) fn saved(&self) -> Option<[u32; 8]> {
        (self.tail_len == 0).then_some(self.state)
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let n = data.len().min(BLOCK - self.tail_len);
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(&data[..n]);
            self.tail_len += n;
            data = &data[n..];
            if self.tail_len < BLOCK {
                return;
            }
            let block = self.tail;
            self.compress(&block);
            self.tail_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        self.compress(&data[..whole]);
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// Compresses whole blocks. `compress256` takes an array of blocks,
    /// which a byte slice cannot be cast to without `unsafe`: the blocks go
    /// through a small buffer, a copy that costs a few percent of the hash.
    fn compress(&mut self, data: &[u8]) {
        let mut batch = [GenericArray::<u8, U64>::default(); BATCH];
        for run in data.chunks(BATCH * BLOCK) {
            let n = run.len() / BLOCK;
            for (block, bytes) in batch.iter_mut().zip(run.chunks_exact(BLOCK)) {
                block.copy_from_slice(bytes);
            }
            sha2::compress256(&mut self.state, &batch[..n]);
        }
    }

    pub(super) fn finish(mut self) -> Digest {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 2 * BLOCK];
        pad[0] = 0x80;
        let zeros = (BLOCK + 56 - (self.tail_len + 1) % BLOCK) % BLOCK;
        let end = 1 + zeros;
        pad[end..end + 8].copy_from_slice(&bits.to_be_bytes());
        self.update(&pad[..end + 8]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Digest::from_raw(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any split of any input, and a save and resume at any block
    /// boundary, give `sha2`'s digest.
    #[test]
    fn matches_sha256_however_fed_and_resumed() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 511, 512, 2049, 5000,
        ] {
            let want = Digest::sha256_of(&data[..len]);
            for step in [1, 3, 64, 100, 4096] {
                let mut h = Midstate::new();
                for piece in data[..len].chunks(step) {
                    h.update(piece);
                }
                assert_eq!(h.finish(), want, "len {len} step {step}");
            }
            for cut in (0..=len).step_by(64) {
                let mut h = Midstate::new();
                h.update(&data[..cut]);
                let state = h.saved().unwrap();
                let mut resumed = Midstate::resume(state, cut as u64);
                resumed.update(&data[cut..len]);
                assert_eq!(resumed.finish(), want, "len {len} cut {cut}");
            }
        }
        let mut h = Midstate::new();
        h.update(&data[..65]);
        assert_eq!(h.saved(), None, "no state inside a block");
    }
}
