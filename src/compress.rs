//! Compression (stage 5): zstd at a chosen level, or raw when a chunk does not shrink.
//!
//! The output starts with one codec byte so that the reader never guesses.
//! Decompression is bounded by the expected plain length, so a hostile frame
//! claiming a terabyte cannot make the reader allocate it.
//! Does not know about keys, ids or media.

use crate::error::{Error, Result};

/// Codec byte: stored as is.
pub const CODEC_RAW: u8 = 0;
/// Codec byte: one zstd frame.
pub const CODEC_ZSTD: u8 = 1;
/// Default zstd level.
pub const DEFAULT_LEVEL: i32 = 3;

/// Compress `plain`, returning codec byte + payload; raw when zstd does not help.
pub fn compress(plain: &[u8], level: i32) -> Vec<u8> {
    if let Ok(packed) = zstd::bulk::compress(plain, level) {
        if packed.len() < plain.len() {
            let mut out = Vec::with_capacity(packed.len() + 1);
            out.push(CODEC_ZSTD);
            out.extend_from_slice(&packed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(plain.len() + 1);
    out.push(CODEC_RAW);
    out.extend_from_slice(plain);
    out
}

/// Compress what `write` writes without ever holding it whole: appends the codec byte
/// and one zstd frame to `out` and returns it with the plain length. For a large text
/// made piece by piece (a volume index), where [`compress`] would hold plain and
/// packed copies at once.
pub fn compress_streamed(
    mut out: Vec<u8>,
    level: i32,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<(Vec<u8>, u64)> {
    out.push(CODEC_ZSTD);
    let mut counted = Counted {
        inner: zstd::stream::Encoder::new(out, level)?,
        bytes: 0,
    };
    write(&mut counted)?;
    Ok((counted.inner.finish()?, counted.bytes))
}

/// Counts the bytes written through it.
pub(crate) struct Counted<W> {
    pub(crate) inner: W,
    pub(crate) bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Undo [`compress`] and [`compress_streamed`]; `plain_len` is the exact expected length (from the encrypted header).
pub fn decompress(encoded: &[u8], plain_len: usize) -> Result<Vec<u8>> {
    let mut plain = Vec::new();
    decompress_into(encoded, plain_len, &mut plain)?;
    Ok(plain)
}

/// [`decompress`] into `plain`, replacing what it held and reusing its allocation.
pub fn decompress_into(encoded: &[u8], plain_len: usize, plain: &mut Vec<u8>) -> Result<()> {
    let (codec, payload) = encoded
        .split_first()
        .ok_or_else(|| Error::corrupt("empty compressed blob"))?;
    plain.clear();
    match *codec {
        CODEC_RAW => plain.extend_from_slice(payload),
        CODEC_ZSTD => {
            // zstd writes no further than the buffer's room; more than recorded fails below.
            plain.reserve(plain_len);
            zstd::bulk::Decompressor::new()
                .and_then(|mut context| context.decompress_to_buffer(payload, plain))
                .map_err(|e| Error::corrupt(format!("zstd: {e}")))?;
        }
        other => return Err(Error::corrupt(format!("unknown codec {other}"))),
    }
    if plain.len() != plain_len {
        return Err(Error::corrupt(format!(
            "decompressed {} bytes where {plain_len} were recorded",
            plain.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_raw_and_zstd() {
        let text = b"abc".repeat(10_000);
        let packed = compress(&text, 3);
        assert_eq!(packed[0], CODEC_ZSTD);
        assert_eq!(decompress(&packed, text.len()).unwrap(), text);
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let stored = compress(&noise, 3);
        assert_eq!(decompress(&stored, noise.len()).unwrap(), noise);
    }

    #[test]
    fn a_streamed_frame_reads_back_like_a_whole_one() {
        let text = b"{\"id\":\"00ff\"}".repeat(50_000);
        let (packed, len) = compress_streamed(vec![7], 3, |out| {
            for piece in text.chunks(1000) {
                out.write_all(piece)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(len, text.len() as u64);
        assert_eq!(packed[0], 7, "appended after what was there");
        assert!(packed.len() < text.len() / 10);
        assert_eq!(decompress(&packed[1..], text.len()).unwrap(), text);
        assert!(decompress(&packed[1..], text.len() - 1).is_err());
    }

    #[test]
    fn t42_lying_lengths_are_refused_not_allocated() {
        let bomb = compress(&vec![0u8; 1 << 20], 3);
        assert!(decompress(&bomb, 1000).is_err());
        assert!(decompress(&[9, 1, 2], 2).is_err());
        assert!(decompress(&[], 0).is_err());
    }
}
