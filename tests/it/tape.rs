//! Tape media through the emulated library (`tape:DIR`), and the stream vault (`-`).

use crate::util::*;
use std::path::Path;

/// The volume named in a cartridge's first part header (the emulated format: a
/// 24-byte head, then records `B`/`F`, length, bytes).
fn volume_on(library: &Path, cartridge: &str) -> Option<String> {
    let bytes = std::fs::read(library.join(format!("{cartridge}.cart"))).unwrap();
    let first = bytes.get(24 + 5..24 + 5 + 512)?;
    let text = String::from_utf8_lossy(first);
    text.lines()
        .find_map(|l| l.strip_prefix("volume="))
        .map(str::to_string)
}

/// An emulated cartridge with nothing on it.
fn blank_cartridge(capacity: u64, early_warning_at: u64) -> Vec<u8> {
    let mut blank = b"TVCART1\n".to_vec();
    blank.extend_from_slice(&capacity.to_le_bytes());
    blank.extend_from_slice(&early_warning_at.to_le_bytes());
    blank
}

/// A change command that loads cartridge `cNNNN` for sequence NNNN, making it from a
/// blank the first time.
fn changer_by_sequence(env: &Env) -> String {
    std::fs::write(
        env.library().join("blank.cart"),
        blank_cartridge(64 << 20, 60 << 20),
    )
    .unwrap();
    format!(
        "n=$(printf %04d %n); [ -f {lib}/c$n.cart ] || cp {lib}/blank.cart {lib}/c$n.cart; \
         echo c$n > {lib}/drive",
        lib = env.library().display()
    )
}

/// The records of a cartridge: (tag, start of record, end of record).
fn records(bytes: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 5 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let len = if bytes[at] == b'B' { len } else { 0 };
        out.push((bytes[at], at, at + 5 + len));
        at += 5 + len;
    }
    out
}

/// The catalog's packs each hold only blobs the catalog places there: a blob written
/// twice (a pack repeated on the next cartridge) would leave unexplained bytes.
fn assert_every_blob_once(env: &Env) {
    let db = rusqlite::Connection::open(env.path("catalog").join("catalog.sqlite")).unwrap();
    let mut query = db
        .prepare(
            "SELECT packs.length - COALESCE(SUM(blobs.sealed_len), 0) FROM packs \
             LEFT JOIN blobs ON blobs.pack = packs.id GROUP BY packs.id",
        )
        .unwrap();
    let overheads: Vec<i64> = query
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!overheads.is_empty());
    for overhead in overheads {
        assert!(
            (0..64 << 10).contains(&overhead),
            "a pack holds {overhead} bytes no blob accounts for"
        );
    }
}

/// `backup` of the source with 64 KiB blocks and `--volume-size 4M` unless `extra`
/// gives one.
fn tape_backup(env: &Env, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let src = env.src();
    let mut args = vec![
        "backup",
        src.to_str().unwrap(),
        "--block-size",
        "64K",
        "--json",
    ];
    if !extra.contains(&"--volume-size") {
        args.extend(["--volume-size", "4M"]);
    }
    args.extend_from_slice(extra);
    run_json(env.tv(&args))
}

fn exact(env: &Env, into: &str, extra: &[&str]) {
    let (code, report, _) = env.restore(into, extra);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(
        &env.src(),
        &env.path(into).join(env.src().strip_prefix("/").unwrap()),
    );
}

