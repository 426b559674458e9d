//! Tape media: a volume per cartridge, in three parts separated by filemarks.
//!
//! A cartridge holds one volume's tar bytes, unchanged, split where its members
//! begin into parts: the label member, the data (packs and parity), and the index
//! (index, last parity member, end blocks). Each part starts with a 512-byte part
//! header (kind, volume, where the part begins in the volume) and ends with a
//! 512-byte trailer (its exact length) at the end of its last block; a filemark
//! follows each part and a second one ends the recorded data. So the label and the
//! index are reached by spacing over filemarks, without reading the data, and a
//! volume copied between tape and disk keeps its bytes and its BLAKE3.
//!
//! Drives are [`Drive`]s: the Linux `st` driver ([`st::StDrive`]) and the emulated
//! library ([`emulated::EmulatedLibrary`], `tape:DIR`) that the tests and rehearsals
//! use, with the same early-warning semantics: the write that crosses early warning
//! completes, the next answers ENOSPC, then they alternate. A volume whose write
//! met early warning is closed after the pack in flight (the index goes in the
//! reserve); a second ENOSPC in a row is the physical end, and the volume is abandoned.

pub mod emulated;
pub mod st;

use crate::error::{Error, ErrorKind, Result};
use crate::vault::{DirVault, Listing, Vault, VolumeSink};
use crate::volume::{is_volume_name, parse_header, Label, INDEX_MEMBER, LABEL_MEMBER};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Block size written unless `--block-size` says otherwise.
pub const DEFAULT_BLOCK_SIZE: usize = 256 << 10;
const FRAME: usize = 512;
const PART_MAGIC: &str = "tapevault-part v1";
const TRAILER_MAGIC: &str = "tapevault-part-end v1";

/// What a drive says about itself (`MTIOCGET`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveStatus {
    /// A cartridge is loaded and the drive is online.
    pub ready: bool,
    /// The cartridge's write-protect tab is set (or it is WORM and written).
    pub write_protected: bool,
    /// At the beginning of the tape.
    pub at_start: bool,
    /// Just past a filemark.
    pub at_filemark: bool,
    /// At the end of recorded data.
    pub at_end_of_data: bool,
    /// Past the early-warning mark.
    pub past_early_warning: bool,
    /// Loading or calibrating: not ready yet, but not empty.
    pub becoming_ready: bool,
    /// Fixed block size, `None` in variable mode.
    pub block_size: Option<usize>,
}

