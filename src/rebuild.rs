//! `catalog rebuild`: a new catalog from the vault and the passphrase alone.
//!
//! Reads every volume's label and index (and hashes every byte, so keyless
//! verify works afterwards), records volumes, packs and blobs in sequence
//! order, then reads each snapshot's tree blobs back into nodes. It never
//! writes to the vault. Volumes that are foreign, unreadable or lack an
//! intact index are reported, not recorded, so nothing dedups against them.

use crate::catalog::{Catalog, VaultInfo, VolumeRow};
use crate::crypto::{BlobKind, MasterKey};
use crate::error::{Error, Result};
use crate::ids::ChunkId;
use crate::model::{Node, SnapshotRecord, TREE_HEADER};
use crate::restore::{locate, read_volume, ReadKeys};
use crate::vault::Vault;
use crate::volume::{
    is_volume_name, HashingReader, Label, VolumeIndex, VolumeReader, INDEX_MEMBER,
};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// What a rebuild found.
#[derive(Debug, Default, Serialize)]
pub struct RebuildSummary {
    /// Volumes recorded, in sequence order.
    pub volumes: Vec<String>,
    /// Snapshots recorded.
    pub snapshots: usize,
    /// Volumes that could not be used, with the reason.
    pub problems: Vec<String>,
}

fn volume_names(vault: &dyn Vault) -> Result<Vec<String>> {
    let mut names: Vec<String> = vault
        .list()?
        .sealed
        .into_iter()
        .filter(|n| is_volume_name(n))
        .collect();
    names.sort();
    Ok(names)
}

fn read_label(vault: &dyn Vault, name: &str) -> Result<Label> {
    if name == crate::keys::VAULT_LABEL {
        let mut bytes = Vec::new();
        vault
            .open(name)?
            .take(64 << 10)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::corrupt(e.to_string()))?;
        return Label::decode(&bytes);
    }
    VolumeReader::new(vault.open(name)?).read_label()
}

/// Rebuild a catalog for `vault` in the new folder `catalog_dir`.
pub fn rebuild(vault: &dyn Vault, catalog_dir: &Path, passphrase: &[u8]) -> Result<RebuildSummary> {
    let names = volume_names(vault)?;
    // The key comes from the first readable label: the vault label, else any volume's.
    let mut candidates = vec![crate::keys::VAULT_LABEL.to_string()];
    candidates.extend(names.iter().cloned());
    let label = candidates
        .iter()
        .find_map(|name| read_label(vault, name).ok())
        .ok_or_else(|| {
            Error::corrupt(format!(
                "vault {} holds no readable tapevault label",
                vault.location()
            ))
        })?;
    let key = label.wrapped_key.unwrap(label.vault_id, passphrase)?;
    let info = VaultInfo {
        vault_id: label.vault_id,
        address: vault.location().to_string(),
        fingerprint: key.fingerprint(),
        wrapped_key: label.wrapped_key.clone(),
        chunker: label.chunker.clone(),
    };
    let mut catalog = Catalog::create(catalog_dir, &info)?;
    match fill(
        vault,
        &mut catalog,
        &info,
        &key,
        &names,
        RebuildSummary::default(),
    ) {
        Ok(summary) => Ok(summary),
        Err(err) => {
            // A half-built catalog would be trusted by the next run; leave none behind.
            catalog.discard();
            Err(err)
        }
    }
}

