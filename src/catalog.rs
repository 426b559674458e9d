//! The catalog: a SQLite cache of what is where, plus operator notes. All SQL lives here.
//!
//! One catalog per vault, in its own directory (0700; files 0600). WAL mode
//! with `synchronous=FULL`: a commit is durable when it returns. The order of
//! writes keeps it consistent across a crash: a volume and its packs and
//! blobs are recorded in one transaction only after the volume is sealed on
//! the medium; a snapshot becomes `complete` in that same transaction, and
//! nodes of a snapshot that never completed are discarded by the next run.
//! Nodes are stored in pages shared between snapshots (`nodes`).
//! A blob counts for dedup only while its volume is `sealed`.
//! Does not know about media, tar or encryption.

use crate::crypto::{BlobKind, WrappedKey};
use crate::error::{at, Error, Result};
use crate::ids::{ChunkId, SnapshotId, VaultId, VolumeId};
use crate::model::{Node, SnapshotRecord};
use crate::volume::{IndexPack, SetEntry};
use rusqlite::{params, Connection, OptionalExtension};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod nodes;

const SCHEMA_VERSION: i64 = 6;
const DB_FILE: &str = "catalog.sqlite";
const LOCK_FILE: &str = "lock";

/// Added in schema 2; a schema-1 catalog gains it when opened.
macro_rules! drills_table {
    () => {
        "CREATE TABLE IF NOT EXISTS drills(
  id INTEGER PRIMARY KEY, started INTEGER NOT NULL, snapshot TEXT NOT NULL, mode TEXT NOT NULL,
  outcome TEXT NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
  damaged INTEGER NOT NULL, seconds REAL NOT NULL, report TEXT NOT NULL);"
    };
}

/// Added in schema 4: verified copies of volumes in other vaults (`copy`); in 5,
/// where each volume is kept (`volumes note`).
macro_rules! copies_and_notes_tables {
    () => {
        "CREATE TABLE IF NOT EXISTS copies(
  sequence INTEGER NOT NULL, vault TEXT NOT NULL, copied INTEGER NOT NULL,
  PRIMARY KEY(sequence, vault));
CREATE TABLE IF NOT EXISTS notes(sequence INTEGER PRIMARY KEY, note TEXT NOT NULL);"
    };
}

/// Schema 6: a snapshot's nodes in pages shared between snapshots (see `nodes`).
macro_rules! node_tables {
    () => {
        "CREATE TABLE IF NOT EXISTS node_pages(
  id INTEGER PRIMARY KEY AUTOINCREMENT, digest BLOB NOT NULL UNIQUE, nodes BLOB NOT NULL,
  refs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_pages(
  snapshot TEXT NOT NULL, folder BLOB NOT NULL, first BLOB NOT NULL,
  page INTEGER NOT NULL REFERENCES node_pages(id),
  PRIMARY KEY(snapshot, folder, first)) WITHOUT ROWID;"
    };
}

const SCHEMA: &str = concat!(
    "
CREATE TABLE vault(
  one INTEGER PRIMARY KEY CHECK (one = 1),
  vault_id TEXT NOT NULL, address TEXT NOT NULL, fingerprint TEXT NOT NULL,
  wrapped_key TEXT NOT NULL, chunker TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE volumes(
  sequence INTEGER PRIMARY KEY, volume_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  state TEXT NOT NULL, bytes INTEGER NOT NULL, blake3 TEXT NOT NULL, created INTEGER NOT NULL,
  volume_set INTEGER NOT NULL DEFAULT 1);
CREATE TABLE packs(
  id INTEGER PRIMARY KEY, sequence INTEGER NOT NULL REFERENCES volumes(sequence),
  number INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
  UNIQUE(sequence, number));
CREATE TABLE blobs(
  chunk_id BLOB NOT NULL, kind INTEGER NOT NULL, pack INTEGER NOT NULL REFERENCES packs(id),
  position INTEGER NOT NULL, offset INTEGER NOT NULL, sealed_len INTEGER NOT NULL,
  plain_len INTEGER NOT NULL, PRIMARY KEY(chunk_id, kind)) WITHOUT ROWID;
CREATE TABLE snapshots(
  id TEXT PRIMARY KEY, sequence INTEGER, state TEXT NOT NULL, record TEXT);
",
    drills_table!(),
    copies_and_notes_tables!(),
    node_tables!()
);

/// One past drill, as `drill --history` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillRecord {
    /// Seconds since the epoch when it started.
    pub started: i64,
    /// Snapshot drilled.
    pub snapshot: String,
    /// `sample N`, `all`, with `from-scratch` when the catalog was rebuilt first.
    pub mode: String,
    /// `passed` or `damage`.
    pub outcome: String,
    /// Files checked.
    pub files: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// Files that were not exact.
    pub damaged: u64,
    /// Seconds the drill took.
    pub seconds: f64,
}

