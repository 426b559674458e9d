//! The command line as clap sees it (the "lowargs"); no logic here.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Tape-style offsite backup: deduplicated, compressed, encrypted tar volumes with a
/// catalog, and restores you can prove by drill.
#[derive(Debug, Parser)]
#[command(name = "tapevault", version, max_term_width = 100)]
#[command(
    after_help = "Exit status: 0 ok, 1 error, 2 usage, 3 done with warnings, \
4 damage found, 5 wrong key or passphrase, 6 vault in use by another run."
)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive);
    /// s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION,
    /// AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again
    /// TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all); tape:/dev/nstN (a
    /// Linux tape drive, non-rewinding: one volume per cartridge); tape:/folder (an
    /// emulated tape library for rehearsals: one file per cartridge); or - (a stream:
    /// backup writes its volumes one after another to stdout, so a backup needing three
    /// volumes is one stream holding all three; restore and catalog rebuild read them from
    /// stdin in the same order). A tape drive or stream keeps its vault label in the
    /// catalog folder (vault/); every volume label carries the key too
    #[arg(long, global = true, env = "TAPEVAULT_VAULT", value_name = "VAULT")]
    pub vault: Option<String>,
    /// The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]
    #[arg(long, global = true, env = "TAPEVAULT_CATALOG", value_name = "DIR")]
    pub catalog: Option<PathBuf>,
    /// Read the passphrase from this file (one trailing newline is ignored); otherwise
    /// TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Take unset options from this profile of the config file (see --config)
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The config file holding [profiles.NAME] tables
    /// [default: $XDG_CONFIG_HOME/tapevault/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// After backup, verify or drill, write Prometheus metrics (node_exporter textfile
    /// format) to this file, atomically, whether the run succeeded or not
    #[arg(long, global = true, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Tape block size, a multiple of 512 from 4K to 4M [default: 256K for writing; for
    /// reading, the size found on the tape]. A tape read with the wrong size is an error
    /// naming the size found
    #[arg(long, global = true, value_name = "SIZE")]
    pub block_size: Option<String>,
    /// Run this (with /bin/sh) whenever a tape vault needs another cartridge: %n is the
    /// volume sequence number and %v the volume name (also in TAPEVAULT_SEQUENCE and
    /// TAPEVAULT_VOLUME). It must load the cartridge and exit 0. Without it, a terminal is
    /// asked; in cron the run stops with exit 1 rather than wait
    #[arg(
        long,
        global = true,
        env = "TAPEVAULT_CHANGE_VOLUME_COMMAND",
        value_name = "COMMAND"
    )]
    pub change_volume_command: Option<String>,
    /// Longest wait, in seconds, for a tape drive that is becoming ready (loading, or
    /// calibrating a new cartridge) and for --change-volume-command; then exit 1
    #[arg(
        long,
        global = true,
        env = "TAPEVAULT_DRIVE_TIMEOUT",
        default_value_t = crate::tape::DEFAULT_DRIVE_TIMEOUT_SECONDS,
        value_name = "SECONDS"
    )]
    pub drive_timeout: u64,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault and its catalog, with a fresh random key wrapped by your passphrase
    ///
    /// The vault gets a random master key, wrapped by the passphrase with argon2id and
    /// written to the vault (vault.tvl) and into every volume label, so the vault plus the
    /// passphrase is always enough to read it. Print a paper key afterwards (tapevault key
    /// export --paper): without the passphrase or that sheet, nobody can read the vault.
    Init(InitArgs),
    /// Back up files and folders into new volumes of the vault
    ///
    /// Files unchanged since the last snapshot (same size, mtime, ctime, inode) are not
    /// read again; new content is split into chunks, deduplicated against every sealed
    /// volume, compressed and encrypted into packs, and written into volumes of at most
    /// --volume-size. A volume becomes part of the vault only when it is sealed; a run that
    /// is killed loses only itself, and the next run reuses everything already sealed.
    /// Unreadable files are skipped, named, and give exit 3.
    Backup(BackupArgs),
    /// List the snapshots in the catalog, oldest first
    Snapshots,
    /// List the entries of a snapshot
    Ls(LsArgs),
    /// Restore a snapshot (or parts of it) into a folder, checking every byte
    ///
    /// Each needed volume is read once, in order (see --plan). Every chunk is checked
    /// against its id and every file against its whole-file BLAKE3 before it gets its real
    /// name; a file that cannot be restored exactly is left as NAME.tapevault-partial and
    /// named with the byte ranges it lacks (exit 4). Nothing is written outside the target:
    /// unsafe names and link tricks are refused and named. Damage that a volume's parity
    /// (backup --parity) repairs is listed as "repaired" with its place: the files are
    /// exact (exit 3), but that medium is failing.
    Restore(RestoreArgs),
    /// List the volumes of the vault and their state
    ///
    /// States: sealed (healthy when last checked), damaged or missing (as found by verify),
    /// MISSING (not in the vault now), abandoned (an unfinished volume of a crashed run).
    /// With --reclaimable: only the volumes no kept snapshot needs (what prune would delete).
    Volumes(VolumesArgs),
    /// Forget snapshots by a keep policy (grandfather-father-son); prune then frees space
    ///
    /// Snapshots are judged per host and set of paths, newest first (by the order the
    /// backups ran, never by their clocks). A snapshot is kept if any rule keeps it:
    /// --keep-last N keeps the N newest; --keep-hourly/daily/weekly/monthly/yearly N keep
    /// the newest snapshot of each of the N most recent hours, days, ISO weeks, months or
    /// years that have one; --keep-within 30d keeps all within that long of the newest
    /// snapshot; --keep-tag T keeps every snapshot tagged T. As in restic, except that
    /// periods are counted at a fixed --utc-offset (default UTC), not local time with
    /// daylight saving. --host and --tag limit which snapshots are judged; others are kept.
    ///
    /// A forget is written to the vault before the catalog changes, so no catalog rebuild
    /// brings a forgotten snapshot back. It deletes no data: run prune for that. Use
    /// --dry-run first: it prints every snapshot with the rules that keep it.
    Forget(ForgetArgs),
    /// Delete the volumes that no kept snapshot needs (run after forget)
    ///
    /// A volume is deleted only when no blob in it is used by a kept snapshot and it
    /// completes none. The plan is written to the vault and the catalog before any volume
    /// is deleted, so a prune stopped at any point is finished by the next one, and a
    /// rebuilt catalog knows the deleted volumes were removed on purpose. --dry-run lists
    /// them and the space they hold. A volume under S3 object lock (backup
    /// --object-lock-days, or the bucket's default retention) is kept and named with the
    /// date its lock ends; a prune after that date deletes it.
    Prune(PruneArgs),
    /// Copy the still-used blobs out of mostly-unused volumes, so prune can delete them
    ///
    /// After forget, a volume may hold a few blobs that kept snapshots still use and much
    /// that none does; prune cannot delete it. consolidate copies those few blobs into new
    /// volumes (at most --max-volumes volumes and --max-bytes of copies per run, fullest
    /// of dead space first); each blob's place in the catalog moves only once its new
    /// volume is sealed, so a run stopped anywhere loses nothing. Run prune afterwards.
    Consolidate(ConsolidateArgs),
    /// Copy sealed volumes to a second vault (another disk, a bucket, another site)
    ///
    /// Copies every sealed volume the destination lacks, oldest first, with the vault's
    /// labels and records, so that an empty destination becomes a full copy of the same
    /// vault: it restores, rebuilds a catalog and drills on its own. Each volume is checked
    /// against the catalog's size and BLAKE3 while it streams and sealed only if it
    /// matches; a damaged or missing source volume is named (exit 4) and the rest carry
    /// on. No passphrase is needed. Run it after each backup; rerun it after a failure.
    /// Restore, drill and verify --deep read a copy with --copy-vault.
    Copy(CopyArgs),
    /// Check every volume's bytes against the catalog (no passphrase needed), or with
    /// --deep every blob and file; exit 4 names missing or damaged volumes and files
    ///
    /// Without --deep, verify re-reads every volume, compares its size and BLAKE3 with
    /// what was recorded when it was sealed, and walks its members as a restore would (a
    /// volume an older build wrote with an index over 64 MiB is damaged though its hash
    /// matches). It needs no passphrase and never asks for one, so it can run from cron on
    /// a machine that holds no key.
    ///
    /// With --deep it also decrypts every blob and checks its chunk id, checks every volume
    /// index, recomputes every distinct file's whole-file BLAKE3 from its chunks, and names
    /// every file of every snapshot (or of --snapshot) that would not restore exactly, with
    /// the byte ranges a restore would lose. It reads the data twice: once in media order,
    /// once in file order.
    ///
    /// Neither writes to the vault. Both continue past damage and record each volume's state
    /// in the catalog (sealed, damaged, missing); backups never deduplicate against a damaged
    /// or missing volume, so the next backup stores that data again. A volume written with
    /// parity whose damage parity repairs reads back exactly as sealed: it is listed as
    /// repaired (exit 3) and recorded damaged, so the next backup no longer leans on it.
    Verify(VerifyArgs),
    /// Prove a restore works: restore a sample (or all) of a snapshot into scratch space,
    /// check every byte, report timings and an RTO estimate, and record the outcome
    ///
    /// A drill restores through the same code as `restore`, checks every chunk and every
    /// whole-file BLAKE3, then deletes what it restored. The report gives files and bytes
    /// checked, volumes read, time to first byte, the restore rate and the projected time
    /// for a full restore of the snapshot. Every drill is recorded in the catalog; --history
    /// lists them.
    ///
    /// --from-scratch is the rehearsal of losing the site: it first rebuilds a catalog from
    /// the vault alone, with only the passphrase, in scratch space, times that, and drills
    /// against it. If the vault alone cannot produce the snapshot the catalog knows, that is
    /// reported as damage.
    ///
    /// Run it from cron, e.g. weekly: tapevault drill --sample 200 --report
    /// /var/log/tapevault/drill.json. Exit 0 passed, 3 passed with warnings, 4 damage.
    Drill(DrillArgs),
    /// Catalog maintenance (rebuild from the vault after the catalog was lost)
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Key management: paper key export and import, passphrase change
    ///
    /// A vault has one random master key; the passphrase only wraps it. `key passwd` wraps
    /// the same key under a new passphrase: the catalog and every volume written from now on
    /// carry the new wrapping, and a new key label (vault-XXXXXXXX.tvl) is written to the
    /// vault so that a catalog rebuild works with the new passphrase. Volumes already written
    /// keep the old wrapping in their labels: the old passphrase still opens them. If a
    /// passphrase leaked, start a new vault rather than relying on passwd.
    ///
    /// `key export --paper` prints the master key itself as ten numbered lines with a
    /// checksum each. Whoever holds that sheet can read every volume of the vault, past and
    /// future: print it, never store it on disk, and keep it apart from the cartridges.
    /// `key import --paper FILE` takes the typed-back sheet after the passphrase was lost,
    /// names any mistyped line, sets a new passphrase and rebuilds the catalog if there is
    /// none.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Generate man pages (for packaging)
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// argon2id memory in MiB for deriving the key from the passphrase (at least 8)
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub kdf_memory: u32,
    /// argon2id passes
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub kdf_iterations: u32,
    /// argon2id lanes
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub kdf_parallelism: u32,
}

