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
mod parts;
pub mod st;

use crate::console::{err, errln};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::guard as lock;
use crate::vault::{DirVault, Listing, Vault, VolumeSink};
use crate::volume::{is_volume_name, VolumeReader};
use parts::{read_label_part, PartKind, PartReader, ReadPart, TapeReader, TapeSink};
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Block size written unless `--block-size` says otherwise.
pub const DEFAULT_BLOCK_SIZE: usize = 256 << 10;

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
    /// Run to load a cartridge: `%n` is the volume sequence, `%v` the volume name (also
    /// in TAPEVAULT_SEQUENCE and TAPEVAULT_VOLUME).
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
    /// The last front-to-back read into a volume's data (ranged reads).
    cursor: Mutex<Option<Cursor>>,
}

struct Shared {
    library: Mutex<Box<dyn Library>>,
    options: TapeOptions,
    /// The cartridge in the drive already holds a volume of this run.
    loaded_used: Mutex<bool>,
    /// The volume on the cartridge in the drive, as last read or written here.
    in_drive: Mutex<Option<String>>,
    /// Counts loads and repositionings: a reader left open is still in place only
    /// while this is unchanged.
    moves: std::sync::atomic::AtomicU64,
    /// Label and index parts of the last volume reached by ranged reads.
    ranges: Mutex<Option<Reached>>,
}

/// A volume being read front to back for ranged reads into its data.
struct Cursor {
    volume: String,
    /// Volume bytes read so far.
    at: u64,
    /// [`Shared::moves`] when the reader was opened.
    moves: u64,
    reader: Box<dyn Read + Send>,
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
                moves: std::sync::atomic::AtomicU64::new(0),
                ranges: Mutex::new(None),
            }),
            cursor: Mutex::new(None),
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
        Ok(scratch_in(&self.meta.list()?))
    }
}

/// The volumes a listing of the labels folder marks scratch.
fn scratch_in(meta: &Listing) -> Vec<String> {
    meta.sealed
        .iter()
        .filter_map(|name| name.strip_prefix(SCRATCH_PREFIX).map(str::to_string))
        .collect()
}

/// A meta object naming a volume whose cartridge may be written over (pruned).
const SCRATCH_PREFIX: &str = "scratch-";

impl Shared {
    fn moves(&self) -> u64 {
        self.moves.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The tape is about to be loaded or repositioned.
    fn moving(&self) {
        self.moves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

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
            err!("tapevault: load {what} and press Enter (Ctrl-D: none left, Ctrl-C: stop): ");
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
        self.moving();
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
        let label = VolumeReader::new(&found.label[..]).read_label().ok();
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
        self.moving();
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
            errln!(
                "tapevault: waiting for {} to become ready ({} s of {} s)",
                drive.describe(),
                waited.as_secs(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

impl Vault for TapeVault {
    fn location(&self) -> &str {
        &self.address
    }

    fn list(&self) -> Result<Listing> {
        let mut listing = self.meta.list()?;
        let scratch = scratch_in(&listing);
        listing
            .sealed
            .retain(|name| !name.starts_with(SCRATCH_PREFIX));
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
        Ok(Box::new(TapeSink::new(
            self.shared.clone(),
            name,
            block_size,
        )?))
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
        Ok(Box::new(TapeReader::after_label(
            self.shared.clone(),
            name,
            label,
        )))
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
        if offset >= size {
            return Ok((size, Vec::new()));
        }
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
        // Across the data: read on from where the last such read stopped when nothing
        // moved the tape since and the range lies ahead; else from the volume's start.
        // Blobs asked for in volume order (deep verify, a rebuild's trees) so cost one
        // pass, not one rewind each.
        let mut cursor = lock(&self.cursor);
        let ahead = cursor
            .as_ref()
            .is_some_and(|c| c.volume == name && c.at <= offset && c.moves == self.shared.moves());
        if !ahead {
            let reader = self.open(name)?;
            *cursor = Some(Cursor {
                volume: name.to_string(),
                at: 0,
                moves: self.shared.moves(),
                reader,
            });
        }
        let cursor = cursor.as_mut().expect("set above");
        let cannot = |e: io::Error| Error::new(ErrorKind::Io, format!("cannot read {name}: {e}"));
        std::io::copy(
            &mut (&mut cursor.reader).take(offset - cursor.at),
            &mut std::io::sink(),
        )
        .map_err(cannot)?;
        let mut out = Vec::new();
        (&mut cursor.reader)
            .take(end - offset)
            .read_to_end(&mut out)
            .map_err(cannot)?;
        cursor.at = offset + out.len() as u64;
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
            self.shared.moving();
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
            let mut reader =
                TapeReader::after_label(self.shared.clone(), &label.volume, label.label);
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
        let index_offset = part.header.as_ref().map_or(0, |h| h.offset());
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
