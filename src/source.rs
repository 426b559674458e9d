//! Walking the sources (stage 1) and deciding what must be read (stage 2).
//!
//! Each source is walked folder by folder through handles (`openat`, never
//! following a symlink), one filesystem by default, excludes applied before
//! descending. walkdir is not used here: it opens every folder by its whole
//! path, which fails past PATH_MAX and follows a folder swapped for a symlink
//! while a root backup runs. Files are handed on with their folder's handle,
//! so the reader opens exactly what the walk listed. Folders and files are
//! opened with O_NOATIME where the owner (or root) may. Every entry becomes a
//! [`Node`] with its metadata; a regular file either reuses its parent-snapshot
//! chunks (size, mtime, ctime and inode unchanged, and every chunk still
//! trusted) or is handed on to be read. Ancestors of each source are recorded
//! too, so restore can recreate them with their attributes. Unreadable entries
//! become warnings, never errors. Does not know about chunks' storage, keys or
//! media.

use crate::error::{Error, Result};
use crate::model::{ChangeKey, Node, NodeKind, PathBytes};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the walk found, in walk order.
pub enum Found {
    /// Complete without reading content (dirs, links, unchanged files).
    Ready(Node, Origin),
    /// A regular file whose content must be read.
    Read(SourceFile, Node, Origin),
    /// Something skipped, with the reason.
    Warning(String),
}

/// A regular file to read, by the handle of the folder the walk listed and its name
/// there. Opening it resolves no path again: no folder swapped for a symlink since the
/// walk is followed, and no path is too long to open (past PATH_MAX, 4 KiB).
pub struct SourceFile {
    /// The folder the walk found it in.
    pub dir: Arc<OwnedFd>,
    /// Its name in that folder.
    pub name: Vec<u8>,
    /// Its whole path, for messages.
    pub path: PathBuf,
}

impl SourceFile {
    /// Open the file to read: never through a symlink, and without waiting on a FIFO
    /// put in its place since the walk.
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        Ok(open_unseen(&self.dir, &self.name, flags)?.into())
    }
}

/// Open `name` in `dir` without updating its access time (O_NOATIME), so that a backup
/// does not make a mailbox look read or a cache look used. Only the owner or root may
/// ask for that; anyone else's file is opened as usual.
fn open_unseen(dir: &OwnedFd, name: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty()),
        opened => opened,
    }
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

/// A node for `path` from its metadata.
pub fn base_node(path: &Path, meta: &Stat, kind: NodeKind) -> Node {
    Node {
        path: node_path(path),
        kind,
        mode: meta.st_mode & 0o7777,
        uid: meta.st_uid,
        gid: meta.st_gid,
        mtime_ns: meta.st_mtime * 1_000_000_000 + meta.st_mtime_nsec as i64,
        size: 0,
        hash: None,
        chunks: Vec::new(),
        target: None,
        change: None,
    }
}

/// The change key of a file's metadata.
pub fn change_key(meta: &Stat) -> ChangeKey {
    ChangeKey {
        ctime_ns: meta.st_ctime * 1_000_000_000 + meta.st_ctime_nsec as i64,
        ino: meta.st_ino,
        dev: meta.st_dev,
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

/// Walk `sources` and hand every finding to `emit`, each folder's entries in name order.
///
/// Every folder is opened from its parent's handle without following a symlink, and its
/// entries are looked at by name in it: the walk never resolves a whole path, so it
/// reaches below PATH_MAX, and a folder swapped for a symlink while it runs is not
/// followed out of the source. A source that is itself a symlink is followed: the
/// operator named it to have its data kept. Every link below a source is kept as a link.
///
/// `parent` looks up the parent snapshot's node for a path, returning it only if all
/// its chunks are still trusted.
pub fn walk(
    sources: &[PathBuf],
    options: &WalkOptions,
    parent: &mut dyn FnMut(&PathBytes) -> Result<Option<Node>>,
    emit: &mut dyn FnMut(Found) -> Result<()>,
) -> Result<()> {
    let mut walk = Walk {
        options,
        parent,
        emit,
        link_groups: HashMap::new(),
        source_dev: 0,
    };
    let mut ancestors_done: HashSet<PathBuf> = HashSet::new();
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
            match rustix::fs::lstat(ancestor) {
                Ok(meta) => walk.ready(base_node(ancestor, &meta, NodeKind::Dir))?,
                Err(e) => (walk.emit)(Found::Warning(format!(
                    "{}: {}",
                    ancestor.display(),
                    std::io::Error::from(e)
                )))?,
            }
        }
        walk.source(source)?;
    }
    Ok(())
}

/// One walk over the sources.
struct Walk<'a> {
    options: &'a WalkOptions,
    parent: &'a mut dyn FnMut(&PathBytes) -> Result<Option<Node>>,
    emit: &'a mut dyn FnMut(Found) -> Result<()>,
    /// The first path of each multiply linked file, by (device, inode).
    link_groups: HashMap<(u64, u64), PathBytes>,
    /// The device of the source being walked (`one_file_system`).
    source_dev: u64,
}

