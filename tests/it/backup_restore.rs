use crate::util::*;

#[test]
fn round_trip_of_every_entry_kind_is_exact_across_several_volumes() {
    let env = Env::new();
    every_kind_tree(&env.src());
    let summary = env.backup(&[]);
    assert_eq!(
        summary["warnings"].as_array().unwrap().len(),
        0,
        "{summary}"
    );
    let volumes = env.volumes();
    assert!(
        volumes.len() >= 2,
        "6 MiB of noise at 4M volumes needs several: {volumes:?}"
    );
    for volume in &volumes {
        assert!(
            std::fs::metadata(volume).unwrap().len() <= 4 << 20,
            "{volume:?} over its size"
        );
    }
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn t43_gnu_tar_lists_exactly_the_members_tapevault_reads() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), noise(3 << 20, 4)).unwrap();
    env.backup(&[]);
    for volume in env.volumes() {
        let out = std::process::Command::new("tar")
            .arg("tf")
            .arg(&volume)
            .output()
            .unwrap();
        assert!(out.status.success(), "GNU tar could not list {volume:?}");
        let gnu: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let mut ours = Vec::new();
        let mut reader =
            tapevault::volume::VolumeReader::new(std::fs::File::open(&volume).unwrap());
        while let Some(member) = reader.next_member().unwrap() {
            ours.push(member.name);
        }
        assert_eq!(gnu, ours);
        assert_eq!(ours.first().map(String::as_str), Some("label.tvl"));
        assert_eq!(ours.last().map(String::as_str), Some("index.tvi"));
    }
}

