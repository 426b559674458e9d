//! What a snapshot is: nodes, chunk references and the snapshot record (serde, no I/O).
//!
//! Paths are raw bytes (names need not be UTF-8); in JSON they are strings
//! where every byte that is not printable UTF-8, and the backslash itself,
//! is written as `\xHH`, so any name round-trips exactly. A node's path is
//! the absolute source path without its leading `/`, components joined by `/`.
//! Does not know about storage, keys or the catalog.

use crate::ids::{ChunkId, SnapshotId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path or link target as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PathBytes(pub Vec<u8>);

impl PathBytes {
    /// The escaped text form (also used in reports).
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for chunk in self.0.utf8_chunks() {
            for ch in chunk.valid().chars() {
                if ch == '\\' || ch.is_control() {
                    let mut buf = [0u8; 4];
                    for b in ch.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                } else {
                    out.push(ch);
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    /// Inverse of [`PathBytes::escaped`].
    pub fn unescape(text: &str) -> Option<PathBytes> {
        let mut out = Vec::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                let hex = text.get(i + 2..i + 4)?;
                if bytes.get(i + 1) != Some(&b'x') {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Some(PathBytes(out))
    }

    /// The `/`-separated components.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == b'/')
    }
}

impl Serialize for PathBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.escaped())
    }
}

impl<'de> Deserialize<'de> for PathBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathBytes, D::Error> {
        let text = String::deserialize(d)?;
        PathBytes::unescape(&text).ok_or_else(|| serde::de::Error::custom("bad path escape"))
    }
}

/// What kind of filesystem entry a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file with content in chunks.
    File,
    /// A symbolic link; `target` is its text.
    Symlink,
    /// A further name of a file recorded earlier; `target` is that file's path.
    Hardlink,
    /// A named pipe.
    Fifo,
}

/// Where a piece of a file's content lives: chunk `id` at byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk.
    pub id: ChunkId,
    /// Byte offset in the file (data extents only; holes have no chunks).
    pub offset: u64,
    /// Plain length of the chunk.
    pub len: u32,
}

/// Inode facts that decide whether a file changed since the parent snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeKey {
    /// Change time in nanoseconds.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Absolute source path without the leading `/`.
    pub path: PathBytes,
    /// Entry kind.
    pub kind: NodeKind,
    /// Permission bits and set-id bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Logical size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Plain BLAKE3 of the whole content, holes as zeros (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Content chunks in offset order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// Symlink text or hard-link target path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBytes>,
    /// Change detection facts (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeKey>,
}

/// Counts kept with every snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, hard links and other entries.
    pub other: u64,
    /// Logical bytes of all files.
    pub bytes: u64,
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files re-read because they changed.
    pub files_changed: u64,
    /// Files reused from the parent without reading.
    pub files_unchanged: u64,
    /// Plain bytes of chunks stored for the first time.
    pub bytes_added: u64,
    /// Bytes of sealed volume data written by the run.
    pub bytes_stored: u64,
}

/// A snapshot: when, what, and where its node list lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Random id.
    pub id: SnapshotId,
    /// Creation time, seconds since the epoch (display only; order is by volume sequence).
    pub time: i64,
    /// Host name.
    pub host: String,
    /// Source paths as given (absolute).
    pub paths: Vec<PathBytes>,
    /// Operator tags.
    pub tags: Vec<String>,
    /// The parent snapshot used for change detection.
    pub parent: Option<SnapshotId>,
    /// Tree chunks, in order: their concatenation is the encoded node list.
    pub tree: Vec<ChunkId>,
    /// Counts.
    pub stats: SnapshotStats,
    /// What was skipped or changed during the run (first ones; see `warning_count`).
    pub warnings: Vec<String>,
    /// How many warnings there were in all.
    pub warning_count: u64,
}

/// First line of an encoded node list.
pub const TREE_HEADER: &[u8] = b"tapevault-tree v1\n";

/// Decodes a snapshot's tree stream (header, then one JSON node per line) piece by
/// piece, as its blobs arrive: a tree of millions of nodes is never held whole.
#[derive(Debug, Default)]
pub struct TreeDecoder {
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    header_seen: bool,
}

