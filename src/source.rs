//! Walking the sources (stage 1) and deciding what must be read (stage 2).
//!
//! walkdir over each source, one filesystem by default, excludes applied
//! before descending. Every entry becomes a [`Node`] with its metadata; a
//! regular file either reuses its parent-snapshot chunks (size, mtime, ctime
//! and inode unchanged, and every chunk still trusted) or is handed on to be
//! read. Ancestors of each source are recorded too, so restore can recreate
//! them with their attributes. Unreadable entries become warnings, never
//! errors. Does not know about chunks' storage, keys or media.

use crate::error::{Error, Result};
use crate::model::{ChangeKey, Node, NodeKind, PathBytes};
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What the walk found, in walk order.
pub enum Found {
    /// Complete without reading content (dirs, links, unchanged files).
    Ready(Node, Origin),
    /// A regular file whose content must be read.
    Read(PathBuf, Node, Origin),
    /// Something skipped, with the reason.
    Warning(String),
}

/// How a file relates to the parent snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Not a regular file, or no parent snapshot had it.
    New,
    /// The parent had it, but it changed.
    Changed,
    /// The parent had it unchanged; chunks reused.
    Unchanged,
}

/// Walk options.
pub struct WalkOptions {
    /// Stay on each source's filesystem.
    pub one_file_system: bool,
    /// Glob patterns; an entry matching on its full path or its name is skipped.
    pub excludes: Vec<glob::Pattern>,
}

/// The path of a node: absolute path bytes without the leading `/`.
pub fn node_path(path: &Path) -> PathBytes {
    let bytes = path.as_os_str().as_bytes();
    PathBytes(bytes.strip_prefix(b"/").unwrap_or(bytes).to_vec())
}

fn base_node(path: &Path, meta: &std::fs::Metadata, kind: NodeKind) -> Node {
    Node {
        path: node_path(path),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        size: 0,
        hash: None,
        chunks: Vec::new(),
        target: None,
        change: None,
    }
}

/// The change key of a file's metadata.
pub fn change_key(meta: &std::fs::Metadata) -> ChangeKey {
    ChangeKey {
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        ino: meta.ino(),
        dev: meta.dev(),
    }
}

/// Make sources absolute and drop any that lie inside another.
pub fn normalise_sources(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for source in sources {
        let absolute = std::path::absolute(source)
            .map_err(|e| Error::io("cannot resolve source", source, e))?;
        let clean: PathBuf = absolute.components().collect();
        std::fs::symlink_metadata(&clean)
            .map_err(|e| Error::io("cannot read source", &clean, e))?;
        out.push(clean);
    }
    out.sort();
    out.dedup();
    let all = out.clone();
    out.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(out)
}

/// Walk `sources` and hand every finding to `emit`.
///
/// `parent` looks up the parent snapshot's node for a path, returning it only if all
/// its chunks are still trusted.
pub fn walk(
    sources: &[PathBuf],
    options: &WalkOptions,
    parent: &mut dyn FnMut(&PathBytes) -> Result<Option<Node>>,
    emit: &mut dyn FnMut(Found) -> Result<()>,
) -> Result<()> {
    let mut ancestors_done: HashSet<PathBuf> = HashSet::new();
    let mut link_groups: HashMap<(u64, u64), PathBytes> = HashMap::new();
    for source in sources {
        for ancestor in source
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if ancestor.as_os_str() == "/" || !ancestors_done.insert(ancestor.to_path_buf()) {
                continue;
            }
            match std::fs::symlink_metadata(ancestor) {
                Ok(meta) => emit(Found::Ready(
                    base_node(ancestor, &meta, NodeKind::Dir),
                    Origin::New,
                ))?,
                Err(e) => emit(Found::Warning(format!("{}: {e}", ancestor.display())))?,
            }
        }
        let walker = walkdir::WalkDir::new(source)
            .follow_links(false)
            .same_file_system(options.one_file_system)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !excluded(entry.path(), &options.excludes));
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    let path = err
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let reason = err
                        .io_error()
                        .map(|e| e.to_string())
                        .unwrap_or(err.to_string());
                    emit(Found::Warning(format!("{path}: skipped: {reason}")))?;
                    continue;
                }
            };
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(err) => {
                    emit(Found::Warning(format!(
                        "{}: skipped: {err}",
                        path.display()
                    )))?;
                    continue;
                }
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                emit(Found::Ready(
                    base_node(path, &meta, NodeKind::Dir),
                    Origin::New,
                ))?;
            } else if kind.is_symlink() {
                let mut node = base_node(path, &meta, NodeKind::Symlink);
                match std::fs::read_link(path) {
                    Ok(target) => {
                        node.target = Some(PathBytes(target.as_os_str().as_bytes().to_vec()));
                        emit(Found::Ready(node, Origin::New))?;
                    }
                    Err(err) => emit(Found::Warning(format!(
                        "{}: skipped: {err}",
                        path.display()
                    )))?,
                }
            } else if kind.is_fifo() {
                emit(Found::Ready(
                    base_node(path, &meta, NodeKind::Fifo),
                    Origin::New,
                ))?;
            } else if kind.is_file() {
                let mut node = base_node(path, &meta, NodeKind::File);
                if meta.nlink() > 1 {
                    let key = (meta.dev(), meta.ino());
                    if let Some(first) = link_groups.get(&key) {
                        node.kind = NodeKind::Hardlink;
                        node.target = Some(first.clone());
                        emit(Found::Ready(node, Origin::New))?;
                        continue;
                    }
                    link_groups.insert(key, node.path.clone());
                }
                node.size = meta.size();
                node.change = Some(change_key(&meta));
                match parent(&node.path)? {
                    Some(old) if old.kind == NodeKind::File => {
                        if old.size == node.size
                            && old.mtime_ns == node.mtime_ns
                            && old.change == node.change
                        {
                            node.hash = old.hash;
                            node.chunks = old.chunks;
                            emit(Found::Ready(node, Origin::Unchanged))?;
                        } else {
                            emit(Found::Read(path.to_path_buf(), node, Origin::Changed))?;
                        }
                    }
                    _ => emit(Found::Read(path.to_path_buf(), node, Origin::New))?,
                }
            } else if !kind.is_socket() {
                emit(Found::Warning(format!(
                    "{}: skipped: device files are not backed up",
                    path.display()
                )))?;
            }
        }
    }
    Ok(())
}

fn excluded(path: &Path, patterns: &[glob::Pattern]) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    patterns
        .iter()
        .any(|p| p.matches_path(path) || p.matches(&name))
}

/// Data extents `(offset, length)` of an open file: holes are skipped (SEEK_DATA/SEEK_HOLE).
pub fn data_extents(file: &std::fs::File, size: u64) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let Ok(meta) = file.metadata() else {
        return vec![(0, size)];
    };
    // Only files with fewer allocated blocks than their size can have holes.
    if meta.blocks() * 512 >= size {
        return vec![(0, size)];
    }
    let mut extents = Vec::new();
    let mut at = 0u64;
    while at < size {
        let Ok(start) = seek(file, SeekFrom::Data(at)) else {
            break;
        };
        if start >= size {
            break;
        }
        let end = seek(file, SeekFrom::Hole(start)).unwrap_or(size).min(size);
        extents.push((start, end - start));
        at = end;
    }
    extents
}
