//! A volume's bytes as parts on a cartridge, and back: the framing (part headers and
//! trailers), the sink that cuts a volume into parts as its members go by, and the
//! readers that give a volume's bytes back part after part.

use super::{io_error, is_enospc, lock, Drive, Shared};
use crate::console::errln;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::VolumeSink;
use crate::volume::{Member, MemberWalk, Walked, INDEX_MEMBER, LABEL_MEMBER};
use std::io::{self, Read, Write};
use std::sync::Arc;

const FRAME: usize = 512;
const PART_MAGIC: &str = "tapevault-part v1";
const TRAILER_MAGIC: &str = "tapevault-part-end v1";

/// Which part of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PartKind {
    Label,
    Data,
    Index,
}

impl PartKind {
    fn name(self) -> &'static str {
        match self {
            PartKind::Label => "label",
            PartKind::Data => "data",
            PartKind::Index => "index",
        }
    }
}

/// The 512-byte header that starts each part: checked after every positioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PartHeader {
    kind: String,
    pub(super) volume: String,
    /// Where the part begins within the volume's bytes.
    offset: u64,
}

impl PartHeader {
    /// Where the part begins in the volume's bytes.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    fn encode(&self) -> [u8; FRAME] {
        frame(&format!(
            "{PART_MAGIC}\nkind={}\nvolume={}\noffset={}\n",
            self.kind, self.volume, self.offset
        ))
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<PartHeader> {
        let fields = fields(bytes, PART_MAGIC)?;
        Some(PartHeader {
            kind: field(&fields, "kind")?.to_string(),
            volume: field(&fields, "volume")?.to_string(),
            offset: field(&fields, "offset")?.parse().ok()?,
        })
    }
}

fn frame(text: &str) -> [u8; FRAME] {
    let mut out = [0u8; FRAME];
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

fn fields<'a>(bytes: &'a [u8], magic: &str) -> Option<Vec<&'a str>> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = text.lines();
    (lines.next()? == magic).then(|| lines.collect())
}

fn field<'a>(fields: &[&'a str], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
}

fn trailer(bytes: u64) -> [u8; FRAME] {
    frame(&format!("{TRAILER_MAGIC}\nbytes={bytes}\n"))
}

fn trailer_bytes(block_end: &[u8]) -> Option<u64> {
    field(&fields(block_end, TRAILER_MAGIC)?, "bytes")?
        .parse()
        .ok()
}

/// The label part of the loaded cartridge (rewound first), `None` when it is blank.
pub(super) fn read_label_part(drive: &mut dyn Drive) -> Result<Option<ReadPart>> {
    drive
        .rewind()
        .map_err(|e| io_error(drive, "cannot rewind", e))?;
    let status = drive
        .status()
        .map_err(|e| io_error(drive, "cannot read the drive status", e))?;
    if status.at_end_of_data {
        return Ok(None);
    }
    let mut part = PartReader::new(drive, None)?;
    let Some(header) = part.header.clone() else {
        return Ok(None);
    };
    let mut label = Vec::new();
    part.read_to_end_of_part(drive, &mut label)?;
    Ok(Some(ReadPart {
        volume: header.volume,
        label,
    }))
}

pub(super) struct ReadPart {
    pub(super) volume: String,
    pub(super) label: Vec<u8>,
}

/// Reads one part block by block, holding back the last block until the filemark
/// says it is the last (its end is the trailer).
pub(super) struct PartReader {
    pub(super) header: Option<PartHeader>,
    block: Vec<u8>,
    /// The newest block read, not yet known not to be the last, and where its data starts.
    held: Option<(Vec<u8>, usize)>,
    /// Block size of this part: the drive's, or the first block's when detecting.
    expected: Option<usize>,
    /// Part bytes known to be data, not yet given out.
    ready: Vec<u8>,
    ready_at: usize,
    /// Bytes moved to `ready` so far.
    confirmed: u64,
    finished: bool,
}

impl PartReader {
    /// Start at the current position; `expect` is the kind that must be here.
    pub(super) fn new(drive: &mut dyn Drive, expect: Option<PartKind>) -> Result<PartReader> {
        let mut reader = PartReader {
            header: None,
            block: vec![0u8; drive.block_size()],
            held: None,
            expected: (!drive.detecting()).then(|| drive.block_size()),
            ready: Vec::new(),
            ready_at: 0,
            confirmed: 0,
            finished: false,
        };
        let mut first = reader.next_block(drive)?;
        if first.is_none() && expect.is_some() {
            // An extra filemark (a write stopped and resumed): tolerated once.
            first = reader.next_block(drive)?;
        }
        let Some(first) = first else {
            // Blank tape: a part with no header.
            reader.finished = true;
            return Ok(reader);
        };
        let header = PartHeader::decode(&first[..FRAME]).ok_or_else(|| {
            Error::corrupt(format!(
                "{}: no tapevault part header here{}",
                drive.describe(),
                expect
                    .map(|k| format!(" (expected the {} part)", k.name()))
                    .unwrap_or_default()
            ))
        })?;
        if let Some(kind) = expect {
            if header.kind != kind.name() {
                return Err(Error::corrupt(format!(
                    "{}: found the {} part of {} where the {} part belongs",
                    drive.describe(),
                    header.kind,
                    header.volume,
                    kind.name()
                )));
            }
        }
        reader.header = Some(header);
        reader.held = Some((first, FRAME));
        Ok(reader)
    }

