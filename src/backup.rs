//! The backup operation: walk → chunk → id + dedup → compress → seal → pack → volume → vault.
//!
//! Threads in a fixed topology joined by bounded channels: one walker, N
//! workers that read, chunk, name and compress (a worker with no file left
//! compresses for those still reading), and this thread as the one writer
//! that owns every nonce counter, packs, volumes and catalog writes.
//! Chunks are claimed once per run (a shared set), so two workers never
//! store the same chunk twice. Volumes are sealed on the medium before the
//! catalog records them; the snapshot completes in its last volume's tail.

use crate::catalog::{Catalog, VaultInfo, VolumeRow};
use crate::chunk::{self, ChunkParams};
use crate::compress;
use crate::crypto::{BlobKind, ChunkIdKey, MasterKey};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{SnapshotId, VolumeId};
use crate::keys::KeySource;
use crate::model::{self, ChunkRef, Node, NodeKind, SnapshotRecord, SnapshotStats};
use crate::pack::PackBuilder;
use crate::progress::{Event, Observer, Silent};
use crate::source::{self, Found, Origin, SourceFile, WalkOptions};
use crate::vault::{Vault, VolumeSink};
use crate::volume::{IndexBlob, IndexPack, Label, Room, VolumeIndex, VolumeWriter};
use rustix::fs::FileType;
use serde::Serialize;
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Warnings kept in a snapshot record; the count is always exact.
const MAX_RECORDED_WARNINGS: usize = 100;
/// Largest pack; smaller for tiny volumes.
pub const PACK_TARGET_BYTES: u64 = 16 << 20;
/// The smallest volume that always holds one pack of a largest chunk plus the tail.
pub const MIN_VOLUME_BYTES: u64 = 4 << 20;
const NODE_BATCH: usize = 512;

/// What to back up and how.
pub struct BackupOptions {
    /// Source paths.
    pub sources: Vec<PathBuf>,
    /// Volume size limit in bytes.
    pub volume_size_bytes: u64,
    /// Reed-Solomon parity in each volume, percent (0 = none).
    pub parity_percent: u8,
    /// Start an independent volume set: deduplicate against nothing written before.
    pub new_set: bool,
    /// zstd level.
    pub compression_level: i32,
    /// Walk options.
    pub walk: WalkOptions,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Read each volume back once sealed; one that differs is never trusted and its
    /// data is written again in the same run.
    pub verify_after_write: bool,
}

