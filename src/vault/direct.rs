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
const DIRECT_ALIGN: usize = 4096;

/// Bytes moved by each read or write of a volume: O_DIRECT wants large ones, since each
/// waits for the disk.
const BLOCK: usize = 4 << 20;

/// Blocks a reader keeps: one being read from the disk, one or two waiting, one being
/// consumed.
const BLOCKS_AHEAD: usize = 4;

/// A buffer of `BLOCK` bytes starting at a `DIRECT_ALIGN` boundary.
struct Aligned {
    room: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Aligned {
        let room = vec![0; BLOCK + DIRECT_ALIGN];
        let start = room.as_ptr().align_offset(DIRECT_ALIGN);
        Aligned { room, start }
    }

    fn get(&self) -> &[u8] {
        &self.room[self.start..self.start + BLOCK]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.room[self.start..self.start + BLOCK]
    }
}

/// Set O_DIRECT on `file` if it is on a local disk's file system that takes it; says
/// whether it did. Set after opening: an O_DIRECT open refused may have made the file.
fn go_direct(file: &File) -> bool {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    on_local_disk(file)
        && fcntl_getfl(file).is_ok_and(|flags| fcntl_setfl(file, flags | OFlags::DIRECT).is_ok())
}

/// Is `file` on ext4, XFS or btrfs? O_DIRECT is the disk's own speed there; on a
/// network file system every write would wait for the server, and elsewhere (ZFS,
/// FUSE, tmpfs) it is ignored, emulated or refused.
fn on_local_disk(file: &File) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const BTRFS: u64 = 0x9123_683E;
    rustix::fs::fstatfs(file).is_ok_and(|fs| [EXT4, XFS, BTRFS].contains(&(fs.f_type as u64)))
}

/// Clear O_DIRECT on `file`: what is read or written next goes through the page cache.
fn through_cache(file: &File) -> Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(file)?;
    Ok(fcntl_setfl(file, flags.difference(OFlags::DIRECT))?)
}

/// Is this the error of a file system that took O_DIRECT but not this read or write?
fn refused_direct(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINVAL)
}

/// A channel with room for `capacity` blocks, holding `fresh` new ones: the blocks a
/// reader or writer and its thread pass back and forth.
fn block_pool(capacity: usize, fresh: usize) -> (SyncSender<Aligned>, Receiver<Aligned>) {
    let (send, receive) = sync_channel(capacity);
    for _ in 0..fresh {
        send.send(Aligned::new())
            .expect("there is room, and the receiver is held here");
    }
    (send, receive)
}

/// Blocks a writer keeps: one being filled, up to two being written.
const BLOCKS_BEHIND: usize = 3;

/// How much is written through the page cache between two starts of the disk's
/// writeback, where O_DIRECT is not used. Left to the kernel, a volume stays in memory
/// until the seal's fsync, and a backup then waits for all of it (0.3 s for 577 MB
/// here) with nothing else to do.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// A new file written front to back in whole aligned blocks by a thread of its own, so
/// that the disk's waits (3.7 ms per block direct here, 0.5 s of a backup of the peers
/// corpus) overlap the caller's work: a backup's writer seals the next pack meanwhile.
pub struct BehindWriter {
    block: Aligned,
    filled: usize,
    /// Blocks to write, in order; dropped to say the end.
    full: Option<SyncSender<Aligned>>,
    /// Blocks written, handed back.
    spent: Receiver<Aligned>,
    /// The thread: the file, and where its whole blocks end.
    thread: Option<std::thread::JoinHandle<Result<(File, u64)>>>,
}

impl BehindWriter {
    /// Write `file` from its start, directly to the disk where `try_direct` and
    /// `go_direct` allow.
    pub fn new(file: File, try_direct: bool) -> Result<BehindWriter> {
        let direct = try_direct && go_direct(&file);
        let (full, full_rx) = sync_channel(BLOCKS_BEHIND);
        // One block is the writer's to fill from the start.
        let (spent_tx, spent) = block_pool(BLOCKS_BEHIND, BLOCKS_BEHIND - 1);
        let thread = std::thread::Builder::new()
            .name("volume-write".into())
            .spawn(move || write_behind(file, direct, &full_rx, &spent_tx))?;
        Ok(BehindWriter {
            block: Aligned::new(),
            filled: 0,
            full: Some(full),
            spent,
            thread: Some(thread),
        })
    }

    /// Wait for every block to be written, write the tail (not a whole block: through
    /// the page cache), and give the file back.
    pub fn finish(mut self) -> Result<File> {
        drop(self.full.take());
        let (file, end) = self.join()?;
        file.write_all_at(&self.block.get()[..self.filled], end)?;
        Ok(file)
    }

    /// Hand the full block to the thread and take a written one to fill.
    fn hand_over(&mut self) -> Result<()> {
        let (Ok(next), Some(full)) = (self.spent.recv(), &self.full) else {
            return Err(self.join().err().unwrap_or_else(stopped));
        };
        let filled = std::mem::replace(&mut self.block, next);
        self.filled = 0;
        if full.send(filled).is_err() {
            return Err(self.join().err().unwrap_or_else(stopped));
        }
        Ok(())
    }

    /// The thread's outcome: the file and where its blocks end, or why it stopped.
    fn join(&mut self) -> Result<(File, u64)> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            _ => Err(stopped()),
        }
    }
}

fn stopped() -> std::io::Error {
    std::io::Error::other("the volume's writing thread stopped")
}

/// The writing thread: write each block at its place until the writer says the end,
/// then leave the file without O_DIRECT for its tail.
fn write_behind(
    file: File,
    mut direct: bool,
    full: &Receiver<Aligned>,
    spent: &SyncSender<Aligned>,
) -> Result<(File, u64)> {
    let mut end = 0u64;
    let mut writeback_from = 0u64;
    for block in full {
        match file.write_all_at(block.get(), end) {
            // A file system that took the flag but not the write: through the cache.
            Err(err) if direct && refused_direct(&err) => {
                through_cache(&file)?;
                direct = false;
                file.write_all_at(block.get(), end)?;
            }
            written => written?,
        }
        end += BLOCK as u64;
        if !direct && end - writeback_from >= WRITEBACK_EVERY {
            start_writeback(&file, writeback_from);
            writeback_from = end;
        }
        // The writer is gone only after an error of its own: nothing to hand back to.
        let _ = spent.send(block);
    }
    if direct {
        through_cache(&file)?;
    }
    Ok((file, end))
}

/// Have the kernel start writing `file`'s dirty pages from `offset` to its end, without
/// waiting. Only a head start: the seal's fsync is what makes a volume durable, so a
/// file system that does not support it changes nothing.
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a system call on an open descriptor, given no memory of ours.
    let _ = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            0,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

impl std::io::Write for BehindWriter {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        let n = buf.len().min(BLOCK - self.filled);
        self.block.get_mut()[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        if self.filled == BLOCK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Nothing: blocks are written whole, and the tail at `finish` (O_DIRECT takes none).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
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
        let (spent, spent_rx) = block_pool(BLOCKS_AHEAD, BLOCKS_AHEAD);
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
    fn a_write_the_thread_could_not_make_is_the_writers_error() {
        use std::io::Write;
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("v");
        std::fs::write(&path, b"").unwrap();
        // Opened for reading only: every write the thread makes fails with EBADF.
        let mut writer = BehindWriter::new(File::open(&path).unwrap(), false).unwrap();
        let block = vec![1u8; BLOCK];
        let failed = (0..2 * BLOCKS_BEHIND).find_map(|_| writer.write_all(&block).err());
        let err = failed.unwrap_or_else(|| writer.finish().unwrap_err());
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
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
