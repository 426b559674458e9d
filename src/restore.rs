//! The restore operation: plan in media order, read each volume once, write safely, check.
//!
//! The plan groups every needed chunk by volume (in sequence order) and pack,
//! so each volume is read front to back once. Each blob is authenticated,
//! decompressed and checked against its chunk id before it is written into
//! its files at their offsets (holes stay holes). A file gets its real name
//! only after its whole-file BLAKE3 matches; a file that cannot be restored
//! exactly is left as `NAME.tapevault-partial` (mode 0600) and reported with
//! the byte ranges it lacks. Damage never stops the rest of the restore.

use crate::catalog::{BlobLocation, Catalog, VolumeRow};
use crate::crypto::{BlobKind, MasterKey};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ChunkId, SnapshotId};
use crate::model::{Node, NodeKind, PathBytes};
use crate::pack::PackEntry;
use crate::parity::{ParityLog, Repair, RepairingReader};
use crate::progress::{Event, Observer};
use crate::target::{self, Target};
use crate::vault::Vault;
use crate::volume::VolumeReader;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// How often a volume read that failed with an I/O error is done again.
const READ_RETRIES: u32 = 1;

/// Suffix of a file that could not be restored exactly.
pub const PARTIAL_SUFFIX: &str = ".tapevault-partial";

/// What to restore and where.
pub struct RestoreOptions {
    /// Snapshot selector: `latest` or an id prefix.
    pub snapshot: String,
    /// Folder to restore into (the snapshot's absolute paths are recreated under it).
    pub target: PathBuf,
    /// Only these subtrees (absolute source paths); empty = everything.
    pub includes: Vec<PathBuf>,
    /// Replace existing entries (never following symlinks).
    pub overwrite: bool,
    /// Addresses of other vaults holding copies of the same volumes, tried in order
    /// for whatever the vault itself cannot give (a missing, damaged or unreadable volume).
    pub copy_vaults: Vec<String>,
}

/// A file that was not restored exactly.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileDamage {
    /// The file's path in the snapshot (escaped).
    pub path: String,
    /// Byte ranges `[start, end)` that could not be restored.
    pub missing: Vec<(u64, u64)>,
    /// Why.
    pub reason: String,
    /// Where the incomplete copy was left, if anywhere.
    pub kept_as: Option<String>,
}

/// An entry that was refused (unsafe name, escape attempt, conflict).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    /// The entry's path in the snapshot (escaped).
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

/// What a restore did.
#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Snapshot restored.
    pub snapshot: Option<SnapshotId>,
    /// Regular files restored exactly.
    pub files: u64,
    /// Folders, links and other entries restored.
    pub other: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Volumes read, in order.
    pub volumes_read: Vec<String>,
    /// Seconds from the start until the first restored byte was written.
    pub first_byte_seconds: Option<f64>,
    /// Seconds the whole restore took.
    pub seconds: f64,
    /// Reads that failed with an I/O error and were done again (the data is whole if
    /// nothing else is reported, but the medium or the link deserves a look).
    pub retried: Vec<String>,
    /// Temporary files of an interrupted earlier restore removed (`--overwrite` only).
    pub stale_temps_removed: u64,
    /// What the vault could not give and a `--copy-vault` did (the data is whole).
    pub from_copies: Vec<String>,
    /// What could not be restored exactly.
    #[serde(flatten)]
    pub problems: RestoreProblems,
}

/// What a restore (or a drill) could not do exactly.
#[derive(Debug, Default, Serialize)]
pub struct RestoreProblems {
    /// Files that are not exact.
    pub damaged: Vec<FileDamage>,
    /// Entries refused.
    pub refused: Vec<Refusal>,
    /// Volume-level problems (missing, wrong, unreadable).
    pub volume_errors: Vec<String>,
    /// Attributes that could not be applied, damaged labels and other problems that cost no data.
    pub warnings: Vec<String>,
    /// Damage rebuilt from parity: the data is whole, the medium is failing.
    pub repaired: Vec<Repair>,
}

impl RestoreProblems {
    /// True when some data is missing or wrong (exit 4).
    pub fn has_damage(&self) -> bool {
        !self.damaged.is_empty() || !self.refused.is_empty() || !self.volume_errors.is_empty()
    }
    /// True when everything is exact but something needs a look (exit 3).
    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty() || !self.repaired.is_empty()
    }
}

/// A file being restored. Its folder and name come from its path
/// ([`parent_and_name`]): a million files waiting are worth not holding them twice.
struct PendingFile {
    node: Node,
    temp: Vec<u8>,
    missing: Vec<(u64, u64)>,
    reason: Option<String>,
    hash: WriteHash,
}

/// The whole-file hash of what was written, taken while chunks come in file order: it
/// spares reading the file back.
enum WriteHash {
    /// Every chunk so far came in order, up to this offset. The hasher (about 2 KiB)
    /// exists only while the file is part written: a million files waiting hold none.
    InOrder(u64, Option<Box<blake3::Hasher>>),
    /// Every byte came in order.
    Whole(blake3::Hash),
    /// A chunk came out of order: the file is read back.
    ReadBack,
}

impl WriteHash {
    fn new() -> WriteHash {
        WriteHash::InOrder(0, None)
    }

    /// `plain` was written at `offset` of a file of `size` bytes.
    fn add(&mut self, offset: u64, plain: &[u8], size: u64) {
        *self = match std::mem::replace(self, WriteHash::ReadBack) {
            WriteHash::InOrder(hashed_to, hasher) if hashed_to == offset => {
                let mut hasher = hasher.unwrap_or_default();
                hasher.update(plain);
                let hashed_to = offset + plain.len() as u64;
                if hashed_to == size {
                    WriteHash::Whole(hasher.finalize())
                } else {
                    WriteHash::InOrder(hashed_to, Some(hasher))
                }
            }
            _ => WriteHash::ReadBack,
        };
    }

