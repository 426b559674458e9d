//! The emulated tape library (`tape:DIR`): what the tests and rehearsals drive.
//!
//! DIR holds one file per cartridge (`NAME.cart`), the name of the cartridge in the
//! drive (`drive`: a change command loads one by writing its name there), fault
//! knobs (`library.json`), the drive's log of loads, rewinds, spacing and blocks
//! read (`drive.log`), and `vault/` with the vault's labels and records.
//!
//! A cartridge file is its capacity and early-warning position, then its records
//! in order: a block (`B`, length, bytes) or a filemark (`F`). Writing is strictly
//! sequential and drops everything after the write position, as on tape; past early
//! warning the st answers come back: the crossing write completes, then ENOSPC and
//! success alternate until the physical end, where every write is ENOSPC.

use super::{Drive, DriveStatus, Library, DEFAULT_BLOCK_SIZE};
use crate::error::{at, Error, Result};
use crate::vault::Listing;
use serde::Deserialize;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const CARTRIDGE_MAGIC: &[u8; 8] = b"TVCART1\n";
const HEAD_BYTES: u64 = 24;

/// Fault knobs, from `DIR/library.json` (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Capacity of new blank cartridges in bytes [default: from the volume size].
    pub capacity: Option<u64>,
    /// Bytes between early warning and the physical end [default: 1/16 of the volume size].
    pub early_warning: Option<u64>,
    /// Cartridges whose write-protect tab is set.
    #[serde(default)]
    pub write_protected: Vec<String>,
    /// Load blank cartridges and find volumes by barcode [default: true]; false is a
    /// lone drive that only `--change-volume-command` or an operator loads, and that
    /// cannot list the cartridges it does not hold.
    pub autoload: Option<bool>,
    /// Blocks that give a hard read error (EIO), as `[cartridge, block number]`.
    #[serde(default)]
    pub read_errors: Vec<(String, usize)>,
    /// Blocks whose write fails (EIO, a MEDIUM ERROR), as `[cartridge, block number]`.
    #[serde(default)]
    pub write_errors: Vec<(String, usize)>,
    /// Blocks stored with one bit flipped, silently (a drive writing wrong).
    #[serde(default)]
    pub corrupt_writes: Vec<(String, usize)>,
    /// Seconds the drive answers "becoming ready" after it is opened (calibration).
    #[serde(default)]
    pub becoming_ready_seconds: u64,
}

/// One record on a cartridge.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Offset of its data in the file; `None` for a filemark.
    data_at: Option<u64>,
    len: u32,
}

/// The drive and the cartridge in it.
pub struct EmulatedDrive {
    dir: PathBuf,
    /// Block size asked for; `None`: detected from the tape for reading.
    fixed: Option<usize>,
    detected: usize,
    loaded: Option<Loaded>,
    /// `DIR/drive` was read before: a change to it is a load.
    followed: bool,
    /// When the drive was opened (for `becoming_ready_seconds`).
    opened: std::time::Instant,
    knobs: Knobs,
}

struct Loaded {
    name: String,
    file: File,
    capacity: u64,
    early_warning_at: u64,
    records: Vec<Record>,
    /// Index of the next record.
    position: usize,
    /// Bytes of blocks before the position.
    written: u64,
    /// Past early warning: the last write was refused (so the next one goes through).
    refused_last: bool,
}

impl EmulatedDrive {
    fn log(&self, line: &str) {
        let path = self.dir.join("drive.log");
        if let Ok(mut log) = File::options().create(true).append(true).open(path) {
            let _ = writeln!(log, "{line}");
        }
    }

