//! The one integration-test binary. Each module covers one area; tests named
//! `tNN_…` implement case TNN of shared/RELIABILITY.md.

mod util;

/// Round trips of every entry kind, dedup, include/exclude, multi-volume layout.
mod backup_restore;
/// Man pages are current; fixtures from older builds still restore.
mod compat;
/// Crashes, failing media and concurrent runs.
mod crash;
/// Damage to volumes is detected, named precisely and never blocks the rest.
mod damage;
/// The night the site burned: deep verify, drills, rebuilds, paper keys.
mod disaster;
/// One test per exit code and bad-input path.
mod exit_codes;
/// Parsers of media bytes against random and spliced input.
mod hostile;
/// Progress, --json shapes, profiles, metrics, shipped examples, exit-code precedence.
mod operator;
/// Reed-Solomon parity inside volumes: bursts repaired, or named exactly.
mod parity;
/// What an attacker or a curious finder of a cartridge sees.
mod privacy;
/// Hostile snapshots and targets: restore never writes outside its target.
mod restore_safety;
/// Forget and prune: nothing a kept snapshot needs is ever deleted.
mod retention;
/// Object storage vaults and copies between vaults, against a real S3 server.
mod s3;
/// Tape media through the emulated library, and the stream vault.
mod tape;
/// The promises every vault kind keeps, checked on each kind.
mod vaults;