/// `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and folders to back up (their absolute paths are kept); default: the
    /// profile's sources. A PATH that is a symlink is followed and kept under its own
    /// name; symlinks inside are kept as links
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Largest volume to write, with K/M/G/T suffix (binary units; at least 4M)
    /// [default: 4G, or from --media]. A volume also closes once its index lists about
    /// 1.5 million blobs (1.5 TB of large files, or a million small ones)
    #[arg(long, value_name = "SIZE")]
    pub volume_size: Option<String>,
    /// Size volumes for one cartridge of this LTO generation: 95% of its native
    /// (uncompressed) capacity, leaving room for the early-warning zone and the index;
    /// --volume-size overrides it. A cartridge is changed early when its volume's index
    /// is full (about 1.5 million blobs)
    #[arg(long, value_enum, value_name = "MEDIA")]
    pub media: Option<Media>,
    /// Reed-Solomon parity inside each volume, in percent (0 = none, at most 50). Damage
    /// in one place of up to P% of a 16 MiB segment, less one 64 KiB shard (1.5 MiB at 10),
    /// is rebuilt on read, and restore, verify and drill exit 3 naming what they repaired.
    /// [default: 0 for dir: vaults, which belong on redundant disks]
    #[arg(long, value_name = "PERCENT")]
    pub parity: Option<u8>,
    #[command(flatten)]
    pub s3: S3WriteArgs,
    /// Read each volume back as soon as it is sealed and compare its BLAKE3 with what was
    /// written. A volume that differs (a drive or cartridge writing wrong) is recorded
    /// damaged and never trusted, and its data is written again to the next volume in
    /// the same run; exit 3 names it
    #[arg(long)]
    pub verify_after_write: bool,
    /// Write over a tape cartridge that holds a live volume (of this or another vault).
    /// Without it such a cartridge is refused; scratch cartridges (volumes pruned) and
    /// blank ones are always written
    #[arg(long)]
    pub overwrite: bool,
    /// Start an independent volume set: store everything again, deduplicating against no
    /// earlier volume, so this set alone restores this snapshot (the weekly offsite full of
    /// a rotation). Later backups join the newest set.
    #[arg(long)]
    pub new_set: bool,
    /// zstd level, 1 (fast) to 19 (small)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19), value_name = "N")]
    pub compression_level: i32,
    /// Skip entries whose path or name matches this glob (repeatable), e.g. '*.tmp'
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Tag the snapshot (repeatable)
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Descend into other filesystems mounted below the sources
    #[arg(long)]
    pub cross_file_systems: bool,
    /// Worker threads [default: one per core]
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id (a unique prefix is enough) or 'latest'
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Only entries at or below this absolute path
    pub path: Option<PathBuf>,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (a unique prefix is enough) or 'latest'
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Folder to restore into; the snapshot's absolute paths are recreated below it
    #[arg(long, required_unless_present = "plan", value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Restore only this absolute path and what is below it (repeatable)
    #[arg(long, value_name = "PATH")]
    pub include: Vec<PathBuf>,
    /// Replace entries that already exist in the target (symlinks are replaced, never followed)
    #[arg(long)]
    pub overwrite: bool,
    /// Only print which volumes would be read, in order, and how many bytes; restore nothing
    #[arg(long)]
    pub plan: bool,
    /// A vault holding copies of the same volumes (a second disk, another site), read for
    /// any volume that is missing or damaged here; repeatable, tried in order
    #[arg(long, value_name = "VAULT")]
    pub copy_vault: Vec<String>,
}

