//! Hostile snapshots are built through the library with the right key, so they pass
//! authentication: only restore's own checks stand between them and the filesystem.

use crate::util::*;
use tapevault::model::{Node, NodeKind, PathBytes};

fn link(path: &[u8], kind: NodeKind, target: &[u8]) -> (Node, Vec<u8>) {
    let mut n = node(path, kind);
    n.target = Some(PathBytes(target.to_vec()));
    (n, Vec::new())
}

fn dir(path: &[u8]) -> (Node, Vec<u8>) {
    (node(path, NodeKind::Dir), Vec::new())
}

fn refused(report: &serde_json::Value) -> Vec<String> {
    report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn t33_unsafe_names_are_refused_named_and_the_rest_restores() {
    let env = Env::new();
    let (sentinel, before) = sentinel(&env);
    let long = [b"h/".to_vec(), vec![b'a'; 4096]].concat();
    crafted(
        &env,
        vec![
            dir(b"h"),
            file(b"h/ok.txt", b"fine"),
            file(b"h/..", b"dotdot"),
            file(b"h/.", b"dot"),
            file(b"h//empty", b"empty component"),
            file(b"h/../../escape", b"escape"),
            file(b"/etc/escape", b"absolute"),
            file(b"h/nul\0name", b"nul"),
            file(&long, b"long"),
        ],
    );
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    let names = refused(&report);
    for bad in [
        "h/..",
        "h/.",
        "h//empty",
        "h/../../escape",
        "/etc/escape",
        "h/nul\\x00name",
    ] {
        assert!(
            names.iter().any(|n| n == bad),
            "{bad} not named in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("h/aaaa")), "{names:?}");
    assert_eq!(std::fs::read(env.path("out/h/ok.txt")).unwrap(), b"fine");
    assert!(!env.path("escape").exists() && !env.path("out/escape").exists());
    assert_eq!(tree_hash(&sentinel), before);
}

#[test]
fn t34_symlink_then_file_through_it_never_escapes() {
    let env = Env::new();
    let (sentinel, before) = sentinel(&env);
    let outside = sentinel.to_str().unwrap().as_bytes().to_vec();
    crafted(
        &env,
        vec![
            dir(b"h"),
            link(b"h/d", NodeKind::Symlink, &outside),
            file(b"h/d/passwd", b"pwned"),
            dir(b"h/d/exploit"),
            file(b"h/d/exploit/foo", b"pwned"),
            link(b"h/up", NodeKind::Symlink, b"../../.."),
            file(b"h/up/owned", b"pwned"),
        ],
    );
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    let names = refused(&report);
    for bad in ["h/d/passwd", "h/d/exploit", "h/d/exploit/foo", "h/up/owned"] {
        assert!(
            names.iter().any(|n| n == bad),
            "{bad} not named in {names:?}"
        );
    }
    assert_eq!(
        std::fs::read_link(env.path("out/h/d")).unwrap(),
        sentinel,
        "the symlink itself is data"
    );
    assert_eq!(tree_hash(&sentinel), before);
}

#[test]
fn t35_t37_duplicate_names_are_refused_without_writing_through_either() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let (sentinel, before) = sentinel(&env);
    let mode_before = std::fs::metadata(&sentinel).unwrap().permissions().mode();
    let mut open_dir = node(b"h/x", NodeKind::Dir);
    open_dir.mode = 0o777;
    crafted(
        &env,
        vec![
            dir(b"h"),
            link(
                b"h/x",
                NodeKind::Symlink,
                sentinel.to_str().unwrap().as_bytes(),
            ),
            (open_dir, Vec::new()),
            file(b"h/dup", b"first"),
            file(b"h/dup", b"second"),
        ],
    );
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    let names = refused(&report);
    assert_eq!(names.iter().filter(|n| *n == "h/x").count(), 2, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "h/dup").count(),
        2,
        "{names:?}"
    );
    assert!(!env.path("out/h/dup").exists());
    assert_eq!(
        std::fs::metadata(&sentinel).unwrap().permissions().mode(),
        mode_before
    );
    assert_eq!(tree_hash(&sentinel), before);
}

#[test]
fn t36_hard_links_only_to_files_this_restore_created() {
    let env = Env::new();
    let (sentinel, before) = sentinel(&env);
    let outside = sentinel.join("passwd");
    let outside_node = outside
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .as_bytes()
        .to_vec();
    crafted(
        &env,
        vec![
            dir(b"h"),
            file(b"h/real", b"real content"),
            link(b"h/sym", NodeKind::Symlink, b"real"),
            link(b"h/to-outside", NodeKind::Hardlink, &outside_node),
            link(b"h/to-dotdot", NodeKind::Hardlink, b"h/../h/real"),
            link(b"h/to-symlink", NodeKind::Hardlink, b"h/sym"),
            link(b"h/to-later", NodeKind::Hardlink, b"h/zz-later"),
            link(b"h/good", NodeKind::Hardlink, b"h/real"),
            file(b"h/zz-later", b"later"),
        ],
    );
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    let names = refused(&report);
    for bad in ["h/to-outside", "h/to-dotdot", "h/to-symlink"] {
        assert!(
            names.iter().any(|n| n == bad),
            "{bad} not named in {names:?}"
        );
    }
    assert_eq!(
        std::fs::read(env.path("out/h/good")).unwrap(),
        b"real content"
    );
    assert_eq!(std::fs::read(env.path("out/h/to-later")).unwrap(), b"later");
    assert!(!env.path("out/h/to-outside").exists());
    assert_eq!(tree_hash(&sentinel), before);
}

#[test]
fn t38_planted_symlinks_in_the_target_are_never_followed() {
    let env = Env::new();
    let (sentinel, before) = sentinel(&env);
    crafted(
        &env,
        vec![
            dir(b"h"),
            dir(b"h/sub"),
            file(b"h/sub/ok.txt", b"fine"),
            file(b"h/top.txt", b"top"),
        ],
    );
    std::fs::create_dir_all(env.path("out/h")).unwrap();
    std::os::unix::fs::symlink(sentinel.join("passwd"), env.path("out/h/top.txt")).unwrap();
    std::os::unix::fs::symlink(&sentinel, env.path("out/h/sub")).unwrap();
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 1, "refuses without --overwrite: {report}");
    assert_eq!(tree_hash(&sentinel), before);
    let (code, report, _) = env.restore("out", &["--overwrite"]);
    assert_eq!(code, 0, "{report}");
    assert!(!std::fs::symlink_metadata(env.path("out/h/top.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(env.path("out/h/top.txt")).unwrap(), b"top");
    assert_eq!(
        std::fs::read(env.path("out/h/sub/ok.txt")).unwrap(),
        b"fine"
    );
    assert_eq!(tree_hash(&sentinel), before);
    // A target that is itself a symlink is refused outright.
    std::os::unix::fs::symlink(&sentinel, env.path("linked-target")).unwrap();
    let (code, report, _) = env.restore("linked-target", &[]);
    assert_eq!(code, 2, "{report}");
    assert_eq!(tree_hash(&sentinel), before);
}

#[test]
fn t40_devices_set_id_bits_and_foreign_owners_follow_the_policy() {
    if !is_root_else("T40 needs root to make device nodes and foreign owners") {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    let src = env.src();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("null-device"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    std::fs::write(src.join("setuid-tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        src.join("setuid-tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::write(src.join("foreign"), b"theirs").unwrap();
    std::os::unix::fs::chown(src.join("foreign"), Some(1234), Some(4321)).unwrap();
    // Devices are not backed up: named, exit 3.
    let out = env
        .tv(&["backup", src.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["warnings"].to_string().contains("null-device"),
        "{summary}"
    );
    // As root: owners and set-id bits come back.
    let (code, report, landed) = env.restore("as-root", &[]);
    assert_eq!(code, 0, "{report}");
    let meta = std::fs::metadata(landed.join("setuid-tool")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4755);
    let meta = std::fs::metadata(landed.join("foreign")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 4321));
    assert!(!landed.join("null-device").exists());
    // As nobody: no set-id bits without the owner, and the drop is reported (exit 3).
    let target = env.path("as-nobody");
    let out = as_unprivileged(
        &env,
        &["restore", "--target", target.to_str().unwrap(), "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["warnings"].to_string().contains("set-uid"),
        "{report}"
    );
    let landed = target.join(env.src().strip_prefix("/").unwrap());
    let meta = std::fs::metadata(landed.join("setuid-tool")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o0755);
    assert_eq!(std::fs::read(landed.join("foreign")).unwrap(), b"theirs");
}
