//! Per-stage throughput of the pipeline, so that a regression in one stage is visible.
//!
//! `cargo bench` prints MB/s for each stage over the same generated data (a mix of
//! incompressible bytes and text-like runs, like a real corpus). Single-threaded: the
//! numbers are per core. Compare runs on the same machine only.

use std::time::Instant;
use tapevault::chunk::{self, ChunkParams};
use tapevault::crypto::{BlobKind, MasterKey};
use tapevault::ids::{VaultId, VolumeId};

const DATA_BYTES: usize = 64 << 20;

fn corpus() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::with_capacity(DATA_BYTES);
    while data.len() < DATA_BYTES {
        // 1 MiB of noise, then 1 MiB of log-like text.
        for _ in 0..(1 << 20) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.push((state >> 24) as u8);
        }
        let line = b"2026-11-25T02:15:00Z backup: file unchanged, chunk reused\n";
        while data.len() % (2 << 20) != 0 {
            data.push(line[data.len() % line.len()]);
        }
    }
    data.truncate(DATA_BYTES);
    data
}

fn report(stage: &str, bytes: usize, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{stage:<22} {:>9.1} MB/s  ({:.3} s for {} MiB)",
        bytes as f64 / seconds / 1e6,
        seconds,
        bytes >> 20
    );
}

fn main() {
    let data = corpus();
    let key = MasterKey::random();
    let vault = VaultId::random();
    let volume = VolumeId::random();
    let ids = key.chunk_id_key();
    let params = ChunkParams::from_seed(key.chunker_seed());

    let started = Instant::now();
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    chunk::Chunker::new(params)
        .for_each(&data[..], |piece| {
            pieces.push(piece.to_vec());
            Ok::<(), ()>(())
        })
        .expect("collecting cannot fail")
        .expect("reading memory cannot fail");
    report("chunk (FastCDC)", data.len(), started);

    let started = Instant::now();
    let chunk_ids: Vec<_> = pieces.iter().map(|p| ids.id(p)).collect();
    report("keyed hash (BLAKE3)", data.len(), started);

    let started = Instant::now();
    // As a backup worker does: one compressor and buffer, an exact copy per chunk.
    let mut compressor = tapevault::compress::Compressor::new(3);
    let mut compressed = Vec::new();
    let encoded: Vec<Vec<u8>> = pieces
        .iter()
        .map(|p| {
            compressor.compress_into(p, &mut compressed);
            compressed.to_vec()
        })
        .collect();
    report("compress (zstd 3)", data.len(), started);

    let started = Instant::now();
    let volume_key = key.volume_key(&volume);
    let mut packs = Vec::new();
    let indices: Vec<usize> = (0..pieces.len()).collect();
    let mut builder = tapevault::pack::PackBuilder::default();
    for (number, group) in (1u32..).zip(indices.chunks(16)) {
        for &i in group {
            let plain_len = pieces[i].len() as u32;
            builder.add(BlobKind::Data, chunk_ids[i], plain_len, &encoded[i]);
        }
        let sealer = volume_key.pack_sealer(vault, number);
        packs.push((
            number,
            builder
                .finish(sealer, &ids, Vec::new())
                .expect("pack seals"),
        ));
    }
    report("seal + verify packs", data.len(), started);

    let kdf = tapevault::crypto::KdfParams::new(8192, 1, 1).expect("valid");
    let label = tapevault::volume::Label {
        format: "tapevault".into(),
        format_version: tapevault::volume::FORMAT_VERSION,
        vault_id: vault,
        volume_id: volume,
        sequence: 1,
        created: 0,
        chunker: tapevault::chunk::CHUNKER_VERSION.into(),
        wrapped_key: tapevault::crypto::WrappedKey::wrap(&key, vault, b"bench", kdf)
            .expect("wraps"),
        parity: None,
    };
    let started = Instant::now();
    let mut writer =
        tapevault::volume::VolumeWriter::start(std::io::sink(), &label, u64::MAX / 2, 0)
            .expect("a sink takes anything");
    for (number, pack) in &packs {
        writer
            .append_pack(*number, &pack.bytes, index_entries(pack))
            .expect("a sink takes anything");
    }
    report("tar volume write", data.len(), started);

    // The same volume with --parity 10 (16 MiB segments), read back clean and with a
    // 1 MiB burst in every segment.
    let label = tapevault::volume::Label {
        parity: tapevault::parity::ParityLayout::for_volume(10, 1 << 40).expect("valid"),
        ..label
    };
    let started = Instant::now();
    let mut writer = tapevault::volume::VolumeWriter::start(Vec::new(), &label, u64::MAX / 2, 0)
        .expect("memory takes anything");
    for (number, pack) in &packs {
        writer
            .append_pack(*number, &pack.bytes, index_entries(pack))
            .expect("memory takes anything");
    }
    let volume_bytes = writer.finish(&[0u8; 4096]).expect("finishes").sink;
    report("tar write + parity 10%", data.len(), started);
    let read_back = |bytes: &[u8]| {
        use std::io::Read;
        let mut out = Vec::with_capacity(bytes.len());
        tapevault::parity::RepairingReader::new(bytes)
            .read_to_end(&mut out)
            .expect("memory reads");
        out
    };
    let started = Instant::now();
    assert!(read_back(&volume_bytes) == volume_bytes);
    report("parity check (clean)", volume_bytes.len(), started);
    let mut damaged = volume_bytes.clone();
    for segment in damaged.chunks_mut(16 << 20) {
        let burst = segment.len().min(1 << 20) / 2;
        segment[burst..burst * 2].fill(0x5a);
    }
    let started = Instant::now();
    assert!(read_back(&damaged) == volume_bytes);
    report("parity repair (bursts)", volume_bytes.len(), started);

    let started = Instant::now();
    let mut decoded = 0;
    for (number, pack) in &packs {
        let sealer = volume_key.pack_sealer(vault, *number);
        for entry in &pack.entries {
            decoded += tapevault::pack::open_blob(&pack.bytes, entry, &sealer, &ids)
                .expect("blob opens")
                .len();
        }
    }
    assert_eq!(decoded, data.len());
    report("restore decode", data.len(), started);
}

/// A pack's blobs as its volume's index lists them.
fn index_entries(pack: &tapevault::pack::FinishedPack) -> Vec<tapevault::volume::IndexBlob> {
    pack.entries
        .iter()
        .map(tapevault::volume::IndexBlob::from)
        .collect()
}