impl TreeDecoder {
    /// Take the next piece of the stream; returns the nodes whose lines it completed.
    pub fn feed(&mut self, piece: &[u8]) -> crate::error::Result<Vec<Node>> {
        self.pending.extend_from_slice(piece);
        if !self.header_seen {
            let seen = self.pending.len().min(TREE_HEADER.len());
            if self.pending[..seen] != TREE_HEADER[..seen] {
                return Err(crate::error::Error::corrupt("tree header missing"));
            }
            if seen < TREE_HEADER.len() {
                return Ok(Vec::new());
            }
            self.pending.drain(..seen);
            self.header_seen = true;
        }
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let nodes = decode_nodes(&self.pending[..end], "tree node")?;
        self.pending.drain(..=end);
        Ok(nodes)
    }

    /// The stream ended: the nodes of a last line without a newline.
    pub fn finish(self) -> crate::error::Result<Vec<Node>> {
        if !self.header_seen {
            return Err(crate::error::Error::corrupt("tree header missing"));
        }
        decode_nodes(&self.pending, "tree node")
    }
}

/// Decode lines written by `encode_node`; `what` names them in an error.
pub fn decode_nodes(lines: &[u8], what: &str) -> crate::error::Result<Vec<Node>> {
    lines
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .map_err(|e| crate::error::Error::corrupt(format!("{what}: {e}")))
        })
        .collect()
}

/// Encode one node as a line of the node list.
pub fn encode_node(node: &Node, out: &mut Vec<u8>) {
    // Serialising plain data to a Vec cannot fail.
    serde_json::to_writer(&mut *out, node).expect("node serialises");
    out.push(b'\n');
}

/// Add `len` zero bytes to a whole-file hash ([`Node::hash`]): a hole hashes as the zeros
/// it reads as, without the kernel zeroing pages to read back.
pub fn hash_zeros(hasher: &mut blake3::Hasher, mut len: u64) {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    while len > 0 {
        let part = len.min(ZEROS.len() as u64);
        hasher.update(&ZEROS[..part as usize]);
        len -= part;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_path_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let path = PathBytes(bytes);
            let json = serde_json::to_string(&path).unwrap();
            prop_assert_eq!(serde_json::from_str::<PathBytes>(&json).unwrap(), path);
        }

        /// However the stream is cut into blobs, the same nodes come out in order.
        #[test]
        fn a_tree_decodes_the_same_in_any_pieces(
            paths in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..30),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let nodes: Vec<Node> = paths
                .into_iter()
                .map(|path| Node {
                    path: PathBytes(path),
                    kind: NodeKind::File,
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    mtime_ns: 1,
                    size: 0,
                    hash: None,
                    chunks: Vec::new(),
                    target: None,
                    change: None,
                })
                .collect();
            let mut stream = TREE_HEADER.to_vec();
            for node in &nodes {
                encode_node(node, &mut stream);
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut decoder = TreeDecoder::default();
            let mut decoded = Vec::new();
            let mut from = 0;
            for to in cuts {
                decoded.extend(decoder.feed(&stream[from..to]).unwrap());
                from = to;
            }
            decoded.extend(decoder.finish().unwrap());
            prop_assert_eq!(decoded, nodes);
        }
    }

    #[test]
    fn a_tree_without_its_header_is_refused() {
        assert!(TreeDecoder::default().feed(b"{}\n").is_err());
        assert!(TreeDecoder::default().finish().is_err());
        let mut cut = TreeDecoder::default();
        assert!(cut.feed(&TREE_HEADER[..5]).unwrap().is_empty());
        assert!(cut.finish().is_err());
    }

    #[test]
    fn escaping_is_readable_for_plain_names() {
        assert_eq!(
            PathBytes(b"srv/app/a b.txt".to_vec()).escaped(),
            "srv/app/a b.txt"
        );
        assert_eq!(
            PathBytes(b"a\\b\xff\n".to_vec()).escaped(),
            "a\\x5cb\\xff\\x0a"
        );
    }
}