/// Record every readable volume, then every snapshot whose tree can be read.
fn fill(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    info: &VaultInfo,
    key: &MasterKey,
    names: &[String],
    mut summary: RebuildSummary,
) -> Result<RebuildSummary> {
    let mut snapshots: Vec<(SnapshotRecord, u64)> = Vec::new();
    let mut seen: HashMap<u64, String> = HashMap::new();
    for name in names {
        match scan_volume(vault, name, info, key) {
            Ok((row, index)) => {
                if let Some(first) = seen.get(&row.sequence) {
                    summary.problems.push(format!(
                        "{name}: claims sequence {} like {first}; ignored",
                        row.sequence
                    ));
                    continue;
                }
                seen.insert(row.sequence, name.clone());
                catalog.record_volume(&row, &index.packs, None)?;
                snapshots.extend(index.snapshots.into_iter().map(|s| (s, row.sequence)));
                summary.volumes.push(name.clone());
            }
            Err(err) => summary.problems.push(format!("{name}: {err}")),
        }
    }
    if summary.volumes.is_empty() && !names.is_empty() {
        return Err(Error::corrupt(format!(
            "no volume of vault {} could be read: {}",
            vault.location(),
            summary.problems.join("; ")
        )));
    }
    for (record, sequence) in snapshots {
        match load_tree(vault, catalog, key, info.vault_id, &record.tree) {
            Ok(nodes) => {
                catalog.begin_snapshot(&record.id)?;
                for batch in nodes.chunks(512) {
                    catalog.add_nodes(&record.id, batch)?;
                }
                catalog.complete_snapshot(&record, sequence)?;
                summary.snapshots += 1;
            }
            Err(err) => summary.problems.push(format!(
                "snapshot {}: tree unreadable: {err}",
                record.id.short()
            )),
        }
    }
    Ok(summary)
}

fn scan_volume(
    vault: &dyn Vault,
    name: &str,
    info: &VaultInfo,
    key: &MasterKey,
) -> Result<(VolumeRow, VolumeIndex)> {
    let source = HashingReader::new(vault.open(name)?);
    let mut reader = VolumeReader::new(source);
    let label = reader.read_label()?;
    if label.vault_id != info.vault_id {
        return Err(Error::corrupt(format!(
            "belongs to another vault ({})",
            label.vault_id
        )));
    }
    let mut index = None;
    while let Some(member) = reader.next_member()? {
        if member.name == INDEX_MEMBER {
            let sealed = reader.read_data(&member)?;
            index = Some(VolumeIndex::open(
                &sealed,
                &label,
                &key.volume_key(&label.volume_id),
            )?);
        }
    }
    let index = index.ok_or_else(|| Error::corrupt("no index: the volume was never finished"))?;
    let (bytes, blake3) = reader.into_inner().finish()?;
    let row = VolumeRow {
        sequence: label.sequence,
        volume_id: label.volume_id,
        name: name.to_string(),
        state: "sealed".into(),
        bytes,
        blake3,
        created: label.created,
    };
    Ok((row, index))
}

/// Read a snapshot's tree blobs and decode its nodes.
pub fn load_tree(
    vault: &dyn Vault,
    catalog: &Catalog,
    key: &MasterKey,
    vault_id: crate::ids::VaultId,
    tree: &[ChunkId],
) -> Result<Vec<Node>> {
    let (plan, unknown) = locate(catalog, tree.iter().copied(), BlobKind::Tree)?;
    if let Some(id) = unknown.first() {
        return Err(Error::corrupt(format!(
            "tree chunk {id} is in no readable volume"
        )));
    }
    let volumes = catalog.volumes_by_sequence()?;
    let keys = ReadKeys {
        vault_id,
        master: key,
        ids: key.chunk_id_key(),
    };
    let mut chunks: HashMap<ChunkId, Vec<u8>> = HashMap::new();
    let mut errors = Vec::new();
    for (sequence, per_pack) in &plan {
        let volume = volumes
            .get(sequence)
            .ok_or_else(|| Error::corrupt("tree volume unknown"))?;
        read_volume(vault, volume, &keys, per_pack, &mut errors, |id, plain| {
            chunks.insert(*id, plain.to_vec());
        })?;
    }
    let mut stream = Vec::new();
    for id in tree {
        let chunk = chunks.get(id).ok_or_else(|| {
            Error::corrupt(format!("tree chunk {id} is damaged: {}", errors.join("; ")))
        })?;
        stream.extend_from_slice(chunk);
    }
    let body = stream
        .strip_prefix(TREE_HEADER)
        .ok_or_else(|| Error::corrupt("tree header missing"))?;
    body.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line).map_err(|e| Error::corrupt(format!("tree node: {e}")))
        })
        .collect()
}
