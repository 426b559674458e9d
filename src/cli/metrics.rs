//! `--metrics-file`: Prometheus text format for node_exporter's textfile collector.
//!
//! Written after backup, verify and drill, whether they succeeded or not (a
//! failed run is exactly what an alert needs to see), atomically so that the
//! collector never reads half a file. Use one file per command and vault.

use crate::error::Result;
use std::fmt::Write;

/// What a run did, in the units the metrics report.
#[derive(Debug, Default)]
pub struct RunMetrics {
    /// Bytes backed up (logical), or checked.
    pub bytes: u64,
    /// Files backed up or checked.
    pub files: u64,
    /// Volumes written or read.
    pub volumes: u64,
    /// Warnings (exit 3 conditions).
    pub warnings: u64,
    /// Damage found: files, blobs or volumes (exit 4 conditions).
    pub damage: u64,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text for one finished run.
pub fn render(command: &str, vault: &str, exit_code: u8, seconds: f64, m: &RunMetrics) -> String {
    let labels = format!(
        "command=\"{}\",vault=\"{}\"",
        escape(command),
        escape(vault)
    );
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let success = u8::from(exit_code == 0 || exit_code == 3);
    let rows: [(&str, &str, String); 9] = [
        ("last_run_timestamp_seconds", "When the last run ended (seconds since the epoch).", ended.to_string()),
        ("last_run_success", "1 if the last run ended with exit 0 or 3, else 0.", success.to_string()),
        ("last_run_exit_code", "Exit status of the last run (0 ok, 1 error, 2 usage, 3 warnings, 4 damage, 5 wrong key, 6 busy).", exit_code.to_string()),
        ("last_run_duration_seconds", "How long the last run took.", format!("{seconds:.3}")),
        ("last_run_bytes", "Bytes backed up or checked by the last run.", m.bytes.to_string()),
        ("last_run_files", "Files backed up or checked by the last run.", m.files.to_string()),
        ("last_run_volumes", "Volumes written or read by the last run.", m.volumes.to_string()),
        ("last_run_warnings", "Warnings of the last run.", m.warnings.to_string()),
        ("last_run_damage", "Damaged files, blobs or volumes found by the last run.", m.damage.to_string()),
    ];
    let mut text = String::new();
    for (name, help, value) in rows {
        let _ = writeln!(text, "# HELP tapevault_{name} {help}");
        let _ = writeln!(text, "# TYPE tapevault_{name} gauge");
        let _ = writeln!(text, "tapevault_{name}{{{labels}}} {value}");
    }
    text
}

/// Write the metrics of a run to `path`, whole or not at all.
pub fn write(
    path: &std::path::Path,
    command: &str,
    vault: &str,
    exit_code: u8,
    seconds: f64,
    m: &RunMetrics,
) -> Result<()> {
    super::write_atomically(
        path,
        render(command, vault, exit_code, seconds, m).as_bytes(),
    )
}
