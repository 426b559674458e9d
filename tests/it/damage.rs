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
    let volumes = env.volumes();
    std::fs::remove_file(&volumes[0]).unwrap();
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
