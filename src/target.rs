//! The safe restore target: every creation is relative to a directory handle.
//!
//! Paths from a snapshot are never joined into strings. Each component is
//! checked (not empty, not `.` or `..`, no NUL, no `/`), directories are
//! opened one component at a time with `O_NOFOLLOW | O_DIRECTORY`, files are
//! created under a temporary name with `O_EXCL | O_NOFOLLOW` and renamed only
//! when complete, so a symlink planted or raced into the tree can never
//! redirect a write outside the target. Does not know about snapshots' storage.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::io;

/// Why a name from a snapshot is refused.
pub fn unsafe_component(component: &[u8]) -> Option<&'static str> {
    if component.is_empty() {
        Some("empty name")
    } else if component == b"." || component == b".." {
        Some("dot name")
    } else if component.contains(&0) {
        Some("NUL in name")
    } else if component.contains(&b'/') {
        Some("slash in name")
    } else {
        None
    }
}

/// The root of a restore, opened without following a symlink.
pub struct Target {
    root: OwnedFd,
    /// Directory handles by path: chunks arrive in media order, not folder order, so
    /// one restore touches the same folders again and again.
    cached: std::collections::HashMap<Vec<u8>, OwnedFd>,
}

/// Directory handles kept open at most (well under the usual limit of 1024 fds).
const CACHED_DIRS: usize = 128;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Target {
    /// Open (creating if needed) the target folder; refuses a symlink.
    pub fn open(path: &std::path::Path) -> io::Result<Target> {
        match std::fs::create_dir_all(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let root = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Target {
            root,
            cached: std::collections::HashMap::new(),
        })
    }

    /// The same root for another thread, with its own folder handles.
    pub fn try_clone(&self) -> io::Result<Target> {
        Ok(Target {
            root: self.root.try_clone()?,
            cached: std::collections::HashMap::new(),
        })
    }

    /// True when the target's filesystem is mounted read-only.
    pub fn is_read_only(&self) -> io::Result<bool> {
        let flags = rustix::fs::fstatvfs(&self.root)?.f_flag;
        Ok(flags.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    }

    /// True when the target holds nothing yet.
    pub fn is_empty(&self) -> io::Result<bool> {
        let dir = rustix::fs::Dir::read_from(&self.root)?;
        for entry in dir {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A handle on the directory at `dir` (components joined by `/`, empty = root).
    pub fn dir(&mut self, dir: &[u8]) -> io::Result<OwnedFd> {
        if dir.is_empty() {
            return self.root.try_clone();
        }
        if let Some(fd) = self.cached.get(dir) {
            return fd.try_clone();
        }
        // Walk from the deepest folder already open, one checked component at a time.
        let mut start = 0;
        let mut current = self.root.try_clone()?;
        for (at, _) in dir.iter().enumerate().filter(|(_, b)| **b == b'/').rev() {
            if let Some(fd) = self.cached.get(&dir[..at]) {
                current = fd.try_clone()?;
                start = at + 1;
                break;
            }
        }
        for component in dir[start..].split(|b| *b == b'/') {
            if unsafe_component(component).is_some() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "unsafe name"));
            }
            current = rustix::fs::openat(&current, component, DIR_FLAGS, Mode::empty())?;
        }
        if self.cached.len() == CACHED_DIRS {
            self.cached.clear();
        }
        self.cached.insert(dir.to_vec(), current.try_clone()?);
        Ok(current)
    }
}

/// What is at `name` in `dir`, without following a symlink.
pub fn lookup(dir: impl AsFd, name: &[u8]) -> io::Result<Option<rustix::fs::FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(rustix::fs::FileType::from_raw_mode(stat.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Make directory `name` in `dir`; an existing directory is kept, a symlink or file is
/// replaced only when `overwrite` (never followed).
pub fn make_dir(dir: impl AsFd, name: &[u8], overwrite: bool) -> io::Result<()> {
    let dir = dir.as_fd();
    match lookup(dir, name)? {
        Some(rustix::fs::FileType::Directory) => Ok(()),
        Some(_) if overwrite => {
            remove_file(dir, name)?;
            Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?)
        }
        Some(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a folder",
        )),
        None => Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?),
    }
}

/// Create a new empty file under a temporary name; returns the open file and the name.
pub fn create_temp(dir: impl AsFd, name: &[u8]) -> io::Result<(std::fs::File, Vec<u8>)> {
    let dir = dir.as_fd();
    loop {
        let tag = crate::ids::to_hex(&crate::ids::random_bytes::<4>());
        let mut temp = b".tv-".to_vec();
        temp.extend_from_slice(tag.as_bytes());
        temp.push(b'-');
        temp.extend_from_slice(&name[..name.len().min(200)]);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, &temp[..], flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok((std::fs::File::from(fd), temp)),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Open an existing file of ours for writing (and reading) or reading, never through a
/// symlink.
pub fn open_file(dir: impl AsFd, name: &[u8], write: bool) -> io::Result<std::fs::File> {
    let access = if write {
        // Read too: a place written ahead of the whole-file hash is read back alone.
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    let fd = rustix::fs::openat(
        dir,
        name,
        access | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Remove a file or symlink from `dir` (never a folder; a symlink itself, not its target).
pub fn remove_file(dir: impl AsFd, name: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Rename within one directory, replacing a file or symlink (never following it).
pub fn rename(dir: impl AsFd, from: &[u8], to: &[u8]) -> io::Result<()> {
    let dir = dir.as_fd();
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// The entry `name` would have under the temporary name of an interrupted restore
/// (`.tv-XXXXXXXX-NAME`, `.tv-link-NAME`, `.tv-new-NAME`), if `entry` is one.
fn temp_for(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(b".tv-")?;
    if let Some(name) = rest
        .strip_prefix(b"link-")
        .or_else(|| rest.strip_prefix(b"new-"))
    {
        return Some(name);
    }
    let (tag, name) = (rest.get(..8)?, rest.get(8..)?.strip_prefix(b"-")?);
    tag.iter().all(u8::is_ascii_hexdigit).then_some(name)
}

/// Remove what an interrupted restore left in `dir` under temporary names of the
/// entries in `names` (never following symlinks). Returns how many were removed.
pub fn remove_stale_temps(
    dir: impl AsFd,
    names: &std::collections::HashSet<Vec<u8>>,
) -> io::Result<usize> {
    let dir = dir.as_fd();
    let mut removed = 0;
    let mut stale = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if temp_for(name).is_some_and(|of| names.contains(of)) {
            stale.push(name.to_vec());
        }
    }
    for name in stale {
        let kind = rustix::fs::statat(dir, &name[..], AtFlags::SYMLINK_NOFOLLOW)?;
        if rustix::fs::FileType::from_raw_mode(kind.st_mode) != rustix::fs::FileType::Directory {
            remove_file(dir, &name)?;
            removed += 1;
        }
    }
    Ok(removed)
}