/// What a backup did.
#[derive(Debug, Serialize)]
pub struct BackupSummary {
    /// The new snapshot.
    pub snapshot: SnapshotRecord,
    /// Volumes sealed by this run, by name.
    pub volumes_written: Vec<String>,
    /// Bytes of all volumes sealed by this run.
    pub bytes_written: u64,
    /// Everything skipped or changed during the run.
    pub warnings: Vec<String>,
    /// Unfinished volumes left by earlier, crashed runs (never trusted).
    pub abandoned_volumes: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

enum Msg {
    Node(Node, Origin),
    /// Nodes the walk decided without reading (folders, links, unchanged files), sent
    /// in batches: one message per node kept the walk and the writer waking each other.
    Nodes(Vec<(Node, Origin)>),
    Chunk {
        kind: BlobKind,
        id: crate::ids::ChunkId,
        plain_len: u32,
        encoded: Vec<u8>,
    },
    Warning(String),
    Failed(Error),
}

/// Run a backup into `vault`, recording it in `catalog`.
/// A catalog older than the vault (restored from a backup copy, or the vault was
/// written through another catalog) would reuse sequence numbers and trust chunks
/// it does not know the state of: refuse, and say how to get a current one.
fn refuse_stale_catalog(catalog: &Catalog, listing: &crate::vault::Listing) -> Result<()> {
    let next = catalog.next_sequence()?;
    let newer: Vec<&str> = listing
        .sealed
        .iter()
        .filter(|name| {
            crate::volume::parse_volume_name(name).is_some_and(|(sequence, _)| sequence >= next)
        })
        .map(String::as_str)
        .collect();
    if let Some(first) = newer.first() {
        return Err(Error::corrupt(format!(
            "the vault has {} volumes newer than this catalog knows (first: {first}): the catalog \
             is stale; rebuild it with `tapevault catalog rebuild --catalog NEWDIR`",
            newer.len()
        )));
    }
    Ok(())
}

/// Before a run writes volumes: drop what an interrupted run left pending, record a
/// volume it sealed but did not record, and refuse a catalog that is behind the vault.
/// Returns the listing and what was recorded.
fn prepare_to_write(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &dyn KeySource,
    info: &VaultInfo,
) -> Result<(crate::vault::Listing, Vec<String>)> {
    let interrupted = catalog.discard_pending()? > 0;
    let listing = vault.list()?;
    let adopted = if interrupted {
        adopt_unrecorded_volume(vault, catalog, key.master_key()?, info, &listing)?
    } else {
        Vec::new()
    };
    refuse_stale_catalog(catalog, &listing)?;
    Ok((listing, adopted))
}

/// A run that stopped between sealing a volume and recording it (power cut, kill -9)
/// leaves exactly one sealed volume the catalog does not know, at the next sequence,
/// and an unfinished snapshot. Read that volume's index and record it, with the
/// snapshot it completes, so the next run neither refuses nor reuses its sequence.
fn adopt_unrecorded_volume(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    info: &VaultInfo,
    listing: &crate::vault::Listing,
) -> Result<Vec<String>> {
    let next = catalog.next_sequence()?;
    let newer: Vec<String> = listing
        .sealed
        .iter()
        .filter(|name| {
            crate::volume::parse_volume_name(name).is_some_and(|(sequence, _)| sequence >= next)
        })
        .cloned()
        .collect();
    let [name] = newer.as_slice() else {
        return Ok(Vec::new());
    };
    if crate::volume::parse_volume_name(name).map(|(sequence, _)| sequence) != Some(next) {
        return Ok(Vec::new());
    }
    let summary = crate::rebuild::adopt(vault, catalog, info.vault_id, key, name)?;
    let mut notes = vec![format!(
        "{name}: sealed by a run that stopped before recording it; recorded now ({} snapshot{})",
        summary.snapshots,
        if summary.snapshots == 1 { "" } else { "s" }
    )];
    notes.extend(summary.problems);
    Ok(notes)
}

/// Never deduplicate against a volume the vault no longer has: record it missing, so
/// its chunks are stored again by this run (self-heal), and say so.
fn mark_missing_volumes(
    catalog: &mut Catalog,
    listing: &crate::vault::Listing,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if listing.volumes_unlisted {
        // A stream or a lone drive cannot show its volumes: the catalog is all we know.
        return Ok(warnings);
    }
    let volumes = catalog.volumes()?;
    // A listing without any known volume or key label is an unmounted disk or a wrong
    // path far more often than a lost vault (T63).
    let recognised = listing.sealed.iter().any(|name| {
        crate::keys::is_key_label_name(name) || volumes.iter().any(|v| &v.name == name)
    });
    if !volumes.is_empty() && !recognised {
        return Err(Error::missing(format!(
            "the vault holds none of the {} volumes the catalog knows: is it mounted? (nothing was written)",
            volumes.len()
        )));
    }
    for volume in volumes {
        if volume.state == "sealed" && !listing.sealed.contains(&volume.name) {
            catalog.set_volume_state(volume.sequence, "missing")?;
            warnings.push(format!(
                "volume {} (#{}) is missing from the vault: what only it held is stored again",
                volume.name, volume.sequence
            ));
        }
    }
    Ok(warnings)
}

/// Back up `options.sources` into new volumes and record the snapshot.
///
/// `key` may still be being derived ([`crate::keys::Unlocking`]): the walk against the
/// parent snapshot runs meanwhile.
pub fn backup(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &dyn KeySource,
    options: &BackupOptions,
    progress: &dyn Observer,
) -> Result<BackupSummary> {
    // A cartridge that failed under a volume: that volume is abandoned, and the run
    // starts again on the next cartridge. What earlier volumes sealed is reused, so
    // only the abandoned volume's data is written again.
    let mut failed_media = Vec::new();
    let (mut summary, misread) = loop {
        match backup_once(vault, catalog, key, options, progress) {
            Err(err)
                if err.kind() == ErrorKind::MediumFailed && failed_media.len() < MEDIUM_RETRIES =>
            {
                failed_media.push(format!("{err}; its data was written again"));
            }
            outcome => break outcome?,
        }
    };
    if misread {
        // A volume read back wrong is recorded damaged, so a second pass finds the
        // files whose chunks only it holds and stores them again, on the next volume.
        let (again, _) = backup_once(vault, catalog, key, options, progress)?;
        summary.snapshot = again.snapshot;
        summary.volumes_written.extend(again.volumes_written);
        summary.bytes_written += again.bytes_written;
        summary.warnings.extend(again.warnings);
        summary.seconds += again.seconds;
    }
    summary.warnings.splice(0..0, failed_media);
    Ok(summary)
}

/// Cartridges a run may lose before it gives up (a cartridge smaller than a pack
/// must not use up a library).
const MEDIUM_RETRIES: usize = 2;

/// One backup pass; also says whether a volume failed verify-after-write.
fn backup_once(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &dyn KeySource,
    options: &BackupOptions,
    progress: &dyn Observer,
) -> Result<(BackupSummary, bool)> {
    let started = std::time::Instant::now();
    if options.volume_size_bytes < MIN_VOLUME_BYTES {
        return Err(Error::usage(format!(
            "volume size {} is below the minimum of 4M",
            options.volume_size_bytes
        )));
    }
    let parity =
        crate::parity::ParityLayout::for_volume(options.parity_percent, options.volume_size_bytes)?;
    let info = catalog.vault_info()?;
    let (listing, adopted) = prepare_to_write(vault, catalog, key, &info)?;
    let mut lost = mark_missing_volumes(catalog, &listing)?;
    lost.extend(adopted);
    let abandoned = listing.partial;
    let sources = source::normalise_sources(&options.sources)?;
    let parent = catalog.snapshots()?.into_iter().next_back();
    let snapshot_id = SnapshotId::random();
    catalog.begin_snapshot(&snapshot_id)?;

    // A new set depends on no earlier volume: it deduplicates only within itself.
    let volume_set = if options.new_set {
        catalog.next_sequence()?
    } else {
        catalog.current_volume_set()?
    };
    let claimed = Arc::new(Claims::new(volume_set));
    let threads = if options.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        options.threads
    };
    // Compressed chunks waiting for the writer: 16 (up to 32 MiB) cover a pack being
    // sealed. 32 was no faster and raised the peak by 40 MiB, 64 by 20 MiB more; 8 and
    // 4 were 7% and 14% slower (workers idle while the writer seals).
    let (msg_tx, msg_rx) = sync_channel::<Msg>(16);
    let (job_tx, job_rx) = sync_channel::<(SourceFile, Node, Origin)>(256);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (squeeze_tx, squeeze_rx) = sync_channel::<Squeeze>(SQUEEZE_QUEUE);
    let helpers = Arc::new(Helpers {
        helping: Default::default(),
        queue: Mutex::new(squeeze_rx),
    });