    /// Follow `DIR/drive`: a change command may have loaded another cartridge.
    fn follow(&mut self) -> io::Result<()> {
        let wanted = match std::fs::read_to_string(self.dir.join("drive")) {
            Ok(text) => Some(text.trim().to_string()).filter(|n| !n.is_empty()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        if wanted.as_deref() == self.loaded.as_ref().map(|l| l.name.as_str()) {
            self.followed = true;
            return Ok(());
        }
        self.loaded = None;
        if let Some(name) = wanted {
            match open_cartridge(&self.dir, &name) {
                Ok(loaded) => {
                    // A cartridge found in the drive at start is not a load.
                    let verb = if self.followed { "load" } else { "in-drive" };
                    self.log(&format!("{verb} {name}"));
                    self.loaded = Some(loaded);
                    self.detect();
                }
                // A name with no cartridge: an empty drive.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        self.followed = true;
        Ok(())
    }

    fn detect(&mut self) {
        self.detected = self
            .loaded
            .as_ref()
            .and_then(|l| l.records.iter().find(|r| r.data_at.is_some()))
            .map_or(DEFAULT_BLOCK_SIZE, |r| r.len as usize);
    }

    fn cartridge(&mut self) -> io::Result<&mut Loaded> {
        self.follow()?;
        self.loaded
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cartridge in the drive"))
    }
}

fn cartridge_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.cart"))
}

fn open_cartridge(dir: &Path, name: &str) -> io::Result<Loaded> {
    let mut file = File::options()
        .read(true)
        .write(true)
        .open(cartridge_path(dir, name))?;
    let mut head = [0u8; HEAD_BYTES as usize];
    file.read_exact(&mut head)?;
    if &head[..8] != CARTRIDGE_MAGIC {
        return Err(io::Error::other(format!(
            "{name}.cart is not an emulated cartridge"
        )));
    }
    let capacity = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    let early_warning_at = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
    let mut records = Vec::new();
    let end = file.metadata()?.len();
    let mut at = HEAD_BYTES;
    let mut tag = [0u8; 5];
    while at + 5 <= end {
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut tag)?;
        let len = u32::from_le_bytes(tag[1..5].try_into().expect("4 bytes"));
        match tag[0] {
            b'F' => records.push(Record {
                data_at: None,
                len: 0,
            }),
            b'B' if at + 5 + u64::from(len) <= end => records.push(Record {
                data_at: Some(at + 5),
                len,
            }),
            // A torn last record: the write never completed.
            _ => break,
        }
        at += 5 + records.last().map_or(0, |r| u64::from(r.len));
    }
    Ok(Loaded {
        name: name.to_string(),
        file,
        capacity,
        early_warning_at,
        records,
        position: 0,
        written: 0,
        refused_last: false,
    })
}

fn create_cartridge(
    dir: &Path,
    name: &str,
    capacity: u64,
    early_warning_at: u64,
) -> io::Result<()> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(cartridge_path(dir, name))?;
    file.write_all(CARTRIDGE_MAGIC)?;
    file.write_all(&capacity.to_le_bytes())?;
    file.write_all(&early_warning_at.to_le_bytes())?;
    file.sync_all()
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())
}

impl Loaded {
    fn file_end_of_records(&self) -> u64 {
        let mut end = HEAD_BYTES;
        for record in &self.records {
            end += 5 + u64::from(record.len) * u64::from(record.data_at.is_some());
        }
        end
    }

    fn append(&mut self, tag: u8, data: &[u8]) -> io::Result<()> {
        // Writing on tape drops everything after the write position.
        self.records.truncate(self.position);
        let at = self.file_end_of_records();
        self.file.set_len(at)?;
        self.file.seek(SeekFrom::Start(at))?;
        let mut record = Vec::with_capacity(5 + data.len());
        record.push(tag);
        record.extend_from_slice(&(data.len() as u32).to_le_bytes());
        record.extend_from_slice(data);
        self.file.write_all(&record)?;
        self.records.push(Record {
            data_at: (tag == b'B').then_some(at + 5),
            len: data.len() as u32,
        });
        self.position += 1;
        self.written += data.len() as u64;
        Ok(())
    }
}

impl Drive for EmulatedDrive {
    fn describe(&self) -> String {
        match &self.loaded {
            Some(loaded) => format!("cartridge {} of tape:{}", loaded.name, self.dir.display()),
            None => format!("the drive of tape:{}", self.dir.display()),
        }
    }

    fn block_size(&self) -> usize {
        self.fixed.unwrap_or(self.detected)
    }

    fn set_block_size(&mut self, size: Option<usize>) -> io::Result<()> {
        self.fixed = size;
        Ok(())
    }

    fn detecting(&self) -> bool {
        self.fixed.is_none()
    }

    fn status(&mut self) -> io::Result<DriveStatus> {
        if self.opened.elapsed().as_secs() < self.knobs.becoming_ready_seconds {
            return Ok(DriveStatus {
                becoming_ready: true,
                ..DriveStatus::default()
            });
        }
        self.follow()?;
        let protected = |name: &str| self.knobs.write_protected.iter().any(|p| p == name);
        Ok(match &self.loaded {
            None => DriveStatus::default(),
            Some(loaded) => DriveStatus {
                ready: true,
                write_protected: protected(&loaded.name),
                at_start: loaded.position == 0,
                at_filemark: loaded.position > 0
                    && loaded.records[loaded.position - 1].data_at.is_none(),
                at_end_of_data: loaded.position == loaded.records.len(),
                past_early_warning: loaded.written >= loaded.early_warning_at,
                becoming_ready: false,
                block_size: Some(self.block_size()),
            },
        })
    }

