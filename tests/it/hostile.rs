//! Every parser of bytes from media returns a typed error on any input, never panics
//! (T41 in-tree, beside the cargo-fuzz targets), and lying lengths allocate nothing
//! large (T42).

use proptest::prelude::*;
use tapevault::crypto::MasterKey;
use tapevault::ids::{VaultId, VolumeId};
use tapevault::volume::{Label, VolumeIndex, VolumeReader};

use crate::util::noise;

/// Random bytes, and random bytes spliced into a valid prefix.
fn hostile(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..4096),
        (
            0..valid.len().max(1),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(move |(at, noise)| {
                let mut bytes = valid.clone();
                let at = at.min(bytes.len());
                bytes.splice(at..(at + noise.len()).min(bytes.len()), noise);
                bytes
            }),
    ]
}

fn a_label() -> Vec<u8> {
    let key = MasterKey::random();
    let vault = VaultId::random();
    let kdf = tapevault::crypto::KdfParams::new(8192, 1, 1).unwrap();
    let wrapped = tapevault::crypto::WrappedKey::wrap(&key, vault, b"pass", kdf).unwrap();
    Label {
        format: "tapevault".into(),
        format_version: tapevault::volume::FORMAT_VERSION,
        vault_id: vault,
        volume_id: VolumeId::random(),
        sequence: 3,
        created: 1,
        chunker: "fastcdc2020-v1".into(),
        wrapped_key: wrapped,
        parity: None,
    }
    .encode()
}

/// A small volume with parity (512-byte shards, so several segments).
fn a_parity_volume() -> Vec<u8> {
    let mut label = Label::decode(&a_label()).unwrap();
    label.parity = Some(tapevault::parity::ParityLayout {
        percent: 10,
        shard_bytes: 512,
    });
    let mut writer =
        tapevault::volume::VolumeWriter::start(Vec::new(), &label, 64 << 20, 0).unwrap();
    for number in 1..=6 {
        writer
            .append_pack(number, &noise(40_000, u64::from(number)), Vec::new())
            .unwrap();
    }
    writer.finish(&[9u8; 2000]).unwrap().sink
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn t41_label_decode_never_panics(bytes in hostile(a_label())) {
        let _ = Label::decode(&bytes);
    }

    #[test]
    fn t41_volume_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        let mut reader = VolumeReader::new(&bytes[..]);
        let _ = reader.read_label();
        for _ in 0..16 {
            match reader.next_member() {
                Ok(Some(member)) => {
                    let _ = reader.read_data(&member);
                }
                _ => break,
            }
        }
    }

    #[test]
    fn t41_tar_header_parse_never_panics(block in proptest::collection::vec(any::<u8>(), 512)) {
        let block: [u8; 512] = block.try_into().unwrap();
        let _ = tapevault::volume::parse_header(&block, 0);
    }

    #[test]
    fn t41_pack_and_index_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let key = MasterKey::random();
        let vault = VaultId::random();
        let volume = VolumeId::random();
        let volume_key = key.volume_key(&volume);
        let _ = tapevault::pack::read_entries(&bytes, &volume_key.pack_sealer(vault, 1));
        let _ = VolumeIndex::open(&bytes, vault, volume, 1, &volume_key);
    }

    #[test]
    fn t42_decompress_with_lying_lengths_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        claimed in 0usize..(4 << 20),
    ) {
        let _ = tapevault::compress::decompress(&bytes, claimed);
    }

    #[test]
    fn t41_repairing_reader_never_panics_nor_changes_the_length(
        bytes in prop_oneof![
            hostile(a_parity_volume()),
            // Whole blocks of noise where descriptors and shards should be.
            (0usize..600, proptest::collection::vec(any::<u8>(), 512..4096)).prop_map(|(block, noise)| {
                let mut bytes = a_parity_volume();
                let at = (block * 512).min(bytes.len());
                let end = (at + noise.len()).min(bytes.len());
                bytes[at..end].copy_from_slice(&noise[..end - at]);
                bytes
            }),
        ]
    ) {
        use std::io::Read;
        let mut reader = tapevault::parity::RepairingReader::new(&bytes[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        prop_assert_eq!(out.len(), bytes.len());
    }

    #[test]
    fn t41_paper_import_never_panics(text in "[0-9A-Za-z \\n:-]{0,400}") {
        let _ = tapevault::paper::import(&text);
    }
}

#[test]
fn t42_a_zstd_bomb_is_refused_at_its_claimed_size() {
    // 64 MiB of zeros compress to a few KiB; claiming 1 MiB must fail, not allocate 64 MiB.
    let bomb = tapevault::compress::compress(&vec![0u8; 64 << 20], 3);
    assert!(bomb.len() < 64 << 10);
    assert!(tapevault::compress::decompress(&bomb, 1 << 20).is_err());
}
