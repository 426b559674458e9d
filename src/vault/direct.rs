//! A dir vault's volumes go between memory and a local disk without the page cache
//! (O_DIRECT).
//!
//! Volumes are streamed once and read back rarely. Through the page cache each byte
//! costs a copy and a fresh page of the kernel's, and on a virtual machine whose free
//! memory goes back to the host (this project's benchmark machine: Firecracker, free
//! page reporting) a fresh page costs far more: 550 MB took 2.3 s of system time to
//! write and 1.6 s to read through the cache, against 0.2 s and 0.06 s direct. A
//! nightly volume also pushed a server's working set out of memory for data nobody
//! reads soon, and a drill right after the backup read the cache, not the disk.
//!
//! O_DIRECT wants aligned buffers, offsets and lengths, so reading and writing go in
//! whole aligned blocks. It is used only on ext4, XFS and btrfs; elsewhere (NFS, ZFS,
//! FUSE, tmpfs) the same code goes through the page cache.

use std::fs::File;
use std::io::{Read, Result};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Alignment O_DIRECT wants of a buffer, a file offset and a length (every logical block
/// size in use divides it).
pub const DIRECT_ALIGN: usize = 4096;

/// Bytes moved by each read or write of a volume: O_DIRECT wants large ones, since each
/// waits for the disk.
pub const BLOCK: usize = 4 << 20;

/// Blocks a reader keeps: one being read from the disk, one or two waiting, one being
/// consumed.
const BLOCKS_AHEAD: usize = 4;

/// A buffer of `BLOCK` bytes starting at a `DIRECT_ALIGN` boundary.
pub struct Aligned {
    room: Vec<u8>,
    start: usize,
}

impl Aligned {
    pub fn new() -> Aligned {
        let room = vec![0; BLOCK + DIRECT_ALIGN];
        let start = room.as_ptr().align_offset(DIRECT_ALIGN);
        Aligned { room, start }
    }

    pub fn get(&self) -> &[u8] {
        &self.room[self.start..self.start + BLOCK]
    }

    pub fn get_mut(&mut self) -> &mut [u8] {
        &mut self.room[self.start..self.start + BLOCK]
    }
}

/// Set O_DIRECT on `file` if it is on a local disk's file system that takes it; says
/// whether it did. Set after opening: an O_DIRECT open refused may have made the file.
pub fn go_direct(file: &File) -> bool {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    on_local_disk(file)
        && fcntl_getfl(file).is_ok_and(|flags| fcntl_setfl(file, flags | OFlags::DIRECT).is_ok())
}

/// Is `file` on ext4, XFS or btrfs? O_DIRECT is the disk's own speed there; on a
/// network file system every write would wait for the server, and elsewhere (ZFS,
/// FUSE, tmpfs) it is ignored, emulated or refused.
pub(super) fn on_local_disk(file: &File) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const BTRFS: u64 = 0x9123_683E;
    rustix::fs::fstatfs(file).is_ok_and(|fs| [EXT4, XFS, BTRFS].contains(&(fs.f_type as u64)))
}

/// Clear O_DIRECT on `file`: what is read or written next goes through the page cache.
pub fn through_cache(file: &File) -> Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(file)?;
    Ok(fcntl_setfl(file, flags.difference(OFlags::DIRECT))?)
}

/// Is this the error of a file system that took O_DIRECT but not this read or write?
pub fn refused_direct(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINVAL)
}

/// A sealed volume read front to back a few blocks ahead, on a thread of its own, so
/// that the disk's waits overlap the decoding.
pub struct AheadReader {
    /// Blocks read, with their length; `None` once the file's end is reached.
    full: Receiver<Result<Option<(Aligned, usize)>>>,
    /// Blocks consumed, handed back to be read into again.
    spent: SyncSender<Aligned>,
    current: Option<(Aligned, usize)>,
    consumed: usize,
    ended: bool,
}

