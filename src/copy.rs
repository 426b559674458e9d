//! Copies between vaults (3-2-1): every sealed volume the destination lacks, in
//! sequence order, each checked against the catalog's size and ciphertext BLAKE3 on
//! the way; the labels and records come first, so an empty destination becomes a
//! copy of the same vault that restores, rebuilds and drills on its own.
//!
//! Reading needs no key: volumes are copied as the opaque bytes they are. A copy
//! is sealed only when its bytes match the catalog; one that does not is
//! abandoned, named, and the rest carry on. The catalog records where each
//! volume has a verified copy.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::vault::Vault;
use serde::Serialize;
use std::io::{Read, Write};

/// One volume copied.
#[derive(Debug, Serialize)]
pub struct CopiedVolume {
    /// Sequence number.
    pub sequence: u64,
    /// Object name (the same in both vaults).
    pub name: String,
    /// Bytes copied.
    pub bytes: u64,
}

/// A volume that could not be copied, and why.
#[derive(Debug, Serialize)]
pub struct CopyProblem {
    /// Object name.
    pub volume: String,
    /// What went wrong.
    pub message: String,
}

/// What `copy` did.
#[derive(Debug, Serialize)]
pub struct CopyReport {
    /// Source vault.
    pub from: String,
    /// Destination vault.
    pub to: String,
    /// Labels and records copied (a new destination gets the vault label first).
    pub labels_and_records: Vec<String>,
    /// Volumes copied now, in order.
    pub copied: Vec<CopiedVolume>,
    /// Volumes the destination already held (not read again).
    pub already_there: usize,
    /// Volumes not copied: damaged, missing or unreadable in the source.
    pub problems: Vec<CopyProblem>,
    /// Bytes of volumes copied.
    pub bytes: u64,
}

/// Copy what `to` lacks from `from`. `to` must be empty or hold the same vault.
pub fn copy(
    catalog: &mut Catalog,
    from: &dyn Vault,
    to: &dyn Vault,
    progress: &dyn crate::progress::Observer,
) -> Result<CopyReport> {
    if from.location() == to.location() {
        return Err(Error::usage(format!(
            "copy --from and --to are the same vault ({})",
            to.location()
        )));
    }
    // Another vault's labels at the destination: refuse before writing anything.
    crate::keys::check_catalog_matches(to, catalog)?;
    let source = from.list()?;
    let present = to.list()?.sealed;
    let mut report = CopyReport {
        from: from.location().to_string(),
        to: to.location().to_string(),
        labels_and_records: Vec::new(),
        copied: Vec::new(),
        already_there: 0,
        problems: Vec::new(),
        bytes: 0,
    };
    // The vault label first: the destination is then recognisably this vault, and lockable.
    let mut small: Vec<&String> = source
        .sealed
        .iter()
        .filter(|name| crate::keys::is_key_label_name(name) || crate::records::is_record_name(name))
        .collect();
    small.sort_by_key(|name| name.as_str() != crate::keys::VAULT_LABEL);
    for name in small {
        if !present.contains(name) {
            copy_object(from, to, name)?;
            report.labels_and_records.push(name.clone());
        }
    }
    let _lock = to.lock_writers()?;
    for volume in catalog.volumes()? {
        if present.contains(&volume.name) {
            report.already_there += 1;
            continue;
        }
        if volume.state != "sealed" {
            report.problems.push(CopyProblem {
                volume: volume.name.clone(),
                message: format!(
                    "{} in the source: not copied (verify, or copy it from another copy)",
                    volume.state
                ),
            });
            continue;
        }
        progress.on(crate::progress::Event::Writing(&volume.name));
        match copy_volume(from, to, &volume) {
            Ok(()) => {
                catalog.record_copy(volume.sequence, to.location())?;
                report.bytes += volume.bytes;
                report.copied.push(CopiedVolume {
                    sequence: volume.sequence,
                    name: volume.name.clone(),
                    bytes: volume.bytes,
                });
                progress.on(crate::progress::Event::Sealed {
                    name: &volume.name,
                    bytes: volume.bytes,
                    index_full_at: None,
                });
            }
            // The destination failing is the run failing; the source failing is one volume's problem.
            Err(Failure::Destination(err)) => return Err(err),
            Err(Failure::Source(message)) => report.problems.push(CopyProblem {
                volume: volume.name.clone(),
                message,
            }),
        }
    }
    Ok(report)
}

enum Failure {
    Source(String),
    Destination(Error),
}

/// Stream one volume across, sealing it only if it is byte for byte what the catalog says.
fn copy_volume(
    from: &dyn Vault,
    to: &dyn Vault,
    volume: &crate::catalog::VolumeRow,
) -> Result<(), Failure> {
    let mut input = from
        .open(&volume.name)
        .map_err(|e| Failure::Source(e.to_string()))?;
    let mut sink = to
        .create(&volume.name, volume.bytes)
        .map_err(Failure::Destination)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Source(format!("cannot read: {e}"))),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        sink.write_all(&buf[..n]).map_err(|e| {
            Failure::Destination(Error::io(
                "cannot write",
                std::path::Path::new(&volume.name),
                e,
            ))
        })?;
    }
    let hash = hasher.finalize().to_hex().to_string();
    if total != volume.bytes || hash != volume.blake3 {
        // Dropping the sink abandons the copy: it never becomes visible.
        return Err(Failure::Source(format!(
            "does not match the catalog ({total} bytes, BLAKE3 {}…; expected {} bytes, {}…): not copied; run `tapevault verify`",
            &hash[..16],
            volume.bytes,
            &volume.blake3[..16.min(volume.blake3.len())]
        )));
    }
    sink.seal().map_err(Failure::Destination)
}

/// Copy a small object (a label or a record) whole.
fn copy_object(from: &dyn Vault, to: &dyn Vault, name: &str) -> Result<()> {
    let (size, bytes) = from.read_range(name, 0, u64::MAX)?;
    let mut sink = to.create(name, size)?;
    sink.write_all(&bytes)
        .map_err(|e| Error::io("cannot write", std::path::Path::new(name), e))?;
    sink.seal()
}
