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

#[test]
fn golden_vault_v1_small_restores_exactly_forever() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vaults/v1-small");
    let env = Env::uninitialised();
    for part in ["vault", "catalog"] {
        copy_dir(&fixture.join(part), &env.path(part));
    }
    std::fs::copy(fixture.join("passphrase"), env.path("pass")).unwrap();
    let target = env.path("out");
    let out = env
        .tv(&["restore", "--target", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(fixture.join("manifest")).unwrap();
    for line in manifest.lines() {
        let (hash, path) = line.split_once("  ").unwrap();
        let restored = target.join(path.trim_start_matches('/'));
        let bytes = std::fs::read(&restored).unwrap_or_else(|e| panic!("{restored:?}: {e}"));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), hash, "{path}");
    }
}
