//! Packs (stage 7): compressed chunks in, one sealed pack out, and back.
//!
//! A pack is the sealed blobs back to back, then the pack's encrypted header
//! (kind, chunk id and lengths of every blob), then a 16-byte plaintext
//! trailer. Blob lengths exist only inside the encrypted header, so the pack
//! does not reveal chunk sizes; blobs are shuffled so the order does not
//! reveal file order. Every blob is opened, decompressed and re-hashed
//! before the pack counts as finished (verify before seal).
//! Does not know about tar, volumes, media or the catalog.

use crate::compress;
use crate::crypto::{BlobKind, ChunkIdKey, PackSealer, TAG_BYTES};
use crate::error::{Error, Result};
use crate::ids::{random_bytes, ChunkId};

/// Last 8 bytes of every pack: `blake3("tapevault pack v1")[..8]`, see FORMAT.md.
pub fn pack_magic() -> [u8; 8] {
    blake3::hash(b"tapevault pack v1").as_bytes()[..8]
        .try_into()
        .expect("8 bytes")
}
/// Trailer: header length u32 LE, reserved u32 (zero), magic.
pub const TRAILER_BYTES: usize = 16;
/// One header entry: kind u8, chunk id, sealed length u32 LE, plain length u32 LE.
pub const ENTRY_BYTES: usize = 1 + 32 + 4 + 4;

/// A blob waiting for its pack: compressed but not yet sealed (sealing needs the volume).
struct PendingBlob {
    kind: BlobKind,
    id: ChunkId,
    plain_len: u32,
    /// Where its compressed bytes are in the builder's buffer.
    encoded: std::ops::Range<usize>,
}

/// Collects compressed blobs until the pack is full. Kept from pack to pack: its buffers
/// are reused, so a long run allocates nothing per blob or per pack.
#[derive(Default)]
pub struct PackBuilder {
    blobs: Vec<PendingBlob>,
    /// The pending blobs' compressed bytes, end to end.
    encoded: Vec<u8>,
    bytes: usize,
    reopened: Reopened,
}

/// Where a blob sits in a finished pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: BlobKind,
    /// The chunk's id.
    pub id: ChunkId,
    /// Position in the pack, which is also its nonce.
    pub position: u32,
    /// Byte offset of the sealed blob within the pack.
    pub offset: u64,
    /// Sealed length (encoded length + tag).
    pub sealed_len: u32,
    /// Plain chunk length.
    pub plain_len: u32,
}

/// A sealed pack: the bytes to store and what is in them.
pub struct FinishedPack {
    /// The pack's bytes, ready to become a tar member.
    pub bytes: Vec<u8>,
    /// Its blobs, in pack order.
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// A builder for packs finished once they reach `target` bytes: room for the most
    /// they can then hold is taken once, so the buffer never grows by doubling.
    pub fn for_target(target: usize) -> PackBuilder {
        PackBuilder {
            encoded: Vec::with_capacity(target + crate::chunk::MAX_CHUNK_BYTES as usize + 1),
            ..PackBuilder::default()
        }
    }

    /// Add a compressed chunk (`encoded` from [`compress::compress`]); it is copied.
    pub fn add(&mut self, kind: BlobKind, id: ChunkId, plain_len: u32, encoded: &[u8]) {
        self.bytes += encoded.len() + TAG_BYTES + ENTRY_BYTES;
        let start = self.encoded.len();
        self.encoded.extend_from_slice(encoded);
        self.blobs.push(PendingBlob {
            kind,
            id,
            plain_len,
            encoded: start..self.encoded.len(),
        });
    }

    /// The pack's size if finished now.
    pub fn projected_bytes(&self) -> usize {
        self.bytes + 4 + TAG_BYTES + TRAILER_BYTES
    }

    /// How many blobs have been added.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Shuffle, seal and verify every blob into `bytes` (a buffer to reuse: what it
    /// holds is dropped). The builder is left empty, for the next pack.
    pub fn finish(
        &mut self,
        mut sealer: PackSealer,
        ids: &ChunkIdKey,
        mut bytes: Vec<u8>,
    ) -> Result<FinishedPack> {
        shuffle(&mut self.blobs);
        bytes.clear();
        // Exact: reserve would double a buffer kept from a smaller pack, 16 MiB idle.
        bytes.reserve_exact(self.projected_bytes());
        let mut header = Vec::with_capacity(4 + self.blobs.len() * ENTRY_BYTES);
        let count =
            u32::try_from(self.blobs.len()).map_err(|_| Error::corrupt("pack too large"))?;
        header.extend_from_slice(&count.to_le_bytes());
        let mut entries = Vec::with_capacity(self.blobs.len());
        // Sealed in place into the pack and reopened into the same two buffers blob after
        // blob: a megabyte-sized allocation per step fragmented the heap over long runs.
        self.bytes = 0;
        for (position, blob) in self.blobs.drain(..).enumerate() {
            let offset = bytes.len();
            let encoded = &self.encoded[blob.encoded];
            sealer.seal_into(blob.kind, &blob.id, encoded, &mut bytes)?;
            let entry = PackEntry {
                kind: blob.kind,
                id: blob.id,
                position: position as u32,
                offset: offset as u64,
                sealed_len: (bytes.len() - offset) as u32,
                plain_len: blob.plain_len,
            };
            // Verify before seal: a blob that does not round-trip must never be stored.
            open_sealed_into(&sealer, &entry, &bytes[offset..], ids, &mut self.reopened).map_err(
                |e| e.context("blob failed its check before sealing (memory or library fault)"),
            )?;
            encode_entry(&mut header, &entry);
            entries.push(entry);
        }
        self.encoded.clear();
        let sealed_header = sealer.seal_header(&header);
        bytes.extend_from_slice(&sealed_header);
        bytes.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&pack_magic());
        Ok(FinishedPack { bytes, entries })
    }
}

fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let r = u64::from_le_bytes(random_bytes());
        items.swap(i, (r % (i as u64 + 1)) as usize);
    }
}

fn encode_entry(out: &mut Vec<u8>, entry: &PackEntry) {
    out.push(entry.kind.code());
    out.extend_from_slice(&entry.id.0);
    out.extend_from_slice(&entry.sealed_len.to_le_bytes());
    out.extend_from_slice(&entry.plain_len.to_le_bytes());
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Read a pack's header through its trailer; every length is checked against the pack.
pub fn read_entries(pack: &[u8], sealer: &PackSealer) -> Result<Vec<PackEntry>> {
    if pack.len() < TRAILER_BYTES || pack[pack.len() - 8..] != pack_magic() {
        return Err(Error::corrupt("pack trailer missing or damaged"));
    }
    let header_len = read_u32(pack, pack.len() - TRAILER_BYTES) as usize;
    let header_end = pack.len() - TRAILER_BYTES;
    let header_start = header_end
        .checked_sub(header_len)
        .ok_or_else(|| Error::corrupt("pack header length beyond the pack"))?;
    let header = sealer
        .open_header(&pack[header_start..header_end])
        .ok_or_else(|| Error::corrupt("pack header failed authentication"))?;
    if header.len() < 4 {
        return Err(Error::corrupt("pack header too short"));
    }
    let count = read_u32(&header, 0) as usize;
    if header.len() != 4 + count * ENTRY_BYTES {
        return Err(Error::corrupt(
            "pack header length does not match its count",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset = 0u64;
    for position in 0..count {
        let raw = &header[4 + position * ENTRY_BYTES..4 + (position + 1) * ENTRY_BYTES];
        let entry = PackEntry {
            kind: BlobKind::from_code(raw[0])?,
            id: ChunkId(raw[1..33].try_into().expect("32 bytes")),
            position: position as u32,
            offset,
            sealed_len: read_u32(raw, 33),
            plain_len: read_u32(raw, 37),
        };
        offset += u64::from(entry.sealed_len);
        entries.push(entry);
    }
    if offset != header_start as u64 {
        return Err(Error::corrupt(
            "pack blob lengths do not add up to the pack",
        ));
    }
    Ok(entries)
}

/// Open, decompress and check one blob of a pack against its chunk id.
pub fn open_blob(
    pack: &[u8],
    entry: &PackEntry,
    sealer: &PackSealer,
    ids: &ChunkIdKey,
) -> Result<Vec<u8>> {
    let start = usize::try_from(entry.offset).map_err(|_| Error::corrupt("blob offset"))?;
    let sealed = start
        .checked_add(entry.sealed_len as usize)
        .and_then(|end| pack.get(start..end))
        .ok_or_else(|| Error::corrupt("blob extends beyond its pack"))?;
    open_sealed(sealer, entry, sealed, ids)
}

fn open_sealed(
    sealer: &PackSealer,
    entry: &PackEntry,
    sealed: &[u8],
    ids: &ChunkIdKey,
) -> Result<Vec<u8>> {
    let mut reopened = Reopened::default();
    open_sealed_into(sealer, entry, sealed, ids, &mut reopened)?;
    Ok(reopened.plain)
}

/// A blob opened again: its compressed and its plain bytes.
#[derive(Default)]
struct Reopened {
    encoded: Vec<u8>,
    plain: Vec<u8>,
}

fn open_sealed_into(
    sealer: &PackSealer,
    entry: &PackEntry,
    sealed: &[u8],
    ids: &ChunkIdKey,
    into: &mut Reopened,
) -> Result<()> {
    if entry.plain_len > crate::chunk::MAX_CHUNK_BYTES {
        return Err(Error::corrupt(format!(
            "blob claims {} plain bytes",
            entry.plain_len
        )));
    }
    let position = u64::from(entry.position);
    if !sealer.open_into(position, entry.kind, &entry.id, sealed, &mut into.encoded) {
        return Err(Error::corrupt(format!(
            "blob {} failed authentication",
            entry.id
        )));
    }
    compress::decompress_into(&into.encoded, entry.plain_len as usize, &mut into.plain)?;
    if ids.id(&into.plain) != entry.id {
        return Err(Error::corrupt(format!(
            "blob {} does not match its chunk id",
            entry.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::ids::{VaultId, VolumeId};
    use proptest::prelude::*;

    fn build(chunks: &[Vec<u8>]) -> (MasterKey, VaultId, VolumeId, FinishedPack) {
        let master = MasterKey::random();
        let (vault, volume) = (VaultId::random(), VolumeId::random());
        let ids = master.chunk_id_key();
        let mut builder = PackBuilder::default();
        for chunk in chunks {
            builder.add(
                BlobKind::Data,
                ids.id(chunk),
                chunk.len() as u32,
                &compress::compress(chunk, 3),
            );
        }
        let sealer = master.volume_key(&volume).pack_sealer(vault, 3);
        let pack = builder.finish(sealer, &ids, Vec::new()).unwrap();
        (master, vault, volume, pack)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pack_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..12)) {
            let (master, vault, volume, pack) = build(&chunks);
            let sealer = master.volume_key(&volume).pack_sealer(vault, 3);
            let entries = read_entries(&pack.bytes, &sealer).unwrap();
            prop_assert_eq!(&entries, &pack.entries);
            let ids = master.chunk_id_key();
            for entry in &entries {
                let plain = open_blob(&pack.bytes, entry, &sealer, &ids).unwrap();
                prop_assert!(chunks.contains(&plain));
            }
        }
    }

    #[test]
    fn a_builder_kept_for_the_next_pack_starts_it_empty() {
        let master = MasterKey::random();
        let (vault, volume) = (VaultId::random(), VolumeId::random());
        let ids = master.chunk_id_key();
        let mut builder = PackBuilder::for_target(4096);
        let mut buffer = Vec::new();
        for (number, fill) in [(1u32, 1u8), (2, 2)] {
            let chunks: Vec<Vec<u8>> = (0..3u8)
                .map(|i| vec![fill; 1000 + usize::from(i)])
                .collect();
            for chunk in &chunks {
                let encoded = compress::compress(chunk, 3);
                builder.add(BlobKind::Data, ids.id(chunk), chunk.len() as u32, &encoded);
            }
            let sealer = master.volume_key(&volume).pack_sealer(vault, number);
            let pack = builder.finish(sealer, &ids, buffer).unwrap();
            assert!(builder.is_empty());
            let sealer = master.volume_key(&volume).pack_sealer(vault, number);
            let entries = read_entries(&pack.bytes, &sealer).unwrap();
            assert_eq!(entries.len(), chunks.len());
            for entry in &entries {
                let plain = open_blob(&pack.bytes, entry, &sealer, &ids).unwrap();
                assert!(chunks.contains(&plain));
            }
            buffer = pack.bytes;
        }
    }

    #[test]
    fn t2_damaged_framing_is_detected_and_other_blobs_still_open() {
        let chunks: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 5000]).collect();
        let (master, vault, volume, pack) = build(&chunks);
        let sealer = master.volume_key(&volume).pack_sealer(vault, 3);
        let ids = master.chunk_id_key();
        let mut damaged = pack.bytes.clone();
        damaged[pack.entries[1].offset as usize + 3] ^= 1;
        let broken = open_blob(&damaged, &pack.entries[1], &sealer, &ids);
        assert!(broken.is_err());
        for entry in [&pack.entries[0], &pack.entries[2], &pack.entries[3]] {
            assert!(open_blob(&damaged, entry, &sealer, &ids).is_ok());
        }
        for at in [damaged.len() - 1, damaged.len() - 16, damaged.len() - 20] {
            let mut bad = pack.bytes.clone();
            bad[at] ^= 0x40;
            assert!(read_entries(&bad, &sealer).is_err(), "flip at {at}");
        }
        assert!(read_entries(&pack.bytes[..10], &sealer).is_err());
    }

    #[test]
    fn t21_a_blob_that_does_not_round_trip_never_reaches_a_pack() {
        // Simulates a compressor or memory fault: the encoded bytes are not the chunk.
        let master = MasterKey::random();
        let ids = master.chunk_id_key();
        let mut builder = PackBuilder::default();
        let chunk = b"the chunk the id was computed from".to_vec();
        let wrong = compress::compress(b"different bytes entirely, same length!", 3);
        builder.add(BlobKind::Data, ids.id(&chunk), chunk.len() as u32, &wrong);
        let sealer = master
            .volume_key(&VolumeId::random())
            .pack_sealer(VaultId::random(), 1);
        let err = builder
            .finish(sealer, &ids, Vec::new())
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("before sealing"), "{err}");
    }

    #[test]
    fn t54_blob_lengths_are_not_in_plaintext() {
        let chunks = vec![vec![7u8; 1234], vec![9u8; 4321]];
        let (_, _, _, pack) = build(&chunks);
        for entry in &pack.entries {
            for needle in [
                entry.sealed_len.to_le_bytes(),
                entry.plain_len.to_le_bytes(),
            ] {
                assert!(
                    !pack.bytes.windows(4).any(|w| w == needle),
                    "length visible"
                );
            }
        }
    }
}