    let shape = VolumeShape {
        size: options.volume_size_bytes,
        parity,
        volume_set,
        consolidation: false,
        verify_after_write: options.verify_after_write,
    };
    let claims = Arc::clone(&claimed);
    let mut writer = Writer::new(vault, catalog, key, info, shape, claims, progress)?;
    let mut stats = SnapshotStats::default();
    let mut warnings: Vec<String> = lost;
    let outcome = std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let catalog = writer.catalog.reopen()?;
            let claimed = Arc::clone(&claimed);
            let out = msg_tx.clone();
            let jobs = Arc::clone(&job_rx);
            let level = options.compression_level;
            let (helpers, squeeze) = (Arc::clone(&helpers), squeeze_tx.clone());
            scope.spawn(move || {
                // Waits for the key, whose derivation the walk overlaps.
                let key = match key.master_key() {
                    Ok(key) => key,
                    Err(err) => {
                        let _ = out.send(Msg::Failed(err));
                        return;
                    }
                };
                let worker = Worker {
                    progress,
                    catalog,
                    ids: key.chunk_id_key(),
                    chunker: chunk::Chunker::new(ChunkParams::from_seed(key.chunker_seed())),
                    claimed,
                    store: Store {
                        compressor: compress::Compressor::new(level),
                        compressed: Vec::new(),
                        out,
                        helpers,
                        squeeze: Some(squeeze),
                    },
                };
                worker.run(&jobs)
            });
        }
        // Only the workers hold the jobs' receiver: once they have all stopped, the
        // walk's next job fails instead of waiting for ever. Only they hold senders of
        // chunks to compress: once all have read their last file, the helpers stop.
        drop(job_rx);
        drop(squeeze_tx);
        let walker_catalog = writer.catalog.reopen()?;
        let walker_out = msg_tx.clone();
        drop(msg_tx);
        let walk_options = &options.walk;
        let sources = &sources;
        let parent_id = parent.as_ref().map(|p| p.id);
        scope.spawn(move || {
            let result = walk_sources(
                sources,
                walk_options,
                &walker_catalog,
                parent_id,
                volume_set,
                &walker_out,
                job_tx,
            );
            if let Err(err) = result {
                let _ = walker_out.send(Msg::Failed(err));
            }
        });
        let result = writer.consume(&msg_rx, &snapshot_id, &mut stats, &mut warnings);
        // Dropping the receiver unblocks any sender so the scope can end.
        drop(msg_rx);
        result
    });
    outcome?;

    writer.flush_nodes(&snapshot_id)?;
    let master = key.master_key()?;
    let ids = master.chunk_id_key();
    let params = ChunkParams::from_seed(master.chunker_seed());
    let tree = writer.write_tree(&snapshot_id, &ids, params)?;
    let record = SnapshotRecord {
        id: snapshot_id,
        time: unix_now(),
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        paths: sources
            .iter()
            .map(|p| model::PathBytes(p.as_os_str().as_encoded_bytes().to_vec()))
            .collect(),
        tags: options.tags.clone(),
        parent: parent.map(|p| p.id),
        tree,
        stats: SnapshotStats {
            bytes_stored: writer.pack_bytes,
            ..stats
        },
        warnings: warnings
            .iter()
            .take(MAX_RECORDED_WARNINGS)
            .map(|w| truncate(w, 512))
            .collect(),
        warning_count: warnings.len() as u64,
    };
    writer.finish(&record)?;
    let misread = !writer.misread.is_empty();
    warnings.extend(writer.misread);
    let summary = BackupSummary {
        snapshot: record,
        volumes_written: writer.sealed_names,
        bytes_written: writer.bytes_written,
        warnings,
        abandoned_volumes: abandoned,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((summary, misread))
}

