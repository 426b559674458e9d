//! Vaults (stage 9): where volume bytes live. Opaque bytes, strictly sequential writes.
//!
//! A vault is addressed by one string (`dir:/mnt/offsite`, `s3://bucket/prefix`).
//! Writing a volume goes through a [`VolumeSink`]: bytes are appended front to
//! back and the volume becomes visible under its name only when
//! [`VolumeSink::seal`] succeeds (dir: fsync, rename without replacing, fsync the
//! folder; s3: complete the multipart upload create-only, then check its size).
//! A sink dropped without sealing is abandoned: `NAME.partial` on disk (listed,
//! never trusted), an aborted upload on S3. A failed fsync is never retried.
//! Does not know about tar, keys or the catalog.

mod dir;
mod direct;
mod s3;
pub mod stream;

pub use dir::{create_dir_vault, sync_dir, DirVault};
pub use s3::{ObjectLock, RetentionMode, S3Config, S3Vault};
pub use stream::StreamVault;

use crate::error::{Error, Result};
use std::io::Read;

/// Suffix of a volume still being written (or abandoned by a crash).
pub const PARTIAL_SUFFIX: &str = ".partial";

/// What a vault holds, by name.
#[derive(Debug, Default)]
pub struct Listing {
    /// Sealed objects.
    pub sealed: Vec<String>,
    /// Unfinished write attempts (abandoned unless a run is in progress).
    pub partial: Vec<String>,
    /// The medium cannot list its volumes (a stream, a lone tape drive): a volume
    /// absent from `sealed` is not known to be missing.
    pub volumes_unlisted: bool,
}

/// A medium holding volumes.
pub trait Vault: Send {
    /// The vault's address, as the operator wrote it.
    fn location(&self) -> &str;
    /// Everything in the vault. An error is never read as "empty".
    fn list(&self) -> Result<Listing>;
    /// Start writing a new object of at most `max_len` bytes (object stores plan
    /// their upload parts from it); it is invisible until sealed.
    fn create(&self, name: &str, max_len: u64) -> Result<Box<dyn VolumeSink>>;
    /// Read a sealed object front to back.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// Drop what this machine holds of the object in memory, so that it is next read
    /// from the medium: a drill or a verify must prove the disk, not the page cache
    /// that still holds last night's volumes. Nothing to drop on other media.
    fn forget_cached(&self, _name: &str) {}
    /// The object's size and up to `len` bytes from `offset` (fewer at its end):
    /// how a rebuild reaches a label and an index without reading the data between.
    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>)>;
    /// Delete a sealed object (prune); deleting one that is already gone succeeds.
    fn delete(&self, name: &str) -> Result<()>;
    /// Take the vault's writer lock: two runs with different catalogs (two hosts)
    /// must never write the same vault at once. Held until dropped.
    fn lock_writers(&self) -> Result<crate::lock::RunLock>;
    /// The medium can only be read front to back (a stream, a lone tape drive): a
    /// rebuild reads a [`Vault::spool`] of it instead.
    fn sequential_only(&self) -> bool {
        false
    }
    /// Store every volume in `folder`, a `dir:` layout keeping this vault's address.
    fn spool(&self, _folder: &std::path::Path) -> Result<DirVault> {
        Err(Error::usage(format!(
            "vault {} is read in place, not spooled",
            self.location()
        )))
    }
    /// Why `name` may not be deleted now, if it may not: an S3 object lock and its
    /// date. Prune keeps such volumes; an error is never read as "unlocked".
    fn deletion_lock(&self, _name: &str) -> Result<Option<String>> {
        Ok(None)
    }
    /// Where a volume is, for an operator: its name and vault, or its cartridge.
    fn describe_volume(&self, name: &str) -> String {
        format!("volume {name} in {}", self.location())
    }
}

/// An object being written.
pub trait VolumeSink: std::io::Write + Send {
    /// Make the object durable and visible; consumes the sink.
    fn seal(self: Box<Self>) -> Result<()>;
    /// The medium passed its early-warning mark: close the volume after the pack in flight.
    fn past_early_warning(&self) -> bool {
        false
    }
}

/// Copy one volume from `from` into `into` and seal it (a spool for a rebuild).
pub fn spool_one(into: &DirVault, name: &str, from: &mut dyn Read) -> Result<()> {
    let mut sink = into.create(name, 0)?;
    std::io::copy(from, &mut sink).map_err(|e| {
        Error::new(
            crate::error::ErrorKind::Io,
            format!("cannot spool {name}: {e}"),
        )
    })?;
    sink.seal()
}

