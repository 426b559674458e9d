//! `verify`: keyless (every volume's bytes against the catalog) and `--deep` (every blob and file).
//!
//! Keyless verify needs no passphrase: it re-hashes each sealed volume and
//! compares size and BLAKE3 with what was recorded when it was sealed. Deep
//! verify also opens every blob (authentication, decompression, chunk id),
//! checks every volume index, recomputes the whole-file BLAKE3 of every
//! distinct file from its chunks (ranged reads, in file order), and names
//! every file of every snapshot that uses a blob that failed, with the byte
//! ranges it would lose. Neither
//! writes to the vault; both continue past every problem and record what
//! they found as the volume's state in the catalog (`sealed`, `damaged`,
//! `missing`), so no later backup dedups against a damaged volume.

use crate::catalog::{Catalog, VolumeRow};
use crate::crypto::{BlobKind, MasterKey};
use crate::error::{ErrorKind, Result};
use crate::ids::ChunkId;
use crate::model::NodeKind;
use crate::parity::{Repair, RepairingReader};
use crate::progress::{Event, Observer};
use crate::restore::{locate, read_volume, Findings, PackBlobs, ReadKeys};
use crate::vault::{Listing, Vault};
use crate::volume::{HashingReader, VolumeIndex, INDEX_MEMBER};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A volume with a problem.
#[derive(Debug, Serialize)]
pub struct VolumeProblem {
    /// Sequence number.
    pub sequence: u64,
    /// Object name.
    pub name: String,
    /// Volume id.
    pub volume_id: String,
    /// What is wrong.
    pub reason: String,
}

/// What a keyless verify found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Volumes whose bytes match the catalog.
    pub volumes_ok: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Volumes the vault no longer has.
    pub missing: Vec<VolumeProblem>,
    /// Volumes whose bytes differ from what was sealed.
    pub damaged: Vec<VolumeProblem>,
    /// Unfinished volumes from crashed runs (never trusted).
    pub abandoned: Vec<String>,
    /// Volumes in the vault that the catalog does not know.
    pub extra: Vec<String>,
    /// Damage rebuilt from parity: those volumes read back whole, but their medium is failing.
    pub repaired: Vec<Repair>,
}

impl VerifyReport {
    /// Some sealed volume is missing or damaged (exit 4).
    pub fn has_damage(&self) -> bool {
        !self.missing.is_empty() || !self.damaged.is_empty()
    }
    /// Something needs an operator's look but no data is lost (exit 3).
    pub fn has_warnings(&self) -> bool {
        !self.abandoned.is_empty() || !self.extra.is_empty() || !self.repaired.is_empty()
    }

    /// Abandoned volumes, and volumes the catalog does not know (volumes a prune is
    /// still deleting are known).
    fn start(listing: &Listing, catalog: &Catalog) -> Result<VerifyReport> {
        let mut volumes = catalog.volumes()?;
        volumes.extend(catalog.volumes_being_pruned()?);
        Ok(VerifyReport {
            abandoned: listing.partial.clone(),
            extra: listing
                .sealed
                .iter()
                .filter(|name| {
                    crate::volume::is_volume_name(name) && !volumes.iter().any(|v| &v.name == *name)
                })
                .cloned()
                .collect(),
            ..VerifyReport::default()
        })
    }

    /// File a volume's outcome: `None` is healthy, else a reason it is damaged.
    /// A volume that parity repaired is whole, but recorded damaged so that no
    /// new backup leans on a failing medium.
    fn volume_outcome(
        &mut self,
        volume: &VolumeRow,
        bytes: u64,
        damage: Option<String>,
        repaired: Vec<Repair>,
    ) -> &'static str {
        self.bytes_checked += bytes;
        match damage {
            None if !repaired.is_empty() => {
                self.repaired.extend(repaired);
                "damaged"
            }
            None => {
                self.volumes_ok += 1;
                "sealed"
            }
            Some(reason) => {
                self.damaged.push(problem(volume, reason));
                "damaged"
            }
        }
    }
}

