//! `drill`: prove a restore works by doing one into scratch space and checking every byte.
//!
//! A drill restores a seeded random sample of a snapshot's files (or all of
//! them) through the ordinary restore path, which checks every chunk id and
//! every whole-file BLAKE3, then removes what it restored. It reports what
//! was checked, how long the first byte took, the restore rate and a
//! projected time for a full restore (an RTO estimate). `--from-scratch`
//! first rebuilds a catalog from the vault alone into a temporary folder, as
//! on the night the site burned, and drills against that. A drill never
//! writes to the vault; its outcome is recorded in the catalog's history.

use crate::catalog::{Catalog, DrillRecord};
use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{NodeKind, PathBytes};
use crate::progress::Observer;
use crate::rebuild::RebuildSummary;
use crate::restore::{RestoreOptions, RestoreProblems};
use crate::vault::Vault;
use serde::Serialize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What to drill.
pub struct DrillOptions {
    /// Snapshot selector: `latest` or an id prefix.
    pub snapshot: String,
    /// How many files to sample; `None` restores every file.
    pub sample: Option<usize>,
    /// Seed of the sample, so a failed drill can be repeated exactly.
    pub seed: u64,
    /// Folder under which the scratch restore is made; default the system's temporary folder.
    pub scratch: Option<PathBuf>,
    /// Vaults holding copies of the same volumes, for what the vault cannot give.
    pub copy_vaults: Vec<String>,
}

/// What a drill found.
#[derive(Debug, Default, Serialize)]
pub struct DrillReport {
    /// Seconds since the epoch when the drill started.
    pub started: i64,
    /// Snapshot drilled.
    pub snapshot: String,
    /// `sample N` or `all`, plus `from-scratch`.
    pub mode: String,
    /// Seed of the sample.
    pub seed: u64,
    /// `passed`, `warnings` or `damage`.
    pub outcome: String,
    /// Regular files in the snapshot.
    pub files_in_snapshot: u64,
    /// Bytes of regular files in the snapshot.
    pub bytes_in_snapshot: u64,
    /// Files chosen for the drill.
    pub files_selected: u64,
    /// Files restored and checked exact.
    pub files_checked: u64,
    /// Bytes restored and checked.
    pub bytes_checked: u64,
    /// Volumes read, in order.
    pub volumes_read: Vec<String>,
    /// Seconds the catalog rebuild took (`--from-scratch`).
    pub rebuild_seconds: Option<f64>,
    /// What the rebuild found (`--from-scratch`).
    pub rebuild: Option<RebuildSummary>,
    /// Seconds from the start of the restore to its first byte.
    pub first_byte_seconds: Option<f64>,
    /// Seconds the restore took.
    pub restore_seconds: f64,
    /// Restored bytes per second.
    pub bytes_per_second: f64,
    /// Projected seconds for a full restore of the snapshot at this rate, rebuild included.
    pub projected_full_restore_seconds: Option<f64>,
    /// Volume reads that failed with an I/O error and were done again.
    pub retried: Vec<String>,
    /// What the vault could not give and a `--copy-vault` did.
    pub from_copies: Vec<String>,
    /// Seconds the whole drill took.
    pub seconds: f64,
    /// Files that did not restore exactly (with the missing byte ranges), refusals,
    /// volume problems and warnings.
    #[serde(flatten)]
    pub problems: RestoreProblems,
}

impl DrillReport {
    /// Data is missing or wrong (exit 4).
    pub fn has_damage(&self) -> bool {
        self.problems.has_damage()
    }
    /// Everything restored, but something needs a look (exit 3).
    pub fn has_warnings(&self) -> bool {
        self.problems.has_warnings()
            || self
                .rebuild
                .as_ref()
                .is_some_and(|r| !r.problems.is_empty())
    }

    /// The row `drill --history` shows.
    pub fn record(&self) -> DrillRecord {
        DrillRecord {
            started: self.started,
            snapshot: self.snapshot.clone(),
            mode: self.mode.clone(),
            outcome: self.outcome.clone(),
            files: self.files_checked,
            bytes: self.bytes_checked,
            damaged: self.problems.damaged.len() as u64,
            seconds: self.seconds,
        }
    }
}

/// Choose `n` regular files by a seeded hash of their paths: stable for a seed, spread over the tree.
fn sample(files: Vec<PathBytes>, n: Option<usize>, seed: u64) -> Vec<PathBytes> {
    let Some(n) = n else {
        return Vec::new();
    };
    let key = blake3::derive_key("tapevault v1 drill sample", &seed.to_le_bytes());
    let mut ranked: Vec<([u8; 32], PathBytes)> = files
        .into_iter()
        .map(|p| (*blake3::keyed_hash(&key, &p.0).as_bytes(), p))
        .collect();
    ranked.sort_unstable_by_key(|(rank, _)| *rank);
    ranked.into_iter().take(n).map(|(_, p)| p).collect()
}

