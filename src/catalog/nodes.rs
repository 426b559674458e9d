//! A snapshot's nodes, shared between snapshots page by page.
//!
//! A backup stages its nodes one row each, as its workers finish them, in any
//! order. Before its tree is written they are folded: each folder's nodes, in
//! path order, are cut into pages after nodes whose path hash ends in five zero
//! bits (about 32 nodes a page), and a page is stored once by its BLAKE3,
//! however many snapshots hold it. A later snapshot of an unchanged folder costs
//! one row per page; a file added to a large folder changes only its own page.
//! Storing every node of every snapshot cost about 600 bytes per file per
//! snapshot: 200 GiB a year for a million files backed up nightly.

use super::Catalog;
use crate::error::{Error, Result};
use crate::ids::SnapshotId;
use crate::model::{decode_nodes, Node, PathBytes};
use rusqlite::{params, Connection, OptionalExtension};

/// A page ends after a node whose path hash has these low bits clear.
const PAGE_CUT_MASK: u8 = 31;
/// Nodes per page at most: bounds the memory of reading one page.
const MAX_PAGE_NODES: usize = 1024;

/// The folder part of a path, with its final `/`; empty at the top.
fn folder_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(at) => &path[..=at],
        None => &[],
    }
}

/// The page being filled while folding.
#[derive(Default)]
struct Page {
    folder: Vec<u8>,
    first: Vec<u8>,
    /// The path folded last.
    last: Option<Vec<u8>>,
    /// The page ends before the next path that differs from `last`.
    cut: bool,
    lines: Vec<u8>,
    nodes: usize,
}

impl Catalog {
    /// Stage nodes of a pending snapshot (one transaction per batch).
    pub fn add_nodes(&mut self, id: &SnapshotId, nodes: &[Node]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO staged_nodes(snapshot, folder, path, node) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let sid = id.to_string();
            for node in nodes {
                let json = serde_json::to_string(node).expect("node serialises");
                stmt.execute(params![sid, folder_of(&node.path.0), &node.path.0, json])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Turn a pending snapshot's staged nodes into pages, so that they can be read.
    pub fn fold_nodes(&mut self, id: &SnapshotId) -> Result<()> {
        let tx = self.conn.transaction()?;
        fold(&tx, &id.to_string())?;
        tx.commit()?;
        Ok(())
    }

    /// A node of a folded snapshot by exact path.
    pub fn node(&self, snapshot: &SnapshotId, path: &PathBytes) -> Result<Option<Node>> {
        let page: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT page FROM snapshot_pages WHERE snapshot = ?1 AND folder = ?2 AND first <= ?3
                 ORDER BY first DESC LIMIT 1",
            )?
            .query_row(
                params![snapshot.to_string(), folder_of(&path.0), &path.0],
                |r| r.get(0),
            )
            .optional()?;
        let Some(page) = page else {
            return Ok(None);
        };
        // Lookups come in walk order, so consecutive ones mostly hit the same page.
        let mut cache = self.page_cache.borrow_mut();
        let nodes = match &mut *cache {
            Some((id, nodes)) if *id == page => nodes,
            slot => &mut slot.insert((page, self.page_nodes(page)?)).1,
        };
        Ok(nodes
            .binary_search_by(|node| node.path.0.cmp(&path.0))
            .ok()
            .map(|at| nodes[at].clone()))
    }

    /// Visit a folded snapshot's nodes in bytewise path order (parents before children).
    pub fn for_each_node(
        &self,
        snapshot: &SnapshotId,
        mut visit: impl FnMut(Node) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT first, page FROM snapshot_pages WHERE snapshot = ?1 ORDER BY first")?;
        let mut rows = stmt.query(params![snapshot.to_string()])?;
        let next_page = |rows: &mut rusqlite::Rows<'_>| -> Result<Option<(Vec<u8>, i64)>> {
            Ok(match rows.next()? {
                Some(row) => Some((row.get(0)?, row.get(1)?)),
                None => None,
            })
        };
        // A merge of pages: every node of a page sorts at or after its first path, so a
        // page is opened once the smallest node not yet visited is not below its first.
        // Open pages are those of the folders around the current path: one per level.
        let mut waiting = next_page(&mut rows)?;
        let mut open: Vec<std::vec::IntoIter<Node>> = Vec::new();
        loop {
            let smallest = open
                .iter()
                .enumerate()
                .filter_map(|(at, page)| page.as_slice().first().map(|node| (at, &node.path.0)))
                .min_by(|a, b| a.1.cmp(b.1));
            let open_waiting = match (&waiting, smallest) {
                (Some((first, _)), Some((_, path))) => first <= path,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return Ok(()),
            };
            if open_waiting {
                if let Some((_, page)) = waiting.take() {
                    open.push(self.page_nodes(page)?.into_iter());
                }
                waiting = next_page(&mut rows)?;
            } else if let Some((at, _)) = smallest {
                let node = open[at].next();
                if open[at].as_slice().is_empty() {
                    open.swap_remove(at);
                }
                if let Some(node) = node {
                    visit(node)?;
                }
            }
        }
    }

