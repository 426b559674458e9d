//! Forget and prune: the only code that removes anything.
//!
//! Every removal is planned from the catalog, written to the vault as a record
//! (so the vault alone, in a rebuild, knows it), then applied to the catalog, and
//! only then carried out on the medium. A crash at any step leaves a state the next
//! run finishes: a record the catalog lacks is applied again, and volumes marked
//! `pruning` are deleted again (deleting a deleted volume succeeds).

use crate::catalog::{Catalog, VolumeRow};
use crate::crypto::{BlobKind, MasterKey};
use crate::error::{Error, Result};
use crate::ids::{SnapshotId, VolumeId};
use crate::records::{self, FORGET, PRUNE};
use crate::retention::{judge, Decision, Policy};
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Which snapshots `forget` judges, and by what rules.
pub struct ForgetOptions {
    /// The rules.
    pub policy: Policy,
    /// Only snapshots of these hosts (empty: all).
    pub hosts: Vec<String>,
    /// Only snapshots carrying one of these tags (empty: all).
    pub tags: Vec<String>,
    /// Show the plan; change nothing.
    pub dry_run: bool,
}

/// What a forget record holds.
#[derive(Debug, Serialize, Deserialize)]
struct ForgetRecord {
    time: i64,
    snapshots: Vec<SnapshotId>,
}

/// What `forget` decided (and did, unless `dry_run`).
#[derive(Debug, Serialize)]
pub struct ForgetReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Every judged snapshot, group by group, oldest first, with the rules that keep it.
    pub decisions: Vec<Decision>,
    /// Snapshots kept.
    pub kept: usize,
    /// Snapshots forgotten (or that would be, with `dry_run`).
    pub removed: usize,
    /// The vault record that makes it permanent.
    pub record: Option<String>,
    /// Records in the vault that could not be read (ignored, never trusted).
    pub warnings: Vec<String>,
}

/// A volume a prune deletes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrunedVolume {
    /// Sequence number.
    pub sequence: u64,
    /// Volume id.
    pub volume_id: VolumeId,
    /// Object name.
    pub name: String,
    /// Bytes it held.
    pub bytes: u64,
}

/// What a prune record holds.
#[derive(Debug, Serialize, Deserialize)]
struct PruneRecord {
    time: i64,
    volumes: Vec<PrunedVolume>,
}

/// What `prune` decided (and did, unless `dry_run`).
#[derive(Debug, Serialize)]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Volumes no kept snapshot needs: deleted (or that would be).
    pub volumes: Vec<PrunedVolume>,
    /// Bytes those volumes held.
    pub bytes_freed: u64,
    /// Volumes kept because a kept snapshot needs them.
    pub volumes_kept: usize,
    /// Records in the vault that could not be read (ignored, never trusted).
    pub warnings: Vec<String>,
}

/// Apply every forget record in the vault that the catalog has not applied (a run
/// that stopped between writing one and updating the catalog). Returns the forgotten
/// ids and problems reading records.
pub fn forgotten_in_vault(
    vault: &dyn Vault,
    key: &MasterKey,
    vault_id: crate::ids::VaultId,
) -> Result<(HashSet<SnapshotId>, Vec<String>)> {
    let (found, problems) = records::read_all::<ForgetRecord>(vault, key, vault_id, FORGET)?;
    Ok((
        found.into_iter().flat_map(|r| r.snapshots).collect(),
        problems,
    ))
}

/// Volumes that prune records say were deleted on purpose.
pub fn pruned_in_vault(
    vault: &dyn Vault,
    key: &MasterKey,
    vault_id: crate::ids::VaultId,
) -> Result<(HashSet<VolumeId>, Vec<String>)> {
    let (found, problems) = records::read_all::<PruneRecord>(vault, key, vault_id, PRUNE)?;
    Ok((
        found
            .into_iter()
            .flat_map(|r| r.volumes)
            .map(|v| v.volume_id)
            .collect(),
        problems,
    ))
}

fn catch_up(vault: &dyn Vault, catalog: &mut Catalog, key: &MasterKey) -> Result<Vec<String>> {
    let info = catalog.vault_info()?;
    let (forgotten, problems) = forgotten_in_vault(vault, key, info.vault_id)?;
    let pending: Vec<SnapshotId> = catalog
        .snapshots()?
        .into_iter()
        .map(|s| s.id)
        .filter(|id| forgotten.contains(id))
        .collect();
    catalog.forget_snapshots(&pending)?;
    Ok(problems)
}