    fn rewind(&mut self) -> io::Result<()> {
        let loaded = self.cartridge()?;
        loaded.position = 0;
        loaded.written = 0;
        loaded.refused_last = false;
        let name = loaded.name.clone();
        self.detect();
        self.log(&format!("rewind {name}"));
        Ok(())
    }

    fn write_block(&mut self, block: &[u8]) -> io::Result<()> {
        if self.status()?.write_protected {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::ROFS.raw_os_error(),
            ));
        }
        let loaded = self.cartridge()?;
        if loaded.written + block.len() as u64 > loaded.capacity {
            return Err(enospc());
        }
        // The write that crosses early warning completes; after it, ENOSPC and
        // success alternate.
        if loaded.written >= loaded.early_warning_at {
            loaded.refused_last = !loaded.refused_last;
            if loaded.refused_last {
                let line = format!("early-warning {} {}", loaded.name, loaded.position);
                self.log(&line);
                return Err(enospc());
            }
        }
        let place = (loaded.name.clone(), loaded.position);
        if self.knobs.write_errors.contains(&place) {
            self.log(&format!("write-error {} {}", place.0, place.1));
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::IO.raw_os_error(),
            ));
        }
        let loaded = self.loaded.as_mut().expect("loaded above");
        if self.knobs.corrupt_writes.contains(&place) {
            let mut flipped = block.to_vec();
            flipped[block.len() / 2] ^= 0x10;
            return loaded.append(b'B', &flipped);
        }
        loaded.append(b'B', block)
    }

    fn write_filemarks(&mut self, count: u32) -> io::Result<()> {
        let loaded = self.cartridge()?;
        for _ in 0..count {
            loaded.append(b'F', &[])?;
        }
        loaded.file.sync_data()
    }

    fn read_block(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let loaded = self.cartridge()?;
        let Some(record) = loaded.records.get(loaded.position).copied() else {
            return Err(io::Error::other("end of recorded data (blank check)"));
        };
        let (name, position) = (loaded.name.clone(), loaded.position);
        if self.knobs.read_errors.contains(&(name.clone(), position)) {
            // As st: the block is not passed; MTFSR 1 steps over it.
            self.log(&format!("read-error {name} {position}"));
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::IO.raw_os_error(),
            ));
        }
        let loaded = self.loaded.as_mut().expect("checked above");
        loaded.position += 1;
        let Some(data_at) = record.data_at else {
            self.log(&format!("filemark {name} {position}"));
            return Ok(0);
        };
        let len = record.len as usize;
        if len > buf.len() {
            // st says ENOMEM and nothing more; the emulation names the size.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("block size on tape is {len}, drive set to {}", buf.len()),
            ));
        }
        loaded.file.seek(SeekFrom::Start(data_at))?;
        loaded.file.read_exact(&mut buf[..len])?;
        self.log(&format!("read {name} {position}"));
        Ok(len)
    }

    fn space_filemarks(&mut self, count: u32) -> io::Result<()> {
        let loaded = self.cartridge()?;
        let mut left = count;
        while left > 0 {
            let record = loaded
                .records
                .get(loaded.position)
                .copied()
                .ok_or_else(|| io::Error::other("end of recorded data while spacing"))?;
            loaded.position += 1;
            loaded.written += u64::from(record.len);
            if record.data_at.is_none() {
                left -= 1;
            }
        }
        let line = format!("space {} {count}", loaded.name);
        self.log(&line);
        Ok(())
    }

    fn skip_block(&mut self) -> io::Result<()> {
        let loaded = self.cartridge()?;
        loaded.position = (loaded.position + 1).min(loaded.records.len());
        let line = format!("skip {} {}", loaded.name, loaded.position - 1);
        self.log(&line);
        Ok(())
    }
}

/// An autoloader with unlimited blank cartridges and a barcode reader (it finds a
/// volume's cartridge without loading each one).
pub struct EmulatedLibrary {
    drive: EmulatedDrive,
}