/// Read a sealed volume back whole: `Some(why)` when it is not what was written.
fn read_back(vault: &dyn Vault, name: &str, bytes: u64, blake3: &str) -> Option<String> {
    let read = vault
        .open(name)
        .and_then(|stream| crate::volume::HashingReader::new(stream).finish());
    match read {
        Ok((n, hash)) if n == bytes && hash == blake3 => None,
        Ok((n, _)) if n != bytes => Some(format!("read back {n} bytes of {bytes}")),
        Ok(_) => Some("read back with another BLAKE3 than written".into()),
        Err(err) => Some(format!("cannot be read back: {err}")),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn walk_sources(
    sources: &[PathBuf],
    options: &WalkOptions,
    catalog: &Catalog,
    parent: Option<SnapshotId>,
    volume_set: u64,
    out: &SyncSender<Msg>,
    jobs: SyncSender<(SourceFile, Node, Origin)>,
) -> Result<()> {
    let stopped = || Error::new(ErrorKind::Io, "backup stopped");
    // The parent's nodes and the sealed volumes as they are now: what this run
    // seals meanwhile is not needed to decide what to reuse.
    let _view = catalog.read_view()?;
    let mut lookup = |path: &model::PathBytes| -> Result<Option<Node>> {
        let Some(parent) = parent else {
            return Ok(None);
        };
        let Some(node) = catalog.node(&parent, path)? else {
            return Ok(None);
        };
        // Dedup trust: reuse only chunks whose volumes are still sealed and sound.
        for chunk in &node.chunks {
            if !catalog.has_blob(&chunk.id, BlobKind::Data, volume_set)? {
                return Ok(None);
            }
        }
        Ok(Some(node))
    };
    let mut ready = Vec::with_capacity(READY_BATCH);
    let mut emit = |found: Found| -> Result<()> {
        match found {
            Found::Ready(node, origin) => {
                ready.push((node, origin));
                if ready.len() < READY_BATCH {
                    return Ok(());
                }
                let batch = std::mem::replace(&mut ready, Vec::with_capacity(READY_BATCH));
                out.send(Msg::Nodes(batch)).map_err(|_| stopped())
            }
            Found::Read(file, node, origin) => {
                jobs.send((file, node, origin)).map_err(|_| stopped())
            }
            Found::Warning(w) => out.send(Msg::Warning(w)).map_err(|_| stopped()),
        }
    };
    source::walk(sources, options, &mut lookup, &mut emit)?;
    out.send(Msg::Nodes(ready)).map_err(|_| stopped())
}

/// Nodes the walk sends to the writer at once.
const READY_BATCH: usize = 256;

/// The chunks this run has decided to store and whose volume is not recorded yet: each
/// is claimed exactly once. A sealed volume's chunks are released, the catalog then
/// answers for them, so the set holds at most one volume's chunks however much a run
/// stores (it held every chunk of the run: 70 bytes each, 700 MiB for 10 TB). A chunk
/// whose volume read back damaged can be claimed, and stored, again.
struct Claims {
    /// Only chunks stored in this volume set count as stored.
    volume_set: u64,
    chosen: Mutex<HashSet<(crate::ids::ChunkId, BlobKind)>>,
}

impl Claims {
    fn new(volume_set: u64) -> Claims {
        Claims {
            volume_set,
            chosen: Mutex::default(),
        }
    }

    fn chosen(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashSet<(crate::ids::ChunkId, BlobKind)>>> {
        self.chosen
            .lock()
            .map_err(|_| Error::corrupt("a backup worker panicked"))
    }

    /// True if the chunk is in no sealed volume and nobody in this run claimed it yet.
    fn claim(&self, catalog: &Catalog, id: &crate::ids::ChunkId, kind: BlobKind) -> Result<bool> {
        if catalog.has_blob(id, kind, self.volume_set)? {
            return Ok(false);
        }
        let mut chosen = self.chosen()?;
        if chosen.contains(&(*id, kind)) {
            return Ok(false);
        }
        // Asked again under the lock: the volume holding it may have been recorded, and
        // its claim released, since the first answer.
        if catalog.has_blob(id, kind, self.volume_set)? {
            return Ok(false);
        }
        Ok(chosen.insert((*id, kind)))
    }

    /// Forget the claims on a volume's chunks once the catalog has recorded it.
    fn release(&self, packs: &[IndexPack]) -> Result<()> {
        let mut chosen = self.chosen()?;
        for blob in packs.iter().flat_map(|pack| &pack.blobs) {
            chosen.remove(&(blob.id, blob.kind));
        }
        Ok(())
    }
}

/// A new chunk handed to another worker to compress.
struct Squeeze {
    id: crate::ids::ChunkId,
    plain: Vec<u8>,
}

/// Plain chunks waiting for a helper: at most 4 MiB. A helper compresses faster than
/// a reader chunks and hashes, so a longer queue would only hold memory.
const SQUEEZE_QUEUE: usize = 2;

/// Workers with no file left to read compress for those still reading. A large file is
/// read by one worker, so without them the last one (a VM image, a database dump, or a
/// whole tape's single file) ran on one core: zstd is a third of a chunk's work, and it
/// alone can move. Chunking, hashing and claiming stay with the reader.
struct Helpers {
    /// How many workers are helping: a chunk is handed over only when one is.
    helping: std::sync::atomic::AtomicUsize,
    queue: Mutex<Receiver<Squeeze>>,
}

struct Worker<'p> {
    progress: &'p dyn Observer,
    catalog: Catalog,
    ids: ChunkIdKey,
    chunker: chunk::Chunker,
    claimed: Arc<Claims>,
    store: Store,
}

/// How a worker gets its new chunks compressed and to the writer.
struct Store {
    compressor: compress::Compressor,
    /// Reused for every chunk: zstd's worst-case room is reserved once, not per chunk.
    compressed: Vec<u8>,
    out: SyncSender<Msg>,
    helpers: Arc<Helpers>,
    /// Dropped when this worker has no file left, so helpers stop once every reader has.
    squeeze: Option<SyncSender<Squeeze>>,
}

impl Worker<'_> {
    fn run(mut self, jobs: &Mutex<Receiver<(SourceFile, Node, Origin)>>) {
        loop {
            let job = match jobs.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok((file, node, origin)) = job else {
                break;
            };
            let msg = match self.read_file(&file, node) {
                Ok(Ok(node)) => Msg::Node(node, origin),
                Ok(Err(warning)) => Msg::Warning(warning),
                Err(err) => Msg::Failed(err),
            };
            if self.store.out.send(msg).is_err() {
                return;
            }
        }
        self.store.help();
    }
}

impl Store {
    /// Compress what the workers still reading hand over, until all of them are done.
    fn help(mut self) {
        self.squeeze = None;
        let helpers = Arc::clone(&self.helpers);
        helpers.helping.fetch_add(1, Ordering::Relaxed);
        loop {
            let job = match helpers.queue.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok(Squeeze { id, plain }) = job else {
                return;
            };
            if self.send_compressed(id, &plain).is_err() {
                return;
            }
        }
    }

    /// Compress a claimed chunk and send it to the writer.
    fn send_compressed(&mut self, id: crate::ids::ChunkId, plain: &[u8]) -> Result<()> {
        self.compressor.compress_into(plain, &mut self.compressed);
        let msg = Msg::Chunk {
            kind: BlobKind::Data,
            id,
            plain_len: plain.len() as u32,
            // An exact copy: the writer drops it once it is in the pack.
            encoded: self.compressed.to_vec(),
        };
        self.out
            .send(msg)
            .map_err(|_| Error::new(ErrorKind::Io, "backup stopped"))
    }

    /// Hand a claimed chunk to a helper if one is idle and the queue has room;
    /// otherwise compress it here.
    fn hand_over(&mut self, id: crate::ids::ChunkId, plain: &[u8]) -> Result<()> {
        if self.helpers.helping.load(Ordering::Relaxed) > 0 {
            if let Some(squeeze) = &self.squeeze {
                let job = Squeeze {
                    id,
                    plain: plain.to_vec(),
                };
                // Full: compressed here. (The queue's receiver lives as long as any store.)
                if squeeze.try_send(job).is_ok() {
                    return Ok(());
                }
            }
        }
        self.send_compressed(id, plain)
    }
}

impl Worker<'_> {
    /// Read, chunk and hash one file. `Ok(Err(warning))` when the file had to be skipped.
    fn read_file(&mut self, source: &SourceFile, mut node: Node) -> Result<Result<Node, String>> {
        let path = &source.path;
        let skipped =
            |err: &dyn std::fmt::Display| Ok(Err(format!("{}: skipped: {err}", path.display())));
        let file = match source.open() {
            Ok(file) => file,
            Err(err) => return skipped(&err),
        };
        let before = match rustix::fs::fstat(&file) {
            Ok(meta) if FileType::from_raw_mode(meta.st_mode) == FileType::RegularFile => meta,
            Ok(_) => return skipped(&"no longer a regular file"),
            Err(err) => return skipped(&std::io::Error::from(err)),
        };
        // The file as opened gives the attributes stored with its content: a file
        // replaced since the walk keeps its own owner and mode, not the one before it.
        node = Node {
            path: node.path,
            ..source::base_node(path, &before, NodeKind::File)
        };
        node.change = Some(source::change_key(&before));
        let before_len = before.st_size as u64;
        let extents = source::data_extents(&file, &before);
        let sparse = extents != [(0, before_len)];
        let mut hasher = blake3::Hasher::new();
        let mut hashed = 0u64;
        let mut chunks = Vec::new();
        for (index, (start, len)) in extents.iter().copied().enumerate() {
            let mut reader = &file;
            std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(start))
                .map_err(|e| Error::io("cannot read", path, e))?;
            // A dense file is read to its real end, so growth during the read is captured.
            let limit = if !sparse && index == 0 { u64::MAX } else { len };
            let mut offset = start;
            let read = self
                .chunker
                .for_each(reader.take(limit), |data| -> Result<()> {
                    model::hash_zeros(&mut hasher, offset - hashed);
                    hasher.update(data);
                    self.progress.on(Event::Bytes(data.len() as u64));
                    let id = self.ids.id(data);
                    if self.claimed.claim(&self.catalog, &id, BlobKind::Data)? {
                        self.store.hand_over(id, data)?;
                    }
                    chunks.push(ChunkRef {
                        id,
                        offset,
                        len: data.len() as u32,
                    });
                    offset += data.len() as u64;
                    hashed = offset;
                    Ok(())
                })?;
            if let Err(err) = read {
                return Ok(Err(format!(
                    "{}: skipped: read failed: {err}",
                    path.display()
                )));
            }
        }
        let size = if sparse {
            before_len.max(hashed)
        } else {
            hashed
        };
        model::hash_zeros(&mut hasher, size - hashed);
        node.size = size;
        node.hash = Some(hasher.finalize().to_hex().to_string());
        node.chunks = chunks;
        let after = rustix::fs::fstat(&file)
            .map_err(|e| Error::io("cannot stat", path, std::io::Error::from(e)))?;
        if after.st_size != before.st_size
            || source::change_key(&after) != source::change_key(&before)
        {
            let _ = self.store.out.send(Msg::Warning(format!(
                "{}: changed while being backed up; the stored copy is what was read",
                path.display()
            )));
            // Force a re-read next time.
            node.change = None;
        }
        Ok(Ok(node))
    }
}