    /// The hash of a file of `size` bytes, if every byte came in order.
    fn whole(&self, size: u64) -> Option<blake3::Hash> {
        match self {
            WriteHash::Whole(hash) => Some(*hash),
            WriteHash::InOrder(0, None) if size == 0 => Some(blake3::hash(b"")),
            _ => None,
        }
    }
}

/// Chunks waiting between the reading thread and the writing one: at most 16 MiB
/// (chunks are at most 2 MiB). A longer queue bought no speed, only memory.
const WRITE_QUEUE: usize = 8;

/// What the reading thread hands the writing one.
enum Work {
    /// A verified chunk, for every file offset it fills.
    Chunk(ChunkId, Vec<u8>),
    /// A chunk that cannot be had, and why.
    Missing(ChunkId, String),
}

/// What the writing thread did.
struct Written {
    bytes: u64,
    first_byte_seconds: Option<f64>,
}

/// Write each chunk received into every file offset it fills.
fn write_chunks(
    work: std::sync::mpsc::Receiver<Work>,
    target: &mut Target,
    files: &mut [PendingFile],
    wanted: &ChunkTargets,
    progress: &dyn Observer,
    started: std::time::Instant,
) -> Written {
    let mut open = OpenFiles { open: Vec::new() };
    let mut written = Written {
        bytes: 0,
        first_byte_seconds: None,
    };
    for item in work {
        let (id, plain) = match item {
            Work::Missing(id, reason) => {
                mark_missing(files, wanted, &id, &reason);
                continue;
            }
            Work::Chunk(id, plain) => (id, plain),
        };
        for (index, offset) in wanted.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            if let Err(err) = open.write(target, files, *index, *offset, &plain) {
                let file = &mut files[*index];
                file.missing.push((*offset, offset + plain.len() as u64));
                file.reason.get_or_insert(format!("cannot write: {err}"));
            } else {
                written
                    .first_byte_seconds
                    .get_or_insert(started.elapsed().as_secs_f64());
                written.bytes += plain.len() as u64;
                progress.on(Event::Bytes(plain.len() as u64));
            }
        }
    }
    written
}

/// Files being written, the last few kept open: chunks mostly come in file order,
/// and opening a file for each one costs more than writing it.
struct OpenFiles {
    open: Vec<(usize, std::fs::File)>,
}

impl OpenFiles {
    const MAX_OPEN: usize = 32;

    /// Write a chunk at its offset in file `index`, and hash it when it comes in order.
    fn write(
        &mut self,
        target: &mut Target,
        files: &mut [PendingFile],
        index: usize,
        offset: u64,
        plain: &[u8],
    ) -> std::io::Result<()> {
        let file = &mut files[index];
        let slot = match self.open.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => {
                let dir = target.dir(parent_and_name(&file.node.path).0)?;
                let handle = target::open_file(&dir, &file.temp, true)?;
                if self.open.len() == Self::MAX_OPEN {
                    self.open.remove(0);
                }
                self.open.push((index, handle));
                self.open.len() - 1
            }
        };
        self.open[slot].1.write_all_at(plain, offset)?;
        file.hash.add(offset, plain, file.node.size);
        Ok(())
    }
}

/// The volumes and packs a restore must read, in media order.
#[derive(Debug, Default, Serialize)]
pub struct RestorePlan {
    /// Per volume (sequence order): the name and how many bytes of packs are read.
    pub volumes: Vec<PlannedVolume>,
    /// Chunks the catalog does not know (reported as damage).
    pub unknown_chunks: usize,
}

/// One volume of a plan.
#[derive(Debug, Serialize)]
pub struct PlannedVolume {
    /// Sequence.
    pub sequence: u64,
    /// Object name.
    pub name: String,
    /// Bytes of packs needed from it.
    pub bytes: u64,
    /// Catalog state of the volume.
    pub state: String,
    /// Its volume set (the sequence of the set's first volume; 0 when unknown).
    pub volume_set: u64,
    /// Where it is kept (`volumes note`), if recorded.
    pub location: Option<String>,
}

type ChunkTargets = HashMap<ChunkId, Vec<(usize, u64)>>;
pub(crate) type PackPlan = BTreeMap<u64, PackBlobs>;

fn parent_and_name(path: &PathBytes) -> (&[u8], &[u8]) {
    match path.0.iter().rposition(|b| *b == b'/') {
        Some(at) => (&path.0[..at], &path.0[at + 1..]),
        None => (&[], &path.0),
    }
}

fn selected(path: &PathBytes, includes: &[PathBytes]) -> bool {
    includes.is_empty()
        || includes.iter().any(|inc| {
            let under =
                |a: &[u8], b: &[u8]| a == b || (a.starts_with(b) && a.get(b.len()) == Some(&b'/'));
            under(&path.0, &inc.0) || under(&inc.0, &path.0) || inc.0.is_empty()
        })
}

/// The volumes a restore of `snapshot` (limited to `includes`) reads, in read order.
/// With the vault's `listing`, a volume it lacks is planned as `missing` before any
/// read; without one (the vault unreachable), states are the catalog's.
pub fn plan(
    catalog: &Catalog,
    snapshot: &str,
    includes: &[PathBuf],
    listing: Option<&crate::vault::Listing>,
) -> Result<RestorePlan> {
    let record = catalog.find_snapshot(snapshot)?;
    let includes: Vec<PathBytes> = includes
        .iter()
        .map(|p| crate::source::node_path(p))
        .collect();
    let mut chunks = HashSet::new();
    catalog.for_each_node(&record.id, |node| {
        if node.kind == NodeKind::File && selected(&node.path, &includes) {
            chunks.extend(node.chunks.iter().map(|c| c.id));
        }
        Ok(())
    })?;
    let (packs, unknown) = locate(catalog, chunks.into_iter(), BlobKind::Data)?;
    let volumes = catalog.volumes_by_sequence()?;
    let mut notes = catalog.volume_notes()?;
    let mut plan = RestorePlan {
        unknown_chunks: unknown.len(),
        ..RestorePlan::default()
    };
    for (sequence, per_pack) in packs {
        let bytes = per_pack
            .values()
            .flatten()
            .map(|(_, l)| u64::from(l.sealed_len))
            .sum();
        let (name, mut state, volume_set) = volumes
            .get(&sequence)
            .map(|v| (v.name.clone(), v.state.clone(), v.volume_set))
            .unwrap_or_else(|| (format!("#{sequence}"), "unknown".into(), 0));
        if listing.is_some_and(|l| !l.sealed.contains(&name)) {
            state = "missing".into();
        }
        plan.volumes.push(PlannedVolume {
            sequence,
            name,
            bytes,
            state,
            volume_set,
            location: notes.remove(&sequence),
        });
    }
    Ok(plan)
}

