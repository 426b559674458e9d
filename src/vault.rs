//! Vaults (stage 9): where volume bytes live. Opaque bytes, strictly sequential writes.
//!
//! A vault is addressed by one string (`dir:/mnt/offsite`). Writing a
//! volume goes through a [`VolumeSink`]: bytes are appended front to back and
//! the volume becomes visible under its name only when [`VolumeSink::seal`]
//! succeeds (dir: fsync the file, rename without replacing, fsync the folder).
//! A sink dropped without sealing stays as `NAME.partial`: an abandoned
//! volume, listed as such and never trusted. A failed fsync is never retried.
//! Does not know about tar, keys or the catalog.

use crate::error::{at, Error, ErrorKind, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Suffix of a volume still being written (or abandoned by a crash).
pub const PARTIAL_SUFFIX: &str = ".partial";

/// What a vault holds, by name.
#[derive(Debug, Default)]
pub struct Listing {
    /// Sealed objects.
    pub sealed: Vec<String>,
    /// Unfinished write attempts (abandoned unless a run is in progress).
    pub partial: Vec<String>,
}

/// A medium holding volumes.
pub trait Vault: Send {
    /// The vault's address, as the operator wrote it.
    fn location(&self) -> &str;
    /// Everything in the vault. An error is never read as "empty".
    fn list(&self) -> Result<Listing>;
    /// Start writing a new object; it is invisible until sealed.
    fn create(&self, name: &str) -> Result<Box<dyn VolumeSink>>;
    /// Read a sealed object front to back.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// The object's size and up to `len` bytes from `offset` (fewer at its end):
    /// how a rebuild reaches a label and an index without reading the data between.
    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>)>;
    /// Delete a sealed object (prune); deleting one that is already gone succeeds.
    fn delete(&self, name: &str) -> Result<()>;
    /// Take the vault's writer lock: two runs with different catalogs (two hosts)
    /// must never write the same vault at once. Held until dropped.
    fn lock_writers(&self) -> Result<crate::lock::RunLock>;
}

/// An object being written.
pub trait VolumeSink: Write + Send {
    /// Make the object durable and visible; consumes the sink.
    fn seal(self: Box<Self>) -> Result<()>;
}

/// Open the vault at `address` (`dir:PATH`).
pub fn open_vault(address: &str) -> Result<Box<dyn Vault>> {
    if let Some(path) = address.strip_prefix("dir:") {
        if path.is_empty() {
            return Err(Error::usage(
                "vault address dir: needs a path, as in dir:/mnt/offsite",
            ));
        }
        return Ok(Box::new(DirVault {
            address: address.to_string(),
            root: PathBuf::from(path),
        }));
    }
    let scheme = address.split(':').next().unwrap_or_default();
    if matches!(scheme, "tape" | "s3" | "-") {
        return Err(Error::usage(format!(
            "vault {address}: {scheme} vaults are not supported by this build yet; use dir:PATH"
        )));
    }
    Err(Error::usage(format!(
        "vault {address:?} is not a vault address; use dir:PATH"
    )))
}

/// A directory on local disk, NFS or a removable drive.
pub struct DirVault {
    address: String,
    root: PathBuf,
}

impl DirVault {
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

    fn create(&self, name: &str) -> Result<Box<dyn VolumeSink>> {
        self.check_root()?;
        let final_path = self.root.join(name);
        let partial = self.root.join(format!("{name}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(at("cannot create volume", &partial))?;
        Ok(Box::new(DirSink {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
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
        // An empty folder is an unmounted disk far more often than a vault (T63):
        // leave no lock file in it.
        let ours = self.list()?.sealed.iter().any(|name| {
            crate::keys::is_key_label_name(name) || crate::volume::is_volume_name(name)
        });
        if !ours {
            return Err(Error::missing(format!(
                "vault {} holds no tapevault label or volume: is it mounted? (nothing was written)",
                self.address
            )));
        }
        // A dot name: never listed as a volume or an unknown object.
        crate::lock::acquire(&self.root.join(".writer-lock"))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let file = self.open_file(name)?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
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

struct DirSink {
    file: std::io::BufWriter<File>,
    partial: PathBuf,
    final_path: PathBuf,
}

impl Write for DirSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl VolumeSink for DirSink {
    fn seal(self: Box<Self>) -> Result<()> {
        let DirSink {
            file,
            partial,
            final_path,
        } = *self;
        let file = file
            .into_inner()
            .map_err(|e| Error::io("cannot write volume", &partial, e.into_error()))?;
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
    fn sealed_only_after_seal_and_partial_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("dir:{}", dir.path().display());
        let vault = open_vault(&address).unwrap();
        let mut sink = vault.create("a").unwrap();
        sink.write_all(b"hello").unwrap();
        assert!(vault.list().unwrap().sealed.is_empty());
        sink.seal().unwrap();
        let mut abandoned = vault.create("b").unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        let listing = vault.list().unwrap();
        assert_eq!(listing.sealed, vec!["a"]);
        assert_eq!(listing.partial, vec!["b"]);
        let mut back = String::new();
        vault.open("a").unwrap().read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello");
        assert_eq!(vault.open("zz").err().unwrap().kind(), ErrorKind::Missing);
    }

    #[test]
    fn unknown_and_unsupported_addresses_are_usage_errors() {
        for address in ["tape:/dev/nst0", "/mnt/x", "dir:"] {
            assert_eq!(
                open_vault(address).err().unwrap().kind(),
                ErrorKind::Usage,
                "{address}"
            );
        }
    }
}