struct OpenVolume {
    writer: VolumeWriter<Box<dyn VolumeSink>>,
    volume_id: VolumeId,
    sequence: u64,
    name: String,
    created: i64,
    packs: Vec<IndexPack>,
    /// The medium passed early warning: no further pack goes in (the index still does).
    full: bool,
    /// Closed because its index could list no more blobs, with room left on the medium.
    index_full: bool,
}

/// What every volume of a run looks like.
struct VolumeShape {
    /// Largest volume, bytes.
    size: u64,
    parity: Option<crate::parity::ParityLayout>,
    /// The volume set the run's volumes join (and deduplicates within).
    volume_set: u64,
    /// The run copies blobs for `consolidate` (and completes no snapshot).
    consolidation: bool,
    /// Read each volume back once sealed.
    verify_after_write: bool,
}

/// The one writer: owns packs, volumes, nonce counters and catalog writes.
struct Writer<'a> {
    vault: &'a dyn Vault,
    catalog: &'a mut Catalog,
    key: &'a dyn KeySource,
    info: VaultInfo,
    shape: VolumeShape,
    pack_target: u64,
    builder: PackBuilder,
    /// The last pack's bytes, kept to hold the next one: 16 MiB allocated per pack
    /// fragmented the heap over long runs.
    pack_buffer: Vec<u8>,
    claims: Arc<Claims>,
    current: Option<OpenVolume>,
    nodes: Vec<Node>,
    sealed_names: Vec<String>,
    /// Volumes that read back other than written (verify-after-write), said why.
    misread: Vec<String>,
    bytes_written: u64,
    pack_bytes: u64,
    next_sequence: u64,
    progress: &'a dyn Observer,
}

