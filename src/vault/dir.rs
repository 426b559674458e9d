//! The `dir:` vault: one file per object in a directory (local disk, NFS, a removable drive).
//!
//! A volume is written as `NAME.partial`, then fsynced, renamed without replacing
//! and the folder fsynced: only then is it visible under its name.

use super::direct::{go_direct, refused_direct, through_cache, AheadReader, Aligned, BLOCK};
use super::{Listing, Vault, VolumeSink, PARTIAL_SUFFIX};
use crate::error::{at, Error, ErrorKind, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A directory on local disk, NFS or a removable drive.
pub struct DirVault {
    address: String,
    root: PathBuf,
}

impl DirVault {
    /// The vault at `path`, addressed as `address`.
    pub fn new(address: &str, path: &str) -> DirVault {
        DirVault {
            address: address.to_string(),
            root: PathBuf::from(path),
        }
    }

    fn check_root(&self) -> Result<()> {
        match std::fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(Error::usage(format!(
                "vault {} is not a directory",
                self.address
            ))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(Error::missing(format!(
                "vault {} does not exist: run `tapevault init --vault {}` to create it",
                self.address, self.address
            ))),
            Err(err) => Err(Error::io("cannot reach vault", &self.root, err)),
        }
    }
}

/// Create the directory of a new dir vault (for `init`).
pub fn create_dir_vault(address: &str) -> Result<()> {
    if let Some(path) = address.strip_prefix("dir:") {
        std::fs::create_dir_all(path).map_err(at("cannot create vault directory", path))?;
    }
    Ok(())
}

impl Vault for DirVault {
    fn location(&self) -> &str {
        &self.address
    }

    fn list(&self) -> Result<Listing> {
        self.check_root()?;
        let mut listing = Listing::default();
        for entry in std::fs::read_dir(&self.root).map_err(at("cannot list vault", &self.root))? {
            let entry = entry.map_err(at("cannot list vault", &self.root))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(base) = name.strip_suffix(PARTIAL_SUFFIX) {
                listing.partial.push(base.to_string());
            } else if !name.starts_with('.') {
                listing.sealed.push(name);
            }
        }
        listing.sealed.sort();
        listing.partial.sort();
        Ok(listing)
    }

    fn create(&self, name: &str, _max_len: u64) -> Result<Box<dyn VolumeSink>> {
        self.check_root()?;
        let final_path = self.root.join(name);
        let partial = self.root.join(format!("{name}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(at("cannot create volume", &partial))?;
        Ok(Box::new(DirSink::new(file, partial, final_path, true)))
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.root.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.root),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io("cannot delete", &path, err)),
        }
    }

    fn lock_writers(&self) -> Result<crate::lock::RunLock> {
        super::refuse_empty(self)?;
        // A dot name: never listed as a volume or an unknown object.
        crate::lock::acquire(&self.root.join(".writer-lock"))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let file = self.open_file(name)?;
        let reader =
            AheadReader::new(file).map_err(at("cannot read volume", self.root.join(name)))?;
        Ok(Box::new(reader))
    }

    fn forget_cached(&self, name: &str) {
        // Only clean pages are dropped: a sealed volume was synced before it was named.
        if let Ok(file) = File::open(self.root.join(name)) {
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        }
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>)> {
        use std::os::unix::fs::FileExt;
        let file = self.open_file(name)?;
        let path = self.root.join(name);
        let size = file
            .metadata()
            .map_err(at("cannot read volume", &path))?
            .len();
        let len = len.min(size.saturating_sub(offset));
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)
            .map_err(at("cannot read volume", &path))?;
        Ok((size, buf))
    }
}

impl DirVault {
    fn open_file(&self, name: &str) -> Result<File> {
        let path = self.root.join(name);
        File::open(&path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                Error::missing(format!(
                    "volume {name} is missing from vault {}",
                    self.address
                ))
            } else {
                Error::io("cannot open volume", &path, err)
            }
        })
    }
}

/// A volume being written, in whole aligned blocks, straight to the disk where the file
/// system allows it (see `direct`); elsewhere through the page cache, written back as
/// it goes.
struct DirSink {
    file: File,
    /// Written with O_DIRECT, until the unaligned tail at the seal.
    direct: bool,
    block: Aligned,
    filled: usize,
    partial: PathBuf,
    final_path: PathBuf,
    /// Bytes written to the file, and where the disk's writing of them was last started.
    written: u64,
    writeback_from: u64,
}

