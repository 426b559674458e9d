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
    /// Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive)
    #[arg(long, global = true, env = "TAPEVAULT_VAULT", value_name = "VAULT")]
    pub vault: Option<String>,
    /// The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]
    #[arg(long, global = true, env = "TAPEVAULT_CATALOG", value_name = "DIR")]
    pub catalog: Option<PathBuf>,
    /// Read the passphrase from this file (one trailing newline is ignored); otherwise
    /// TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
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
    Init(InitArgs),
    /// Back up files and folders into new volumes of the vault
    Backup(BackupArgs),
    /// List the snapshots in the catalog, oldest first
    Snapshots,
    /// List the entries of a snapshot
    Ls(LsArgs),
    /// Restore a snapshot (or parts of it) into a folder, checking every byte
    Restore(RestoreArgs),
    /// List the volumes of the vault and their state
    Volumes,
    /// Check every volume's bytes against the catalog (no passphrase needed); exit 4 names
    /// missing or damaged volumes
    Verify,
    /// Catalog maintenance (rebuild from the vault after the catalog was lost)
    #[command(subcommand)]
    Catalog(CatalogCommand),
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
    /// Files and folders to back up (their absolute paths are kept)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Largest volume to write, with K/M/G/T suffix (binary units; at least 4M)
    #[arg(long, default_value = "4G", value_name = "SIZE")]
    pub volume_size: String,
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
    /// What to generate: man
    pub what: String,
    /// Output folder
    pub dir: PathBuf,
}
