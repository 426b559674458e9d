//! Parity (stage 8b): Reed-Solomon recovery data inside a volume, and the reader
//! that repairs a volume's byte stream with it before the tar layer sees it.
//!
//! The volume's bytes are cut into segments at member boundaries; each segment is
//! split into shards of `shard_bytes` (the last one zero-padded), and its recovery
//! shards travel in a `parity-NNNNNN.tvr` member written right after it. Every byte
//! position of the shards is one Reed-Solomon codeword, so a contiguous burst costs
//! each codeword at most `burst / shard_bytes + 1` symbols: the classic interleave.
//! The parity member carries a descriptor (with the BLAKE3 of every shard, so
//! damaged shards are known erasures) at its start and again at its end, so a
//! burst that takes one copy leaves the other. A parity member is itself part of
//! the next segment, so it is protected too, except the last one, which protects
//! the index and is needed by nothing else.
//!
//! Keyless: shard hashes cover ciphertext and tar framing, never plaintext.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;

/// Shards in a full segment; the recovery count is a percentage of it.
pub const SHARDS_PER_SEGMENT: u64 = 256;
/// The largest segment: the reader holds one segment and its parity in memory.
pub const SEGMENT_MAX_BYTES: u64 = 16 << 20;
/// The highest `--parity` accepted: beyond it a second copy of the vault is cheaper.
pub const PARITY_MAX_PERCENT: u8 = 50;
const MAGIC: &[u8; 8] = b"TVPARITY";
const DESCRIPTOR_VERSION: u32 = 1;
const HASH_BYTES: usize = 16;
/// Descriptor fields before the copy of the member's header.
const DESCRIPTOR_HEAD: usize = 8 + 4 + 4 + 8 + 8 + 4 + 4 + 4;
/// Descriptor bytes before the shard hashes: fields, then the parity member's own header.
const DESCRIPTOR_FIXED: usize = DESCRIPTOR_HEAD + BLOCK as usize;
const BLOCK: u64 = crate::volume::BLOCK;

/// How a volume's parity is laid out; recorded in its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParityLayout {
    /// Recovery shards per segment, as a percentage of a full segment's shards.
    pub percent: u8,
    /// Bytes per shard (a multiple of 512).
    pub shard_bytes: u32,
}

impl ParityLayout {
    /// The layout for `--parity percent` in volumes of `volume_size` bytes; `None` for 0.
    pub fn for_volume(percent: u8, volume_size: u64) -> Result<Option<ParityLayout>> {
        if percent == 0 {
            return Ok(None);
        }
        if percent > PARITY_MAX_PERCENT {
            return Err(Error::usage(format!(
                "--parity {percent} is more than {PARITY_MAX_PERCENT}%: keep a second copy of the vault instead (tapevault copy)"
            )));
        }
        let segment = volume_size.min(SEGMENT_MAX_BYTES);
        let shard_bytes = (segment / SHARDS_PER_SEGMENT / BLOCK * BLOCK).max(BLOCK);
        Ok(Some(ParityLayout {
            percent,
            shard_bytes: shard_bytes as u32,
        }))
    }

    /// The size a segment is closed at (one that holds a single larger member is larger).
    pub fn segment_bytes(&self) -> u64 {
        SHARDS_PER_SEGMENT * u64::from(self.shard_bytes)
    }

    /// Recovery shards of a full segment: every segment gets at least this many.
    fn min_recovery(&self) -> usize {
        (SHARDS_PER_SEGMENT as usize * usize::from(self.percent)).div_ceil(100)
    }

    fn recovery_for(&self, originals: usize) -> usize {
        self.min_recovery()
            .max((originals * usize::from(self.percent)).div_ceil(100))
    }

    /// The guarantee: any one contiguous burst of damage up to this many bytes in a
    /// segment and its parity member is repaired (it touches at most `min_recovery`
    /// shards of any segment).
    pub fn burst_bound(&self) -> u64 {
        (self.min_recovery() as u64 - 1) * u64::from(self.shard_bytes)
    }

