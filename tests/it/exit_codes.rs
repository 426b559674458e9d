use crate::util::*;

fn code_and_stderr(mut cmd: impl std::borrow::BorrowMut<assert_cmd::Command>) -> (i32, String) {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn t44_wrong_or_empty_passphrase_is_exit_5_and_creates_nothing() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    env.backup(&[]);
    let target = env.path("out");
    for wrong in ["wrong passphrase\n", "", "\n", &format!("{PASSPHRASE} \n")] {
        std::fs::write(env.path("pass"), wrong).unwrap();
        let (code, err) =
            code_and_stderr(env.tv(&["restore", "--target", target.to_str().unwrap()]));
        assert_eq!(code, 5, "{wrong:?}: {err}");
        assert!(err.contains("wrong passphrase"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!target.exists(), "a wrong key must not create output");
    }
    // Policy: one trailing newline (or CRLF) is ignored, nothing else.
    for right in [PASSPHRASE.to_string(), format!("{PASSPHRASE}\r\n")] {
        std::fs::write(env.path("pass"), &right).unwrap();
        let (code, err) = code_and_stderr(env.tv(&["snapshots"]).arg("--quiet"));
        assert_eq!(code, 0, "{err}");
        let (code, err) = code_and_stderr(env.tv(&["restore", "--plan"]));
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn wrong_passphrase_stops_a_backup_whose_walk_started_and_stores_nothing() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    env.backup(&[]);
    // More new files than the workers' queue holds, so the walk is still handing out
    // files when the key derivation fails: it must stop, not wait for the workers.
    for i in 0..600 {
        std::fs::write(env.src().join(format!("new-{i}")), format!("new {i}")).unwrap();
    }
    let volumes = env.volumes();
    std::fs::write(env.path("pass"), "wrong").unwrap();
    let src = env.src();
    let mut backup = env.tv(&["backup", src.to_str().unwrap()]);
    backup.timeout(std::time::Duration::from_secs(120));
    let (code, err) = code_and_stderr(backup);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(
        env.volumes(),
        volumes,
        "a wrong key must not write a volume"
    );
    std::fs::write(env.path("pass"), PASSPHRASE).unwrap();
    let summary = env.backup(&[]);
    assert_eq!(summary["snapshot"]["stats"]["files_new"], 600, "{summary}");
    let (code, listed, err) = run_json(env.tv(&["snapshots", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 2, "{listed}");
    let (code, _, landed) = env.restore("out", &[]);
    assert_eq!(code, 0);
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn missing_catalog_or_vault_is_exit_1_naming_the_fix() {
    let env = Env::uninitialised();
    let src = env.src();
    let (code, err) = code_and_stderr(env.tv(&["backup", src.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tapevault init"), "{err}");
    let env = Env::new();
    std::fs::remove_dir_all(env.vault_dir()).unwrap();
    let (code, err) = code_and_stderr(env.tv(&["backup", src.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn snapshot_selector_matching_nothing_is_1_and_several_is_2() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    env.backup(&[]);
    env.backup(&[]);
    let (code, err) = code_and_stderr(env.tv(&["ls", "zzzz"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no snapshot matches"), "{err}");
    let (code, err) = code_and_stderr(env.tv(&["ls", ""]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ambiguous"), "{err}");
}

#[test]
fn unwritable_target_is_exit_1() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    env.backup(&[]);
    let blocked = env.src().join("f").join("below-a-file");
    let (code, err) = code_and_stderr(env.tv(&["restore", "--target", blocked.to_str().unwrap()]));
    assert_eq!(code, 1, "{err}");
}

#[test]
fn usage_errors_are_exit_2() {
    let env = Env::new();
    let src = env.src();
    let src = src.to_str().unwrap();
    for args in [
        vec!["backup", src, "--volume-size", "lots"],
        vec!["backup", src, "--volume-size", "1M"],
        vec!["backup", src, "--no-such-flag"],
        vec!["backup", src, "--compression-level", "99"],
        vec!["backup", src, "--exclude", "[unclosed"],
        vec!["frobnicate"],
    ] {
        let (code, err) = code_and_stderr(env.tv(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    // Bad values caught by tapevault itself: one line each.
    for args in [
        vec!["consolidate", "--volume-size", "1M"],
        vec![
            "restore",
            "--target",
            "/tmp/nowhere",
            "--copy-vault",
            "bogus",
        ],
        vec!["drill", "--copy-vault", "s4://nowhere"],
    ] {
        let (code, err) = code_and_stderr(env.tv(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    for address in ["tape:", "ftp://host/vault"] {
        let (code, err) = code_and_stderr(env.tv(&["snapshots"]).env("TAPEVAULT_VAULT", address));
        assert_eq!(code, 2, "{address}: {err}");
        assert_eq!(err.lines().count(), 1, "{address}: {err}");
    }
}

#[test]
fn t47_a_second_run_is_exit_6_naming_the_holder() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("catalog")).unwrap();
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.path("catalog/lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    std::fs::write(env.path("catalog/lock"), "pid 4242 on testhost since then").unwrap();
    let src = env.src();
    let started = std::time::Instant::now();
    let (code, err) = code_and_stderr(env.tv(&["backup", src.to_str().unwrap()]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("pid 4242 on testhost"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(lock);
    let (code, err) = code_and_stderr(env.tv(&["backup", src.to_str().unwrap()]));
    assert_eq!(code, 0, "a released lock must not block: {err}");
}

/// Runs the command as an unprivileged user when the tests run as root, so 000 files are unreadable.
#[test]
fn t22_unreadable_file_is_skipped_named_and_exit_3() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    std::fs::write(env.src().join("readable"), b"fine").unwrap();
    std::fs::write(env.src().join("locked"), b"private").unwrap();
    std::fs::create_dir(env.src().join("closed-dir")).unwrap();
    std::fs::write(env.src().join("closed-dir/inner"), b"x").unwrap();
    std::fs::set_permissions(
        env.src().join("locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        env.src().join("closed-dir"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let src = env.src();
    let out = as_unprivileged(&env, &["backup", src.to_str().unwrap(), "--json"]);
    std::fs::set_permissions(
        env.src().join("closed-dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = summary["warnings"].to_string();
    assert!(warnings.contains("locked"), "{warnings}");
    assert!(warnings.contains("closed-dir"), "{warnings}");
    assert_eq!(summary["snapshot"]["warning_count"], 2);
    let out = as_unprivileged(&env, &["ls", "latest", "--json"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("/src/readable\""), "{listing}");
    assert!(
        !listing.contains("/src/locked\""),
        "a skipped file must not be in the snapshot: {listing}"
    );
}

#[test]
fn output_that_cannot_be_written_neither_panics_nor_hides_the_outcome() {
    let env = Env::new();
    std::fs::write(env.src().join("good"), noise(50_000, 1)).unwrap();
    std::fs::write(env.src().join("bad"), noise(50_000, 2)).unwrap();
    env.backup(&[]);
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    // The report redirected to a full disk is lost: an error, said in one line.
    for args in [&["snapshots"][..], &["snapshots", "--json"]] {
        let out = env.process(args).stdout(full()).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(
            err.starts_with("tapevault: error: cannot write the report to standard output: ")
                && err.contains("No space left on device"),
            "{args:?}: {err}"
        );
    }

    // The metrics say the same exit code as the process.
    let metrics = env.path("verify.prom");
    let out = env
        .process(&["verify", "--metrics-file"])
        .arg(&metrics)
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let exported = std::fs::read_to_string(&metrics).unwrap();
    let exit_code = exported
        .lines()
        .find(|line| line.starts_with("tapevault_last_run_exit_code"))
        .unwrap();
    assert!(exit_code.ends_with(" 1"), "{exported}");

    // A reader that stopped reading (`| head`) is not a failure.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env.process(&["ls"]).stdout(writer).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");

    // A restore whose stderr (a cron log) is on a full disk goes on to the end, and
    // its exit code still says that a file is damaged.
    flip_first_chunk_of(&env, "bad");
    let target = env.path("out");
    let out = env
        .process(&["restore", "--target", target.to_str().unwrap()])
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
    let landed = target.join(env.src().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(landed.join("good")).unwrap(),
        noise(50_000, 1)
    );
    assert!(!landed.join("bad").exists());

    // Nor may a metrics file that cannot be written turn a failed run into "warnings".
    let missing = format!("dir:{}", env.path("missing").display());
    let metrics = env.path("no-such-folder/run.prom");
    let out = env
        .process(&["verify", "--vault", &missing, "--metrics-file"])
        .arg(&metrics)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("metrics not written"), "{err}");
}
