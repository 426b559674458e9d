//! Keyless `verify`: every volume's bytes against the catalog's size and BLAKE3.
//!
//! Needs no passphrase and never writes to the vault or changes the catalog.
//! Reports volumes that are missing, damaged (size or hash differs),
//! abandoned (`.partial` left by a crashed run) and extra (in the vault but
//! not in the catalog); it continues past every problem.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::vault::Vault;
use crate::volume::HashingReader;
use serde::Serialize;

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
}

impl VerifyReport {
    /// Some sealed volume is missing or damaged (exit 4).
    pub fn has_damage(&self) -> bool {
        !self.missing.is_empty() || !self.damaged.is_empty()
    }
    /// Something needs an operator's look but no data is lost (exit 3).
    pub fn has_warnings(&self) -> bool {
        !self.abandoned.is_empty() || !self.extra.is_empty()
    }
}

/// Check every volume the catalog knows against the vault, without the key.
pub fn verify(vault: &dyn Vault, catalog: &Catalog) -> Result<VerifyReport> {
    let listing = vault.list()?;
    let volumes = catalog.volumes()?;
    let mut report = VerifyReport {
        abandoned: listing.partial.clone(),
        ..VerifyReport::default()
    };
    report.extra = listing
        .sealed
        .iter()
        .filter(|name| {
            crate::volume::is_volume_name(name) && !volumes.iter().any(|v| &v.name == *name)
        })
        .cloned()
        .collect();
    for volume in &volumes {
        let problem = |reason: String| VolumeProblem {
            sequence: volume.sequence,
            name: volume.name.clone(),
            volume_id: volume.volume_id.to_string(),
            reason,
        };
        if !listing.sealed.contains(&volume.name) {
            report
                .missing
                .push(problem("missing from the vault".into()));
            continue;
        }
        let checked = vault
            .open(&volume.name)
            .and_then(|source| HashingReader::new(source).finish());
        match checked {
            Ok((bytes, _)) if bytes != volume.bytes => {
                report.bytes_checked += bytes;
                report.damaged.push(problem(format!(
                    "{bytes} bytes where {} were sealed (truncated or replaced)",
                    volume.bytes
                )));
            }
            Ok((bytes, hash)) if hash != volume.blake3 => {
                report.bytes_checked += bytes;
                report.damaged.push(problem(
                    "content differs from what was sealed (BLAKE3 mismatch)".into(),
                ));
            }
            Ok((bytes, _)) => {
                report.bytes_checked += bytes;
                report.volumes_ok += 1;
            }
            Err(err) => report.damaged.push(problem(format!("unreadable: {err}"))),
        }
    }
    Ok(report)
}