/// Refuse to lock (and so to write) a vault that holds nothing of ours: an empty
/// folder is an unmounted disk, an empty prefix a typo, far more often than a vault (T63).
fn refuse_empty(vault: &dyn Vault) -> Result<()> {
    let ours =
        vault.list()?.sealed.iter().any(|name| {
            crate::keys::is_key_label_name(name) || crate::volume::is_volume_name(name)
        });
    if ours {
        Ok(())
    } else {
        Err(Error::missing(format!(
            "vault {} holds no tapevault label or volume: is it mounted? (nothing was written)",
            vault.location()
        )))
    }
}

/// How new objects are stored, where the medium has a choice.
#[derive(Debug, Clone, Default)]
pub struct VaultOptions {
    /// S3 storage class of new volumes (`STANDARD_IA`, `GLACIER`, `DEEP_ARCHIVE`, ...).
    pub storage_class: Option<String>,
    /// S3 Object Lock retention for new volumes.
    pub object_lock: Option<ObjectLock>,
    /// S3 endpoint, region and credentials; the standard AWS environment when `None`.
    pub s3: Option<S3Config>,
    /// Block size, change command and overwrite permission of tape vaults.
    pub tape: crate::tape::TapeOptions,
    /// Where a tape drive or stream vault keeps its labels and records [default:
    /// `vault/` in the vault's default catalog folder].
    pub meta_dir: Option<std::path::PathBuf>,
}

/// Open the vault at `address` (`dir:PATH` or `s3://BUCKET/PREFIX`).
pub fn open_vault(address: &str) -> Result<Box<dyn Vault>> {
    open_vault_with(address, &VaultOptions::default())
}

/// [`open_vault`], with options for the objects this run writes.
pub fn open_vault_with(address: &str, options: &VaultOptions) -> Result<Box<dyn Vault>> {
    for (option, given) in [
        ("--storage-class", options.storage_class.is_some()),
        ("--object-lock-days", options.object_lock.is_some()),
    ] {
        if given && !address.starts_with("s3://") {
            return Err(Error::usage(format!(
                "{option} applies to s3:// vaults only, not {address}"
            )));
        }
    }
    if let Some(path) = address.strip_prefix("dir:") {
        if path.is_empty() {
            return Err(Error::usage(
                "vault address dir: needs a path, as in dir:/mnt/offsite",
            ));
        }
        return Ok(Box::new(DirVault::new(address, path)));
    }
    if address.starts_with("s3://") {
        return Ok(Box::new(S3Vault::open(address, options)?));
    }
    // A stream or a drive keeps its labels in the catalog folder: made when missing
    // (a rebuilt catalog starts without them; volume labels carry the key).
    let meta_dir = || -> Result<std::path::PathBuf> {
        let dir = match &options.meta_dir {
            Some(dir) => dir.clone(),
            None => crate::catalog::default_dir(address)?.join("vault"),
        };
        std::fs::create_dir_all(&dir).map_err(crate::error::at("cannot create", &dir))?;
        Ok(dir)
    };
    if address == "-" {
        return Ok(Box::new(StreamVault::new(&meta_dir()?)));
    }
    if let Some(path) = address.strip_prefix("tape:") {
        // An emulated library keeps them in its own folder.
        let meta = if crate::tape::is_device(path) {
            meta_dir()?
        } else {
            std::path::Path::new(path).join("vault")
        };
        return crate::tape::open_tape_vault(address, path, &options.tape, &meta);
    }
    Err(Error::usage(format!(
        "vault {address:?} is not a vault address; use dir:PATH, s3://BUCKET/PREFIX, tape:DEVICE, tape:DIR or -"
    )))
}

/// Create what a new vault needs before its label is written (for `init`): a `dir:`
/// folder, or an emulated tape library's folder and its `vault/`.
pub fn create_vault_home(address: &str) -> Result<()> {
    create_dir_vault(address)?;
    match address.strip_prefix("tape:") {
        Some(path) if !path.is_empty() && !crate::tape::is_device(path) => {
            let meta = std::path::Path::new(path).join("vault");
            std::fs::create_dir_all(&meta).map_err(crate::error::at("cannot create", &meta))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn unknown_and_unsupported_addresses_are_usage_errors() {
        for address in ["/mnt/x", "dir:", "s3://", "tape:"] {
            assert_eq!(
                open_vault(address).err().unwrap().kind(),
                ErrorKind::Usage,
                "{address}"
            );
        }
    }
}