/// Group chunks of `kind` by volume and pack; chunks the catalog does not know come back apart.
pub(crate) fn locate(
    catalog: &Catalog,
    chunks: impl Iterator<Item = ChunkId>,
    kind: BlobKind,
) -> Result<(PackPlan, Vec<ChunkId>)> {
    // One read transaction for a lookup per chunk, not one each.
    let _view = catalog.read_view()?;
    let mut plan = PackPlan::new();
    let mut unknown = Vec::new();
    for id in chunks {
        match catalog.blob_location(&id, kind)? {
            Some(loc) => plan
                .entry(loc.sequence)
                .or_default()
                .entry(loc.pack)
                .or_default()
                .push((id, loc)),
            None => unknown.push(id),
        }
    }
    Ok((plan, unknown))
}

/// Restore a snapshot into `options.target`.
pub fn restore(
    vault: &dyn Vault,
    catalog: &Catalog,
    key: &MasterKey,
    options: &RestoreOptions,
    progress: &dyn Observer,
) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    // A mistyped copy address is a usage error before anything else is looked at.
    let copies = options
        .copy_vaults
        .iter()
        .map(|address| crate::vault::open_vault(address))
        .collect::<Result<Vec<_>>>()?;
    let record = catalog.find_snapshot(&options.snapshot)?;
    let info = catalog.vault_info()?;
    let includes: Vec<PathBytes> = options
        .includes
        .iter()
        .map(|p| crate::source::node_path(p))
        .collect();
    let mut report = RestoreReport {
        snapshot: Some(record.id),
        ..RestoreReport::default()
    };

    let mut nodes = Vec::new();
    catalog.for_each_node(&record.id, |node| {
        if selected(&node.path, &includes) {
            nodes.push(node);
        }
        Ok(())
    })?;
    if nodes.is_empty() && !includes.is_empty() {
        return Err(Error::missing(format!(
            "nothing in snapshot {} matches --include {}",
            record.id.short(),
            options
                .includes
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    let nodes = screen(nodes, &mut report);

    let is_symlink =
        std::fs::symlink_metadata(&options.target).is_ok_and(|m| m.file_type().is_symlink());
    if is_symlink {
        return Err(Error::usage(format!(
            "restore target {} is a symlink; give the real folder",
            options.target.display()
        )));
    }
    let mut target = Target::open(&options.target)
        .map_err(|e| Error::io("cannot open restore target", &options.target, e))?;
    if !options.overwrite {
        let empty = target
            .is_empty()
            .map_err(|e| Error::io("cannot read restore target", &options.target, e))?;
        if !empty {
            check_conflicts(&mut target, &nodes, &options.target)?;
        }
    }

    if options.overwrite {
        report.stale_temps_removed = remove_stale_temps(&mut target, &nodes);
    }
    // Sized once: grown by doubling, a million files' list was copied and held twice.
    let file_count = nodes.iter().filter(|n| n.kind == NodeKind::File).count();
    let mut files: Vec<PendingFile> = Vec::with_capacity(file_count);
    let mut restored_dirs = Vec::new();
    // Links and special files, made once the files are. Nodes move, not copied: a
    // restore of a million files holds each once.
    let mut others = Vec::new();
    for node in nodes {
        if node.path.0.is_empty() {
            continue;
        }
        let (parent, name) = parent_and_name(&node.path);
        let made = target.dir(parent).and_then(|dir| match node.kind {
            NodeKind::Dir => target::make_dir(&dir, name, options.overwrite).map(|()| None),
            // Sized at the end: extending first makes the kernel zero every page twice.
            NodeKind::File => target::create_temp(&dir, name).map(|(_, temp)| Some(temp)),
            _ => Ok(None),
        });
        match made {
            Err(err) => report.problems.refused.push(Refusal {
                path: node.path.escaped(),
                reason: err.to_string(),
            }),
            Ok(Some(temp)) => files.push(PendingFile {
                node,
                temp,
                missing: Vec::new(),
                reason: None,
                hash: WriteHash::new(),
            }),
            Ok(None) if node.kind == NodeKind::Dir => restored_dirs.push(node),
            Ok(None) => others.push(node),
        }
    }

    progress.on(Event::Planned {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.node.size).sum(),
    });
    // Which file offsets each chunk fills.
    let mut wanted: ChunkTargets = HashMap::new();
    for (index, file) in files.iter().enumerate() {
        for chunk in &file.node.chunks {
            wanted
                .entry(chunk.id)
                .or_default()
                .push((index, chunk.offset));
        }
    }
    let (packs, unknown) = locate(catalog, wanted.keys().copied(), BlobKind::Data)?;
    for id in unknown {
        mark_missing(&mut files, &wanted, &id, "chunk not in the catalog");
    }
    let volumes = catalog.volumes_by_sequence()?;
    let keys = ReadKeys {
        vault_id: info.vault_id,
        master: key,
        ids: key.chunk_id_key(),
    };
    // Volumes are read and their blobs decoded here while a second thread writes
    // the files: writing (the kernel's copy into the page cache) costs as much as decoding.
    let written = std::thread::scope(|scope| -> Result<Written> {
        let (send, work) = std::sync::mpsc::sync_channel::<Work>(WRITE_QUEUE);
        let writer = {
            let (target, files, wanted) = (&mut target, &mut files, &wanted);
            scope.spawn(move || write_chunks(work, target, files, wanted, progress, started))
        };
        let read = (|| -> Result<()> {
            for (sequence, per_pack) in &packs {
                let Some(volume) = volumes.get(sequence) else {
                    report
                        .problems
                        .volume_errors
                        .push(format!("volume #{sequence} is not in the catalog"));
                    for (id, _) in per_pack.values().flatten() {
                        let _ = send.send(Work::Missing(*id, "volume unknown".into()));
                    }
                    continue;
                };
                let mut done: HashSet<ChunkId> = HashSet::new();
                // What this volume lost, until a copy makes up for it.
                let mut lost: Vec<String> = Vec::new();
                let sources = std::iter::once(vault).chain(copies.iter().map(AsRef::as_ref));
                for (copy, source) in sources.enumerate() {
                    let complete = per_pack.values().flatten().all(|(id, _)| done.contains(id));
                    if copy > 0 && complete {
                        break;
                    }
                    let before = done.len();
                    let from = if copy == 0 {
                        String::new()
                    } else {
                        format!(" (copy in {})", source.location())
                    };
                    progress.on(Event::Reading(&volume.name));
                    // An I/O error (not damage) is read again once, for what is still missing: a
                    // flaky cable or a busy server must not cost data, nor be forgotten (T68).
                    let mut retries = 0;
                    let (outcome, findings) = loop {
                        let remaining: PackBlobs = per_pack
                            .iter()
                            .map(|(number, blobs)| {
                                let left = blobs.iter().filter(|(id, _)| !done.contains(id));
                                (*number, left.cloned().collect::<Vec<_>>())
                            })
                            .filter(|(_, blobs)| !blobs.is_empty())
                            .collect();
                        let mut findings = Findings::default();
                        let outcome = source.open(&volume.name).and_then(|stream| {
                            let mut repairing = RepairingReader::new(stream);
                            let read = read_volume(
                                &mut repairing,
                                volume,
                                &keys,
                                &remaining,
                                &mut findings,
                                |id, _, plain| {
                                    done.insert(*id);
                                    // A writer that is gone has panicked; join says so.
                                    let _ = send.send(Work::Chunk(*id, plain));
                                },
                            )
                            .map(drop);
                            findings
                                .absorb(&format!("{}{from}", volume.name), repairing.take_log());
                            read
                        });
                        match &outcome {
                            Err(err) if err.kind() == ErrorKind::Io && retries < READ_RETRIES => {
                                retries += 1;
                                report.retried.push(format!(
                                    "volume {}{from}: {err}; read again",
                                    volume.name
                                ));
                            }
                            _ => break (outcome, findings),
                        }
                    };
                    lost.extend(
                        findings
                            .damage
                            .into_iter()
                            .map(|why| format!("{why}{from}")),
                    );
                    report.problems.warnings.extend(findings.warnings);
                    report.problems.repaired.extend(findings.repaired);
                    report.volumes_read.push(format!("{}{from}", volume.name));
                    if let Err(err) = &outcome {
                        if err.kind() == ErrorKind::Usage {
                            // The medium is fine, the request is not (a tape read at the wrong
                            // block size): every volume would fail the same way.
                            return Err(Error::usage(err.to_string()));
                        }
                    }
                    if let Err(err) = outcome {
                        lost.push(format!("volume {} (#{sequence}){from}: {err}", volume.name));
                    }
                    if copy > 0 && done.len() > before {
                        report.from_copies.push(format!(
                            "volume {}: {} chunks read from the copy in {}",
                            volume.name,
                            done.len() - before,
                            source.location()
                        ));
                    }
                }
                if per_pack.values().flatten().all(|(id, _)| done.contains(id)) {
                    // A copy made up for it: the data is whole (verify judges the main vault).
                    report.from_copies.extend(
                        lost.into_iter()
                            .map(|why| format!("{why}; every chunk was found in a copy")),
                    );
                } else {
                    report.problems.volume_errors.extend(lost);
                }
                for (id, _) in per_pack.values().flatten() {
                    if !done.contains(id) {
                        let reason = format!("damaged or missing in volume {}", volume.name);
                        let _ = send.send(Work::Missing(*id, reason));
                    }
                }
            }
            Ok(())
        })();
        drop(send);
        let written = writer.join().expect("the file writer does not panic");
        read.map(|()| written)
    })?;
    report.bytes += written.bytes;
    report.first_byte_seconds = written.first_byte_seconds;
    let mut restored_files: HashSet<Vec<u8>> = HashSet::new();
    let mut read_back = vec![0; 1 << 20];
    for file in files {
        if let Some(path) = finish_file(&mut target, file, &mut read_back, &mut report) {
            progress.on(Event::File {
                path: &PathBytes(path.clone()),
                origin: crate::source::Origin::New,
            });
            restored_files.insert(path);
        }
    }
    for node in &others {
        let result = match node.kind {
            NodeKind::Hardlink => restore_hardlink(&mut target, node, &restored_files),
            NodeKind::Symlink | NodeKind::Fifo => restore_special(&mut target, node),
            _ => continue,
        };
        match result {
            Ok(()) => report.other += 1,
            Err(reason) => report.problems.refused.push(Refusal {
                path: node.path.escaped(),
                reason,
            }),
        }
    }
    // Folders last, deepest first, so setting their times and modes sticks.
    for node in restored_dirs.iter().rev() {
        let (parent, name) = parent_and_name(&node.path);
        let applied = target.dir(parent).and_then(|dir| {
            let fd = rustix::fs::openat(
                &dir,
                name,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::empty(),
            )?;
            apply_attributes(&std::fs::File::from(fd), node)
        });
        match applied {
            Ok(()) => report.other += 1,
            Err(err) => report.problems.warnings.push(format!(
                "{}: attributes not applied: {err}",
                node.path.escaped()
            )),
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Remove what an interrupted restore left under temporary names next to the entries
/// this one restores; a folder that does not exist yet holds none.
fn remove_stale_temps(target: &mut Target, nodes: &[Node]) -> u64 {
    let mut by_parent: BTreeMap<Vec<u8>, HashSet<Vec<u8>>> = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.kind != NodeKind::Dir) {
        let (parent, name) = parent_and_name(&node.path);
        by_parent
            .entry(parent.to_vec())
            .or_default()
            .insert(name.to_vec());
    }
    by_parent
        .iter()
        .filter_map(|(parent, names)| {
            let dir = target.dir(parent).ok()?;
            target::remove_stale_temps(&dir, names).ok()
        })
        .sum::<usize>() as u64
}

/// Refuse unsafe names, duplicates and entries whose parent is not a restored folder.
fn screen(nodes: Vec<Node>, report: &mut RestoreReport) -> Vec<Node> {
    let mut duplicate: HashSet<Vec<u8>> = HashSet::new();
    for pair in nodes.windows(2) {
        if pair[0].path == pair[1].path {
            duplicate.insert(pair[0].path.0.clone());
        }
    }
    let mut dirs: HashSet<Vec<u8>> = HashSet::new();
    dirs.insert(Vec::new());
    let mut kept = Vec::new();
    for node in nodes {
        let path = node.path.escaped();
        if node.path.0.is_empty() {
            continue;
        }
        if let Some(why) = node.path.components().find_map(target::unsafe_component) {
            report.problems.refused.push(Refusal {
                path,
                reason: format!("unsafe name ({why})"),
            });
            continue;
        }
        if duplicate.contains(&node.path.0) {
            report.problems.refused.push(Refusal {
                path,
                reason: "duplicate name in the snapshot".into(),
            });
            continue;
        }
        let (parent, _) = parent_and_name(&node.path);
        if !dirs.contains(parent) {
            report.problems.refused.push(Refusal {
                path,
                reason: "its parent is not a folder of this restore".into(),
            });
            continue;
        }
        if node.kind == NodeKind::Dir {
            dirs.insert(node.path.0.clone());
        }
        kept.push(node);
    }
    kept
}

fn check_conflicts(target: &mut Target, nodes: &[Node], root: &std::path::Path) -> Result<()> {
    let mut conflicts = Vec::new();
    for node in nodes {
        let (parent, name) = parent_and_name(&node.path);
        let Ok(dir) = target.dir(parent) else {
            continue;
        };
        match target::lookup(&dir, name) {
            Ok(Some(rustix::fs::FileType::Directory)) if node.kind == NodeKind::Dir => {}
            Ok(Some(_)) => conflicts.push(node.path.escaped()),
            _ => {}
        }
    }
    if let Some(first) = conflicts.first() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "refusing to overwrite {} existing entries under {} (first: /{first}); restore into an empty folder or pass --overwrite",
                conflicts.len(),
                root.display()
            ),
        ));
    }
    Ok(())
}