/// A folder being walked: its handle, its path, and the names in it still to visit.
struct Listed {
    dir: Arc<OwnedFd>,
    path: PathBuf,
    names: std::vec::IntoIter<Vec<u8>>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Walk<'_> {
    fn source(&mut self, source: &Path) -> Result<()> {
        // Resolved once, so that a source named through a symlink is followed; a dangling
        // one is kept as the link it is.
        let real = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        let (folder, name) = match (real.parent(), real.file_name()) {
            (Some(folder), Some(name)) => (folder, name.as_bytes()),
            _ => (real.as_path(), &b"."[..]),
        };
        // A handle to look in, not to list: a folder the user may pass through (x) but
        // not read (r) still holds a source.
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let folder = match rustix::fs::open(folder, flags, Mode::empty()) {
            Ok(folder) => Arc::new(folder),
            Err(e) => return self.skip(source, e),
        };
        let mut stack: Vec<Listed> = self
            .entry(&folder, name, source.to_path_buf(), true)?
            .into_iter()
            .collect();
        while let Some(listed) = stack.last_mut() {
            let Some(name) = listed.names.next() else {
                stack.pop();
                continue;
            };
            let path = listed.path.join(std::ffi::OsStr::from_bytes(&name));
            if excluded(&path, &self.options.excludes) {
                continue;
            }
            let dir = Arc::clone(&listed.dir);
            stack.extend(self.entry(&dir, &name, path, false)?);
        }
        Ok(())
    }

    /// Record entry `name` of folder `dir`, whose path is `path`; a folder to walk into
    /// comes back listed.
    fn entry(
        &mut self,
        dir: &Arc<OwnedFd>,
        name: &[u8],
        path: PathBuf,
        is_source: bool,
    ) -> Result<Option<Listed>> {
        let meta = match rustix::fs::statat(&**dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(meta) => meta,
            Err(e) => return self.skip(&path, e).map(|()| None),
        };
        if is_source {
            self.source_dev = meta.st_dev;
        }
        match FileType::from_raw_mode(meta.st_mode) {
            FileType::Directory => self.folder(dir, name, path, &meta),
            FileType::Symlink => {
                let mut node = base_node(&path, &meta, NodeKind::Symlink);
                match rustix::fs::readlinkat(&**dir, name, Vec::new()) {
                    Ok(target) => {
                        node.target = Some(PathBytes(target.into_bytes()));
                        self.ready(node)?;
                    }
                    Err(e) => self.skip(&path, e)?,
                }
                Ok(None)
            }
            FileType::Fifo => self
                .ready(base_node(&path, &meta, NodeKind::Fifo))
                .map(|()| None),
            FileType::RegularFile => {
                let file = SourceFile {
                    dir: Arc::clone(dir),
                    name: name.to_vec(),
                    path,
                };
                self.file(file, &meta).map(|()| None)
            }
            FileType::Socket => Ok(None),
            _ => (self.emit)(Found::Warning(format!(
                "{}: skipped: device files are not backed up",
                path.display()
            )))
            .map(|()| None),
        }
    }

    /// Record a folder and list it, unless it is on another filesystem and the walk
    /// stays on one. The node comes from the folder as opened, in case it was replaced
    /// since it was looked at.
    fn folder(
        &mut self,
        dir: &Arc<OwnedFd>,
        name: &[u8],
        path: PathBuf,
        looked_at: &Stat,
    ) -> Result<Option<Listed>> {
        // Not even opened: opening a mount point can mount it (autofs) or hang (dead NFS).
        if self.stays_out_of(looked_at) {
            return self
                .ready(base_node(&path, looked_at, NodeKind::Dir))
                .map(|()| None);
        }
        let opened = open_unseen(dir, name, DIR_FLAGS)
            .and_then(|folder| Ok((rustix::fs::fstat(&folder)?, folder)));
        let (meta, folder) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                self.ready(base_node(&path, looked_at, NodeKind::Dir))?;
                return self.skip(&path, e).map(|()| None);
            }
        };
        self.ready(base_node(&path, &meta, NodeKind::Dir))?;
        // Mounted on since it was looked at.
        if self.stays_out_of(&meta) {
            return Ok(None);
        }
        match list(&folder) {
            Ok(names) => Ok(Some(Listed {
                dir: Arc::new(folder),
                path,
                names: names.into_iter(),
            })),
            Err(e) => self.skip(&path, e).map(|()| None),
        }
    }

    /// A folder on another filesystem, when the walk stays on the source's.
    fn stays_out_of(&self, folder: &Stat) -> bool {
        self.options.one_file_system && folder.st_dev != self.source_dev
    }

    /// A regular file: a hard link to one already walked, unchanged since the parent
    /// snapshot, or to be read.
    fn file(&mut self, file: SourceFile, meta: &Stat) -> Result<()> {
        let mut node = base_node(&file.path, meta, NodeKind::File);
        if meta.st_nlink > 1 {
            let key = (meta.st_dev, meta.st_ino);
            if let Some(first) = self.link_groups.get(&key) {
                node.kind = NodeKind::Hardlink;
                node.target = Some(first.clone());
                return self.ready(node);
            }
            self.link_groups.insert(key, node.path.clone());
        }
        node.size = meta.st_size as u64;
        node.change = Some(change_key(meta));
        let origin = match (self.parent)(&node.path)? {
            Some(old) if old.kind == NodeKind::File => {
                if old.size == node.size
                    && old.mtime_ns == node.mtime_ns
                    && old.change == node.change
                {
                    node.hash = old.hash;
                    node.chunks = old.chunks;
                    return (self.emit)(Found::Ready(node, Origin::Unchanged));
                }
                Origin::Changed
            }
            _ => Origin::New,
        };
        (self.emit)(Found::Read(file, node, origin))
    }

    fn ready(&mut self, node: Node) -> Result<()> {
        (self.emit)(Found::Ready(node, Origin::New))
    }

    fn skip(&mut self, path: &Path, err: rustix::io::Errno) -> Result<()> {
        (self.emit)(Found::Warning(format!(
            "{}: skipped: {}",
            path.display(),
            std::io::Error::from(err)
        )))
    }
}