    /// Bytes of the parity member (header included) for a segment of `segment_len` bytes.
    pub fn member_bytes(&self, segment_len: u64) -> u64 {
        let shard_bytes = u64::from(self.shard_bytes);
        let originals = segment_len.div_ceil(shard_bytes).max(1);
        let recovery = self.recovery_for(originals as usize);
        let descriptor = descriptor_bytes(originals as usize, recovery);
        BLOCK
            + first_copy_bytes(segment_len, originals * shard_bytes, descriptor)
            + recovery as u64 * shard_bytes
            + descriptor
    }
}

/// The parity member name for segment `n`.
pub fn parity_member(n: u32) -> String {
    format!("parity-{n:06}.tvr")
}

/// Is this a parity member name?
pub fn is_parity_member(name: &str) -> bool {
    name.len() == 17
        && name.starts_with("parity-")
        && name.ends_with(".tvr")
        && name[7..13].bytes().all(|b| b.is_ascii_digit())
}

/// Room for the first descriptor copy: at least the descriptor, and enough that the
/// recovery shards start a whole shard after the last original shard's start (the
/// burst bound counts on shards being at least `L` apart, the short last one too).
fn first_copy_bytes(segment_len: u64, padded_segment: u64, descriptor: u64) -> u64 {
    descriptor.max(padded_segment.saturating_sub(segment_len + BLOCK))
}

fn descriptor_bytes(originals: usize, recovery: usize) -> u64 {
    ((DESCRIPTOR_FIXED + (originals + recovery) * HASH_BYTES + HASH_BYTES) as u64).div_ceil(BLOCK)
        * BLOCK
}

/// A shard as encoded: the last one of a segment is zero-padded.
fn padded_shard(shard: &[u8], shard_bytes: usize) -> std::borrow::Cow<'_, [u8]> {
    if shard.len() == shard_bytes {
        std::borrow::Cow::Borrowed(shard)
    } else {
        let mut padded = shard.to_vec();
        padded.resize(shard_bytes, 0);
        std::borrow::Cow::Owned(padded)
    }
}

fn shard_hash(shard: &[u8], shard_bytes: usize) -> [u8; HASH_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(shard);
    // The last shard is hashed as if zero-padded, as it is encoded.
    let zeros = [0u8; 512];
    let mut pad = shard_bytes - shard.len();
    while pad > 0 {
        let step = pad.min(zeros.len());
        hasher.update(&zeros[..step]);
        pad -= step;
    }
    hasher.finalize().as_bytes()[..HASH_BYTES]
        .try_into()
        .expect("16 bytes")
}

/// Where a segment is and how its parity was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Descriptor {
    segment: u32,
    start: u64,
    len: u64,
    shard_bytes: u32,
    originals: u32,
    recovery: u32,
    /// The parity member's tar header, so that it too can be put right.
    header: [u8; BLOCK as usize],
    /// Originals' hashes, then recovery shards'.
    hashes: Vec<[u8; HASH_BYTES]>,
}

