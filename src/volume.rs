//! Volumes (stage 8): label, packs and index as one POSIX tar stream, and back.
//!
//! A volume is written strictly front to back: the plaintext label member,
//! one member per pack, and the encrypted index member last, then the tar
//! end-of-archive blocks. Headers are ustar, built with the `tar` crate;
//! the reader is our own and strict: ustar regular members with generated
//! names only, checksums checked, sizes bounded. The writer keeps a budget so
//! that a volume never exceeds its size, reserving room for the index.
//! Does not know about the catalog or where the bytes go.

use crate::compress::Counted;
use crate::crypto::{VolumeKey, WrappedKey};
use crate::error::{Error, Result};
use crate::ids::{VaultId, VolumeId};
use crate::model::SnapshotRecord;
use crate::pack::PackEntry;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The on-media format version written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// First line of the label member.
pub const LABEL_MAGIC: &[u8] = b"tapevault-label v1\n";
/// The label member's name.
pub const LABEL_MEMBER: &str = "label.tvl";
/// The index member's name.
pub const INDEX_MEMBER: &str = "index.tvi";
/// Tar block size.
pub const BLOCK: u64 = 512;
/// A member larger than this is not one of ours (packs are at most 16 MiB plus slack).
pub const MAX_MEMBER_BYTES: u64 = 64 << 20;
/// An index whose JSON claims more than this is refused (it compresses about 4:1).
pub const MAX_INDEX_JSON_BYTES: u64 = MAX_MEMBER_BYTES * 4;
/// zstd level of the index: the writer's meter and its seal must agree.
const INDEX_ZSTD_LEVEL: i32 = 3;
/// Room, besides 1/64 of the measured size, for the sealed index's framing (codec,
/// length, zstd frame, tag) and for its differences from the measure.
const INDEX_SEAL_SLACK: u64 = 64 << 10;
/// Overhead of a volume besides its members' data: end-of-archive blocks.
const END_BYTES: u64 = 2 * BLOCK;

/// The object name of a volume: sequence first, so names sort in media order.
pub fn volume_name(sequence: u64, id: &VolumeId) -> String {
    format!("tv{sequence:06}-{}.tar", &id.to_string()[..8])
}

/// True for names [`volume_name`] makes (not the vault label, not partial objects).
pub fn is_volume_name(name: &str) -> bool {
    name.starts_with("tv") && name.ends_with(".tar")
}

/// The sequence and volume-id prefix a [`volume_name`] carries (a hint only: names are not authenticated).
pub fn parse_volume_name(name: &str) -> Option<(u64, &str)> {
    let (sequence, id) = name
        .strip_prefix("tv")?
        .strip_suffix(".tar")?
        .split_once('-')?;
    Some((sequence.parse().ok()?, id))
}

/// The tar member name of pack number `n`.
pub fn pack_member(n: u32) -> String {
    format!("pack-{n:06}.tvp")
}

fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// The plaintext label: identifies the volume and carries the wrapped key (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Always "tapevault".
    pub format: String,
    /// On-media format version.
    pub format_version: u32,
    /// The vault this volume belongs to.
    pub vault_id: VaultId,
    /// This volume's random id (fresh for every write attempt).
    pub volume_id: VolumeId,
    /// Position in the vault's sequence (1 = first volume; 0 = the vault label).
    pub sequence: u64,
    /// Seconds since the epoch.
    pub created: i64,
    /// Chunker version used by this vault.
    pub chunker: String,
    /// The master key wrapped by the passphrase.
    pub wrapped_key: WrappedKey,
    /// Reed-Solomon parity inside this volume, if any (absent in volumes without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<crate::parity::ParityLayout>,
}