/// What the catalog knows about its vault.
#[derive(Debug, Clone)]
pub struct VaultInfo {
    /// The vault's id.
    pub vault_id: VaultId,
    /// The address it was initialised with.
    pub address: String,
    /// Fingerprint of the master key, pinned at init.
    pub fingerprint: String,
    /// The wrapped master key.
    pub wrapped_key: WrappedKey,
    /// Chunker version.
    pub chunker: String,
}

/// A sealed (or otherwise known) volume.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeRow {
    /// Sequence number.
    pub sequence: u64,
    /// Random id.
    pub volume_id: VolumeId,
    /// Object name in the vault.
    pub name: String,
    /// `sealed`, `lost` or `damaged`.
    pub state: String,
    /// Size in bytes.
    pub bytes: u64,
    /// BLAKE3 of the volume's bytes.
    pub blake3: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// The volume set it belongs to: the sequence of the set's first volume.
    pub volume_set: u64,
}

/// Where one blob is.
#[derive(Debug, Clone)]
pub struct BlobLocation {
    /// Data or tree.
    pub kind: BlobKind,
    /// Volume sequence.
    pub sequence: u64,
    /// Pack number within the volume.
    pub pack: u32,
    /// Position (nonce) within the pack.
    pub position: u32,
    /// Offset within the pack.
    pub offset: u64,
    /// Offset of the pack's data within its volume.
    pub pack_offset: u64,
    /// Sealed length.
    pub sealed_len: u32,
    /// Plain length.
    pub plain_len: u32,
}

/// A consistent view of the catalog until dropped: the lookups made inside it share
/// one read transaction instead of opening one each (a walk makes several a file).
pub struct ReadView<'a> {
    /// None inside a transaction already open on this connection: that one is the view.
    _open: Option<rusqlite::Transaction<'a>>,
}

/// An open catalog connection.
pub struct Catalog {
    conn: Connection,
    dir: PathBuf,
    /// The node page read last, by id (pages never change; ids are never reused).
    page_cache: std::cell::RefCell<Option<(i64, Vec<Node>)>>,
}

/// Nodes of the snapshot being written, one row each until folded into pages. A
/// temporary table of the connection: nothing of a pending snapshot needs to survive
/// the run, so staging costs no WAL or fsync, and a crash leaves nothing behind.
const STAGING: &str = "PRAGMA temp_store = FILE;
CREATE TEMP TABLE IF NOT EXISTS staged_nodes(
  snapshot TEXT NOT NULL, folder BLOB NOT NULL, path BLOB NOT NULL, node TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS temp.staged_by_folder ON staged_nodes(snapshot, folder, path);";

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(STAGING)?;
    Ok(conn)
}

impl Catalog {
    fn on(conn: Connection, dir: &Path) -> Catalog {
        Catalog {
            conn,
            dir: dir.to_path_buf(),
            page_cache: Default::default(),
        }
    }

