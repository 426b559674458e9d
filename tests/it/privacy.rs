use crate::util::*;
use std::os::unix::fs::PermissionsExt;

fn vault_bytes(env: &Env) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(env.vault_dir()).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn t53_no_plaintext_names_contents_or_hashes_in_the_vault() {
    let env = Env::new();
    let secret_text = b"QUARTERLY-PAYROLL-Bob-Smith-4711\n".repeat(3);
    std::fs::create_dir(env.src().join("confidential-folder-name")).unwrap();
    std::fs::write(
        env.src().join("confidential-folder-name/payroll-zebra.csv"),
        &secret_text,
    )
    .unwrap();
    std::fs::write(env.src().join("tiny-unique-file"), b"unicorn-tiny-content").unwrap();
    let big = noise(300_000, 11);
    std::fs::write(env.src().join("noise"), &big).unwrap();
    env.backup(&[]);
    let vault = vault_bytes(&env);
    for needle in [
        &b"confidential-folder-name"[..],
        b"payroll-zebra",
        b"tiny-unique-file",
        b"unicorn-tiny-content",
        b"QUARTERLY-PAYROLL",
        &big[1000..1032],
        PASSPHRASE.as_bytes(),
        env.src().to_str().unwrap().as_bytes(),
    ] {
        assert!(
            !contains(&vault, needle),
            "vault shows {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    for content in [&secret_text[..], b"unicorn-tiny-content", &big] {
        let hash = blake3::hash(content);
        assert!(
            !contains(&vault, hash.as_bytes()),
            "raw unkeyed hash visible"
        );
        assert!(
            !contains(&vault, hash.to_hex().as_bytes()),
            "hex unkeyed hash visible"
        );
    }
}

#[test]
fn t55_private_permissions_and_the_passphrase_never_printed() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(env.path("catalog")), 0o700);
    assert_eq!(mode(env.path("catalog/catalog.sqlite")), 0o600);
    let src = env.src();
    let target = env.path("out");
    let report = env.path("drill.json");
    let metrics = env.path("metrics.prom");
    let rebuilt = env.path("rebuilt");
    let new_pass = env.path("new-pass");
    std::fs::write(&new_pass, "the second passphrase").unwrap();
    // The paper key is the one output that carries the master key: it appears nowhere else,
    // neither raw nor as hex.
    let paper = env
        .tv(&["key", "export", "--paper"])
        .output()
        .unwrap()
        .stdout;
    let (_, master) = tapevault::paper::import(&String::from_utf8(paper).unwrap()).unwrap();
    let master_raw = master.expose().to_vec();
    let master_hex: String = master_raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut printed = Vec::new();
    for args in [
        vec!["backup", src.to_str().unwrap()],
        vec!["backup", src.to_str().unwrap(), "--json", "-v"],
        vec![
            "backup",
            src.to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
        vec!["restore", "--target", target.to_str().unwrap(), "-v"],
        vec!["snapshots", "--json"],
        vec!["verify", "--deep", "-v"],
        vec![
            "drill",
            "--all",
            "--from-scratch",
            "-v",
            "--report",
            report.to_str().unwrap(),
        ],
        vec![
            "catalog",
            "rebuild",
            "--catalog",
            rebuilt.to_str().unwrap(),
            "--json",
        ],
        vec![
            "key",
            "passwd",
            "--new-passphrase-file",
            new_pass.to_str().unwrap(),
            "--json",
        ],
    ] {
        let out = env.tv(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        printed.extend(out.stdout);
        printed.extend(out.stderr);
    }
    printed.extend(std::fs::read(&report).unwrap());
    printed.extend(std::fs::read(&metrics).unwrap());
    for file in std::fs::read_dir(env.path("catalog")).unwrap() {
        printed.extend(std::fs::read(file.unwrap().path()).unwrap());
    }
    for volume in env.volumes() {
        assert_eq!(mode(volume), 0o600);
    }
    for secret in [
        PASSPHRASE.as_bytes(),
        b"the second passphrase",
        master_hex.as_bytes(),
        &master_raw,
    ] {
        assert!(
            !contains(&printed, secret),
            "{} printed or stored",
            String::from_utf8_lossy(secret)
        );
    }
    std::fs::copy(&new_pass, env.path("pass")).unwrap();
    std::fs::set_permissions(env.path("pass"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.tv(&["backup", src.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readable by others") && err.contains("pass"),
        "{err}"
    );
}
