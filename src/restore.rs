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
use crate::keys::KeySource;
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
use std::sync::atomic::{AtomicBool, Ordering};

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

/// What is being done to one file of the restore (its node is kept apart, read-only,
/// so the thread making files ahead can read it while the writer updates this).
struct PendingFile {
    /// Chunk places not yet written nor known lost: at zero the file is finished.
    unsettled: usize,
    missing: Vec<(u64, u64)>,
    reason: Option<String>,
    hash: WriteHash,
}

impl PendingFile {
    fn new(node: &Node) -> PendingFile {
        PendingFile {
            unsettled: node.chunks.len(),
            missing: Vec::new(),
            reason: None,
            hash: WriteHash::new(),
        }
    }
}

/// A file's temporary name, or why it could not be made. Made once, by whichever
/// thread needs it first: the one making files ahead, or the writer.
type Made = std::sync::OnceLock<Result<Vec<u8>, String>>;

/// Make the file of `node` under a temporary name (closed: it is opened to be written).
fn make_temp(target: &mut Target, node: &Node, stopped: &TargetStopped) -> Result<Vec<u8>, String> {
    let (parent, name) = parent_and_name(&node.path);
    target
        .dir(parent)
        .and_then(|dir| target::create_temp(&dir, name))
        .map(|(_, temp)| temp)
        .map_err(|err| {
            stopped.note(&err);
            err.to_string()
        })
}

/// The first sign that the target can take no more: its filesystem is full, over
/// quota, or turned read-only (ext4 remounts so after errors). Nothing more can be
/// restored then, so the restore stops: it neither reads every remaining volume (a
/// tape's worth) for nothing nor names every later file damaged, which a drill would
/// report as damage to the vault.
#[derive(Default)]
struct TargetStopped(std::sync::OnceLock<String>);

impl TargetStopped {
    /// Keep `err` if it says the target can take no more.
    fn note(&self, err: &std::io::Error) {
        use rustix::io::Errno;
        let errno = Errno::from_io_error(err);
        if matches!(errno, Some(Errno::NOSPC | Errno::DQUOT | Errno::ROFS)) {
            let _ = self.0.set(err.to_string());
        }
    }

    /// The error that stopped the target, once one has.
    fn why(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    fn is_stopped(&self) -> bool {
        self.why().is_some()
    }
}

/// A volume's bytes, until the target stops: then the read fails, and stops.
struct UntilStopped<'a, R> {
    inner: R,
    stopped: &'a TargetStopped,
}

impl<R: Read> Read for UntilStopped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stopped.is_stopped() {
            return Err(std::io::Error::other("the restore target can take no more"));
        }
        self.inner.read(buf)
    }
}

/// Make every file in plan order, ahead of the writer, until `stop`. Making a file
/// costs as much as writing a small one (and far more just after a tree was deleted,
/// when ext4 passes over the freed inodes), so it runs beside the decoding instead of
/// before it.
fn make_ahead(
    mut target: Target,
    nodes: &[Node],
    made: &[Made],
    stop: &AtomicBool,
    stopped: &TargetStopped,
) {
    for (node, made) in nodes.iter().zip(made) {
        if stop.load(Ordering::Relaxed) || stopped.is_stopped() {
            return;
        }
        made.get_or_init(|| make_temp(&mut target, node, stopped));
    }
}

/// The whole-file hash of what was written, taken in file order (holes hashed as the
/// zeros they read as): it spares reading the file back. A chunk written ahead of that
/// order (media order is not file order, and a file may hold one chunk twice) is read
/// back alone once the hash reaches it, from the page cache it was just written to.
enum WriteHash {
    /// Hashed in file order up to this offset. The state exists only while the file is
    /// part written: a million files waiting hold none.
    InOrder(u64, Option<Box<Hashing>>),
    /// Every byte hashed.
    Whole(blake3::Hash),
    /// A place could not be read back, or was written twice: the file is read back.
    ReadBack,
}

/// The hash of a part-written file so far.
#[derive(Default)]
struct Hashing {
    hasher: blake3::Hasher,
    /// Places written past the hashed offset, by offset: their lengths.
    ahead: std::collections::BTreeMap<u64, u64>,
}

impl WriteHash {
    fn new() -> WriteHash {
        WriteHash::InOrder(0, None)
    }

    /// `plain` was written at `offset` of `file`, the file of `node`; `buf` is room for
    /// reading back places written ahead.
    fn add(
        &mut self,
        offset: u64,
        plain: &[u8],
        node: &Node,
        file: &std::fs::File,
        buf: &mut [u8],
    ) {
        *self = match std::mem::replace(self, WriteHash::ReadBack) {
            WriteHash::InOrder(hashed_to, state) => {
                let mut state = state.unwrap_or_default();
                let next = hole_until(node, hashed_to);
                if offset > next {
                    state.ahead.insert(offset, plain.len() as u64);
                    WriteHash::InOrder(hashed_to, Some(state))
                } else if offset == next {
                    crate::model::hash_zeros(&mut state.hasher, offset - hashed_to);
                    state.hasher.update(plain);
                    state.catch_up(offset + plain.len() as u64, node, file, buf)
                } else {
                    WriteHash::ReadBack
                }
            }
            _ => WriteHash::ReadBack,
        };
    }