fn problem(volume: &VolumeRow, reason: String) -> VolumeProblem {
    VolumeProblem {
        sequence: volume.sequence,
        name: volume.name.clone(),
        volume_id: volume.volume_id.to_string(),
        reason,
    }
}

/// Compare a volume's size and hash as read with what the catalog recorded at sealing.
fn compare(volume: &VolumeRow, bytes: u64, hash: &str) -> Option<String> {
    if bytes != volume.bytes {
        Some(format!(
            "{bytes} bytes where {} were sealed (truncated or replaced)",
            volume.bytes
        ))
    } else if hash != volume.blake3 {
        Some("content differs from what was sealed (BLAKE3 mismatch)".into())
    } else {
        None
    }
}

/// Check every volume the catalog knows against the vault, without the key.
pub fn verify(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    progress: &dyn Observer,
) -> Result<VerifyReport> {
    let listing = vault.list()?;
    let volumes = catalog.volumes()?;
    let mut report = VerifyReport::start(&listing, catalog)?;
    planned(&volumes, progress);
    for volume in &volumes {
        progress.on(Event::Reading(&volume.name));
        let state = if !listing.sealed.contains(&volume.name) {
            report
                .missing
                .push(problem(volume, "missing from the vault".into()));
            "missing"
        } else {
            let mut findings = Findings::default();
            vault.forget_cached(&volume.name);
            let read = vault.open(&volume.name).and_then(|source| {
                read_repaired(volume, source, &mut findings, |stream, _| {
                    walk_members(stream)
                })
            });
            match read {
                // Archived in cold storage: not checked, and not damaged either.
                Err(err) if err.kind() == ErrorKind::Offline => {
                    report.missing.push(problem(volume, err.to_string()));
                    volume.state.as_str()
                }
                Ok((read, walked)) => {
                    let refused = || {
                        walked.err().map(|err| {
                            format!("its bytes are as sealed, but a reader refuses them: {err}")
                        })
                    };
                    let damage = read
                        .judge(volume, &mut findings)
                        .or_else(refused)
                        .map(|why| {
                            std::iter::once(why)
                                .chain(findings.warnings)
                                .collect::<Vec<_>>()
                                .join("; ")
                        });
                    report.volume_outcome(volume, read.bytes, damage, findings.repaired)
                }
                Err(err) => {
                    report.volume_outcome(volume, 0, Some(format!("unreadable: {err}")), Vec::new())
                }
            }
        };
        catalog.set_volume_state(volume.sequence, state)?;
        progress.on(Event::Bytes(volume.bytes));
    }
    Ok(report)
}

/// Walk a volume's member headers as every reader does, without the key. Bytes as
/// sealed can still be a volume the reader refuses: builds before the index limit
/// wrote indexes over the 64 MiB a reader accepts, and then only `--deep` said so.
fn walk_members(stream: &mut dyn std::io::Read) -> Result<()> {
    let mut reader = crate::volume::VolumeReader::new(stream);
    reader.read_label()?;
    while reader.next_member()?.is_some() {}
    Ok(())
}

/// A volume read to its end: its size, the hash of its bytes as stored, and the hash
/// of its bytes as repaired by its parity.
struct WholeRead {
    bytes: u64,
    stored_hash: String,
    repaired_hash: String,
}

impl WholeRead {
    /// Why the volume is damaged: `None` when its bytes are as sealed, or parity
    /// (which left `findings`) made them so.
    fn judge(&self, volume: &VolumeRow, findings: &mut Findings) -> Option<String> {
        let why = compare(volume, self.bytes, &self.stored_hash)?;
        if self.repaired_hash == volume.blake3 && !findings.repaired.is_empty() {
            return None;
        }
        findings.repaired.clear();
        Some(why)
    }
}