fn mark_missing(files: &mut [PendingFile], wanted: &ChunkTargets, id: &ChunkId, reason: &str) {
    for (index, offset) in wanted.get(id).map(Vec::as_slice).unwrap_or(&[]) {
        let file = &mut files[*index];
        let len = file
            .node
            .chunks
            .iter()
            .find(|c| c.id == *id && c.offset == *offset)
            .map_or(0, |c| u64::from(c.len));
        file.missing.push((*offset, offset + len));
        file.reason.get_or_insert_with(|| reason.to_string());
    }
}

/// What reading a volume needs to authenticate and check its blobs.
pub(crate) struct ReadKeys<'a> {
    pub(crate) vault_id: crate::ids::VaultId,
    pub(crate) master: &'a MasterKey,
    pub(crate) ids: crate::crypto::ChunkIdKey,
}

impl ReadKeys<'_> {
    /// One blob by a ranged read at the offsets the catalog holds: a few KiB from an
    /// object store instead of the volume up to it.
    pub(crate) fn read_blob(
        &self,
        vault: &dyn Vault,
        volume: (&str, &crate::ids::VolumeId),
        id: &ChunkId,
        loc: &BlobLocation,
    ) -> Result<Vec<u8>> {
        let (name, volume_id) = volume;
        let at = loc.pack_offset + loc.offset;
        let (_, sealed) = vault.read_range(name, at, u64::from(loc.sealed_len))?;
        self.open_blob(volume_id, id, loc, &sealed)
    }

    /// Authenticate, decompress and check one sealed blob.
    pub(crate) fn open_blob(
        &self,
        volume_id: &crate::ids::VolumeId,
        id: &ChunkId,
        loc: &BlobLocation,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let sealer = self
            .master
            .volume_key(volume_id)
            .pack_sealer(self.vault_id, loc.pack);
        let entry = PackEntry {
            kind: loc.kind,
            id: *id,
            position: loc.position,
            offset: 0,
            sealed_len: loc.sealed_len,
            plain_len: loc.plain_len,
        };
        crate::pack::open_blob(sealed, &entry, &sealer, &self.ids)
    }
}