    /// The hash of the file of `node`, if every byte was hashed.
    fn whole(self, node: &Node) -> Option<blake3::Hash> {
        match self {
            WriteHash::Whole(hash) => Some(hash),
            // Nothing but holes after the last chunk written.
            WriteHash::InOrder(hashed_to, state) if hole_until(node, hashed_to) == node.size => {
                let mut hasher = state.map(|s| s.hasher).unwrap_or_default();
                crate::model::hash_zeros(&mut hasher, node.size - hashed_to);
                Some(hasher.finalize())
            }
            _ => None,
        }
    }
}

impl Hashing {
    /// Hashed up to `hashed_to`: go on through the places already written after it.
    fn catch_up(
        mut self: Box<Self>,
        mut hashed_to: u64,
        node: &Node,
        file: &std::fs::File,
        buf: &mut [u8],
    ) -> WriteHash {
        loop {
            let next = hole_until(node, hashed_to);
            let Some(len) = self.ahead.remove(&next) else {
                break;
            };
            crate::model::hash_zeros(&mut self.hasher, next - hashed_to);
            if hash_range(file, next, len, &mut self.hasher, buf).is_err() {
                return WriteHash::ReadBack;
            }
            hashed_to = next + len;
        }
        if hashed_to == node.size {
            WriteHash::Whole(self.hasher.finalize())
        } else {
            WriteHash::InOrder(hashed_to, Some(self))
        }
    }
}

/// Hash `len` bytes of `file` from `offset`, read through `buf`.
fn hash_range(
    file: &std::fs::File,
    offset: u64,
    len: u64,
    hasher: &mut blake3::Hasher,
    buf: &mut [u8],
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < len {
        let room = buf.len() as u64;
        let part = &mut buf[..(len - done).min(room) as usize];
        file.read_exact_at(part, offset + done)?;
        hasher.update(part);
        done += part.len() as u64;
    }
    Ok(())
}

/// Where the data after `offset` of the file of `node` starts again: the next chunk's
/// offset, or the file's size when only a hole is left.
fn hole_until(node: &Node, offset: u64) -> u64 {
    let next = node.chunks.partition_point(|c| c.offset < offset);
    node.chunks.get(next).map_or(node.size, |c| c.offset)
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

/// Writes chunks into their files and finishes each file (checked, named, attributes
/// set) as soon as its last chunk is settled, while the next volume is still decoded.
struct FileWriter<'a> {
    target: Target,
    nodes: &'a [Node],
    made: &'a [Made],
    /// Each file until it is finished.
    files: Vec<Option<PendingFile>>,
    /// Where each chunk still to come goes; a chunk is settled once.
    wanted: ChunkTargets,
    open: OpenFiles,
    read_back: Vec<u8>,
    progress: &'a dyn Observer,
    started: std::time::Instant,
    /// What finishing the files found (files, damage, refusals, warnings) and bytes.
    report: RestoreReport,
    /// Which files were put in place (by index), for hard links to them: a flag each,
    /// not a copy of every path.
    restored: Vec<bool>,
    stopped: &'a TargetStopped,
}

