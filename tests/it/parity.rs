//! Parity inside volumes (`--parity`): a burst of damage within the documented bound
//! is repaired and reported (exit 3); one shard past it is damage, named exactly (exit 4).

use crate::util::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A vault of 8 MiB volumes at `--parity 10`: (env, its first volume, that volume's
/// bytes, the burst bound, the shard size), both read from the volume's own label as
/// docs/FORMAT.md defines them.
fn parity_vault() -> (Env, PathBuf, Vec<u8>, usize, usize) {
    let env = Env::new();
    // Files under the smallest chunk are one blob each, so damage maps to files exactly.
    for i in 0..60 {
        std::fs::write(env.src().join(format!("f{i:02}")), noise(150 << 10, i)).unwrap();
    }
    let src = env.src();
    env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "8M",
        "--parity",
        "10",
    ])
    .assert()
    .success();
    let first = env.volumes()[0].clone();
    let bytes = std::fs::read(&first).unwrap();
    let (at, len) = member_range(&bytes, "label.tvl");
    let label: serde_json::Value =
        serde_json::from_slice(&bytes[at + "tapevault-label v1\n".len()..at + len]).unwrap();
    let percent = label["parity"]["percent"].as_u64().unwrap() as usize;
    let shard = label["parity"]["shard_bytes"].as_u64().unwrap() as usize;
    assert_eq!(percent, 10);
    let bound = ((256 * percent).div_ceil(100) - 1) * shard;
    // An 8 MiB volume is one 8 MiB segment of 32 KiB shards: 25 shards, 800 KiB.
    assert_eq!(bound, 800 << 10);
    (env, first, bytes, bound, shard)
}

/// Overwrite `len` bytes at `at` (clipped to the volume) with noise or zeros.
fn burst(volume: &Path, original: &[u8], at: usize, len: usize, zeros: bool) -> Vec<u8> {
    let mut damaged = original.to_vec();
    let end = (at + len).min(damaged.len());
    if zeros {
        damaged[at..end].fill(0);
    } else {
        damaged[at..end].copy_from_slice(&noise(end - at, at as u64 + 99));
    }
    std::fs::write(volume, &damaged).unwrap();
    damaged
}

/// Every byte that differs from the original lies in a reported repair of `volume`.
fn assert_repairs_cover(
    repaired: &serde_json::Value,
    volume: &str,
    original: &[u8],
    damaged: &[u8],
) {
    let ranges: Vec<(u64, u64)> = repaired
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["volume"] == volume)
        .map(|r| {
            let at = r["offset"].as_u64().unwrap();
            (at, at + r["length"].as_u64().unwrap())
        })
        .collect();
    assert!(!ranges.is_empty(), "no repair reported: {repaired}");
    for i in (0..original.len()).filter(|&i| original[i] != damaged[i]) {
        let i = i as u64;
        assert!(
            ranges.iter().any(|(from, to)| (*from..*to).contains(&i)),
            "damaged byte {i} is in no reported repair {ranges:?}"
        );
    }
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn t7_t9_a_burst_at_the_bound_anywhere_is_repaired_exactly_and_reported() {
    let (env, first, original, bound, _) = parity_vault();
    let volume = name_of(&first);
    let (pack2, _) = member_range(&original, "pack-000002.tvp");
    let cases = [
        // T9: the label member and the first pack's header.
        ("start", 0, false),
        ("middle", original.len() / 2, true),
        // T9: the index, the last parity member and the end blocks.
        ("end", original.len() - bound, false),
        // T9: across a member boundary, tar header included.
        ("boundary", pack2 - 512 - bound / 2, false),
    ];
    for (i, (case, at, zeros)) in cases.into_iter().enumerate() {
        let damaged = burst(&first, &original, at, bound, zeros);
        let (code, report, landed) = env.restore(&format!("out-{i}"), &[]);
        assert_eq!(code, 3, "{case}: {report}");
        assert_same_tree(&env.src(), &landed);
        // A restore stops before the end blocks, which it does not need.
        let end_blocks = original.len() - 1024;
        assert_repairs_cover(
            &report["repaired"],
            &volume,
            &original[..end_blocks],
            &damaged[..end_blocks],
        );
        // Keyless verify reads it all: whole once repaired, exit 3.
        let (code, report, _) = run_json(env.tv(&["verify", "--json"]));
        assert_eq!(code, 3, "{case}: {report}");
        assert_eq!(report["damaged"].as_array().unwrap().len(), 0, "{report}");
        assert_repairs_cover(&report["repaired"], &volume, &original, &damaged);
        if case == "middle" {
            let (code, report, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
            assert_eq!(code, 3, "{case}: {report}");
            assert_eq!(report["damaged_files"].as_array().unwrap().len(), 0);
            assert_repairs_cover(&report["repaired"], &volume, &original, &damaged);
            // A drill reads through the same repair and says so.
            let (code, report, _) = run_json(env.tv(&["drill", "--all", "--json"]));
            assert_eq!(code, 3, "{case}: {report}");
            assert_eq!(report["files_checked"], 60, "{report}");
            assert!(
                !report["repaired"].as_array().unwrap().is_empty(),
                "{report}"
            );
        }
        if case == "start" {
            // A rebuild reaches the damaged label through the parity as well.
            let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
            assert!(code == 0 || code == 3, "{stderr}");
            assert_eq!(summary["snapshots"], 1, "{summary}");
        }
    }
    std::fs::write(&first, &original).unwrap();
    let (code, report, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 0, "the original bytes are whole again: {report}");
}

#[test]
fn t8_a_burst_one_shard_past_the_bound_names_exactly_the_files_it_took() {
    let (env, first, original, bound, shard) = parity_vault();
    // Mid-shard, in the packs: it touches one shard more than parity can rebuild.
    let at = original.len() / 3 / shard * shard + shard / 2;
    let len = bound + shard;
    burst(&first, &original, at, len, false);

    // The files whose one blob overlaps the burst, from the catalog's blob locations.
    let catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
    let snapshot = catalog.find_snapshot("latest").unwrap();
    let mut expected = BTreeSet::new();
    catalog
        .for_each_node(&snapshot.id, |node| {
            for chunk in &node.chunks {
                let loc = catalog
                    .blob_location(&chunk.id, tapevault::crypto::BlobKind::Data)?
                    .unwrap();
                let from = (loc.pack_offset + loc.offset) as usize;
                let to = from + loc.sealed_len as usize;
                if loc.sequence == 1 && from < at + len && at < to {
                    let path = node.path.escaped();
                    expected.insert(path.rsplit('/').next().unwrap().to_string());
                }
            }
            Ok(())
        })
        .unwrap();
    drop(catalog);
    assert!(!expected.is_empty());

    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    let named: BTreeSet<String> = damaged_paths(&report)
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(named, expected, "{report}");
    for entry in std::fs::read_dir(env.src()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if expected.contains(&name) {
            assert!(!landed.join(&name).exists(), "{name} kept its real name");
        } else {
            assert_eq!(
                std::fs::read(landed.join(&name)).unwrap(),
                std::fs::read(env.src().join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    assert!(
        report["warnings"]
            .to_string()
            .contains("more than parity repairs"),
        "{report}"
    );
    let (code, report, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 4, "{report}");
}

#[test]
fn parity_percent_out_of_range_is_refused_before_anything_is_written() {
    let env = Env::new();
    std::fs::write(env.src().join("a"), b"a").unwrap();
    let src = env.src();
    let out = env
        .tv(&["backup", src.to_str().unwrap(), "--parity", "60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--parity 60"), "{stderr}");
    assert!(env.volumes().is_empty());
}