/// Hash a volume as stored and as repaired, while `read` reads the repaired bytes;
/// then read both to the end.
fn read_repaired<T>(
    volume: &VolumeRow,
    source: Box<dyn std::io::Read + Send>,
    findings: &mut Findings,
    read: impl FnOnce(&mut dyn std::io::Read, &mut Findings) -> T,
) -> Result<(WholeRead, T)> {
    let mut stored = HashingReader::new(source);
    let mut repairing = RepairingReader::new(&mut stored);
    let mut repaired = HashingReader::new(&mut repairing);
    let outcome = read(&mut repaired, findings);
    let finished = repaired.finish();
    findings.absorb(&volume.name, repairing.take_log());
    let (_, repaired_hash) = finished?;
    let (bytes, stored_hash) = stored.finish()?;
    Ok((
        WholeRead {
            bytes,
            stored_hash,
            repaired_hash,
        },
        outcome,
    ))
}

fn planned(volumes: &[VolumeRow], progress: &dyn Observer) {
    progress.on(Event::Planned {
        files: 0,
        bytes: volumes.iter().map(|v| v.bytes).sum(),
    });
}

/// A blob that could not be opened.
#[derive(Debug, Serialize)]
pub struct DamagedBlob {
    /// Chunk id (hex).
    pub chunk: String,
    /// `data` or `tree`.
    pub kind: BlobKind,
    /// The volume it is in.
    pub volume: String,
    /// Why it failed.
    pub reason: String,
}

/// A file that a restore could not reproduce exactly.
#[derive(Debug, Serialize)]
pub struct DamagedFile {
    /// Snapshot id.
    pub snapshot: String,
    /// The file's path in the snapshot (escaped).
    pub path: String,
    /// Byte ranges `[start, end)` that would be lost.
    pub missing: Vec<(u64, u64)>,
    /// Why.
    pub reason: String,
}

/// A file of a snapshot.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct FileRef {
    /// Snapshot id.
    pub snapshot: String,
    /// The file's path in the snapshot (escaped).
    pub path: String,
}

/// A lost data chunk and everything that uses it (dedup makes one loss many).
#[derive(Debug, Serialize)]
pub struct DamagedChunk {
    /// Chunk id (hex).
    pub chunk: String,
    /// Why it is lost.
    pub reason: String,
    /// Every (snapshot, file) that uses it.
    pub files: Vec<FileRef>,
}

/// What a deep verify found.
#[derive(Debug, Default, Serialize)]
pub struct DeepReport {
    /// The keyless part: sizes and hashes of every volume read.
    #[serde(flatten)]
    pub volumes: VerifyReport,
    /// Blobs that opened and matched their chunk id.
    pub blobs_ok: u64,
    /// Blobs that did not.
    pub damaged_blobs: Vec<DamagedBlob>,
    /// Snapshots checked.
    pub snapshots_checked: u64,
    /// Files checked.
    pub files_checked: u64,
    /// Distinct files whose whole-file BLAKE3 was recomputed from their chunks.
    pub files_hashed: u64,
    /// Files that would not restore exactly (one entry per snapshot and file).
    pub damaged_files: Vec<DamagedFile>,
    /// The same damage grouped by lost chunk.
    pub damaged_chunks: Vec<DamagedChunk>,
    /// Snapshots whose tree blobs are damaged (their file list survives only in this catalog).
    pub damaged_trees: Vec<String>,
    /// Problems that cost no data: damaged labels or indexes.
    pub warnings: Vec<String>,
    /// Volumes missing or damaged here whose copy in another vault (`--copy-vault`)
    /// is whole: the data is safe, this vault's volume needs replacing.
    pub from_copies: Vec<String>,
}

impl DeepReport {
    /// Some data is missing or wrong (exit 4).
    pub fn has_damage(&self) -> bool {
        self.volumes.has_damage()
            || !self.damaged_blobs.is_empty()
            || !self.damaged_files.is_empty()
            || !self.damaged_trees.is_empty()
    }
    /// Everything is readable, but something needs a look (exit 3).
    pub fn has_warnings(&self) -> bool {
        self.volumes.has_warnings() || !self.warnings.is_empty() || !self.from_copies.is_empty()
    }
}

