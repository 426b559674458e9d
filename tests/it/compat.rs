use crate::util::*;

#[test]
fn man_pages_are_generated_from_the_cli_and_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = tapevault::cli::man_pages().unwrap();
    for (name, bytes) in &pages {
        let committed = std::fs::read(dir.join(name)).unwrap_or_default();
        assert!(
            committed == *bytes,
            "man/{name} is stale: run `tapevault generate man man`"
        );
    }
    let committed = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        committed,
        pages.len(),
        "man/ holds pages of commands that no longer exist"
    );
    if std::process::Command::new("groff")
        .arg("-v")
        .output()
        .is_ok()
    {
        for (name, _) in &pages {
            let out = std::process::Command::new("groff")
                .args(["-man", "-ww", "-z"])
                .arg(dir.join(name))
                .output()
                .unwrap();
            assert!(
                out.stderr.is_empty(),
                "groff warns on {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A golden vault and catalog, as committed, in a scratch env.
fn golden(name: &str) -> (Env, std::path::PathBuf) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/vaults")
        .join(name);
    let mut env = Env::uninitialised();
    for part in ["vault", "library", "catalog"] {
        if fixture.join(part).exists() {
            copy_dir(&fixture.join(part), &env.path(part));
        }
    }
    if fixture.join("library").exists() {
        env.vault = format!("tape:{}", env.library().display());
    }
    std::fs::copy(fixture.join("passphrase"), env.path("pass")).unwrap();
    (env, fixture)
}

/// Restore into `into` and check every file of the fixture's manifest; the exit code.
fn restore_golden(env: &Env, fixture: &std::path::Path, into: &str, extra: &[&str]) -> i32 {
    let (code, report, _) = env.restore(into, extra);
    let target = env.path(into);
    let manifest = std::fs::read_to_string(fixture.join("manifest")).unwrap();
    for line in manifest.lines() {
        let (hash, path) = line.split_once("  ").unwrap();
        let restored = target.join(path.trim_start_matches('/'));
        let bytes =
            std::fs::read(&restored).unwrap_or_else(|e| panic!("{restored:?}: {e}: {report}"));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), hash, "{path}");
    }
    code
}

#[test]
fn golden_vault_v1_small_restores_exactly_forever() {
    let (env, fixture) = golden("v1-small");
    assert_eq!(restore_golden(&env, &fixture, "out", &[]), 0);
}

/// A volume on an emulated cartridge (4 KiB blocks) as written on 2026-11-29: the
/// part headers, trailers and filemarks of FORMAT.md, read in place and rebuilt from
/// by spacing to the label and index parts, forever.
#[test]
fn golden_tape_v1_restores_and_rebuilds_forever() {
    let (env, fixture) = golden("v1-tape");
    assert_eq!(restore_golden(&env, &fixture, "out", &[]), 0);
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
    let rebuilt = env.path("rebuilt");
    assert_eq!(
        restore_golden(
            &env,
            &fixture,
            "again",
            &["--catalog", rebuilt.to_str().unwrap()]
        ),
        0
    );
}

/// Parity members, the label's parity field, volume sets in the index and a forget
/// record, as written on 2026-11-28: read, rebuilt and repaired forever.
#[test]
fn golden_vault_v1_parity_restores_rebuilds_and_repairs_forever() {
    let (env, fixture) = golden("v1-parity");
    assert_eq!(restore_golden(&env, &fixture, "out", &[]), 0);
    // The vault alone: the forget record keeps the forgotten snapshot out.
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
    // --parity 1 with 16 KiB shards repairs any burst of 2 shards: 32 KiB.
    let first = env.volumes()[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() / 3;
    bytes[at..at + (32 << 10)].fill(0x5a);
    std::fs::write(&first, &bytes).unwrap();
    assert_eq!(restore_golden(&env, &fixture, "repaired", &[]), 3);
}