    /// A part already read whole (the label part a cartridge check read).
    fn read_already(volume: &str, kind: PartKind, bytes: Vec<u8>) -> PartReader {
        PartReader {
            header: Some(PartHeader {
                kind: kind.name().into(),
                volume: volume.to_string(),
                offset: 0,
            }),
            block: Vec::new(),
            held: None,
            expected: None,
            confirmed: bytes.len() as u64,
            ready: bytes,
            ready_at: 0,
            finished: true,
        }
    }

    /// One block, `None` at a filemark. A block with a hard read error is stepped
    /// over and given as zeros: an erasure that parity may rebuild, and that otherwise
    /// costs only the blobs in it (named by restore and verify).
    fn next_block(&mut self, drive: &mut dyn Drive) -> Result<Option<Vec<u8>>> {
        match drive.read_block(&mut self.block) {
            Ok(0) => Ok(None),
            Ok(n) if self.expected == Some(n) => Ok(Some(self.block[..n].to_vec())),
            Ok(n) if self.expected.is_none() && n % 512 == 0 && n >= 2 * FRAME => {
                self.expected = Some(n);
                Ok(Some(self.block[..n].to_vec()))
            }
            Ok(n) => Err(block_size_error(drive, n)),
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                drive
                    .skip_block()
                    .map_err(|e| io_error(drive, "cannot step over an unreadable block", e))?;
                errln!(
                    "tapevault: warning: {}: a block could not be read; read on past it",
                    drive.describe()
                );
                Ok(Some(vec![0u8; self.expected.unwrap_or(self.block.len())]))
            }
            Err(err) => Err(read_error(drive, err)),
        }
    }

    /// Give out part bytes into `out`; 0 at the part's end.
    fn read(&mut self, drive: &mut dyn Drive, out: &mut [u8]) -> Result<usize> {
        while self.ready_at == self.ready.len() {
            if self.finished {
                return Ok(0);
            }
            self.ready.clear();
            self.ready_at = 0;
            match self.next_block(drive)? {
                Some(next) => {
                    if let Some((held, start)) = self.held.replace((next, 0)) {
                        self.ready.extend_from_slice(&held[start..]);
                    }
                }
                None => {
                    // The held block is the last: its end is the trailer.
                    self.finished = true;
                    let (held, start) = self.held.take().unwrap_or_default();
                    let room = held.len().saturating_sub(FRAME + start);
                    let remaining = held
                        .len()
                        .checked_sub(FRAME)
                        .and_then(|at| trailer_bytes(&held[at..]))
                        .and_then(|total| total.checked_sub(self.confirmed))
                        .filter(|remaining| *remaining as usize <= room)
                        .ok_or_else(|| {
                            Error::corrupt(format!(
                                "{}: the {} part of {} has no end: its write stopped before it finished",
                                drive.describe(),
                                self.header.as_ref().map_or("", |h| h.kind.as_str()),
                                self.header.as_ref().map_or("", |h| h.volume.as_str()),
                            ))
                        })?;
                    self.ready
                        .extend_from_slice(&held[start..start + remaining as usize]);
                }
            }
            self.confirmed += self.ready.len() as u64;
        }
        let n = (self.ready.len() - self.ready_at).min(out.len());
        out[..n].copy_from_slice(&self.ready[self.ready_at..self.ready_at + n]);
        self.ready_at += n;
        Ok(n)
    }

    pub(super) fn read_to_end_of_part(
        &mut self,
        drive: &mut dyn Drive,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = self.read(drive, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            out.extend_from_slice(&buf[..n]);
        }
    }
}

fn block_size_error(drive: &dyn Drive, found: usize) -> Error {
    // The tape is fine; the command line is not.
    Error::new(
        ErrorKind::Usage,
        format!(
            "{}: block size on tape is {found}, drive set to {}: give --block-size {found}, or leave it out to detect it",
            drive.describe(),
            drive.block_size()
        ),
    )
}

