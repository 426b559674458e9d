//! Text and `--json` rendering of every summary and report.

use crate::backup::BackupSummary;
use crate::catalog::VolumeRow;
use crate::console::{errln, out, outln};
use crate::keys::InitSummary;
use crate::model::{Node, NodeKind, SnapshotRecord};
use crate::restore::{RestorePlan, RestoreReport};
use crate::vault::Listing;
use serde::Serialize;

/// How to print.
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
}

fn time(secs: i64) -> String {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(when).to_string()
}

pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Output {
    fn json(&self, value: &impl Serialize) {
        // Serialising our own report types cannot fail.
        outln!(
            "{}",
            serde_json::to_string_pretty(value).expect("report serialises")
        );
    }

    /// The report as JSON, or its warnings on stderr; true when nothing more is to be
    /// printed (JSON, or --quiet).
    fn json_or_warnings(&self, report: &impl Serialize, warnings: &[String]) -> bool {
        if self.json {
            self.json(report);
            return true;
        }
        for warning in warnings {
            errln!("tapevault: warning: {warning}");
        }
        self.quiet
    }

    pub fn init(&self, summary: &InitSummary, address: &str) {
        if self.json {
            return self.json(summary);
        }
        if !self.quiet {
            outln!("initialised vault {address}");
            outln!("vault id    {}", summary.vault_id);
            outln!("key         {} (fingerprint)", summary.fingerprint);
            outln!("catalog     {}", summary.catalog);
            outln!("keep the passphrase safe: without it the vault cannot be read");
        }
    }

    pub fn backup(&self, summary: &BackupSummary) {
        if self.json_or_warnings(summary, &summary.warnings) {
            return;
        }
        for name in &summary.abandoned_volumes {
            outln!("note: {name} is an unfinished volume from an earlier run; it is not trusted");
        }
        let s = &summary.snapshot.stats;
        outln!("snapshot {} saved", summary.snapshot.id.short());
        outln!(
            "files     {} new, {} changed, {} unchanged ({} in all, {} dirs, {} other)",
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.files,
            s.dirs,
            s.other
        );
        outln!(
            "data      {} read, {} new, {} written",
            bytes(s.bytes),
            bytes(s.bytes_added),
            bytes(summary.bytes_written)
        );
        outln!("volumes   {}", summary.volumes_written.join(" "));
        outln!("time      {:.1} s", summary.seconds);
        if !summary.warnings.is_empty() {
            outln!(
                "warnings  {} (listed above; the snapshot records them)",
                summary.warnings.len()
            );
        }
    }

    pub fn snapshots(&self, snapshots: &[SnapshotRecord]) {
        if self.json {
            #[derive(Serialize)]
            struct Snapshots<'a> {
                snapshots: &'a [SnapshotRecord],
            }
            return self.json(&Snapshots { snapshots });
        }
        if self.quiet {
            return;
        }
        outln!(
            "{:<10} {:<21} {:<14} {:>10}  paths",
            "id",
            "time",
            "host",
            "size"
        );
        for s in snapshots {
            let paths: Vec<String> = s.paths.iter().map(|p| p.escaped()).collect();
            outln!(
                "{:<10} {:<21} {:<14} {:>10}  {}",
                s.id.short(),
                time(s.time),
                s.host,
                bytes(s.stats.bytes),
                paths.join(" ")
            );
        }
        outln!("{} snapshots", snapshots.len());
    }

    pub fn ls(&self, snapshot: &SnapshotRecord, nodes: &[Node]) {
        if self.json {
            #[derive(Serialize)]
            struct Listing<'a> {
                snapshot: &'a SnapshotRecord,
                nodes: &'a [Node],
            }
            return self.json(&Listing { snapshot, nodes });
        }
        for node in nodes {
            let kind = match node.kind {
                NodeKind::Dir => 'd',
                NodeKind::File => '-',
                NodeKind::Symlink => 'l',
                NodeKind::Hardlink => 'h',
                NodeKind::Fifo => 'p',
            };
            let mut line = format!(
                "{kind} {:04o} {:>10} {} /{}",
                node.mode,
                node.size,
                time(node.mtime_ns / 1_000_000_000),
                node.path.escaped()
            );
            if let Some(target) = &node.target {
                line.push_str(&format!(" -> {}", target.escaped()));
            }
            outln!("{line}");
        }
    }

    pub fn plan(&self, plan: &RestorePlan) {
        if self.json {
            return self.json(plan);
        }
        outln!("volumes to read, in order:");
        for v in &plan.volumes {
            outln!(
                "  #{:<6} {:<28} {:>10}  set {:<5} {}{}",
                v.sequence,
                v.name,
                bytes(v.bytes),
                v.volume_set,
                if v.state == "missing" {
                    "MISSING"
                } else {
                    &v.state
                },
                v.location
                    .as_deref()
                    .map(|at| format!("  at: {at}"))
                    .unwrap_or_default()
            );
        }
        let total: u64 = plan.volumes.iter().map(|v| v.bytes).sum();
        outln!("{} volumes, {} to read", plan.volumes.len(), bytes(total));
        if plan.unknown_chunks > 0 {
            outln!(
                "{} chunks are in no known volume: those files will be reported damaged",
                plan.unknown_chunks
            );
        }
    }

    pub fn restore(&self, report: &RestoreReport) {
        if self.json {
            return self.json(report);
        }
        restore_problems(&report.problems);
        read_notes(&report.retried, &report.from_copies);
        if self.quiet {
            return;
        }
        outln!(
            "restored {} files ({}) and {} other entries from {} volumes",
            report.files,
            bytes(report.bytes),
            report.other,
            report.volumes_read.len()
        );
        not_exact(&report.problems);
        if !report.problems.has_damage() && self.verbose > 0 {
            outln!("every restored file matches its recorded BLAKE3");
        }
    }

    pub fn rebuild(&self, summary: &crate::rebuild::RebuildSummary, dir: &std::path::Path) {
        if self.json {
            return self.json(summary);
        }
        for problem in &summary.problems {
            errln!("tapevault: warning: {problem}");
        }
        if !self.quiet {
            outln!(
                "catalog {} rebuilt: {} volumes, {} snapshots",
                dir.display(),
                summary.volumes.len(),
                summary.snapshots
            );
        }
    }

    pub fn verify(&self, report: &crate::verify::VerifyReport) {
        if self.json {
            return self.json(report);
        }
        volume_problems(report);
        if !self.quiet {
            outln!(
                "verified {} volumes ({}): {} missing, {} damaged{}",
                report.volumes_ok,
                bytes(report.bytes_checked),
                report.missing.len(),
                report.damaged.len(),
                repaired_count(&report.repaired)
            );
        }
    }

    pub fn deep_verify(&self, report: &crate::verify::DeepReport) {
        if self.json {
            return self.json(report);
        }
        volume_problems(&report.volumes);
        for blob in &report.damaged_blobs {
            errln!(
                "tapevault: damage: {} blob {}: {}",
                format!("{:?}", blob.kind).to_lowercase(),
                &blob.chunk[..16],
                blob.reason
            );
        }
        for tree in &report.damaged_trees {
            errln!("tapevault: damage: {tree}");
        }
        for file in &report.damaged_files {
            errln!(
                "tapevault: damaged: snapshot {} /{}: {} (bytes {})",
                &file.snapshot[..8],
                file.path,
                file.reason,
                ranges(&file.missing)
            );
        }
        for chunk in &report.damaged_chunks {
            errln!(
                "tapevault: damage: chunk {} is used by {} files: {}",
                &chunk.chunk[..16],
                chunk.files.len(),
                chunk.reason
            );
        }
        for w in report.warnings.iter().chain(&report.from_copies) {
            errln!("tapevault: warning: {w}");
        }
        if !self.quiet {
            outln!(
                "verified {} volumes ({}), {} blobs, {} files in {} snapshots: {} volumes missing, \
                 {} damaged{}, {} blobs and {} files damaged",
                report.volumes.volumes_ok,
                bytes(report.volumes.bytes_checked),
                report.blobs_ok,
                report.files_checked,
                report.snapshots_checked,
                report.volumes.missing.len(),
                report.volumes.damaged.len(),
                repaired_count(&report.volumes.repaired),
                report.damaged_blobs.len(),
                report.damaged_files.len()
            );
        }
    }

    pub fn drill(&self, report: &crate::drill::DrillReport) {
        if self.json {
            return self.json(report);
        }
        if let Some(rebuild) = &report.rebuild {
            for problem in &rebuild.problems {
                errln!("tapevault: warning: rebuild: {problem}");
            }
        }
        restore_problems(&report.problems);
        read_notes(&report.retried, &report.from_copies);
        if self.quiet {
            return;
        }
        outln!(
            "drill of snapshot {} ({}, seed {}): {}",
            &report.snapshot[..8],
            report.mode,
            report.seed,
            report.outcome.to_uppercase()
        );
        if let Some(seconds) = report.rebuild_seconds {
            outln!("catalog     rebuilt from the vault alone in {seconds:.1} s");
        }
        outln!(
            "checked     {} of {} selected files, {} (snapshot: {} files, {})",
            report.files_checked,
            report.files_selected,
            bytes(report.bytes_checked),
            report.files_in_snapshot,
            bytes(report.bytes_in_snapshot)
        );
        outln!("volumes     {} read", report.volumes_read.len());
        if let Some(first) = report.first_byte_seconds {
            outln!("first byte  after {first:.2} s");
        }
        outln!(
            "restore     {:.1} s at {}/s",
            report.restore_seconds,
            bytes(report.bytes_per_second as u64)
        );
        if let Some(rto) = report.projected_full_restore_seconds {
            outln!(
                "full restore projected at {} (RTO estimate at this rate)",
                humantime::format_duration(std::time::Duration::from_secs(rto.ceil() as u64))
            );
        }
        not_exact(&report.problems);
    }

    pub fn drill_history(&self, drills: &[crate::catalog::DrillRecord]) {
        if self.json {
            #[derive(Serialize)]
            struct History<'a> {
                drills: &'a [crate::catalog::DrillRecord],
            }
            return self.json(&History { drills });
        }
        outln!(
            "{:<20}  {:<8}  {:<9}  {:>7}  {:>10}  {:>7}  {:>8}  mode",
            "started",
            "snapshot",
            "outcome",
            "files",
            "bytes",
            "damaged",
            "seconds"
        );
        for d in drills {
            outln!(
                "{:<20}  {:<8}  {:<9}  {:>7}  {:>10}  {:>7}  {:>8.1}  {}",
                time(d.started),
                &d.snapshot[..8.min(d.snapshot.len())],
                d.outcome,
                d.files,
                bytes(d.bytes),
                d.damaged,
                d.seconds,
                d.mode
            );
        }
    }

    pub fn paper(&self, paper: &str) {
        if self.json {
            #[derive(Serialize)]
            struct Paper<'a> {
                paper: &'a str,
            }
            return self.json(&Paper { paper });
        }
        out!("{paper}");
    }

    pub fn key(&self, summary: &crate::keys::KeySummary) {
        if self.json {
            return self.json(summary);
        }
        if let Some(rebuilt) = &summary.rebuilt {
            for problem in &rebuilt.problems {
                errln!("tapevault: warning: rebuild: {problem}");
            }
        }
        if self.quiet {
            return;
        }
        outln!("new passphrase set for vault {}", summary.vault_id);
        outln!(
            "key         {} (fingerprint, unchanged)",
            summary.fingerprint
        );
        outln!("key label   {} written to the vault", summary.key_label);
        match &summary.rebuilt {
            Some(r) => outln!(
                "catalog     {} rebuilt: {} volumes, {} snapshots",
                summary.catalog,
                r.volumes.len(),
                r.snapshots
            ),
            None => outln!("catalog     {} updated", summary.catalog),
        }
        for note in &summary.notes {
            outln!("note: {note}");
        }
    }

    pub fn forget(&self, report: &crate::prune::ForgetReport) {
        if self.json_or_warnings(report, &report.warnings) {
            return;
        }
        let mut group = None;
        for d in &report.decisions {
            if group != Some(&d.group) {
                outln!("{}", d.group);
                group = Some(&d.group);
            }
            let time = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.time.max(0) as u64),
            );
            outln!(
                "  {}  {}  {time}  {}",
                if d.keep { "keep  " } else { "forget" },
                &d.id[..8],
                d.reasons.join(", ")
            );
        }
        outln!(
            "{} {} snapshots, kept {}{}",
            if report.dry_run {
                "would forget"
            } else {
                "forgot"
            },
            report.removed,
            report.kept,
            dry_run_note(report.dry_run)
        );
    }

    pub fn consolidate(&self, report: &crate::prune::ConsolidateReport) {
        if self.json_or_warnings(report, &[&report.unreadable[..], &report.notes].concat()) {
            return;
        }
        for v in &report.volumes {
            outln!(
                "{} {} (#{}): {} of {} still used",
                if report.dry_run {
                    "would rewrite"
                } else {
                    "rewrote"
                },
                v.name,
                v.sequence,
                bytes(v.live_bytes),
                bytes(v.bytes)
            );
        }
        for name in &report.written {
            outln!("wrote {name}");
        }
        outln!(
            "{} {} from {} volumes{}; run prune to delete them",
            if report.dry_run {
                "would copy"
            } else {
                "copied"
            },
            bytes(report.bytes_copied),
            report.volumes.len(),
            dry_run_note(report.dry_run)
        );
    }

    pub fn copy(&self, report: &crate::copy::CopyReport) {
        if self.json {
            return self.json(report);
        }
        // Damage goes to stdout with the rest: the report is the product, not a log line.
        for problem in &report.problems {
            outln!("NOT COPIED {}: {}", problem.volume, problem.message);
        }
        if self.quiet {
            return;
        }
        for name in &report.labels_and_records {
            outln!("copied {name}");
        }
        for volume in &report.copied {
            outln!("copied {} ({})", volume.name, bytes(volume.bytes));
        }
        outln!(
            "copied {} volumes ({}) from {} to {}; {} already there, {} not copied",
            report.copied.len(),
            bytes(report.bytes),
            report.from,
            report.to,
            report.already_there,
            report.problems.len()
        );
    }

    pub fn prune(&self, report: &crate::prune::PruneReport) {
        if self.json_or_warnings(report, &report.warnings) {
            return;
        }
        for v in &report.volumes {
            outln!(
                "{} {} (#{}, {})",
                if report.dry_run {
                    "would delete"
                } else {
                    "deleted"
                },
                v.name,
                v.sequence,
                bytes(v.bytes)
            );
        }
        for v in &report.locked {
            outln!(
                "kept {} (#{}, {}): no snapshot needs it, but it is {}; prune again after that",
                v.name,
                v.sequence,
                bytes(v.bytes),
                v.lock
            );
        }
        outln!(
            "{} {} in {} volumes; {} volumes kept{}",
            if report.dry_run {
                "would free"
            } else {
                "freed"
            },
            bytes(report.bytes_freed),
            report.volumes.len(),
            report.volumes_kept + report.locked.len(),
            dry_run_note(report.dry_run)
        );
    }

    pub fn volumes(
        &self,
        volumes: &[VolumeRow],
        listing: &Listing,
        copies: &std::collections::BTreeMap<u64, Vec<String>>,
        notes: &std::collections::BTreeMap<u64, String>,
    ) {
        let abandoned: Vec<&String> = listing.partial.iter().collect();
        let missing: Vec<&VolumeRow> = volumes
            .iter()
            .filter(|v| !listing.sealed.contains(&v.name))
            .collect();
        if self.json {
            #[derive(Serialize)]
            struct Volumes<'a> {
                volumes: &'a [VolumeRow],
                missing: Vec<&'a str>,
                abandoned: Vec<&'a String>,
                copies: Vec<Copies<'a>>,
                notes: Vec<Note<'a>>,
            }
            #[derive(Serialize)]
            struct Note<'a> {
                name: &'a str,
                note: &'a str,
            }
            #[derive(Serialize)]
            struct Copies<'a> {
                name: &'a str,
                vaults: &'a [String],
            }
            return self.json(&Volumes {
                volumes,
                missing: missing.iter().map(|v| v.name.as_str()).collect(),
                abandoned,
                copies: volumes
                    .iter()
                    .filter_map(|v| {
                        Some(Copies {
                            name: &v.name,
                            vaults: copies.get(&v.sequence)?,
                        })
                    })
                    .collect(),
                notes: volumes
                    .iter()
                    .filter_map(|v| {
                        Some(Note {
                            name: &v.name,
                            note: notes.get(&v.sequence)?,
                        })
                    })
                    .collect(),
            });
        }
        outln!(
            "{:<7} {:<28} {:<9} {:>10}  {:<5} created",
            "seq",
            "name",
            "state",
            "size",
            "set"
        );
        for v in volumes {
            let state = if missing.iter().any(|m| m.name == v.name) {
                "MISSING"
            } else {
                v.state.as_str()
            };
            outln!(
                "{:<7} {:<28} {:<9} {:>10}  {:<5} {}{}",
                v.sequence,
                v.name,
                state,
                bytes(v.bytes),
                v.volume_set,
                time(v.created),
                copies
                    .get(&v.sequence)
                    .map(|to| format!("  copies: {}", to.join(", ")))
                    .unwrap_or_default()
                    + &notes
                        .get(&v.sequence)
                        .map(|note| format!("  at: {note}"))
                        .unwrap_or_default()
            );
        }
        for name in abandoned {
            outln!("{:<7} {:<28} {:<9}", "-", name, "abandoned");
        }
    }
}

