//! tapevault: tape-style offsite backup.
//!
//! Glossary: a **vault** holds **volumes** (tar streams sized for a medium);
//! a volume holds a plaintext **label**, **packs** of encrypted **blobs**, and
//! an encrypted **index**. A **chunk** is a content-defined piece of a file;
//! sealed, it is a blob. A **snapshot** is one backup run: its **nodes**
//! (files, folders, links) are encoded into tree blobs. The **catalog** is a
//! local SQLite cache of what is where.
//!
//! ```text
//! backup:  source ─▶ chunk ─▶ id + dedup ─▶ compress ─▶ crypto ─▶ pack ─▶ volume ─▶ vault
//!                                    └─ catalog (SQLite)
//! restore: plan (media order) ─▶ volume ─▶ pack ─▶ crypto ─▶ compress ─▶ target (checked)
//! ```
//!
//! The CLI (`cli`) is a thin layer over [`backup::backup`], [`restore::restore`]
//! and friends, which take options and return summaries and reports.
#![deny(unsafe_code)]
// Output goes through `console`: the std macros panic when a write fails.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod backup;
pub mod catalog;
pub mod chunk;
pub mod cli;
pub mod compress;
pub(crate) mod console;
pub mod copy;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod ids;
pub mod keys;
pub mod lock;
pub mod model;
pub mod pack;
pub mod paper;
pub mod parity;
pub mod progress;
pub mod prune;
pub mod rebuild;
pub mod records;
pub mod restore;
pub mod retention;
pub mod source;
pub mod tape;
pub mod target;
pub mod vault;
pub mod verify;
pub mod volume;

pub use error::{Error, ErrorKind, Result};
