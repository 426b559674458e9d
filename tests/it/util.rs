//! Test helpers: a scratch vault with catalog, a CLI runner, a tree comparer.

use assert_cmd::Command;
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tapevault::model::{Node, NodeKind, PathBytes};

pub const PASSPHRASE: &str = "correct horse battery staple";

/// `init` with the cheapest key derivation allowed, for speed.
pub const CHEAP_INIT: [&str; 7] = [
    "init",
    "--kdf-memory",
    "8",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

/// A temporary vault, catalog, passphrase file and source folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// The vault address every command gets (`dir:` in the scratch folder unless on S3).
    pub vault: String,
}

impl Env {
    /// A fresh, initialised vault (cheap KDF settings for speed).
    pub fn new() -> Env {
        let env = Env::uninitialised();
        env.tv(&CHEAP_INIT).assert().success();
        env
    }

    /// A scratch folder with a passphrase file but no vault yet.
    pub fn uninitialised() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let vault = format!("dir:{}", dir.path().join("vault").display());
        Env { dir, vault }
    }

    /// A fresh, initialised vault in a new bucket of the test S3 server.
    pub fn on_s3() -> Env {
        let mut env = Env::uninitialised();
        env.vault = format!("{}/site1", new_bucket());
        env.tv(&CHEAP_INIT).assert().success();
        env
    }

    /// A fresh, initialised vault on an emulated tape library (`library/` in the scratch
    /// folder) with `knobs` as its library.json, 64 KiB blocks unless the test says.
    pub fn on_tape(knobs: &str) -> Env {
        let mut env = Env::uninitialised();
        env.vault = format!("tape:{}", env.library().display());
        std::fs::create_dir(env.library()).unwrap();
        std::fs::write(env.library().join("library.json"), knobs).unwrap();
        env.tv(&CHEAP_INIT).assert().success();
        env
    }

    /// The emulated tape library's folder.
    pub fn library(&self) -> PathBuf {
        self.path("library")
    }

    /// The emulated drive's log, one operation per line.
    pub fn drive_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.library().join("drive.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Cartridge files of the emulated library, by name.
    pub fn cartridges(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.library())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".cart").map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn src(&self) -> PathBuf {
        self.path("src")
    }

    pub fn vault_dir(&self) -> PathBuf {
        self.path("vault")
    }

    /// `tapevault ARGS` against this vault and catalog, passphrase from the file.
    pub fn tv(&self, args: &[&str]) -> Command {
        Command::from_std(self.process(args))
    }

    /// The same as [`Env::tv`], as a process to spawn and kill.
    pub fn process(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tapevault"));
        cmd.env_remove("TAPEVAULT_PASSPHRASE")
            .env("TAPEVAULT_VAULT", &self.vault)
            .env("TAPEVAULT_CATALOG", self.path("catalog"))
            .arg("--passphrase-file")
            .arg(self.path("pass"))
            .args(args);
        if self.vault.starts_with("s3://") || args.iter().any(|a| a.starts_with("s3://")) {
            s3_credentials(&mut cmd);
        }
        cmd
    }

    /// [`Env::process`] started through `wrapper` (a program and its first arguments,
    /// which then runs tapevault), with the same environment.
    pub fn process_through(&self, wrapper: &[&str], args: &[&str]) -> std::process::Command {
        let inner = self.process(args);
        let mut cmd = std::process::Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(inner.get_program())
            .args(inner.get_args());
        for (name, value) in inner.get_envs() {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        cmd
    }

    /// Back up the source folder at a tiny volume size; returns the JSON summary.
    pub fn backup(&self, extra: &[&str]) -> serde_json::Value {
        self.backup_sized("4M", extra)
    }

    /// [`Env::backup`] into volumes of `volume_size`.
    pub fn backup_sized(&self, volume_size: &str, extra: &[&str]) -> serde_json::Value {
        let src = self.src();
        let mut args = vec![
            "backup",
            src.to_str().unwrap(),
            "--volume-size",
            volume_size,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.tv(&args).output().unwrap();
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Restore into a new folder; returns (exit code, JSON report, where the source landed).
    pub fn restore(&self, into: &str, extra: &[&str]) -> (i32, serde_json::Value, PathBuf) {
        let target = self.path(into);
        let mut args = vec!["restore", "--target", target.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let out = self.tv(&args).output().unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let landed = target.join(self.src().strip_prefix("/").unwrap());
        (out.status.code().unwrap(), report, landed)
    }

    /// Volume files of the vault, in sequence order.
    pub fn volumes(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.vault_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect();
        out.sort();
        out
    }
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A tree with every entry kind tapevault keeps.
pub fn every_kind_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("big.bin", &noise(6 << 20, 1));
    w(
        "text/log.txt",
        "line of log text\n".repeat(100_000).as_bytes(),
    );
    w("text/small.txt", b"hello\n");
    w("empty", b"");
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    w("links/original", b"linked content\n");
    std::fs::hard_link(root.join("links/original"), root.join("links/second-name")).unwrap();
    std::os::unix::fs::symlink("original", root.join("links/relative")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("links/dangling")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"name-\xff\xfe-not-utf8");
    std::fs::write(root.join(odd), b"odd name").unwrap();
    std::fs::write(root.join("text/with space & \\ backslash"), b"x").unwrap();
    // A sparse file: data, a 20 MiB hole, data, and a trailing hole.
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(&noise(100_000, 9), 0).unwrap();
    sparse.write_all_at(b"middle", 20 << 20).unwrap();
    sparse.set_len(40 << 20).unwrap();
    w("modes/private", b"secret-ish");
    std::fs::set_permissions(
        root.join("modes/private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    w("modes/script", b"#!/bin/sh\n");
    std::fs::set_permissions(
        root.join("modes/script"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::Mode::from_raw_mode(0o640),
    )
    .unwrap();
    // An old mtime, to see it restored.
    let old = std::fs::File::options()
        .write(true)
        .open(root.join("text/small.txt"))
        .unwrap();
    old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
}

/// Compare two trees entry by entry: kind, mode, mtime (not dirs/links), content, link
/// targets, hard-link groups, owners (when root), and holes staying holes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap().path().strip_prefix(root).unwrap().to_path_buf())
            .collect();
        v.sort();
        v
    };
    let (left, right) = (list(a), list(b));
    assert_eq!(left, right, "entries differ");
    let mut groups_a: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    let mut groups_b: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    for rel in &left {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).unwrap(),
            std::fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{rel:?} kind");
        if !ma.file_type().is_symlink() {
            assert_eq!(ma.mode(), mb.mode(), "{rel:?} mode");
        }
        if rustix::process::geteuid().is_root() {
            assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "{rel:?} owner");
        }
        if ma.is_file() {
            assert_eq!(
                std::fs::read(&pa).unwrap(),
                std::fs::read(&pb).unwrap(),
                "{rel:?} content"
            );
            assert_eq!(ma.mtime(), mb.mtime(), "{rel:?} mtime");
            assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "{rel:?} mtime ns");
            assert!(
                mb.blocks() <= ma.blocks() + 8,
                "{rel:?} holes not kept: {} vs {}",
                mb.blocks(),
                ma.blocks()
            );
            if ma.nlink() > 1 {
                groups_a.entry(ma.ino()).or_default().push(rel.clone());
                groups_b.entry(mb.ino()).or_default().push(rel.clone());
            }
        }
        if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&pa).unwrap(),
                std::fs::read_link(&pb).unwrap(),
                "{rel:?} target"
            );
        }
        if ma.is_dir() {
            assert_eq!(ma.mtime(), mb.mtime(), "{rel:?} dir mtime");
        }
    }
    let mut ga: Vec<Vec<PathBuf>> = groups_a.into_values().collect();
    let mut gb: Vec<Vec<PathBuf>> = groups_b.into_values().collect();
    ga.sort();
    gb.sort();
    assert_eq!(ga, gb, "hard-link groups");
}