fn ranges(missing: &[(u64, u64)]) -> String {
    let parts: Vec<String> = missing.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    parts.join(", ")
}

/// Volume-level findings of a verify, one line each on stderr.
fn volume_problems(report: &crate::verify::VerifyReport) {
    for p in report.missing.iter().chain(&report.damaged) {
        errln!(
            "tapevault: damage: volume #{} {} ({}): {}",
            p.sequence,
            p.name,
            p.volume_id,
            p.reason
        );
    }
    for name in &report.abandoned {
        errln!("tapevault: warning: {name} is an abandoned, unfinished volume (never trusted)");
    }
    for name in &report.extra {
        errln!("tapevault: warning: {name} is in the vault but not in the catalog");
    }
    repairs(&report.repaired);
}

/// What a restore or drill could not do exactly, one line each on stderr.
fn restore_problems(problems: &crate::restore::RestoreProblems) {
    for e in &problems.volume_errors {
        errln!("tapevault: damage: {e}");
    }
    for d in &problems.damaged {
        let kept = d
            .kept_as
            .as_deref()
            .map(|k| format!("; incomplete copy left as /{k}"))
            .unwrap_or_default();
        errln!(
            "tapevault: damaged: /{}: {} (bytes {}){kept}",
            d.path,
            d.reason,
            ranges(&d.missing)
        );
    }
    for r in &problems.refused {
        errln!("tapevault: refused: /{}: {}", r.path, r.reason);
    }
    for w in &problems.warnings {
        errln!("tapevault: warning: {w}");
    }
    repairs(&problems.repaired);
}

