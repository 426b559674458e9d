//! Vault keys: `init` (new master key, wrapped by the passphrase) and unlocking.
//!
//! The wrapped key is stored in the catalog, in a plaintext `vault.tvl`
//! label at the vault's root, and in every volume label, so that the vault
//! plus the passphrase is always enough. The master key's fingerprint is
//! pinned in the catalog: a vault whose labels were swapped for an
//! attacker's key is refused even with the attacker's passphrase.

use crate::catalog::{Catalog, VaultInfo};
use crate::crypto::{KdfParams, MasterKey, WrappedKey};
use crate::error::{Error, Result};
use crate::ids::{VaultId, VolumeId};
use crate::vault::Vault;
use crate::volume::{Label, FORMAT_VERSION};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// The vault label object at a vault's root.
pub const VAULT_LABEL: &str = "vault.tvl";

/// What `init` made.
#[derive(Debug, Serialize)]
pub struct InitSummary {
    /// The new vault's id.
    pub vault_id: VaultId,
    /// The master key's fingerprint.
    pub fingerprint: String,
    /// Where the catalog lives.
    pub catalog: String,
}

/// Initialise a new vault and its catalog.
pub fn init(
    vault: &dyn Vault,
    catalog_dir: &Path,
    passphrase: &[u8],
    kdf: KdfParams,
) -> Result<InitSummary> {
    if passphrase.is_empty() {
        return Err(Error::usage("refusing an empty passphrase"));
    }
    let listing = vault.list()?;
    if !listing.sealed.is_empty() {
        return Err(Error::usage(format!(
            "vault {} is not empty (it holds {}); it is already initialised",
            vault.location(),
            listing.sealed[0]
        )));
    }
    let master = MasterKey::random();
    let vault_id = VaultId::random();
    let wrapped_key = WrappedKey::wrap(&master, vault_id, passphrase, kdf)?;
    let label = Label {
        format: "tapevault".into(),
        format_version: FORMAT_VERSION,
        vault_id,
        volume_id: VolumeId::random(),
        sequence: 0,
        created: crate::backup::unix_now(),
        chunker: crate::chunk::CHUNKER_VERSION.into(),
        wrapped_key: wrapped_key.clone(),
    };
    let info = VaultInfo {
        vault_id,
        address: vault.location().to_string(),
        fingerprint: master.fingerprint(),
        wrapped_key,
        chunker: crate::chunk::CHUNKER_VERSION.into(),
    };
    Catalog::create(catalog_dir, &info)?;
    let mut sink = vault.create(VAULT_LABEL)?;
    sink.write_all(&label.encode())
        .map_err(|e| Error::io("cannot write", Path::new(VAULT_LABEL), e))?;
    sink.seal()?;
    Ok(InitSummary {
        vault_id,
        fingerprint: info.fingerprint,
        catalog: catalog_dir.display().to_string(),
    })
}

/// Unwrap the master key with `passphrase` and check it against the catalog's pin.
pub fn unlock(catalog: &Catalog, passphrase: &[u8]) -> Result<MasterKey> {
    let info = catalog.vault_info()?;
    let key = info.wrapped_key.unwrap(info.vault_id, passphrase)?;
    if key.fingerprint() != info.fingerprint {
        return Err(Error::corrupt(
            "the unlocked key's fingerprint does not match the one pinned in the catalog",
        ));
    }
    Ok(key)
}