impl Descriptor {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(descriptor_bytes(
            self.originals as usize,
            self.recovery as usize,
        ) as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&DESCRIPTOR_VERSION.to_le_bytes());
        out.extend_from_slice(&self.segment.to_le_bytes());
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.shard_bytes.to_le_bytes());
        out.extend_from_slice(&self.originals.to_le_bytes());
        out.extend_from_slice(&self.recovery.to_le_bytes());
        out.extend_from_slice(&self.header);
        for hash in &self.hashes {
            out.extend_from_slice(hash);
        }
        let check = blake3::hash(&out);
        out.extend_from_slice(&check.as_bytes()[..HASH_BYTES]);
        out.resize(out.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        out
    }

    /// How long the descriptor starting at `bytes[0]` says it is (bounded).
    fn claimed_len(bytes: &[u8]) -> usize {
        let count = |at: usize| {
            bytes.get(at..at + 4).map_or(0, |b| {
                u32::from_le_bytes(b.try_into().expect("4")).min(1 << 16)
            })
        };
        DESCRIPTOR_FIXED + (count(36) + count(40)) as usize * HASH_BYTES + HASH_BYTES
    }

    /// A descriptor starting at `bytes[0]`, if one is there whole and intact.
    fn decode(bytes: &[u8]) -> Option<Descriptor> {
        if bytes.len() < DESCRIPTOR_HEAD || &bytes[..8] != MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        if u32_at(8) != DESCRIPTOR_VERSION {
            return None;
        }
        let (shard_bytes, originals, recovery) = (u32_at(32), u32_at(36), u32_at(40));
        let len = u64_at(24);
        let plausible = shard_bytes > 0
            && u64::from(shard_bytes) % BLOCK == 0
            && u64::from(shard_bytes) <= SEGMENT_MAX_BYTES
            && reed_solomon_simd::ReedSolomonEncoder::supports(
                originals as usize,
                recovery as usize,
            )
            && len.div_ceil(u64::from(shard_bytes)).max(1) == u64::from(originals)
            // No segment and parity is larger than a hold of the reader: a crafted
            // descriptor must not make it allocate more.
            && u64::from(originals + recovery) * u64::from(shard_bytes) <= HOLD_LIMIT;
        if !plausible {
            return None;
        }
        let count = (originals + recovery) as usize;
        let end = DESCRIPTOR_FIXED + count * HASH_BYTES;
        let stored = bytes.get(end..end + HASH_BYTES)?;
        if blake3::hash(&bytes[..end]).as_bytes()[..HASH_BYTES] != *stored {
            return None;
        }
        Some(Descriptor {
            segment: u32_at(12),
            start: u64_at(16),
            len,
            shard_bytes,
            originals,
            recovery,
            header: bytes[DESCRIPTOR_HEAD..DESCRIPTOR_FIXED]
                .try_into()
                .expect("one block"),
            hashes: bytes[DESCRIPTOR_FIXED..end]
                .chunks_exact(HASH_BYTES)
                .map(|h| h.try_into().expect("16 bytes"))
                .collect(),
        })
    }

    fn padded_len(&self) -> u64 {
        descriptor_bytes(self.originals as usize, self.recovery as usize)
    }

    /// Volume offset of the first recovery shard.
    fn shards_at(&self) -> u64 {
        let padded_segment = u64::from(self.originals) * u64::from(self.shard_bytes);
        self.start
            + self.len
            + BLOCK
            + first_copy_bytes(self.len, padded_segment, self.padded_len())
    }

    /// Volume offset just past the last recovery shard.
    fn shards_end(&self) -> u64 {
        self.shards_at() + u64::from(self.recovery) * u64::from(self.shard_bytes)
    }

    /// Is a copy of this descriptor expected at volume offset `at`?
    fn belongs_at(&self, at: u64) -> bool {
        at == self.start + self.len + BLOCK || at == self.shards_end()
    }
}

/// Collects a segment's bytes as they are written and computes its parity member.
pub(crate) struct SegmentEncoder {
    layout: ParityLayout,
    number: u32,
    start: u64,
    bytes: Vec<u8>,
}

impl SegmentEncoder {
    pub(crate) fn new(layout: ParityLayout) -> SegmentEncoder {
        SegmentEncoder {
            layout,
            number: 1,
            start: 0,
            bytes: Vec::new(),
        }
    }