/// `volumes`.
#[derive(Debug, Args)]
pub struct VolumesArgs {
    /// Only the volumes no kept snapshot needs (what prune would delete)
    #[arg(long)]
    pub reclaimable: bool,
    /// Record where a volume is kept
    #[command(subcommand)]
    pub action: Option<VolumesAction>,
}

/// `volumes note`.
#[derive(Debug, Subcommand)]
pub enum VolumesAction {
    /// Record where a volume (a cartridge, a disk) is kept, e.g. "offsite vault B, box 12";
    /// shown by `volumes` and `restore --plan`. An empty TEXT clears it.
    Note {
        /// The volume's sequence number (the seq column of `volumes`)
        #[arg(value_name = "SEQ")]
        sequence: u64,
        /// Where it is
        #[arg(value_name = "TEXT")]
        text: String,
    },
}

/// `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Keep the N newest snapshots
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the N most recent hours that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_hourly: usize,
    /// Keep the newest snapshot of each of the N most recent days that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_daily: usize,
    /// Keep the newest snapshot of each of the N most recent ISO weeks (Monday to Sunday) that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_weekly: usize,
    /// Keep the newest snapshot of each of the N most recent months that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_monthly: usize,
    /// Keep the newest snapshot of each of the N most recent years that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_yearly: usize,
    /// Keep every snapshot within this long of the newest one, e.g. 30d, 12h, 1y
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every snapshot carrying this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// Judge only snapshots of this host (repeatable)
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Judge only snapshots carrying this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Count hours, days, weeks, months and years at this offset from UTC, e.g. +01:00
    #[arg(long, default_value = "Z", value_name = "+HH:MM")]
    pub utc_offset: String,
    /// Print what would be kept and forgotten, and why; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `consolidate`.