/// A folder outside every target, and a hash of everything in it.
pub fn sentinel(env: &Env) -> (PathBuf, String) {
    let dir = env.path("sentinel");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("passwd"), b"root:x:0:0").unwrap();
    (dir.clone(), tree_hash(&dir))
}

/// Hash of names, kinds, modes and contents of a tree.
pub fn tree_hash(root: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        hasher.update(entry.path().as_os_str().as_encoded_bytes());
        hasher.update(&meta.mode().to_le_bytes());
        if meta.is_file() {
            hasher.update(&std::fs::read(entry.path()).unwrap());
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// Two files, each large enough to need its own volume at 4M, and a small one.
pub fn two_volume_vault() -> Env {
    let env = Env::new();
    std::fs::write(env.src().join("alpha"), noise(3 << 20, 21)).unwrap();
    std::fs::write(env.src().join("beta"), noise(3 << 20, 22)).unwrap();
    std::fs::write(env.src().join("small"), b"small file").unwrap();
    // One worker stores the files in walk order, so `small` always follows the two
    // large files: with two, it could finish first and land in the first volume.
    env.backup(&["--threads", "1"]);
    assert!(env.volumes().len() >= 2);
    env
}

/// The `path` of every entry of a report's `damaged` list.
pub fn damaged_paths(report: &serde_json::Value) -> Vec<String> {
    report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_string())
        .collect()
}

/// Where the data of tar member `name` sits in a volume: (offset, size).
pub fn member_range(volume: &[u8], name: &str) -> (usize, usize) {
    let mut at = 0;
    while at + 512 <= volume.len() {
        let header = &volume[at..at + 512];
        let end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let size_text = std::str::from_utf8(&header[124..136]).unwrap();
        let size = usize::from_str_radix(size_text.trim_matches(|c| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        if &header[..end] == name.as_bytes() {
            return (at + 512, size);
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    panic!("no member {name}");
}

/// Run a command; its exit code, JSON stdout and stderr.
pub fn run_json(mut cmd: Command) -> (i32, serde_json::Value, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A node as a hostile (or lying) snapshot would hold it; owner is the test user.
pub fn node(path: &[u8], kind: NodeKind) -> Node {
    Node {
        path: PathBytes(path.to_vec()),
        kind,
        mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        mtime_ns: 1_600_000_000_000_000_000,
        size: 0,
        hash: None,
        chunks: Vec::new(),
        target: None,
        change: None,
    }
}

/// A regular file entry with its content.
pub fn file(path: &[u8], content: &[u8]) -> (Node, Vec<u8>) {
    (node(path, NodeKind::File), content.to_vec())
}

/// Store a snapshot of exactly `entries` through the library, with the right key.
pub fn crafted(env: &Env, entries: Vec<(Node, Vec<u8>)>) {
    let vault =
        tapevault::vault::open_vault(&format!("dir:{}", env.vault_dir().display())).unwrap();
    let mut catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
    let key = tapevault::keys::unlock(&catalog, PASSPHRASE.as_bytes()).unwrap();
    tapevault::backup::backup_crafted(vault.as_ref(), &mut catalog, &key, entries).unwrap();
}

/// Whether the tests run as root; if not, `note` says what the calling test needs it
/// for, and the test returns.
pub fn is_root_else(note: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("note: {note}");
    }
    root
}

/// Run tapevault as an unprivileged user (nobody, when the tests run as root), so that
/// permission bits bite.
pub fn as_unprivileged(env: &Env, args: &[&str]) -> std::process::Output {
    if !rustix::process::geteuid().is_root() {
        return env.tv(args).output().unwrap();
    }
    std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.dir.path())
        .status()
        .unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("tapevault"))
        .env(
            "TAPEVAULT_VAULT",
            format!("dir:{}", env.vault_dir().display()),
        )
        .env("TAPEVAULT_CATALOG", env.path("catalog"))
        .env_remove("TAPEVAULT_PASSPHRASE")
        .arg("--passphrase-file")
        .arg(env.path("pass"))
        .args(args);
    cmd.output().unwrap()
}

/// `catalog rebuild --json` into a new catalog folder `dir` of the env.
pub fn rebuild_into(env: &Env, dir: &str) -> (i32, serde_json::Value, String) {
    let catalog = env.path(dir);
    run_json(env.tv(&[
        "catalog",
        "rebuild",
        "--json",
        "--catalog",
        catalog.to_str().unwrap(),
    ]))
}

/// Flip one byte inside the blob of the first chunk of the file whose path ends with
/// `name` (found through `ls --json` and the catalog); returns the chunk id.
pub fn flip_first_chunk_of(env: &Env, name: &str) -> String {
    let out = env.tv(&["ls", "--json"]).output().unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let chunk = listing["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["path"].as_str().unwrap().ends_with(name))
        .map(|n| n["chunks"][0]["id"].as_str().unwrap().to_string())
        .unwrap();
    let id = tapevault::ids::ChunkId::parse(&chunk).unwrap();
    flip_blob(env, &id, tapevault::crypto::BlobKind::Data);
    chunk
}

/// Flip one byte in the middle of a stored blob, found through the catalog.
pub fn flip_blob(env: &Env, id: &tapevault::ids::ChunkId, kind: tapevault::crypto::BlobKind) {
    let catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
    let location = catalog.blob_location(id, kind).unwrap().unwrap();
    let volume = &catalog.volumes_by_sequence().unwrap()[&location.sequence];
    let path = env.vault_dir().join(&volume.name);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = location.pack_offset + location.offset + u64::from(location.sealed_len) / 2;
    bytes[at as usize] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
}

/// Run tapevault with the clock set to `when` and running from there (libfaketime).
pub fn at_time(env: &Env, when: &str, args: &[&str]) -> (i32, String) {
    let out = env
        .process_through(&["faketime", "-f", &format!("@{when}")], args)
        .output()
        .expect("faketime (Debian package faketime, installed by .ci/run) sets the clock");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain copy of a folder, as `cp -r` to a second disk would make.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The S3 API server the tests share: moto on 127.0.0.1, started on first use from
/// the virtualenv `.ci/run` creates (or `TAPEVAULT_TEST_PYTHON`), ended when this
/// test process exits (its stdin is our pipe). It accepts any credentials.
pub fn s3_endpoint() -> &'static str {
    static SERVER: std::sync::OnceLock<(std::process::Child, String)> = std::sync::OnceLock::new();
    &SERVER.get_or_init(|| start_moto(false)).1
}

/// A second server that checks credentials like AWS (moto's IAM auth, no users: every
/// key is unknown to it).
pub fn s3_endpoint_checking_credentials() -> &'static str {
    static SERVER: std::sync::OnceLock<(std::process::Child, String)> = std::sync::OnceLock::new();
    &SERVER.get_or_init(|| start_moto(true)).1
}

fn start_moto(check_credentials: bool) -> (std::process::Child, String) {
    use std::io::BufRead;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("TAPEVAULT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".ci/venv/bin/python"));
    let mut cmd = std::process::Command::new(&python);
    if check_credentials {
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
    }
    let mut child = cmd
        .arg(root.join("fixtures/s3/moto_server.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start the S3 test server with {} ({e}): run .ci/run once, or set TAPEVAULT_TEST_PYTHON to a python with moto[server]",
                python.display()
            )
        });
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    assert!(!port.trim().is_empty(), "the S3 test server did not start");
    (child, format!("http://127.0.0.1:{}", port.trim()))
}

/// Point a tapevault process at the test S3 server with its (accepted) test credentials.
pub fn s3_credentials(cmd: &mut std::process::Command) {
    for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "tapevault-test")
        .env("AWS_SECRET_ACCESS_KEY", "tapevault-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", s3_endpoint());
}

/// A new, empty bucket on the test server; returns `s3://NAME`.
pub fn new_bucket() -> String {
    create_bucket("")
}

/// A new bucket created with S3 Object Lock enabled (and so versioning).
pub fn new_locked_bucket() -> String {
    create_bucket("x-amz-bucket-object-lock-enabled: true\r\n")
}

const ANY_SIGNATURE: &str = "Authorization: AWS4-HMAC-SHA256 Credential=tapevault-test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

fn create_bucket(headers: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tv-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let answer = s3_request("PUT", &format!("/{name}"), headers);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket: {answer}"
    );
    format!("s3://{name}")
}

/// One request to the test server (`path` from the bucket on, `headers` each ending in
/// CRLF); returns the whole answer, headers and body. Its signature is a dummy: the
/// server checks none, but answers requests without one as anonymous (403 on objects).
pub fn s3_request(method: &str, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let host = s3_endpoint().trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{ANY_SIGNATURE}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A tmpfs mounted on a folder for as long as this value lives.
pub struct Mounted(PathBuf);

impl Mounted {
    /// Mount a tmpfs of `size` (e.g. "6m") on the folder `dir` (made if missing), when
    /// this machine lets the tests mount one (root); None otherwise.
    pub fn tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Mounted(dir.to_path_buf()))
    }

    /// Mount it again with `options` (e.g. "size=32m" to grow it, "ro").
    pub fn remount(&self, options: &str) {
        let remounted = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(remounted.success());
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