/// How much is written between two starts of the disk's writeback. Left to the kernel,
/// a volume stays in memory until the seal's fsync, and a backup then waits for all of
/// it (0.3 s for 577 MB here) with nothing else to do.
const WRITEBACK_EVERY: u64 = 32 << 20;

impl DirSink {
    /// A sink writing `file`, with O_DIRECT when `try_direct` and the file system is a
    /// local disk's that takes it.
    fn new(file: File, partial: PathBuf, final_path: PathBuf, try_direct: bool) -> DirSink {
        let direct = try_direct && go_direct(&file);
        DirSink {
            file,
            direct,
            block: Aligned::new(),
            filled: 0,
            partial,
            final_path,
            written: 0,
            writeback_from: 0,
        }
    }

    /// Write the block's bytes to the file at their place, and empty it.
    fn write_out(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let data = &self.block.get()[..self.filled];
        match self.file.write_all_at(data, self.written) {
            // A file system that took the flag but not the write: through the cache.
            Err(err) if self.direct && refused_direct(&err) => {
                through_cache(&self.file)?;
                self.direct = false;
                self.file.write_all_at(data, self.written)?;
            }
            written => written?,
        }
        self.written += self.filled as u64;
        self.filled = 0;
        if !self.direct && self.written - self.writeback_from >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.writeback_from);
            self.writeback_from = self.written;
        }
        Ok(())
    }
}

impl Write for DirSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(BLOCK - self.filled);
        self.block.get_mut()[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        if self.filled == BLOCK {
            self.write_out()?;
        }
        Ok(n)
    }

    /// Nothing: the buffer is written whole, or at the seal (O_DIRECT takes no tail).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl VolumeSink for DirSink {
    fn seal(mut self: Box<Self>) -> Result<()> {
        // The tail is not a whole number of aligned blocks: it goes through the cache.
        let written = if self.direct {
            self.direct = false;
            through_cache(&self.file)
        } else {
            Ok(())
        };
        written
            .and_then(|()| self.write_out())
            .map_err(at("cannot write volume", &self.partial))?;
        let DirSink {
            file,
            partial,
            final_path,
            ..
        } = *self;
        file.sync_all()
            .map_err(at("cannot sync volume", &partial))?;
        drop(file);
        // Never replace an existing volume: names carry the volume id, a clash is a bug or an attack.
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &partial,
            rustix::fs::CWD,
            &final_path,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| Error::io("cannot seal volume", &final_path, e.into()))?;
        sync_dir(final_path.parent().unwrap_or(Path::new(".")))
    }
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

/// fsync a directory so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(at("cannot open folder", dir))?;
    handle.sync_all().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot sync folder {}: {e}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_sealed_whole_written_direct_or_through_the_cache() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().to_str().unwrap();
        let vault = DirVault::new(&format!("dir:{root}"), root);
        // Pieces of an odd size, so that buffers fill in the middle of a piece and the
        // tail is no whole number of blocks.
        let piece: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i % 251) as u8).collect();
        for (name, try_direct) in [("direct.tar", true), ("cached.tar", false)] {
            let partial = scratch.path().join(format!("{name}{PARTIAL_SUFFIX}"));
            let file = File::create_new(&partial).unwrap();
            let local = super::super::direct::on_local_disk(&file);
            let mut sink = DirSink::new(file, partial, scratch.path().join(name), try_direct);
            assert_eq!(sink.direct, try_direct && local, "{name}");
            let mut whole = blake3::Hasher::new();
            for _ in 0..25 {
                sink.write_all(&piece).unwrap();
                whole.update(&piece);
            }
            let total = 25 * piece.len() as u64;
            assert_eq!(sink.written + sink.filled as u64, total);
            if !sink.direct {
                // Written back twice over 75 MiB, never past what the kernel was given.
                assert!(
                    sink.writeback_from >= 2 * WRITEBACK_EVERY,
                    "{}",
                    sink.writeback_from
                );
                assert!(sink.writeback_from <= sink.written);
            }
            Box::new(sink).seal().unwrap();
            let mut sealed = Vec::new();
            vault.open(name).unwrap().read_to_end(&mut sealed).unwrap();
            assert_eq!(sealed.len() as u64, total, "{name}");
            assert_eq!(blake3::hash(&sealed), whole.finalize(), "{name}");
        }
    }
}