impl Label {
    /// The label member's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = LABEL_MAGIC.to_vec();
        serde_json::to_writer(&mut out, self).expect("label serialises");
        out.push(b'\n');
        out
    }

    /// Parse a label member; names the field class that is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Label> {
        let body = bytes
            .strip_prefix(LABEL_MAGIC)
            .ok_or_else(|| Error::corrupt("label magic missing: not a tapevault volume"))?;
        let label: Label = serde_json::from_slice(body)
            .map_err(|e| Error::corrupt(format!("label damaged: {e}")))?;
        if label.format != "tapevault" {
            return Err(Error::corrupt("label format field damaged"));
        }
        if label.format_version != FORMAT_VERSION {
            return Err(Error::corrupt(format!(
                "volume format version {} is not supported by this build (reads {FORMAT_VERSION})",
                label.format_version
            )));
        }
        label.wrapped_key.kdf.check_bounds()?;
        Ok(label)
    }
}

/// One pack as listed in a volume index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack number within the volume (names the member and the pack key).
    pub number: u32,
    /// Byte offset of the pack's data within the volume.
    pub offset: u64,
    /// Pack length in bytes.
    pub length: u64,
    /// The pack's blobs in pack order.
    pub blobs: Vec<IndexBlob>,
}

/// One blob as listed in a volume index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    /// Data or tree.
    pub kind: crate::crypto::BlobKind,
    /// Chunk id.
    pub id: crate::ids::ChunkId,
    /// Offset within the pack.
    pub offset: u64,
    /// Sealed length.
    pub sealed_len: u32,
    /// Plain length.
    pub plain_len: u32,
}

impl From<&PackEntry> for IndexBlob {
    fn from(e: &PackEntry) -> IndexBlob {
        IndexBlob {
            kind: e.kind,
            id: e.id,
            offset: e.offset,
            sealed_len: e.sealed_len,
            plain_len: e.plain_len,
        }
    }
}

/// Index room for one earlier volume's set entry (JSON, before compression).
pub const SET_ENTRY_RESERVE: u64 = 192;

/// One earlier volume of the vault, as known when this one was sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetEntry {
    /// Sequence number.
    pub sequence: u64,
    /// Volume id.
    pub volume_id: VolumeId,
    /// Its size when sealed (absent in volumes written by the first builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// BLAKE3 of its bytes when sealed, hex (absent likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// The encrypted index at a volume's end: enough to rebuild the catalog from the volume alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeIndex {
    /// Repeats the label's volume id (authenticated here).
    pub volume_id: VolumeId,
    /// Repeats the label's sequence (authenticated here).
    pub sequence: u64,
    /// Packs in this volume.
    pub packs: Vec<IndexPack>,
    /// Snapshots completed in this volume.
    pub snapshots: Vec<SnapshotRecord>,
    /// Every sealed volume of the vault before this one.
    pub set: Vec<SetEntry>,
    /// The volume set this volume belongs to (the sequence of its first volume);
    /// absent in volumes of builds before sets, which are all in set 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_set: Option<u64>,
    /// Written by `consolidate`: holds copies of blobs, and never a snapshot record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consolidation: bool,
}

fn index_aad(vault: VaultId, volume: VolumeId, sequence: u64) -> Vec<u8> {
    let mut aad = b"TVI1".to_vec();
    aad.extend_from_slice(&vault.0);
    aad.extend_from_slice(&volume.0);
    aad.extend_from_slice(&sequence.to_le_bytes());
    aad
}

impl VolumeIndex {
    /// Encrypt for the index member: zstd-compressed JSON under the index key.
    pub fn seal(&self, vault: VaultId, key: &VolumeKey) -> Vec<u8> {
        // Streamed into zstd: the JSON (about 150 bytes a blob) is never held whole,
        // which was the peak of a backup of a million small files.
        let (mut plain, json_len) =
            crate::compress::compress_streamed(vec![0; 8], INDEX_ZSTD_LEVEL, |out| {
                serde_json::to_writer(out, self).map_err(std::io::Error::from)
            })
            .expect("an index serialises and compresses in memory");
        plain[..8].copy_from_slice(&json_len.to_le_bytes());
        key.seal_index(&index_aad(vault, self.volume_id, self.sequence), &plain)
    }