/// Open every blob of every volume (or of one snapshot) and check every file that uses
/// them. A volume missing or damaged here is checked in each of `copies` in turn; when
/// one holds it whole, its blobs and files count as sound, read from there.
pub fn deep(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    snapshot: Option<&str>,
    copies: &[Box<dyn Vault>],
    progress: &dyn Observer,
) -> Result<DeepReport> {
    let listing = vault.list()?;
    // A copy whose listing fails is a copy that holds nothing, said once.
    let copy_listings: Vec<Vec<String>> = copies
        .iter()
        .map(|copy| copy.list().map(|l| l.sealed).unwrap_or_default())
        .collect();
    let mut read_from_copy: HashMap<u64, &dyn Vault> = HashMap::new();
    let volumes = catalog.volumes()?;
    let snapshots = match snapshot {
        Some(selector) => vec![catalog.find_snapshot(selector)?],
        None => catalog.snapshots()?,
    };
    let mut report = DeepReport {
        volumes: VerifyReport::start(&listing, catalog)?,
        ..DeepReport::default()
    };
    // Which blobs to open, per volume: all of them, or what the one snapshot uses.
    let plan: BTreeMap<u64, PackBlobs> = match snapshot {
        None => volumes
            .iter()
            .map(|v| Ok((v.sequence, catalog.blobs_in_volume(v.sequence)?)))
            .collect::<Result<_>>()?,
        Some(_) => {
            let record = &snapshots[0];
            let mut data = HashSet::new();
            catalog.for_each_node(&record.id, |node| {
                data.extend(node.chunks.iter().map(|c| c.id));
                Ok(())
            })?;
            let (mut plan, _) = locate(catalog, data.into_iter(), BlobKind::Data)?;
            let (trees, _) = locate(catalog, record.tree.iter().copied(), BlobKind::Tree)?;
            for (sequence, packs) in trees {
                for (number, blobs) in packs {
                    plan.entry(sequence)
                        .or_default()
                        .entry(number)
                        .or_default()
                        .extend(blobs);
                }
            }
            plan
        }
    };
    let keys = ReadKeys {
        vault_id: catalog.vault_info()?.vault_id,
        master: key,
        ids: key.chunk_id_key(),
    };
    let mut bad: HashMap<(ChunkId, BlobKind), String> = HashMap::new();
    let mut repaired_volumes = HashSet::new();
    let planned_volumes: Vec<VolumeRow> = volumes
        .iter()
        .filter(|v| plan.contains_key(&v.sequence))
        .cloned()
        .collect();
    planned(&planned_volumes, progress);
    for volume in &planned_volumes {
        progress.on(Event::Reading(&volume.name));
        let wanted = &plan[&volume.sequence];
        let mut opened: HashSet<(ChunkId, BlobKind)> = HashSet::new();
        let mut failed = HashMap::new();
        let mut offline = None;
        let problems_before = (report.volumes.missing.len(), report.volumes.damaged.len());
        let state = if !listing.sealed.contains(&volume.name) {
            report
                .volumes
                .missing
                .push(problem(volume, "missing from the vault".into()));
            "missing"
        } else {
            vault.forget_cached(&volume.name);
            let (bytes, damage, repaired) = match vault.open(&volume.name) {
                // Archived in cold storage: its blobs are not checked, and not damaged either.
                Err(err) if err.kind() == ErrorKind::Offline => {
                    report
                        .volumes
                        .missing
                        .push(problem(volume, err.to_string()));
                    offline = Some(err.to_string());
                    (0, None, Vec::new())
                }
                Err(err) => (0, Some(format!("unreadable: {err}")), Vec::new()),
                Ok(source) => check_volume(
                    source,
                    volume,
                    &keys,
                    wanted,
                    &mut opened,
                    &mut failed,
                    &mut report,
                ),
            };
            if !repaired.is_empty() {
                repaired_volumes.insert(volume.sequence);
            }
            if offline.is_some() {
                volume.state.as_str()
            } else {
                report
                    .volumes
                    .volume_outcome(volume, bytes, damage, repaired)
            }
        };
        catalog.set_volume_state(volume.sequence, state)?;
        progress.on(Event::Bytes(volume.bytes));
        let troubled = problems_before
            != (report.volumes.missing.len(), report.volumes.damaged.len())
            || !failed.is_empty()
            || wanted
                .values()
                .flatten()
                .any(|(id, loc)| !opened.contains(&(*id, loc.kind)));
        if troubled {
            let whole_copy = copies
                .iter()
                .zip(&copy_listings)
                .filter(|(_, names)| names.contains(&volume.name))
                .find_map(|(copy, _)| {
                    whole_in(copy.as_ref(), volume, &keys, wanted)
                        .map(|opened| (copy.as_ref(), opened))
                });
            if let Some((copy, copy_opened)) = whole_copy {
                let (missing, damaged) = problems_before;
                let here: Vec<String> = report
                    .volumes
                    .missing
                    .drain(missing..)
                    .chain(report.volumes.damaged.drain(damaged..))
                    .map(|p| p.reason)
                    .chain(failed.drain().map(|(_, why)| why))
                    .collect();
                report.from_copies.push(format!(
                    "{}: {} here; whole in {}",
                    volume.name,
                    if here.is_empty() {
                        "unreadable".into()
                    } else {
                        here.join("; ")
                    },
                    copy.location()
                ));
                opened = copy_opened;
                offline = None;
                read_from_copy.insert(volume.sequence, copy);
            }
        }
        for (id, loc) in wanted.values().flatten() {
            if opened.contains(&(*id, loc.kind)) {
                report.blobs_ok += 1;
                continue;
            }
            let reason = match failed.remove(&(*id, loc.kind)) {
                Some(why) => why,
                None if state == "missing" => format!("volume {} is missing", volume.name),
                None if offline.is_some() => offline.clone().unwrap_or_default(),
                None => format!(
                    "volume {} pack {} blob {}: not reached (the volume ends or breaks before it)",
                    volume.name, loc.pack, loc.position
                ),
            };
            report.damaged_blobs.push(DamagedBlob {
                chunk: id.to_string(),
                kind: loc.kind,
                volume: volume.name.clone(),
                reason: reason.clone(),
            });
            bad.insert((*id, loc.kind), reason);
        }
    }
    let chunks = ChunkReader {
        vault,
        read_from_copy,
        keys: &keys,
        volumes: volumes
            .iter()
            .map(|v| (v.sequence, (v.name.clone(), v.volume_id)))
            .collect(),
        repaired_volumes,
    };
    // A file with the same content and chunks in several snapshots is hashed once.
    let mut checked: HashSet<[u8; 32]> = HashSet::new();
    // Every lost chunk once, with every (snapshot, file) that uses it.
    let mut users: BTreeMap<ChunkId, (String, Vec<FileRef>)> = BTreeMap::new();
    for record in &snapshots {
        report.snapshots_checked += 1;
        if let Some(reason) = record
            .tree
            .iter()
            .find_map(|id| bad.get(&(*id, BlobKind::Tree)))
        {
            report.damaged_trees.push(format!(
                "snapshot {}: {reason}; a catalog rebuild would lose this snapshot",
                record.id.short()
            ));
        }
        catalog.for_each_node(&record.id, |node| {
            if node.kind != NodeKind::File {
                return Ok(());
            }
            report.files_checked += 1;
            let mut missing = Vec::new();
            let mut reason = None;
            let mut end = 0;
            for chunk in &node.chunks {
                let chunk_end = chunk.offset + u64::from(chunk.len);
                if chunk.offset < end || chunk_end > node.size {
                    reason.get_or_insert_with(|| {
                        "its chunk list overlaps or overruns the file".into()
                    });
                    missing.push((chunk.offset, chunk_end));
                }
                end = end.max(chunk_end);
                let why = match bad.get(&(chunk.id, BlobKind::Data)) {
                    Some(why) => Some(why.clone()),
                    None if catalog.blob_location(&chunk.id, BlobKind::Data)?.is_none() => {
                        Some("chunk not in the catalog".into())
                    }
                    None => None,
                };
                if let Some(why) = why {
                    users
                        .entry(chunk.id)
                        .or_insert_with(|| (why.clone(), Vec::new()))
                        .1
                        .push(FileRef {
                            snapshot: record.id.to_string(),
                            path: node.path.escaped(),
                        });
                    reason.get_or_insert(why);
                    missing.push((chunk.offset, chunk_end));
                }
            }
            if reason.is_none() && checked.insert(file_identity(&node)) {
                report.files_hashed += 1;
                if let Err(why) = chunks.check_file(catalog, &node) {
                    reason = Some(why);
                    missing.push((0, node.size));
                }
            }
            if let Some(reason) = reason {
                report.damaged_files.push(DamagedFile {
                    snapshot: record.id.to_string(),
                    path: node.path.escaped(),
                    missing: crate::restore::merge(missing),
                    reason,
                });
            }
            Ok(())
        })?;
    }
    report.damaged_chunks = users
        .into_iter()
        .map(|(id, (reason, mut files))| {
            files.dedup();
            DamagedChunk {
                chunk: id.to_string(),
                reason,
                files,
            }
        })
        .collect();
    Ok(report)
}

