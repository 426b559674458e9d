//! Progress events from long operations; the CLI decides whether and how to show them.
//!
//! The library reports what happens (bytes done, files finished, volumes
//! written or read) to an [`Observer`]; it never draws anything itself.
//! Observers are called from worker threads, so they must be cheap.

use crate::model::PathBytes;
use crate::source::Origin;

/// Something an operation did.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The work ahead, as far as known: files and bytes (the bar's total).
    Planned {
        /// Files to process.
        files: u64,
        /// Bytes to process.
        bytes: u64,
    },
    /// Bytes processed (read from the source, written to the target, or checked).
    Bytes(u64),
    /// A file finished; `origin` says how a backup treated it.
    File {
        /// The file's path.
        path: &'a PathBytes,
        /// New, changed or unchanged (backup), `New` otherwise.
        origin: Origin,
    },
    /// A volume is being written.
    Writing(&'a str),
    /// A volume was sealed.
    Sealed {
        /// The volume's name.
        name: &'a str,
        /// Its size.
        bytes: u64,
        /// When it closed because its index was full, not its medium: the blobs listed.
        index_full_at: Option<u64>,
    },
    /// A volume is being read.
    Reading(&'a str),
}

/// Receives [`Event`]s.
pub trait Observer: Sync {
    /// One event; called from any thread.
    fn on(&self, event: Event<'_>);
}

/// Shows nothing.
pub struct Silent;

impl Observer for Silent {
    fn on(&self, _: Event<'_>) {}
}