fn read_error(drive: &dyn Drive, err: io::Error) -> Error {
    if err.kind() == io::ErrorKind::InvalidData {
        return Error::usage(format!(
            "{}: {err}: give the tape's --block-size, or leave it out to detect it",
            drive.describe()
        ));
    }
    if err.raw_os_error() == Some(rustix::io::Errno::NOMEM.raw_os_error()) {
        // st's answer to a block larger than the read buffer.
        return Error::new(
            ErrorKind::Usage,
            format!(
                "{}: a block on tape is larger than the drive's {} bytes: give the tape's --block-size, or leave it out to detect it",
                drive.describe(),
                drive.block_size()
            ),
        );
    }
    io_error(drive, "cannot read", err)
}

/// Writes one part's blocks: header, data, trailer at the end of the last block.
struct PartWriter {
    block: Vec<u8>,
    bytes: u64,
}

/// The volume being written to the loaded cartridge, split into parts as its
/// members go by.
pub(super) struct TapeSink {
    shared: Arc<Shared>,
    name: String,
    block_size: usize,
    part: Option<(PartKind, PartWriter)>,
    /// Where the volume's members begin: parts are cut there.
    walk: MemberWalk,
    past_early_warning: bool,
}

impl TapeSink {
    /// Start writing volume `name` on the cartridge loaded and rewound.
    pub(super) fn new(shared: Arc<Shared>, name: &str, block_size: usize) -> Result<TapeSink> {
        let mut sink = TapeSink {
            shared,
            name: name.to_string(),
            block_size,
            part: None,
            walk: MemberWalk::default(),
            past_early_warning: false,
        };
        sink.start_part(PartKind::Label, 0)?;
        Ok(sink)
    }

    fn drive_op<T>(&self, op: impl FnOnce(&mut dyn Drive) -> Result<T>) -> Result<T> {
        let mut library = lock(&self.shared.library);
        op(library.drive()?)
    }

    fn put_block(&mut self, block: &[u8]) -> Result<()> {
        let mut early = self.past_early_warning;
        let name = self.name.clone();
        let failed = |drive: &dyn Drive, err: io::Error| {
            let why = if is_enospc(&err) {
                "end of medium (the cartridge holds less than one pack past its early warning)"
                    .to_string()
            } else {
                err.to_string()
            };
            Error::new(
                ErrorKind::MediumFailed,
                format!(
                    "{}: {why} while writing {name}: that volume is abandoned",
                    drive.describe()
                ),
            )
        };
        let result = self.drive_op(|drive| match drive.write_block(block) {
            Ok(()) => Ok(()),
            Err(err) if is_enospc(&err) => {
                // Early warning: st lets the next write through.
                early = true;
                drive.write_block(block).map_err(|err| failed(drive, err))
            }
            Err(err) => Err(failed(drive, err)),
        });
        self.past_early_warning = early;
        result
    }

    /// Start a part that begins at volume byte `offset`.
    fn start_part(&mut self, kind: PartKind, offset: u64) -> Result<()> {
        let header = PartHeader {
            kind: kind.name().into(),
            volume: self.name.clone(),
            offset,
        };
        let mut block = Vec::with_capacity(self.block_size);
        block.extend_from_slice(&header.encode());
        self.part = Some((kind, PartWriter { block, bytes: 0 }));
        Ok(())
    }

    fn end_part(&mut self) -> Result<()> {
        let Some((_, mut part)) = self.part.take() else {
            return Ok(());
        };
        if self.block_size - part.block.len() < FRAME {
            part.block.resize(self.block_size, 0);
            self.put_block(&std::mem::take(&mut part.block))?;
        }
        part.block.resize(self.block_size - FRAME, 0);
        part.block.extend_from_slice(&trailer(part.bytes));
        self.put_block(&part.block)?;
        self.drive_op(|drive| {
            drive
                .write_filemarks(1)
                .map_err(|e| io_error(drive, "cannot write a filemark", e))
        })
    }

    fn put(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (_, part) = self.part.as_mut().expect("a part is open while writing");
            let n = data.len().min(self.block_size - part.block.len());
            part.block.extend_from_slice(&data[..n]);
            part.bytes += n as u64;
            data = &data[n..];
            if part.block.len() == self.block_size {
                let block = std::mem::replace(&mut part.block, Vec::with_capacity(self.block_size));
                self.put_block(&block)?;
            }
        }
        Ok(())
    }

    /// The header of `member` (at volume byte `at`) is whole: start the part it
    /// belongs to. The end blocks (`None`) stay in the index part.
    fn member_starts(&mut self, member: Option<&Member>, at: u64) -> Result<()> {
        let Some(member) = member else {
            return Ok(());
        };
        let current = self.part.as_ref().map(|(kind, _)| *kind);
        let wanted = if member.name == INDEX_MEMBER {
            Some(PartKind::Index)
        } else if current == Some(PartKind::Label) && member.name != LABEL_MEMBER {
            Some(PartKind::Data)
        } else {
            None
        };
        if let Some(kind) = wanted.filter(|kind| Some(*kind) != current) {
            self.end_part()?;
            if kind == PartKind::Index && current == Some(PartKind::Label) {
                // A volume without packs still has its (empty) data part.
                self.start_part(PartKind::Data, at)?;
                self.end_part()?;
            }
            self.start_part(kind, at)?;
        }
        Ok(())
    }
}