/// What makes two files the same for a whole-file check: recorded hash and chunk list.
fn file_identity(node: &crate::model::Node) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(node.hash.as_deref().unwrap_or_default().as_bytes());
    hasher.update(&node.size.to_le_bytes());
    for chunk in &node.chunks {
        hasher.update(&chunk.id.0);
        hasher.update(&chunk.offset.to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}

/// The blobs `volume` holds in `copy`, when the copy's volume is whole (as sealed).
fn whole_in(
    copy: &dyn Vault,
    volume: &VolumeRow,
    keys: &ReadKeys<'_>,
    wanted: &PackBlobs,
) -> Option<HashSet<(ChunkId, BlobKind)>> {
    let mut opened = HashSet::new();
    let (_, damage, _) = check_volume(
        copy.open(&volume.name).ok()?,
        volume,
        keys,
        wanted,
        &mut opened,
        &mut HashMap::new(),
        &mut DeepReport::default(),
    );
    damage.is_none().then_some(opened)
}

/// Reads single chunks by ranged reads, to hash whole files in file order.
struct ChunkReader<'a> {
    vault: &'a dyn Vault,
    /// Volumes read from a copy vault, which holds them whole.
    read_from_copy: HashMap<u64, &'a dyn Vault>,
    keys: &'a ReadKeys<'a>,
    volumes: HashMap<u64, (String, crate::ids::VolumeId)>,
    /// Volumes whose parity repaired them: a blob there that does not open from a
    /// ranged read is read again through the repair.
    repaired_volumes: HashSet<u64>,
}