/// The block device interface every tape path goes through.
pub trait Drive: Send {
    /// The device or cartridge, for messages.
    fn describe(&self) -> String;
    /// Bytes per block; when detecting, the most a read takes.
    fn block_size(&self) -> usize;
    /// Fix the block size, or (`None`) take the size of the blocks found on the tape.
    fn set_block_size(&mut self, size: Option<usize>) -> io::Result<()>;
    /// The block size is taken from the tape.
    fn detecting(&self) -> bool;
    /// `MTIOCGET`.
    fn status(&mut self) -> io::Result<DriveStatus>;
    /// `MTREW`.
    fn rewind(&mut self) -> io::Result<()>;
    /// Write one whole block; ENOSPC past early warning (nothing written).
    fn write_block(&mut self, block: &[u8]) -> io::Result<()>;
    /// `MTWEOF`.
    fn write_filemarks(&mut self, count: u32) -> io::Result<()>;
    /// Read one block into `buf`; 0 at a filemark (positioned past it).
    fn read_block(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// `MTFSF`.
    fn space_filemarks(&mut self, count: u32) -> io::Result<()>;
    /// `MTFSR 1`: step over a block that cannot be read.
    fn skip_block(&mut self) -> io::Result<()>;
}

/// A place that loads cartridges into a drive.
pub trait Library: Send {
    /// The drive.
    fn drive(&mut self) -> Result<&mut dyn Drive>;
    /// Load a blank or scratch cartridge by itself (an autoloader), if it can.
    fn load_blank(&mut self, capacity: u64, scratch: &[String]) -> Result<bool>;
    /// Load the cartridge holding `volume` by itself (a library with an inventory), if it can.
    fn load_volume(&mut self, volume: &str) -> Result<bool>;
    /// The volumes on every cartridge it holds, and the incomplete ones;
    /// `None` for a lone drive, which sees only the cartridge loaded.
    fn inventory(&mut self) -> Result<Option<Listing>>;
}

/// How a run gets the next cartridge, besides what the library does by itself.
#[derive(Debug, Clone)]
pub struct TapeOptions {
    /// Fixed block size; `None`: 256 KiB for writing, the block size found on the tape for reading.
    pub block_size: Option<usize>,
    /// Run to load a cartridge: `%n` is the volume sequence, `%v` the volume name,
    /// `%i` the vault id (also in TAPEVAULT_SEQUENCE, TAPEVAULT_VOLUME, TAPEVAULT_VAULT_ID).
    pub change_volume_command: Option<String>,
    /// Write over a cartridge holding a live volume.
    pub overwrite: bool,
    /// Longest wait for a drive becoming ready, or for the change command.
    pub drive_timeout: std::time::Duration,
}

impl Default for TapeOptions {
    fn default() -> TapeOptions {
        TapeOptions {
            block_size: None,
            change_volume_command: None,
            overwrite: false,
            drive_timeout: std::time::Duration::from_secs(DEFAULT_DRIVE_TIMEOUT_SECONDS),
        }
    }
}

/// `--drive-timeout` unless given: long enough for a load, short of a cron window.
pub const DEFAULT_DRIVE_TIMEOUT_SECONDS: u64 = 600;

/// Which part of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
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
struct PartHeader {
    kind: String,
    volume: String,
    /// Where the part begins within the volume's bytes.
    offset: u64,
}

impl PartHeader {
    fn encode(&self) -> [u8; FRAME] {
        frame(&format!(
            "{PART_MAGIC}\nkind={}\nvolume={}\noffset={}\n",
            self.kind, self.volume, self.offset
        ))
    }

    fn decode(bytes: &[u8]) -> Option<PartHeader> {
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

fn io_error(drive: &dyn Drive, what: &str, err: io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("{what} on {}: {err}", drive.describe()),
    )
}

fn is_enospc(err: &io::Error) -> bool {
    err.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
}

/// A tape vault: volumes on cartridges, labels and records in a folder beside them.
pub struct TapeVault {
    address: String,
    /// Vault label, key labels and forget/prune records: small objects a tape
    /// cannot rewrite. Every cartridge's own label carries the wrapped key, so a
    /// rebuild needs only the cartridges and the passphrase.
    meta: DirVault,
    shared: Arc<Shared>,
}

struct Shared {
    library: Mutex<Box<dyn Library>>,
    options: TapeOptions,
    /// The cartridge in the drive already holds a volume of this run.
    loaded_used: Mutex<bool>,
    /// The volume on the cartridge in the drive, as last read or written here.
    in_drive: Mutex<Option<String>>,
    /// Label and index parts of the last volume reached by ranged reads.
    ranges: Mutex<Option<Reached>>,
}

/// The parts of a volume a rebuild asks for, kept between its ranged reads.
struct Reached {
    volume: String,
    label: Vec<u8>,
    index_offset: u64,
    index: Vec<u8>,
}

impl TapeVault {
    /// A vault on `library`'s cartridges, its small objects in `meta_dir`.
    pub fn new(
        address: &str,
        meta_dir: &Path,
        library: Box<dyn Library>,
        options: TapeOptions,
    ) -> TapeVault {
        TapeVault {
            address: address.to_string(),
            meta: DirVault::new(address, &meta_dir.to_string_lossy()),
            shared: Arc::new(Shared {
                library: Mutex::new(library),
                options,
                loaded_used: Mutex::new(false),
                in_drive: Mutex::new(None),
                ranges: Mutex::new(None),
            }),
        }
    }

    /// A library knows which volumes it holds whole: one it lacks, or holds unfinished
    /// or scratch, is missing without loading anything.
    fn check_held(&self, name: &str) -> Result<()> {
        let inventory = lock(&self.shared.library).inventory()?;
        match inventory {
            Some(held)
                if !held.sealed.iter().any(|n| n == name)
                    || self.scratch()?.iter().any(|n| n == name) =>
            {
                Err(Error::missing(format!(
                    "volume {name} is on no cartridge of {}{}",
                    self.address,
                    if held.partial.iter().any(|n| n == name) {
                        " (one holds it unfinished)"
                    } else {
                        ""
                    }
                )))
            }
            _ => Ok(()),
        }
    }