    /// Create a new catalog for a vault in `dir` (refuses an existing one).
    pub fn create(dir: &Path, info: &VaultInfo) -> Result<Catalog> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(at("cannot create catalog folder", dir))?;
        let path = dir.join(DB_FILE);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::usage(format!(
                        "a catalog already exists in {}; this vault is initialised",
                        dir.display()
                    ))
                } else {
                    Error::io("cannot create catalog", &path, e)
                }
            })?;
        let conn = open_connection(&path)?;
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute(
            "INSERT INTO vault VALUES (1, ?1, ?2, ?3, ?4, ?5, strftime('%s','now'))",
            params![
                info.vault_id.to_string(),
                info.address,
                info.fingerprint,
                serde_json::to_string(&info.wrapped_key).expect("key serialises"),
                info.chunker
            ],
        )?;
        Ok(Catalog::on(conn, dir))
    }

    /// Open the existing catalog in `dir`.
    pub fn open(dir: &Path, vault_address: &str) -> Result<Catalog> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(Error::missing(format!(
                "no catalog in {} for vault {vault_address}: run `tapevault init --vault {vault_address}` for a new vault",
                dir.display()
            )));
        }
        let damaged = |e: &dyn std::fmt::Display| {
            Error::corrupt(format!(
                "catalog {} is damaged ({e}): move it aside and run `tapevault catalog rebuild`",
                path.display()
            ))
        };
        let conn = open_connection(&path).map_err(|e| damaged(&e))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| damaged(&e))?;
        if (1..SCHEMA_VERSION).contains(&version) {
            // Schema 2 added drills; 3 volume sets (every older volume is in set 1); 4
            // copies; 5 notes; 6 node pages. One transaction: a crash leaves the old schema.
            let tx = conn.unchecked_transaction()?;
            if version < 3 {
                tx.execute_batch(drills_table!())?;
                tx.execute_batch(
                    "ALTER TABLE volumes ADD COLUMN volume_set INTEGER NOT NULL DEFAULT 1;",
                )?;
            }
            tx.execute_batch(copies_and_notes_tables!())?;
            tx.execute_batch(node_tables!())?;
            nodes::migrate_to_pages(&tx)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        } else if version != SCHEMA_VERSION {
            return Err(Error::corrupt(format!(
                "catalog {} has schema version {version}, this build reads {SCHEMA_VERSION}",
                path.display()
            )));
        }
        Ok(Catalog::on(conn, dir))
    }

    /// Read from one consistent state of the catalog until the view is dropped.
    pub fn read_view(&self) -> Result<ReadView<'_>> {
        let open = if self.conn.is_autocommit() {
            Some(self.conn.unchecked_transaction()?)
        } else {
            None
        };
        Ok(ReadView { _open: open })
    }

    /// A second connection to the same catalog (for worker threads).
    pub fn reopen(&self) -> Result<Catalog> {
        Ok(Catalog::on(
            open_connection(&self.dir.join(DB_FILE))?,
            &self.dir,
        ))
    }

    /// Close and delete this catalog's database (a rebuild that failed half-way).
    pub fn discard(self) {
        let path = self.dir.join(DB_FILE);
        drop(self.conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// The catalog directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vault this catalog belongs to.
    pub fn vault_info(&self) -> Result<VaultInfo> {
        let row = self.conn.query_row(
            "SELECT vault_id, address, fingerprint, wrapped_key, chunker FROM vault",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )?;
        Ok(VaultInfo {
            vault_id: VaultId::parse(&row.0)?,
            address: row.1,
            fingerprint: row.2,
            wrapped_key: serde_json::from_str(&row.3)
                .map_err(|e| Error::corrupt(format!("catalog wrapped key: {e}")))?,
            chunker: row.4,
        })
    }

    /// The sequence number the next volume gets.
    pub fn next_sequence(&self) -> Result<u64> {
        let max: Option<i64> =
            self.conn
                .query_row("SELECT max(sequence) FROM volumes", [], |r| r.get(0))?;
        Ok(max.unwrap_or(0) as u64 + 1)
    }

    /// Is this chunk stored in a sealed volume that is not known lost or damaged?
    /// Only chunks of volume set `volume_set` count: a set deduplicates only within itself.
    pub fn has_blob(&self, id: &ChunkId, kind: BlobKind, volume_set: u64) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM blobs b JOIN packs p ON p.id = b.pack JOIN volumes v ON v.sequence = p.sequence
             WHERE b.chunk_id = ?1 AND b.kind = ?2 AND v.state = 'sealed' AND v.volume_set = ?3",
        )?;
        Ok(stmt.exists(params![&id.0[..], kind.code(), volume_set as i64])?)
    }

    /// The volume set new volumes join: the newest volume's, or a new one starting at
    /// the next sequence when there is none.
    pub fn current_volume_set(&self) -> Result<u64> {
        let newest: Option<i64> = self
            .conn
            .query_row(
                "SELECT volume_set FROM volumes ORDER BY sequence DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match newest {
            Some(set) => Ok(set as u64),
            None => self.next_sequence(),
        }
    }

    /// Where a blob is, if stored.
    pub fn blob_location(&self, id: &ChunkId, kind: BlobKind) -> Result<Option<BlobLocation>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {LOCATION_COLUMNS}
             FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.chunk_id = ?1 AND b.kind = ?2"
        ))?;
        Ok(stmt
            .query_row(params![&id.0[..], kind.code()], |r| {
                read_location(r, 0, kind)
            })
            .optional()?)
    }

    /// Every volume of the vault, in sequence order (pruned ones, and ones being
    /// pruned, are no longer part of it).
    pub fn volumes(&self) -> Result<Vec<VolumeRow>> {
        self.volumes_where("state NOT IN ('pruning', 'pruned')")
    }

    /// Record a verified copy of volume `sequence` in the vault at `address`.
    pub fn record_copy(&mut self, sequence: u64, address: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO copies(sequence, vault, copied) VALUES (?1, ?2, ?3)",
            params![sequence, address, crate::backup::unix_now()],
        )?;
        Ok(())
    }

    /// Record (or, with an empty text, clear) where volume `sequence` is kept.
    pub fn set_volume_note(&mut self, sequence: u64, note: &str) -> Result<()> {
        let known: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM volumes WHERE sequence = ?1)",
            params![sequence as i64],
            |row| row.get(0),
        )?;
        if !known {
            return Err(Error::usage(format!(
                "no volume #{sequence} in the catalog (see `tapevault volumes`)"
            )));
        }
        if note.is_empty() {
            self.conn.execute(
                "DELETE FROM notes WHERE sequence = ?1",
                params![sequence as i64],
            )?;
        } else {
            self.conn.execute(
                "INSERT OR REPLACE INTO notes(sequence, note) VALUES (?1, ?2)",
                params![sequence as i64, note],
            )?;
        }
        Ok(())
    }

    /// Where each volume is kept, by sequence (`volumes note`).
    pub fn volume_notes(&self) -> Result<std::collections::BTreeMap<u64, String>> {
        let mut stmt = self.conn.prepare("SELECT sequence, note FROM notes")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, u64>(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Where each volume has verified copies, by sequence.
    pub fn copies(&self) -> Result<std::collections::BTreeMap<u64, Vec<String>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT sequence, vault FROM copies ORDER BY sequence, vault")?;
        let mut out = std::collections::BTreeMap::<u64, Vec<String>>::new();
        for row in stmt.query_map([], |row| Ok((row.get::<_, u64>(0)?, row.get(1)?)))? {
            let (sequence, vault) = row?;
            out.entry(sequence).or_default().push(vault);
        }
        Ok(out)
    }

    /// Volumes a prune decided to delete and may not have finished deleting.
    pub fn volumes_being_pruned(&self) -> Result<Vec<VolumeRow>> {
        self.volumes_where("state = 'pruning'")
    }

    fn volumes_where(&self, condition: &str) -> Result<Vec<VolumeRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT sequence, volume_id, name, state, bytes, blake3, created, volume_set \
             FROM volumes WHERE {condition} ORDER BY sequence"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sequence, id, name, state, bytes, blake3, created, volume_set) = row?;
            out.push(VolumeRow {
                sequence: sequence as u64,
                volume_id: VolumeId::parse(&id)?,
                name,
                state,
                bytes: bytes as u64,
                blake3,
                created,
                volume_set: volume_set as u64,
            });
        }
        Ok(out)
    }

    /// Forget snapshots: they leave every list and their nodes are dropped; the
    /// volumes they used become reclaimable once no kept snapshot needs them.
    pub fn forget_snapshots(&mut self, ids: &[SnapshotId]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for id in ids {
            nodes::drop_nodes(&tx, &id.to_string())?;
            tx.execute(
                "UPDATE snapshots SET state = 'forgotten' WHERE id = ?1",
                params![id.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The volume that completed each kept snapshot (its index holds the record).
    pub fn completing_volumes(&self) -> Result<Vec<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT sequence FROM snapshots WHERE state = 'complete'")?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        rows.map(|r| Ok(r? as u64)).collect()
    }

    /// Start pruning volumes: from now on nothing deduplicates against them and no
    /// list shows them; their files may then be deleted.
    pub fn begin_pruning(&mut self, sequences: &[u64]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for sequence in sequences {
            let sequence = *sequence as i64;
            tx.execute(
                "DELETE FROM blobs WHERE pack IN (SELECT id FROM packs WHERE sequence = ?1)",
                params![sequence],
            )?;
            tx.execute("DELETE FROM packs WHERE sequence = ?1", params![sequence])?;
            tx.execute(
                "UPDATE volumes SET state = 'pruning' WHERE sequence = ?1",
                params![sequence],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record what a check found about a volume: `sealed`, `damaged` or `missing`.
    pub fn set_volume_state(&mut self, sequence: u64, state: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE volumes SET state = ?2 WHERE sequence = ?1",
            params![sequence as i64, state],
        )?;
        Ok(())
    }

    /// The vault holds volume `sequence` under another object name now.
    pub fn set_volume_name(&mut self, sequence: u64, name: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE volumes SET name = ?2 WHERE sequence = ?1",
            params![sequence as i64, name],
        )?;
        Ok(())
    }

    /// Record a volume's size and BLAKE3 as sealed (a rebuild learns them after the volume).
    pub fn set_volume_hash(&mut self, sequence: u64, bytes: u64, blake3: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE volumes SET bytes = ?2, blake3 = ?3 WHERE sequence = ?1",
            params![sequence as i64, bytes as i64, blake3],
        )?;
        Ok(())
    }

    /// Replace the wrapped master key (a new passphrase for the same key).
    pub fn set_wrapped_key(&mut self, wrapped: &WrappedKey) -> Result<()> {
        self.conn.execute(
            "UPDATE vault SET wrapped_key = ?1",
            params![serde_json::to_string(wrapped).expect("key serialises")],
        )?;
        Ok(())
    }

    /// Every blob the catalog places in volume `sequence`, by pack number.
    pub fn blobs_in_volume(
        &self,
        sequence: u64,
    ) -> Result<std::collections::BTreeMap<u32, Vec<(ChunkId, BlobLocation)>>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT b.chunk_id, b.kind, {LOCATION_COLUMNS}
             FROM blobs b JOIN packs p ON p.id = b.pack WHERE p.sequence = ?1"
        ))?;
        let mut rows = stmt.query(params![sequence as i64])?;
        let mut out: std::collections::BTreeMap<u32, Vec<(ChunkId, BlobLocation)>> =
            Default::default();
        while let Some(r) = rows.next()? {
            let id: Vec<u8> = r.get(0)?;
            let id = ChunkId(
                id.try_into()
                    .map_err(|_| Error::corrupt("catalog chunk id is not 32 bytes"))?,
            );
            let kind = BlobKind::from_code(r.get(1)?)?;
            let location = read_location(r, 2, kind)?;
            out.entry(location.pack).or_default().push((id, location));
        }
        Ok(out)
    }

    /// Save a drill's outcome and its full JSON report.
    pub fn record_drill(&mut self, drill: &DrillRecord, report_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO drills(started, snapshot, mode, outcome, files, bytes, damaged, seconds, report)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                drill.started,
                drill.snapshot,
                drill.mode,
                drill.outcome,
                drill.files as i64,
                drill.bytes as i64,
                drill.damaged as i64,
                drill.seconds,
                report_json
            ],
        )?;
        Ok(())
    }

    /// Past drills, oldest first.
    pub fn drills(&self) -> Result<Vec<DrillRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT started, snapshot, mode, outcome, files, bytes, damaged, seconds FROM drills ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DrillRecord {
                started: r.get(0)?,
                snapshot: r.get(1)?,
                mode: r.get(2)?,
                outcome: r.get(3)?,
                files: r.get::<_, i64>(4)? as u64,
                bytes: r.get::<_, i64>(5)? as u64,
                damaged: r.get::<_, i64>(6)? as u64,
                seconds: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every volume, by sequence number.
    pub fn volumes_by_sequence(&self) -> Result<std::collections::HashMap<u64, VolumeRow>> {
        Ok(self
            .volumes()?
            .into_iter()
            .map(|v| (v.sequence, v))
            .collect())
    }

    /// The set list written into each new volume's index.
    pub fn volume_set(&self) -> Result<Vec<SetEntry>> {
        Ok(self
            .volumes()?
            .into_iter()
            .map(|v| SetEntry {
                sequence: v.sequence,
                volume_id: v.volume_id,
                bytes: Some(v.bytes),
                blake3: Some(v.blake3),
            })
            .collect())
    }

    /// Drop what a crashed run left: snapshots that never completed and their nodes.
    pub fn discard_pending(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        for sid in snapshot_ids(&tx, "pending")? {
            nodes::drop_nodes(&tx, &sid)?;
        }
        let n = tx.execute("DELETE FROM snapshots WHERE state = 'pending'", [])?;
        tx.commit()?;
        Ok(n)
    }

    /// Register a snapshot that is being written; it is invisible until completed.
    pub fn begin_snapshot(&mut self, id: &SnapshotId) -> Result<()> {
        self.conn.execute(
            "INSERT INTO snapshots(id, state) VALUES (?1, 'pending')",
            params![id.to_string()],
        )?;
        Ok(())
    }

    /// Record a sealed volume, its packs and blobs, and the snapshot it completes, atomically.
    pub fn record_volume(
        &mut self,
        volume: &VolumeRow,
        packs: &[IndexPack],
        completes: Option<&SnapshotRecord>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO volumes(sequence, volume_id, name, state, bytes, blake3, created, volume_set)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                volume.sequence as i64,
                volume.volume_id.to_string(),
                volume.name,
                volume.state,
                volume.bytes as i64,
                volume.blake3,
                volume.created,
                volume.volume_set as i64
            ],
        )?;
        {
            let mut pack_stmt = tx.prepare_cached(
                "INSERT INTO packs(sequence, number, offset, length) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut blob_stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO blobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for pack in packs {
                pack_stmt.execute(params![
                    volume.sequence as i64,
                    pack.number,
                    pack.offset as i64,
                    pack.length as i64
                ])?;
                let pack_id = tx.last_insert_rowid();
                for (position, blob) in pack.blobs.iter().enumerate() {
                    blob_stmt.execute(params![
                        &blob.id.0[..],
                        blob.kind.code(),
                        pack_id,
                        position as i64,
                        blob.offset as i64,
                        blob.sealed_len,
                        blob.plain_len
                    ])?;
                }
            }
        }
        if let Some(record) = completes {
            complete(&tx, record, volume.sequence)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Mark a pending snapshot complete, as found in the index of volume `sequence`.
    pub fn complete_snapshot(&mut self, record: &SnapshotRecord, sequence: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        complete(&tx, record, sequence)?;
        tx.commit()?;
        Ok(())
    }

    /// Complete snapshots, oldest first (by volume sequence, never by clock).
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM snapshots WHERE state = 'complete' ORDER BY sequence")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(
                serde_json::from_str(&row?)
                    .map_err(|e| Error::corrupt(format!("catalog snapshot record: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Resolve `latest` or a unique id prefix.
    pub fn find_snapshot(&self, selector: &str) -> Result<SnapshotRecord> {
        let all = self.snapshots()?;
        if selector == "latest" {
            return all.into_iter().next_back().ok_or_else(|| {
                Error::missing("the vault has no snapshots yet: run `tapevault backup` first")
            });
        }
        let wanted = selector.to_ascii_lowercase();
        let mut matches: Vec<SnapshotRecord> = all
            .into_iter()
            .filter(|s| s.id.to_string().starts_with(&wanted))
            .collect();
        match matches.len() {
            0 => Err(Error::missing(format!(
                "no snapshot matches {selector:?}: `tapevault snapshots` lists them"
            ))),
            1 => Ok(matches.remove(0)),
            n => Err(Error::usage(format!(
                "snapshot id {selector:?} is ambiguous: it matches {n} snapshots; give more characters"
            ))),
        }
    }
}

/// Ids of the snapshots in `state` (`pending`, `complete` or `forgotten`).
fn snapshot_ids(conn: &Connection, state: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare("SELECT id FROM snapshots WHERE state = ?1")?
        .query_map(params![state], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?)
}

fn complete(tx: &rusqlite::Transaction<'_>, record: &SnapshotRecord, sequence: u64) -> Result<()> {
    // A rebuilt snapshot arrives staged; a backup folded its nodes to write its tree.
    nodes::fold(tx, &record.id.to_string())?;
    let json = serde_json::to_string(record).expect("snapshot serialises");
    let updated = tx.execute(
        "UPDATE snapshots SET state = 'complete', sequence = ?2, record = ?3 WHERE id = ?1",
        params![record.id.to_string(), sequence as i64, json],
    )?;
    if updated != 1 {
        return Err(Error::corrupt(format!(
            "snapshot {} was not pending",
            record.id
        )));
    }
    Ok(())
}

/// The columns `read_location` reads, in its order.
const LOCATION_COLUMNS: &str =
    "p.sequence, p.number, b.position, b.offset, b.sealed_len, b.plain_len, p.offset";

/// A blob's location from the `LOCATION_COLUMNS` of a row, starting at column `at`.
fn read_location(
    r: &rusqlite::Row<'_>,
    at: usize,
    kind: BlobKind,
) -> rusqlite::Result<BlobLocation> {
    Ok(BlobLocation {
        kind,
        sequence: r.get::<_, i64>(at)? as u64,
        pack: r.get(at + 1)?,
        position: r.get(at + 2)?,
        offset: r.get::<_, i64>(at + 3)? as u64,
        sealed_len: r.get(at + 4)?,
        plain_len: r.get(at + 5)?,
        pack_offset: r.get::<_, i64>(at + 6)? as u64,
    })
}

/// The default catalog folder for a vault: `$XDG_STATE_HOME/tapevault/<hash of address>`.
pub fn default_dir(vault_address: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    Error::usage("neither XDG_STATE_HOME nor HOME is set: pass --catalog DIR")
                })?;
            PathBuf::from(home).join(".local/state")
        }
    };
    let tag = &blake3::hash(vault_address.as_bytes()).to_hex()[..16];
    Ok(base.join("tapevault").join(tag))
}