#[test]
fn unchanged_second_backup_reads_nothing_and_stores_almost_nothing() {
    let env = Env::new();
    every_kind_tree(&env.src());
    let first = env.backup(&[]);
    let second = env.backup(&[]);
    let stats = &second["snapshot"]["stats"];
    assert_eq!(
        stats["files_unchanged"],
        first["snapshot"]["stats"]["files"]
    );
    assert_eq!(stats["files_new"], 0);
    assert_eq!(stats["bytes_added"], 0);
    assert!(
        second["bytes_written"].as_u64().unwrap() < 64 << 10,
        "{second}"
    );
    assert_eq!(second["snapshot"]["parent"], first["snapshot"]["id"]);
    // One changed file is re-read; the rest are not.
    std::fs::write(env.src().join("text/small.txt"), b"changed\n").unwrap();
    let third = env.backup(&[]);
    assert_eq!(third["snapshot"]["stats"]["files_changed"], 1);
    let (code, _, landed) = env.restore("out", &[]);
    assert_eq!(code, 0);
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn include_restores_only_that_subtree_and_exclude_skips() {
    let env = Env::new();
    every_kind_tree(&env.src());
    std::fs::write(env.src().join("text/skip.tmp"), b"temporary").unwrap();
    env.backup(&["--exclude", "*.tmp"]);
    let include = env.src().join("text");
    let (code, report, landed) = env.restore("out", &["--include", include.to_str().unwrap()]);
    assert_eq!(code, 0, "{report}");
    assert!(landed.join("text/log.txt").is_file());
    assert!(
        !landed.join("text/skip.tmp").exists(),
        "excluded file was stored"
    );
    assert!(
        !landed.join("big.bin").exists(),
        "restored outside the include"
    );
    assert_eq!(
        std::fs::read(landed.join("text/small.txt")).unwrap(),
        b"hello\n"
    );
}

#[test]
fn restore_into_a_non_empty_target_needs_overwrite() {
    let env = Env::new();
    std::fs::write(env.src().join("a"), b"new").unwrap();
    env.backup(&[]);
    let (code, _, landed) = env.restore("out", &[]);
    assert_eq!(code, 0);
    std::fs::write(landed.join("a"), b"local edit").unwrap();
    let (code, _, _) = env.restore("out", &[]);
    assert_eq!(code, 1, "an existing file must not be replaced silently");
    assert_eq!(std::fs::read(landed.join("a")).unwrap(), b"local edit");
    let (code, _, _) = env.restore("out", &["--overwrite"]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(landed.join("a")).unwrap(), b"new");
}

#[test]
fn plan_lists_only_the_volumes_an_include_needs() {
    let env = Env::new();
    std::fs::write(env.src().join("first"), noise(3 << 20, 1)).unwrap();
    env.backup(&[]);
    std::fs::write(env.src().join("second"), noise(3 << 20, 2)).unwrap();
    env.backup(&[]);
    let include = env.src().join("second");
    let out = env
        .tv(&[
            "restore",
            "--plan",
            "--json",
            "--include",
            include.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let volumes = plan["volumes"].as_array().unwrap();
    assert!(!volumes.is_empty());
    // Everything for "second" was written by the second run, so no volume of the first is read.
    let first_run_volumes = 1;
    assert!(
        volumes
            .iter()
            .all(|v| v["sequence"].as_u64().unwrap() > first_run_volumes),
        "{plan}"
    );
}

#[test]
fn ls_and_snapshots_show_what_was_saved() {
    let env = Env::new();
    std::fs::write(env.src().join("listed.txt"), b"x").unwrap();
    let summary = env.backup(&["--tag", "nightly"]);
    let id = summary["snapshot"]["id"].as_str().unwrap();
    let out = env.tv(&["snapshots", "--json"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["snapshots"][0]["id"], id);
    assert_eq!(list["snapshots"][0]["tags"][0], "nightly");
    let out = env.tv(&["ls", &id[..8]]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("listed.txt"));
}

#[test]
fn a_chunk_stored_in_a_volume_sealed_earlier_in_the_run_is_not_stored_again() {
    let env = Env::new();
    let first = noise(3 << 20, 31);
    std::fs::write(env.src().join("a-first"), &first).unwrap();
    // More than the chunks queued between the stages, so that by the time the copy is
    // read, the volume holding the first is sealed and the run's claims on it released:
    // only the catalog still knows those chunks.
    std::fs::write(env.src().join("m-middle"), noise(32 << 20, 32)).unwrap();
    std::fs::write(env.src().join("z-copy"), &first).unwrap();
    let summary = env.backup(&["--threads", "1"]);
    assert!(env.volumes().len() >= 8, "{:?}", env.volumes());
    let added = summary["snapshot"]["stats"]["bytes_added"]
        .as_u64()
        .unwrap();
    assert_eq!(added, 35 << 20, "the copy is stored once: {summary}");
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn a_source_named_through_a_symlink_is_kept_as_the_folder_it_names() {
    let env = Env::new();
    let real = env.path("real");
    every_kind_tree(&real);
    std::fs::remove_dir(env.src()).unwrap();
    std::os::unix::fs::symlink(&real, env.src()).unwrap();
    let summary = env.backup(&[]);
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary}");
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert!(std::fs::symlink_metadata(&landed).unwrap().is_dir());
    assert_same_tree(&real, &landed);
}

/// Open folder after folder, each from the one before: no path is resolved whole.
fn open_deep(root: &std::path::Path, names: &[String]) -> std::os::fd::OwnedFd {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, flags, Mode::empty()).unwrap();
    for name in names {
        dir = rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty()).unwrap();
    }
    dir
}

#[test]
fn a_tree_deeper_than_path_max_is_backed_up_and_restored_whole() {
    use rustix::fs::{Mode, OFlags};
    let env = Env::new();
    // 30 folders of 200-byte names: the file at the bottom has a path over 6 KiB, past
    // PATH_MAX (4 KiB), which no path-based open reaches.
    let names: Vec<String> = (0..30)
        .map(|level| format!("{level:02}{}", "d".repeat(198)))
        .collect();
    for depth in 0..names.len() {
        let parent = open_deep(&env.src(), &names[..depth]);
        rustix::fs::mkdirat(&parent, names[depth].as_str(), Mode::from_raw_mode(0o755)).unwrap();
    }
    let content = noise(300_000, 33);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
    let bottom = open_deep(&env.src(), &names);
    let file = rustix::fs::openat(&bottom, "bottom", flags, Mode::from_raw_mode(0o640)).unwrap();
    std::io::Write::write_all(&mut std::fs::File::from(file), &content).unwrap();

    let summary = env.backup(&[]);
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary}");
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    let restored = open_deep(&landed, &names);
    let file = rustix::fs::openat(&restored, "bottom", OFlags::RDONLY, Mode::empty()).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(file), &mut back).unwrap();
    assert!(back == content, "the bottom file restored exactly");
}

