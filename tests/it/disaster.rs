use crate::util::*;

fn name_of(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

fn assert_file_restored(env: &Env, landed: &std::path::Path, name: &str) {
    assert_eq!(
        std::fs::read(landed.join(name)).unwrap(),
        std::fs::read(env.src().join(name)).unwrap(),
        "{name}"
    );
}

fn assert_all_restored(env: &Env, landed: &std::path::Path) {
    for name in ["alpha", "beta", "small"] {
        assert_file_restored(env, landed, name);
    }
}

/// Replace bytes in place (same length), so tar framing stays intact.
fn patch(path: &std::path::Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{} not in {path:?}", String::from_utf8_lossy(from)));
    bytes[at..at + to.len()].copy_from_slice(to);
    std::fs::write(path, bytes).unwrap();
}

fn restore_with_catalog(env: &Env, catalog: &str, into: &str) -> (i32, serde_json::Value) {
    let catalog = env.path(catalog);
    let (code, report, _) = env.restore(into, &["--catalog", catalog.to_str().unwrap()]);
    (code, report)
}

#[test]
fn t3_a_damaged_or_cut_index_is_recovered_by_scanning_packs() {
    let env = two_volume_vault();
    let first = env.volumes()[0].clone();
    let original = std::fs::read(&first).unwrap();
    let (index_at, index_len) = member_range(&original, "index.tvi");
    let flipped = {
        let mut bytes = original.clone();
        bytes[index_at + index_len / 2] ^= 0x04;
        bytes
    };
    let cut = original[..index_at + index_len / 2].to_vec();
    for (case, bytes) in [("flipped", flipped), ("cut", cut)] {
        std::fs::write(&first, &bytes).unwrap();
        let catalog = format!("catalog-{case}");
        let (code, summary, stderr) = rebuild_into(&env, &catalog);
        assert_eq!(code, 3, "{case}: {summary} {stderr}");
        let problems = summary["problems"].to_string();
        assert!(
            problems.contains(&name_of(&first)) && problems.contains("recovered by scanning"),
            "{case}: {problems}"
        );
        assert_eq!(summary["snapshots"], 1, "{case}: {summary}");
        let (code, report) = restore_with_catalog(&env, &catalog, &format!("out-{case}"));
        assert_eq!(code, 0, "{case}: {report}");
        assert_all_restored(
            &env,
            &env.path(&format!("out-{case}"))
                .join(env.src().strip_prefix("/").unwrap()),
        );
    }
}

#[test]
fn t4_a_damaged_label_never_costs_the_body() {
    let env = two_volume_vault();
    let first = env.volumes()[0].clone();
    let original = std::fs::read(&first).unwrap();
    let label = String::from_utf8_lossy({
        let (at, len) = member_range(&original, "label.tvl");
        &original[at..at + len]
    })
    .into_owned();
    let vault_id = label.split("\"vault_id\":\"").nth(1).unwrap()[..32].to_string();
    let mut other_id = vault_id.clone().into_bytes();
    other_id[0] = if other_id[0] == b'a' { b'b' } else { b'a' };
    let cases: [(&str, &[u8], Vec<u8>); 4] = [
        (
            "magic",
            b"tapevault-label v1",
            b"tapevault-lab3l v1".to_vec(),
        ),
        (
            "version",
            b"\"format_version\":1",
            b"\"format_version\":7".to_vec(),
        ),
        ("vault id", vault_id.as_bytes(), other_id),
        ("json", b"{\"format\"", b"[\"format\"".to_vec()),
    ];
    for (case, from, to) in cases {
        std::fs::write(&first, &original).unwrap();
        patch(&first, from, &to);
        let into = format!("out-{}", case.replace(' ', "-"));
        let (code, report, landed) = env.restore(&into, &[]);
        assert_eq!(code, 3, "{case}: {report}");
        assert!(
            report["warnings"].to_string().contains(&name_of(&first)),
            "{case}: {report}"
        );
        assert_all_restored(&env, &landed);
    }
    // Rebuild: the damaged label's volume is identified by the next volume's set list.
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 3, "{summary} {stderr}");
    assert!(
        summary["problems"]
            .to_string()
            .contains("identified by a later volume"),
        "{summary}"
    );
    assert_eq!(
        summary["volumes"].as_array().unwrap().len(),
        env.volumes().len()
    );
    let (code, report) = restore_with_catalog(&env, "rebuilt", "out-rebuilt");
    assert_eq!(code, 3, "{report}");
    assert_all_restored(
        &env,
        &env.path("out-rebuilt")
            .join(env.src().strip_prefix("/").unwrap()),
    );
}

