//! The Linux SCSI tape driver (`st`, `/dev/nstN`): the only `unsafe` in the crate.
//!
//! Two ioctls reach the drive: `MTIOCTOP` (rewind, write filemarks, space, set the
//! block size) and `MTIOCGET` (status). Data moves with plain `read`/`write` of one
//! block each. The encoding of both (opcodes, `struct mtop`, the `mt_gstat` bits) is
//! plain code with unit tests, so it is checked without a drive.

// The two ioctls below are the crate's only unsafe code; each says why it is sound.
#![allow(unsafe_code)]

use super::{Drive, DriveStatus};
use rustix::ioctl::{opcode, Getter, Opcode, Setter};
use std::fs::File;
use std::io::{self, Read, Write};

/// `struct mtop` of `<linux/mtio.h>`: one operation and its count.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtOp {
    /// The operation (`MTREW`, `MTWEOF`, ...).
    pub op: i16,
    /// How many times, or the block size for `MTSETBLK`.
    pub count: i32,
}

/// `struct mtget` of `<linux/mtio.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MtGet {
    mt_type: libc_long,
    mt_resid: libc_long,
    /// Block size (low 24 bits) and density (high 8 bits).
    pub dsreg: libc_long,
    /// Generic status bits (`GMT_*`).
    pub gstat: libc_long,
    mt_erreg: libc_long,
    /// File number (filemarks passed since the beginning of tape).
    pub fileno: i32,
    /// Block number within the file.
    pub blkno: i32,
}

#[allow(non_camel_case_types)]
type libc_long = std::ffi::c_long;

/// `MTIOCTOP = _IOW('m', 1, struct mtop)`.
pub const MTIOCTOP: Opcode = opcode::write::<MtOp>(b'm', 1);
/// `MTIOCGET = _IOR('m', 2, struct mtget)`.
pub const MTIOCGET: Opcode = opcode::read::<MtGet>(b'm', 2);

/// Forward space over filemarks.
pub const MTFSF: i16 = 1;
/// Forward space over records (blocks): how a hard read error is stepped over.
pub const MTFSR: i16 = 3;
/// Write filemarks.
pub const MTWEOF: i16 = 5;
/// Rewind.
pub const MTREW: i16 = 6;
/// Set the block size (0 = variable).
pub const MTSETBLK: i16 = 20;

const GMT_EOF: u64 = 0x8000_0000;
const GMT_BOT: u64 = 0x4000_0000;
const GMT_EOT: u64 = 0x2000_0000;
const GMT_EOD: u64 = 0x0800_0000;
const GMT_WR_PROT: u64 = 0x0400_0000;
const GMT_ONLINE: u64 = 0x0100_0000;
const GMT_DR_OPEN: u64 = 0x0004_0000;
const MT_ST_BLKSIZE_MASK: u64 = 0x00ff_ffff;

/// Decode `MTIOCGET`'s answer.
pub fn decode_status(get: &MtGet) -> DriveStatus {
    let bits = get.gstat as u64;
    let block = get.dsreg as u64 & MT_ST_BLKSIZE_MASK;
    DriveStatus {
        ready: bits & GMT_ONLINE != 0 && bits & GMT_DR_OPEN == 0,
        write_protected: bits & GMT_WR_PROT != 0,
        at_start: bits & GMT_BOT != 0,
        at_filemark: bits & GMT_EOF != 0,
        at_end_of_data: bits & GMT_EOD != 0,
        past_early_warning: bits & GMT_EOT != 0,
        // Offline with the door shut: a cartridge loading or calibrating.
        becoming_ready: bits & GMT_ONLINE == 0 && bits & GMT_DR_OPEN == 0,
        block_size: (block != 0).then_some(block as usize),
    }
}

/// A real drive: `/dev/nstN` (non-rewinding, so positions survive between calls).
pub struct StDrive {
    path: String,
    file: File,
    block_size: usize,
    detecting: bool,
}

/// The largest block a read in variable mode takes when detecting the size.
const LARGEST_BLOCK: usize = 4 << 20;