#[test]
fn a_backup_leaves_the_access_times_of_what_it_reads_as_they_were() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let folder = env.src().join("mail");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("inbox"), b"From someone: not read yet\n").unwrap();
    // Two days ago: on a relatime mount, any read of either would move it to now.
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    let paths = [folder.clone(), folder.join("inbox")];
    for path in &paths {
        let times = std::fs::FileTimes::new().set_accessed(long_ago);
        std::fs::File::open(path).unwrap().set_times(times).unwrap();
    }
    let atimes = || -> Vec<i64> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().atime())
            .collect()
    };
    let before = atimes();
    let summary = env.backup(&[]);
    assert_eq!(summary["snapshot"]["stats"]["files"], 1, "{summary}");
    assert_eq!(atimes(), before, "the inbox and its folder look unread");
}

#[test]
fn another_owners_readable_files_are_backed_up_though_their_access_time_moves() {
    if !is_root_else("needs root, to back up root's files as another user") {
        return;
    }
    let env = Env::new();
    // Root's, readable by all: only their owner may open them without touching atime.
    let (theirs, _) = roots_folder_of_one_readable_file(0o755);
    backs_up_one_file_as_nobody(&env, theirs.path());
}

#[test]
fn a_filesystem_mounted_inside_a_source_is_kept_as_its_folder_unless_crossing_is_asked() {
    let env = Env::new();
    std::fs::write(env.src().join("here"), b"on the source's filesystem").unwrap();
    let Some(_mounted) = Mounted::tmpfs(&env.src().join("mnt"), "1m") else {
        eprintln!("note: cannot mount a tmpfs here to cross into");
        return;
    };
    std::fs::write(env.src().join("mnt/elsewhere"), b"on another filesystem").unwrap();
    let listing = |extra: &[&str]| {
        env.backup(extra);
        let out = env.tv(&["ls", "latest", "--json"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let within = listing(&[]);
    assert!(within.contains("/src/mnt\""), "{within}");
    assert!(within.contains("/src/here\""), "{within}");
    assert!(!within.contains("elsewhere"), "{within}");
    let crossing = listing(&["--cross-file-systems"]);
    assert!(crossing.contains("/src/mnt/elsewhere\""), "{crossing}");
}

#[test]
fn a_source_inside_a_folder_its_user_may_pass_through_but_not_list_is_backed_up() {
    if !is_root_else("needs root, to back up root's folders as another user") {
        return;
    }
    let env = Env::new();
    // Like a home folder at 0711: others may reach what is inside, not list it.
    let (_home, public) = roots_folder_of_one_readable_file(0o711);
    backs_up_one_file_as_nobody(&env, &public);
}

/// A folder of root's at `mode`, holding a folder anyone may read with one file in it:
/// the outer folder (removed when dropped) and the inner one.
fn roots_folder_of_one_readable_file(mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let outer = tempfile::tempdir().unwrap();
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let inner = outer.path().join("public");
    std::fs::create_dir(&inner).unwrap();
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(inner.join("shared.txt"), b"root's, for all to read").unwrap();
    (outer, inner)
}

/// Back up `source`, holding one file, as an unprivileged user: exit 0, the file kept.
fn backs_up_one_file_as_nobody(env: &Env, source: &std::path::Path) {
    let out = as_unprivileged(env, &["backup", source.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["snapshot"]["stats"]["files"], 1, "{summary}");
}

#[test]
fn a_tree_deeper_than_the_open_files_limit_is_backed_up_whole() {
    let env = Env::new();
    // The walk holds one folder open per level: 300 levels under a soft limit of 256.
    let mut deepest = env.src();
    for _ in 0..300 {
        deepest.push("d");
    }
    std::fs::create_dir_all(&deepest).unwrap();
    std::fs::write(deepest.join("bottom"), b"300 folders down").unwrap();
    let src = env.src();
    let limited = ["sh", "-c", "ulimit -Sn 256 && exec \"$@\"", "sh"];
    let out = env
        .process_through(&limited, &["backup", src.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    let bottom = landed.join("d/".repeat(300)).join("bottom");
    assert_eq!(std::fs::read(bottom).unwrap(), b"300 folders down");
}