impl<'a> Writer<'a> {
    fn new(
        vault: &'a dyn Vault,
        catalog: &'a mut Catalog,
        key: &'a dyn KeySource,
        info: VaultInfo,
        shape: VolumeShape,
        claims: Arc<Claims>,
        progress: &'a dyn Observer,
    ) -> Result<Writer<'a>> {
        let next_sequence = catalog.next_sequence()?;
        let pack_target = (shape.size / 8).clamp(512 << 10, PACK_TARGET_BYTES);
        Ok(Writer {
            vault,
            catalog,
            key,
            info,
            pack_target,
            shape,
            builder: PackBuilder::for_target(pack_target as usize),
            pack_buffer: Vec::new(),
            claims,
            current: None,
            nodes: Vec::new(),
            sealed_names: Vec::new(),
            misread: Vec::new(),
            bytes_written: 0,
            pack_bytes: 0,
            next_sequence,
            progress,
        })
    }

    fn consume(
        &mut self,
        rx: &Receiver<Msg>,
        snapshot: &SnapshotId,
        stats: &mut SnapshotStats,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        for msg in rx.iter() {
            match msg {
                Msg::Chunk {
                    kind,
                    id,
                    plain_len,
                    encoded,
                } => {
                    stats.bytes_added += u64::from(plain_len);
                    self.add_blob(kind, id, plain_len, &encoded)?;
                }
                Msg::Node(node, origin) => self.take_node(node, origin, snapshot, stats)?,
                Msg::Nodes(nodes) => {
                    for (node, origin) in nodes {
                        self.take_node(node, origin, snapshot, stats)?;
                    }
                }
                Msg::Warning(w) => warnings.push(w),
                Msg::Failed(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn take_node(
        &mut self,
        node: Node,
        origin: Origin,
        snapshot: &SnapshotId,
        stats: &mut SnapshotStats,
    ) -> Result<()> {
        count(stats, &node, origin);
        if node.kind == NodeKind::File {
            if origin == Origin::Unchanged {
                self.progress.on(Event::Bytes(node.size));
            }
            self.progress.on(Event::File {
                path: &node.path,
                origin,
            });
        }
        self.nodes.push(node);
        if self.nodes.len() >= NODE_BATCH {
            self.flush_nodes(snapshot)?;
        }
        Ok(())
    }

    fn flush_nodes(&mut self, snapshot: &SnapshotId) -> Result<()> {
        self.catalog.add_nodes(snapshot, &self.nodes)?;
        self.nodes.clear();
        Ok(())
    }

    fn add_blob(
        &mut self,
        kind: BlobKind,
        id: crate::ids::ChunkId,
        plain_len: u32,
        encoded: &[u8],
    ) -> Result<()> {
        self.builder.add(kind, id, plain_len, encoded);
        if self.builder.projected_bytes() as u64 >= self.pack_target {
            self.flush_pack()?;
        }
        Ok(())
    }

    fn open_volume(&mut self) -> Result<()> {
        let volume_id = VolumeId::random();
        let sequence = self.next_sequence;
        let name = crate::volume::volume_name(sequence, &volume_id);
        let created = unix_now();
        let label = Label {
            format: "tapevault".into(),
            format_version: crate::volume::FORMAT_VERSION,
            vault_id: self.info.vault_id,
            volume_id,
            sequence,
            created,
            chunker: self.info.chunker.clone(),
            wrapped_key: self.info.wrapped_key.clone(),
            parity: self.shape.parity,
        };
        let sink = self.vault.create(&name, self.shape.size)?;
        self.progress.on(Event::Writing(&name));
        let set_reserve = crate::volume::SET_ENTRY_RESERVE * sequence;
        let writer = VolumeWriter::start(sink, &label, self.shape.size, set_reserve)?;
        self.current = Some(OpenVolume {
            writer,
            volume_id,
            sequence,
            name,
            created,
            packs: Vec::new(),
            full: false,
            index_full: false,
        });
        Ok(())
    }

    fn flush_pack(&mut self) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let len = self.builder.projected_bytes() as u64;
        let blobs = self.builder.len();
        if self.current.is_none() {
            self.open_volume()?;
        }
        let volume = self.current.as_mut().expect("opened above");
        let room = if volume.full {
            Room::MediumFull
        } else {
            volume.writer.room_for(len, blobs)
        };
        if room != Room::Fits {
            if volume.packs.is_empty() {
                return Err(Error::usage(format!(
                    "a pack of {len} bytes does not fit in an empty volume of {} bytes; raise --volume-size",
                    self.shape.size
                )));
            }
            volume.index_full = room == Room::IndexFull;
            self.seal_volume(None)?;
            self.open_volume()?;
        }
        let volume = self.current.as_mut().expect("opened above");
        let number = volume.packs.len() as u32 + 1;
        let key = self.key.master_key()?;
        let sealer = key
            .volume_key(&volume.volume_id)
            .pack_sealer(self.info.vault_id, number);
        let pack = self.builder.finish(
            sealer,
            &key.chunk_id_key(),
            std::mem::take(&mut self.pack_buffer),
        )?;
        let blobs = pack.entries.iter().map(IndexBlob::from).collect();
        let listed = volume.writer.append_pack(number, &pack.bytes, blobs)?;
        self.pack_bytes += pack.bytes.len() as u64;
        // On tape, the pack that met early warning is finished in the reserve; the next
        // goes to the next cartridge.
        volume.full = volume.writer.sink().past_early_warning();
        volume.packs.push(listed);
        self.pack_buffer = pack.bytes;
        Ok(())
    }

    fn seal_volume(&mut self, completes: Option<&SnapshotRecord>) -> Result<()> {
        let volume = self.current.take().expect("a volume is open");
        let index = VolumeIndex {
            volume_id: volume.volume_id,
            sequence: volume.sequence,
            packs: volume.packs,
            snapshots: completes.into_iter().cloned().collect(),
            set: self.catalog.volume_set()?,
            volume_set: Some(self.shape.volume_set),
            consolidation: self.shape.consolidation,
        };
        let key = self.key.master_key()?;
        let sealed_index = index.seal(self.info.vault_id, &key.volume_key(&volume.volume_id));
        let written = volume.writer.finish(&sealed_index)?;
        written.sink.seal()?;
        let mut state = "sealed";
        if self.shape.verify_after_write {
            if let Some(why) = read_back(self.vault, &volume.name, written.bytes, &written.blake3) {
                // Recorded, never trusted for dedup: the next pass stores its data again.
                state = "damaged";
                self.misread.push(format!(
                    "{}: {why} (verify-after-write): not trusted, its data is written again",
                    self.vault.describe_volume(&volume.name)
                ));
            }
        }
        let row = VolumeRow {
            sequence: volume.sequence,
            volume_id: volume.volume_id,
            name: volume.name.clone(),
            state: state.into(),
            bytes: written.bytes,
            blake3: written.blake3,
            created: volume.created,
            volume_set: self.shape.volume_set,
        };
        self.catalog.record_volume(&row, &index.packs, completes)?;
        self.claims.release(&index.packs)?;
        self.bytes_written += written.bytes;
        self.progress.on(Event::Sealed {
            name: &volume.name,
            bytes: written.bytes,
            index_full_at: volume
                .index_full
                .then(|| index.packs.iter().map(|p| p.blobs.len() as u64).sum()),
        });
        self.sealed_names.push(volume.name);
        self.next_sequence += 1;
        Ok(())
    }

    /// Encode the snapshot's nodes (path order) into tree blobs; returns their ids in order.
    fn write_tree(
        &mut self,
        snapshot: &SnapshotId,
        ids: &ChunkIdKey,
        params: ChunkParams,
    ) -> Result<Vec<crate::ids::ChunkId>> {
        self.catalog.fold_nodes(snapshot)?;
        // Staged in a file beside the catalog so memory stays bounded for any tree size.
        let staging_path = self.catalog.dir().join(format!("tree-{snapshot}.tmp"));
        let staging = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staging_path)
            .map_err(|e| Error::io("cannot create", &staging_path, e))?;
        let result = (|| {
            let mut out = std::io::BufWriter::new(&staging);
            std::io::Write::write_all(&mut out, model::TREE_HEADER)
                .map_err(|e| Error::io("cannot write", &staging_path, e))?;
            let mut line = Vec::new();
            self.catalog.for_each_node(snapshot, |node| {
                line.clear();
                model::encode_node(&node, &mut line);
                std::io::Write::write_all(&mut out, &line)
                    .map_err(|e| Error::io("cannot write", &staging_path, e))
            })?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io("cannot write", &staging_path, e.into_error()))?;
            let mut reader = std::io::BufReader::new(file);
            std::io::Seek::rewind(&mut reader)
                .map_err(|e| Error::io("cannot read", &staging_path, e))?;
            let mut tree = Vec::new();
            let mut compressor = compress::Compressor::new(compress::DEFAULT_LEVEL);
            let mut encoded = Vec::new();
            let read = chunk::Chunker::new(params).for_each(reader, |data| -> Result<()> {
                let id = ids.id(data);
                tree.push(id);
                if self.claims.claim(self.catalog, &id, BlobKind::Tree)? {
                    compressor.compress_into(data, &mut encoded);
                    self.add_blob(BlobKind::Tree, id, data.len() as u32, &encoded)?;
                }
                Ok(())
            })?;
            read.map_err(|e| Error::io("cannot read", &staging_path, e))?;
            Ok(tree)
        })();
        let _ = std::fs::remove_file(&staging_path);
        result
    }

    /// Flush the last pack and seal the last volume with the snapshot in its index.
    fn finish(&mut self, record: &SnapshotRecord) -> Result<()> {
        self.flush_pack()?;
        let record_bytes = serde_json::to_vec(record).expect("record serialises").len() as u64;
        if self.current.is_none() {
            self.open_volume()?;
        }
        if !self
            .current
            .as_ref()
            .is_some_and(|v| v.writer.fits_record(record_bytes))
        {
            self.seal_volume(None)?;
            self.open_volume()?;
            if !self
                .current
                .as_ref()
                .is_some_and(|v| v.writer.fits_record(record_bytes))
            {
                return Err(Error::usage(
                    "the snapshot record does not fit in one volume; raise --volume-size",
                ));
            }
        }
        self.seal_volume(Some(record))
    }
}