    fn scratch(&self) -> Result<Vec<String>> {
        Ok(self
            .meta
            .list()?
            .sealed
            .into_iter()
            .filter_map(|name| name.strip_prefix(SCRATCH_PREFIX).map(str::to_string))
            .collect())
    }
}

/// A meta object naming a volume whose cartridge may be written over (pruned).
const SCRATCH_PREFIX: &str = "scratch-";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Ask for a cartridge: the change command, else a prompt on a terminal, else fail.
    fn ask_for(&self, sequence: u64, volume: &str, what: &str) -> Result<()> {
        match self.request(sequence, volume, what)? {
            None => Ok(()),
            Some(refused) => Err(Error::new(
                ErrorKind::Io,
                format!("{refused} loading {what}"),
            )),
        }
    }

    /// Have a cartridge loaded; `Some(why)` when the changer or the operator declined
    /// (the command failed, or Ctrl-D on the terminal).
    fn request(&self, sequence: u64, volume: &str, what: &str) -> Result<Option<String>> {
        if let Some(command) = &self.options.change_volume_command {
            let line = command
                .replace("%n", &sequence.to_string())
                .replace("%v", volume);
            let cannot = |e: io::Error| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot run --change-volume-command: {e}"),
                )
            };
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&line)
                .env("TAPEVAULT_SEQUENCE", sequence.to_string())
                .env("TAPEVAULT_VOLUME", volume)
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(cannot)?;
            let deadline = std::time::Instant::now() + self.options.drive_timeout;
            let status = loop {
                if let Some(status) = child.try_wait().map_err(cannot)? {
                    break status;
                }
                if std::time::Instant::now() > deadline {
                    // A changer that hangs must not hang a cron job.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "--change-volume-command did not finish within {} s loading {what}: \
                             check the changer, or raise --drive-timeout",
                            self.options.drive_timeout.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            };
            return Ok(
                (!status.success()).then(|| format!("--change-volume-command failed ({status})"))
            );
        }
        if rustix::termios::isatty(std::io::stdin()) && rustix::termios::isatty(std::io::stderr()) {
            eprint!("tapevault: load {what} and press Enter (Ctrl-D: none left, Ctrl-C: stop): ");
            let mut line = String::new();
            let read = std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read the terminal: {e}")))?;
            return Ok((read == 0).then(|| "no cartridge was loaded (Ctrl-D)".to_string()));
        }
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "needs {what}, and nothing can load it: give --change-volume-command, or run on a terminal"
            ),
        ))
    }

    /// Load a cartridge that may be written, check it, rewind it.
    fn prepare_for_write(&self, name: &str, capacity: u64, scratch: &[String]) -> Result<()> {
        let mut library = lock(&self.library);
        let sequence = crate::volume::parse_volume_name(name).map_or(0, |(s, _)| s);
        let mut used = lock(&self.loaded_used);
        let mut loaded_here = false;
        if *used || !has_cartridge(library.as_mut(), self.options.drive_timeout)? {
            loaded_here = true;
            if !library.load_blank(capacity, scratch)? {
                self.ask_for(
                    sequence,
                    name,
                    &format!("a blank or scratch cartridge for volume #{sequence}"),
                )?;
            }
        }
        *lock(&self.in_drive) = None;
        let mut live = self.live_volume(library.drive()?, sequence, scratch)?;
        if live.is_some() && !loaded_here && library.load_blank(capacity, scratch)? {
            // An autoloader: the cartridge left in the drive is live, take a blank one.
            live = self.live_volume(library.drive()?, sequence, scratch)?;
        }
        if let Some(live) = live {
            return Err(Error::new(ErrorKind::Io, live));
        }
        let drive = library.drive()?;
        drive
            .set_block_size(Some(self.write_block_size()))
            .map_err(|e| io_error(drive, "cannot set the block size", e))?;
        drive
            .rewind()
            .map_err(|e| io_error(drive, "cannot rewind", e))?;
        *used = true;
        *lock(&self.in_drive) = Some(name.to_string());
        Ok(())
    }

    fn write_block_size(&self) -> usize {
        self.options.block_size.unwrap_or(DEFAULT_BLOCK_SIZE)
    }

    /// Check the loaded cartridge can be written: ready, not protected; `Some(why)`
    /// when it holds a live volume that --overwrite alone may replace.
    fn live_volume(
        &self,
        drive: &mut dyn Drive,
        sequence: u64,
        scratch: &[String],
    ) -> Result<Option<String>> {
        let status = settled_status(drive, self.options.drive_timeout)?;
        if !status.ready {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "no cartridge is ready in {} for volume #{sequence}",
                    drive.describe()
                ),
            ));
        }
        if status.write_protected {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "cartridge in {} is write-protected: load a writable one for volume #{sequence}",
                    drive.describe()
                ),
            ));
        }
        // Whatever wrote the cartridge, its label must be read to be judged.
        drive
            .set_block_size(None)
            .map_err(|e| io_error(drive, "cannot set the block size", e))?;
        let Some(found) = read_label_part(drive)? else {
            return Ok(None);
        };
        if scratch.contains(&found.volume) || self.options.overwrite {
            return Ok(None);
        }
        let label = Label::decode(&found.label).ok();
        Ok(Some(format!(
            "cartridge in {} holds live volume {}{}: load a blank or scratch cartridge for \
             volume #{sequence}, or give --overwrite to write over it",
            drive.describe(),
            found.volume,
            label
                .map(|l| format!(" of vault {}", l.vault_id))
                .unwrap_or_default(),
        )))
    }

    /// Load the cartridge holding `name`, check that it does, and read its label
    /// part: the drive is left just past the label's filemark. Returns the label part.
    fn prepare_for_read(&self, library: &mut dyn Library, name: &str) -> Result<Vec<u8>> {
        let sequence = crate::volume::parse_volume_name(name).map_or(0, |(s, _)| s);
        let mut in_drive = lock(&self.in_drive);
        let block_size = self.options.block_size;
        let timeout = self.options.drive_timeout;
        let read_loaded = |library: &mut dyn Library| -> Result<Option<ReadPart>> {
            if !has_cartridge(library, timeout)? {
                return Ok(None);
            }
            let drive = library.drive()?;
            drive
                .set_block_size(block_size)
                .map_err(|e| io_error(drive, "cannot set the block size", e))?;
            read_label_part(drive)
        };
        // A cartridge known to hold another volume is not read again.
        let mut found = match in_drive.as_deref() {
            Some(other) if other != name => None,
            _ => read_loaded(library)?,
        };
        if found.as_ref().is_none_or(|part| part.volume != name) {
            *in_drive = None;
            if !library.load_volume(name)? {
                self.ask_for(
                    sequence,
                    name,
                    &format!("the cartridge of volume #{sequence} ({name})"),
                )?;
            }
            found = read_loaded(library)?;
        }
        *in_drive = found.as_ref().map(|part| part.volume.clone());
        match found {
            Some(part) if part.volume == name => {
                *lock(&self.loaded_used) = true;
                Ok(part.label)
            }
            found => Err(Error::missing(format!(
                "wrong cartridge: the one in {} holds {}; needed is volume #{sequence} ({name})",
                library.drive()?.describe(),
                found
                    .as_ref()
                    .map_or("no tapevault volume", |part| part.volume.as_str())
            ))),
        }
    }
}