impl ChunkReader<'_> {
    fn read(&self, id: &ChunkId, loc: &crate::catalog::BlobLocation) -> Result<Vec<u8>> {
        let (name, volume_id) = self.volumes.get(&loc.sequence).ok_or_else(|| {
            crate::error::Error::corrupt(format!("volume #{} is not in the catalog", loc.sequence))
        })?;
        let vault = self
            .read_from_copy
            .get(&loc.sequence)
            .copied()
            .unwrap_or(self.vault);
        let opened = self.keys.read_blob(vault, (name, volume_id), id, loc);
        if opened.is_err() && self.repaired_volumes.contains(&loc.sequence) {
            let mut repairing = RepairingReader::new(vault.open(name)?);
            let mut sealed = vec![0u8; loc.sealed_len as usize];
            use std::io::Read;
            let at = loc.pack_offset + loc.offset;
            let read = std::io::copy(&mut (&mut repairing).take(at), &mut std::io::sink())
                .and_then(|_| repairing.read_exact(&mut sealed));
            if read.is_ok() {
                return self.keys.open_blob(volume_id, id, loc, &sealed);
            }
        }
        opened
    }

    /// Hash a file's content (holes as zeros) from its chunks and compare with its record.
    fn check_file(
        &self,
        catalog: &Catalog,
        node: &crate::model::Node,
    ) -> std::result::Result<(), String> {
        let Some(expected) = &node.hash else {
            return Ok(());
        };
        let mut hasher = blake3::Hasher::new();
        let mut at = 0u64;
        let zeros = vec![0u8; 1 << 16];
        let fill_to = |hasher: &mut blake3::Hasher, at: &mut u64, to: u64| {
            while *at < to {
                let step = (to - *at).min(zeros.len() as u64);
                hasher.update(&zeros[..step as usize]);
                *at += step;
            }
        };
        for chunk in &node.chunks {
            fill_to(&mut hasher, &mut at, chunk.offset);
            let location = catalog
                .blob_location(&chunk.id, BlobKind::Data)
                .map_err(|e| e.to_string())?
                .ok_or("chunk not in the catalog")?;
            let plain = self.read(&chunk.id, &location).map_err(|e| e.to_string())?;
            hasher.update(&plain);
            at += plain.len() as u64;
        }
        fill_to(&mut hasher, &mut at, node.size);
        if hasher.finalize().to_hex().as_str() != expected {
            return Err("whole-file hash does not match the snapshot".into());
        }
        Ok(())
    }
}