/// Blobs decoded before they are handed on: enough to keep every core busy, at most
/// 16 MiB of plain data (chunks are at most 2 MiB).
const BLOBS_OPENED_AT_ONCE: usize = 8;

/// Open (authenticate, decompress, check) a pack's wanted blobs, spread over the cores:
/// decoding, not reading, is what bounds a restore.
fn open_blobs<'a>(
    data: &[u8],
    blobs: &'a [(ChunkId, BlobLocation)],
    sealer: &crate::crypto::PackSealer,
    ids: &crate::crypto::ChunkIdKey,
) -> Vec<(&'a ChunkId, &'a BlobLocation, Result<Vec<u8>>)> {
    let open = |(id, loc): &'a (ChunkId, BlobLocation)| {
        let entry = PackEntry {
            kind: loc.kind,
            id: *id,
            position: loc.position,
            offset: loc.offset,
            sealed_len: loc.sealed_len,
            plain_len: loc.plain_len,
        };
        (id, loc, crate::pack::open_blob(data, &entry, sealer, ids))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || blobs.len() < 2 {
        return blobs.iter().map(open).collect();
    }
    let per_thread = blobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = blobs
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().map(open).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("blob decoding does not panic"))
            .collect()
    })
}

/// Where the reader stands before the next member.
enum Resume {
    /// At a valid member header.
    At(crate::volume::Member),
    /// After damage (a bad header; `None`: zeroed blocks where a header belongs).
    AfterDamage(Option<Error>),
    /// Inside a pack it read by its catalog offsets: no damage, nothing to report.
    InsidePack,
}