impl<'a> FileWriter<'a> {
    /// A writer of the files of `nodes`, each chunk to the places `wanted` lists.
    fn new(
        target: Target,
        nodes: &'a [Node],
        made: &'a [Made],
        wanted: ChunkTargets,
        progress: &'a dyn Observer,
        started: std::time::Instant,
        stopped: &'a TargetStopped,
    ) -> FileWriter<'a> {
        FileWriter {
            target,
            nodes,
            made,
            files: nodes
                .iter()
                .map(|node| Some(PendingFile::new(node)))
                .collect(),
            wanted,
            open: OpenFiles { open: Vec::new() },
            read_back: vec![0; 1 << 20],
            progress,
            started,
            report: RestoreReport::default(),
            restored: vec![false; nodes.len()],
            stopped,
        }
    }

    /// Write a chunk (or, without `plain`, record it lost for `reason`) into every
    /// place it fills, and finish each file this completes.
    fn settle(&mut self, id: &ChunkId, plain: Option<&[u8]>, reason: &str) {
        let Some(places) = self.wanted.remove(id) else {
            return;
        };
        for (index, offset) in places {
            if self.files[index].is_none() {
                continue;
            }
            let lost = match plain {
                None => Some(reason.to_string()),
                Some(plain) => self.write_place(index, offset, plain),
            };
            let node = &self.nodes[index];
            let Some(file) = self.files[index].as_mut() else {
                continue;
            };
            if let Some(why) = lost {
                let len = node
                    .chunks
                    .iter()
                    .find(|c| c.id == *id && c.offset == offset)
                    .map_or(0, |c| u64::from(c.len));
                file.missing.push((offset, offset + len));
                file.reason.get_or_insert(why);
            }
            file.unsettled = file.unsettled.saturating_sub(1);
            // Once the target can take no more, no file is finished: the restore stops.
            if file.unsettled == 0 && !self.stopped.is_stopped() {
                self.finish(index);
            }
        }
    }

    /// Write a chunk at `offset` of file `index`: why that place stays empty, if it does.
    /// A file that could not be made is not written either: it is refused when finished.
    fn write_place(&mut self, index: usize, offset: u64, plain: &[u8]) -> Option<String> {
        let (nodes, made) = (self.nodes, self.made);
        let node = &nodes[index];
        let Ok(temp) = made[index].get_or_init(|| make_temp(&mut self.target, node, self.stopped))
        else {
            return None;
        };
        let handle = match self
            .open
            .write(&mut self.target, index, node, temp, offset, plain)
        {
            Ok(handle) => handle,
            Err(err) => {
                self.stopped.note(&err);
                return Some(format!("cannot write: {err}"));
            }
        };
        if let Some(file) = self.files[index].as_mut() {
            file.hash
                .add(offset, plain, node, handle, &mut self.read_back);
        }
        let len = plain.len() as u64;
        self.report
            .first_byte_seconds
            .get_or_insert(self.started.elapsed().as_secs_f64());
        self.report.bytes += len;
        self.progress.on(Event::Bytes(len));
        None
    }

    /// Finish the files waiting for no chunk (empty ones, or all of whose chunks are lost).
    fn finish_settled(&mut self) {
        for index in 0..self.files.len() {
            if self.files[index].as_ref().is_some_and(|f| f.unsettled == 0) {
                self.finish(index);
            }
        }
    }

    /// Finish every file not finished yet: once all volumes are read, what a file still
    /// lacks is lost.
    fn finish_rest(&mut self) {
        for index in 0..self.files.len() {
            self.finish(index);
        }
    }

    /// Remove every file not finished yet (the target stopped): the space goes back,
    /// and no temporary name is left. Files already in place stay.
    fn discard_unfinished(&mut self) {
        for index in 0..self.files.len() {
            if self.files[index].take().is_none() {
                continue;
            }
            drop(self.open.close(index));
            if let Some(Ok(temp)) = self.made[index].get() {
                let parent = parent_and_name(&self.nodes[index].path).0;
                if let Ok(dir) = self.target.dir(parent) {
                    let _ = target::remove_file(&dir, temp);
                }
            }
        }
    }

    /// Check file `index`, give it its name and attributes, or keep it as partial.
    fn finish(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(file) = self.files[index].take() else {
            return;
        };
        let handle = self.open.close(index);
        let made = self.made[index].get_or_init(|| make_temp(&mut self.target, node, self.stopped));
        let temp = match made {
            Ok(temp) => temp,
            Err(reason) => {
                self.report.problems.refused.push(Refusal {
                    path: node.path.escaped(),
                    reason: reason.clone(),
                });
                return;
            }
        };
        let finished = finish_file(
            &mut self.target,
            node,
            temp,
            file,
            handle,
            &mut self.read_back,
            &mut self.report,
        );
        if finished {
            self.progress.on(Event::File {
                path: &node.path,
                origin: crate::source::Origin::New,
            });
            self.restored[index] = true;
        }
    }
}

/// Which file (by index in `files`) and offset each chunk fills.
fn chunk_places(files: &[Node]) -> ChunkTargets {
    let mut wanted: ChunkTargets = HashMap::new();
    for (index, node) in files.iter().enumerate() {
        for chunk in &node.chunks {
            wanted
                .entry(chunk.id)
                .or_default()
                .push((index, chunk.offset));
        }
    }
    wanted
}

/// Order each pack's blobs as the files want them: blobs are shuffled in a pack on media
/// (FORMAT.md), and decoded in file order a file's chunks come in order, so its whole-file
/// hash is taken as they are written instead of by reading places back.
fn in_file_order(packs: &mut PackPlan, wanted: &ChunkTargets) {
    for blobs in packs
        .values_mut()
        .flat_map(|per_pack| per_pack.values_mut())
    {
        // A chunk's places are listed file by file, each file's in offset order.
        blobs.sort_by_cached_key(|(id, _)| {
            wanted.get(id).and_then(|places| places.first().copied())
        });
    }
}