impl StDrive {
    /// Open the device with a fixed block size, or `None` to detect it.
    pub fn open(path: &str, block_size: Option<usize>) -> io::Result<StDrive> {
        let file = File::options().read(true).write(true).open(path)?;
        let mut drive = StDrive {
            path: path.to_string(),
            file,
            block_size: LARGEST_BLOCK,
            detecting: true,
        };
        drive.set_block_size(block_size)?;
        Ok(drive)
    }

    fn op(&mut self, op: i16, count: i32) -> io::Result<()> {
        // SAFETY: MTIOCTOP takes a pointer to a `struct mtop`, which `MtOp` lays out
        // exactly (repr(C): a short, padding, an int); the kernel only reads it.
        unsafe {
            rustix::ioctl::ioctl(
                &self.file,
                Setter::<MTIOCTOP, MtOp>::new(MtOp { op, count }),
            )
        }
        .map_err(io::Error::from)
    }
}

impl Drive for StDrive {
    fn describe(&self) -> String {
        self.path.clone()
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn set_block_size(&mut self, size: Option<usize>) -> io::Result<()> {
        // Variable mode (0) reads each block whole, whatever its size.
        self.op(MTSETBLK, size.unwrap_or(0) as i32)?;
        self.block_size = size.unwrap_or(LARGEST_BLOCK);
        self.detecting = size.is_none();
        Ok(())
    }

    fn detecting(&self) -> bool {
        self.detecting
    }

    fn status(&mut self) -> io::Result<DriveStatus> {
        // SAFETY: MTIOCGET writes one `struct mtget`, which `MtGet` lays out exactly
        // (repr(C): five longs, two ints); the getter reads it only after success.
        let get = unsafe { rustix::ioctl::ioctl(&self.file, Getter::<MTIOCGET, MtGet>::new()) }
            .map_err(io::Error::from)?;
        Ok(decode_status(&get))
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.op(MTREW, 1)
    }

    fn write_block(&mut self, block: &[u8]) -> io::Result<()> {
        let written = self.file.write(block)?;
        if written == block.len() {
            Ok(())
        } else {
            // The write that crosses early warning may be short in variable mode;
            // in fixed mode st writes whole blocks or none.
            Err(io::Error::from_raw_os_error(libc_enospc()))
        }
    }

    fn write_filemarks(&mut self, count: u32) -> io::Result<()> {
        self.op(MTWEOF, count as i32)
    }

    fn read_block(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // st answers a read of a block larger than the buffer with ENOMEM; of a
        // different fixed size with EIO (see the caller's block-size check).
        self.file.read(buf)
    }

    fn space_filemarks(&mut self, count: u32) -> io::Result<()> {
        self.op(MTFSF, count as i32)
    }

    fn skip_block(&mut self) -> io::Result<()> {
        self.op(MTFSR, 1)
    }
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_linux_mtio_h() {
        // _IOW('m', 1, struct mtop) and _IOR('m', 2, struct mtget) on x86_64/aarch64.
        assert_eq!(std::mem::size_of::<MtOp>(), 8);
        assert_eq!(std::mem::size_of::<MtGet>(), 48);
        assert_eq!(MTIOCTOP, 0x4008_6d01);
        assert_eq!(MTIOCGET, 0x8030_6d02);
    }

    #[test]
    fn status_bits_decode() {
        let get = MtGet {
            gstat: (GMT_ONLINE | GMT_BOT | GMT_WR_PROT) as libc_long,
            dsreg: (0x4400_0000 | (256 << 10)) as libc_long,
            ..MtGet::default()
        };
        let status = decode_status(&get);
        assert!(status.ready && status.write_protected && status.at_start);
        assert!(!status.at_end_of_data && !status.past_early_warning);
        assert_eq!(status.block_size, Some(256 << 10));
        let open_door = MtGet {
            gstat: (GMT_ONLINE | GMT_DR_OPEN) as libc_long,
            ..MtGet::default()
        };
        assert!(!decode_status(&open_door).ready);
        let variable = MtGet {
            gstat: (GMT_ONLINE | GMT_EOT | GMT_EOD | GMT_EOF) as libc_long,
            ..MtGet::default()
        };
        let status = decode_status(&variable);
        assert_eq!(status.block_size, None);
        assert!(status.past_early_warning && status.at_end_of_data && status.at_filemark);
    }
}
