//! Content-defined chunking (stage 3): a byte stream in, chunks of about 1 MiB out.
//!
//! FastCDC (the `fastcdc` crate's 2020 algorithm) with its gear table seeded
//! from the vault key, so that chunk boundaries differ between vaults and do
//! not fingerprint content on their own. The parameters are frozen per
//! [`CHUNKER_VERSION`]: changing them would break dedup against old volumes,
//! so a golden test pins them. Does not know about ids, keys or storage.

use fastcdc::v2020::{Error as CdcError, Normalization, StreamCDC};
use std::io::Read;

/// Recorded in every label; a new version needs new golden tests, never edits to these.
pub const CHUNKER_VERSION: &str = "fastcdc2020-v1";
/// Average chunk size.
pub const AVG_CHUNK_BYTES: u32 = 1 << 20;
/// No chunk is ever larger; volumes and packs are sized from this.
pub const MAX_CHUNK_BYTES: u32 = 2 << 20;
const MIN_CHUNK_BASE_BYTES: u32 = 192 << 10;

/// Frozen chunker parameters for one vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// Smallest chunk (except a stream's last).
    pub min: u32,
    /// Gear table seed derived from the key.
    pub seed: u64,
}

impl ChunkParams {
    /// Parameters from the key-derived seed; the minimum also varies per vault.
    pub fn from_seed(seed: u64) -> ChunkParams {
        let jitter = ((seed >> 40) % 32) as u32 * (4 << 10);
        ChunkParams {
            min: MIN_CHUNK_BASE_BYTES + jitter,
            seed,
        }
    }
}

/// Split `source` into chunks; each item is one chunk's bytes.
pub fn chunks<R: Read>(
    source: R,
    params: ChunkParams,
) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    StreamCDC::with_level_and_seed(
        source,
        params.min,
        AVG_CHUNK_BYTES,
        MAX_CHUNK_BYTES,
        Normalization::Level1,
        params.seed,
    )
    .map(|item| {
        item.map(|chunk| chunk.data).map_err(|err| match err {
            CdcError::IoError(io) => io,
            other => std::io::Error::other(format!("chunker: {other:?}")),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so golden values never depend on a crate.
    pub fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn boundaries(data: &[u8], seed: u64) -> Vec<usize> {
        chunks(data, ChunkParams::from_seed(seed))
            .map(|c| c.unwrap().len())
            .collect()
    }

    #[test]
    fn every_byte_exactly_once_and_sizes_bounded() {
        let data = pseudo_random(9 << 20, 7);
        let all: Vec<Vec<u8>> = chunks(&data[..], ChunkParams::from_seed(42))
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(all.concat(), data);
        assert!(all.iter().all(|c| c.len() <= MAX_CHUNK_BYTES as usize));
        assert!(all[..all.len() - 1]
            .iter()
            .all(|c| c.len() >= MIN_CHUNK_BASE_BYTES as usize));
    }

    #[test]
    fn t54_boundaries_differ_between_keys() {
        let data = pseudo_random(8 << 20, 99);
        assert_ne!(
            boundaries(&data, 1),
            boundaries(&data, 0x9e37_79b9_7f4a_7c15)
        );
    }

    #[test]
    fn golden_boundaries_are_frozen() {
        // fixtures/chunker/golden.json: changing the chunker breaks dedup with old volumes.
        let golden: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/chunker/golden.json")).unwrap();
        let data = pseudo_random(golden["input_len"].as_u64().unwrap() as usize, 1);
        let seed = golden["seed"].as_u64().unwrap();
        let expected: Vec<usize> = golden["lengths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(boundaries(&data, seed), expected);
    }
}
