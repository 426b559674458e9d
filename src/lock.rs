//! Run locks: one writer per catalog and per vault, held by the kernel.
//!
//! `flock` on a lock file: the kernel drops it when the holder dies (kill -9, power
//! cut), so a stale lock is never left to break by hand, and a stopped or
//! suspended holder keeps it (no lease to lose while SIGSTOPped: restic #3569).
//! On NFSv4 the server holds it for the client host, so a holder on another host
//! is seen the same way. The file names the holder for the message.

use crate::error::{Error, ErrorKind, Result};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Holds a run lock until dropped.
pub struct RunLock {
    _file: std::fs::File,
}

/// Take the exclusive lock at `path`, or fail at once naming the holder (exit 6).
pub fn acquire(path: &Path) -> Result<RunLock> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("cannot open lock", path, e))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(Error::new(
            ErrorKind::Busy,
            format!(
                "the vault is in use by another run ({}; lock {})",
                holder.trim(),
                path.display()
            ),
        ));
    }
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "pid {} on {host} since {since}", std::process::id());
    let _ = file.flush();
    Ok(RunLock { _file: file })
}