/// The names in a folder (without `.` and `..`), sorted.
fn list(folder: &OwnedFd) -> std::result::Result<Vec<Vec<u8>>, rustix::io::Errno> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(folder)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
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

/// Data extents `(offset, length)` of an open file with metadata `meta`: holes are
/// skipped (SEEK_DATA/SEEK_HOLE).
pub fn data_extents(file: &std::fs::File, meta: &Stat) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let size = meta.st_size as u64;
    // Only files with fewer allocated blocks than their size can have holes.
    if meta.st_blocks as u64 * 512 >= size {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn files_found(source: &Path) -> Vec<SourceFile> {
        let options = WalkOptions {
            one_file_system: false,
            excludes: Vec::new(),
        };
        let mut files = Vec::new();
        walk(
            &[source.to_path_buf()],
            &options,
            &mut |_| Ok(None),
            &mut |found| {
                if let Found::Read(file, _, _) = found {
                    files.push(file);
                }
                Ok(())
            },
        )
        .expect("walks");
        files
    }

    #[test]
    fn a_file_is_opened_in_the_folder_the_walk_listed_whatever_is_swapped_in_since() {
        let tmp = tempfile::tempdir().unwrap();
        let (home, outside) = (tmp.path().join("home"), tmp.path().join("outside"));
        std::fs::create_dir_all(home.join("a")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(home.join("a/secret"), b"the user's own").unwrap();
        std::fs::write(outside.join("secret"), b"someone else's").unwrap();
        let files = files_found(&home);
        assert_eq!(files.len(), 1);
        let read = |file: &SourceFile| -> std::io::Result<Vec<u8>> {
            let mut content = Vec::new();
            file.open()?.read_to_end(&mut content)?;
            Ok(content)
        };

        // Its folder swapped for a symlink out of the source: the walked folder is read.
        std::fs::rename(home.join("a"), home.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, home.join("a")).unwrap();
        assert_eq!(read(&files[0]).unwrap(), b"the user's own");

        // The file itself swapped for a symlink: refused, never followed.
        std::fs::rename(home.join("moved/secret"), home.join("moved/kept")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), home.join("moved/secret")).unwrap();
        let err = read(&files[0]).expect_err("a symlink is not opened");
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );

        // Swapped for a FIFO: opened without waiting for a writer that never comes.
        std::fs::remove_file(home.join("moved/secret")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            home.join("moved/secret"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let fifo = files[0].open().expect("opens at once");
        let kind = rustix::fs::fstat(&fifo).unwrap().st_mode;
        assert_eq!(FileType::from_raw_mode(kind), FileType::Fifo);
    }

    #[test]
    fn a_tree_deeper_than_path_max_is_walked_to_its_bottom() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = rustix::fs::open(tmp.path(), DIR_FLAGS, Mode::empty()).unwrap();
        for level in 0..30 {
            let name = format!("{level:02}{}", "d".repeat(198));
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            dir = rustix::fs::openat(&dir, name.as_str(), DIR_FLAGS, Mode::empty()).unwrap();
        }
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
        let bottom = rustix::fs::openat(&dir, "bottom", flags, Mode::from_raw_mode(0o644));
        rustix::io::write(bottom.unwrap(), b"found").unwrap();
        let files = files_found(tmp.path());
        assert_eq!(files.len(), 1);
        assert!(
            files[0].path.as_os_str().len() > 6000,
            "{:?}",
            files[0].path
        );
        let mut content = Vec::new();
        files[0].open().unwrap().read_to_end(&mut content).unwrap();
        assert_eq!(content, b"found");
    }
}
