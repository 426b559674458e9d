//! The `dir:` vault: one file per object in a directory (local disk, NFS, a removable drive).
//!
//! A volume is written as `NAME.partial`, then fsynced, renamed without replacing
//! and the folder fsynced: only then is it visible under its name.

use super::direct::{AheadReader, BehindWriter};
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
        let writer = BehindWriter::new(file, true).map_err(at("cannot create volume", &partial))?;
        Ok(Box::new(DirSink {
            writer,
            partial,
            final_path,
        }))
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
/// system allows it (see `direct`); elsewhere through the page cache.
struct DirSink {
    writer: BehindWriter,
    partial: PathBuf,
    final_path: PathBuf,
}

impl Write for DirSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl VolumeSink for DirSink {
    fn seal(self: Box<Self>) -> Result<()> {
        let DirSink {
            writer,
            partial,
            final_path,
        } = *self;
        let file = writer
            .finish()
            .map_err(at("cannot write volume", &partial))?;
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
            let mut sink = DirSink {
                writer: BehindWriter::new(file, try_direct).unwrap(),
                partial,
                final_path: scratch.path().join(name),
            };
            let mut whole = blake3::Hasher::new();
            for _ in 0..25 {
                sink.write_all(&piece).unwrap();
                whole.update(&piece);
            }
            let total = 25 * piece.len() as u64;
            Box::new(sink).seal().unwrap();
            let mut sealed = Vec::new();
            vault.open(name).unwrap().read_to_end(&mut sealed).unwrap();
            assert_eq!(sealed.len() as u64, total, "{name}");
            assert_eq!(blake3::hash(&sealed), whole.finalize(), "{name}");
        }
    }
}
