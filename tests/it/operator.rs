use crate::util::*;
use std::path::{Path, PathBuf};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn no_terminal_codes(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b) && !bytes.contains(&b'\r'),
        "{what}: escape codes or carriage returns without a terminal: {}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn without_a_terminal_there_are_no_escape_codes_and_one_line_per_volume() {
    let env = Env::new();
    std::fs::write(env.src().join("big"), noise(6 << 20, 3)).unwrap();
    let src = env.src();
    let out = env
        .tv(&["backup", src.to_str().unwrap(), "--volume-size", "4M", "-v"])
        .output()
        .unwrap();
    assert!(out.status.success());
    no_terminal_codes("backup stdout", &out.stdout);
    no_terminal_codes("backup stderr", &out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sealed = stdout
        .lines()
        .filter(|l| l.starts_with("sealed tv"))
        .count();
    assert!(sealed >= 2, "one line per sealed volume: {stdout}");
    assert!(
        stdout.contains("new       /"),
        "-v names each file: {stdout}"
    );
    let quiet = env
        .tv(&[
            "backup",
            src.to_str().unwrap(),
            "--volume-size",
            "4M",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "--quiet"
    );
    let target = env.path("out");
    for args in [
        vec!["restore", "--target", target.to_str().unwrap()],
        vec!["verify"],
        vec!["verify", "--deep"],
        vec!["drill", "--sample", "1"],
    ] {
        let out = env.tv(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        no_terminal_codes(&format!("{args:?}"), &out.stdout);
        no_terminal_codes(&format!("{args:?}"), &out.stderr);
    }
}

#[test]
fn on_a_terminal_a_backup_shows_a_progress_bar() {
    let env = Env::new();
    std::fs::write(env.src().join("big"), noise(6 << 20, 4)).unwrap();
    let binary = assert_cmd::cargo::cargo_bin("tapevault");
    let line = format!(
        "{} backup {} --volume-size 4M --passphrase-file {}",
        binary.display(),
        env.src().display(),
        env.path("pass").display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env(
            "TAPEVAULT_VAULT",
            format!("dir:{}", env.vault_dir().display()),
        )
        .env("TAPEVAULT_CATALOG", env.path("catalog"))
        .output()
        .expect("`script` (util-linux) runs commands under a pseudo-terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains('\r') && shown.contains("\x1b["), "{shown}");
    assert!(
        shown.contains("backup ") && shown.contains("MiB"),
        "{shown}"
    );
    assert!(
        shown.contains("snapshot ") && shown.contains("saved"),
        "{shown}"
    );
}

/// The structure of a JSON document: every key, and the type of every value.
fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// Compare with `fixtures/json/NAME.json`; TAPEVAULT_BLESS=1 rewrites it.
fn matches_snapshot(name: &str, document: &serde_json::Value) {
    let path = repo(&format!("fixtures/json/{name}.json"));
    let actual = serde_json::to_string_pretty(&shape(document)).unwrap() + "\n";
    if std::env::var_os("TAPEVAULT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "--json of {name} changed shape: update docs/JSON.md, then rerun with TAPEVAULT_BLESS=1"
    );
}

fn json_of(env: &Env, args: &[&str]) -> serde_json::Value {
    json_with_code(env, args, 0)
}

fn json_with_code(env: &Env, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = env.tv(&all).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e})"))
}

#[test]
fn every_command_prints_one_json_document_of_a_stable_shape() {
    let fresh = Env::uninitialised();
    let init = json_of(&fresh, &CHEAP_INIT);
    matches_snapshot("init", &init);

    let env = Env::new();
    // Under the smallest chunk (192 KiB): one chunk, so a damaged file is wholly lost
    // and optional fields (first_byte_seconds) are the same on every run.
    std::fs::write(env.src().join("file"), noise(150_000, 5)).unwrap();
    let src = env.src();
    matches_snapshot(
        "backup",
        &json_of(
            &env,
            &["backup", src.to_str().unwrap(), "--volume-size", "4M"],
        ),
    );
    matches_snapshot("snapshots", &json_of(&env, &["snapshots"]));
    matches_snapshot("ls", &json_of(&env, &["ls"]));
    matches_snapshot("restore-plan", &json_of(&env, &["restore", "--plan"]));
    let target = env.path("out");
    matches_snapshot(
        "restore",
        &json_of(&env, &["restore", "--target", target.to_str().unwrap()]),
    );
    let copy = format!("dir:{}", env.path("copy").display());
    matches_snapshot("copy", &json_of(&env, &["copy", "--to", &copy]));
    matches_snapshot("volumes", &json_of(&env, &["volumes"]));
    matches_snapshot(
        "forget",
        &json_of(&env, &["forget", "--keep-daily", "7", "--dry-run"]),
    );
    matches_snapshot("prune", &json_of(&env, &["prune", "--dry-run"]));
    matches_snapshot("consolidate", &json_of(&env, &["consolidate", "--dry-run"]));
    matches_snapshot("verify", &json_of(&env, &["verify"]));
    matches_snapshot("verify-deep", &json_of(&env, &["verify", "--deep"]));
    matches_snapshot("drill", &json_of(&env, &["drill", "--sample", "1"]));
    matches_snapshot("drill-history", &json_of(&env, &["drill", "--history"]));
    let rebuilt = env.path("rebuilt");
    matches_snapshot(
        "catalog-rebuild",
        &json_of(
            &env,
            &["catalog", "rebuild", "--catalog", rebuilt.to_str().unwrap()],
        ),
    );
    matches_snapshot("key-export", &json_of(&env, &["key", "export", "--paper"]));
    std::fs::write(env.path("new-pass"), "another passphrase").unwrap();
    let new_pass = env.path("new-pass");
    matches_snapshot(
        "key-passwd",
        &json_of(
            &env,
            &[
                "key",
                "passwd",
                "--new-passphrase-file",
                new_pass.to_str().unwrap(),
            ],
        ),
    );
    // Damage reports: every list item's shape is guarded too.
    flip_first_chunk_of(&env, "file");
    let target = env.path("out-damaged");
    std::fs::copy(env.path("new-pass"), env.path("pass")).unwrap();
    matches_snapshot(
        "restore-damaged",
        &json_with_code(&env, &["restore", "--target", target.to_str().unwrap()], 4),
    );
    matches_snapshot("verify-damaged", &json_with_code(&env, &["verify"], 4));
    matches_snapshot(
        "verify-deep-damaged",
        &json_with_code(&env, &["verify", "--deep"], 4),
    );
    matches_snapshot(
        "drill-damaged",
        &json_with_code(&env, &["drill", "--all", "--from-scratch"], 4),
    );
    // docs/JSON.md documents every document checked here.
    let documented = std::fs::read_to_string(repo("docs/JSON.md")).unwrap();
    for entry in std::fs::read_dir(repo("fixtures/json")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let name = name.trim_end_matches(".json");
        assert!(
            documented.contains(&format!("`{name}`")),
            "docs/JSON.md does not document {name}"
        );
    }
}

fn write_config(env: &Env, body: &str) -> PathBuf {
    let path = env.path("config.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn a_profile_drives_a_backup_and_flags_override_it() {
    let env = Env::new();
    std::fs::write(env.src().join("keep.txt"), b"kept").unwrap();
    std::fs::write(env.src().join("skip.tmp"), b"skipped").unwrap();
    let config = write_config(
        &env,
        &format!(
            "[profiles.nightly]\nsources = [\"{}\"]\nexclude = [\"*.tmp\"]\nvolume_size = \"4M\"\ntags = [\"nightly\"]\n",
            env.src().display()
        ),
    );
    let config = config.to_str().unwrap();
    let backup = json_of(
        &env,
        &["backup", "--config", config, "--profile", "nightly"],
    );
    assert_eq!(backup["snapshot"]["tags"][0], "nightly");
    assert_eq!(backup["snapshot"]["stats"]["files"], 1, "{backup}");
    // A flag wins over the profile.
    let backup = json_of(
        &env,
        &[
            "backup",
            "--config",
            config,
            "--profile",
            "nightly",
            "--tag",
            "manual",
        ],
    );
    assert_eq!(backup["snapshot"]["tags"], serde_json::json!(["manual"]));
    // Mistakes are usage errors that name the place.
    let (code, _, stderr) =
        run_json(env.tv(&["backup", "--config", config, "--profile", "weekly"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("weekly") && stderr.contains("nightly"),
        "{stderr}"
    );
    let typo = write_config(&env, "[profiles.nightly]\nsource = [\"/etc\"]\n");
    let (code, _, stderr) = run_json(env.tv(&[
        "backup",
        "--config",
        typo.to_str().unwrap(),
        "--profile",
        "nightly",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("line 2") && stderr.contains("source"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_shipped_examples_parse() {
    // The example config: every profile loads (a config error would be exit 2).
    for profile in ["nightly", "verify"] {
        let mut cmd = assert_cmd::Command::cargo_bin("tapevault").unwrap();
        cmd.env_remove("TAPEVAULT_VAULT")
            .env_remove("TAPEVAULT_CATALOG")
            .args(["snapshots", "--config"])
            .arg(repo("docs/examples/config.toml"))
            .args(["--profile", profile]);
        let (code, _, stderr) = run_json(cmd);
        assert_ne!(code, 2, "{profile}: {stderr}");
        assert!(
            stderr.contains("/mnt/offsite") || stderr.contains("/var/lib"),
            "{stderr}"
        );
    }
    // The crontab: five time fields, then a tapevault command line that clap accepts.
    let crontab = std::fs::read_to_string(repo("docs/examples/crontab")).unwrap();
    let mut entries = 0;
    for line in crontab
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        for field in &fields[..5] {
            assert!(
                field
                    .chars()
                    .all(|c| c.is_ascii_digit() || "*/,-".contains(c)),
                "{line}"
            );
        }
        assert_eq!(fields[5], "/usr/local/bin/tapevault", "{line}");
        let parsed = tapevault::cli::parse_only(&fields[5..]);
        assert!(parsed.is_ok(), "{line}: {parsed:?}");
        entries += 1;
    }
    assert_eq!(entries, 5);
    // The systemd units, where systemd-analyze exists.
    let dir = tempfile::tempdir().unwrap();
    let binary = assert_cmd::cargo::cargo_bin("tapevault");
    for unit in ["tapevault-backup.service", "tapevault-backup.timer"] {
        let text = std::fs::read_to_string(repo(&format!("docs/examples/{unit}"))).unwrap();
        assert!(text.contains("[Unit]"));
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart="));
        if let Some(exec) = exec {
            let words: Vec<&str> = exec.split_whitespace().collect();
            assert!(tapevault::cli::parse_only(&words).is_ok(), "{exec}");
        }
        let text = text.replace("/usr/local/bin/tapevault", binary.to_str().unwrap());
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    if let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("tapevault-backup.service"))
        .arg(dir.path().join("tapevault-backup.timer"))
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Check Prometheus text format line by line; returns sample name -> value.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(valid_name(rest.split(' ').next().unwrap()), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                valid_name(name) && ["gauge", "counter"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string());
        } else {
            let (name, rest) = line.split_once('{').expect("labels");
            let (labels, value) = rest.rsplit_once("} ").expect("value");
            assert!(valid_name(name) && typed.contains(name), "{line}");
            for pair in labels.split("\",") {
                let (key, value) = pair.split_once("=\"").expect("label pair");
                assert!(valid_name(key), "{line}");
                assert!(!value.trim_end_matches('"').contains('\n'), "{line}");
            }
            samples.insert(name.to_string(), value.parse::<f64>().expect("a number"));
        }
    }
    samples
}

#[test]
fn metrics_files_are_prometheus_text_for_success_and_failure() {
    let env = two_volume_vault();
    let metrics = env.path("backup.prom");
    let src = env.src();
    let out = env
        .tv(&[
            "backup",
            src.to_str().unwrap(),
            "--volume-size",
            "4M",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let samples = parse_prometheus(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(samples["tapevault_last_run_success"], 1.0);
    assert_eq!(samples["tapevault_last_run_files"], 3.0);
    assert!(samples["tapevault_last_run_bytes"] > 6e6);
    assert_eq!(samples.len(), 9);
    // Damage is what an alert must see: verify after a lost volume.
    std::fs::remove_file(&env.volumes()[0]).unwrap();
    let verify = env.path("verify.prom");
    let out = env
        .tv(&["verify", "--metrics-file", verify.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let samples = parse_prometheus(&std::fs::read_to_string(&verify).unwrap());
    assert_eq!(samples["tapevault_last_run_exit_code"], 4.0);
    assert_eq!(samples["tapevault_last_run_success"], 0.0);
    assert_eq!(samples["tapevault_last_run_damage"], 1.0);
    // A run that fails outright still writes its metrics.
    std::fs::write(env.path("pass"), "wrong").unwrap();
    let drill = env.path("drill.prom");
    let out = env
        .tv(&["drill", "--metrics-file", drill.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let samples = parse_prometheus(&std::fs::read_to_string(&drill).unwrap());
    assert_eq!(samples["tapevault_last_run_exit_code"], 5.0);
}

#[test]
fn t67_exit_code_precedence_and_json_lists_every_condition() {
    let env = two_volume_vault();
    let volumes = env.volumes();
    // A damaged label alone: everything restored, the medium needs a look (3).
    let mut first = std::fs::read(&volumes[0]).unwrap();
    let at = first
        .windows(18)
        .position(|w| w == b"tapevault-label v1")
        .unwrap();
    first[at + 10] = b'X';
    std::fs::write(&volumes[0], &first).unwrap();
    let (code, report, _) = env.restore("out-3", &[]);
    assert_eq!(code, 3, "{report}");
    // Plus a lost blob in the other volume: damage wins (4), and both are listed.
    let mut second = std::fs::read(&volumes[1]).unwrap();
    let (pack_at, pack_len) = member_range(&second, "pack-000001.tvp");
    second[pack_at + pack_len / 2] ^= 1;
    std::fs::write(&volumes[1], &second).unwrap();
    let (code, report, _) = env.restore("out-4", &[]);
    assert_eq!(code, 4, "{report}");
    assert!(
        !report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        !report["damaged"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // Plus a catalog that cannot be written: an error (1) outranks both.
    let read_only = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap()
    };
    let catalog = env.path("catalog");
    for file in std::fs::read_dir(&catalog).unwrap() {
        read_only(&file.unwrap().path(), 0o400);
    }
    read_only(&catalog, 0o500);
    let out = as_unprivileged(&env, &["drill", "--all"]);
    read_only(&catalog, 0o700);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tapevault: error:"), "{stderr}");
}

#[test]
fn completions_are_generated_from_the_cli_and_current() {
    let dir = repo("completions");
    for (name, bytes) in tapevault::cli::completions() {
        let committed = std::fs::read(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == bytes,
            "completions/{name} is stale: run `tapevault generate completions completions`"
        );
    }
}

#[test]
fn volume_notes_say_where_each_volume_is_kept_in_volumes_and_the_plan() {
    let env = two_volume_vault();
    env.tv(&["volumes", "note", "2", "offsite vault B, box 12"])
        .assert()
        .success();
    let (code, listing, _) = run_json(env.tv(&["volumes", "--json"]));
    assert_eq!(code, 0);
    let second = listing["volumes"][1]["name"].as_str().unwrap();
    assert_eq!(
        listing["notes"],
        serde_json::json!([{"name": second, "note": "offsite vault B, box 12"}])
    );
    let text = env.tv(&["volumes"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("at: offsite vault B, box 12"), "{text}");
    let (_, plan, _) = run_json(env.tv(&["restore", "--plan", "--json"]));
    let planned = plan["volumes"].as_array().unwrap();
    assert!(planned
        .iter()
        .any(|v| v["sequence"] == 2 && v["location"] == "offsite vault B, box 12"));
    assert!(planned
        .iter()
        .any(|v| v["sequence"] == 1 && v["location"].is_null()));
    // Cleared with an empty text; an unknown volume is a usage error naming it.
    env.tv(&["volumes", "note", "2", ""]).assert().success();
    let (_, listing, _) = run_json(env.tv(&["volumes", "--json"]));
    assert_eq!(listing["notes"], serde_json::json!([]));
    let (code, _, err) = run_json(env.tv(&["volumes", "note", "99", "x"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no volume #99"), "{err}");
}

#[test]
fn media_presets_size_volumes_for_a_cartridge_and_volume_size_overrides() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), noise(9 << 20, 3)).unwrap();
    let src = env.src();
    let (code, summary, err) = run_json(env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--media",
        "lto-7",
        "--volume-size",
        "4M",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        summary["volumes_written"].as_array().unwrap().len() >= 3,
        "{summary}"
    );
    std::fs::write(env.src().join("g"), noise(9 << 20, 4)).unwrap();
    let (code, summary, err) = run_json(env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--media",
        "lto-5",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        summary["volumes_written"].as_array().unwrap().len(),
        1,
        "{summary}"
    );
    let (code, _, err) = run_json(env.tv(&["backup", src.to_str().unwrap(), "--media", "lto-4"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lto-5") && err.contains("lto-10"), "{err}");
}