impl EmulatedLibrary {
    /// The library in `dir`; `block_size` fixed, or `None` to detect it when reading.
    pub fn open(dir: &Path, block_size: Option<usize>) -> Result<EmulatedLibrary> {
        let knobs_path = dir.join("library.json");
        let knobs = match std::fs::read(&knobs_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::usage(format!("{}: {e}", knobs_path.display())))?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Knobs::default(),
            Err(err) => return Err(Error::io("cannot read", &knobs_path, err)),
        };
        Ok(EmulatedLibrary {
            drive: EmulatedDrive {
                dir: dir.to_path_buf(),
                fixed: block_size,
                detected: DEFAULT_BLOCK_SIZE,
                loaded: None,
                followed: false,
                opened: std::time::Instant::now(),
                knobs,
            },
        })
    }

    fn dir(&self) -> &Path {
        &self.drive.dir
    }

    fn cartridges(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.dir()).map_err(at("cannot list", self.dir()))? {
            let entry = entry.map_err(at("cannot list", self.dir()))?;
            if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".cart"))
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// What the barcode reader knows: the volume on a cartridge (from its first
    /// block's part header) and whether its recorded data ends with two filemarks.
    fn scan(&self, name: &str) -> Result<Option<(String, bool)>> {
        let path = cartridge_path(self.dir(), name);
        let loaded =
            open_cartridge(self.dir(), name).map_err(|e| Error::io("cannot read", &path, e))?;
        let Some(first) = loaded
            .records
            .first()
            .and_then(|r| r.data_at.map(|at| (at, r.len)))
        else {
            return Ok(None);
        };
        let mut head = vec![0u8; (first.1 as usize).min(512)];
        let mut file = &loaded.file;
        file.seek(SeekFrom::Start(first.0))
            .map_err(|e| Error::io("cannot read", &path, e))?;
        file.read_exact(&mut head)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        let Some(header) = super::parts::PartHeader::decode(&head) else {
            return Ok(None);
        };
        let marks = loaded
            .records
            .iter()
            .filter(|r| r.data_at.is_none())
            .count();
        let ends = loaded.records.len() >= 2
            && loaded.records[loaded.records.len() - 2..]
                .iter()
                .all(|r| r.data_at.is_none());
        Ok(Some((header.volume, marks >= 4 && ends)))
    }

    fn load(&mut self, name: &str) -> Result<()> {
        let path = self.dir().join("drive");
        std::fs::write(&path, format!("{name}\n"))
            .map_err(|e| Error::io("cannot load", &path, e))?;
        self.drive
            .follow()
            .map_err(|e| Error::io("cannot load", &cartridge_path(self.dir(), name), e))
    }
}

impl Library for EmulatedLibrary {
    fn drive(&mut self) -> Result<&mut dyn Drive> {
        Ok(&mut self.drive)
    }

    fn load_blank(&mut self, capacity: u64, scratch: &[String]) -> Result<bool> {
        if self.drive.knobs.autoload == Some(false) {
            return Ok(false);
        }
        for name in self.cartridges()? {
            let reusable = match self.scan(&name)? {
                None => true,
                Some((volume, _)) => scratch.contains(&volume),
            };
            let loaded = self.drive.loaded.as_ref().is_some_and(|l| l.name == name);
            if reusable && !loaded {
                self.load(&name)?;
                return Ok(true);
            }
        }
        let number = self.cartridges()?.len() + 1;
        let name = format!("tape-{number:04}");
        let knobs = &self.drive.knobs;
        // A cartridge a little larger than the volume: the early-warning zone holds a
        // pack in flight and the index; the framing blocks fit before it.
        let slack = 16 * DEFAULT_BLOCK_SIZE as u64;
        let zone = knobs.early_warning.unwrap_or(capacity / 16 + slack);
        let total = knobs
            .capacity
            .unwrap_or(capacity + capacity / 16 + 2 * slack);
        create_cartridge(self.dir(), &name, total, total.saturating_sub(zone))
            .map_err(|e| Error::io("cannot create", &cartridge_path(self.dir(), &name), e))?;
        self.load(&name)?;
        Ok(true)
    }

    fn load_volume(&mut self, volume: &str) -> Result<bool> {
        if self.drive.knobs.autoload == Some(false) {
            return Ok(false);
        }
        for name in self.cartridges()? {
            if self.scan(&name)?.is_some_and(|(found, _)| found == volume) {
                self.load(&name)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn inventory(&mut self) -> Result<Option<Listing>> {
        if self.drive.knobs.autoload == Some(false) {
            // A drive without a library sees only the cartridge loaded.
            return Ok(None);
        }
        let mut listing = Listing::default();
        for name in self.cartridges()? {
            match self.scan(&name)? {
                Some((volume, true)) => listing.sealed.push(volume),
                Some((volume, false)) => listing.partial.push(volume),
                None => {}
            }
        }
        Ok(Some(listing))
    }
}

/// Make the folders of a new emulated library (for `init`).
pub fn create_library(dir: &Path) -> Result<()> {
    let meta = dir.join("vault");
    std::fs::create_dir_all(&meta).map_err(at("cannot create", &meta))?;
    Ok(())
}