    fn page_nodes(&self, page: i64) -> Result<Vec<Node>> {
        let lines: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT nodes FROM node_pages WHERE id = ?1")?
            .query_row(params![page], |r| r.get(0))
            .optional()?;
        let lines =
            lines.ok_or_else(|| Error::corrupt(format!("catalog node page {page} is missing")))?;
        decode_nodes(&lines, "catalog node")
    }
}

/// Fold what is staged for snapshot `sid` into pages (nothing staged: nothing done).
pub(super) fn fold(conn: &Connection, sid: &str) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT folder, path, node FROM staged_nodes WHERE snapshot = ?1 ORDER BY folder, path",
    )?;
    let mut rows = stmt.query(params![sid])?;
    let mut page = Page::default();
    while let Some(row) = rows.next()? {
        let folder: Vec<u8> = row.get(0)?;
        let path: Vec<u8> = row.get(1)?;
        let node: String = row.get(2)?;
        // A page ends between two paths, never inside a run of one path (a
        // hostile tree may repeat one; restore must see every copy to refuse it).
        let ends = page.folder != folder || (page.cut && page.last.as_ref() != Some(&path));
        if page.nodes > 0 && ends {
            store_page(conn, sid, &mut page)?;
        }
        if page.nodes == 0 {
            page.folder = folder;
            page.first = path.clone();
        }
        page.lines.extend_from_slice(node.as_bytes());
        page.lines.push(b'\n');
        page.nodes += 1;
        page.cut =
            blake3::hash(&path).as_bytes()[0] & PAGE_CUT_MASK == 0 || page.nodes >= MAX_PAGE_NODES;
        page.last = Some(path);
    }
    if page.nodes > 0 {
        store_page(conn, sid, &mut page)?;
    }
    drop(rows);
    conn.execute("DELETE FROM staged_nodes WHERE snapshot = ?1", params![sid])?;
    Ok(())
}

fn store_page(conn: &Connection, sid: &str, page: &mut Page) -> Result<()> {
    let digest = blake3::hash(&page.lines);
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO node_pages(digest, nodes, refs) VALUES (?1, ?2, 1)
             ON CONFLICT(digest) DO UPDATE SET refs = refs + 1 RETURNING id",
        )?
        .query_row(params![digest.as_bytes(), &page.lines], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO snapshot_pages(snapshot, folder, first, page) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![sid, &page.folder, &page.first, id])?;
    page.lines.clear();
    page.nodes = 0;
    page.cut = false;
    Ok(())
}

