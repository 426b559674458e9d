//! Vault records: small encrypted objects that say what was forgotten or pruned, so
//! that the vault alone (a catalog rebuild) never brings back a forgotten snapshot or
//! reports a pruned volume as lost.
//!
//! Name `KIND-<32 hex id>.tvn`; content `"tapevault-record v1\n"` and the sealed JSON
//! (see docs/FORMAT.md). Written like volumes: invisible until sealed.

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::ids::VaultId;
use crate::vault::Vault;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;

const MAGIC: &[u8] = b"tapevault-record v1\n";
const SUFFIX: &str = ".tvn";

/// Record kinds.
pub const FORGET: &str = "forget";
/// Record kinds.
pub const PRUNE: &str = "prune";

fn parse_name(name: &str, kind: &str) -> Option<[u8; 16]> {
    let hex = name
        .strip_prefix(kind)?
        .strip_prefix('-')?
        .strip_suffix(SUFFIX)?;
    crate::ids::from_hex::<16>(hex).ok()
}

/// Is this the name of a vault record?
pub fn is_record_name(name: &str) -> bool {
    [FORGET, PRUNE]
        .iter()
        .any(|kind| parse_name(name, kind).is_some())
}

/// Seal `record` into a new vault object of `kind`; returns its name.
pub fn write<T: Serialize>(
    vault: &dyn Vault,
    key: &MasterKey,
    vault_id: VaultId,
    kind: &str,
    record: &T,
) -> Result<String> {
    let id: [u8; 16] = crate::ids::random_bytes();
    let name = format!("{kind}-{}{SUFFIX}", crate::ids::to_hex(&id));
    let plain = serde_json::to_vec(record).expect("records serialise");
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&key.seal_record(vault_id, kind, &id, &plain));
    let mut sink = vault.create(&name, 1 << 20)?;
    sink.write_all(&bytes)
        .map_err(|e| Error::io("cannot write", std::path::Path::new(&name), e))?;
    sink.seal()?;
    Ok(name)
}

/// Every record of `kind` in the vault, and a line for each that does not open
/// (it is never trusted, and never stops the others).
pub fn read_all<T: DeserializeOwned>(
    vault: &dyn Vault,
    key: &MasterKey,
    vault_id: VaultId,
    kind: &str,
) -> Result<(Vec<T>, Vec<String>)> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for name in vault.list()?.sealed {
        let Some(id) = parse_name(&name, kind) else {
            continue;
        };
        let opened = vault
            .read_range(&name, 0, 1 << 20)
            .and_then(|(size, bytes)| {
                if size > 1 << 20 {
                    return Err(Error::corrupt("larger than any record"));
                }
                let sealed = bytes
                    .strip_prefix(MAGIC)
                    .ok_or_else(|| Error::corrupt("not a tapevault record"))?;
                let plain = key.open_record(vault_id, kind, &id, sealed)?;
                serde_json::from_slice(&plain)
                    .map_err(|e| Error::corrupt(format!("{kind} record: {e}")))
            });
        match opened {
            Ok(record) => records.push(record),
            Err(err) => problems.push(format!("{name}: {err}; ignored")),
        }
    }
    Ok((records, problems))
}