impl Write for TapeSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        // The error travels whole, so a medium failure keeps its kind.
        let to_io = io::Error::other;
        while !rest.is_empty() {
            let (n, header) = match self.walk.step(rest).map_err(to_io)? {
                Walked::Data(n) => {
                    self.put(&rest[..n]).map_err(to_io)?;
                    (n, None)
                }
                Walked::Header(n, whole) => (n, whole),
            };
            rest = &rest[n..];
            // A header is written once whole, into the part it starts.
            if let Some((block, member)) = header {
                let at = self.walk.position() - block.len() as u64;
                self.member_starts(member.as_ref(), at).map_err(to_io)?;
                self.put(&block[..]).map_err(to_io)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl VolumeSink for TapeSink {
    fn seal(mut self: Box<Self>) -> Result<()> {
        if self.part.as_ref().map(|(kind, _)| *kind) != Some(PartKind::Index) {
            return Err(Error::corrupt(format!(
                "volume {} ended without an index member",
                self.name
            )));
        }
        self.end_part()?;
        // A second filemark ends the recorded data; st flushes the drive's buffer here.
        self.drive_op(|drive| {
            drive
                .write_filemarks(1)
                .map_err(|e| io_error(drive, "cannot write a filemark", e))
        })
    }

    fn past_early_warning(&self) -> bool {
        self.past_early_warning
    }
}

/// A volume read front to back from its cartridge: label, data and index parts.
pub(super) struct TapeReader {
    shared: Arc<Shared>,
    name: String,
    part: Option<(PartKind, PartReader)>,
}

impl TapeReader {
    /// Volume `name` from its cartridge, whose label part (`label`) was just read: the
    /// drive is past the label's filemark.
    pub(super) fn after_label(shared: Arc<Shared>, name: &str, label: Vec<u8>) -> TapeReader {
        TapeReader {
            shared,
            name: name.to_string(),
            part: Some((
                PartKind::Label,
                PartReader::read_already(name, PartKind::Label, label),
            )),
        }
    }

    fn next_part(&mut self) -> Result<bool> {
        let kind = match self.part.as_ref().map(|(kind, _)| *kind) {
            None => PartKind::Label,
            Some(PartKind::Label) => PartKind::Data,
            Some(PartKind::Data) => PartKind::Index,
            Some(PartKind::Index) => return Ok(false),
        };
        let mut library = lock(&self.shared.library);
        let drive = library.drive()?;
        let reader = PartReader::new(drive, Some(kind))?;
        match &reader.header {
            Some(header) if header.volume == self.name => {}
            Some(header) => {
                return Err(Error::corrupt(format!(
                    "{}: the {} part belongs to {}, not {}",
                    drive.describe(),
                    kind.name(),
                    header.volume,
                    self.name
                )))
            }
            None => {
                return Err(Error::corrupt(format!(
                    "{}: volume {} has no {} part: its write stopped before it finished",
                    drive.describe(),
                    self.name,
                    kind.name()
                )))
            }
        }
        self.part = Some((kind, reader));
        Ok(true)
    }
}

impl Read for TapeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let to_io = |err: Error| io::Error::other(err.to_string());
        loop {
            if let Some((_, part)) = self.part.as_mut() {
                let mut library = lock(&self.shared.library);
                let drive = library.drive().map_err(to_io)?;
                let n = part.read(drive, out).map_err(to_io)?;
                if n > 0 || out.is_empty() {
                    return Ok(n);
                }
            }
            if !self.next_part().map_err(to_io)? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_headers_and_trailers_round_trip_and_garbage_is_none() {
        let header = PartHeader {
            kind: "index".into(),
            volume: "tv000012-0123abcd.tar".into(),
            offset: 4_194_304,
        };
        let block = header.encode();
        assert_eq!(PartHeader::decode(&block), Some(header));
        assert_eq!(trailer_bytes(&trailer(123_456)), Some(123_456));
        // Volume bytes (a tar header, zeros, noise) are never taken for framing.
        let mut tar_header = [0u8; FRAME];
        tar_header[..9].copy_from_slice(b"label.tvl");
        for bytes in [&tar_header[..], &[0u8; FRAME][..], &[0xffu8; FRAME][..]] {
            assert_eq!(PartHeader::decode(bytes), None);
            assert_eq!(trailer_bytes(bytes), None);
        }
        let mut cut = trailer(5);
        cut[..4].copy_from_slice(b"xxxx");
        assert_eq!(trailer_bytes(&cut), None);
    }
}