/// Where reading goes on after damage: a member found by scanning, or a wanted pack
/// read straight from the offsets the catalog holds.
enum Step {
    Member(crate::volume::Member),
    Pack(u32, Vec<u8>),
}

/// The next step of reading: the member the reader stands at, or, after damage,
/// where to go on, saying where and why. When the catalog places the next wanted
/// pack at or after this point, its blobs are read from their recorded offsets, so a
/// lost header costs no data; otherwise scan to the next valid member. Nothing
/// readable after the damage is an error: the volume is cut short or overwritten.
fn resume_reading<R: Read>(
    reader: &mut VolumeReader<R>,
    volume: &VolumeRow,
    resume: Resume,
    per_pack: &PackBlobs,
    reached: &mut u32,
    findings: &mut Findings,
) -> Result<Option<Step>> {
    let (damage, continuing) = match resume {
        Resume::At(member) => return Ok(Some(Step::Member(member))),
        Resume::AfterDamage(damage) => (damage, false),
        Resume::InsidePack => (None, true),
    };
    let from = reader.position();
    let why = damage
        .as_ref()
        .map_or_else(|| "zeroed blocks".to_string(), ToString::to_string);
    let next_wanted = per_pack.range(*reached + 1..).find_map(|(number, blobs)| {
        let start = blobs.iter().map(|(_, loc)| loc.pack_offset).min()?;
        let end = blobs
            .iter()
            .map(|(_, loc)| loc.pack_offset + loc.offset + u64::from(loc.sealed_len))
            .max()?;
        (start >= from).then_some((*number, start, end - start))
    });
    if let Some((number, start, len)) = next_wanted {
        let data = reader.read_at(start, len)?;
        if !continuing {
            findings.warnings.push(format!(
                "volume {}: {why} near byte {from}; pack {number} read at byte {start} where the catalog places it",
                volume.name
            ));
        }
        *reached = number;
        return Ok(Some(Step::Pack(number, data)));
    }
    match reader.resync()? {
        Some(member) => {
            if !continuing {
                findings.warnings.push(format!(
                    "volume {}: {why} near byte {from}; reading resumed at byte {} ({})",
                    volume.name,
                    member.offset - 512,
                    member.name
                ));
            }
            Ok(Some(Step::Member(member)))
        }
        None => Err(damage.unwrap_or_else(|| {
            Error::corrupt(format!(
                "volume ends at byte {from}, before packs the catalog places in it"
            ))
        })),
    }
}

/// What went wrong while reading volumes: lost data, and problems that cost nothing.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Blobs or volumes that could not be read (data lost unless a copy helps).
    pub(crate) damage: Vec<String>,
    /// Everything was recovered, but the medium needs a look.
    pub(crate) warnings: Vec<String>,
    /// Why each blob that failed did not open.
    pub(crate) failed_blobs: HashMap<(ChunkId, BlobKind), String>,
    /// Damage that parity rebuilt.
    pub(crate) repaired: Vec<Repair>,
}

impl Findings {
    /// Take what the repairing reader of `volume` did: repairs, and damage it could not repair.
    pub(crate) fn absorb(&mut self, volume: &str, log: ParityLog) {
        self.repaired
            .extend(log.repaired.into_iter().map(|(offset, length)| Repair {
                volume: volume.to_string(),
                offset,
                length,
            }));
        self.warnings.extend(
            log.unrepaired
                .into_iter()
                .map(|why| format!("volume {volume}: parity: {why}")),
        );
    }
}

/// Blobs wanted from one volume, by pack number.
pub(crate) type PackBlobs = BTreeMap<u32, Vec<(ChunkId, BlobLocation)>>;