#[test]
fn t69_early_warning_inside_a_pack_closes_the_volume_in_the_reserve() {
    // Early warning 1.25 MiB into 6 MiB cartridges. A volume closed by plan holds at
    // least 1.5 MiB (4 MiB less one pack of at most 2.5 MiB), so every volume but the
    // last meets early warning, and the reserve holds the rest of a pack and the index.
    let env = Env::on_tape(r#"{"capacity": 6291456, "early_warning": 4980736}"#);
    std::fs::write(env.src().join("alpha"), noise(6 << 20, 1)).unwrap();
    std::fs::write(env.src().join("beta"), noise(6 << 20, 2)).unwrap();
    let (code, summary, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    let log = env.drive_log();
    assert!(
        log.iter().any(|l| l.starts_with("early-warning")),
        "no write met early warning: {log:?}"
    );
    let written = summary["volumes_written"].as_array().unwrap().len();
    assert_eq!(env.cartridges().len(), written, "one volume per cartridge");
    for cartridge in env.cartridges() {
        let size = std::fs::metadata(env.library().join(format!("{cartridge}.cart")))
            .unwrap()
            .len();
        assert!(size < 6 << 20, "{cartridge}: {size} bytes");
        assert!(volume_on(&env.library(), &cartridge).is_some());
    }
    assert_every_blob_once(&env);
    let (code, verify, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 0, "{verify}");
    exact(&env, "out", &[]);
}

#[test]
fn t71_exact_fit_closes_cleanly_and_a_cartridge_smaller_than_a_pack_is_an_error() {
    // The only pack crosses early warning: the index goes in the reserve, and no
    // empty volume follows.
    let env = Env::on_tape(r#"{"capacity": 4194304, "early_warning": 4063232}"#);
    std::fs::write(env.src().join("one"), noise(300 << 10, 3)).unwrap();
    let (code, summary, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(env
        .drive_log()
        .iter()
        .any(|l| l.starts_with("early-warning")));
    assert_eq!(summary["volumes_written"].as_array().unwrap().len(), 1);
    assert_eq!(env.cartridges().len(), 1);
    exact(&env, "out", &[]);

    // 256 KiB cartridges hold less than one pack: one clear line, exit 1, no loop.
    let small = Env::on_tape(r#"{"capacity": 262144, "early_warning": 131072}"#);
    std::fs::write(small.src().join("big"), noise(3 << 20, 4)).unwrap();
    let (code, _, stderr) = tape_backup(&small, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("end of medium"), "{stderr}");
    assert_eq!(
        small.cartridges().len(),
        3,
        "two more cartridges tried, then no more"
    );
    let (_, volumes, _) = run_json(small.tv(&["volumes", "--json"]));
    assert!(
        !volumes.to_string().contains("\"sealed\""),
        "nothing sealed: {volumes}"
    );
}

#[test]
fn t77_t78_a_partial_restore_reads_only_its_cartridges_and_a_lost_one_is_named() {
    let env = Env::on_tape("{}");
    // Twelve cartridges; `spanned` is chunked across several of them.
    for i in 0..8 {
        std::fs::write(env.src().join(format!("f{i}")), noise(4 << 20, 10 + i)).unwrap();
    }
    std::fs::write(env.src().join("spanned"), noise(9 << 20, 30)).unwrap();
    let (code, _, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    let cartridges = env.cartridges();
    let spanned = env.src().join("spanned");
    let (code, plan, _) = run_json(env.tv(&[
        "restore",
        "--plan",
        "--json",
        "--include",
        spanned.to_str().unwrap(),
    ]));
    assert_eq!(code, 0);
    let planned: Vec<String> = plan["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    // 9 MiB over volumes of at least 1.5 MiB: a few of the cartridges, not all.
    assert!(
        planned.len() >= 2 && planned.len() <= 7 && cartridges.len() >= 11,
        "{plan}"
    );
    assert!(plan["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["bytes"].as_u64().unwrap() > 0));

    std::fs::remove_file(env.library().join("drive.log")).unwrap();
    let (code, report, _) = env.restore("part", &["--include", spanned.to_str().unwrap()]);
    assert_eq!(code, 0, "{report}");
    let landed = env.path("part").join(spanned.strip_prefix("/").unwrap());
    assert!(std::fs::read(landed).unwrap() == noise(9 << 20, 30));
    // Each planned cartridge loaded once and read front to back from its load on;
    // no other one loaded. (The cartridge left in the drive has its label read.)
    let log = env.drive_log();
    let mut sessions: Vec<(String, Vec<usize>)> = Vec::new();
    for line in &log {
        if let Some(cartridge) = line.strip_prefix("load ") {
            sessions.push((cartridge.to_string(), Vec::new()));
        } else if let Some((cartridge, block)) = line
            .strip_prefix("read ")
            .and_then(|rest| rest.split_once(' '))
        {
            if let Some((loaded, blocks)) = sessions.last_mut() {
                assert_eq!(loaded, cartridge, "{log:?}");
                blocks.push(block.parse().unwrap());
            }
        }
    }
    let holding: Vec<String> = sessions
        .iter()
        .map(|(c, _)| volume_on(&env.library(), c).unwrap())
        .collect();
    assert_eq!(holding, planned, "{log:?}");
    for (cartridge, blocks) in &sessions {
        assert!(
            !blocks.is_empty() && blocks.windows(2).all(|w| w[0] < w[1]),
            "{cartridge} not read front to back: {blocks:?}"
        );
    }

    // T78: the middle cartridge of the file is lost.
    let middle = &planned[planned.len() / 2];
    let lost = cartridges
        .iter()
        .find(|c| volume_on(&env.library(), c).as_deref() == Some(middle))
        .unwrap();
    std::fs::remove_file(env.library().join(format!("{lost}.cart"))).unwrap();
    let (_, plan, _) = run_json(env.tv(&[
        "restore",
        "--plan",
        "--json",
        "--include",
        spanned.to_str().unwrap(),
    ]));
    let missing: Vec<&str> = plan["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] == "missing")
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(missing, vec![middle.as_str()], "{plan}");
    let (code, report, _) = env.restore("lost", &[]);
    assert_eq!(code, 4, "{report}");
    let damaged = damaged_paths(&report);
    assert!(damaged.iter().any(|p| p.ends_with("/spanned")), "{report}");
    let ranges = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("/spanned"))
        .unwrap()["missing"]
        .clone();
    let lost_bytes: u64 = ranges
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap())
        .sum();
    assert!(lost_bytes > 0 && lost_bytes < 9 << 20, "{ranges}");
}

#[test]
fn t76_live_protected_and_wrong_cartridges_and_cron_without_a_changer() {
    // A drive without an autoloader: the cartridge left in it is what a run gets.
    let env = Env::on_tape(r#"{"write_protected": ["tape-0009"], "autoload": false}"#);
    std::fs::write(env.src().join("a"), noise(1 << 20, 40)).unwrap();
    std::fs::write(
        env.library().join("tape-0001.cart"),
        blank_cartridge(64 << 20, 60 << 20),
    )
    .unwrap();
    std::fs::write(env.library().join("drive"), "tape-0001\n").unwrap();
    let (code, _, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    let first = volume_on(&env.library(), "tape-0001").unwrap();

    // The drive still holds tape-0001, live: refused, nothing written.
    std::fs::write(env.src().join("b"), noise(1 << 20, 41)).unwrap();
    let before = std::fs::read(env.library().join("tape-0001.cart")).unwrap();
    let (code, _, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("live volume") && stderr.contains(&first) && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert!(std::fs::read(env.library().join("tape-0001.cart")).unwrap() == before);

    // A write-protected cartridge.
    std::fs::write(
        env.library().join("tape-0009.cart"),
        blank_cartridge(64 << 20, 60 << 20),
    )
    .unwrap();
    std::fs::write(env.library().join("drive"), "tape-0009\n").unwrap();
    let (code, _, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("write-protected"), "{stderr}");

    // --overwrite writes over the live one; verify then says the old volume is gone.
    std::fs::write(env.library().join("drive"), "tape-0001\n").unwrap();
    let (code, _, stderr) = tape_backup(&env, &["--overwrite"]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(volume_on(&env.library(), "tape-0001").unwrap(), first);
    let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 4, "{verify}");
    assert!(verify["missing"].to_string().contains(&first), "{verify}");

    // No autoloader, no change command, no terminal (cron): exit 1 at once.
    let cron = Env::on_tape(r#"{"autoload": false}"#);
    std::fs::write(cron.src().join("a"), noise(1 << 20, 42)).unwrap();
    let (code, _, stderr) = tape_backup(&cron, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--change-volume-command"), "{stderr}");

    // The change command loads cartridges by the sequence it is given.
    let script = changer_by_sequence(&cron);
    std::fs::write(cron.src().join("b"), noise(5 << 20, 43)).unwrap();
    let (code, _, stderr) = tape_backup(&cron, &["--change-volume-command", &script]);
    assert_eq!(code, 0, "{stderr}");
    assert!(cron.library().join("c0002.cart").exists());
    exact(&cron, "out", &["--change-volume-command", &script]);

    // Restore with a changer that always loads cartridge c0001: the others are
    // named as needed, with what was found; nothing more is read from c0001.
    std::fs::remove_file(cron.library().join("drive.log")).unwrap();
    let wrong = format!("echo c0001 > {}/drive", cron.library().display());
    let (code, report, _) = cron.restore("wrong", &["--change-volume-command", &wrong]);
    assert_eq!(code, 4, "{report}");
    let needed = volume_on(&cron.library(), "c0002").unwrap();
    let errors = report.to_string();
    assert!(
        errors.contains("wrong cartridge") && errors.contains(&needed),
        "{report}"
    );
}

#[test]
fn t74_a_block_size_mismatch_names_both_sizes_and_detection_reads_it() {
    let env = Env::on_tape("{}");
    std::fs::write(env.src().join("a"), noise(1 << 20, 50)).unwrap();
    let src = env.src();
    env.tv(&["backup", src.to_str().unwrap(), "--volume-size", "4M"])
        .assert()
        .success();
    let (code, report, _) = env.restore("wrong", &["--block-size", "64K"]);
    assert_eq!(code, 2, "{report}");
    let out = env
        .tv(&[
            "restore",
            "--target",
            env.path("w2").to_str().unwrap(),
            "--block-size",
            "64K",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("block size on tape is 262144, drive set to 65536"),
        "{stderr}"
    );
    // Without --block-size the size on tape is found.
    exact(&env, "out", &[]);
}

#[test]
fn t73_t75_unreadable_blocks_and_filemark_faults() {
    let env = Env::on_tape("{}");
    std::fs::write(env.src().join("a"), noise(3 << 20, 60)).unwrap();
    std::fs::write(env.src().join("small"), b"small").unwrap();
    let (code, _, stderr) = tape_backup(&env, &["--volume-size", "16M"]);
    assert_eq!(code, 0, "{stderr}");
    let cart = env.library().join("tape-0001.cart");
    let original = std::fs::read(&cart).unwrap();
    let marks: Vec<(u8, usize, usize)> = records(&original)
        .into_iter()
        .filter(|r| r.0 == b'F')
        .collect();
    assert_eq!(marks.len(), 4, "label, data, index, end");

    // T73: a block in the middle of the data cannot be read: the reader steps over
    // it, the file it held is named, the rest is exact.
    std::fs::write(
        env.library().join("library.json"),
        r#"{"read_errors": [["tape-0001", 10]]}"#,
    )
    .unwrap();
    let (code, report, landed) = env.restore("t73", &[]);
    assert_eq!(code, 4, "{report}");
    assert_eq!(damaged_paths(&report).len(), 1, "{report}");
    assert!(damaged_paths(&report)[0].ends_with("/a"), "{report}");
    assert_eq!(std::fs::read(landed.join("small")).unwrap(), b"small");
    assert!(env.drive_log().iter().any(|l| l == "skip tape-0001 10"));
    std::fs::write(env.library().join("library.json"), "{}").unwrap();

    // An extra filemark after the data part is tolerated.
    let after_data = marks[1].2;
    let mut extra = original[..after_data].to_vec();
    extra.extend_from_slice(&[b'F', 0, 0, 0, 0]);
    extra.extend_from_slice(&original[after_data..]);
    std::fs::write(&cart, &extra).unwrap();
    exact(&env, "extra", &[]);

    // The index part replaced by a copy of the data part: spacing lands on the wrong
    // part, and the message names the part expected.
    let label_end = marks[0].2;
    let data = &original[label_end..marks[1].2];
    let mut swapped = original[..marks[1].2].to_vec();
    swapped.extend_from_slice(data);
    swapped.extend_from_slice(&original[marks[3].1..]);
    std::fs::write(&cart, &swapped).unwrap();
    let (code, _, stderr) = rebuild_into(&env, "rebuilt");
    assert_ne!(code, 0);
    assert!(
        stderr.contains("where the index part belongs") || stderr.contains("index part"),
        "{stderr}"
    );

    // The final filemarks missing (a crash before the end): an unfinished volume,
    // never read as sealed.
    std::fs::write(&cart, &original[..marks[2].1]).unwrap();
    let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 4, "{verify}");
    assert!(
        verify["missing"].to_string().contains("tv000001"),
        "{verify}"
    );
    assert!(
        verify["abandoned"].to_string().contains("tv000001"),
        "{verify}"
    );
}

#[test]
fn a_copy_to_tape_restores_alone_and_pruned_cartridges_become_scratch() {
    let env = Env::new();
    std::fs::write(env.src().join("a"), noise(5 << 20, 70)).unwrap();
    env.backup(&[]);
    let library = env.path("library");
    let to = format!("tape:{}", library.display());
    let (code, copy, stderr) = run_json(env.tv(&["copy", "--to", &to, "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let copied = copy["copied"].as_array().unwrap().len();
    assert!(copied >= 2, "{copy}");
    // The tape copy alone, with a catalog rebuilt from its cartridges.
    std::fs::remove_dir_all(env.vault_dir()).unwrap();
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    let mut env = env;
    env.vault = to.clone();
    let (code, _, stderr) = rebuild_into(&env, "catalog");
    assert_eq!(code, 0, "{stderr}");
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert!(std::fs::read(landed.join("a")).unwrap() == noise(5 << 20, 70));

    // Prune on tape: the cartridges of unneeded volumes become scratch, and the next
    // backup writes over one of them instead of asking for a new cartridge.
    let cartridges = env.cartridges().len();
    std::fs::remove_file(env.src().join("a")).unwrap();
    std::fs::write(env.src().join("b"), b"new").unwrap();
    let (code, _, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run_json(env.tv(&["forget", "--keep-last", "1", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, pruned, stderr) = run_json(env.tv(&["prune", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(pruned.to_string().contains("tv000001"), "{pruned}");
    std::fs::write(env.src().join("c"), noise(1 << 20, 71)).unwrap();
    let (code, _, stderr) = tape_backup(&env, &[]);
    assert_eq!(code, 0, "{stderr}");
    let after = env.cartridges().len();
    assert_eq!(
        after,
        cartridges + 1,
        "one new cartridge for the first backup, none for the last"
    );
    let (code, report, landed) = env.restore("last", &[]);
    assert_eq!(code, 0, "{report}");
    assert!(std::fs::read(landed.join("c")).unwrap() == noise(1 << 20, 71));
}

#[test]
fn the_stream_vault_through_dd_with_padded_blocks_and_several_volumes() {
    let mut env = Env::uninitialised();
    env.vault = "-".into();
    env.tv(&CHEAP_INIT).assert().success();
    std::fs::write(env.src().join("a"), noise(9 << 20, 80)).unwrap();
    std::fs::write(env.src().join("small"), b"small").unwrap();
    let stream = env.path("stream.bin");
    let padded = env.path("padded.bin");
    let src = env.src();
    let mut backup = env.process(&[
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "4M",
        "--json",
    ]);
    let out = backup
        .stdout(std::fs::File::create(&stream).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report went to stderr: stdout holds only volumes.
    let report: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    let volumes = report["volumes_written"].as_array().unwrap().len();
    assert!(volumes >= 3, "{report}");
    let dd = std::process::Command::new("dd")
        .arg(format!("if={}", stream.display()))
        .arg(format!("of={}", padded.display()))
        .args(["bs=256k", "conv=sync", "iflag=fullblock", "status=none"])
        .status()
        .unwrap();
    assert!(dd.success());
    let padded_len = std::fs::metadata(&padded).unwrap().len();
    assert_eq!(padded_len % (256 << 10), 0);
    assert!(padded_len > std::fs::metadata(&stream).unwrap().len());
    // Restored from stdin through dd, block by block.
    let restore = format!(
        "dd if={} bs=256k status=none | exec \"$0\" restore --target {} --json",
        padded.display(),
        env.path("out").display()
    );
    let mut cmd = env.process(&[]);
    let tv = assert_cmd::cargo::cargo_bin("tapevault");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&restore)
        .arg(&tv)
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("TAPEVAULT_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    let _ = &mut cmd;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(
        &env.src(),
        &env.path("out").join(env.src().strip_prefix("/").unwrap()),
    );

    // The catalog lost: rebuilt from the padded stream on stdin, then a restore with it.
    let rebuilt = env.path("rebuilt");
    let out = env
        .process(&["catalog", "rebuild", "--catalog", rebuilt.to_str().unwrap()])
        .stdin(std::fs::File::open(&padded).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .process(&[
            "restore",
            "--catalog",
            rebuilt.to_str().unwrap(),
            "--target",
            env.path("again").to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(&padded).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(
        &env.src(),
        &env.path("again").join(env.src().strip_prefix("/").unwrap()),
    );
    let spools = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tapevault-stream-")
        })
        .count();
    assert_eq!(spools, 0, "the spooled stream is removed");

    // Volumes fed out of order: the missing one is named, the rest restore.
    let report = {
        let mut restore = env.process(&[
            "restore",
            "--target",
            env.path("late").to_str().unwrap(),
            "--json",
        ]);
        let bytes = std::fs::read(&stream).unwrap();
        let out = restore
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Skip the first volume: start the stream at the second label.
        let second = find_second_label(&bytes);
        let mut child = out;
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&bytes[second..])
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(4));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        report.contains("tv000001") && report.contains("not on the stream"),
        "{report}"
    );
}

/// Where the second volume's label member starts in a stream of volumes.
fn find_second_label(stream: &[u8]) -> usize {
    (512..stream.len())
        .step_by(512)
        .find(|at| stream[*at..].starts_with(b"label.tvl\0"))
        .unwrap()
}

#[test]
fn t70_t72_a_cartridge_failing_under_a_volume_is_abandoned_and_the_data_goes_on_the_next() {
    // T70: tape-0001 holds 512 KiB, early warning 64 KiB before its end: the first
    // pack (at least 512 KiB) cannot finish. T72: tape-0001 answers a write in the
    // first pack with a medium error.
    for (case, knobs) in [
        ("end of medium", "{}"),
        ("write error", r#"{"write_errors": [["tape-0001", 8]]}"#),
    ] {
        let env = Env::on_tape(knobs);
        if case == "end of medium" {
            std::fs::write(
                env.library().join("tape-0001.cart"),
                blank_cartridge(512 << 10, 448 << 10),
            )
            .unwrap();
        }
        std::fs::write(env.src().join("a"), noise(6 << 20, 90)).unwrap();
        let (code, summary, stderr) = tape_backup(&env, &[]);
        assert_eq!(code, 3, "{case}: {stderr}");
        let first = summary["warnings"][0].as_str().unwrap();
        assert!(
            first.contains("tape-0001") && first.contains("written again"),
            "{case}: {summary}"
        );
        let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
        let abandoned = volumes["abandoned"].as_array().unwrap();
        assert_eq!(abandoned.len(), 1, "{case}: {volumes}");
        assert_eq!(
            volume_on(&env.library(), "tape-0001").as_ref(),
            abandoned[0].as_str().map(str::to_string).as_ref()
        );
        assert!(
            volumes["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["name"] != abandoned[0] && v["state"] == "sealed"),
            "{case}: the abandoned volume is never recorded: {volumes}"
        );
        assert_every_blob_once(&env);
        exact(&env, &format!("out-{}", case.replace(' ', "-")), &[]);
    }
}

#[test]
fn t79_verify_after_write_catches_a_drive_writing_wrong_and_writes_the_data_again() {
    let env = Env::on_tape(r#"{"corrupt_writes": [["tape-0001", 5]]}"#);
    std::fs::write(env.src().join("a"), noise(2 << 20, 91)).unwrap();
    let (code, summary, stderr) = tape_backup(&env, &["--verify-after-write"]);
    assert_eq!(code, 3, "{stderr}");
    let warnings = summary["warnings"].to_string();
    assert!(
        warnings.contains("verify-after-write") && warnings.contains("tape-0001"),
        "{summary}"
    );
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    let states: Vec<&str> = volumes["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[0], "damaged", "{volumes}");
    assert!(states[1..].iter().all(|s| *s == "sealed"), "{volumes}");
    assert!(env.cartridges().len() >= 2);
    // The latest snapshot needs nothing from the bad cartridge.
    std::fs::remove_file(env.library().join("tape-0001.cart")).unwrap();
    exact(&env, "out", &[]);
}

#[test]
fn t80_a_drive_becoming_ready_is_waited_for_up_to_the_timeout() {
    let env = Env::on_tape(r#"{"becoming_ready_seconds": 2}"#);
    std::fs::write(env.src().join("a"), b"a").unwrap();
    let (code, _, stderr) = tape_backup(&env, &["--drive-timeout", "30"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("waiting for"), "{stderr}");
    std::fs::write(
        env.library().join("library.json"),
        r#"{"becoming_ready_seconds": 60}"#,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = tape_backup(&env, &["--drive-timeout", "1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(started.elapsed().as_secs() < 30);
    assert!(
        stderr.contains("still becoming ready after 1 s"),
        "{stderr}"
    );
    // A changer that hangs is stopped at the same timeout.
    std::fs::write(env.library().join("library.json"), r#"{"autoload": false}"#).unwrap();
    std::fs::write(env.library().join("drive"), "").unwrap();
    let (code, _, stderr) = tape_backup(
        &env,
        &[
            "--drive-timeout",
            "1",
            "--change-volume-command",
            "sleep 30",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("did not finish within 1 s"), "{stderr}");
}

#[test]
fn a_lone_drive_rebuilds_the_catalog_from_each_cartridge_the_changer_loads() {
    let env = Env::on_tape(r#"{"autoload": false}"#);
    let load = changer_by_sequence(&env);
    std::fs::write(env.src().join("a"), noise(7 << 20, 95)).unwrap();
    let (code, _, stderr) = tape_backup(&env, &["--change-volume-command", &load]);
    assert_eq!(code, 0, "{stderr}");
    assert!(env.library().join("c0002.cart").exists());
    // The catalog and the vault label are lost; only the cartridges remain. This
    // changer loads the cartridges that exist and fails after the last.
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    std::fs::remove_dir_all(env.library().join("vault")).unwrap();
    std::fs::create_dir(env.library().join("vault")).unwrap();
    let only_existing = format!(
        "n=$(printf %04d %n); [ -f {lib}/c$n.cart ] && echo c$n > {lib}/drive",
        lib = env.library().display()
    );
    let (code, summary, stderr) = run_json(env.tv(&[
        "catalog",
        "rebuild",
        "--json",
        "--change-volume-command",
        &only_existing,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
    assert!(
        summary["volumes"].as_array().unwrap().len() >= 2,
        "{summary}"
    );
    exact(&env, "out", &["--change-volume-command", &only_existing]);
}

#[test]
fn bad_tape_and_stream_options_are_one_line_usage_errors() {
    let env = Env::on_tape("{}");
    let src = env.src();
    let src = src.to_str().unwrap();
    for (args, says) in [
        (
            vec!["backup", src, "--block-size", "3K"],
            "multiple of 512 bytes from 4K to 4M",
        ),
        (
            vec!["backup", src, "--vault", "-", "--verify-after-write"],
            "cannot read back a stream",
        ),
    ] {
        let out = env.tv(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(env.cartridges().is_empty(), "nothing was written");
}