fn deep_verify(env: &Env, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["verify", "--deep", "--json"];
    args.extend_from_slice(extra);
    run_json(env.tv(&args))
}

fn deep_damaged_files(report: &serde_json::Value) -> Vec<String> {
    report["damaged_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn t1_t10_flipped_byte_and_truncation_are_found_by_quick_and_deep_verify() {
    let env = two_volume_vault();
    // A second snapshot sharing every chunk: deep verify names the file in both.
    env.backup(&[]);
    let (code, report, _) = deep_verify(&env, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["files_checked"], 6, "{report}");
    let first = env.volumes()[0].clone();
    let original = std::fs::read(&first).unwrap();
    let (pack_at, pack_len) = member_range(&original, "pack-000001.tvp");
    let mut flipped = original.clone();
    flipped[pack_at + pack_len / 3] ^= 0x10;
    let cut = original[..pack_at + pack_len / 2].to_vec();
    for (case, bytes) in [("flipped", flipped), ("truncated", cut)] {
        std::fs::write(&first, &bytes).unwrap();
        let (code, quick, _) = run_json(env.tv(&["verify", "--json"]));
        assert_eq!(code, 4, "{case}: {quick}");
        assert_eq!(quick["damaged"][0]["name"], name_of(&first), "{case}");

        let (code, deep, _) = deep_verify(&env, &[]);
        assert_eq!(code, 4, "{case}: {deep}");
        let files = deep_damaged_files(&deep);
        assert!(!files.is_empty(), "{case}: {deep}");
        assert!(
            files.iter().all(|f| f == "alpha" || f == "beta"),
            "{case}: only big files live in packs that can be hit: {deep}"
        );
        let snapshots: std::collections::HashSet<&str> = deep["damaged_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["snapshot"].as_str().unwrap())
            .collect();
        assert_eq!(
            snapshots.len(),
            2,
            "{case}: both snapshots are named: {deep}"
        );
        let range = &deep["damaged_files"][0]["missing"][0];
        assert!(
            range[1].as_u64().unwrap() > range[0].as_u64().unwrap(),
            "{deep}"
        );
        assert!(!deep["damaged_blobs"].as_array().unwrap().is_empty());
        // The restore agrees with deep verify on which files are lost.
        let (code, restored, _) = env.restore(&format!("out-{case}"), &[]);
        assert_eq!(code, 4);
        let mut lost = damaged_paths(&restored)
            .iter()
            .map(|p| p.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>();
        lost.sort();
        let mut named = files.clone();
        named.sort();
        named.dedup();
        assert_eq!(lost, named, "{case}");
    }
    let volumes = env.tv(&["volumes"]).output().unwrap().stdout;
    assert!(
        String::from_utf8_lossy(&volumes).contains("damaged"),
        "verify records the state"
    );
}

#[test]
fn t66_keyless_verify_never_asks_and_deep_finds_what_it_cannot() {
    let env = two_volume_vault();
    let volumes = env.volumes();
    let flip_in_first_pack = |volume: &std::path::Path| {
        let mut bytes = std::fs::read(volume).unwrap();
        let (pack_at, pack_len) = member_range(&bytes, "pack-000001.tvp");
        bytes[pack_at + pack_len / 2] ^= 0x01;
        std::fs::write(volume, &bytes).unwrap();
    };
    // Damage done before a rebuild is still found without the key: the rebuilt
    // catalog takes each volume's hash as sealed from the next volume's index.
    flip_in_first_pack(&volumes[0]);
    let (code, _, stderr) = rebuild_into(&env, "rebuilt-1");
    assert_eq!(code, 0, "{stderr}");
    std::fs::rename(env.path("pass"), env.path("pass.away")).unwrap();
    let keyless = |catalog: &str| {
        let catalog = env.path(catalog);
        run_json(env.tv(&["verify", "--json", "--catalog", catalog.to_str().unwrap()]))
    };
    let (code, quick, stderr) = keyless("rebuilt-1");
    assert_eq!(
        code, 4,
        "keyless verify needs no passphrase: {quick} {stderr}"
    );
    assert_eq!(quick["damaged"][0]["name"], name_of(&volumes[0]));

    // The newest volume has no later index to vouch for it: a rebuild after its
    // damage records what it finds, and only opening the blobs finds the flip.
    std::fs::rename(env.path("pass.away"), env.path("pass")).unwrap();
    let newest = volumes.last().unwrap();
    flip_in_first_pack(newest);
    let (code, _, stderr) = rebuild_into(&env, "rebuilt-2");
    assert_eq!(code, 0, "{stderr}");
    let rebuilt = env.path("rebuilt-2");
    std::fs::rename(env.path("pass"), env.path("pass.away")).unwrap();
    let (code, quick, _) = keyless("rebuilt-2");
    assert_eq!(code, 4, "{quick}");
    assert_eq!(
        quick["damaged"].as_array().unwrap().len(),
        1,
        "only the first volume: {quick}"
    );
    let (code, _, stderr) = deep_verify(&env, &["--catalog", rebuilt.to_str().unwrap()]);
    assert_eq!(code, 1, "deep verify needs the passphrase: {stderr}");
    std::fs::rename(env.path("pass.away"), env.path("pass")).unwrap();
    let (code, deep, _) = deep_verify(&env, &["--catalog", rebuilt.to_str().unwrap()]);
    assert_eq!(code, 4, "{deep}");
    let blobs = deep["damaged_blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 2, "{deep}");
    assert!(
        blobs.iter().any(|b| b["volume"] == name_of(newest)),
        "{deep}"
    );
    assert!(blobs[0]["reason"]
        .as_str()
        .unwrap()
        .contains("authentication"));
    // Chunk boundaries are keyed, so the two blobs may belong to one file or to two.
    let files = deep_damaged_files(&deep);
    assert!(
        !files.is_empty() && files.iter().all(|f| f == "alpha" || f == "beta"),
        "{deep}"
    );
    // With --snapshot only that snapshot's blobs and files are checked.
    let (code, deep, _) = deep_verify(
        &env,
        &[
            "--catalog",
            rebuilt.to_str().unwrap(),
            "--snapshot",
            "latest",
        ],
    );
    assert_eq!(code, 4, "{deep}");
    assert_eq!(deep["snapshots_checked"], 1);
}

fn drill(env: &Env, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["drill", "--json", "--scratch"];
    let scratch = env.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    args.push(scratch.to_str().unwrap());
    args.extend_from_slice(extra);
    let (code, report, stderr) = run_json(env.tv(&args));
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the drill must clean its scratch space"
    );
    (code, report, stderr)
}

#[test]
fn t65_drill_from_scratch_passes_healthy_and_names_the_lost_files_and_volume() {
    let env = two_volume_vault();
    // A read-only folder in the snapshot: the drill must still clean up after itself.
    std::fs::create_dir(env.src().join("locked")).unwrap();
    std::fs::write(env.src().join("locked/inner"), b"inner").unwrap();
    std::fs::set_permissions(
        env.src().join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    env.backup(&[]);
    let report_file = env.path("drill.json");
    let (code, report, stderr) = drill(
        &env,
        &[
            "--all",
            "--from-scratch",
            "--report",
            report_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["outcome"], "passed");
    assert_eq!(report["files_checked"], 4);
    assert_eq!(report["files_in_snapshot"], 4);
    assert!(report["rebuild_seconds"].as_f64().is_some());
    assert!(report["first_byte_seconds"].as_f64().is_some());
    assert!(report["projected_full_restore_seconds"].as_f64().unwrap() > 0.0);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(saved, report, "--report holds the same document");

    // A seeded sample is repeatable and restores exactly that many files.
    let (code, one, _) = drill(&env, &["--sample", "2", "--seed", "9"]);
    assert_eq!(code, 0, "{one}");
    assert_eq!(one["files_checked"], 2);
    let (_, two, _) = drill(&env, &["--sample", "2", "--seed", "9"]);
    assert_eq!(one["volumes_read"], two["volumes_read"]);

    let volumes = env.volumes();
    std::fs::remove_file(&volumes[0]).unwrap();
    let (code, report, _) = drill(&env, &["--all", "--from-scratch"]);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["outcome"], "damage");
    let lost = damaged_paths(&report);
    assert!(!lost.is_empty(), "{report}");
    assert!(
        report["rebuild"]["problems"]
            .to_string()
            .contains("missing from the vault"),
        "the lost volume is named: {report}"
    );
    for path in &lost {
        assert!(path.ends_with("alpha") || path.ends_with("beta"), "{path}");
    }
    assert!(
        report["files_checked"].as_u64().unwrap() >= 2,
        "the rest is checked: {report}"
    );

    // Against the usual catalog too, naming the missing volume.
    let (code, report, _) = drill(&env, &["--all"]);
    assert_eq!(code, 4);
    assert!(
        report["volume_errors"]
            .to_string()
            .contains(&name_of(&volumes[0])),
        "{report}"
    );
    let (code, history, _) = run_json(env.tv(&["drill", "--history", "--json"]));
    assert_eq!(code, 0);
    let outcomes: Vec<&str> = history["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["passed", "passed", "passed", "damage", "damage"]);
}

#[test]
fn t56_paper_key_round_trip_opens_the_vault_with_a_new_passphrase() {
    let env = two_volume_vault();
    let out = env.tv(&["key", "export", "--paper"]).output().unwrap();
    assert!(out.status.success());
    let paper = String::from_utf8(out.stdout).unwrap();
    assert!(!paper.contains(PASSPHRASE));
    std::fs::write(env.path("paper.txt"), &paper).unwrap();
    // The site burned: no catalog, and the passphrase is forgotten.
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    std::fs::write(env.path("new-pass"), "a brand new passphrase\n").unwrap();
    let import = |paper_file: &str| {
        let paper_file = env.path(paper_file);
        let new_pass = env.path("new-pass");
        run_json(env.tv(&[
            "key",
            "import",
            "--json",
            "--paper",
            paper_file.to_str().unwrap(),
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
        ]))
    };
    // A single mistyped character is named with its line, and nothing is created.
    let typo = {
        let mut lines: Vec<String> = paper.lines().map(String::from).collect();
        let line = lines.iter_mut().find(|l| l.starts_with("03")).unwrap();
        let mut chars: Vec<char> = line.chars().collect();
        chars[4] = if chars[4] == 'Z' { 'Y' } else { 'Z' };
        *line = chars.into_iter().collect();
        lines.join("\n")
    };
    std::fs::write(env.path("typo.txt"), typo).unwrap();
    let (code, _, stderr) = import("typo.txt");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line 03"), "{stderr}");
    assert!(!env.path("catalog/catalog.sqlite").exists());
    // A well-formed key of another vault: wrong key, never garbage.
    let other = Env::new();
    let other_paper = other
        .tv(&["key", "export", "--paper"])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(env.path("other.txt"), other_paper).unwrap();
    let (code, _, stderr) = import("other.txt");
    assert_eq!(code, 5, "{stderr}");

    let (code, summary, stderr) = import("paper.txt");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["rebuilt"]["snapshots"], 1, "{summary}");
    std::fs::copy(env.path("new-pass"), env.path("pass")).unwrap();
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_all_restored(&env, &landed);
    // The vault alone now opens with the new passphrase too.
    let (code, _, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn key_passwd_changes_the_passphrase_and_the_old_one_stops_working() {
    let env = two_volume_vault();
    std::fs::write(env.path("new-pass"), "second passphrase").unwrap();
    let new_pass = env.path("new-pass");
    let (code, summary, stderr) = run_json(env.tv(&[
        "key",
        "passwd",
        "--json",
        "--new-passphrase-file",
        new_pass.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        summary["notes"].to_string().contains("old passphrase"),
        "{summary}"
    );
    let (code, _, _) = env.restore("old", &[]);
    assert_eq!(
        code, 5,
        "the catalog no longer opens with the old passphrase"
    );
    std::fs::copy(&new_pass, env.path("pass")).unwrap();
    let (code, report, landed) = env.restore("new", &[]);
    assert_eq!(code, 0, "{report}");
    assert_all_restored(&env, &landed);
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    let (code, _, stderr) = rebuild_into(&env, "catalog");
    assert_eq!(
        code, 0,
        "a rebuild opens the vault with the new passphrase: {stderr}"
    );
}

#[test]
fn t18_rebuild_verify_and_drill_never_write_to_a_damaged_vault() {
    let env = two_volume_vault();
    let volumes = env.volumes();
    let mut bytes = std::fs::read(&volumes[0]).unwrap();
    let (pack_at, _) = member_range(&bytes, "pack-000001.tvp");
    bytes[pack_at + 100] ^= 0x40;
    std::fs::write(&volumes[0], &bytes).unwrap();
    std::fs::remove_file(&volumes[1]).unwrap();
    let before = tree_hash(&env.vault_dir());
    let snapshots = env.tv(&["snapshots", "--json"]).output().unwrap().stdout;
    let (code, _, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 4);
    let (code, _, _) = deep_verify(&env, &[]);
    assert_eq!(code, 4);
    let (code, _, _) = drill(&env, &["--all"]);
    assert_eq!(code, 4);
    let (code, _, _) = drill(&env, &["--all", "--from-scratch"]);
    assert_eq!(code, 4);
    let (code, _, _) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 3);
    assert_eq!(
        tree_hash(&env.vault_dir()),
        before,
        "the vault was written to"
    );
    // Damage is recorded, never "repaired" by dropping anything from the catalog.
    assert_eq!(
        env.tv(&["snapshots", "--json"]).output().unwrap().stdout,
        snapshots
    );
    let (_, listing, _) = run_json(env.tv(&["volumes", "--json"]));
    let states: Vec<&str> = listing["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    // Keyed chunking may need a third volume; only the first two were harmed.
    assert_eq!(states[..2], ["damaged", "missing"], "{listing}");
    assert!(states[2..].iter().all(|s| *s == "sealed"), "{listing}");
}

#[test]
fn t20_a_garbled_stale_or_foreign_catalog_is_refused_with_the_fix() {
    let env = two_volume_vault();
    // (b) an older copy of the catalog while the vault moved on.
    let old = env.path("catalog-old");
    std::fs::create_dir(&old).unwrap();
    for file in ["catalog.sqlite", "catalog.sqlite-wal"] {
        if env.path("catalog").join(file).exists() {
            std::fs::copy(env.path("catalog").join(file), old.join(file)).unwrap();
        }
    }
    std::fs::write(env.src().join("later"), noise(1 << 20, 5)).unwrap();
    env.backup(&[]);
    let src = env.src();
    let (code, _, stderr) = run_json(env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "4M",
        "--catalog",
        old.to_str().unwrap(),
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("stale") && stderr.contains("catalog rebuild"),
        "{stderr}"
    );
    let (code, report, _) =
        run_json(env.tv(&["verify", "--json", "--catalog", old.to_str().unwrap()]));
    assert_eq!(code, 3, "newer volumes are reported: {report}");
    assert!(!report["extra"].as_array().unwrap().is_empty());

    // (c) a catalog of another vault.
    let other = Env::new();
    let other_catalog = other.path("catalog");
    let (code, _, stderr) =
        run_json(env.tv(&["verify", "--catalog", other_catalog.to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("belongs to vault"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // (a) a garbled catalog file.
    let db = env.path("catalog/catalog.sqlite");
    let _ = std::fs::remove_file(env.path("catalog/catalog.sqlite-wal"));
    let _ = std::fs::remove_file(env.path("catalog/catalog.sqlite-shm"));
    std::fs::write(&db, noise(8192, 4)).unwrap();
    for args in [&["snapshots"][..], &["verify"], &["volumes"]] {
        let (code, _, stderr) = run_json(env.tv(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains("catalog rebuild"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn deep_verify_recomputes_whole_file_hashes_from_the_chunks() {
    let env = Env::new();
    // Every blob authenticates and matches its chunk id, but the record lies about the
    // file: only recomputing the whole-file hash can tell.
    let (mut lying, content) = file(b"data/lying", &noise(300_000, 7));
    lying.hash = Some(blake3::hash(b"something else").to_hex().to_string());
    crafted(
        &env,
        vec![
            (node(b"data", tapevault::model::NodeKind::Dir), Vec::new()),
            file(b"data/honest", &noise(300_000, 8)),
            (lying, content),
        ],
    );
    let (code, deep, _) = deep_verify(&env, &[]);
    assert_eq!(code, 4, "{deep}");
    assert_eq!(deep["damaged_blobs"].as_array().unwrap().len(), 0, "{deep}");
    assert_eq!(deep["files_hashed"], 2, "{deep}");
    assert_eq!(deep_damaged_files(&deep), ["lying"], "{deep}");
    assert!(deep["damaged_files"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("whole-file hash"));
}

#[test]
fn t15_one_lost_chunk_names_every_file_of_every_snapshot_that_shares_it() {
    let env = Env::new();
    let shared = noise(300_000, 77);
    for n in 0..20 {
        std::fs::write(env.src().join(format!("copy-{n:02}")), &shared).unwrap();
    }
    for day in 0..3 {
        std::fs::write(env.src().join("diary"), format!("day {day}")).unwrap();
        env.backup(&[]);
    }
    let chunk = flip_first_chunk_of(&env, "copy-00");
    let (code, deep, _) = deep_verify(&env, &[]);
    assert_eq!(code, 4, "{deep}");
    let chunks = deep["damaged_chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1, "{deep}");
    assert_eq!(chunks[0]["chunk"], chunk.as_str());
    assert_eq!(chunks[0]["files"].as_array().unwrap().len(), 60, "{deep}");
    assert_eq!(deep["damaged_files"].as_array().unwrap().len(), 60);
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4);
    assert_eq!(damaged_paths(&report).len(), 20, "{report}");
}

#[test]
fn t45_a_key_label_swapped_for_another_vaults_is_ignored_and_never_trusted() {
    let env = two_volume_vault();
    // Another vault with the same passphrase: its key label opens with it.
    let other = Env::new();
    std::fs::copy(
        other.vault_dir().join("vault.tvl"),
        env.vault_dir().join("vault.tvl"),
    )
    .unwrap();
    // With the catalog: the catalog's pinned key is used; the swap is named.
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let (_, _, stderr) = run_json(env.tv(&["verify"]));
    assert!(stderr.contains("replaced or copied in"), "{stderr}");
    // Without it: the swapped label unlocks, but its key opens no pack; the volume
    // labels' key does, and the rebuild restores exactly.
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    let (code, summary, stderr) = rebuild_into(&env, "catalog");
    assert!(code == 0 || code == 3, "{summary} {stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
    let (code, report, landed) = env.restore("out-rebuilt", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

/// A tree of several blobs is rebuilt blob by blob, its lines cut across blob
/// boundaries, and restores exactly; a damaged tree blob costs that snapshot, named,
/// and leaves nothing half-recorded in the new catalog.
#[test]
fn rebuild_reads_a_tree_of_several_blobs_and_drops_a_snapshot_whose_tree_is_damaged() {
    let env = Env::new();
    // Long names make a tree of several MiB, so of several blobs, from few files.
    let long = "n".repeat(230);
    for i in 0..6000 {
        std::fs::write(env.src().join(format!("{long}{i:05}")), i.to_string()).unwrap();
    }
    env.backup(&[]);
    let catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
    let tree = catalog.snapshots().unwrap()[0].tree.clone();
    drop(catalog);
    assert!(tree.len() >= 2, "the tree is {} blob(s)", tree.len());

    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
    let (code, report) = restore_with_catalog(&env, "rebuilt", "out");
    assert_eq!(code, 0, "{report}");
    assert_same_tree(
        &env.src(),
        &env.path("out").join(env.src().strip_prefix("/").unwrap()),
    );

    flip_blob(&env, &tree[1], tapevault::crypto::BlobKind::Tree);
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt-damaged");
    assert_eq!(code, 3, "{summary} {stderr}");
    assert_eq!(summary["snapshots"], 0, "{summary}");
    assert!(
        summary["problems"]
            .to_string()
            .contains(&format!("tree chunk {} is damaged", tree[1])),
        "{summary}"
    );
    let mut rebuilt =
        tapevault::catalog::Catalog::open(&env.path("rebuilt-damaged"), "test").unwrap();
    assert_eq!(
        rebuilt.discard_pending().unwrap(),
        0,
        "a snapshot was left pending"
    );
}

/// Run `cmd` and count what it read from the storage device (`ru_inblock`, in 512-byte
/// blocks): the page cache serves the rest. Its exit code too.
#[allow(unsafe_code)]
// Reaped by wait4, which alone reports the child's own resource use.
#[allow(clippy::zombie_processes)]
fn blocks_read_from_disk(mut cmd: std::process::Command) -> (i32, u64) {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain values for wait4 to fill; the child is ours and reaped only here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid);
    (libc::WEXITSTATUS(status), usage.ru_inblock as u64)
}

#[test]
fn drills_and_verifies_read_the_volumes_from_the_disk_not_the_page_cache() {
    let env = Env::new();
    let on_tmpfs = rustix::fs::statfs(env.vault_dir().parent().unwrap())
        .is_ok_and(|fs| fs.f_type as u64 == 0x0102_1994);
    if on_tmpfs {
        eprintln!("note: the vault is on tmpfs, whose page cache is the medium");
        return;
    }
    // Noise: the packs hold at least its 3 MiB.
    let data_bytes = 3 << 20;
    std::fs::write(env.src().join("data"), noise(data_bytes, 41)).unwrap();
    env.backup(&[]);
    for args in [&["drill", "--all"][..], &["verify"], &["verify", "--deep"]] {
        // Just read, so every page of every volume is in the cache.
        for volume in env.volumes() {
            std::fs::read(volume).unwrap();
        }
        let (code, blocks) = blocks_read_from_disk(env.process(args));
        assert_eq!(code, 0, "{args:?}");
        assert!(
            blocks * 512 >= data_bytes as u64,
            "{args:?} read {} bytes from the disk, with {data_bytes} of data",
            blocks * 512
        );
    }
}

/// Bytes of `path` held in the page cache (`mincore` over a mapping of it).
#[allow(unsafe_code)]
fn cached_bytes(path: &std::path::Path) -> u64 {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let page = 4096;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of a file of ours, only looked at by mincore
    // (no page is touched, so none is brought in), and unmapped before returning.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        assert_eq!(libc::mincore(map, len, resident.as_mut_ptr()), 0);
        libc::munmap(map, len);
    }
    resident.iter().filter(|&&r| r & 1 == 1).count() as u64 * page as u64
}

#[test]
fn a_backup_leaves_its_volume_out_of_the_page_cache_on_a_local_disk() {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const BTRFS: u64 = 0x9123_683E;
    let env = Env::new();
    let fs = rustix::fs::statfs(env.vault_dir().parent().unwrap()).unwrap();
    if ![EXT4, XFS, BTRFS].contains(&(fs.f_type as u64)) {
        eprintln!("note: the vault is not on ext4, XFS or btrfs, where volumes go direct");
        return;
    }
    // Noise: the volume holds at least its 24 MiB.
    let data_bytes: u64 = 24 << 20;
    std::fs::write(env.src().join("data"), noise(data_bytes as usize, 43)).unwrap();
    env.backup_sized("64M", &[]);
    let [volume] = &env.volumes()[..] else {
        panic!("one volume expected: {:?}", env.volumes());
    };
    let size = std::fs::metadata(volume).unwrap().len();
    assert!(size >= data_bytes, "the volume holds {size} bytes");
    // Only its tail, less than one 4 MiB block, went through the cache.
    let cached = cached_bytes(volume);
    assert!(
        cached < 4 << 20,
        "{cached} of the volume's {size} bytes are in the page cache"
    );
}
