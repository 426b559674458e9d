//! THE exit-code table: every command's outcome maps here and nowhere else.

use crate::error::ErrorKind;

/// Everything worked.
pub const OK: u8 = 0;
/// An error; nothing half-done is trusted.
pub const ERROR: u8 = 1;
/// The command line was wrong.
pub const USAGE: u8 = 2;
/// Done, with warnings (some sources skipped, attributes not applied).
pub const WARNINGS: u8 = 3;
/// Damage found: some data is missing or wrong; the report names it.
pub const DAMAGE: u8 = 4;
/// Wrong key or passphrase.
pub const WRONG_KEY: u8 = 5;
/// The vault or catalog is in use by another run.
pub const BUSY: u8 = 6;

/// The exit code of a failed command.
pub fn for_error(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::WrongKey => WRONG_KEY,
        ErrorKind::Busy => BUSY,
        _ => ERROR,
    }
}

/// `code`, made at least as bad as `floor` by something that failed beside the
/// command's own work (the metrics file, the report on stdout): a success becomes
/// `floor`, and an error or damage already found is never hidden behind it.
pub fn at_least(code: u8, floor: u8) -> u8 {
    let rank = |code| match code {
        OK => 0,
        WARNINGS => 1,
        _ => 2,
    };
    if rank(floor) > rank(code) {
        floor
    } else {
        code
    }
}

/// The exit code of a finished command's report.
pub fn for_report(damage: bool, warnings: bool) -> u8 {
    if damage {
        DAMAGE
    } else if warnings {
        WARNINGS
    } else {
        OK
    }
}
