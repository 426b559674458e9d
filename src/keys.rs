//! Vault keys: `init` (new master key, wrapped by the passphrase) and unlocking.
//!
//! The wrapped key is stored in the catalog, in a plaintext `vault.tvl`
//! label at the vault's root, and in every volume label, so that the vault
//! plus the passphrase is always enough. The master key's fingerprint is
//! pinned in the catalog: a vault whose labels were swapped for an
//! attacker's key is refused even with the attacker's passphrase.

use crate::catalog::{Catalog, VaultInfo};
use crate::console::errln;
use crate::crypto::{KdfParams, MasterKey, WrappedKey};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{VaultId, VolumeId};
use crate::vault::Vault;
use crate::volume::{Label, FORMAT_VERSION};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use zeroize::Zeroizing;

/// The vault label object at a vault's root.
pub const VAULT_LABEL: &str = "vault.tvl";

/// Is this the vault label or a key label that `key passwd`/`key import` added (`vault-XXXXXXXX.tvl`)?
pub fn is_key_label_name(name: &str) -> bool {
    name == VAULT_LABEL || (name.starts_with("vault-") && name.ends_with(".tvl"))
}

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
        parity: None,
    };
    let info = VaultInfo {
        vault_id,
        address: vault.location().to_string(),
        fingerprint: master.fingerprint(),
        wrapped_key,
        chunker: crate::chunk::CHUNKER_VERSION.into(),
    };
    Catalog::create(catalog_dir, &info)?;
    let mut sink = vault.create(VAULT_LABEL, 1 << 20)?;
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
    unlock_info(&catalog.vault_info()?, passphrase)
}

fn unlock_info(info: &VaultInfo, passphrase: &[u8]) -> Result<MasterKey> {
    let key = info.wrapped_key.unwrap(info.vault_id, passphrase)?;
    if key.fingerprint() != info.fingerprint {
        return Err(Error::corrupt(
            "the unlocked key's fingerprint does not match the one pinned in the catalog",
        ));
    }
    Ok(key)
}

/// Where a run gets the master key: at hand, or still being derived ([`Unlocking`]).
pub trait KeySource: Sync {
    /// The master key, once its derivation is done; the derivation's error otherwise.
    fn master_key(&self) -> Result<&MasterKey>;
}

impl KeySource for MasterKey {
    fn master_key(&self) -> Result<&MasterKey> {
        Ok(self)
    }
}

/// The master key being unwrapped on a thread of its own.
///
/// The key derivation (argon2id, 256 MiB by default) takes most of a second: longer
/// than an unchanged backup's whole walk against its parent, which needs no key. A
/// run starts it first and waits only where it first needs the key.
pub struct Unlocking {
    derivation: Mutex<Option<JoinHandle<Result<MasterKey>>>>,
    /// The outcome, kept for every caller: an error as its kind and message.
    outcome: OnceLock<std::result::Result<MasterKey, (ErrorKind, String)>>,
}

impl Unlocking {
    /// Start unwrapping the catalog's key with `passphrase`.
    pub fn start(catalog: &Catalog, passphrase: Zeroizing<Vec<u8>>) -> Result<Unlocking> {
        let info = catalog.vault_info()?;
        let derivation = std::thread::Builder::new()
            .name("key-derivation".into())
            .spawn(move || unlock_info(&info, &passphrase))
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start a thread: {e}")))?;
        Ok(Unlocking {
            derivation: Mutex::new(Some(derivation)),
            outcome: OnceLock::new(),
        })
    }
}

impl KeySource for Unlocking {
    fn master_key(&self) -> Result<&MasterKey> {
        let outcome = self.outcome.get_or_init(|| {
            let derivation = self.derivation.lock().ok().and_then(|mut d| d.take());
            match derivation.map(JoinHandle::join) {
                Some(Ok(unlocked)) => unlocked.map_err(|e| (e.kind(), e.to_string())),
                _ => Err((
                    ErrorKind::Io,
                    "the key derivation stopped unexpectedly".into(),
                )),
            }
        });
        outcome
            .as_ref()
            .map_err(|(kind, message)| Error::new(*kind, message.clone()))
    }
}