/// Drill `options.snapshot` with this catalog and key.
pub fn drill(
    vault: &dyn Vault,
    catalog: &Catalog,
    key: &MasterKey,
    options: &DrillOptions,
    progress: &dyn Observer,
) -> Result<DrillReport> {
    let started = std::time::Instant::now();
    let record = catalog.find_snapshot(&options.snapshot)?;
    let mut files = Vec::new();
    let mut report = DrillReport {
        started: crate::backup::unix_now(),
        snapshot: record.id.to_string(),
        seed: options.seed,
        mode: match options.sample {
            Some(n) => format!("sample {n}"),
            None => "all".into(),
        },
        ..DrillReport::default()
    };
    catalog.for_each_node(&record.id, |node| {
        if node.kind == NodeKind::File {
            report.files_in_snapshot += 1;
            report.bytes_in_snapshot += node.size;
            files.push(node.path);
        }
        Ok(())
    })?;
    let chosen = sample(files, options.sample, options.seed);
    report.files_selected = match options.sample {
        Some(_) => chosen.len() as u64,
        None => report.files_in_snapshot,
    };
    if options.sample.is_some() && chosen.is_empty() {
        return Err(Error::missing(format!(
            "snapshot {} holds no files to drill",
            record.id.short()
        )));
    }
    // Read from the medium, not from the page cache that still holds them after the
    // backup: a drill proves what the disk kept.
    for volume in catalog.volumes()? {
        vault.forget_cached(&volume.name);
    }
    let scratch = scratch_dir(options.scratch.as_deref())?;
    let restore_options = RestoreOptions {
        snapshot: record.id.to_string(),
        target: scratch.path().to_path_buf(),
        includes: chosen
            .iter()
            .map(|p| {
                let mut absolute = b"/".to_vec();
                absolute.extend_from_slice(&p.0);
                PathBuf::from(std::ffi::OsStr::from_bytes(&absolute))
            })
            .collect(),
        overwrite: false,
        copy_vaults: options.copy_vaults.clone(),
    };
    let restored = crate::restore::restore(vault, catalog, key, &restore_options, progress);
    remove_scratch(scratch)?;
    let restored = restored?;
    report.files_checked = restored.files;
    report.bytes_checked = restored.bytes;
    report.volumes_read = restored.volumes_read;
    report.first_byte_seconds = restored.first_byte_seconds;
    report.restore_seconds = restored.seconds;
    if restored.seconds > 0.0 && restored.bytes > 0 {
        report.bytes_per_second = restored.bytes as f64 / restored.seconds;
        report.projected_full_restore_seconds = Some(
            restored.first_byte_seconds.unwrap_or(0.0)
                + report.bytes_in_snapshot as f64 / report.bytes_per_second,
        );
    }
    report.problems = restored.problems;
    report.retried = restored.retried;
    report.from_copies = restored.from_copies;
    // The scratch space is gone, so partial copies left there are not worth naming.
    for damage in &mut report.problems.damaged {
        damage.kept_as = None;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.outcome = outcome(&report).into();
    Ok(report)
}

fn outcome(report: &DrillReport) -> &'static str {
    if report.has_damage() {
        "damage"
    } else if report.has_warnings() {
        "warnings"
    } else {
        "passed"
    }
}

/// The site-burned rehearsal: rebuild a catalog from the vault alone into a
/// temporary folder (timed), then drill against it.
pub fn drill_from_scratch(
    vault: &dyn Vault,
    passphrase: &[u8],
    options: &DrillOptions,
    progress: &dyn Observer,
) -> Result<DrillReport> {
    let started = std::time::Instant::now();
    let (label, key) = crate::rebuild::unlock_from_labels(vault, passphrase)?;
    let info = crate::catalog::VaultInfo {
        vault_id: label.vault_id,
        address: vault.location().to_string(),
        fingerprint: key.fingerprint(),
        wrapped_key: label.wrapped_key.clone(),
        chunker: label.chunker.clone(),
    };
    let holder = scratch_dir(options.scratch.as_deref())?;
    let catalog_dir = holder.path().join("catalog");
    let rebuilt = crate::rebuild::rebuild_with_key(vault, &catalog_dir, &key, &info);
    let drilled = rebuilt.and_then(|summary| {
        let rebuild_seconds = started.elapsed().as_secs_f64();
        let catalog = Catalog::open(&catalog_dir, vault.location())?;
        let mut report = match drill(vault, &catalog, &key, options, progress) {
            Ok(report) => report,
            // The vault alone cannot produce the snapshot: that is the finding, not an error.
            Err(err)
                if err.kind() == ErrorKind::Missing
                    && (options.snapshot != "latest" || !summary.problems.is_empty()) =>
            {
                DrillReport {
                    started: crate::backup::unix_now(),
                    snapshot: options.snapshot.clone(),
                    seed: options.seed,
                    mode: "none".into(),
                    problems: RestoreProblems {
                        volume_errors: vec![format!(
                            "the vault alone does not hold snapshot {}: {err}",
                            options.snapshot
                        )],
                        ..RestoreProblems::default()
                    },
                    ..DrillReport::default()
                }
            }
            Err(err) => return Err(err),
        };
        report.mode.push_str(", from scratch");
        report.rebuild_seconds = Some(rebuild_seconds);
        report.rebuild = Some(summary);
        report.projected_full_restore_seconds = report
            .projected_full_restore_seconds
            .map(|s| s + rebuild_seconds);
        report.seconds = started.elapsed().as_secs_f64();
        report.outcome = outcome(&report).into();
        Ok(report)
    });
    remove_scratch(holder)?;
    drilled
}

fn scratch_dir(under: Option<&Path>) -> Result<tempfile::TempDir> {
    let base = under.map_or_else(std::env::temp_dir, Path::to_path_buf);
    tempfile::Builder::new()
        .prefix("tapevault-drill-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("cannot make drill scratch space in", &base, e))
}

/// Remove the scratch restore; restored folders may be read-only, so open them up first.
fn remove_scratch(scratch: tempfile::TempDir) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(scratch.path()).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700));
        }
    }
    let path = scratch.path().to_path_buf();
    scratch
        .close()
        .map_err(|e| Error::io("cannot remove drill scratch space", &path, e))
}