    pub(crate) fn layout(&self) -> ParityLayout {
        self.layout
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Bytes in the open segment.
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Close the open segment: its parity member's header and body. The next segment
    /// starts where that header will be written.
    pub(crate) fn close(&mut self, mtime: u64) -> Result<([u8; BLOCK as usize], Vec<u8>)> {
        let shard_bytes = self.layout.shard_bytes as usize;
        let originals = self.bytes.len().div_ceil(shard_bytes).max(1);
        let recovery = self.layout.recovery_for(originals);
        let shards: Vec<&[u8]> = (0..originals)
            .map(|i| {
                let from = (i * shard_bytes).min(self.bytes.len());
                &self.bytes[from..((i + 1) * shard_bytes).min(self.bytes.len())]
            })
            .collect();
        let mut hashes: Vec<[u8; HASH_BYTES]> =
            shards.iter().map(|s| shard_hash(s, shard_bytes)).collect();
        let rs_error = |e: reed_solomon_simd::Error| Error::corrupt(format!("parity: {e}"));
        let mut encoder =
            reed_solomon_simd::ReedSolomonEncoder::new(originals, recovery, shard_bytes)
                .map_err(rs_error)?;
        for shard in &shards {
            encoder
                .add_original_shard(padded_shard(shard, shard_bytes))
                .map_err(rs_error)?;
        }
        let encoded = encoder.encode().map_err(rs_error)?;
        let mut recovery_shards = Vec::with_capacity(recovery * shard_bytes);
        for shard in encoded.recovery_iter() {
            hashes.push(shard_hash(shard, shard_bytes));
            recovery_shards.extend_from_slice(shard);
        }
        let body_len = self.layout.member_bytes(self.len()) - BLOCK;
        let header = crate::volume::member_header(&parity_member(self.number), body_len, mtime)?;
        let descriptor = Descriptor {
            segment: self.number,
            start: self.start,
            len: self.bytes.len() as u64,
            shard_bytes: self.layout.shard_bytes,
            originals: originals as u32,
            recovery: recovery as u32,
            header,
            hashes,
        }
        .encode();
        let mut body = Vec::with_capacity(body_len as usize);
        body.extend_from_slice(&descriptor);
        body.resize(
            first_copy_bytes(
                self.len(),
                (originals * shard_bytes) as u64,
                descriptor.len() as u64,
            ) as usize,
            0,
        );
        body.extend_from_slice(&recovery_shards);
        body.extend_from_slice(&descriptor);
        debug_assert_eq!(body.len() as u64, body_len);
        self.number += 1;
        self.start += self.bytes.len() as u64;
        self.bytes.clear();
        Ok((header, body))
    }
}

/// A byte range of a volume that parity repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Volume file name.
    pub volume: String,
    /// First damaged byte, from the volume's start.
    pub offset: u64,
    /// Damaged bytes that were rebuilt.
    pub length: u64,
}

/// What the repairing reader did.
#[derive(Debug, Default)]
pub struct ParityLog {
    /// Ranges rebuilt from parity (volume name filled in by the caller).
    pub repaired: Vec<(u64, u64)>,
    /// Damage parity could not repair, or bytes it could not check.
    pub unrepaired: Vec<String>,
}

/// Bytes held back at most while looking for a segment's parity.
const HOLD_LIMIT: u64 = SEGMENT_MAX_BYTES * 2 + crate::volume::MAX_MEMBER_BYTES;
const READ_STEP: usize = 1 << 20;

/// Reads a volume and hands out its bytes with every repairable segment repaired.
/// A volume whose label declares no parity passes straight through; one whose
/// label is unreadable is searched for parity (the label may be what is damaged).
pub struct RepairingReader<R: Read> {
    inner: R,
    state: Mode,
    /// Bytes from volume offset `held_from`, not yet handed out past `handed`.
    held: Vec<u8>,
    held_from: u64,
    /// Of `held`, checked bytes (may be handed out) and bytes handed out.
    ready: usize,
    handed: usize,
    /// Of `held`, bytes already searched for descriptors (whole blocks).
    searched: usize,
    next_segment: u32,
    /// Where the last parity member found ends.
    last_member_end: Option<u64>,
    eof: bool,
    log: ParityLog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unstarted,
    Direct,
    Repairing,
}

impl<R: Read> RepairingReader<R> {
    /// Wrap a reader positioned at a volume's start.
    pub fn new(inner: R) -> RepairingReader<R> {
        RepairingReader {
            inner,
            state: Mode::Unstarted,
            held: Vec::new(),
            held_from: 0,
            ready: 0,
            handed: 0,
            searched: 0,
            next_segment: 1,
            last_member_end: None,
            eof: false,
            log: ParityLog::default(),
        }
    }