/// Drop every node of snapshot `sid`, staged or folded; pages no snapshot holds go.
pub(super) fn drop_nodes(conn: &Connection, sid: &str) -> Result<()> {
    conn.execute("DELETE FROM staged_nodes WHERE snapshot = ?1", params![sid])?;
    let pages = conn
        .prepare_cached("SELECT page FROM snapshot_pages WHERE snapshot = ?1")?
        .query_map(params![sid], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    conn.execute(
        "DELETE FROM snapshot_pages WHERE snapshot = ?1",
        params![sid],
    )?;
    let mut release = conn.prepare_cached("UPDATE node_pages SET refs = refs - 1 WHERE id = ?1")?;
    let mut unused = conn.prepare_cached("DELETE FROM node_pages WHERE id = ?1 AND refs <= 0")?;
    for page in pages {
        release.execute(params![page])?;
        unused.execute(params![page])?;
    }
    Ok(())
}

/// Schema 6: the one-row-per-node table of earlier schemas becomes pages. Nodes
/// of pending snapshots go with it: the next run would discard them anyway.
pub(super) fn migrate_to_pages(conn: &Connection) -> Result<()> {
    let complete = super::snapshot_ids(conn, "complete")?;
    let mut read = conn.prepare("SELECT path, node FROM nodes WHERE snapshot = ?1")?;
    let mut stage = conn.prepare(
        "INSERT INTO staged_nodes(snapshot, folder, path, node) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for sid in complete {
        let mut rows = read.query(params![sid])?;
        while let Some(row) = rows.next()? {
            let (path, node): (Vec<u8>, String) = (row.get(0)?, row.get(1)?);
            stage.execute(params![sid, folder_of(&path), path, node])?;
        }
        fold(conn, &sid)?;
    }
    conn.execute_batch("DROP TABLE nodes;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeKind;

    fn node(path: &str, kind: NodeKind, size: u64) -> Node {
        Node {
            path: PathBytes(path.as_bytes().to_vec()),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
            size,
            hash: None,
            chunks: Vec::new(),
            target: None,
            change: None,
        }
    }

    /// Names whose bytewise order differs from folder-by-folder order (`a-` and
    /// `a.txt` sort between `a` and `a/`), and one folder of many pages.
    fn tricky_tree(size_of_x: u64) -> Vec<Node> {
        let mut nodes = vec![
            node("a", NodeKind::Dir, 0),
            node("a-", NodeKind::Dir, 0),
            node("a-/x", NodeKind::File, 1),
            node("a.txt", NodeKind::File, 2),
            node("a/b", NodeKind::Dir, 0),
            node("a/b/c", NodeKind::File, 3),
            node("a/b.d", NodeKind::File, 4),
            node("a/x", NodeKind::File, size_of_x),
            node("big", NodeKind::Dir, 0),
            node("z", NodeKind::File, 5),
        ];
        for n in 0..3000 {
            nodes.push(node(&format!("big/f{n:05}"), NodeKind::File, n));
        }
        // A hostile tree repeats a path, here one that ends a page.
        let cut = (0..3000)
            .map(|n| format!("big/f{n:05}"))
            .find(|p| blake3::hash(p.as_bytes()).as_bytes()[0] & PAGE_CUT_MASK == 0)
            .expect("a path ends a page");
        nodes.push(node(&cut, NodeKind::File, 9));
        nodes.sort_by(|a, b| a.path.0.cmp(&b.path.0));
        nodes
    }

    fn paths(catalog: &Catalog, id: &SnapshotId) -> Vec<String> {
        let mut out = Vec::new();
        catalog
            .for_each_node(id, |n| {
                out.push(n.path.escaped());
                Ok(())
            })
            .expect("reads");
        out
    }

    fn count(catalog: &Catalog, table: &str) -> i64 {
        catalog
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("counts")
    }

    fn store(catalog: &mut Catalog, nodes: &[Node]) -> SnapshotId {
        let id = SnapshotId::random();
        catalog.begin_snapshot(&id).expect("begins");
        // Staged out of order, as workers finish them.
        let mut shuffled = nodes.to_vec();
        shuffled.reverse();
        for batch in shuffled.chunks(700) {
            catalog.add_nodes(&id, batch).expect("stages");
        }
        catalog.fold_nodes(&id).expect("folds");
        id
    }

    #[test]
    fn nodes_come_back_in_bytewise_order_and_unchanged_folders_are_stored_once() {
        let (_dir, mut catalog) = super::super::tests::new_catalog();
        let tree = tricky_tree(6);
        let first = store(&mut catalog, &tree);
        let want: Vec<String> = tree.iter().map(|n| n.path.escaped()).collect();
        assert_eq!(paths(&catalog, &first), want);
        let big_folder_pages: i64 = catalog
            .conn
            .query_row(
                "SELECT count(*) FROM snapshot_pages WHERE folder = CAST('big/' AS BLOB)",
                [],
                |r| r.get(0),
            )
            .expect("counts");
        assert!(
            big_folder_pages >= 3,
            "3000 nodes in {big_folder_pages} pages"
        );
        for wanted in &tree {
            let found = catalog.node(&first, &wanted.path).expect("looks up");
            assert_eq!(found.map(|n| n.path), Some(wanted.path.clone()));
        }
        for absent in ["a/b/zz", "big/f99999", "b", "a-/", ""] {
            let path = PathBytes(absent.as_bytes().to_vec());
            assert_eq!(catalog.node(&first, &path).expect("looks up"), None);
        }

        // The same tree again adds page rows but not one page; one changed file
        // adds only the page that holds it.
        let pages = count(&catalog, "node_pages");
        let second = store(&mut catalog, &tree);
        assert_eq!(count(&catalog, "node_pages"), pages);
        let changed = store(&mut catalog, &tricky_tree(7));
        assert_eq!(count(&catalog, "node_pages"), pages + 1);
        assert_eq!(paths(&catalog, &changed), want);
        let x = PathBytes(b"a/x".to_vec());
        assert_eq!(
            catalog.node(&changed, &x).expect("reads").map(|n| n.size),
            Some(7)
        );
        assert_eq!(
            catalog.node(&second, &x).expect("reads").map(|n| n.size),
            Some(6)
        );

        // Forgetting keeps what another snapshot holds; the last one frees the pages.
        catalog
            .forget_snapshots(&[first, changed])
            .expect("forgets");
        assert_eq!(paths(&catalog, &second), want);
        assert_eq!(count(&catalog, "node_pages"), pages);
        catalog.forget_snapshots(&[second]).expect("forgets");
        assert_eq!(count(&catalog, "node_pages"), 0);
        assert_eq!(count(&catalog, "snapshot_pages"), 0);
        assert_eq!(count(&catalog, "staged_nodes"), 0);
    }

    #[test]
    fn a_schema_5_catalog_keeps_the_nodes_of_its_complete_snapshots() {
        let (dir, catalog) = super::super::tests::new_catalog();
        let tree = tricky_tree(6);
        let kept = SnapshotId::random();
        let crashed = SnapshotId::random();
        // Schema 5 stored one row per node.
        catalog
            .conn
            .execute_batch(
                "DROP TABLE snapshot_pages; DROP TABLE node_pages;
                 CREATE TABLE nodes(snapshot TEXT NOT NULL, path BLOB NOT NULL, node TEXT NOT NULL);
                 CREATE INDEX nodes_by_path ON nodes(snapshot, path);
                 PRAGMA user_version = 5;",
            )
            .expect("old schema");
        for (id, state) in [(&kept, "complete"), (&crashed, "pending")] {
            catalog
                .conn
                .execute(
                    "INSERT INTO snapshots(id, state) VALUES (?1, ?2)",
                    params![id.to_string(), state],
                )
                .expect("snapshot");
            for n in tree.iter().rev() {
                catalog
                    .conn
                    .execute(
                        "INSERT INTO nodes VALUES (?1, ?2, ?3)",
                        params![id.to_string(), &n.path.0, serde_json::to_string(n).unwrap()],
                    )
                    .expect("node");
            }
        }
        drop(catalog);

        let mut catalog = Catalog::open(dir.path(), "dir:/nowhere").expect("migrates");
        let want: Vec<String> = tree.iter().map(|n| n.path.escaped()).collect();
        assert_eq!(paths(&catalog, &kept), want);
        assert_eq!(count(&catalog, "staged_nodes"), 0);
        assert_eq!(catalog.discard_pending().expect("discards"), 1);
        assert_eq!(paths(&catalog, &kept), want);
        let version: i64 = catalog
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("pragma");
        assert_eq!(version, super::super::SCHEMA_VERSION);
    }
}