fn dry_run_note(dry_run: bool) -> &'static str {
    if dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    }
}

/// ", N repaired by parity" when parity repaired volumes.
fn repaired_count(repaired: &[crate::parity::Repair]) -> String {
    let volumes: std::collections::BTreeSet<&str> =
        repaired.iter().map(|r| r.volume.as_str()).collect();
    if volumes.is_empty() {
        String::new()
    } else {
        format!(", {} repaired by parity", volumes.len())
    }
}

/// Reads that needed a second try or a copy: the data is whole, one line each on stderr.
fn read_notes(retried: &[String], from_copies: &[String]) {
    for retried in retried {
        errln!("tapevault: retried: {retried}");
    }
    for note in from_copies {
        errln!("tapevault: from a copy: {note}");
    }
}

/// Damage that parity rebuilt, one line each on stderr.
fn repairs(repaired: &[crate::parity::Repair]) {
    for r in repaired {
        errln!(
            "tapevault: repaired: volume {} bytes {}..{} rebuilt from parity; the medium is failing",
            r.volume,
            r.offset,
            r.offset + r.length
        );
    }
}

/// The closing line of a restore or drill that was not exact.
fn not_exact(problems: &crate::restore::RestoreProblems) {
    if problems.has_damage() {
        outln!(
            "NOT EXACT: {} files damaged, {} entries refused (listed above)",
            problems.damaged.len(),
            problems.refused.len()
        );
    }
}