/// Read one volume front to back, handing every wanted, verified chunk to `deliver`.
///
/// Returns the reader positioned after the last wanted pack, so a caller can
/// go on to the index. A damaged label costs nothing: the catalog knows the
/// volume's identity and every pack authenticates against it.
pub(crate) fn read_volume<R: Read>(
    source: R,
    volume: &VolumeRow,
    keys: &ReadKeys<'_>,
    per_pack: &PackBlobs,
    findings: &mut Findings,
    mut deliver: impl FnMut(&ChunkId, &BlobLocation, Vec<u8>),
) -> Result<VolumeReader<R>> {
    let vault_id = keys.vault_id;
    let mut reader = VolumeReader::new(source);
    // A label naming another volume is either a swapped volume or a damaged label:
    // the first pack decides, since packs authenticate against the catalog's identity.
    let mut mismatch = None;
    match crate::volume::Label::decode(&reader.read_label_bytes()?) {
        Ok(label) if label.vault_id != vault_id || label.volume_id != volume.volume_id => {
            mismatch = Some(format!(
                "wrong volume: expected vault {vault_id} volume #{} id {}, found vault {} volume #{} id {}",
                volume.sequence, volume.volume_id, label.vault_id, label.sequence, label.volume_id
            ));
        }
        Ok(_) => {}
        Err(err) => findings.warnings.push(format!(
            "volume {} (#{}): {err}; its body is read with the identity the catalog holds",
            volume.name, volume.sequence
        )),
    }
    let volume_key = keys.master.volume_key(&volume.volume_id);
    let Some(last_needed) = per_pack.keys().next_back().copied() else {
        return Ok(reader);
    };
    let mut reached = 0;
    // After a pack read by its catalog offsets the reader is inside that pack.
    let mut inside_pack = false;
    loop {
        let resume = if std::mem::take(&mut inside_pack) {
            Resume::InsidePack
        } else {
            match reader.next_member() {
                Ok(Some(member)) => Resume::At(member),
                // A damaged header or zeroed blocks before the packs still wanted: the
                // loss is at most that member (T5, T6), and nothing when the catalog
                // knows where the next wanted pack lies.
                Ok(None) if reached < last_needed => Resume::AfterDamage(None),
                Err(err) if err.kind() == ErrorKind::Corrupt && reached < last_needed => {
                    Resume::AfterDamage(Some(err))
                }
                Ok(None) => break,
                Err(err) => return Err(err),
            }
        };
        let member = resume_reading(
            &mut reader,
            volume,
            resume,
            per_pack,
            &mut reached,
            findings,
        )?;
        let (number, data) = match member {
            None => break,
            Some(Step::Pack(number, data)) => {
                inside_pack = true;
                (number, data)
            }
            Some(Step::Member(member)) => {
                let Some(number) = crate::volume::pack_number(&member.name) else {
                    continue;
                };
                reached = reached.max(number);
                if !per_pack.contains_key(&number) {
                    if number > last_needed {
                        break;
                    }
                    continue;
                }
                (number, reader.read_data(&member)?)
            }
        };
        let sealer = volume_key.pack_sealer(vault_id, number);
        // A few blobs at a time: a whole pack decoded at once held up to 40 MiB of plain data.
        for blobs in per_pack[&number].chunks(BLOBS_OPENED_AT_ONCE) {
            let opened = open_blobs(&data, blobs, &sealer, &keys.ids);
            if let Some(why) = mismatch.take() {
                if opened.iter().all(|(_, _, result)| result.is_err()) {
                    return Err(Error::corrupt(why));
                }
                findings.warnings.push(format!(
                    "volume {}: label damaged ({why}); its packs authenticate as the expected volume",
                    volume.name
                ));
            }
            for (id, loc, result) in opened {
                match result {
                    Ok(plain) => deliver(id, loc, plain),
                    Err(err) => {
                        let why = format!(
                            "volume {} pack {number} blob {}: {err}",
                            volume.name, loc.position
                        );
                        findings.failed_blobs.insert((*id, loc.kind), why.clone());
                        findings.damage.push(why);
                    }
                }
            }
        }
        if number == last_needed {
            break;
        }
    }
    Ok(reader)
}

pub(crate) fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Check a written file's hash and give it its real name, or leave it marked partial.
fn finish_file(
    target: &mut Target,
    file: PendingFile,
    read_back: &mut [u8],
    report: &mut RestoreReport,
) -> Option<Vec<u8>> {
    let path = file.node.path.escaped();
    let (parent, name) = parent_and_name(&file.node.path);
    let dir = match target.dir(parent) {
        Ok(dir) => dir,
        Err(err) => {
            report.problems.damaged.push(FileDamage {
                path,
                missing: vec![(0, file.node.size)],
                reason: err.to_string(),
                kept_as: None,
            });
            return None;
        }
    };
    let mut reason = file.reason.clone();
    // Trailing holes (and a damaged tail) still give the file its recorded size.
    let sized = target::open_file(&dir, &file.temp, true).and_then(|f| {
        if f.metadata()?.len() != file.node.size {
            f.set_len(file.node.size)?;
        }
        Ok(f)
    });
    let handle = match sized {
        Ok(handle) => Some(handle),
        Err(err) => {
            reason.get_or_insert(format!("cannot size: {err}"));
            None
        }
    };
    if reason.is_none() {
        let hash = match file.hash.whole(file.node.size) {
            Some(hash) => Ok(hash),
            // Chunks came out of order, or a hole was left: read the file back.
            None => {
                target::open_file(&dir, &file.temp, false).and_then(|f| hash_file(&f, read_back))
            }
        };
        match hash {
            Ok(hash) if Some(hash.to_hex().as_str()) == file.node.hash.as_deref() => {}
            Ok(_) => reason = Some("whole-file hash does not match the snapshot".into()),
            Err(err) => reason = Some(format!("cannot read back: {err}")),
        }
    }
    if let Some(reason) = reason {
        let mut partial = name.to_vec();
        partial.extend_from_slice(PARTIAL_SUFFIX.as_bytes());
        let kept = target::rename(&dir, &file.temp, &partial).is_ok();
        let mut missing = merge(file.missing);
        if missing.is_empty() {
            missing.push((0, file.node.size));
        }
        report.problems.damaged.push(FileDamage {
            path,
            missing,
            reason,
            kept_as: kept.then(|| PathBytes(partial).escaped()),
        });
        return None;
    }
    // Reached only without a reason, so the file was opened and sized.
    let applied = handle.map_or(Ok(()), |f| apply_attributes(&f, &file.node));
    if let Err(err) = applied {
        report
            .problems
            .warnings
            .push(format!("{path}: attributes not applied: {err}"));
    }
    match target::rename(&dir, &file.temp, name) {
        Ok(()) => {
            report.files += 1;
            Some(file.node.path.0)
        }
        Err(err) => {
            let _ = rustix::fs::unlinkat(&dir, &file.temp[..], rustix::fs::AtFlags::empty());
            report.problems.refused.push(Refusal {
                path,
                reason: format!("cannot put in place: {err}"),
            });
            None
        }
    }
}

fn hash_file(mut file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn timestamps(node: &Node) -> rustix::fs::Timestamps {
    let time = rustix::fs::Timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    }
}