    /// What was repaired or found beyond repair since the last call.
    pub fn take_log(&mut self) -> ParityLog {
        let mut log = std::mem::take(&mut self.log);
        log.repaired = crate::restore::merge(
            log.repaired
                .into_iter()
                .map(|(at, len)| (at, at + len))
                .collect(),
        )
        .into_iter()
        .map(|(from, to)| (from, to - from))
        .collect();
        log
    }

    /// Read up to `want` more bytes into `held`; false at the end of the volume.
    fn read_more(&mut self, want: usize) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let had = self.held.len();
        self.held.resize(had + want, 0);
        let mut got = 0;
        while got < want {
            match self.inner.read(&mut self.held[had + got..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.held.truncate(had + got);
                    return Err(e);
                }
            }
        }
        self.held.truncate(had + got);
        Ok(got > 0)
    }

    /// Decide from the label whether this volume carries parity.
    fn start(&mut self) -> std::io::Result<()> {
        self.read_more(BLOCK as usize)?;
        let header: Option<&[u8; 512]> = self
            .held
            .get(..BLOCK as usize)
            .map(|b| b.try_into().expect("one block"));
        let label_size = header
            .and_then(|block| crate::volume::parse_header(block, 0).ok())
            .filter(|m| m.name == crate::volume::LABEL_MEMBER && m.size <= 64 << 10)
            .map(|m| m.size);
        let layout = match label_size {
            Some(size) => {
                self.read_more(size.div_ceil(BLOCK) as usize * BLOCK as usize)?;
                let body = self.held.get(BLOCK as usize..(BLOCK + size) as usize);
                match body.map(crate::volume::Label::decode) {
                    Some(Ok(label)) => Some(label.parity),
                    _ => None,
                }
            }
            None => None,
        };
        self.state = match layout {
            Some(None) => {
                self.ready = self.held.len();
                Mode::Direct
            }
            // Parity declared, or a label too damaged to say: look for it.
            _ => Mode::Repairing,
        };
        Ok(())
    }

    /// Hold bytes until the next segment's parity is found, then check and repair it.
    fn settle_segment(&mut self) -> std::io::Result<()> {
        loop {
            if let Some(descriptor) = self.find_descriptor() {
                return self.repair(&descriptor);
            }
            let held = self.held.len() as u64;
            if self.eof {
                self.put_end_blocks_right();
            }
            if self.eof || held > HOLD_LIMIT {
                // At the end: the last parity member and the end blocks, which nothing
                // protects, or a volume without parity after all.
                if !self.eof {
                    self.log.unrepaired.push(format!(
                        "bytes {}..{} not checked: no parity found for them",
                        self.held_from,
                        self.held_from + held
                    ));
                }
                self.ready = self.held.len();
                return Ok(());
            }
            self.read_more(READ_STEP)?;
        }
    }

    /// Search the new whole blocks of `held` for a descriptor of the next segment (or a later one).
    fn find_descriptor(&mut self) -> Option<Descriptor> {
        while self.searched + BLOCK as usize <= self.held.len() {
            let at = self.searched;
            self.searched += BLOCK as usize;
            if &self.held[at..at + MAGIC.len()] != MAGIC {
                continue;
            }
            // Wait for the whole descriptor when it is still arriving.
            if !self.eof && self.held.len() - at < Descriptor::claimed_len(&self.held[at..]) {
                self.searched = at;
                return None;
            }
            let offset = self.held_from + at as u64;
            match Descriptor::decode(&self.held[at..]) {
                Some(d)
                    if d.segment >= self.next_segment
                        && d.start >= self.held_from
                        && d.belongs_at(offset) =>
                {
                    return Some(d);
                }
                _ => {}
            }
        }
        None
    }

    fn repair(&mut self, d: &Descriptor) -> std::io::Result<()> {
        // The whole parity member (second descriptor copy included), or what the volume has.
        let need = (d.shards_end() + d.padded_len()).saturating_sub(self.held_from) as usize;
        while self.held.len() < need && self.read_more(need - self.held.len())? {}
        if d.start > self.held_from {
            self.log.unrepaired.push(format!(
                "bytes {}..{} not checked: their parity is unreadable",
                self.held_from, d.start
            ));
        }
        let shard_bytes = d.shard_bytes as usize;
        let segment =
            (d.start - self.held_from) as usize..(d.start + d.len - self.held_from) as usize;
        let originals: Vec<std::ops::Range<usize>> = (0..d.originals as usize)
            .map(|i| {
                let from = segment.start + i * shard_bytes;
                from..(from + shard_bytes).min(segment.end)
            })
            .collect();
        let shards_at = (d.shards_at() - self.held_from) as usize;
        let recovery: Vec<std::ops::Range<usize>> = (0..d.recovery as usize)
            .map(|j| shards_at + j * shard_bytes..shards_at + (j + 1) * shard_bytes)
            .collect();
        let intact = |held: &[u8], range: &std::ops::Range<usize>, hash: &[u8; HASH_BYTES]| {
            range.end <= held.len() && shard_hash(&held[range.clone()], shard_bytes) == *hash
        };
        let lost_originals: Vec<usize> = (0..originals.len())
            .filter(|&i| !intact(&self.held, &originals[i], &d.hashes[i]))
            .collect();
        let lost_recovery: Vec<usize> = (0..recovery.len())
            .filter(|&j| !intact(&self.held, &recovery[j], &d.hashes[originals.len() + j]))
            .collect();
        if !lost_originals.is_empty() {
            let available = (0..originals.len())
                .filter(|i| !lost_originals.contains(i))
                .map(|i| {
                    (
                        i,
                        padded_shard(&self.held[originals[i].clone()], shard_bytes),
                    )
                });
            let parity = (0..recovery.len())
                .filter(|j| !lost_recovery.contains(j))
                .map(|j| (j, &self.held[recovery[j].clone()]));
            let restored = (lost_originals.len() + lost_recovery.len() <= recovery.len())
                .then(|| {
                    reed_solomon_simd::decode(originals.len(), recovery.len(), available, parity)
                        .ok()
                })
                .flatten()
                .filter(|restored| {
                    lost_originals.iter().all(|i| {
                        restored
                            .get(i)
                            .is_some_and(|s| shard_hash(s, shard_bytes) == d.hashes[*i])
                    })
                });
            let Some(restored) = restored else {
                self.log.unrepaired.push(format!(
                    "bytes {}..{}: {} of {} shards and {} of {} recovery shards damaged, more than parity repairs",
                    self.held_from + originals[lost_originals[0]].start as u64,
                    self.held_from + originals[lost_originals[lost_originals.len() - 1]].end as u64,
                    lost_originals.len(),
                    originals.len(),
                    lost_recovery.len(),
                    recovery.len()
                ));
                return self.release(d);
            };
            for i in &lost_originals {
                let range = originals[*i].clone();
                self.patch(range.clone(), &restored[i][..range.len()]);
            }
        }
        // The data is whole: put the parity member right too, so the volume reads back
        // exactly as sealed (and its next check has parity to work with).
        if !lost_recovery.is_empty() {
            let encoded = reed_solomon_simd::encode(
                originals.len(),
                recovery.len(),
                originals
                    .iter()
                    .map(|range| padded_shard(&self.held[range.clone()], shard_bytes)),
            );
            if let Ok(encoded) = encoded {
                for j in lost_recovery {
                    self.patch(recovery[j].clone(), &encoded[j]);
                }
            }
        }
        let header_at = segment.end;
        self.patch(header_at..header_at + BLOCK as usize, &d.header);
        let mut copy = d.encode();
        let second = recovery.last().map_or(shards_at, |r| r.end);
        self.patch(second..second + copy.len(), &copy);
        copy.resize(shards_at - header_at - BLOCK as usize, 0);
        self.patch(header_at + BLOCK as usize..shards_at, &copy);
        self.last_member_end = Some(d.shards_end() + d.padded_len());
        self.release(d)
    }

    /// The volume ends in two zero blocks right after the last parity member.
    fn put_end_blocks_right(&mut self) {
        let Some(end) = self.last_member_end.filter(|end| *end >= self.held_from) else {
            return;
        };
        let at = (end - self.held_from) as usize;
        if self.held.len() == at + 2 * BLOCK as usize {
            self.patch(at..self.held.len(), &[0u8; 2 * BLOCK as usize]);
        }
    }

    /// Put `range` of `held` right: where it differs from `good`, overwrite it and log
    /// a repair. Bytes the volume does not have (it was cut short) are left alone.
    fn patch(&mut self, range: std::ops::Range<usize>, good: &[u8]) {
        let end = range.end.min(self.held.len());
        if range.start >= end || self.held[range.start..end] == good[..end - range.start] {
            return;
        }
        self.held[range.start..end].copy_from_slice(&good[..end - range.start]);
        self.log.repaired.push((
            self.held_from + range.start as u64,
            (end - range.start) as u64,
        ));
    }

    /// Hand out everything up to the segment's end; the next one begins there.
    fn release(&mut self, d: &Descriptor) -> std::io::Result<()> {
        self.ready = ((d.start + d.len - self.held_from) as usize).min(self.held.len());
        self.next_segment = d.segment + 1;
        Ok(())
    }
}