#[derive(Debug, Args)]
pub struct ConsolidateArgs {
    /// Rewrite at most this many volumes in this run
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_volumes: usize,
    /// Copy at most this much (K/M/G/T) in this run
    #[arg(long, default_value = "1T", value_name = "SIZE")]
    pub max_bytes: String,
    /// Only volumes whose still-used blobs fill at most this percentage of them
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=99), value_name = "PERCENT")]
    pub max_live: u8,
    /// Largest new volume (K/M/G/T, at least 4M) [default: 4G]
    #[arg(long, value_name = "SIZE")]
    pub volume_size: Option<String>,
    /// List the volumes that would be rewritten and what would be copied; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub s3: S3WriteArgs,
}

/// `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// List the volumes that would be deleted and the space they hold; delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also decrypt every blob and check its chunk id, every volume index, and every file of
    /// every snapshot (needs the passphrase; reads every volume once)
    #[arg(long)]
    pub deep: bool,
    /// With --deep: check only this snapshot's blobs and files (id prefix or 'latest')
    #[arg(long, requires = "deep", value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
    /// With --deep: a vault holding copies of the same volumes, checked for any volume
    /// that is missing or damaged here; when a copy is whole, the data is safe (exit 3,
    /// naming the copy) but this vault's volume is still reported; repeatable
    #[arg(long, requires = "deep", value_name = "VAULT")]
    pub copy_vault: Vec<String>,
}