/// Read one volume: open its `wanted` blobs (into `opened`), check its index,
/// and hash all of it. Returns the bytes read, why it is damaged if it is, and
/// what its parity repaired.
fn check_volume(
    source: Box<dyn std::io::Read + Send>,
    volume: &VolumeRow,
    keys: &ReadKeys<'_>,
    wanted: &PackBlobs,
    opened: &mut HashSet<(ChunkId, BlobKind)>,
    failed: &mut HashMap<(ChunkId, BlobKind), String>,
    report: &mut DeepReport,
) -> (u64, Option<String>, Vec<Repair>) {
    let mut findings = Findings::default();
    let read = read_repaired(volume, source, &mut findings, |repaired, findings| {
        read_volume(repaired, volume, keys, wanted, findings, |id, loc, _| {
            opened.insert((*id, loc.kind));
        })
        .and_then(|mut reader| check_index(&mut reader, volume, keys, findings))
    });
    report.warnings.append(&mut findings.warnings);
    failed.extend(findings.failed_blobs.drain());
    let (whole, read) = match read {
        Ok(done) => done,
        Err(err) => return (0, Some(format!("unreadable: {err}")), Vec::new()),
    };
    let mut damage = whole.judge(volume, &mut findings);
    if let Err(err) = read {
        damage = Some(match damage {
            Some(why) => format!("{why}; {err}"),
            None => err.to_string(),
        });
    }
    if damage.is_none() && !findings.damage.is_empty() {
        damage = Some(findings.damage.join("; "));
    }
    (whole.bytes, damage, findings.repaired)
}

/// Read on to the index and check that it opens.
fn check_index<R: std::io::Read>(
    reader: &mut crate::volume::VolumeReader<R>,
    volume: &VolumeRow,
    keys: &ReadKeys<'_>,
    findings: &mut Findings,
) -> Result<()> {
    while let Some(member) = reader.next_member()? {
        if member.name == INDEX_MEMBER {
            let sealed = reader.read_data(&member)?;
            let volume_key = keys.master.volume_key(&volume.volume_id);
            if let Err(err) = VolumeIndex::open(
                &sealed,
                keys.vault_id,
                volume.volume_id,
                volume.sequence,
                &volume_key,
            ) {
                findings.warnings.push(format!(
                    "volume {}: index damaged ({err}); a catalog rebuild would scan its packs",
                    volume.name
                ));
            }
            return Ok(());
        }
    }
    findings
        .warnings
        .push(format!("volume {}: no index", volume.name));
    Ok(())
}