/// Owner (as root), mode and mtime; set-id bits only when the owner was restored too.
fn apply_attributes(file: &std::fs::File, node: &Node) -> std::io::Result<()> {
    let mut mode = node.mode & 0o7777;
    if is_root() {
        rustix::fs::fchown(
            file,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
        )?;
    } else {
        mode &= 0o1777;
    }
    rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(mode))?;
    rustix::fs::futimens(file, &timestamps(node))?;
    if mode != node.mode & 0o7777 {
        // Everything else is applied; the operator must know the file is not as it was.
        return Err(std::io::Error::other(
            "set-uid/set-gid bits dropped: they are restored only with the owner, as root",
        ));
    }
    Ok(())
}

fn restore_hardlink(
    target: &mut Target,
    node: &Node,
    restored: &HashSet<Vec<u8>>,
) -> Result<(), String> {
    let to = node.target.as_ref().ok_or("hard link without a target")?;
    if !restored.contains(&to.0) {
        return Err(format!(
            "hard link to /{} which this restore did not create",
            to.escaped()
        ));
    }
    let (to_parent, to_name) = parent_and_name(to);
    let (parent, name) = parent_and_name(&node.path);
    let from_dir = target.dir(to_parent).map_err(|e| e.to_string())?;
    let dir = target.dir(parent).map_err(|e| e.to_string())?;
    let mut temp = b".tv-link-".to_vec();
    temp.extend_from_slice(&name[..name.len().min(200)]);
    rustix::fs::linkat(
        &from_dir,
        to_name,
        &dir,
        &temp[..],
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| e.to_string())?;
    target::rename(&dir, &temp, name).map_err(|e| e.to_string())
}

fn restore_special(target: &mut Target, node: &Node) -> Result<(), String> {
    let (parent, name) = parent_and_name(&node.path);
    let dir = target.dir(parent).map_err(|e| e.to_string())?;
    let mut temp = b".tv-new-".to_vec();
    temp.extend_from_slice(&name[..name.len().min(200)]);
    match node.kind {
        NodeKind::Symlink => {
            let text = node.target.as_ref().ok_or("symlink without a target")?;
            rustix::fs::symlinkat(&text.0[..], &dir, &temp[..]).map_err(|e| e.to_string())?;
        }
        _ => rustix::fs::mkfifoat(
            &dir,
            &temp[..],
            rustix::fs::Mode::from_raw_mode(node.mode & 0o777),
        )
        .map_err(|e| e.to_string())?,
    }
    if is_root() {
        let _ = rustix::fs::chownat(
            &dir,
            &temp[..],
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
    let _ = rustix::fs::utimensat(
        &dir,
        &temp[..],
        &timestamps(node),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
    target::rename(&dir, &temp, name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `content` waiting to be restored as `name` in the target's root.
    fn pending(target: &mut Target, name: &str, content: &[u8]) -> PendingFile {
        let dir = target.dir(b"").unwrap();
        let (_, temp) = target::create_temp(&dir, name.as_bytes()).unwrap();
        PendingFile {
            node: Node {
                path: PathBytes(name.as_bytes().to_vec()),
                kind: NodeKind::File,
                mode: 0o644,
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
                mtime_ns: 0,
                size: content.len() as u64,
                hash: Some(blake3::hash(content).to_hex().to_string()),
                chunks: Vec::new(),
                target: None,
                change: None,
            },
            temp,
            missing: Vec::new(),
            reason: None,
            hash: WriteHash::new(),
        }
    }

    #[test]
    fn the_whole_file_hash_comes_from_the_writes_or_from_reading_back() {
        let scratch = tempfile::tempdir().unwrap();
        let mut target = Target::open(scratch.path()).unwrap();
        let content = b"first part|second part".as_slice();
        let (head, tail) = content.split_at(11);
        let mut files = vec![
            pending(&mut target, "in-order", content),
            pending(&mut target, "reversed", content),
            pending(&mut target, "wrong", content),
        ];
        // More files than stay open, written in two interleaved rounds.
        for n in 0..40 {
            files.push(pending(&mut target, &format!("f{n}"), content));
        }
        let mut open = OpenFiles { open: Vec::new() };
        for (index, offset, piece) in [
            (0, 0, head),
            (0, 11, tail),
            (1, 11, tail),
            (1, 0, head),
            (2, 0, head),
            (2, 11, b"SECOND PART".as_slice()),
        ] {
            open.write(&mut target, &mut files, index, offset, piece)
                .unwrap();
        }
        for (offset, piece) in [(0, head), (11, tail)] {
            for index in 3..files.len() {
                open.write(&mut target, &mut files, index, offset, piece)
                    .unwrap();
            }
        }
        assert!(matches!(files[0].hash, WriteHash::Whole(_)), "in order");
        assert!(matches!(files[1].hash, WriteHash::ReadBack), "out of order");
        // Half written: the one hasher alive; none for a file not started.
        let mut half = pending(&mut target, "half", content);
        assert!(matches!(half.hash, WriteHash::InOrder(0, None)));
        half.hash.add(0, head, content.len() as u64);
        assert!(matches!(half.hash, WriteHash::InOrder(11, Some(_))));
        // A file waiting costs its node and names, not a 2 KiB hasher: a restore of a
        // million files keeps all of them.
        assert!(std::mem::size_of::<PendingFile>() < 512);
        drop(open);
        let mut report = RestoreReport::default();
        let mut read_back = vec![0; 4096];
        for file in files {
            finish_file(&mut target, file, &mut read_back, &mut report);
        }
        assert_eq!(report.files, 42);
        for name in ["in-order", "reversed", "f0", "f39"] {
            assert_eq!(std::fs::read(scratch.path().join(name)).unwrap(), content);
        }
        let damaged = &report.problems.damaged;
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].path, "wrong");
        assert!(damaged[0].reason.contains("whole-file hash"), "{damaged:?}");
    }
}