    /// Decrypt and parse an index member of the volume named by the label.
    pub fn open(
        sealed: &[u8],
        vault_id: VaultId,
        volume_id: VolumeId,
        sequence: u64,
        key: &VolumeKey,
    ) -> Result<VolumeIndex> {
        let plain = key.open_index(&index_aad(vault_id, volume_id, sequence), sealed)?;
        let (len, packed) = plain
            .split_at_checked(8)
            .ok_or_else(|| Error::corrupt("index too short"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        if len > MAX_INDEX_JSON_BYTES {
            return Err(Error::corrupt("index claims an absurd size"));
        }
        let json = decompress_index(packed, len as usize)?;
        let index: VolumeIndex =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt(format!("index: {e}")))?;
        if index.volume_id != volume_id || index.sequence != sequence {
            return Err(Error::corrupt("index belongs to another volume"));
        }
        Ok(index)
    }
}

fn decompress_index(packed: &[u8], len: usize) -> Result<Vec<u8>> {
    match packed.first() {
        Some(&crate::compress::CODEC_ZSTD) => zstd::bulk::decompress(&packed[1..], len)
            .map_err(|e| Error::corrupt(format!("index: {e}"))),
        _ => crate::compress::decompress(packed, len),
    }
}

/// Counts and hashes every byte that goes to the medium, and feeds the parity encoder.
struct HashingWriter<W: Write> {
    inner: W,
    written: u64,
    hasher: blake3::Hasher,
    parity: Option<crate::parity::SegmentEncoder>,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(segment) = &mut self.parity {
            segment.push(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything read through it: a full pass yields a volume's size and BLAKE3.
pub struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wrap a reader positioned at a volume's start.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// Read to the end; returns the volume's size and BLAKE3 (hex).
    pub fn finish(mut self) -> Result<(u64, String)> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(|e| {
            Error::new(
                crate::error::ErrorKind::Io,
                format!("cannot read volume at byte {}: {e}", self.bytes),
            )
        })?;
        Ok((self.bytes, self.hasher.finalize().to_hex().to_string()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What a sealed volume is: its size and the BLAKE3 of all its bytes (for keyless verify).
#[derive(Debug, Clone)]
pub struct WrittenVolume<W> {
    /// The medium's sink, to be sealed by the caller.
    pub sink: W,
    /// Bytes in the volume.
    pub bytes: u64,
    /// BLAKE3 of the volume's bytes, hex.
    pub blake3: String,
}

/// Writes one volume front to back within a byte budget.
pub struct VolumeWriter<W: Write> {
    out: HashingWriter<W>,
    mtime: u64,
    limit: u64,
    /// Room reserved for the index, grown as packs are added.
    index_reserve: u64,
    /// The index's JSON besides its pack list: header, set list, snapshot record.
    index_base: u64,
    /// The index as it will be sealed, measured pack by pack.
    index_meter: IndexMeter,
    /// Largest sealed index a reader accepts ([`MAX_MEMBER_BYTES`]; smaller in tests).
    index_limit: u64,
}

/// Measures the index's pack list as it grows: its JSON, and that JSON compressed as
/// the seal compresses it, flushed after every pack so the count is never behind.
/// A volume of many small blobs fills its index before its medium: on an 18 TB
/// cartridge the index would pass the 64 MiB every reader refuses past.
struct IndexMeter {
    json: Counted<zstd::stream::Encoder<'static, Counted<std::io::Sink>>>,
}

impl IndexMeter {
    fn new() -> Result<IndexMeter> {
        let sink = Counted {
            inner: std::io::sink(),
            bytes: 0,
        };
        let encoder = zstd::stream::Encoder::new(sink, INDEX_ZSTD_LEVEL)
            .map_err(|e| Error::corrupt(format!("index meter: {e}")))?;
        Ok(IndexMeter {
            json: Counted {
                inner: encoder,
                bytes: 0,
            },
        })
    }

    fn add(&mut self, pack: &IndexPack) -> Result<()> {
        let separator: &[u8] = if self.json.bytes == 0 { b"" } else { b"," };
        self.json
            .write_all(separator)
            .and_then(|()| serde_json::to_writer(&mut self.json, pack).map_err(Into::into))
            .and_then(|()| self.json.flush())
            .map_err(|e| Error::corrupt(format!("index meter: {e}")))
    }

    fn json_bytes(&self) -> u64 {
        self.json.bytes
    }

    fn compressed_bytes(&self) -> u64 {
        self.json.inner.get_ref().bytes
    }
}

/// Whether one more pack goes into a volume, and if not, what is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// It fits.
    Fits,
    /// The volume's size (index and parity included) leaves no room for it.
    MediumFull,
    /// There is room, but the index would outgrow what every reader accepts.
    IndexFull,
}

/// Room needed in the index for one pack with `blobs` blobs (JSON, before compression).
pub fn index_bytes_for_pack(blobs: usize) -> u64 {
    96 + 170 * blobs as u64
}

/// Fixed part of the index reservation: set list entries, snapshot record, framing.
const INDEX_BASE_RESERVE: u64 = 4096;

impl<W: Write> VolumeWriter<W> {
    /// Start a volume: writes the label member.
    pub fn start(sink: W, label: &Label, limit: u64, tail_reserve: u64) -> Result<VolumeWriter<W>> {
        let mut writer = VolumeWriter {
            out: HashingWriter {
                inner: sink,
                written: 0,
                hasher: blake3::Hasher::new(),
                parity: label.parity.map(crate::parity::SegmentEncoder::new),
            },
            mtime: label.created.max(0) as u64,
            limit,
            index_reserve: INDEX_BASE_RESERVE + tail_reserve,
            index_base: INDEX_BASE_RESERVE + tail_reserve,
            index_meter: IndexMeter::new()?,
            index_limit: MAX_MEMBER_BYTES,
        };
        writer.member(LABEL_MEMBER, &label.encode())?;
        Ok(writer)
    }

    fn member(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let header = member_header(name, data.len() as u64, self.mtime)?;
        self.raw_member(&header, data)
    }

    fn raw_member(&mut self, header: &[u8; BLOCK as usize], data: &[u8]) -> Result<()> {
        let io = crate::error::volume_write_error;
        self.out.write_all(header).map_err(io)?;
        self.out.write_all(data).map_err(io)?;
        let pad = (padded(data.len() as u64) - data.len() as u64) as usize;
        self.out
            .write_all(&[0u8; BLOCK as usize][..pad])
            .map_err(io)?;
        Ok(())
    }

    /// Where the volume goes.
    pub fn sink(&self) -> &W {
        &self.out.inner
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.written
    }

    /// Would a pack of `len` bytes with `blobs` blobs still fit, index and parity included,
    /// and the index still be one every reader accepts?
    pub fn room_for(&self, len: u64, blobs: usize) -> Room {
        if !self.fits_in_medium(len, blobs) {
            Room::MediumFull
        } else if !self.index_accepts(index_bytes_for_pack(blobs)) {
            Room::IndexFull
        } else {
            Room::Fits
        }
    }

    /// Would the snapshot record (`len` bytes of JSON) still fit, in the volume and in its index?
    pub fn fits_record(&self, len: u64) -> bool {
        self.fits_in_medium(len, 0) && self.index_accepts(len)
    }

    /// Would the index, `more` bytes of JSON larger, still be a member every reader
    /// accepts? The rest of the index is bounded by its JSON; the slack covers zstd's
    /// framing, and the seal compresses the pack list in one stream, not pack by pack.
    fn index_accepts(&self, more: u64) -> bool {
        let rest = self.index_base + more;
        let compressed = self.index_meter.compressed_bytes();
        let sealed = compressed + compressed / 64 + INDEX_SEAL_SLACK + rest;
        let json = self.index_meter.json_bytes() + rest;
        sealed <= self.index_limit && json <= self.index_limit * 4
    }

    fn fits_in_medium(&self, len: u64, blobs: usize) -> bool {
        let pack = BLOCK + padded(len);
        let index = BLOCK + padded(self.index_reserve + index_bytes_for_pack(blobs));
        let parity = self.out.parity.as_ref().map_or(0, |segment| {
            let layout = segment.layout();
            if self.closes_segment(len) {
                let closing = layout.member_bytes(segment.len());
                closing + layout.member_bytes(closing + pack + index)
            } else {
                layout.member_bytes(segment.len() + pack + index)
            }
        });
        self.out.written + pack + index + parity + END_BYTES <= self.limit
    }

    /// Does a pack of `len` bytes start a new parity segment? The index never does.
    fn closes_segment(&self, len: u64) -> bool {
        self.out.parity.as_ref().is_some_and(|segment| {
            segment.len() > 0
                && segment.len() + BLOCK + padded(len) > segment.layout().segment_bytes()
        })
    }

    /// Write the open segment's parity member; it begins the next segment.
    fn close_segment(&mut self) -> Result<()> {
        if let Some(segment) = &mut self.out.parity {
            let (header, body) = segment.close(self.mtime)?;
            self.raw_member(&header, &body)?;
        }
        Ok(())
    }

    /// Append a pack member and return its index entry. The caller checked
    /// [`VolumeWriter::fits`].
    pub fn append_pack(
        &mut self,
        number: u32,
        bytes: &[u8],
        blobs: Vec<IndexBlob>,
    ) -> Result<IndexPack> {
        if self.closes_segment(bytes.len() as u64) {
            self.close_segment()?;
        }
        self.member(&pack_member(number), bytes)?;
        self.index_reserve += index_bytes_for_pack(blobs.len());
        let pack = IndexPack {
            number,
            offset: self.out.written - padded(bytes.len() as u64),
            length: bytes.len() as u64,
            blobs,
        };
        self.index_meter.add(&pack)?;
        Ok(pack)
    }

    /// Write the index and the end-of-archive blocks; the caller then seals the sink.
    /// Refuses an index no reader would accept: the volume is then abandoned, not sealed.
    pub fn finish(mut self, sealed_index: &[u8]) -> Result<WrittenVolume<W>> {
        if sealed_index.len() as u64 > self.index_limit {
            return Err(Error::corrupt(format!(
                "the volume index would be {} bytes, over the {} a reader accepts",
                sealed_index.len(),
                self.index_limit
            )));
        }
        self.member(INDEX_MEMBER, sealed_index)?;
        self.close_segment()?;
        self.out
            .write_all(&[0u8; END_BYTES as usize])
            .map_err(crate::error::volume_write_error)?;
        if self.out.written > self.limit {
            return Err(Error::corrupt(format!(
                "volume would be {} bytes, over its size {} (index larger than reserved)",
                self.out.written, self.limit
            )));
        }
        Ok(WrittenVolume {
            bytes: self.out.written,
            blake3: self.out.hasher.finalize().to_hex().to_string(),
            sink: self.out.inner,
        })
    }
}

/// The ustar header tapevault writes for a member.
pub(crate) fn member_header(name: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK as usize]> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(name)
        .map_err(|e| Error::corrupt(format!("member name: {e}")))?;
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(*header.as_bytes())
}

/// A member of a volume, as found by the strict reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member name.
    pub name: String,
    /// Offset of its data within the volume.
    pub offset: u64,
    /// Data length.
    pub size: u64,
}

/// Where a volume's member headers fall as its bytes go by, in pieces of any size:
/// where the tape sink cuts a volume into parts, and how the stream reader finds
/// where a volume ends.
#[derive(Debug, Default)]
pub struct MemberWalk {
    position: u64,
    next_header: u64,
    header: Vec<u8>,
    /// Bytes of the end blocks still to come, once the first began.
    ending: Option<u64>,
}

/// What one [`MemberWalk::step`] went over.
#[derive(Debug)]
pub enum Walked {
    /// This many bytes of member data, padding or end blocks.
    Data(usize),
    /// This many bytes of a member header, held by the walk until the header is whole;
    /// then its bytes and the member (`None`: the first end block).
    Header(usize, Option<(Box<[u8; BLOCK as usize]>, Option<Member>)>),
}

impl MemberWalk {
    /// Go over the start of `available`; never over a header's end.
    pub fn step(&mut self, available: &[u8]) -> Result<Walked> {
        if let Some(left) = self.ending {
            if left == 0 && !available.is_empty() {
                return Err(Error::corrupt("bytes after a volume's end blocks"));
            }
            let n = (left as usize).min(available.len());
            self.ending = Some(left - n as u64);
            self.position += n as u64;
            return Ok(Walked::Data(n));
        }
        if self.position < self.next_header {
            let n = available
                .len()
                .min((self.next_header - self.position) as usize);
            self.position += n as u64;
            return Ok(Walked::Data(n));
        }
        let n = available.len().min(BLOCK as usize - self.header.len());
        self.header.extend_from_slice(&available[..n]);
        self.position += n as u64;
        if self.header.len() < BLOCK as usize {
            return Ok(Walked::Header(n, None));
        }
        let block: [u8; BLOCK as usize] = std::mem::take(&mut self.header)
            .try_into()
            .expect("one block");
        if block.iter().all(|b| *b == 0) {
            // The first of the two end blocks; the second follows.
            self.ending = Some(BLOCK);
            return Ok(Walked::Header(n, Some((Box::new(block), None))));
        }
        let member = parse_header(&block, self.position - BLOCK)?;
        self.next_header = member.offset + padded(member.size);
        Ok(Walked::Header(n, Some((Box::new(block), Some(member)))))
    }

    /// Bytes gone over.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The end blocks are behind: the volume is whole.
    pub fn done(&self) -> bool {
        self.ending == Some(0)
    }
}

/// Reads a volume's members in order, refusing anything tapevault does not write.
pub struct VolumeReader<R: Read> {
    input: R,
    position: u64,
    pending: u64,
}

impl<R: Read> VolumeReader<R> {
    /// Read from the start of a volume.
    pub fn new(input: R) -> VolumeReader<R> {
        VolumeReader {
            input,
            position: 0,
            pending: 0,
        }
    }

    /// The underlying reader, positioned after what was read.
    pub fn into_inner(self) -> R {
        self.input
    }

    /// Read and decode the label, which must be the first member.
    pub fn read_label(&mut self) -> Result<Label> {
        Label::decode(&self.read_label_bytes()?)
    }

    /// Read the label member's bytes; on success the reader is past it even if
    /// the bytes do not decode, so a damaged label never costs the body.
    pub fn read_label_bytes(&mut self) -> Result<Vec<u8>> {
        let first = self
            .next_member()?
            .ok_or_else(|| Error::corrupt("empty volume"))?;
        if first.name != LABEL_MEMBER {
            return Err(Error::corrupt("first member is not a label"));
        }
        self.read_data(&first)
    }

    /// The next member header, or `None` at the end-of-archive marker.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        if self.pending > 0 {
            let skip = self.pending;
            self.skip(skip)?;
        }
        let mut block = [0u8; BLOCK as usize];
        self.read_exact(&mut block)?;
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let member = parse_header(&block, self.position - BLOCK)?;
        self.pending = padded(member.size);
        Ok(Some(member))
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// After a damaged header or a false end-of-archive (zeroed blocks): read block by
    /// block until one is a valid member header. `None` at the end of the volume.
    pub fn resync(&mut self) -> Result<Option<Member>> {
        // The damaged header's size cannot be trusted: scan from here.
        self.pending = 0;
        let mut block = [0u8; BLOCK as usize];
        loop {
            match self.input.read_exact(&mut block) {
                Ok(()) => self.position += BLOCK,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => {
                    return Err(Error::new(
                        crate::error::ErrorKind::Io,
                        format!("cannot read volume at byte {}: {e}", self.position),
                    ))
                }
            }
            if block.iter().all(|b| *b == 0) {
                continue;
            }
            if let Ok(member) = parse_header(&block, self.position - BLOCK) {
                self.pending = padded(member.size);
                return Ok(Some(member));
            }
        }
    }

    /// Read the current member's data (bounded by [`MAX_MEMBER_BYTES`]).
    pub fn read_data(&mut self, member: &Member) -> Result<Vec<u8>> {
        let mut data = vec![0u8; member.size as usize];
        self.read_exact(&mut data)?;
        let pad = padded(member.size) - member.size;
        self.pending = 0;
        self.skip(pad)?;
        Ok(data)
    }

    /// Read `len` bytes at volume offset `offset` (at or after the position), with no
    /// header to trust: for a pack whose place a catalog knows. Leaves the reader at the
    /// next block boundary, from where [`VolumeReader::resync`] can go on.
    pub fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let skip = offset.checked_sub(self.position).ok_or_else(|| {
            Error::corrupt(format!(
                "byte {offset} of the volume is already behind the reader"
            ))
        })?;
        if len > MAX_MEMBER_BYTES {
            return Err(Error::corrupt("range larger than any member"));
        }
        self.pending = 0;
        self.skip(skip)?;
        let mut data = vec![0u8; len as usize];
        self.read_exact(&mut data)?;
        self.skip(padded(self.position) - self.position)?;
        Ok(data)
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = vec![0u8; n.min(1 << 16) as usize];
        while n > 0 {
            let step = n.min(buf.len() as u64) as usize;
            self.read_exact(&mut buf[..step])?;
            n -= step as u64;
        }
        self.pending = 0;
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(format!("volume truncated at byte {}", self.position))
            } else {
                Error::new(
                    crate::error::ErrorKind::Io,
                    format!("cannot read volume at byte {}: {e}", self.position),
                )
            }
        })?;
        self.position += buf.len() as u64;
        Ok(())
    }
}

