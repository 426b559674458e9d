use crate::util::*;

#[test]
fn t1_flipped_bit_names_the_file_and_the_rest_restores() {
    let env = two_volume_vault();
    let first = &env.volumes()[0];
    let mut bytes = std::fs::read(first).unwrap();
    // Inside the first pack's data: past the label member, well before the end.
    bytes[200_000] ^= 0x01;
    std::fs::write(first, bytes).unwrap();
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    let damaged = damaged_paths(&report);
    assert_eq!(damaged.len(), 1, "{report}");
    let name = damaged[0].rsplit('/').next().unwrap().to_string();
    let range = &report["damaged"][0]["missing"][0];
    assert!(range[1].as_u64().unwrap() > range[0].as_u64().unwrap());
    assert!(
        !landed.join(&name).exists(),
        "a damaged file must not carry its real name"
    );
    assert!(landed.join(format!("{name}.tapevault-partial")).exists());
    let other = if name == "alpha" { "beta" } else { "alpha" };
    assert_eq!(
        std::fs::read(landed.join(other)).unwrap(),
        std::fs::read(env.src().join(other)).unwrap()
    );
    assert_eq!(std::fs::read(landed.join("small")).unwrap(), b"small file");
}

#[test]
fn t12_lost_volume_names_every_file_and_the_rest_restores() {
    let env = two_volume_vault();
    copy_dir(&env.vault_dir(), &env.path("vault-copy"));
    let volumes = env.volumes();
    std::fs::remove_file(&volumes[0]).unwrap();
    // The plan says so before anything is read; the other volumes are planned as they are.
    let (code, plan, _) = run_json(env.tv(&["restore", "--plan", "--json"]));
    assert_eq!(code, 0, "{plan}");
    let lost = volumes[0].file_name().unwrap().to_str().unwrap();
    assert!(plan["volumes"].to_string().contains(lost), "{plan}");
    for volume in plan["volumes"].as_array().unwrap() {
        let expected = if volume["name"] == lost {
            "missing"
        } else {
            "sealed"
        };
        assert_eq!(volume["state"], expected, "{plan}");
    }
    let text = env.tv(&["restore", "--plan"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("MISSING"));
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    assert!(
        report["volume_errors"].to_string().contains("missing"),
        "{report}"
    );
    let damaged = damaged_paths(&report);
    assert!(!damaged.is_empty());
    for path in &damaged {
        let name = path.rsplit('/').next().unwrap();
        assert!(
            !landed.join(name).exists(),
            "{name} restored under its real name"
        );
    }
    let exact: Vec<&str> = ["alpha", "beta", "small"]
        .into_iter()
        .filter(|n| !damaged.iter().any(|d| d.ends_with(n)))
        .collect();
    assert!(
        !exact.is_empty(),
        "damage to one volume must not block the others"
    );
    for name in exact {
        assert_eq!(
            std::fs::read(landed.join(name)).unwrap(),
            std::fs::read(env.src().join(name)).unwrap()
        );
    }
    let plan = env.tv(&["volumes"]).output().unwrap();
    assert!(String::from_utf8_lossy(&plan.stdout).contains("MISSING"));

    // A copy of the vault (a second disk) fills the gap: exit 0, exact.
    let copy = format!("dir:{}", env.path("vault-copy").display());
    let (code, report, landed) = env.restore("from-copy", &["--copy-vault", &copy]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let lost_name = volumes[0].file_name().unwrap().to_str().unwrap();
    assert!(
        report["from_copies"].to_string().contains(lost_name),
        "{report}"
    );
    let (code, drill, _) = run_json(env.tv(&["drill", "--all", "--json", "--copy-vault", &copy]));
    assert_eq!(code, 0, "{drill}");
    // A copy that lacks the volume too changes nothing: still exit 4, still named.
    std::fs::remove_file(env.path("vault-copy").join(lost_name)).unwrap();
    let (code, report, _) = env.restore("from-bad-copy", &["--copy-vault", &copy]);
    assert_eq!(code, 4, "{report}");
    assert!(!damaged_paths(&report).is_empty());
}

#[test]
fn t10_truncation_sweep_loses_only_what_follows_the_cut() {
    let env = two_volume_vault();
    let first = env.volumes()[0].clone();
    let original = std::fs::read(&first).unwrap();
    let len = original.len();
    let (label_at, _) = member_range(&original, "label.tvl");
    let (pack_at, pack_len) = member_range(&original, "pack-000001.tvp");
    let (index_at, index_len) = member_range(&original, "index.tvi");
    // Inside the label, at a header, mid-blob, just before the index, mid-index,
    // one byte short, and an even sweep over the packs.
    let mut cuts = vec![
        0,
        label_at + 10,
        pack_at - 512,
        pack_at - 1,
        pack_at + pack_len / 2,
        index_at - 512 - 1,
        index_at - 512,
        index_at + index_len / 2,
        len - 1,
    ];
    cuts.extend((1..=24).map(|k| pack_at + (index_at - 512 - pack_at) * k / 25));
    for cut in cuts {
        std::fs::write(&first, &original[..cut]).unwrap();
        let (code, report, landed) = env.restore(&format!("out-{cut}"), &[]);
        let lost = damaged_paths(&report);
        if cut >= index_at - 512 {
            // Every pack is whole: nothing a restore needs was cut.
            assert_eq!(code, 0, "cut at {cut}: {report}");
            assert_eq!(
                std::fs::read(landed.join("alpha")).unwrap(),
                std::fs::read(env.src().join("alpha")).unwrap()
            );
        } else {
            assert_eq!(code, 4, "cut at {cut}: {report}");
            assert!(!lost.is_empty(), "cut at {cut}: {report}");
            assert!(
                report["volume_errors"].to_string().contains("truncated"),
                "cut at {cut}: {report}"
            );
        }
        // Whatever was not named is exact, and the other volume never suffers.
        for name in ["alpha", "beta", "small"] {
            if !lost.iter().any(|p| p.ends_with(name)) {
                assert_eq!(
                    std::fs::read(landed.join(name)).unwrap(),
                    std::fs::read(env.src().join(name)).unwrap(),
                    "cut at {cut}: {name}"
                );
            }
        }
    }
}

#[test]
fn t13_foreign_volume_in_place_is_named_as_wrong() {
    let env = two_volume_vault();
    let volumes = env.volumes();
    std::fs::copy(&volumes[1], &volumes[0]).unwrap();
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    assert!(
        report["volume_errors"].to_string().contains("wrong volume"),
        "{report}"
    );
}

#[test]
fn t17_catalog_rebuilt_from_the_vault_alone_restores_exactly() {
    let env = Env::new();
    every_kind_tree(&env.src());
    env.backup(&[]);
    std::fs::write(env.src().join("text/small.txt"), b"second day\n").unwrap();
    env.backup(&[]);
    let before = env.tv(&["snapshots", "--json"]).output().unwrap().stdout;
    let volumes_before = env.tv(&["volumes", "--json"]).output().unwrap().stdout;
    let vault_before = tree_hash(&env.vault_dir());
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    let (code, summary, stderr) = run_json(env.tv(&["catalog", "rebuild", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    // Labels and indexes only, by ranged reads (8 KiB at the head, 256 KiB at the
    // tail); just the newest volume is also read whole, for its hash (no later index
    // vouches for it).
    let volumes = env.volumes();
    assert!(volumes.len() >= 3, "{volumes:?}");
    let newest = std::fs::metadata(volumes.last().unwrap()).unwrap().len();
    let others = (volumes.len() as u64 - 1) * ((8 + 256) << 10);
    let newest = 3 * newest;
    let read = summary["bytes_read"].as_u64().unwrap();
    assert!(read <= newest + others, "read {read} bytes: {summary}");
    assert_eq!(
        env.tv(&["snapshots", "--json"]).output().unwrap().stdout,
        before
    );
    assert_eq!(
        env.tv(&["volumes", "--json"]).output().unwrap().stdout,
        volumes_before
    );
    assert_eq!(
        tree_hash(&env.vault_dir()),
        vault_before,
        "rebuild must not touch the vault"
    );
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    // The rebuilt catalog dedups: an unchanged backup stores almost nothing.
    let again = env.backup(&[]);
    assert_eq!(again["snapshot"]["stats"]["bytes_added"], 0, "{again}");
}

#[test]
fn t13_rebuild_over_garbage_or_with_a_wrong_passphrase_fails_clearly() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    env.backup(&[]);
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    std::fs::write(env.path("pass"), "not it").unwrap();
    let out = env.tv(&["catalog", "rebuild"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    std::fs::remove_dir_all(env.path("catalog")).ok();
    std::fs::write(env.path("pass"), PASSPHRASE).unwrap();
    for entry in std::fs::read_dir(env.vault_dir()).unwrap() {
        std::fs::write(entry.unwrap().path(), noise(5000, 3)).unwrap();
    }
    let out = env.tv(&["catalog", "rebuild"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no readable tapevault label"));
}

#[test]
fn t11_keyless_verify_finds_truncated_flipped_and_missing_volumes() {
    let env = two_volume_vault();
    // No passphrase anywhere: verify must never need one.
    std::fs::remove_file(env.path("pass")).unwrap();
    let verify = |env: &Env| {
        let out = env.tv(&["verify", "--json"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), report)
    };
    let (code, report) = verify(&env);
    assert_eq!(code, 0, "{report}");
    let volumes = env.volumes();
    let name = |p: &std::path::PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
    let mut bytes = std::fs::read(&volumes[0]).unwrap();
    bytes[700] ^= 0x80;
    std::fs::write(&volumes[0], &bytes).unwrap();
    let second = std::fs::read(&volumes[1]).unwrap();
    std::fs::write(&volumes[1], &second[..second.len() - 512]).unwrap();
    let (code, report) = verify(&env);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["damaged"][0]["name"], name(&volumes[0]));
    assert!(report["damaged"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("BLAKE3"));
    assert_eq!(report["damaged"][1]["name"], name(&volumes[1]));
    assert!(report["damaged"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    std::fs::remove_file(&volumes[1]).unwrap();
    std::fs::write(
        env.vault_dir().join("tv000009-deadbeef.tar.partial"),
        b"half",
    )
    .unwrap();
    let (code, report) = verify(&env);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["missing"][0]["name"], name(&volumes[1]));
    assert_eq!(report["abandoned"][0], "tv000009-deadbeef.tar");
}

/// A volume whose bytes are exactly as sealed can still be one the strict reader
/// refuses (builds before the index limit wrote indexes over 64 MiB): keyless verify
/// walks the member headers and says so, where it used to compare the hash only.
#[test]
fn keyless_verify_finds_a_volume_the_reader_refuses_though_its_hash_matches() {
    let env = two_volume_vault();
    std::fs::remove_file(env.path("pass")).unwrap();
    let first = env.volumes()[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    let (data_at, _) = member_range(&bytes, "pack-000001.tvp");
    let header = &mut bytes[data_at - 512..data_at];
    let mut renamed = tar::Header::from_byte_slice(header).clone();
    renamed.set_path("pack-000001.tvx").unwrap();
    renamed.set_cksum();
    header.copy_from_slice(renamed.as_bytes());
    std::fs::write(&first, &bytes).unwrap();
    // The catalog records the bytes as they now are, as if a writer had sealed them so.
    let mut catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
    let row = catalog.volumes().unwrap()[0].clone();
    let hash = blake3::hash(&bytes).to_hex().to_string();
    catalog
        .set_volume_hash(row.sequence, bytes.len() as u64, &hash)
        .unwrap();
    drop(catalog);
    let (code, report, stderr) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 4, "{report} {stderr}");
    assert_eq!(report["damaged"].as_array().unwrap().len(), 1, "{report}");
    let reason = report["damaged"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("a reader refuses them")
            && reason.contains("not a tapevault volume member"),
        "{reason}"
    );
}

#[test]
fn a_rebuild_that_fails_half_way_leaves_no_catalog_behind() {
    let env = two_volume_vault();
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    // Labels stay readable (the key is found) but every volume's body is cut short.
    for volume in env.volumes() {
        let bytes = std::fs::read(&volume).unwrap();
        std::fs::write(&volume, &bytes[..2048]).unwrap();
    }
    let out = env.tv(&["catalog", "rebuild"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !env.path("catalog/catalog.sqlite").exists(),
        "a failed rebuild left a catalog"
    );
    let out = env.tv(&["catalog", "rebuild"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("already exists"),
        "the retry must not be blocked: {err}"
    );
}

/// Total bytes of a damaged file's missing ranges in a report.
fn missing_bytes(report: &serde_json::Value, name: &str) -> u64 {
    report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["path"].as_str().unwrap().ends_with(name))
        .flat_map(|d| d["missing"].as_array().unwrap().clone())
        .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap())
        .sum()
}

#[test]
fn t5_t6_a_broken_header_or_zeroed_blocks_lose_only_the_damaged_bytes() {
    let env = two_volume_vault();
    let first = env.volumes()[0].clone();
    let original = std::fs::read(&first).unwrap();
    let (pack_at, _) = member_range(&original, "pack-000001.tvp");
    let header = pack_at - 512;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut bad_sum = original.clone();
    bad_sum[header + 150] ^= 0x01;
    cases.push(("bad checksum", bad_sum));
    let mut absurd = original.clone();
    absurd[header + 124..header + 135].copy_from_slice(b"77777777777");
    cases.push(("absurd size", absurd));
    let mut zeroed = original.clone();
    zeroed[header..header + 4096].fill(0);
    cases.push(("zeroed blocks", zeroed));
    for (case, bytes) in cases {
        std::fs::write(&first, &bytes).unwrap();
        let into = format!("out-{}", case.replace(' ', "-"));
        let (code, report, landed) = env.restore(&into, &[]);
        // The catalog knows where the pack lies: a lost header costs nothing, zeroed
        // blocks cost only the blobs they overlap.
        assert!(
            report["warnings"]
                .to_string()
                .contains("where the catalog places it"),
            "{case}: {report}"
        );
        let lost: u64 = ["alpha", "beta"]
            .iter()
            .map(|n| missing_bytes(&report, n))
            .sum();
        if case == "zeroed blocks" {
            assert_eq!(code, 4, "{case}: {report}");
            assert!(
                lost > 0 && lost <= 2 * (2 << 20),
                "{case}: {lost} bytes lost: {report}"
            );
        } else {
            assert_eq!(code, 3, "{case}: {report}");
            assert_eq!(lost, 0, "{case}: {report}");
        }
        assert_eq!(std::fs::read(landed.join("small")).unwrap(), b"small file");
        let exact: Vec<&str> = ["alpha", "beta"]
            .into_iter()
            .filter(|n| missing_bytes(&report, n) == 0)
            .collect();
        for name in exact {
            assert_eq!(
                std::fs::read(landed.join(name)).unwrap(),
                std::fs::read(env.src().join(name)).unwrap()
            );
        }
        // A rebuild reads only label and index, keeps the snapshot, and takes the
        // volume's hash as sealed from the next index: keyless verify still names it.
        let name = format!("catalog-{}", case.replace(' ', "-"));
        let catalog = env.path(&name);
        let (code, summary, stderr) = rebuild_into(&env, &name);
        assert_eq!(code, 0, "{case}: {stderr}");
        assert_eq!(summary["snapshots"], 1, "{case}: {summary}");
        let (code, verify, _) =
            run_json(env.tv(&["verify", "--json", "--catalog", catalog.to_str().unwrap()]));
        assert_eq!(code, 4, "{case}: {verify}");
    }
}

#[test]
fn t3_t5_a_scan_past_a_broken_header_recovers_the_packs_after_it() {
    // Packs close at 1 MiB and hold at most 3 MiB (one 2 MiB chunk over), so with
    // 8 MiB volumes the first always holds a second pack after the broken one, and
    // 12 MiB of data needs a later volume: the snapshot survives the broken index.
    let env = Env::new();
    std::fs::write(env.src().join("alpha"), noise(6 << 20, 21)).unwrap();
    std::fs::write(env.src().join("beta"), noise(6 << 20, 22)).unwrap();
    std::fs::write(env.src().join("small"), b"small file").unwrap();
    let src = env.src();
    env.tv(&["backup", src.to_str().unwrap(), "--volume-size", "8M"])
        .assert()
        .success();
    assert!(env.volumes().len() >= 2);
    let first = env.volumes()[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    let (pack_at, _) = member_range(&bytes, "pack-000001.tvp");
    let (index_at, index_len) = member_range(&bytes, "index.tvi");
    bytes[pack_at - 512 + 150] ^= 0x01;
    bytes[index_at + index_len / 2] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    let catalog = env.path("rebuilt");
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 3, "{stderr}");
    assert!(
        summary["problems"]
            .to_string()
            .contains("recovered by scanning"),
        "{summary}"
    );
    let (code, report, landed) = env.restore("out", &["--catalog", catalog.to_str().unwrap()]);
    assert_eq!(code, 4, "{report}");
    let lost: u64 = ["alpha", "beta"]
        .iter()
        .map(|n| missing_bytes(&report, n))
        .sum();
    assert!(lost > 0 && lost <= 3 << 20, "{lost} bytes lost: {report}");
    assert_eq!(std::fs::read(landed.join("small")).unwrap(), b"small file");
}

#[test]
fn t19_a_lost_volume_heals_with_the_next_backup() {
    let env = two_volume_vault();
    let first = env.volumes()[0].clone();
    std::fs::remove_file(&first).unwrap();
    // No verify in between: the backup itself notices the loss and never dedups against it.
    let out = env
        .tv(&[
            "backup",
            env.src().to_str().unwrap(),
            "--volume-size",
            "4M",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "the loss is a warning");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["warnings"]
            .to_string()
            .contains("missing from the vault"),
        "{summary}"
    );
    assert!(
        summary["snapshot"]["stats"]["bytes_added"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The new snapshot restores exactly without the lost volume.
    let (code, report, landed) = env.restore("new", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    // The old snapshot shares those chunks: it is healed too, and reads only what exists.
    let snapshots = env.tv(&["snapshots", "--json"]).output().unwrap().stdout;
    let snapshots: serde_json::Value = serde_json::from_slice(&snapshots).unwrap();
    let old = snapshots["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, report, landed) = env.restore("old", &[&old]);
    assert_eq!(code, 0, "{report}");
    let lost_name = first.file_name().unwrap().to_str().unwrap();
    assert!(!report["volumes_read"].to_string().contains(lost_name));
    assert_same_tree(&env.src(), &landed);
    // The catalog keeps the lost volume, recorded as missing, never dropped.
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    assert_eq!(volumes["volumes"][0]["state"], "missing", "{volumes}");
}

#[test]
fn t63_an_empty_listing_is_never_taken_for_a_lost_vault() {
    let env = two_volume_vault();
    // The disk is not mounted: the folder is there, empty.
    let away = env.path("vault-away");
    std::fs::rename(env.vault_dir(), &away).unwrap();
    std::fs::create_dir(env.vault_dir()).unwrap();
    let (code, _, stderr) = run_json(env.tv(&["backup", env.src().to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is it mounted"), "{stderr}");
    assert_eq!(std::fs::read_dir(env.vault_dir()).unwrap().count(), 0);
    // Nothing was marked missing: with the disk back, nothing is stored again.
    std::fs::remove_dir(env.vault_dir()).unwrap();
    std::fs::rename(&away, env.vault_dir()).unwrap();
    let again = env.backup(&[]);
    assert_eq!(again["snapshot"]["stats"]["bytes_added"], 0, "{again}");
}

#[test]
fn t16_report_text_and_json_agree_and_partial_files_never_look_complete() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    // Names that must be escaped: a byte that is not UTF-8, and a backslash.
    let weird = [&b"a\xffz"[..], &b"b\\c"[..]];
    for (i, name) in weird.iter().enumerate() {
        let path = env.src().join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(&path, noise(3 << 20, 40 + i as u64)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // An old mtime: a partial copy must not carry it.
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 1_000_000_000,
                    tv_nsec: 0,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 1_000_000_000,
                    tv_nsec: 0,
                },
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    let summary = env.backup(&[]);
    let snapshot = summary["snapshot"]["id"].as_str().unwrap().to_string();
    // T12 (a lost volume) and T10 (a cut one), each reported in JSON and in text.
    let volumes = env.volumes();
    let original = std::fs::read(&volumes[0]).unwrap();
    for (case, damage) in [("lost", 0usize), ("cut", original.len() / 2)] {
        if damage == 0 {
            std::fs::remove_file(&volumes[0]).unwrap();
        } else {
            std::fs::write(&volumes[0], &original[..damage]).unwrap();
        }
        let (code, report, landed) = env.restore(&format!("json-{case}"), &[]);
        assert_eq!(code, 4, "{case}: {report}");
        assert_eq!(report["snapshot"], snapshot.as_str());
        let target = env.path(&format!("text-{case}"));
        let text = env
            .tv(&["restore", "--target", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(text.status.code(), Some(4));
        let stderr = String::from_utf8_lossy(&text.stderr);
        let damaged = report["damaged"].as_array().unwrap();
        assert!(!damaged.is_empty(), "{case}: {report}");
        for entry in damaged {
            let path = entry["path"].as_str().unwrap();
            assert!(
                path.ends_with("/a\\xffz") || path.ends_with("/b\\x5cc"),
                "{case}: paths are escaped: {path}"
            );
            let ranges: Vec<String> = entry["missing"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| format!("{}-{}", r[0], r[1]))
                .collect();
            let kept = entry["kept_as"].as_str().unwrap();
            let line = format!(
                "tapevault: damaged: /{path}: {} (bytes {}); incomplete copy left as /{kept}",
                entry["reason"].as_str().unwrap(),
                ranges.join(", ")
            );
            assert!(
                stderr.contains(&line),
                "{case}: text lacks {line:?}:\n{stderr}"
            );
            // The partial copy: suffixed, never the real name, and not dressed as complete.
            let name = weird
                .iter()
                .find(|n| kept.starts_with(&*String::from_utf8_lossy(&n[..1])))
                .unwrap();
            let real = landed.join(std::ffi::OsStr::from_bytes(name));
            assert!(
                !real.exists(),
                "{case}: {} kept its real name",
                real.display()
            );
            let mut partial_name = name.to_vec();
            partial_name.extend_from_slice(b".tapevault-partial");
            let partial =
                std::fs::metadata(landed.join(std::ffi::OsStr::from_bytes(&partial_name))).unwrap();
            assert_eq!(partial.mode() & 0o777, 0o600, "{case}");
            assert_ne!(partial.mtime(), 1_000_000_000, "{case}");
        }
        std::fs::write(&volumes[0], &original).unwrap();
    }
}

#[test]
fn t2_a_flip_in_blob_framing_loses_that_blob_only() {
    let env = Env::new();
    // One blob per file (under the smallest chunk), so each blob is one file.
    let names: Vec<String> = (0..12).map(|i| format!("f{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        std::fs::write(env.src().join(name), noise(100 << 10, 70 + i as u64)).unwrap();
    }
    env.backup(&[]);
    let catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
    let snapshot = catalog.find_snapshot("latest").unwrap();
    // Where each file's blob lies in the first volume: (name, pack, start, end).
    let mut blobs = Vec::new();
    catalog
        .for_each_node(&snapshot.id, |node| {
            if let Some(chunk) = node.chunks.first() {
                let loc = catalog
                    .blob_location(&chunk.id, tapevault::crypto::BlobKind::Data)?
                    .unwrap();
                if loc.sequence == 1 {
                    let start = (loc.pack_offset + loc.offset) as usize;
                    let name = node.path.escaped().rsplit('/').next().unwrap().to_string();
                    blobs.push((name, loc.pack, start, start + loc.sealed_len as usize));
                }
            }
            Ok(())
        })
        .unwrap();
    drop(catalog);
    blobs.sort_by_key(|b| b.2);
    assert!(blobs.len() >= 4, "{blobs:?}");
    let volume = env.volumes()[0].clone();
    let original = std::fs::read(&volume).unwrap();
    let (pack_at, pack_len) = member_range(&original, "pack-000001.tvp");
    let header_at = blobs
        .iter()
        .filter(|b| b.1 == 1)
        .map(|b| b.3)
        .max()
        .unwrap();
    let (first, second) = (&blobs[1], &blobs[2]);
    // (where, which file loses its blob, if any)
    let cases = [
        ("first ciphertext byte", first.2, Some(first.0.clone())),
        ("authentication tag", second.3 - 1, Some(second.0.clone())),
        ("sealed pack header", header_at + 3, None),
        ("pack trailer length", pack_at + pack_len - 16, None),
    ];
    for (case, at, lost) in cases {
        let mut damaged = original.clone();
        damaged[at] ^= 0x40;
        std::fs::write(&volume, &damaged).unwrap();
        let (code, report, landed) = env.restore(&format!("out-{}", case.replace(' ', "-")), &[]);
        let named: Vec<String> = damaged_paths(&report)
            .iter()
            .map(|p| p.rsplit('/').next().unwrap().to_string())
            .collect();
        match &lost {
            Some(name) => {
                assert_eq!(code, 4, "{case}: {report}");
                assert_eq!(named, vec![name.clone()], "{case}: {report}");
            }
            // The catalog frames blobs: the header and trailer are for scans only.
            None => {
                assert_eq!(code, 0, "{case}: {report}");
                assert!(named.is_empty(), "{case}: {report}");
            }
        }
        // The following blobs are not mis-framed: every other file is exact.
        for name in names.iter().filter(|n| Some(*n) != lost.as_ref()) {
            assert_eq!(
                std::fs::read(landed.join(name)).unwrap(),
                std::fs::read(env.src().join(name)).unwrap(),
                "{case}: {name}"
            );
        }
        // Keyless verify names the volume in every case.
        let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
        assert_eq!(code, 4, "{case}: {verify}");
        std::fs::write(&volume, &original).unwrap();
    }
}

#[test]
fn t14_renamed_and_renumbered_volume_files_are_found_by_their_id() {
    let env = two_volume_vault();
    let volumes = env.volumes();
    // One renamed by hand, one renumbered (as a careless copy script might).
    let first = volumes[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let second = volumes[1]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    std::fs::rename(&volumes[0], env.vault_dir().join("monday.tar")).unwrap();
    let renumbered = format!("tv000042{}", &second[8..]);
    std::fs::rename(&volumes[1], env.vault_dir().join(&renumbered)).unwrap();
    // A foreign file with a volume-like name is not taken for either.
    std::fs::write(
        env.vault_dir().join("tv000007-00000000.tar"),
        noise(4096, 1),
    )
    .unwrap();

    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let (code, listing, err) = run_json(env.tv(&["volumes", "--json"]));
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = listing["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"monday.tar") && names.contains(&renumbered.as_str()),
        "{listing}"
    );
    assert!(!names.contains(&first.as_str()), "{listing}");
    let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 3, "{verify}");
    assert_eq!(
        verify["extra"],
        serde_json::json!(["tv000007-00000000.tar"])
    );
}