/// LTO generations, by native capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Media {
    /// 1.5 TB native
    #[value(name = "lto-5")]
    Lto5,
    /// 2.5 TB native
    #[value(name = "lto-6")]
    Lto6,
    /// 6 TB native
    #[value(name = "lto-7")]
    Lto7,
    /// 12 TB native
    #[value(name = "lto-8")]
    Lto8,
    /// 18 TB native
    #[value(name = "lto-9")]
    Lto9,
    /// 30 TB native
    #[value(name = "lto-10")]
    Lto10,
}

impl Media {
    /// Native capacity in bytes (decimal terabytes, as the LTO program states them).
    pub fn native_bytes(self) -> u64 {
        const TB: u64 = 1_000_000_000_000;
        match self {
            Media::Lto5 => 3 * TB / 2,
            Media::Lto6 => 5 * TB / 2,
            Media::Lto7 => 6 * TB,
            Media::Lto8 => 12 * TB,
            Media::Lto9 => 18 * TB,
            Media::Lto10 => 30 * TB,
        }
    }

    /// The volume size for one cartridge: 95% of native capacity.
    pub fn volume_bytes(self) -> u64 {
        self.native_bytes() / 100 * 95
    }
}

/// `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The vault to copy from [default: --vault]
    #[arg(long, value_name = "VAULT")]
    pub from: Option<String>,
    /// The vault to copy to: empty (it becomes a copy of this vault) or a copy already
    #[arg(long, value_name = "VAULT")]
    pub to: String,
    #[command(flatten)]
    pub s3: S3WriteArgs,
}