/// Parse and check one ustar header block at volume offset `at`.
pub fn parse_header(block: &[u8; BLOCK as usize], at: u64) -> Result<Member> {
    let bad =
        |why: &str| Error::corrupt(format!("not a tapevault volume member at byte {at}: {why}"));
    let header = tar::Header::from_byte_slice(block);
    let ustar = header.as_ustar().ok_or_else(|| bad("not a ustar header"))?;
    let stored = header.cksum().map_err(|_| bad("unreadable checksum"))?;
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(*b)
            }
        })
        .sum();
    if stored != computed {
        return Err(bad("header checksum mismatch"));
    }
    if header.entry_type() != tar::EntryType::Regular {
        return Err(bad("only regular members are allowed"));
    }
    if ustar.prefix.iter().any(|b| *b != 0) {
        return Err(bad("long names are not allowed"));
    }
    let name_bytes = header.path_bytes();
    let name = std::str::from_utf8(&name_bytes)
        .map_err(|_| bad("name is not ASCII"))?
        .to_string();
    let allowed = name == LABEL_MEMBER
        || name == INDEX_MEMBER
        || crate::parity::is_parity_member(&name)
        || (name.len() == 15
            && name.starts_with("pack-")
            && name.ends_with(".tvp")
            && name[5..11].bytes().all(|b| b.is_ascii_digit()));
    if !allowed {
        return Err(bad("unexpected member name"));
    }
    let size = header.entry_size().map_err(|_| bad("unreadable size"))?;
    if size > MAX_MEMBER_BYTES {
        return Err(bad("member size beyond any tapevault member"));
    }
    Ok(Member {
        name,
        offset: at + BLOCK,
        size,
    })
}

