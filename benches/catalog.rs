//! Catalog scale: what the dedup check costs in a vault with years of history.
//!
//! `cargo bench --bench catalog` records ten million synthetic chunks (100,000 per
//! volume, as a 4 GiB volume of 40 KiB chunks holds) in a real catalog file, then
//! times lookups of chunks it holds and of chunks it does not, and prints the size
//! on disk. `TAPEVAULT_BENCH_ROWS` changes the count. The catalog runs as in a
//! backup: WAL, `synchronous=FULL`, one transaction per volume.

use std::time::Instant;
use tapevault::catalog::{Catalog, VaultInfo, VolumeRow};
use tapevault::crypto::{BlobKind, KdfParams, MasterKey, WrappedKey};
use tapevault::ids::{ChunkId, VaultId, VolumeId};
use tapevault::volume::{IndexBlob, IndexPack};

const BLOBS_PER_PACK: u64 = 400;
const PACKS_PER_VOLUME: u64 = 250;
const LOOKUPS: u64 = 200_000;

fn chunk(n: u64) -> ChunkId {
    ChunkId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fn main() {
    let rows: u64 = std::env::var("TAPEVAULT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().expect("scratch folder");
    let key = MasterKey::random();
    let vault_id = VaultId::random();
    let kdf = KdfParams::new(8192, 1, 1).expect("valid");
    let info = VaultInfo {
        vault_id,
        address: "dir:/bench".into(),
        fingerprint: key.fingerprint(),
        wrapped_key: WrappedKey::wrap(&key, vault_id, b"bench", kdf).expect("wraps"),
        chunker: tapevault::chunk::CHUNKER_VERSION.into(),
    };
    let mut catalog = Catalog::create(dir.path(), &info).expect("catalog");

    let per_volume = BLOBS_PER_PACK * PACKS_PER_VOLUME;
    let started = Instant::now();
    let mut next = 0u64;
    let mut sequence = 1;
    while next < rows {
        let packs: Vec<IndexPack> = (0..PACKS_PER_VOLUME)
            .map(|number| IndexPack {
                number: number as u32,
                offset: number * (16 << 20),
                length: 16 << 20,
                blobs: (0..BLOBS_PER_PACK)
                    .map(|i| IndexBlob {
                        kind: BlobKind::Data,
                        id: chunk(next + number * BLOBS_PER_PACK + i),
                        offset: i * 40_000,
                        sealed_len: 40_000,
                        plain_len: 40_960,
                    })
                    .collect(),
            })
            .collect();
        let volume = VolumeRow {
            sequence,
            volume_id: VolumeId::random(),
            name: format!("tv{sequence:06}-bench.tar"),
            state: "sealed".into(),
            bytes: 4 << 30,
            blake3: "0".repeat(64),
            created: 0,
            volume_set: 1,
        };
        catalog
            .record_volume(&volume, &packs, None)
            .expect("records");
        next += per_volume;
        sequence += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "insert  {next} chunk rows in {} volumes: {seconds:.1} s, {:.0} rows/s",
        sequence - 1,
        next as f64 / seconds
    );

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (what, offset) in [("hit", 0), ("miss", u64::MAX / 2)] {
        let started = Instant::now();
        let mut found = 0;
        for _ in 0..LOOKUPS {
            let id = chunk(offset + random() % next);
            found += u64::from(catalog.has_blob(&id, BlobKind::Data, 1).expect("looks up"));
        }
        let seconds = started.elapsed().as_secs_f64();
        let expected = if offset == 0 { LOOKUPS } else { 0 };
        assert_eq!(found, expected, "{what}");
        println!(
            "lookup  {what:<4} {LOOKUPS} random chunks: {:.0} lookups/s ({:.1} µs each)",
            LOOKUPS as f64 / seconds,
            seconds / LOOKUPS as f64 * 1e6
        );
    }
    drop(catalog);
    let size: u64 = std::fs::read_dir(dir.path())
        .expect("catalog folder")
        .map(|e| e.expect("entry").metadata().expect("size").len())
        .sum();
    println!(
        "size    {:.0} MiB on disk ({:.0} bytes per chunk row)",
        size as f64 / (1 << 20) as f64,
        size as f64 / next as f64
    );
}