/// How the volumes a run writes are stored in an s3:// vault.
#[derive(Debug, Args)]
pub struct S3WriteArgs {
    /// S3 storage class of the new volumes (STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE,
    /// ...). Volumes in GLACIER or DEEP_ARCHIVE must be rehydrated (S3 RestoreObject)
    /// before a restore can read them; restore names each one it needs [default: the
    /// bucket's]
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Lock each new volume against deletion and overwrite for DAYS after it is sealed
    /// (S3 Object Lock: ransomware or a stolen key cannot erase it). The bucket must have
    /// been created with object lock enabled, or the run stops before writing. prune
    /// keeps a locked volume, names it with its date, and deletes it after that date
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub object_lock_days: Option<u32>,
    /// Who may lift the lock early: governance (only users allowed
    /// s3:BypassGovernanceRetention; tapevault never does) or compliance (nobody, not even
    /// the account's root user, until the date) [default: governance]
    #[arg(long, value_enum, value_name = "MODE", requires = "object_lock_days")]
    pub object_lock_mode: Option<crate::vault::RetentionMode>,
}

impl S3WriteArgs {
    /// The object lock asked for, if any.
    pub fn object_lock(&self) -> Option<crate::vault::ObjectLock> {
        Some(crate::vault::ObjectLock {
            days: self.object_lock_days?,
            mode: self
                .object_lock_mode
                .unwrap_or(crate::vault::RetentionMode::Governance),
        })
    }
}

/// `drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Snapshot id (a unique prefix is enough) or 'latest'
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Restore this many files, chosen at random (see --seed)
    #[arg(long, default_value_t = 100, value_name = "N", conflicts_with = "all")]
    pub sample: usize,
    /// Restore every file of the snapshot instead of a sample
    #[arg(long)]
    pub all: bool,
    /// Seed of the random sample; the report names it so a drill can be repeated exactly
    /// [default: random]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Make the scratch restore under this folder (it needs room for what is restored)
    /// [default: $TMPDIR or /tmp]; the restored files are removed afterwards
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// First rebuild a catalog from the vault alone (passphrase only) in scratch space and
    /// drill against it: the rehearsal of losing the whole site
    #[arg(long)]
    pub from_scratch: bool,
    /// Also write the JSON report to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// List past drills and their outcome instead of running one
    #[arg(long, conflicts_with_all = ["all", "from_scratch", "report"])]
    pub history: bool,
    /// A vault holding copies of the same volumes (a second disk, another site), read for
    /// any volume that is missing or damaged here; repeatable, tried in order
    #[arg(long, value_name = "VAULT")]
    pub copy_vault: Vec<String>,
}

/// `key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the master key and vault id as a paper key, to be printed and kept offline
    Export(KeyExportArgs),
    /// Make a working catalog from a paper key after the passphrase was lost, under a new
    /// passphrase (rebuilds the catalog from the vault when there is none)
    Import(KeyImportArgs),
    /// Change the passphrase: the same master key, wrapped under a new passphrase
    Passwd(KeyPasswdArgs),
}

/// `key export`.
#[derive(Debug, Args)]
pub struct KeyExportArgs {
    /// Paper form: numbered lines with a checksum each (the only form there is)
    #[arg(long, required = true)]
    pub paper: bool,
}

/// `key import`.
#[derive(Debug, Args)]
pub struct KeyImportArgs {
    /// The typed-back paper key ('-' reads standard input)
    #[arg(long, value_name = "FILE")]
    pub paper: PathBuf,
    /// Read the new passphrase from this file; otherwise TAPEVAULT_NEW_PASSPHRASE, otherwise
    /// a prompt
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

/// `key passwd`.
#[derive(Debug, Args)]
pub struct KeyPasswdArgs {
    /// Read the new passphrase from this file; otherwise TAPEVAULT_NEW_PASSPHRASE, otherwise
    /// a prompt
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

/// `catalog …`.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Build a new catalog from the vault and the passphrase alone (the catalog folder
    /// must not exist yet); reads every volume, never writes to the vault
    Rebuild,
}

/// `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to generate: man (pages) or completions (bash, zsh and fish)
    pub what: String,
    /// Output folder
    pub dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::Media;

    #[test]
    fn media_volumes_are_95_percent_of_native_capacity() {
        assert_eq!(Media::Lto5.volume_bytes(), 1_425_000_000_000);
        assert_eq!(Media::Lto9.volume_bytes(), 17_100_000_000_000);
        assert_eq!(Media::Lto10.volume_bytes(), 28_500_000_000_000);
    }
}
