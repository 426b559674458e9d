//! `catalog rebuild`: a new catalog from the vault and the passphrase (or the key) alone.
//!
//! For each volume it reads the label at the start and the index at the end by
//! ranged reads, never the data between; each volume's size and BLAKE3 as
//! sealed come from the set list in a later volume's index (so keyless verify
//! still finds damage done before the rebuild), and only volumes no set list
//! covers (the newest) are read whole. Then each snapshot's tree blobs are
//! read back into nodes. It never writes to the vault.
//!
//! A volume whose index is damaged or missing is recovered by scanning its
//! self-describing packs (recorded `damaged`, so nothing dedups against it);
//! a volume whose label is damaged is identified through the set list of a
//! later volume's index. Foreign and unreadable volumes are reported, not
//! recorded.

use crate::catalog::{Catalog, VaultInfo, VolumeRow};
use crate::crypto::{BlobKind, MasterKey};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ChunkId, VaultId, VolumeId};
use crate::model::{Node, SnapshotRecord};
use crate::parity::RepairingReader;
use crate::restore::{locate, read_volume, Findings, ReadKeys};
use crate::vault::Vault;
use crate::volume::{
    is_volume_name, parse_volume_name, HashingReader, IndexBlob, IndexPack, Label, SetEntry,
    VolumeIndex, VolumeReader, INDEX_MEMBER,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// What a rebuild found.
#[derive(Debug, Default, Serialize)]
pub struct RebuildSummary {
    /// Volumes recorded, in the order they were read.
    pub volumes: Vec<String>,
    /// Snapshots recorded.
    pub snapshots: usize,
    /// Volumes or snapshots that could not be (fully) used, with the reason.
    pub problems: Vec<String>,
    /// Bytes read from the vault (labels and indexes when they are intact).
    pub bytes_read: u64,
    /// Seconds the rebuild took.
    pub seconds: f64,
}

/// Sealed volume names in the vault, in name (= sequence) order.
pub fn volume_names(vault: &dyn Vault) -> Result<Vec<String>> {
    let mut names: Vec<String> = vault
        .list()?
        .sealed
        .into_iter()
        .filter(|n| is_volume_name(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Volumes the catalog names that the vault holds under another name (renamed,
/// renumbered, copied in by hand): recognised by the volume id in their labels, never
/// by name, and the catalog follows the vault. One note per volume found (T14).
pub fn follow_renamed(vault: &dyn Vault, catalog: &mut Catalog) -> Result<Vec<String>> {
    let listing = vault.list()?;
    if listing.volumes_unlisted {
        return Ok(Vec::new());
    }
    let volumes = catalog.volumes()?;
    let mut lost: Vec<&VolumeRow> = volumes
        .iter()
        .filter(|v| !listing.sealed.contains(&v.name))
        .collect();
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let vault_id = catalog.vault_info()?.vault_id;
    let mut notes = Vec::new();
    let unknown = listing
        .sealed
        .iter()
        .filter(|n| n.ends_with(".tar") && !volumes.iter().any(|v| &v.name == *n));
    for name in unknown {
        let Ok((_, label)) = head_label(vault, name) else {
            continue;
        };
        let Some(at) = lost
            .iter()
            .position(|v| label.vault_id == vault_id && v.volume_id == label.volume_id)
        else {
            continue;
        };
        let volume = lost.remove(at);
        catalog.set_volume_name(volume.sequence, name)?;
        notes.push(format!(
            "volume #{} {} is in the vault as {name}: the catalog follows",
            volume.sequence, volume.name
        ));
    }
    Ok(notes)
}

/// A volume's size and label, from a ranged read of its start: the label is the first
/// member, a few KiB, never the whole volume.
pub(crate) fn head_label(vault: &dyn Vault, name: &str) -> Result<(u64, Label)> {
    let (size, head) = vault.read_range(name, 0, LABEL_WINDOW)?;
    Ok((size, VolumeReader::new(&head[..]).read_label()?))
}

fn read_label(vault: &dyn Vault, name: &str) -> Result<Label> {
    if !is_volume_name(name) {
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

/// The first readable label of the vault (key labels first): who the vault is.
pub fn any_label(vault: &dyn Vault) -> Result<Label> {
    label_candidates(vault)?
        .iter()
        .find_map(|name| read_label(vault, name).ok())
        .ok_or_else(|| {
            Error::corrupt(format!(
                "vault {} holds no readable tapevault label",
                vault.location()
            ))
        })
}

/// Names that carry a label: key labels (`vault.tvl` first), then volumes in order.
fn label_candidates(vault: &dyn Vault) -> Result<Vec<String>> {
    let mut candidates: Vec<String> = vault
        .list()?
        .sealed
        .into_iter()
        .filter(|n| crate::keys::is_key_label_name(n))
        .collect();
    candidates.sort_by_key(|n| n != crate::keys::VAULT_LABEL);
    candidates.extend(volume_names(vault)?);
    Ok(candidates)
}

/// Unlock the master key with `passphrase` from the first label whose wrapped key it opens:
/// key labels first (`vault.tvl`, then those `key passwd` added), then volume labels.
pub fn unlock_from_labels(vault: &dyn Vault, passphrase: &[u8]) -> Result<(Label, MasterKey)> {
    let candidates = label_candidates(vault)?;
    let mut tried = HashSet::new();
    let mut failure = None;
    for name in &candidates {
        let Ok(label) = read_label(vault, name) else {
            continue;
        };
        // Each distinct wrapped key costs one argon2 run; most labels share one.
        if !tried.insert(label.wrapped_key.clone()) {
            continue;
        }
        match label.wrapped_key.unwrap(label.vault_id, passphrase) {
            // A label can be replaced by one wrapping another key under the same
            // passphrase (T45): trust a key only if it opens the vault's packs.
            Ok(key) if !crate::keys::is_key_label_name(name) => return Ok((label, key)),
            Ok(key) => match crate::keys::key_opens_vault(vault, label.vault_id, &key) {
                Ok(_) => return Ok((label, key)),
                Err(err) => failure = Some(err),
            },
            Err(err) if err.kind() == ErrorKind::WrongKey || failure.is_none() => {
                failure = Some(err)
            }
            Err(_) => {}
        }
    }
    Err(failure.unwrap_or_else(|| {
        Error::corrupt(format!(
            "vault {} holds no readable tapevault label",
            vault.location()
        ))
    }))
}

/// Rebuild a catalog for `vault` in the new folder `catalog_dir`, unlocking with `passphrase`.
pub fn rebuild(vault: &dyn Vault, catalog_dir: &Path, passphrase: &[u8]) -> Result<RebuildSummary> {
    let (label, key) = unlock_from_labels(vault, passphrase)?;
    let info = VaultInfo {
        vault_id: label.vault_id,
        address: vault.location().to_string(),
        fingerprint: key.fingerprint(),
        wrapped_key: label.wrapped_key.clone(),
        chunker: label.chunker.clone(),
    };
    rebuild_with_key(vault, catalog_dir, &key, &info)
}

/// Rebuild a catalog holding `info` (whose wrapped key unlocks `key`) from the vault.
pub fn rebuild_with_key(
    vault: &dyn Vault,
    catalog_dir: &Path,
    key: &MasterKey,
    info: &VaultInfo,
) -> Result<RebuildSummary> {
    let started = std::time::Instant::now();
    let names = volume_names(vault)?;
    let mut catalog = Catalog::create(catalog_dir, info)?;
    match fill(vault, &mut catalog, info.vault_id, key, &names) {
        Ok(mut summary) => {
            summary.seconds = started.elapsed().as_secs_f64();
            Ok(summary)
        }
        Err(err) => {
            // A half-built catalog would be trusted by the next run; leave none behind.
            catalog.discard();
            Err(err)
        }
    }
}

/// Record one sealed volume a catalog lacks (and any snapshot its index completes),
/// exactly as a rebuild would.
pub(crate) fn adopt(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    vault_id: VaultId,
    key: &MasterKey,
    name: &str,
) -> Result<RebuildSummary> {
    fill(vault, catalog, vault_id, key, &[name.to_string()])
}

/// A volume as read back: its row, packs and what its index added.
struct ScannedVolume {
    row: VolumeRow,
    packs: Vec<IndexPack>,
    index: Option<VolumeIndex>,
    problem: Option<String>,
    /// Bytes read from the vault for it.
    bytes_read: u64,
}

/// Why a volume could not be scanned.
enum ScanError {
    /// The label is unreadable; a later volume's set list may identify it.
    LabelDamaged(Error),
    Other(Error),
}

impl From<Error> for ScanError {
    fn from(err: Error) -> ScanError {
        ScanError::Other(err)
    }
}

/// What the volumes read so far said about the vault.
#[derive(Default)]
struct Found {
    /// Which volume claimed each sequence first.
    seen: HashMap<u64, String>,
    /// Earlier volumes by sequence (id, and size and hash when sealed), from intact indexes.
    set: HashMap<u64, SetEntry>,
    /// Volumes whose size and hash must come from a later set list or a full read.
    unhashed: Vec<(u64, VolumeId, String)>,
    /// Snapshot records and the volume that completed each.
    snapshots: Vec<(SnapshotRecord, u64)>,
    /// The volume set of the last volume recorded.
    last_set: u64,
    /// Volumes `consolidate` wrote: they complete no snapshot, by design.
    consolidations: HashSet<u64>,
}

impl Found {
    fn record(
        &mut self,
        catalog: &mut Catalog,
        name: &str,
        scanned: ScannedVolume,
        summary: &mut RebuildSummary,
    ) -> Result<()> {
        let sequence = scanned.row.sequence;
        if let Some(first) = self.seen.get(&sequence) {
            summary.problems.push(format!(
                "{name}: claims sequence {sequence} like {first}; ignored"
            ));
            return Ok(());
        }
        self.seen.insert(sequence, name.to_string());
        let mut row = scanned.row;
        if row.volume_set == 0 {
            row.volume_set = self.last_set.max(1);
        }
        self.last_set = row.volume_set;
        catalog.record_volume(&row, &scanned.packs, None)?;
        summary.problems.extend(scanned.problem);
        summary.bytes_read += scanned.bytes_read;
        if row.blake3.is_empty() {
            self.unhashed
                .push((sequence, row.volume_id, name.to_string()));
        }
        if scanned.index.as_ref().is_some_and(|i| i.consolidation) {
            self.consolidations.insert(sequence);
        }
        if let Some(index) = scanned.index {
            self.set
                .extend(index.set.into_iter().map(|e| (e.sequence, e)));
            self.snapshots
                .extend(index.snapshots.into_iter().map(|s| (s, sequence)));
        }
        summary.volumes.push(name.to_string());
        Ok(())
    }
}

/// Record every readable volume, then every snapshot whose tree can be read.
fn fill(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    vault_id: VaultId,
    key: &MasterKey,
    names: &[String],
) -> Result<RebuildSummary> {
    let mut summary = RebuildSummary::default();
    // What forget and prune removed on purpose stays removed.
    let (forgotten, problems) = crate::prune::forgotten_in_vault(vault, key, vault_id)?;
    summary.problems.extend(problems);
    let (pruned, problems) = crate::prune::pruned_in_vault(vault, key, vault_id)?;
    summary.problems.extend(problems);
    let mut found = Found::default();
    // Volumes the catalog already holds are known, not missing.
    for volume in catalog.volumes()? {
        found.seen.insert(volume.sequence, volume.name);
    }
    let mut label_damaged = Vec::new();
    for name in names {
        match scan_volume(vault, name, vault_id, key, None) {
            // A volume a prune was deleting when it stopped: gone on purpose.
            Ok(scanned) if pruned.contains(&scanned.row.volume_id) => {}
            Ok(scanned) => found.record(catalog, name, scanned, &mut summary)?,
            Err(ScanError::LabelDamaged(err)) => label_damaged.push((name, err)),
            Err(ScanError::Other(err)) => summary.problems.push(format!("{name}: {err}")),
        }
    }
    for (name, err) in label_damaged {
        let identity = parse_volume_name(name).and_then(|(sequence, prefix)| {
            let entry = found.set.get(&sequence)?;
            entry
                .volume_id
                .to_string()
                .starts_with(prefix)
                .then(|| entry.clone())
        });
        let Some(identity) = identity else {
            summary.problems.push(format!(
                "{name}: {err}, and no later volume's index names it"
            ));
            continue;
        };
        match scan_volume(vault, name, vault_id, key, Some(identity)) {
            Ok(mut scanned) => {
                scanned.problem.get_or_insert(format!(
                    "{name}: {err}; identified by a later volume's index and read"
                ));
                found.record(catalog, name, scanned, &mut summary)?;
            }
            Err(ScanError::LabelDamaged(err) | ScanError::Other(err)) => {
                summary.problems.push(format!("{name}: {err}"))
            }
        }
    }
    let mut lost: Vec<&SetEntry> = found
        .set
        .values()
        .filter(|entry| {
            !found.seen.contains_key(&entry.sequence) && !pruned.contains(&entry.volume_id)
        })
        .collect();
    lost.sort_by_key(|entry| entry.sequence);
    for entry in lost {
        summary.problems.push(format!(
            "volume #{} (id {}) is missing from the vault: a later volume's index names it",
            entry.sequence, entry.volume_id
        ));
    }
    record_hashes(vault, catalog, &found, &mut summary)?;
    let newest = found
        .seen
        .keys()
        .filter(|s| !found.consolidations.contains(s))
        .max()
        .copied();
    if let Some(newest) = newest {
        if !found.snapshots.iter().any(|(_, s)| *s == newest) {
            summary.problems.push(format!(
                "the newest volume (#{newest}) completes no snapshot: later volumes may be \
                 missing, or the last backup did not finish"
            ));
        }
    }
    if summary.volumes.is_empty() && !names.is_empty() {
        return Err(Error::corrupt(format!(
            "no volume of vault {} could be read: {}",
            vault.location(),
            summary.problems.join("; ")
        )));
    }
    for (record, sequence) in found.snapshots {
        if forgotten.contains(&record.id) {
            continue;
        }
        catalog.begin_snapshot(&record.id)?;
        match stage_tree(vault, catalog, key, vault_id, &record) {
            Ok(()) => {
                catalog.complete_snapshot(&record, sequence)?;
                summary.snapshots += 1;
            }
            Err(err) => {
                catalog.discard_pending()?;
                summary.problems.push(format!(
                    "snapshot {}: tree unreadable: {err}",
                    record.id.short()
                ));
            }
        }
    }
    Ok(summary)
}

/// Record each volume's size and BLAKE3 as sealed: from a later volume's set list
/// when it has them (so verify still finds damage that happened before the rebuild),
/// else by reading the volume whole (the newest volume, or volumes of older builds).
fn record_hashes(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    found: &Found,
    summary: &mut RebuildSummary,
) -> Result<()> {
    for (sequence, volume_id, name) in &found.unhashed {
        let from_set = found.set.get(sequence).and_then(|entry| {
            (entry.volume_id == *volume_id)
                .then(|| entry.bytes.zip(entry.blake3.clone()))
                .flatten()
        });
        let (bytes, blake3) = match from_set {
            Some(known) => known,
            None => {
                let hashed = HashingReader::new(vault.open(name)?).finish()?;
                summary.bytes_read += hashed.0;
                hashed
            }
        };
        catalog.set_volume_hash(*sequence, bytes, &blake3)?;
    }
    Ok(())
}

/// Bytes read from a volume's start to find its label (a label member is under 2 KiB).
const LABEL_WINDOW: u64 = 8 << 10;
/// First tail read for the index; grown while the index header is not in it.
const FIRST_TAIL_WINDOW: u64 = 32 << 10;

/// Read one volume: its label (or the `identity` a set list gave), then its index
/// from the tail by ranged reads, or, when that fails, every member front to back,
/// recovering packs from their sealed headers.
fn scan_volume(
    vault: &dyn Vault,
    name: &str,
    vault_id: VaultId,
    key: &MasterKey,
    identity: Option<SetEntry>,
) -> std::result::Result<ScannedVolume, ScanError> {
    let (size, head) = vault.read_range(name, 0, LABEL_WINDOW)?;
    let label = VolumeReader::new(&head[..])
        .read_label_bytes()
        .and_then(|bytes| Label::decode(&bytes))
        .or_else(|err| {
            // A damaged label may be one that the volume's parity repairs.
            vault
                .open(name)
                .and_then(|source| {
                    let bytes =
                        VolumeReader::new(RepairingReader::new(source)).read_label_bytes()?;
                    Label::decode(&bytes)
                })
                .map_err(|_| err)
        });
    let (sequence, volume_id, created) = match (label, identity) {
        (_, Some(known)) => (known.sequence, known.volume_id, 0),
        // Foreign, or our own volume with a damaged vault id: a set list may tell.
        (Ok(label), None) if label.vault_id != vault_id => {
            return Err(ScanError::LabelDamaged(Error::corrupt(format!(
                "its label names another vault ({})",
                label.vault_id
            ))))
        }
        (Ok(label), None) => (label.sequence, label.volume_id, label.created),
        (Err(err), None) => return Err(ScanError::LabelDamaged(err)),
    };
    let volume_key = key.volume_key(&volume_id);
    let row = VolumeRow {
        sequence,
        volume_id,
        name: name.to_string(),
        state: "sealed".into(),
        bytes: size,
        // Filled in by `record_hashes`.
        blake3: String::new(),
        created,
        // From the index; a volume recovered without one joins its predecessor's set.
        volume_set: 0,
    };
    let open =
        |sealed: &[u8]| VolumeIndex::open(sealed, vault_id, volume_id, sequence, &volume_key);
    match index_from_tail(vault, name, size, &open) {
        Ok((index, tail_bytes)) => Ok(ScannedVolume {
            row: VolumeRow {
                volume_set: index.volume_set.unwrap_or(1),
                ..row
            },
            packs: index.packs.clone(),
            index: Some(index),
            problem: None,
            bytes_read: head.len() as u64 + tail_bytes,
        }),
        Err(_) => scan_members(vault, name, row, vault_id, &volume_key, &open),
    }
}

/// Find the index member at the volume's end: its header sits where its padded data
/// plus the two end blocks (and the last parity member, if the volume has parity)
/// reach exactly the end. Returns the index and bytes read.
pub(crate) fn index_from_tail(
    vault: &dyn Vault,
    name: &str,
    size: u64,
    open: &dyn Fn(&[u8]) -> Result<VolumeIndex>,
) -> Result<(VolumeIndex, u64)> {
    const BLOCK: u64 = 512;
    let end_of_index = size
        .checked_sub(2 * BLOCK)
        .filter(|end| end % BLOCK == 0)
        .ok_or_else(|| Error::corrupt("not a whole number of tar blocks"))?;
    let mut read = 0;
    let mut window = FIRST_TAIL_WINDOW;
    loop {
        let start = size.saturating_sub(window) / BLOCK * BLOCK;
        let (_, tail) = vault.read_range(name, start, size - start)?;
        read += tail.len() as u64;
        let mut at = end_of_index;
        // The index ends where the end blocks begin, or where the last parity member does.
        let mut index_end = end_of_index;
        while at >= start + BLOCK {
            at -= BLOCK;
            let offset = (at - start) as usize;
            let block: &[u8; 512] = tail[offset..offset + 512].try_into().expect("one block");
            let Ok(member) = crate::volume::parse_header(block, at) else {
                continue;
            };
            let member_end = member.offset + member.size.div_ceil(BLOCK) * BLOCK;
            if member_end == index_end && crate::parity::is_parity_member(&member.name) {
                index_end = at;
            }
            if member.name == INDEX_MEMBER && member_end == index_end {
                let data = &tail[offset + 512..][..member.size as usize];
                return open(data).map(|index| (index, read));
            }
        }
        if start == 0 || window > crate::volume::MAX_MEMBER_BYTES {
            return Err(Error::corrupt("no index at the volume's end"));
        }
        window *= 8;
    }
}

/// The slow path: every member front to back (hashing all of it), the index if it
/// opens, else the packs recovered from their sealed headers.
fn scan_members(
    vault: &dyn Vault,
    name: &str,
    mut row: VolumeRow,
    vault_id: VaultId,
    volume_key: &crate::crypto::VolumeKey,
    open: &dyn Fn(&[u8]) -> Result<VolumeIndex>,
) -> std::result::Result<ScannedVolume, ScanError> {
    let mut stored = HashingReader::new(vault.open(name)?);
    let mut repairing = RepairingReader::new(&mut stored);
    let mut reader = VolumeReader::new(HashingReader::new(&mut repairing));
    reader.read_label_bytes()?;
    let mut index = None;
    let mut index_problem = None;
    let mut scanned = Vec::new();
    let mut broken = None;
    let mut skipped = Vec::new();
    loop {
        // Past a damaged header or zeroed blocks, scan on: only that member is lost.
        let member = match reader.next_member() {
            Ok(Some(member)) => Some(member),
            Ok(None) => reader
                .resync()?
                .inspect(|m| skipped.push(format!("zeroed blocks before byte {}", m.offset - 512))),
            Err(err) if err.kind() == crate::error::ErrorKind::Corrupt => {
                let next = reader.resync()?;
                skipped.push(err.to_string());
                next
            }
            Err(err) => {
                broken = Some(err);
                break;
            }
        };
        let Some(member) = member else {
            break;
        };
        let data = match reader.read_data(&member) {
            Ok(data) => data,
            Err(err) => {
                broken = Some(err);
                break;
            }
        };
        if member.name == INDEX_MEMBER {
            match open(&data) {
                Ok(opened) => index = Some(opened),
                Err(err) => index_problem = Some(err),
            }
        } else if let Some(number) = crate::volume::pack_number(&member.name) {
            let sealer = volume_key.pack_sealer(vault_id, number);
            // Headers only: cheap, and what a scan needs if the index turns out unusable.
            if let Ok(entries) = crate::pack::read_entries(&data, &sealer) {
                scanned.push(IndexPack {
                    number,
                    offset: member.offset,
                    length: member.size,
                    blobs: entries.iter().map(IndexBlob::from).collect(),
                });
            }
        }
    }
    // The hash of the bytes as repaired by parity: what was sealed, if parity sufficed.
    let (bytes, blake3) = reader.into_inner().finish()?;
    let repaired = repairing.take_log();
    skipped.extend(repaired.unrepaired);
    stored.finish()?;
    row.bytes = bytes;
    if let Some(index) = &index {
        row.volume_set = index.volume_set.unwrap_or(1);
    }
    if let (Some(index), None) = (&index, &broken) {
        // The index authenticates: it lists every pack and snapshot, even past damage.
        let problem = if skipped.is_empty() && repaired.repaired.is_empty() {
            // Intact after all (an odd tail): what was read is what was sealed.
            row.blake3 = blake3;
            None
        } else if skipped.is_empty() {
            row.blake3 = blake3;
            row.state = "damaged".into();
            Some(format!(
                "{name}: bytes {} rebuilt from parity; the medium is failing",
                repaired
                    .repaired
                    .iter()
                    .map(|(at, len)| format!("{at}..{}", at + len))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            row.state = "damaged".into();
            Some(format!(
                "{name}: {}; its index is intact, the members at those places are lost",
                skipped.join("; ")
            ))
        };
        return Ok(ScannedVolume {
            row,
            packs: index.packs.clone(),
            index: Some(index.clone()),
            problem,
            bytes_read: bytes,
        });
    }
    if broken.is_none() && !skipped.is_empty() {
        broken = Some(Error::corrupt(skipped.join("; ")));
    }
    if scanned.is_empty() {
        let why = broken
            .or(index_problem)
            .unwrap_or_else(|| Error::corrupt("no index: the volume was never finished"));
        return Err(ScanError::Other(why));
    }
    // Recovered by scan: restorable, but never trusted for dedup.
    row.state = "damaged".into();
    let why = match (&broken, &index_problem) {
        (Some(err), _) => err.to_string(),
        (None, Some(err)) => format!("index damaged ({err})"),
        (None, None) => "index missing".into(),
    };
    Ok(ScannedVolume {
        row,
        problem: Some(format!(
            "{name}: {why}; {} packs recovered by scanning; snapshot records kept only in its index are lost",
            scanned.len()
        )),
        packs: scanned,
        index: None,
        bytes_read: bytes,
    })
}

/// Read a snapshot's tree blobs in order and stage its nodes in the catalog as each blob
/// is decoded: a tree of millions of nodes is never held whole (held whole, 1.6 million
/// files took 2 GB to rebuild).
fn stage_tree(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    vault_id: VaultId,
    record: &SnapshotRecord,
) -> Result<()> {
    let tree = &record.tree;
    let stage = |catalog: &mut Catalog, nodes: Vec<Node>| {
        nodes
            .chunks(512)
            .try_for_each(|batch| catalog.add_nodes(&record.id, batch))
    };
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
    let mut located = HashMap::new();
    for (sequence, per_pack) in &plan {
        let volume = volumes
            .get(sequence)
            .ok_or_else(|| Error::corrupt("tree volume unknown"))?;
        for (id, loc) in per_pack.values().flatten() {
            located.insert(*id, (volume, per_pack, loc));
        }
    }
    // A tree blob is read by a ranged read; when one fails, its volume is read front to
    // back through its parity, and that volume's tree blobs wait here for their turn.
    let mut read_whole: HashMap<ChunkId, Vec<u8>> = HashMap::new();
    let mut volumes_read_whole = HashSet::new();
    let mut findings = Findings::default();
    let mut decoder = crate::model::TreeDecoder::default();
    for id in tree {
        let (volume, per_pack, loc) = located[id];
        if !read_whole.contains_key(id) {
            let volume_ref = (volume.name.as_str(), &volume.volume_id);
            if let Ok(plain) = keys.read_blob(vault, volume_ref, id, loc) {
                stage(catalog, decoder.feed(&plain)?)?;
                continue;
            }
            if volumes_read_whole.insert(volume.sequence) {
                read_volume(
                    vault.open(&volume.name)?,
                    volume,
                    &keys,
                    per_pack,
                    &mut findings,
                    |id, _, plain| {
                        read_whole.insert(*id, plain);
                    },
                )?;
            }
        }
        let plain = read_whole.get(id).ok_or_else(|| {
            Error::corrupt(format!(
                "tree chunk {id} is damaged: {}",
                findings.damage.join("; ")
            ))
        })?;
        stage(catalog, decoder.feed(plain)?)?;
    }
    stage(catalog, decoder.finish()?)
}
