//! Content-defined chunking (stage 3): a byte stream in, chunks of about 1 MiB out.
//!
//! FastCDC (the `fastcdc` crate's 2020 algorithm) with its gear table seeded
//! from the vault key, so that chunk boundaries differ between vaults and do
//! not fingerprint content on their own. The parameters are frozen per
//! [`CHUNKER_VERSION`]: changing them would break dedup against old volumes,
//! so a golden test pins them. Does not know about ids, keys or storage.

use fastcdc::v2020::{FastCDC, Normalization};
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

/// Bytes read from a source at a time: a few chunks, so that carrying the unfinished
/// last chunk over to the next read, where it is scanned again from its start, is rare.
/// 4 MiB saved 4 MiB per worker but scanned 19% more (1.5% of a backup's instructions).
const WINDOW_BYTES: usize = 8 << 20;

/// Splits byte streams into chunks through one reused buffer: no allocation, zeroing
/// or copy per chunk or per file (the `fastcdc` crate's `StreamCDC` makes each of
/// those for every chunk). The cut points are exactly `StreamCDC`'s (tested).
pub struct Chunker {
    params: ChunkParams,
    window: Vec<u8>,
}

impl Chunker {
    /// A chunker for one vault's parameters; keep it for many streams.
    pub fn new(params: ChunkParams) -> Chunker {
        Chunker {
            params,
            window: vec![0; WINDOW_BYTES],
        }
    }

    /// Hand each chunk of `source`, in order, to `each`. A read error ends it with
    /// `Ok(Err(_))`; an error from `each` ends it with `Err(_)`.
    pub fn for_each<E>(
        &mut self,
        mut source: impl Read,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<std::io::Result<()>, E> {
        let max = MAX_CHUNK_BYTES as usize;
        let mut filled = 0;
        let mut at_end = false;
        loop {
            while !at_end && filled < self.window.len() {
                match source.read(&mut self.window[filled..]) {
                    Ok(0) => at_end = true,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => return Ok(Err(err)),
                }
            }
            let cdc = FastCDC::with_level_and_seed(
                &self.window[..filled],
                self.params.min,
                AVG_CHUNK_BYTES,
                MAX_CHUNK_BYTES,
                Normalization::Level1,
                self.params.seed,
            );
            let mut start = 0;
            while start < filled {
                let (_, end) = cdc.cut(start, filled - start);
                // A cut at the window's end may only be where the data ran out: the
                // chunk is finished by the next read, unless it is complete anyway.
                if end == filled && !at_end && end - start < max {
                    break;
                }
                each(&self.window[start..end])?;
                start = end;
            }
            if at_end {
                return Ok(Ok(()));
            }
            self.window.copy_within(start..filled, 0);
            filled -= start;
        }
    }
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
        pieces(data, seed).iter().map(Vec::len).collect()
    }

    fn pieces(source: impl Read, seed: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        Chunker::new(ChunkParams::from_seed(seed))
            .for_each(source, |chunk| {
                out.push(chunk.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        out
    }

    /// A source that yields at most `step` bytes per read, as pipes and sockets do.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn cut_points_are_the_fastcdc_crate_streams_whatever_the_reads() {
        use fastcdc::v2020::StreamCDC;
        for (len, seed) in [
            (0, 1),
            (100, 2),
            (3 << 20, 3),
            (21 << 20, 4),
            (8 << 20, 5),
            (19 << 20, 0),
        ] {
            // Seed 0: zeros, which have no natural cut: every chunk is cut at the maximum.
            let data = if seed == 0 {
                vec![0; len]
            } else {
                pseudo_random(len, seed)
            };
            let params = ChunkParams::from_seed(seed * 7919);
            let oracle: Vec<usize> = StreamCDC::with_level_and_seed(
                &data[..],
                params.min,
                AVG_CHUNK_BYTES,
                MAX_CHUNK_BYTES,
                Normalization::Level1,
                params.seed,
            )
            .map(|c| c.unwrap().length)
            .collect();
            for step in [usize::MAX, 1 << 20, 65_537] {
                let got: Vec<usize> = pieces(Trickle(&data, step), seed * 7919)
                    .iter()
                    .map(Vec::len)
                    .collect();
                assert_eq!(got, oracle, "len {len} step {step}");
            }
        }
    }

    #[test]
    fn every_byte_exactly_once_and_sizes_bounded() {
        let data = pseudo_random(9 << 20, 7);
        let all = pieces(&data[..], 42);
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