fn has_cartridge(library: &mut dyn Library, timeout: std::time::Duration) -> Result<bool> {
    Ok(settled_status(library.drive()?, timeout)?.ready)
}

/// The drive's status once it is no longer becoming ready (loading, calibrating a new
/// cartridge): waited for, said every 10 s, up to `timeout`. Never read as "no tape".
fn settled_status(drive: &mut dyn Drive, timeout: std::time::Duration) -> Result<DriveStatus> {
    let started = std::time::Instant::now();
    let mut said = 0;
    loop {
        let status = drive
            .status()
            .map_err(|e| io_error(drive, "cannot read the drive status", e))?;
        if !status.becoming_ready {
            return Ok(status);
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "{} is still becoming ready after {} s (a new cartridge calibrating, or a \
                     drive fault): check it, or raise --drive-timeout",
                    drive.describe(),
                    timeout.as_secs()
                ),
            ));
        }
        if waited.as_secs() / 10 >= said {
            said = waited.as_secs() / 10 + 1;
            eprintln!(
                "tapevault: waiting for {} to become ready ({} s of {} s)",
                drive.describe(),
                waited.as_secs(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The label part of the loaded cartridge (rewound first), `None` when it is blank.
fn read_label_part(drive: &mut dyn Drive) -> Result<Option<ReadPart>> {
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

struct ReadPart {
    volume: String,
    label: Vec<u8>,
}

/// Reads one part block by block, holding back the last block until the filemark
/// says it is the last (its end is the trailer).
struct PartReader {
    header: Option<PartHeader>,
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
    fn new(drive: &mut dyn Drive, expect: Option<PartKind>) -> Result<PartReader> {
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
                eprintln!(
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

    fn read_to_end_of_part(&mut self, drive: &mut dyn Drive, out: &mut Vec<u8>) -> Result<()> {
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
struct TapeSink {
    shared: Arc<Shared>,
    name: String,
    block_size: usize,
    part: Option<(PartKind, PartWriter)>,
    /// Volume bytes seen.
    position: u64,
    /// Where the next member header starts (`u64::MAX` past the end blocks).
    next_header: u64,
    header: Vec<u8>,
    past_early_warning: bool,
}

impl TapeSink {
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

    fn start_part(&mut self, kind: PartKind) -> Result<()> {
        let header = PartHeader {
            kind: kind.name().into(),
            volume: self.name.clone(),
            offset: self.position,
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

    /// A member header is complete: start the part it belongs to.
    fn member_starts(&mut self) -> Result<()> {
        let block: [u8; FRAME] = self.header[..].try_into().expect("one header");
        let at = self.position - FRAME as u64;
        if block.iter().all(|b| *b == 0) {
            // The end blocks: the rest belongs to the index part.
            self.next_header = u64::MAX;
            return Ok(());
        }
        let member = parse_header(&block, at)?;
        let current = self.part.as_ref().map(|(kind, _)| *kind);
        let wanted = if member.name == INDEX_MEMBER {
            Some(PartKind::Index)
        } else if current == Some(PartKind::Label) && member.name != LABEL_MEMBER {
            Some(PartKind::Data)
        } else {
            None
        };
        if let Some(kind) = wanted.filter(|kind| Some(*kind) != current) {
            // The header is already counted in `position`; the part starts before it.
            self.position = at;
            self.end_part()?;
            if kind == PartKind::Index && current == Some(PartKind::Label) {
                // A volume without packs still has its (empty) data part.
                self.start_part(PartKind::Data)?;
                self.end_part()?;
            }
            self.start_part(kind)?;
            self.position = at + FRAME as u64;
        }
        self.next_header = member.offset + member.size.div_ceil(512) * 512;
        Ok(())
    }
}

impl Write for TapeSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        // The error travels whole, so a medium failure keeps its kind.
        let to_io = io::Error::other;
        while !rest.is_empty() {
            if self.position < self.next_header {
                let n = rest.len().min((self.next_header - self.position) as usize);
                self.put(&rest[..n]).map_err(to_io)?;
                self.position += n as u64;
                rest = &rest[n..];
                continue;
            }
            let n = rest.len().min(FRAME - self.header.len());
            self.header.extend_from_slice(&rest[..n]);
            self.position += n as u64;
            rest = &rest[n..];
            if self.header.len() == FRAME {
                self.member_starts().map_err(to_io)?;
                let header = std::mem::take(&mut self.header);
                self.put(&header).map_err(to_io)?;
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
struct TapeReader {
    shared: Arc<Shared>,
    name: String,
    part: Option<(PartKind, PartReader)>,
}

impl TapeReader {
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

impl Vault for TapeVault {
    fn location(&self) -> &str {
        &self.address
    }

    fn list(&self) -> Result<Listing> {
        let mut listing = self.meta.list()?;
        listing
            .sealed
            .retain(|name| !name.starts_with(SCRATCH_PREFIX));
        let scratch = self.scratch()?;
        let found = lock(&self.shared.library).inventory()?;
        let Some(found) = found else {
            // A lone drive sees only the cartridge loaded: the catalog knows the rest.
            listing.volumes_unlisted = true;
            return Ok(listing);
        };
        listing.sealed.extend(
            found
                .sealed
                .into_iter()
                .filter(|name| !scratch.contains(name)),
        );
        listing.partial.extend(found.partial);
        listing.sealed.sort();
        Ok(listing)
    }

    fn create(&self, name: &str, max_len: u64) -> Result<Box<dyn VolumeSink>> {
        if !is_volume_name(name) {
            return self.meta.create(name, max_len);
        }
        self.shared
            .prepare_for_write(name, max_len, &self.scratch()?)?;
        let block_size = self.shared.write_block_size();
        let mut sink = TapeSink {
            shared: self.shared.clone(),
            name: name.to_string(),
            block_size,
            part: None,
            position: 0,
            next_header: 0,
            header: Vec::new(),
            past_early_warning: false,
        };
        sink.start_part(PartKind::Label)?;
        Ok(Box::new(sink))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        if !is_volume_name(name) {
            return self.meta.open(name);
        }
        self.check_held(name)?;
        let label = {
            let mut library = lock(&self.shared.library);
            self.shared.prepare_for_read(library.as_mut(), name)?
        };
        Ok(Box::new(TapeReader {
            shared: self.shared.clone(),
            name: name.to_string(),
            part: Some((
                PartKind::Label,
                PartReader::read_already(name, PartKind::Label, label),
            )),
        }))
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>)> {
        if !is_volume_name(name) {
            return self.meta.read_range(name, offset, len);
        }
        let mut reached = lock(&self.shared.ranges);
        if reached.as_ref().is_none_or(|r| r.volume != name) {
            self.check_held(name)?;
            *reached = Some(self.reach_ends(name)?);
        }
        let ends = reached.as_ref().expect("just reached");
        let size = ends.index_offset + ends.index.len() as u64;
        let end = offset.saturating_add(len).min(size);
        let slice = |bytes: &[u8], base: u64| {
            bytes[(offset - base) as usize..(end - base) as usize].to_vec()
        };
        if end <= ends.label.len() as u64 {
            return Ok((size, slice(&ends.label, 0)));
        }
        if offset >= ends.index_offset {
            return Ok((size, slice(&ends.index, ends.index_offset)));
        }
        drop(reached);
        // Across the data: read the volume front to back up to the range.
        let mut reader = self.open(name)?;
        std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {name}: {e}")))?;
        let mut out = Vec::new();
        reader
            .take(end - offset)
            .read_to_end(&mut out)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {name}: {e}")))?;
        Ok((size, out))
    }

    fn delete(&self, name: &str) -> Result<()> {
        if !is_volume_name(name) {
            return self.meta.delete(name);
        }
        // A tape volume is not erased: its cartridge becomes scratch, written over
        // by a later backup that finds this name on its label.
        if self.scratch()?.iter().any(|s| s == name) {
            return Ok(());
        }
        self.meta
            .create(&format!("{SCRATCH_PREFIX}{name}"), 0)?
            .seal()
    }

    fn lock_writers(&self) -> Result<crate::lock::RunLock> {
        self.meta.lock_writers()
    }

    fn sequential_only(&self) -> bool {
        lock(&self.shared.library)
            .inventory()
            .is_ok_and(|listing| listing.is_none())
    }

    fn spool(&self, folder: &Path) -> Result<DirVault> {
        self.spool_cartridges(folder)
    }

    fn describe_volume(&self, name: &str) -> String {
        let in_drive = lock(&self.shared.in_drive).clone();
        match lock(&self.shared.library).drive() {
            Ok(drive) if in_drive.as_deref() == Some(name) => {
                format!("volume {name} on {}", drive.describe())
            }
            _ => format!("volume {name} in {}", self.address),
        }
    }
}

impl TapeVault {
    /// A lone drive's rebuild: every cartridge the changer or the operator loads (in
    /// any order; `%n` counts them) is read whole into `folder`, until the command
    /// fails or Ctrl-D. Cartridges seen twice and blank ones are passed over.
    fn spool_cartridges(&self, folder: &Path) -> Result<DirVault> {
        let spooled = DirVault::new(&self.address, &folder.to_string_lossy());
        let mut seen = std::collections::HashSet::new();
        for count in 1.. {
            let what = format!("cartridge {count} of the vault (any order)");
            if let Some(why) = self.shared.request(count, "", &what)? {
                if seen.is_empty() {
                    return Err(Error::new(ErrorKind::Io, format!("{why} loading {what}")));
                }
                break;
            }
            let label = {
                let mut library = lock(&self.shared.library);
                let drive = library.drive()?;
                settled_status(drive, self.shared.options.drive_timeout)?;
                drive
                    .set_block_size(self.shared.options.block_size)
                    .map_err(|e| io_error(drive, "cannot set the block size", e))?;
                read_label_part(drive)?
            };
            let Some(label) = label.filter(|part| seen.insert(part.volume.clone())) else {
                continue;
            };
            *lock(&self.shared.in_drive) = Some(label.volume.clone());
            let mut reader = TapeReader {
                shared: self.shared.clone(),
                name: label.volume.clone(),
                part: Some((
                    PartKind::Label,
                    PartReader::read_already(&label.volume, PartKind::Label, label.label),
                )),
            };
            crate::vault::spool_one(&spooled, &label.volume, &mut reader)?;
        }
        Ok(spooled)
    }

    /// Load `name`'s cartridge and read its label and index parts, spacing over the data.
    fn reach_ends(&self, name: &str) -> Result<Reached> {
        let mut library = lock(&self.shared.library);
        let label = self.shared.prepare_for_read(library.as_mut(), name)?;
        let drive = library.drive()?;
        drive
            .space_filemarks(1)
            .map_err(|e| io_error(drive, "cannot space over the data part", e))?;
        let mut part = PartReader::new(drive, Some(PartKind::Index))?;
        let index_offset = part.header.as_ref().map_or(0, |h| h.offset);
        let mut index = Vec::new();
        part.read_to_end_of_part(drive, &mut index)?;
        Ok(Reached {
            volume: name.to_string(),
            label,
            index_offset,
            index,
        })
    }
}

/// A drive with no library: the operator (or `--change-volume-command`) loads cartridges.
struct LoneDrive {
    path: String,
    block_size: Option<usize>,
    drive: Option<st::StDrive>,
}

impl Library for LoneDrive {
    fn drive(&mut self) -> Result<&mut dyn Drive> {
        if self.drive.is_none() {
            let drive = st::StDrive::open(&self.path, self.block_size).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot open tape drive {}: {e}", self.path),
                )
            })?;
            self.drive = Some(drive);
        }
        Ok(self.drive.as_mut().expect("opened above"))
    }

    fn load_blank(&mut self, _capacity: u64, _scratch: &[String]) -> Result<bool> {
        Ok(false)
    }

    fn load_volume(&mut self, _volume: &str) -> Result<bool> {
        Ok(false)
    }

    fn inventory(&mut self) -> Result<Option<Listing>> {
        Ok(None)
    }
}

/// Is `tape:PATH` a drive (a device file) rather than an emulated library folder?
pub fn is_device(path: &str) -> bool {
    path.starts_with("/dev/")
}

/// Open `tape:PATH`: a device (`/dev/nst0`) or an emulated library folder, its labels
/// and records in `meta_dir`.
pub fn open_tape_vault(
    address: &str,
    path: &str,
    options: &TapeOptions,
    meta_dir: &Path,
) -> Result<Box<dyn Vault>> {
    if path.is_empty() {
        return Err(Error::usage(
            "vault address tape: needs a device or a folder, as in tape:/dev/nst0 or tape:/var/lib/vtl",
        ));
    }
    let library: Box<dyn Library> = if is_device(path) {
        Box::new(LoneDrive {
            path: path.to_string(),
            block_size: options.block_size,
            drive: None,
        })
    } else {
        Box::new(emulated::EmulatedLibrary::open(
            Path::new(path),
            options.block_size,
        )?)
    };
    Ok(Box::new(TapeVault::new(
        address,
        meta_dir,
        library,
        options.clone(),
    )))
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
