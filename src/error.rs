//! The library's one error type.
//!
//! Every failure that stops an operation is an [`Error`] with a [`ErrorKind`];
//! the CLI maps kinds onto exit codes in one table (`cli::exit`). Warnings and
//! damage are not errors: they travel in the operation's report.
//! Does not know about exit codes, terminals or clap.

use std::path::{Path, PathBuf};

/// What class of failure this is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request itself is wrong (bad argument, ambiguous snapshot id).
    Usage,
    /// An I/O or environment failure; nothing half-done is trusted.
    Io,
    /// The passphrase or key does not open this vault.
    WrongKey,
    /// Another run holds the vault or catalog.
    Busy,
    /// Bytes on media or in the catalog are not what they must be.
    Corrupt,
    /// Something needed (vault, catalog, volume, snapshot) does not exist.
    Missing,
    /// The medium holds it but cannot give it now (an object in a cold storage class):
    /// not damage, and not lost.
    Offline,
    /// A cartridge failed while a volume was written on it (end of medium before the
    /// index, a write error): that volume is abandoned; another cartridge may take it.
    MediumFailed,
}

/// A located failure: the message says what happened and, where useful, what to do.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a one-line message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, message)
    }

    /// Corrupt media or catalog content.
    pub fn corrupt(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corrupt, message)
    }

    /// Something needed is missing.
    pub fn missing(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Missing, message)
    }

    /// An I/O failure with the path it happened on.
    pub fn io(what: &str, path: &Path, err: std::io::Error) -> Error {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::Missing
        } else {
            ErrorKind::Io
        };
        Error::new(
            kind,
            format!("{what} {}: {}", path.display(), io_reason(&err)),
        )
    }

    /// Prefix the message with more context, keeping the kind.
    pub fn context(self, what: impl std::fmt::Display) -> Error {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }
}

/// A failed write into a volume: the error a sink raised (its kind kept), else an I/O error.
pub fn volume_write_error(err: std::io::Error) -> Error {
    let raised = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .map(|ours| Error::new(ours.kind, ours.message.clone()));
    raised.unwrap_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write volume: {}", io_reason(&err)),
        )
    })
}

/// A short reason for an I/O error, with advice for the ones operators meet.
pub fn io_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => {
            "no space left on device (free space, then run again)".into()
        }
        _ => err.to_string(),
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Error {
        let kind = match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                ErrorKind::Busy
            }
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                ErrorKind::Corrupt
            }
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("catalog: {err}"))
    }
}

/// An I/O error on a path, for `map_err`.
pub fn at(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |err| Error::io(what, &path, err)
}
