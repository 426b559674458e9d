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
mod s3;

pub use dir::{create_dir_vault, sync_dir, DirVault};
pub use s3::{S3Config, S3Vault};

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
pub trait VolumeSink: std::io::Write + Send {
    /// Make the object durable and visible; consumes the sink.
    fn seal(self: Box<Self>) -> Result<()>;
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
    /// S3 endpoint, region and credentials; the standard AWS environment when `None`.
    pub s3: Option<S3Config>,
}

/// Open the vault at `address` (`dir:PATH` or `s3://BUCKET/PREFIX`).
pub fn open_vault(address: &str) -> Result<Box<dyn Vault>> {
    open_vault_with(address, &VaultOptions::default())
}

/// [`open_vault`], with options for the objects this run writes.
pub fn open_vault_with(address: &str, options: &VaultOptions) -> Result<Box<dyn Vault>> {
    if options.storage_class.is_some() && !address.starts_with("s3://") {
        return Err(Error::usage(format!(
            "--storage-class applies to s3:// vaults only, not {address}"
        )));
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
    let scheme = address.split(':').next().unwrap_or_default();
    if matches!(scheme, "tape" | "-") {
        return Err(Error::usage(format!(
            "vault {address}: {scheme} vaults are not supported by this build yet; use dir:PATH or s3://BUCKET/PREFIX"
        )));
    }
    Err(Error::usage(format!(
        "vault {address:?} is not a vault address; use dir:PATH or s3://BUCKET/PREFIX"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn unknown_and_unsupported_addresses_are_usage_errors() {
        for address in ["tape:/dev/nst0", "/mnt/x", "dir:", "s3://"] {
            assert_eq!(
                open_vault(address).err().unwrap().kind(),
                ErrorKind::Usage,
                "{address}"
            );
        }
    }
}