/// The pack number of a pack member name.
pub fn pack_number(name: &str) -> Option<u32> {
    name.strip_prefix("pack-")?
        .strip_suffix(".tvp")?
        .parse()
        .ok()
}

/// A label for a volume written in tests.
#[cfg(test)]
pub(crate) fn test_label(
    key: &crate::crypto::MasterKey,
    parity: Option<crate::parity::ParityLayout>,
) -> Label {
    let vault = VaultId::random();
    let kdf = crate::crypto::KdfParams::new(8192, 1, 1).expect("valid");
    Label {
        format: "tapevault".into(),
        format_version: FORMAT_VERSION,
        vault_id: vault,
        volume_id: VolumeId::random(),
        sequence: 1,
        created: 1,
        chunker: crate::chunk::CHUNKER_VERSION.into(),
        wrapped_key: WrappedKey::wrap(key, vault, b"p", kdf).expect("wraps"),
        parity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_for(name: &str, kind: tar::EntryType, size: u64) -> [u8; 512] {
        let mut header = tar::Header::new_ustar();
        // Raw bytes: the tar crate itself refuses to write hostile names.
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_cksum();
        *header.as_bytes()
    }

    #[test]
    fn t43_strict_reader_refuses_foreign_members() {
        assert!(parse_header(
            &header_for("pack-000001.tvp", tar::EntryType::Regular, 10),
            0
        )
        .is_ok());
        for (name, kind) in [
            ("../etc/passwd", tar::EntryType::Regular),
            ("pack-000001.tvp", tar::EntryType::Symlink),
            ("pack-000001.tvp", tar::EntryType::XHeader),
            ("pack-000001.tvp", tar::EntryType::GNULongName),
            ("pack-000001.tvp", tar::EntryType::GNUSparse),
            ("label.tvl2", tar::EntryType::Regular),
        ] {
            assert!(
                parse_header(&header_for(name, kind, 10), 0).is_err(),
                "{name} {kind:?}"
            );
        }
        let mut bad_sum = header_for(LABEL_MEMBER, tar::EntryType::Regular, 10);
        bad_sum[0] ^= 1;
        assert!(parse_header(&bad_sum, 0).is_err());
        let huge = header_for(INDEX_MEMBER, tar::EntryType::Regular, MAX_MEMBER_BYTES + 1);
        assert!(parse_header(&huge, 0).is_err());
    }

    /// The writer stops taking packs before the index would outgrow what a reader
    /// accepts, whether its compressed size binds (random chunk ids) or its JSON
    /// (repeating ids), and comes close to the limit rather than stopping far short.
    #[test]
    fn a_volume_stops_taking_packs_before_its_index_outgrows_the_reader() {
        const LIMIT: u64 = 2 << 20;
        let random = |_: u64| crate::ids::ChunkId(crate::ids::random_bytes());
        let repeating = |n: u64| crate::ids::ChunkId([(n % 7) as u8; 32]);
        let cases: [(&str, &dyn Fn(u64) -> crate::ids::ChunkId); 2] =
            [("random ids", &random), ("repeating ids", &repeating)];
        for (case, id) in cases {
            let key = crate::crypto::MasterKey::random();
            let label = test_label(&key, None);
            let mut writer = VolumeWriter::start(Vec::new(), &label, 1 << 40, 0).expect("starts");
            writer.index_limit = LIMIT;
            let mut packs = Vec::new();
            while writer.room_for(512, 200) == Room::Fits {
                assert!(
                    packs.len() < 10_000,
                    "{case}: the index grows without bound"
                );
                let blobs = (0..200)
                    .map(|n| IndexBlob {
                        kind: crate::crypto::BlobKind::Data,
                        id: id(n),
                        offset: n * 1000,
                        sealed_len: 1000,
                        plain_len: 900,
                    })
                    .collect();
                let number = packs.len() as u32 + 1;
                packs.push(
                    writer
                        .append_pack(number, &[0; 512], blobs)
                        .expect("appends"),
                );
            }
            assert_eq!(
                writer.room_for(512, 200),
                Room::IndexFull,
                "{case}: the medium still has room; it is the index that is full"
            );
            let index = VolumeIndex {
                volume_id: label.volume_id,
                sequence: label.sequence,
                packs,
                snapshots: Vec::new(),
                set: Vec::new(),
                volume_set: Some(1),
                consolidation: false,
            };
            let json = serde_json::to_vec(&index).expect("serialises").len() as f64;
            let sealed = index.seal(label.vault_id, &key.volume_key(&label.volume_id));
            let used = (sealed.len() as f64 / LIMIT as f64).max(json / (4 * LIMIT) as f64);
            assert!(
                used > 0.9 && used <= 1.0,
                "{case}: index uses {used:.3} of the limit"
            );
            writer
                .finish(&sealed)
                .expect("an index under the limit is written");
        }
    }

    #[test]
    fn a_volume_refuses_to_write_an_index_no_reader_accepts() {
        let key = crate::crypto::MasterKey::random();
        let mut writer =
            VolumeWriter::start(Vec::new(), &test_label(&key, None), 1 << 30, 0).expect("starts");
        writer.index_limit = 4096;
        let err = writer.finish(&[0; 4097]).expect_err("refused");
        assert!(err.to_string().contains("over the 4096"), "{err}");
    }
}
