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
    _held: Box<dyn Send>,
}

impl RunLock {
    /// A lock released when `guard` is dropped (an object store's lock object).
    pub fn held(guard: impl Send + 'static) -> RunLock {
        RunLock {
            _held: Box::new(guard),
        }
    }
}

/// Who holds a lock, for the message another run prints: `pid N on HOST since T`.
pub fn holder_line() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!("pid {} on {host} since {since}", std::process::id())
}

/// True when a [`holder_line`] names a process on this host that no longer exists.
pub fn holder_is_dead_here(holder: &str) -> bool {
    let mut words = holder.split_whitespace();
    let (Some("pid"), Some(pid), Some("on"), Some(host)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return false;
    };
    let this_host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let Some(pid) = pid.parse().ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    host == this_host && rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
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
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", holder_line());
    let _ = file.flush();
    Ok(RunLock::held(file))
}

/// An in-process mutex, taken even if a thread panicked while holding it: the state
/// behind it (a drive's position, a stream's place) is still what the next caller must see.
pub(crate) fn guard<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