/// Write a new key label (`vault-XXXXXXXX.tvl`) holding `wrapped`, so the vault alone
/// plus the new passphrase is enough for a rebuild. Earlier labels stay as they are.
fn write_key_label(vault: &dyn Vault, info: &VaultInfo, wrapped: &WrappedKey) -> Result<String> {
    let volume_id = VolumeId::random();
    let name = format!("vault-{}.tvl", &volume_id.to_string()[..8]);
    let label = Label {
        format: "tapevault".into(),
        format_version: FORMAT_VERSION,
        vault_id: info.vault_id,
        volume_id,
        sequence: 0,
        created: crate::backup::unix_now(),
        chunker: info.chunker.clone(),
        wrapped_key: wrapped.clone(),
        parity: None,
    };
    let mut sink = vault.create(&name, 1 << 20)?;
    sink.write_all(&label.encode())
        .map_err(|e| Error::io("cannot write", Path::new(&name), e))?;
    sink.seal()?;
    Ok(name)
}

/// A fresh wrapping of `key` under `passphrase`, as costly as `like` (new salt).
fn rewrap(
    key: &MasterKey,
    info: &VaultInfo,
    passphrase: &[u8],
    like: &KdfParams,
) -> Result<WrappedKey> {
    if passphrase.is_empty() {
        return Err(Error::usage("refusing an empty passphrase"));
    }
    let kdf = KdfParams::new(like.memory_kib, like.iterations, like.parallelism)?;
    WrappedKey::wrap(key, info.vault_id, passphrase, kdf)
}

/// What a passphrase change or a paper import did.
#[derive(Debug, Serialize)]
pub struct KeySummary {
    /// The vault.
    pub vault_id: VaultId,
    /// The master key's fingerprint (unchanged).
    pub fingerprint: String,
    /// The key label written to the vault.
    pub key_label: String,
    /// The catalog that now holds the new wrapping.
    pub catalog: String,
    /// What a paper import rebuilt, when it had to.
    pub rebuilt: Option<crate::rebuild::RebuildSummary>,
    /// Anything the operator should know.
    pub notes: Vec<String>,
}

/// `key passwd`: the same master key, wrapped under a new passphrase.
pub fn change_passphrase(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    new_passphrase: &[u8],
) -> Result<KeySummary> {
    let info = catalog.vault_info()?;
    let wrapped = rewrap(key, &info, new_passphrase, &info.wrapped_key.kdf)?;
    // The vault first: should the catalog update fail, a rebuild still finds the new wrapping.
    let key_label = write_key_label(vault, &info, &wrapped)?;
    catalog.set_wrapped_key(&wrapped)?;
    Ok(KeySummary {
        vault_id: info.vault_id,
        fingerprint: info.fingerprint,
        key_label,
        catalog: catalog.dir().display().to_string(),
        rebuilt: None,
        notes: vec![
            "volumes written before now still carry the old wrapping in their labels: \
             the old passphrase keeps opening them"
                .into(),
        ],
    })
}

/// Does `key` open this vault? Tries the index at the tail of up to three volumes (a
/// ranged read), else their first pack header. `Ok(false)`: nothing to try it on.
pub(crate) fn key_opens_vault(
    vault: &dyn Vault,
    vault_id: VaultId,
    key: &MasterKey,
) -> Result<bool> {
    let names = crate::rebuild::volume_names(vault)?;
    let mut tried = 0;
    for name in &names {
        let attempt = (|| -> Result<Option<bool>> {
            let (size, label) = crate::rebuild::head_label(vault, name)?;
            let volume_key = key.volume_key(&label.volume_id);
            let open = |sealed: &[u8]| {
                crate::volume::VolumeIndex::open(
                    sealed,
                    vault_id,
                    label.volume_id,
                    label.sequence,
                    &volume_key,
                )
            };
            if crate::rebuild::index_from_tail(vault, name, size, &open).is_ok() {
                return Ok(Some(true));
            }
            // No intact index to try: the first pack header tells as well.
            let mut reader = crate::volume::VolumeReader::new(vault.open(name)?);
            reader.read_label_bytes()?;
            while let Some(member) = reader.next_member()? {
                if let Some(number) = crate::volume::pack_number(&member.name) {
                    let data = reader.read_data(&member)?;
                    let sealer = key
                        .volume_key(&label.volume_id)
                        .pack_sealer(vault_id, number);
                    return Ok(Some(crate::pack::read_entries(&data, &sealer).is_ok()));
                }
            }
            Ok(None)
        })();
        match attempt {
            Ok(Some(true)) => return Ok(true),
            Ok(Some(false)) => tried += 1,
            _ => {}
        }
        if tried == 3 {
            break;
        }
    }
    if tried > 0 {
        return Err(Error::new(
            crate::error::ErrorKind::WrongKey,
            "this key does not open the vault's volumes (a paper key or key label of another vault?)",
        ));
    }
    Ok(false)
}