/// Take the exclusive run lock of a catalog, or fail at once naming the holder (exit 6).
pub fn lock(dir: &Path) -> Result<crate::lock::RunLock> {
    crate::lock::acquire(&dir.join(LOCK_FILE))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new, empty catalog in a temporary folder, for vault `dir:/nowhere`.
    pub(crate) fn new_catalog() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = crate::crypto::MasterKey::random();
        let vault_id = VaultId::random();
        let kdf = crate::crypto::KdfParams::new(8192, 1, 1).expect("valid");
        let info = VaultInfo {
            vault_id,
            address: "dir:/nowhere".into(),
            fingerprint: key.fingerprint(),
            wrapped_key: WrappedKey::wrap(&key, vault_id, b"p", kdf).expect("wraps"),
            chunker: crate::chunk::CHUNKER_VERSION.into(),
        };
        let catalog = Catalog::create(dir.path(), &info).expect("creates");
        (dir, catalog)
    }

    #[test]
    fn a_read_view_inside_another_joins_it_and_ends_with_it() {
        let (_dir, catalog) = new_catalog();
        {
            let _outer = catalog.read_view().expect("a view");
            // A lookup that takes its own view (locate) inside a caller's.
            let _inner = catalog.read_view().expect("a view inside a view");
            assert!(!catalog.conn.is_autocommit());
        }
        assert!(
            catalog.conn.is_autocommit(),
            "the outer view ended the transaction"
        );
    }

    /// T27: nothing is claimed durable that was not synced: every connection the
    /// catalog opens commits with a full fsync, in WAL mode.
    #[test]
    fn t27_every_catalog_commit_is_synced() {
        let (dir, catalog) = new_catalog();
        drop(catalog);
        let catalog = Catalog::open(dir.path(), "dir:/nowhere").expect("opens");
        let synchronous: i64 = catalog
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("pragma");
        let journal: String = catalog
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("pragma");
        assert_eq!(synchronous, 2, "synchronous=FULL");
        assert_eq!(journal, "wal");
    }
}