/// Store blobs again, in new volumes of the current set (consolidation): `fill` hands
/// each blob's kind, id and plain bytes to the function it is given. A blob's catalog
/// location moves to its new copy only when that copy's volume is sealed, so a run
/// stopped anywhere leaves every blob where the catalog says. Returns the volumes
/// sealed, and notes on a volume an interrupted earlier run left unrecorded.
pub(crate) fn store_again(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    volume_size: u64,
    fill: impl FnOnce(&mut dyn FnMut(BlobKind, crate::ids::ChunkId, &[u8]) -> Result<()>) -> Result<()>,
) -> Result<(Vec<String>, Vec<String>)> {
    let info = catalog.vault_info()?;
    let (_, adopted) = prepare_to_write(vault, catalog, key, &info)?;
    // Marks the run as under way: a volume sealed by it but never recorded (a power
    // cut) is recorded by the next run that writes, as a backup's would be.
    catalog.begin_snapshot(&SnapshotId::random())?;
    let volume_set = catalog.current_volume_set()?;
    let shape = VolumeShape {
        size: volume_size,
        parity: None,
        volume_set,
        consolidation: true,
        verify_after_write: false,
    };
    // Unused: what is stored again is chosen by the caller, not by claims.
    let claims = Arc::new(Claims::new(volume_set));
    let mut writer = Writer::new(vault, catalog, key, info, shape, claims, &Silent)?;
    let mut compressor = compress::Compressor::new(compress::DEFAULT_LEVEL);
    let mut encoded = Vec::new();
    fill(&mut |kind, id, plain| {
        compressor.compress_into(plain, &mut encoded);
        writer.add_blob(kind, id, plain.len() as u32, &encoded)
    })?;
    writer.flush_pack()?;
    if writer.current.is_some() {
        writer.seal_volume(None)?;
    }
    let sealed = writer.sealed_names;
    catalog.discard_pending()?;
    Ok((sealed, adopted))
}

/// Store a snapshot of exactly `entries` (files with the given content), bypassing the walk.
///
/// For tests and fuzzing: it builds hostile snapshots (unsafe names, duplicates, link
/// tricks) that pass authentication, as the restore-safety cases require.
#[doc(hidden)]
pub fn backup_crafted(
    vault: &dyn Vault,
    catalog: &mut Catalog,
    key: &MasterKey,
    entries: Vec<(Node, Vec<u8>)>,
) -> Result<SnapshotRecord> {
    let info = catalog.vault_info()?;
    catalog.discard_pending()?;
    let snapshot_id = SnapshotId::random();
    catalog.begin_snapshot(&snapshot_id)?;
    let ids = key.chunk_id_key();
    let params = ChunkParams::from_seed(key.chunker_seed());
    let volume_set = catalog.current_volume_set()?;
    let claimed = Arc::new(Claims::new(volume_set));
    let shape = VolumeShape {
        size: 64 << 20,
        parity: None,
        volume_set,
        consolidation: false,
        verify_after_write: false,
    };
    let claims = Arc::clone(&claimed);
    let mut writer = Writer::new(vault, catalog, key, info, shape, claims, &Silent)?;
    let mut stats = SnapshotStats::default();
    let mut chunker = chunk::Chunker::new(params);
    let mut compressor = compress::Compressor::new(compress::DEFAULT_LEVEL);
    let mut encoded = Vec::new();
    for (mut node, content) in entries {
        if node.kind == NodeKind::File {
            let mut offset = 0u64;
            let read = chunker.for_each(&content[..], |data| -> Result<()> {
                let id = ids.id(data);
                if claimed.claim(writer.catalog, &id, BlobKind::Data)? {
                    compressor.compress_into(data, &mut encoded);
                    writer.add_blob(BlobKind::Data, id, data.len() as u32, &encoded)?;
                }
                node.chunks.push(ChunkRef {
                    id,
                    offset,
                    len: data.len() as u32,
                });
                offset += data.len() as u64;
                Ok(())
            })?;
            read.map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
            node.size = content.len() as u64;
            // A preset hash is kept: how a test crafts a record that lies about its content.
            node.hash
                .get_or_insert_with(|| blake3::hash(&content).to_hex().to_string());
        }
        count(&mut stats, &node, Origin::New);
        writer.nodes.push(node);
    }
    writer.flush_nodes(&snapshot_id)?;
    let tree = writer.write_tree(&snapshot_id, &ids, params)?;
    let record = SnapshotRecord {
        id: snapshot_id,
        time: unix_now(),
        host: "crafted".into(),
        paths: Vec::new(),
        tags: Vec::new(),
        parent: None,
        tree,
        stats,
        warnings: Vec::new(),
        warning_count: 0,
    };
    writer.finish(&record)?;
    Ok(record)
}