/// `key import --paper`: a working catalog, wrapped under a new passphrase, from a paper key.
///
/// An existing catalog for the same key gets the new wrapping; otherwise a
/// new catalog is rebuilt from the vault with the paper key.
pub fn import_paper(
    vault: &dyn Vault,
    catalog_dir: &Path,
    paper: &str,
    new_passphrase: &[u8],
) -> Result<KeySummary> {
    let (vault_id, key) = crate::paper::import(paper)?;
    let vault_label = crate::rebuild::any_label(vault)?;
    if vault_label.vault_id != vault_id {
        return Err(Error::new(
            crate::error::ErrorKind::WrongKey,
            format!(
                "this paper key is for vault {vault_id}, but {} is vault {}",
                vault.location(),
                vault_label.vault_id
            ),
        ));
    }
    let mut notes = Vec::new();
    if !key_opens_vault(vault, vault_id, &key)? {
        notes.push(
            "the vault holds no volume yet, so the paper key could not be checked against data"
                .to_string(),
        );
    }
    let mut info = VaultInfo {
        vault_id,
        address: vault.location().to_string(),
        fingerprint: key.fingerprint(),
        wrapped_key: vault_label.wrapped_key.clone(),
        chunker: vault_label.chunker.clone(),
    };
    info.wrapped_key = rewrap(&key, &info, new_passphrase, &vault_label.wrapped_key.kdf)?;
    let key_label = write_key_label(vault, &info, &info.wrapped_key)?;
    let existing = Catalog::open(catalog_dir, vault.location()).ok();
    let rebuilt = match existing {
        Some(mut catalog) => {
            if catalog.vault_info()?.fingerprint != info.fingerprint {
                return Err(Error::new(
                    crate::error::ErrorKind::WrongKey,
                    format!(
                        "the catalog in {} belongs to another key; pass --catalog NEWDIR to rebuild one",
                        catalog_dir.display()
                    ),
                ));
            }
            catalog.set_wrapped_key(&info.wrapped_key)?;
            None
        }
        None => Some(crate::rebuild::rebuild_with_key(
            vault,
            catalog_dir,
            &key,
            &info,
        )?),
    };
    Ok(KeySummary {
        vault_id,
        fingerprint: info.fingerprint,
        key_label,
        catalog: catalog_dir.display().to_string(),
        rebuilt,
        notes,
    })
}

/// Refuse a catalog that belongs to another vault than the one addressed.
pub fn check_catalog_matches(vault: &dyn Vault, catalog: &Catalog) -> Result<()> {
    let info = catalog.vault_info()?;
    // The vault is this catalog's if its key label or a volume label says so. A key
    // label that disagrees with the volumes was replaced or copied in (T45): ignored
    // (the catalog holds the key), and said. A damaged volume label is the volume's
    // problem, reported where it is read.
    let key_label = crate::rebuild::any_label(vault).ok();
    let ours = |label: &Option<Label>| label.as_ref().is_some_and(|l| l.vault_id == info.vault_id);
    if ours(&key_label) {
        // Volume labels could only disagree with a key label that is not ours; on tape,
        // reading one would load a cartridge.
        return Ok(());
    }
    let volume_label = crate::rebuild::volume_names(vault)?
        .iter()
        .find_map(|name| crate::rebuild::head_label(vault, name).ok().map(|(_, l)| l));
    if ours(&volume_label) && key_label.is_some() && !ours(&key_label) {
        errln!(
            "tapevault: warning: a key label of {} names another vault, but its volumes and \
             this catalog are vault {}: the label was replaced or copied in; it is ignored",
            vault.location(),
            info.vault_id
        );
    }
    if ours(&key_label) || ours(&volume_label) {
        return Ok(());
    }
    if let Some(label) = key_label.or(volume_label) {
        return Err(Error::corrupt(format!(
            "catalog {} belongs to vault {}, but {} is vault {}: pass the right --catalog, \
             or make one with `tapevault catalog rebuild --catalog NEWDIR`",
            catalog.dir().display(),
            info.vault_id,
            vault.location(),
            label.vault_id
        )));
    }
    Ok(())
}