/// Write each chunk received into every file offset it fills.
fn write_chunks(work: std::sync::mpsc::Receiver<Work>, writer: &mut FileWriter) {
    // The reader is still opening the first volume: files with nothing to wait for are
    // finished meanwhile.
    writer.finish_settled();
    for item in work {
        match item {
            Work::Missing(id, reason) => writer.settle(&id, None, &reason),
            Work::Chunk(id, plain) => writer.settle(&id, Some(&plain), ""),
        }
        if writer.stopped.is_stopped() {
            return;
        }
    }
}

/// Files being written, the last few kept open: chunks mostly come in file order,
/// and opening a file for each one costs more than writing it.
struct OpenFiles {
    open: Vec<(usize, std::fs::File)>,
}

impl OpenFiles {
    const MAX_OPEN: usize = 32;

    /// Write a chunk at its offset in file `index` of `node`, made as `temp`; the file's
    /// handle comes back.
    fn write(
        &mut self,
        target: &mut Target,
        index: usize,
        node: &Node,
        temp: &[u8],
        offset: u64,
        plain: &[u8],
    ) -> std::io::Result<&std::fs::File> {
        let slot = match self.open.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => {
                let dir = target.dir(parent_and_name(&node.path).0)?;
                let handle = target::open_file(&dir, temp, true)?;
                if self.open.len() == Self::MAX_OPEN {
                    self.open.remove(0);
                }
                self.open.push((index, handle));
                self.open.len() - 1
            }
        };
        let handle = &self.open[slot].1;
        handle.write_all_at(plain, offset)?;
        Ok(handle)
    }

    /// File `index`'s handle, if it is open, no longer kept.
    fn close(&mut self, index: usize) -> Option<std::fs::File> {
        let slot = self.open.iter().position(|(i, _)| *i == index)?;
        Some(self.open.remove(slot).1)
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
    key: &dyn KeySource,
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
    // Sized once: grown by doubling, a million files' list was copied and held twice.
    let file_count = nodes.iter().filter(|n| n.kind == NodeKind::File).count();
    let mut files: Vec<Node> = Vec::with_capacity(file_count);
    let mut dirs = Vec::new();
    // Links and special files, made once the files are. Nodes move, not copied: a
    // restore of a million files holds each once.
    let mut others = Vec::new();
    for node in nodes {
        match node.kind {
            _ if node.path.0.is_empty() => {}
            NodeKind::File => files.push(node),
            NodeKind::Dir => dirs.push(node),
            _ => others.push(node),
        }
    }
    let wanted = chunk_places(&files);
    let (mut packs, unknown) = locate(catalog, wanted.keys().copied(), BlobKind::Data)?;
    in_file_order(&mut packs, &wanted);
    let volumes = catalog.volumes_by_sequence()?;
    // The key was derived while the restore was planned. Nothing is made in the target
    // before it is known good: a wrong passphrase leaves no trace there.
    let key = key.master_key()?;

    let mut target = Target::open(&options.target)
        .map_err(|e| Error::io("cannot open restore target", &options.target, e))?;
    // Said before any volume is read, not as a refusal of every entry.
    if target.is_read_only().unwrap_or(false) {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "restore target {} is on a read-only filesystem: mount it read-write or \
                 choose another target",
                options.target.display()
            ),
        ));
    }
    let every_entry = || files.iter().chain(&dirs).chain(&others);
    if !options.overwrite {
        let empty = target
            .is_empty()
            .map_err(|e| Error::io("cannot read restore target", &options.target, e))?;
        if !empty {
            check_conflicts(&mut target, every_entry(), &options.target)?;
        }
    }
    if options.overwrite {
        report.stale_temps_removed = remove_stale_temps(&mut target, every_entry());
    }
    let mut restored_dirs = Vec::new();
    for node in dirs {
        let (parent, name) = parent_and_name(&node.path);
        let made = target
            .dir(parent)
            .and_then(|dir| target::make_dir(&dir, name, options.overwrite));
        match made {
            Ok(()) => restored_dirs.push(node),
            Err(err) => report.problems.refused.push(Refusal {
                path: node.path.escaped(),
                reason: err.to_string(),
            }),
        }
    }

    progress.on(Event::Planned {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.size).sum(),
    });
    // Files are made while the volumes are read, and sized at the end: extending first
    // makes the kernel zero every page twice.
    let made: Vec<Made> = files.iter().map(|_| Made::new()).collect();
    // The writer and the thread making files ahead each keep their own folder handles.
    let own_target = || {
        target
            .try_clone()
            .map_err(|e| Error::io("cannot open restore target", &options.target, e))
    };
    let ahead = own_target()?;
    let stopped = TargetStopped::default();
    let mut writer = FileWriter::new(
        own_target()?,
        &files,
        &made,
        wanted,
        progress,
        started,
        &stopped,
    );
    for id in unknown {
        writer.settle(&id, None, "chunk not in the catalog");
    }
    let keys = ReadKeys {
        vault_id: info.vault_id,
        master: key,
        ids: key.chunk_id_key(),
    };
    // Volumes are read and their blobs decoded here while a second thread writes
    // the files: writing (the kernel's copy into the page cache) costs as much as decoding.
    let stop_making = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let (send, work) = std::sync::mpsc::sync_channel::<Work>(WRITE_QUEUE);
        let (files, made, stop, stopped) = (&files, &made, &stop_making, &stopped);
        scope.spawn(move || make_ahead(ahead, files, made, stop, stopped));
        let writing = {
            let writer = &mut writer;
            scope.spawn(move || write_chunks(work, writer))
        };
        let read = (|| -> Result<()> {
            for (sequence, per_pack) in &packs {
                if stopped.is_stopped() {
                    break;
                }
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
                            let inner = UntilStopped {
                                inner: stream,
                                stopped,
                            };
                            let mut repairing = RepairingReader::new(inner);
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
                        if stopped.is_stopped() {
                            // Damage already found in this volume is still said.
                            report.problems.volume_errors.extend(findings.damage);
                            return Ok(());
                        }
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
        stop_making.store(true, Ordering::Relaxed);
        writing.join().expect("the file writer does not panic");
        read
    })?;
    if let Some(why) = stopped.why() {
        writer.discard_unfinished();
        let damage = writer.report.problems.damaged.len() + report.problems.volume_errors.len();
        let found = match damage {
            0 => "nothing was found damaged".to_string(),
            _ => {
                format!("{damage} damaged files or volumes were found before (`verify` names them)")
            }
        };
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "restore target {} can take no more ({why}): stopped after {} files, each \
                 checked; {found}. Free space (or fix the filesystem) or choose another target \
                 (a drill: --scratch), then run it again (into the same folder: with \
                 --overwrite)",
                options.target.display(),
                writer.report.files,
            ),
        ));
    }
    writer.finish_rest();
    let finished = writer.report;
    report.bytes += finished.bytes;
    report.first_byte_seconds = finished.first_byte_seconds;
    report.files += finished.files;
    report.problems.refused.extend(finished.problems.refused);
    report.problems.warnings.extend(finished.problems.warnings);
    // Files finish as their last chunk comes; they are listed in path order.
    let mut damaged = finished.problems.damaged;
    damaged.sort_by(|a, b| a.path.cmp(&b.path));
    report.problems.damaged.extend(damaged);
    // Files are in path order, as the snapshot lists them.
    let restored = |path: &PathBytes| {
        files
            .binary_search_by(|file| file.path.cmp(path))
            .is_ok_and(|index| writer.restored[index])
    };
    for node in &others {
        let result = match node.kind {
            NodeKind::Hardlink => restore_hardlink(&mut target, node, restored),
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
fn remove_stale_temps<'a>(target: &mut Target, nodes: impl Iterator<Item = &'a Node>) -> u64 {
    let mut by_parent: BTreeMap<Vec<u8>, HashSet<Vec<u8>>> = BTreeMap::new();
    for node in nodes.filter(|n| n.kind != NodeKind::Dir) {
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

fn check_conflicts<'a>(
    target: &mut Target,
    nodes: impl Iterator<Item = &'a Node>,
    root: &std::path::Path,
) -> Result<()> {
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
    // The first in path order, whatever order the entries came in.
    conflicts.sort();
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
/// Check the file of `node`, written as `temp` (and still open as `handle`, if it is),
/// then give it its name and attributes, or keep it as partial. True when it is in place.
fn finish_file(
    target: &mut Target,
    node: &Node,
    temp: &[u8],
    file: PendingFile,
    handle: Option<std::fs::File>,
    read_back: &mut [u8],
    report: &mut RestoreReport,
) -> bool {
    let path = node.path.escaped();
    let (parent, name) = parent_and_name(&node.path);
    let dir = match target.dir(parent) {
        Ok(dir) => dir,
        Err(err) => {
            report.problems.damaged.push(FileDamage {
                path,
                missing: vec![(0, node.size)],
                reason: err.to_string(),
                kept_as: None,
            });
            return false;
        }
    };
    let mut reason = file.reason;
    // Trailing holes (and a damaged tail) still give the file its recorded size.
    let sized = handle
        .map_or_else(|| target::open_file(&dir, temp, true), Ok)
        .and_then(|f| {
            if f.metadata()?.len() != node.size {
                f.set_len(node.size)?;
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
        let hash = match file.hash.whole(node) {
            Some(hash) => Ok(hash),
            // Chunks came out of order, or a hole was left: read the file back.
            None => target::open_file(&dir, temp, false).and_then(|f| {
                let mut hasher = blake3::Hasher::new();
                hash_range(&f, 0, node.size, &mut hasher, read_back).map(|()| hasher.finalize())
            }),
        };
        match hash {
            Ok(hash) if Some(hash.to_hex().as_str()) == node.hash.as_deref() => {}
            Ok(_) => reason = Some("whole-file hash does not match the snapshot".into()),
            Err(err) => reason = Some(format!("cannot read back: {err}")),
        }
    }
    if let Some(reason) = reason {
        let mut partial = name.to_vec();
        partial.extend_from_slice(PARTIAL_SUFFIX.as_bytes());
        let kept = target::rename(&dir, temp, &partial).is_ok();
        let mut missing = merge(file.missing);
        if missing.is_empty() {
            missing.push((0, node.size));
        }
        report.problems.damaged.push(FileDamage {
            path,
            missing,
            reason,
            kept_as: kept.then(|| PathBytes(partial).escaped()),
        });
        return false;
    }
    // Reached only without a reason, so the file was opened and sized.
    let applied = handle.map_or(Ok(()), |f| apply_attributes(&f, node));
    if let Err(err) = applied {
        report
            .problems
            .warnings
            .push(format!("{path}: attributes not applied: {err}"));
    }
    match target::rename(&dir, temp, name) {
        Ok(()) => {
            report.files += 1;
            true
        }
        Err(err) => {
            let _ = target::remove_file(&dir, temp);
            report.problems.refused.push(Refusal {
                path,
                reason: format!("cannot put in place: {err}"),
            });
            false
        }
    }
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
    restored: impl Fn(&PathBytes) -> bool,
) -> Result<(), String> {
    let to = node.target.as_ref().ok_or("hard link without a target")?;
    if !restored(to) {
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

    #[test]
    fn a_shuffled_packs_blobs_are_decoded_in_the_order_the_files_want_them() {
        let pieces: Vec<Vec<u8>> = (0..6u8).map(|n| vec![n; 10 + usize::from(n)]).collect();
        let piece = |n: usize| pieces[n].as_slice();
        // Two files: the second starts with the first's last chunk.
        let files = [
            file_node("a", &[piece(0), piece(1), piece(2), piece(3)]),
            file_node("b", &[piece(3), piece(4), piece(5)]),
        ];
        let id = |n: usize| ChunkId(*blake3::hash(piece(n)).as_bytes());
        let location = |position: usize| BlobLocation {
            kind: BlobKind::Data,
            sequence: 1,
            pack: 1,
            position: position as u32,
            offset: 0,
            pack_offset: 0,
            sealed_len: 0,
            plain_len: 0,
        };
        // As stored: shuffled, each blob's position its place in the pack.
        let blobs = [4, 1, 5, 0, 3, 2]
            .iter()
            .enumerate()
            .map(|(position, &n)| (id(n), location(position)))
            .collect();
        let mut packs = PackPlan::from([(1, PackBlobs::from([(1, blobs)]))]);
        in_file_order(&mut packs, &chunk_places(&files));
        let decoded: Vec<ChunkId> = packs[&1][&1].iter().map(|(id, _)| *id).collect();
        assert_eq!(decoded, (0..6).map(id).collect::<Vec<_>>());
    }

    #[test]
    fn places_written_ahead_are_hashed_from_the_file_once_the_hash_reaches_them() {
        use std::os::unix::fs::FileExt;
        // "second" twice: a chunk the file holds twice comes once, for both places.
        let pieces: [&[u8]; 4] = [
            b"first piece",
            b"second",
            b"third, a longer piece",
            b"second",
        ];
        let node = file_node("f", &pieces);
        let file = tempfile::tempfile().unwrap();
        // Smaller than a piece: a place is read back in parts.
        let mut buf = [0; 4];
        let mut hash = WriteHash::new();
        for index in [2, 1, 3, 0] {
            let offset = node.chunks[index].offset;
            file.write_all_at(pieces[index], offset).unwrap();
            hash.add(offset, pieces[index], &node, &file, &mut buf);
            let whole = matches!(hash, WriteHash::Whole(_));
            assert_eq!(whole, index == 0, "after piece {index}");
        }
        assert_eq!(hash.whole(&node), Some(blake3::hash(&pieces.concat())));
        // A place read back hashes as what is on disk, not as what was handed in.
        file.write_all_at(b"SECOND", node.chunks[1].offset).unwrap();
        let mut changed = WriteHash::new();
        for index in [1, 0, 2, 3] {
            changed.add(
                node.chunks[index].offset,
                pieces[index],
                &node,
                &file,
                &mut buf,
            );
        }
        let on_disk = [pieces[0], b"SECOND", pieces[2], pieces[3]].concat();
        assert_eq!(changed.whole(&node), Some(blake3::hash(&on_disk)));
        // A place written twice: the file is read back whole when finished.
        let mut twice = WriteHash::new();
        twice.add(0, pieces[0], &node, &file, &mut buf);
        twice.add(0, pieces[0], &node, &file, &mut buf);
        assert!(matches!(twice, WriteHash::ReadBack));
    }

    /// A file of `pieces` (its chunks, in file order) to be restored at `path`.
    fn file_node(path: &str, pieces: &[&[u8]]) -> Node {
        let mut size = 0;
        let chunks = pieces
            .iter()
            .map(|piece| {
                let chunk = crate::model::ChunkRef {
                    id: ChunkId(*blake3::hash(piece).as_bytes()),
                    offset: size,
                    len: piece.len() as u32,
                };
                size += piece.len() as u64;
                chunk
            })
            .collect();
        Node {
            path: PathBytes(path.as_bytes().to_vec()),
            kind: NodeKind::File,
            mode: 0o644,
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            mtime_ns: 0,
            size,
            hash: Some(blake3::hash(&pieces.concat()).to_hex().to_string()),
            chunks,
            target: None,
            change: None,
        }
    }

    fn id(piece: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(piece).as_bytes())
    }

    /// A writer of the files of `nodes`, showing no progress.
    fn writer_of<'a>(
        target: Target,
        nodes: &'a [Node],
        made: &'a [Made],
        stopped: &'a TargetStopped,
    ) -> FileWriter<'a> {
        let places = chunk_places(nodes);
        let started = std::time::Instant::now();
        FileWriter::new(
            target,
            nodes,
            made,
            places,
            &crate::progress::Silent,
            started,
            stopped,
        )
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_full_target_stops_the_writer_and_leaves_only_finished_files() {
        let scratch = tempfile::tempdir().unwrap();
        let target = Target::open(scratch.path()).unwrap();
        let (head, tail) = (b"first part|".as_slice(), b"second part".as_slice());
        let nodes = vec![
            file_node("done", &[head]),
            file_node("half", &[head, tail]),
            file_node("untouched", &[tail]),
        ];
        let made: Vec<Made> = nodes.iter().map(|_| Made::new()).collect();
        let stopped = TargetStopped::default();
        // Only a full, over-quota or read-only filesystem stops a restore; other errors
        // name a file.
        stopped.note(&std::io::Error::from_raw_os_error(libc::EIO));
        assert!(!stopped.is_stopped());
        let read_only = TargetStopped::default();
        read_only.note(&std::io::Error::from_raw_os_error(libc::EROFS));
        assert!(read_only.is_stopped(), "a filesystem remounted read-only");
        let stop = AtomicBool::new(false);
        make_ahead(target.try_clone().unwrap(), &nodes, &made, &stop, &stopped);
        let mut writer = writer_of(target, &nodes, &made, &stopped);
        writer.settle(&id(head), Some(head), "");
        assert_eq!(writer.report.files, 1);
        stopped.note(&std::io::Error::from_raw_os_error(libc::EDQUOT));
        assert!(stopped.is_stopped());
        // The volume being read fails at its next read, so no later volume is read.
        let mut reading = UntilStopped {
            inner: &b"more of the volume"[..],
            stopped: &stopped,
        };
        assert!(reading.read(&mut [0; 8]).is_err());
        // A file whose last chunk comes now is not finished: the restore stops.
        writer.settle(&id(tail), Some(tail), "");
        assert!(writer.files[1].is_some() && writer.files[2].is_some());
        writer.discard_unfinished();
        assert_eq!(names(scratch.path()), ["done"], "no temporary name is left");
        assert_eq!(std::fs::read(scratch.path().join("done")).unwrap(), head);
        let fresh: Vec<Made> = nodes.iter().map(|_| Made::new()).collect();
        make_ahead(
            writer.target.try_clone().unwrap(),
            &nodes,
            &fresh,
            &stop,
            &stopped,
        );
        assert!(
            fresh.iter().all(|m| m.get().is_none()),
            "nothing is made once stopped"
        );
    }

    #[test]
    fn each_file_is_made_once_and_finished_when_its_last_chunk_is_settled() {
        let scratch = tempfile::tempdir().unwrap();
        let target = Target::open(scratch.path()).unwrap();
        let (head, tail) = (b"first part|".as_slice(), b"second part".as_slice());
        let content = [head, tail].concat();
        let mut nodes = vec![
            file_node("in-order", &[head, tail]),
            file_node("reversed", &[tail, head]),
            file_node("wrong", &[head, b"third part!"]),
            file_node("lost", &[head, b"never comes"]),
            file_node("empty", &[]),
            file_node("no-folder/file", &[head]),
        ];
        // Holes before, between and after the two chunks: hashed without reading back.
        let mut sparse = file_node("sparse", &[head, tail]);
        sparse.chunks[0].offset = 4096;
        sparse.chunks[1].offset = 70_000;
        sparse.size = 200_000;
        let mut sparse_content = vec![0; 200_000];
        sparse_content[4096..4107].copy_from_slice(head);
        sparse_content[70_000..70_011].copy_from_slice(tail);
        sparse.hash = Some(blake3::hash(&sparse_content).to_hex().to_string());
        nodes.push(sparse);
        // More files than stay open, all of the same two chunks.
        for n in 0..40 {
            nodes.push(file_node(&format!("f{n:02}"), &[head, tail]));
        }
        let made: Vec<Made> = nodes.iter().map(|_| Made::new()).collect();
        // Told to stop, the thread making files ahead makes none.
        let stop = AtomicBool::new(true);
        let stopped = TargetStopped::default();
        make_ahead(target.try_clone().unwrap(), &nodes, &made, &stop, &stopped);
        assert!(made.iter().all(|m| m.get().is_none()));
        // It makes the first files; the writer makes the others when their chunks come.
        stop.store(false, Ordering::Relaxed);
        make_ahead(
            target.try_clone().unwrap(),
            &nodes[..3],
            &made[..3],
            &stop,
            &stopped,
        );
        assert_eq!(names(scratch.path()).len(), 3);

        let mut writer = writer_of(target, &nodes, &made, &stopped);
        writer.finish_settled();
        assert!(scratch.path().join("empty").exists(), "finished at once");
        writer.settle(&id(head), Some(head), "");
        let half = writer.files[0].as_ref().unwrap();
        assert!(matches!(half.hash, WriteHash::InOrder(11, Some(_))));
        // A file waiting costs its state, not a 2 KiB hasher: a restore of a million
        // files keeps all of them.
        assert!(std::mem::size_of::<PendingFile>() < 128);
        assert!(matches!(
            writer.files[46].as_ref().unwrap().hash,
            WriteHash::InOrder(11, _)
        ));
        let sparse = writer.files[6].as_ref().unwrap();
        assert!(matches!(sparse.hash, WriteHash::InOrder(4107, Some(_))));
        let mut hole_filled = writer.nodes[6].clone();
        hole_filled.chunks.remove(1);
        writer.settle(&id(tail), Some(tail), "");
        assert_eq!(
            std::fs::read(scratch.path().join("sparse")).unwrap(),
            sparse_content
        );
        // A hole is not assumed where a chunk is still to come: no hash until it does.
        let unread = tempfile::tempfile().unwrap();
        let mut early = WriteHash::new();
        early.add(70_000, tail, &writer.nodes[6], &unread, &mut [0; 16]);
        assert!(early.whole(&writer.nodes[6]).is_none());
        let mut trailing = WriteHash::new();
        trailing.add(4096, head, &hole_filled, &unread, &mut [0; 16]);
        let zeros_after = blake3::hash(&sparse_content[..70_000]);
        hole_filled.size = 70_000;
        assert_eq!(trailing.whole(&hole_filled), Some(zeros_after));
        // Finished the moment its last chunk is written, not at the end of the restore.
        assert_eq!(
            std::fs::read(scratch.path().join("in-order")).unwrap(),
            content
        );
        assert_eq!(std::fs::read(scratch.path().join("f39")).unwrap(), content);
        writer.settle(&id(b"third part!"), Some(b"THIRD PART!"), "");
        writer.settle(&id(b"never comes"), None, "damaged in volume tv000002");
        writer.finish_rest();

        let report = writer.report;
        assert_eq!(report.files, 44, "{report:?}");
        assert_eq!(report.bytes, 22 * 43 + 11 * 3);
        assert_eq!(
            std::fs::read(scratch.path().join("reversed")).unwrap(),
            [tail, head].concat()
        );
        let damaged = &report.problems.damaged;
        assert_eq!(damaged.len(), 2, "{damaged:?}");
        assert_eq!(
            (damaged[0].path.as_str(), damaged[0].missing.as_slice()),
            ("wrong", [(0, 22)].as_slice())
        );
        assert!(damaged[0].reason.contains("whole-file hash"), "{damaged:?}");
        assert_eq!(damaged[1].path, "lost");
        assert_eq!(damaged[1].missing, [(11, 22)]);
        assert_eq!(damaged[1].reason, "damaged in volume tv000002");
        assert_eq!(
            damaged[1].kept_as.as_deref(),
            Some("lost.tapevault-partial")
        );
        let refused = &report.problems.refused;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].path, "no-folder/file");
        // Every file made once: no temporary name is left behind.
        let left = names(scratch.path());
        assert_eq!(left.len(), 46, "{left:?}");
        assert!(left.iter().all(|n| !n.starts_with(".tv-")), "{left:?}");
    }
}