fn count(stats: &mut SnapshotStats, node: &Node, origin: Origin) {
    match node.kind {
        NodeKind::File => {
            stats.files += 1;
            stats.bytes += node.size;
            match origin {
                Origin::New => stats.files_new += 1,
                Origin::Changed => stats.files_changed += 1,
                Origin::Unchanged => stats.files_unchanged += 1,
            }
        }
        NodeKind::Dir => stats.dirs += 1,
        _ => stats.other += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChunkId;

    /// What a store sent to the writer so far: (id, plain bytes) of each chunk.
    fn sent(out: &Receiver<Msg>) -> Vec<(ChunkId, Vec<u8>)> {
        out.try_iter()
            .map(|msg| match msg {
                Msg::Chunk {
                    id,
                    plain_len,
                    encoded,
                    ..
                } => (
                    id,
                    compress::decompress(&encoded, plain_len as usize).unwrap(),
                ),
                _ => panic!("only chunks are sent"),
            })
            .collect()
    }

    #[test]
    fn chunks_go_to_an_idle_helper_only_while_one_helps_and_its_queue_has_room() {
        let (out_tx, out) = sync_channel::<Msg>(16);
        let (squeeze_tx, squeeze_rx) = sync_channel::<Squeeze>(2);
        let helpers = Arc::new(Helpers {
            helping: Default::default(),
            queue: Mutex::new(squeeze_rx),
        });
        let store = |squeeze| Store {
            compressor: compress::Compressor::new(3),
            compressed: Vec::new(),
            out: out_tx.clone(),
            helpers: Arc::clone(&helpers),
            squeeze,
        };
        let mut reader = store(Some(squeeze_tx));
        let chunk = |n: u8| (ChunkId([n; 32]), vec![n; 100_000]);
        // Nobody helps yet: compressed here.
        let (id, plain) = chunk(1);
        reader.hand_over(id, &plain).unwrap();
        assert_eq!(sent(&out), [chunk(1)]);
        // A helper waits: handed over while its queue has room, then compressed here.
        helpers.helping.fetch_add(1, Ordering::Relaxed);
        for n in 2..=4 {
            let (id, plain) = chunk(n);
            reader.hand_over(id, &plain).unwrap();
        }
        assert_eq!(sent(&out), [chunk(4)]);
        // The helper compresses what is queued, and what comes while it helps, and
        // stops once the last reader is done.
        let helper = store(None);
        let helping = std::thread::spawn(move || helper.help());
        let (id, plain) = chunk(5);
        reader.hand_over(id, &plain).unwrap();
        drop(reader);
        helping.join().unwrap();
        let mut helped = sent(&out);
        helped.sort();
        assert_eq!(helped, [chunk(2), chunk(3), chunk(5)]);
    }

    #[test]
    fn a_released_claim_is_answered_by_the_catalog() {
        let (_dir, mut catalog) = crate::catalog::tests::new_catalog();
        let claims = Claims::new(1);
        let id = ChunkId([7; 32]);
        assert!(claims.claim(&catalog, &id, BlobKind::Data).unwrap());
        assert!(
            !claims.claim(&catalog, &id, BlobKind::Data).unwrap(),
            "claimed once"
        );
        assert!(
            claims.claim(&catalog, &id, BlobKind::Tree).unwrap(),
            "kinds differ"
        );
        let packs = vec![IndexPack {
            number: 1,
            offset: 0,
            length: 100,
            blobs: vec![IndexBlob {
                kind: BlobKind::Data,
                id,
                offset: 0,
                sealed_len: 50,
                plain_len: 30,
            }],
        }];
        let volume = VolumeRow {
            sequence: 1,
            volume_id: VolumeId::random(),
            name: "tv000001".into(),
            state: "sealed".into(),
            bytes: 100,
            blake3: String::new(),
            created: 0,
            volume_set: 1,
        };
        catalog.record_volume(&volume, &packs, None).unwrap();
        claims.release(&packs).unwrap();
        assert_eq!(
            claims.chosen().unwrap().len(),
            1,
            "only the tree claim is held"
        );
        assert!(
            !claims.claim(&catalog, &id, BlobKind::Data).unwrap(),
            "the sealed volume answers for the released chunk"
        );
        assert_eq!(claims.chosen().unwrap().len(), 1);

        // A volume recorded damaged (verify-after-write) is not trusted: once released,
        // its chunk is claimed, and so stored, again.
        let misread = ChunkId([8; 32]);
        assert!(claims.claim(&catalog, &misread, BlobKind::Data).unwrap());
        let packs = vec![IndexPack {
            number: 1,
            offset: 0,
            length: 100,
            blobs: vec![IndexBlob {
                id: misread,
                ..packs[0].blobs[0].clone()
            }],
        }];
        let damaged = VolumeRow {
            sequence: 2,
            volume_id: VolumeId::random(),
            name: "tv000002".into(),
            state: "damaged".into(),
            ..volume
        };
        catalog.record_volume(&damaged, &packs, None).unwrap();
        claims.release(&packs).unwrap();
        assert!(claims.claim(&catalog, &misread, BlobKind::Data).unwrap());
    }
}