/// Judge the snapshots by the policy and forget those no rule keeps.
pub fn forget(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    options: &ForgetOptions,
) -> Result<ForgetReport> {
    if options.policy.is_empty() {
        return Err(Error::usage(
            "no --keep-* rule given: forget would remove every snapshot; give at least one",
        ));
    }
    let warnings = catch_up(vault, catalog, key)?;
    let selected: Vec<_> = catalog
        .snapshots()?
        .into_iter()
        .filter(|s| options.hosts.is_empty() || options.hosts.contains(&s.host))
        .filter(|s| options.tags.is_empty() || options.tags.iter().any(|t| s.tags.contains(t)))
        .collect();
    let decisions = judge(&selected, &options.policy);
    let remove: Vec<SnapshotId> = selected
        .iter()
        .filter(|s| {
            decisions
                .iter()
                .any(|d| !d.keep && d.id == s.id.to_string())
        })
        .map(|s| s.id)
        .collect();
    let mut record = None;
    if !options.dry_run && !remove.is_empty() {
        // The vault first: once the record is sealed, no rebuild brings them back.
        let info = catalog.vault_info()?;
        record = Some(records::write(
            vault,
            key,
            info.vault_id,
            FORGET,
            &ForgetRecord {
                time: crate::backup::unix_now(),
                snapshots: remove.clone(),
            },
        )?);
        catalog.forget_snapshots(&remove)?;
    }
    Ok(ForgetReport {
        dry_run: options.dry_run,
        kept: decisions.len() - remove.len(),
        removed: remove.len(),
        decisions,
        record,
        warnings,
    })
}

/// Volumes that no kept snapshot needs: none of their blobs is used by one, and none
/// completes one (its index holds the snapshot's record).
pub fn reclaimable(catalog: &Catalog) -> Result<(Vec<VolumeRow>, usize)> {
    let mut needed: HashSet<u64> = catalog.completing_volumes()?.into_iter().collect();
    for snapshot in catalog.snapshots()? {
        for id in &snapshot.tree {
            if let Some(loc) = catalog.blob_location(id, BlobKind::Tree)? {
                needed.insert(loc.sequence);
            }
        }
        catalog.for_each_node(&snapshot.id, |node| {
            for chunk in &node.chunks {
                if let Some(loc) = catalog.blob_location(&chunk.id, BlobKind::Data)? {
                    needed.insert(loc.sequence);
                }
            }
            Ok(())
        })?;
    }
    let (kept, free): (Vec<VolumeRow>, Vec<VolumeRow>) = catalog
        .volumes()?
        .into_iter()
        .partition(|v| needed.contains(&v.sequence));
    Ok((free, kept.len()))
}

/// Delete the volumes no kept snapshot needs (and finish an interrupted prune).
pub fn prune(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    dry_run: bool,
) -> Result<PruneReport> {
    let warnings = catch_up(vault, catalog, key)?;
    let unfinished = catalog.volumes_being_pruned()?;
    let (free, volumes_kept) = reclaimable(catalog)?;
    let as_pruned = |v: &VolumeRow| PrunedVolume {
        sequence: v.sequence,
        volume_id: v.volume_id,
        name: v.name.clone(),
        bytes: v.bytes,
    };
    let planned: Vec<PrunedVolume> = free.iter().map(as_pruned).collect();
    let mut volumes: Vec<PrunedVolume> = unfinished.iter().map(as_pruned).collect();
    volumes.extend(planned.iter().cloned());
    if !dry_run {
        if !planned.is_empty() {
            // Recorded in the vault, then in the catalog (no more dedup against them),
            // and only then deleted.
            let info = catalog.vault_info()?;
            records::write(
                vault,
                key,
                info.vault_id,
                PRUNE,
                &PruneRecord {
                    time: crate::backup::unix_now(),
                    volumes: planned.clone(),
                },
            )?;
            let sequences: Vec<u64> = planned.iter().map(|v| v.sequence).collect();
            catalog.begin_pruning(&sequences)?;
        }
        for volume in &volumes {
            vault.delete(&volume.name)?;
            catalog.set_volume_state(volume.sequence, "pruned")?;
        }
    }
    Ok(PruneReport {
        dry_run,
        bytes_freed: volumes.iter().map(|v| v.bytes).sum(),
        volumes,
        volumes_kept,
        warnings,
    })
}