impl AheadReader {
    /// Read `file` from its start, directly from the disk where `go_direct` allows.
    pub fn new(file: File) -> Result<AheadReader> {
        let direct = go_direct(&file);
        let (full_tx, full) = sync_channel(BLOCKS_AHEAD);
        let (spent, spent_rx) = sync_channel(BLOCKS_AHEAD);
        for _ in 0..BLOCKS_AHEAD {
            spent
                .send(Aligned::new())
                .expect("the receiver is held here");
        }
        std::thread::Builder::new()
            .name("volume-read".into())
            .spawn(move || read_ahead(&file, direct, &full_tx, &spent_rx))?;
        Ok(AheadReader {
            full,
            spent,
            current: None,
            consumed: 0,
            ended: false,
        })
    }
}

/// The reading thread: fill each block handed back, in file order, until the end, an
/// error, or the reader is dropped.
fn read_ahead(
    file: &File,
    mut direct: bool,
    full: &SyncSender<Result<Option<(Aligned, usize)>>>,
    spent: &Receiver<Aligned>,
) {
    let mut offset = 0u64;
    while let Ok(mut block) = spent.recv() {
        let filled = fill(file, &mut direct, block.get_mut(), offset);
        let sent = match filled {
            Ok(0) => full.send(Ok(None)),
            Ok(len) => {
                offset += len as u64;
                full.send(Ok(Some((block, len))))
            }
            Err(err) => {
                let _ = full.send(Err(err));
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Read into `block` from `offset` until it is full or the file ends; the bytes read.
fn fill(file: &File, direct: &mut bool, block: &mut [u8], offset: u64) -> Result<usize> {
    let mut len = 0;
    while len < block.len() {
        match file.read_at(&mut block[len..], offset + len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(err) if *direct && refused_direct(&err) => {
                through_cache(file)?;
                *direct = false;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(len)
}

impl Read for AheadReader {
    fn read(&mut self, out: &mut [u8]) -> Result<usize> {
        loop {
            if let Some((block, len)) = &self.current {
                if self.consumed < *len {
                    let bytes = &block.get()[self.consumed..*len];
                    let n = bytes.len().min(out.len());
                    out[..n].copy_from_slice(&bytes[..n]);
                    self.consumed += n;
                    return Ok(n);
                }
            }
            if let Some((block, _)) = self.current.take() {
                // The thread may have stopped at the end: then the block is not wanted.
                let _ = self.spent.send(block);
            }
            if self.ended {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Ok(Some(block))) => {
                    self.current = Some(block);
                    self.consumed = 0;
                }
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(err)) => return Err(err),
                // Never taken for the end: a volume cut short must read as cut short.
                Err(_) => return Err(std::io::Error::other("the volume's reading thread stopped")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_whole_through_odd_reads_direct_or_not() {
        let scratch = tempfile::tempdir().unwrap();
        // Not a whole number of blocks, nor of aligned sectors.
        let bytes: Vec<u8> = (0..(2 * BLOCK + 12_345)).map(|i| (i % 253) as u8).collect();
        let path = scratch.path().join("v.tar");
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = AheadReader::new(File::open(&path).unwrap()).unwrap();
        let mut back = Vec::new();
        let mut piece = vec![0; 1_000_003];
        loop {
            let n = reader.read(&mut piece).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&piece[..n]);
        }
        assert_eq!(back.len(), bytes.len());
        assert!(back == bytes);
        // The end stays the end.
        assert_eq!(reader.read(&mut piece).unwrap(), 0);
        // An empty file is an empty read.
        std::fs::write(&path, b"").unwrap();
        let mut empty = Vec::new();
        AheadReader::new(File::open(&path).unwrap())
            .unwrap()
            .read_to_end(&mut empty)
            .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn a_file_on_a_local_disk_goes_direct_and_back_through_the_cache() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("v");
        std::fs::write(&path, vec![7; 3 * DIRECT_ALIGN]).unwrap();
        let file = File::open(&path).unwrap();
        if !on_local_disk(&file) {
            // Nothing to prove where the scratch folder is not on ext4, XFS or btrfs;
            // CI's is.
            return;
        }
        assert!(go_direct(&file));
        // Direct: an unaligned read is refused, as `fill` expects of a file system.
        let mut odd = vec![0; 100];
        let err = file.read_at(&mut odd, 1).unwrap_err();
        assert!(refused_direct(&err), "{err}");
        through_cache(&file).unwrap();
        assert_eq!(file.read_at(&mut odd, 1).unwrap(), 100);
        assert_eq!(odd, vec![7; 100]);
    }
}
