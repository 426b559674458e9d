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

/// A reclaimable volume the vault does not let us delete yet.
#[derive(Debug, Serialize)]
pub struct LockedVolume {
    /// Sequence number.
    pub sequence: u64,
    /// Object name.
    pub name: String,
    /// Bytes it holds.
    pub bytes: u64,
    /// What holds it, and until when.
    pub lock: String,
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
    /// Volumes no kept snapshot needs that may not be deleted yet (S3 object lock):
    /// kept, and deleted by a prune after their lock ends.
    pub locked: Vec<LockedVolume>,
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
    // A locked volume is never planned: the record would promise a deletion that
    // cannot happen, and the catalog would stop deduplicating against live data.
    let mut planned = Vec::new();
    let mut locked = Vec::new();
    for volume in &free {
        match vault.deletion_lock(&volume.name)? {
            Some(lock) => locked.push(LockedVolume {
                sequence: volume.sequence,
                name: volume.name.clone(),
                bytes: volume.bytes,
                lock,
            }),
            None => planned.push(as_pruned(volume)),
        }
    }
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
        locked,
        warnings,
    })
}

/// Which volumes `consolidate` may rewrite.
pub struct ConsolidateOptions {
    /// Rewrite at most this many volumes.
    pub max_volumes: usize,
    /// Copy at most this many bytes of live blobs.
    pub max_bytes: u64,
    /// Only volumes whose live blobs take at most this percentage of them.
    pub max_live_percent: u8,
    /// Size of the new volumes.
    pub volume_size: u64,
    /// Show the plan; change nothing.
    pub dry_run: bool,
}

/// A volume chosen for consolidation.
#[derive(Debug, Serialize)]
pub struct Consolidated {
    /// Sequence number.
    pub sequence: u64,
    /// Object name.
    pub name: String,
    /// Volume size.
    pub bytes: u64,
    /// Bytes of blobs in it that kept snapshots still use (copied out).
    pub live_bytes: u64,
}

/// What `consolidate` did (or would do).
#[derive(Debug, Serialize)]
pub struct ConsolidateReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Volumes whose live blobs were copied out; prune then deletes them.
    pub volumes: Vec<Consolidated>,
    /// The new volumes that hold the copies.
    pub written: Vec<String>,
    /// Live bytes copied (or that would be).
    pub bytes_copied: u64,
    /// Blobs that could not be read (they stay where they are; so does their volume).
    pub unreadable: Vec<String>,
    /// A volume an interrupted earlier run sealed but had not recorded, recorded now.
    pub notes: Vec<String>,
}

/// Copy the blobs kept snapshots still use out of mostly-dead volumes into new ones,
/// so that `prune` can delete the old ones. Volumes that complete a kept snapshot are
/// never chosen (their index holds the snapshot's record).
pub fn consolidate(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    options: &ConsolidateOptions,
) -> Result<ConsolidateReport> {
    catch_up(vault, catalog, key)?;
    let completing: HashSet<u64> = catalog.completing_volumes()?.into_iter().collect();
    // Live blobs per volume, each once.
    let mut live: std::collections::BTreeMap<u64, crate::restore::PackBlobs> = Default::default();
    let mut seen: HashSet<(crate::ids::ChunkId, BlobKind)> = HashSet::new();
    let mut note = |id: crate::ids::ChunkId, kind: BlobKind| -> Result<()> {
        if seen.insert((id, kind)) {
            if let Some(loc) = catalog.blob_location(&id, kind)? {
                live.entry(loc.sequence)
                    .or_default()
                    .entry(loc.pack)
                    .or_default()
                    .push((id, loc));
            }
        }
        Ok(())
    };
    for snapshot in catalog.snapshots()? {
        for id in &snapshot.tree {
            note(*id, BlobKind::Tree)?;
        }
        catalog.for_each_node(&snapshot.id, |node| {
            for chunk in &node.chunks {
                note(chunk.id, BlobKind::Data)?;
            }
            Ok(())
        })?;
    }
    let live_bytes = |sequence: u64| -> u64 {
        live.get(&sequence).map_or(0, |packs| {
            packs
                .values()
                .flatten()
                .map(|(_, loc)| u64::from(loc.sealed_len))
                .sum()
        })
    };
    let mut candidates: Vec<(VolumeRow, u64)> = catalog
        .volumes()?
        .into_iter()
        .filter(|v| v.state == "sealed" && !completing.contains(&v.sequence))
        .map(|v| {
            let bytes = live_bytes(v.sequence);
            (v, bytes)
        })
        // Wholly dead volumes need no copy: prune deletes them as they are.
        .filter(|(v, bytes)| {
            *bytes > 0 && *bytes * 100 <= v.bytes * u64::from(options.max_live_percent)
        })
        .collect();
    candidates.sort_by_key(|(v, bytes)| (bytes * 1000 / v.bytes.max(1), v.sequence));
    let mut chosen = Vec::new();
    let mut budget = options.max_bytes;
    for (volume, bytes) in candidates {
        if chosen.len() >= options.max_volumes || bytes > budget {
            continue;
        }
        budget -= bytes;
        chosen.push((volume, bytes));
    }
    let mut report = ConsolidateReport {
        dry_run: options.dry_run,
        volumes: chosen
            .iter()
            .map(|(v, bytes)| Consolidated {
                sequence: v.sequence,
                name: v.name.clone(),
                bytes: v.bytes,
                live_bytes: *bytes,
            })
            .collect(),
        written: Vec::new(),
        bytes_copied: chosen.iter().map(|(_, bytes)| bytes).sum(),
        unreadable: Vec::new(),
        notes: Vec::new(),
    };
    if options.dry_run || chosen.is_empty() {
        return Ok(report);
    }
    let info = catalog.vault_info()?;
    let keys = crate::restore::ReadKeys {
        vault_id: info.vault_id,
        master: key,
        ids: key.chunk_id_key(),
    };
    let mut copied = 0;
    let mut unreadable = Vec::new();
    let (written, adopted) =
        crate::backup::store_again(vault, catalog, key, options.volume_size, |store| {
            for (volume, _) in &chosen {
                let mut findings = crate::restore::Findings::default();
                let mut failed = None;
                let source = vault.open(&volume.name)?;
                crate::restore::read_volume(
                    crate::parity::RepairingReader::new(source),
                    volume,
                    &keys,
                    &live[&volume.sequence],
                    &mut findings,
                    |id, loc, plain| {
                        if failed.is_none() {
                            copied += u64::from(loc.sealed_len);
                            failed = store(loc.kind, *id, &plain).err();
                        }
                    },
                )?;
                if let Some(err) = failed {
                    return Err(err);
                }
                unreadable.extend(findings.damage);
            }
            Ok(())
        })?;
    report.written = written;
    report.bytes_copied = copied;
    report.unreadable = unreadable;
    report.notes = adopted;
    Ok(report)
}