impl<R: Read> Read for RepairingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.state == Mode::Unstarted {
            self.start()?;
        }
        loop {
            if self.handed < self.ready {
                let n = buf.len().min(self.ready - self.handed);
                buf[..n].copy_from_slice(&self.held[self.handed..self.handed + n]);
                self.handed += n;
                return Ok(n);
            }
            // Everything checked was handed out: forget it.
            self.held.drain(..self.handed);
            self.held_from += self.handed as u64;
            self.searched = self.searched.saturating_sub(self.handed);
            (self.ready, self.handed) = (0, 0);
            match self.state {
                Mode::Direct => return self.inner.read(buf),
                _ if self.eof && self.held.is_empty() => return Ok(0),
                _ => self.settle_segment()?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeWriter;

    /// A volume with small shards (so segments are 128 KiB) over `packs` random packs.
    fn volume(layout: ParityLayout, packs: usize) -> Vec<u8> {
        let key = crate::crypto::MasterKey::random();
        let label = crate::volume::test_label(&key, Some(layout));
        let mut writer = VolumeWriter::start(Vec::new(), &label, 64 << 20, 0).expect("starts");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for number in 1..=packs {
            // Pack sizes vary so segments close at different places.
            let len = 20_000 + (number * 7919) % 45_000;
            let pack: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            writer
                .append_pack(number as u32, &pack, Vec::new())
                .expect("appends");
        }
        writer.finish(&[7u8; 3000]).expect("finishes").sink
    }

    fn read_back(stored: &[u8]) -> (Vec<u8>, ParityLog) {
        let mut reader = RepairingReader::new(stored);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("reads");
        (out, reader.take_log())
    }

    const LAYOUT: ParityLayout = ParityLayout {
        percent: 10,
        shard_bytes: 512,
    };

    #[test]
    fn every_burst_within_the_bound_is_repaired_anywhere() {
        let original = volume(LAYOUT, 40);
        assert!(original.len() as u64 > 5 * LAYOUT.segment_bytes());
        let (clean, log) = read_back(&original);
        assert_eq!(clean, original);
        assert!(log.repaired.is_empty() && log.unrepaired.is_empty());
        let bound = LAYOUT.burst_bound() as usize;
        assert_eq!(bound, 25 * 512);
        let mut at = 0;
        while at < original.len() {
            for fill in [None, Some(0u8)] {
                let mut damaged = original.clone();
                let end = (at + bound).min(damaged.len());
                for (i, byte) in damaged[at..end].iter_mut().enumerate() {
                    *byte = fill.unwrap_or(!*byte ^ (i as u8));
                }
                let (read, log) = read_back(&damaged);
                assert!(
                    read == original,
                    "burst at {at} ({fill:?}) not repaired: {:?}",
                    log.unrepaired
                );
                // Every changed byte is inside a reported repair.
                for i in (at..end).filter(|&i| damaged[i] != original[i]) {
                    let i = i as u64;
                    assert!(
                        log.repaired
                            .iter()
                            .any(|&(from, len)| (from..from + len).contains(&i)),
                        "byte {i} repaired but not reported: {:?}",
                        log.repaired
                    );
                }
            }
            at += 7919;
        }
    }

    /// The bound's proof needs every shard (original or recovery) of a segment to start
    /// at least one shard after the previous one, the short last original included.
    #[test]
    fn shards_of_a_segment_are_at_least_a_shard_apart() {
        for layout in [
            LAYOUT,
            ParityLayout {
                percent: 3,
                shard_bytes: 8192,
            },
        ] {
            let stored = volume(layout, 120);
            let mut reader = crate::volume::VolumeReader::new(&stored[..]);
            let mut segments = 0;
            while let Some(member) = reader.next_member().expect("reads") {
                if !is_parity_member(&member.name) {
                    continue;
                }
                let at = member.offset as usize;
                let d = Descriptor::decode(&stored[at..]).expect("descriptor");
                let last_original = d.start + u64::from(d.originals - 1) * u64::from(d.shard_bytes);
                assert!(d.shards_at() >= last_original + u64::from(d.shard_bytes));
                assert_eq!(
                    d.shards_end() + d.padded_len(),
                    member.offset + member.size,
                    "the member ends with the second copy"
                );
                segments += 1;
                // The worst place: from the last byte of the last whole original shard,
                // over the short one and the gap, into the recovery shards.
                let at = last_original as usize - 1;
                let mut damaged = stored.clone();
                let end = (at + layout.burst_bound() as usize).min(stored.len());
                damaged[at..end].iter_mut().for_each(|b| *b = !*b);
                assert!(read_back(&damaged).0 == stored, "segment {}", d.segment);
            }
            assert!(segments > 2);
            assert_eq!(read_back(&stored).0, stored);
        }
    }

    #[test]
    fn a_burst_one_shard_past_the_bound_is_reported_not_guessed() {
        let original = volume(LAYOUT, 40);
        let burst = LAYOUT.burst_bound() as usize + 512;
        // Mid-shard, inside the data of the third segment.
        let at = 2 * LAYOUT.segment_bytes() as usize + 10_256;
        let mut damaged = original.clone();
        damaged[at..at + burst].fill(0xA5);
        let (read, log) = read_back(&damaged);
        assert_eq!(read.len(), original.len());
        assert_eq!(log.unrepaired.len(), 1, "{:?}", log.unrepaired);
        assert!(log.unrepaired[0].contains("more than parity repairs"));
        // Only the damaged stretch differs: nothing else was touched.
        let differs: Vec<usize> = (0..read.len())
            .filter(|&i| read[i] != original[i])
            .collect();
        assert!(*differs.first().unwrap() >= at && *differs.last().unwrap() < at + burst);
    }

    #[test]
    fn a_volume_without_parity_passes_through_untouched() {
        let mut damaged = b"not a volume at all".repeat(100);
        damaged[5] = 0;
        let (read, log) = read_back(&damaged);
        assert_eq!(read, damaged);
        assert!(log.repaired.is_empty());
    }

    #[test]
    fn descriptors_decode_only_when_whole_and_intact() {
        let descriptor = Descriptor {
            segment: 3,
            start: 1024,
            len: 5000,
            shard_bytes: 512,
            originals: 10,
            recovery: 3,
            header: [1; 512],
            hashes: vec![[2; HASH_BYTES]; 13],
        };
        let bytes = descriptor.encode();
        assert_eq!(bytes.len() as u64, descriptor.padded_len());
        assert_eq!(Descriptor::decode(&bytes), Some(descriptor));
        for cut in [0, 8, 100, 600, 700] {
            assert_eq!(Descriptor::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        for flip in [0, 9, 13, 20, 30, 40, 100, 700, 770] {
            let mut bad = bytes.clone();
            bad[flip] ^= 0x10;
            assert_eq!(Descriptor::decode(&bad), None, "flip at {flip}");
        }
    }
}
