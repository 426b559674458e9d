//! S3 vaults end to end, against the real S3 API server the tests start (moto), and
//! through a fault proxy in front of it for the failures object storage has:
//! dropped connections, throttling, server errors, revoked credentials, short reads.

use crate::util::{
    assert_same_tree, at_time, new_bucket, new_locked_bucket, noise, rebuild_into, run_json,
    s3_endpoint, s3_request, Env, CHEAP_INIT,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does with one request (moto closes every connection after one answer,
/// so one connection is one request).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Forward,
    /// Answer with this status and S3 error code instead of forwarding.
    Answer(u16, &'static str),
    /// Forward the head and this many body bytes, then cut the connection.
    CutUpload(usize),
    /// Forward, but end the answer this many bytes early.
    ShortAnswer(usize),
    /// Forward the request less this many body bytes, with its length made to match:
    /// the store keeps a short object and answers 200.
    ShortUpload(usize),
}

type Rule = dyn Fn(&str, usize) -> Action + Send + Sync;

/// A TCP proxy to the test server that applies a rule to each request (its first line
/// and how many requests matched before) and counts the bytes answered to GETs.
struct FaultProxy {
    endpoint: String,
    get_bytes: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    fn start(rule: impl Fn(&str, usize) -> Action + Send + Sync + 'static) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = s3_endpoint().trim_start_matches("http://").to_string();
        let get_bytes = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(rule);
        let counter = Arc::new(AtomicUsize::new(0));
        let (bytes, log) = (get_bytes.clone(), seen.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (rule, upstream, bytes, log, counter) = (
                    rule.clone(),
                    upstream.clone(),
                    bytes.clone(),
                    log.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &*rule, &bytes, &log, &counter);
                });
            }
        });
        FaultProxy {
            endpoint,
            get_bytes,
            seen,
        }
    }

    /// Point a tapevault command at the proxy instead of the server; two retries
    /// (of about 0.75 s) keep the faults' tests short.
    fn route(&self, mut cmd: assert_cmd::Command) -> assert_cmd::Command {
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("TAPEVAULT_S3_RETRIES", "2");
        cmd
    }

    fn requests_like(&self, pattern: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(pattern))
            .count()
    }
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    rule: &Rule,
    get_bytes: &AtomicU64,
    seen: &Mutex<Vec<String>>,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    // Read the request head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = text.lines().next().unwrap_or_default().to_string();
    let length: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let index = counter.fetch_add(1, Ordering::SeqCst);
    seen.lock().unwrap().push(first.clone());
    let action = rule(&first, index);
    if let Action::Answer(status, code) = action {
        // Take the whole request first: an answer sent while the client is still
        // writing its body reaches it as a reset connection, which it rightly retries.
        std::io::copy(&mut (&mut client).take(length as u64), &mut std::io::sink())?;
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        );
        write!(
            client,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let mut server = TcpStream::connect(upstream)?;
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    if let Action::ShortUpload(short) = action {
        let kept = length.saturating_sub(short);
        let head: String = text
            .split_inclusive("\r\n")
            .map(|line| match line.split_once(':') {
                Some((name, _)) if name.eq_ignore_ascii_case("content-length") => {
                    format!("{name}: {kept}\r\n")
                }
                _ => line.to_string(),
            })
            .collect();
        server.write_all(head.as_bytes())?;
        server.write_all(&body[..kept])?;
        let mut answer = Vec::new();
        server.read_to_end(&mut answer)?;
        return client.write_all(&answer);
    }
    server.write_all(&head)?;
    if let Action::CutUpload(after) = action {
        server.write_all(&body[..after.min(length)])?;
        return Ok(()); // both sockets close: the client sees a dropped connection
    }
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    if let Action::ShortAnswer(short) = action {
        answer.truncate(answer.len().saturating_sub(short));
    }
    if first.starts_with("GET ") {
        get_bytes.fetch_add(answer.len() as u64, Ordering::Relaxed);
    }
    client.write_all(&answer)
}

/// A source tree that needs several 4 MiB volumes.
fn fill_source(env: &Env) {
    let src = env.src();
    std::fs::write(src.join("big.bin"), noise(9 << 20, 1)).unwrap();
    std::fs::write(src.join("small.txt"), b"hello from the bucket\n").unwrap();
    std::fs::create_dir(src.join("docs")).unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join("docs").join(format!("d{i}.txt")),
            format!("document {i}\n").repeat(500 + i * 37),
        )
        .unwrap();
    }
}

/// The in-progress multipart uploads of a bucket (`s3://NAME`), asked of the server directly.
fn open_uploads(bucket: &str) -> usize {
    let answer = s3_request(
        "GET",
        &format!("/{}?uploads", bucket.trim_start_matches("s3://")),
        "",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.matches("<Upload>").count()
}

fn bucket_of(env: &Env) -> String {
    env.vault.trim_end_matches("/site1").to_string()
}

fn volume_count(env: &Env) -> usize {
    let (code, listing, err) = run_json(env.tv(&["volumes", "--json"]));
    assert_eq!(code, 0, "{err}");
    listing["volumes"].as_array().unwrap().len()
}

#[test]
fn backup_restore_deep_verify_and_rebuild_from_the_tails_on_s3() {
    let env = Env::on_s3();
    fill_source(&env);
    let summary = env.backup(&[]);
    assert!(
        summary["volumes_written"].as_array().unwrap().len() >= 3,
        "{summary}"
    );
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let (code, deep, err) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 0, "{deep} {err}");
    assert!(deep["files_checked"].as_u64().unwrap() >= 22);

    // A rebuild reads labels and indexes at each volume's ends, and tree blobs by ranged
    // reads, not the data; only the newest volume is read whole, as no later volume
    // records its hash. Count the bytes the server actually sent.
    let (_, listing, _) = run_json(env.tv(&["volumes", "--json"]));
    let volumes = listing["volumes"].as_array().unwrap();
    let newest = volumes.last().unwrap()["bytes"].as_u64().unwrap();
    let proxy = FaultProxy::start(|_, _| Action::Forward);
    let catalog = env.path("rebuilt");
    let (code, rebuilt, err) = run_json(proxy.route(env.tv(&[
        "catalog",
        "rebuild",
        "--json",
        "--catalog",
        catalog.to_str().unwrap(),
    ])));
    assert_eq!(code, 0, "{rebuilt} {err}");
    let fetched = proxy.get_bytes.load(Ordering::Relaxed);
    let others = volumes.len() as u64 - 1;
    assert!(
        fetched < newest + (others + 1) * (64 << 10),
        "rebuild fetched {fetched} bytes (newest volume {newest}): {:?}",
        proxy.seen.lock().unwrap()
    );
    assert!(rebuilt["bytes_read"].as_u64().unwrap() <= fetched);
    restores_exactly_with_catalog(&env, &catalog);
}

/// An env whose vault is a `dir:` folder, with a source that spans several volumes.
fn filled_dir_env() -> Env {
    let env = Env::new();
    fill_source(&env);
    env.backup(&[]);
    env
}

#[test]
fn a_copy_to_s3_restores_alone_after_the_source_vault_and_catalog_are_gone() {
    let env = filled_dir_env();
    let bucket = format!("{}/offsite", new_bucket());
    let (code, report, err) = run_json(env.tv(&["copy", "--to", &bucket, "--json"]));
    assert_eq!(code, 0, "{report} {err}");
    assert_eq!(report["labels_and_records"][0], "vault.tvl");
    let copied = report["copied"].as_array().unwrap().len();
    assert!(copied >= 3, "{report}");
    // Again: nothing to do, and each volume's copy is recorded in the catalog.
    let (code, again, _) = run_json(env.tv(&["copy", "--to", &bucket, "--json"]));
    assert_eq!(
        (code, again["already_there"].as_u64()),
        (0, Some(copied as u64))
    );
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    let copies = volumes["copies"].as_array().unwrap();
    assert_eq!(copies.len(), copied, "{volumes}");
    assert_eq!(
        copies[0]["vaults"],
        serde_json::json!([&bucket]),
        "{volumes}"
    );

    std::fs::remove_dir_all(env.vault_dir()).unwrap();
    std::fs::remove_dir_all(env.path("catalog")).unwrap();
    let mut offsite = Env::uninitialised();
    offsite.vault = bucket;
    std::fs::copy(env.path("pass"), offsite.path("pass")).unwrap();
    let (code, rebuilt, err) = rebuild_into(&offsite, "catalog");
    assert_eq!(code, 0, "{rebuilt} {err}");
    let (code, report, _) = offsite.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    let landed = offsite
        .path("out")
        .join(env.src().strip_prefix("/").unwrap());
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn t12_a_volume_missing_here_is_read_from_the_s3_copy() {
    let env = filled_dir_env();
    let bucket = format!("{}/offsite", new_bucket());
    env.tv(&["copy", "--to", &bucket]).assert().success();
    let lost = env.volumes()[1].clone();
    std::fs::remove_file(&lost).unwrap();
    let (code, report, landed) = env.restore("out", &["--copy-vault", &bucket]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let note = report["from_copies"].to_string();
    assert!(note.contains(&bucket), "{report}");
    // Without the copy the same restore names the damage.
    let (code, _, _) = env.restore("out2", &[]);
    assert_eq!(code, 4);
}

#[test]
fn copy_refuses_another_vaults_destination_and_names_a_damaged_source_volume() {
    let env = filled_dir_env();
    let other = Env::on_s3();
    let (code, _, err) = run_json(env.tv(&["copy", "--to", &other.vault]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is vault"), "{err}");

    let victim = env.volumes()[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let bucket = format!("{}/offsite", new_bucket());
    let (code, report, err) = run_json(env.tv(&["copy", "--to", &bucket, "--json"]));
    assert_eq!(code, 4, "{report} {err}");
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert_eq!(report["problems"][0]["volume"], name, "{report}");
    assert!(!report["copied"].to_string().contains(name));
    assert!(!report["copied"].as_array().unwrap().is_empty());
}

#[test]
fn t57_dropped_connections_mid_upload_are_retried_and_a_run_that_gives_up_leaves_nothing() {
    let env = Env::on_s3();
    // Volumes of 40 MiB with 34 MiB of data: real multipart uploads of 16 MiB parts.
    std::fs::write(env.src().join("big.bin"), noise(34 << 20, 3)).unwrap();
    let bucket = bucket_of(&env);
    let proxy = FaultProxy::start(|line, _| {
        if line.contains("partNumber=1&") || line.contains("partNumber=2&") {
            Action::CutUpload(1 << 20)
        } else {
            Action::Forward
        }
    });
    let src = env.src();
    let backup = [
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "40M",
        "--json",
    ];
    // Every attempt at parts 1 and 2 is cut: the run gives up, aborts the upload, exit 1.
    let (code, _, err) = run_json(proxy.route(env.tv(&backup)));
    assert_eq!(code, 1, "{err}");
    assert!(
        proxy.requests_like("partNumber=1&") > 1,
        "part 1 was not retried"
    );
    assert_eq!(volume_count(&env), 0);
    assert_eq!(open_uploads(&bucket), 0, "the upload was not aborted");
    let (code, listing, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 0, "{listing}");
    assert_eq!(listing["extra"], serde_json::json!([]), "{listing}");

    // Each part cut once only: retried, and the run completes.
    let cut = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let flaky = FaultProxy::start(move |line, _| {
        let part = line.split("partNumber=").nth(1).map(|p| p[..2].to_string());
        match part {
            Some(part) if cut.lock().unwrap().insert(part.clone()) => Action::CutUpload(4 << 20),
            _ => Action::Forward,
        }
    });
    let (code, summary, err) = run_json(flaky.route(env.tv(&backup)));
    assert_eq!(code, 0, "{summary} {err}");
    assert!(flaky.requests_like("partNumber=2&") >= 2);
    assert_eq!(open_uploads(&bucket), 0);
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn an_upload_killed_midway_leaves_no_visible_volume_and_the_next_run_completes() {
    let env = Env::on_s3();
    std::fs::write(env.src().join("big.bin"), noise(40 << 20, 4)).unwrap();
    let src = env.src();
    let args = ["backup", src.to_str().unwrap(), "--volume-size", "64M"];
    // Hold the upload of part 2 so the process is surely mid-upload when killed.
    let proxy = FaultProxy::start(|line, _| {
        if line.contains("partNumber=2&") {
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
        Action::Forward
    });
    let mut cmd = env.process(&args);
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while proxy.requests_like("partNumber=2&") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        proxy.requests_like("partNumber=2&"),
        1,
        "never reached part 2"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(volume_count(&env), 0);
    assert_eq!(tapevault_objects(&env), vec!["vault.tvl".to_string()]);
    // The dead run's lock object names a dead process on this host: taken over.
    env.tv(&args).assert().success();
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

/// The sealed objects of an env's S3 vault, listed through the library.
fn tapevault_objects(env: &Env) -> Vec<String> {
    objects_in(&env.vault)
}

/// The sealed objects of the S3 vault at `address`.
fn objects_in(address: &str) -> Vec<String> {
    let vault =
        tapevault::vault::open_vault_with(address, &crate::vaults::test_s3_options()).unwrap();
    vault.list().unwrap().sealed
}

#[test]
fn t60_t64_a_failed_upload_is_never_referenced_and_denied_access_is_said() {
    let env = Env::on_s3();
    fill_source(&env);
    let bucket = bucket_of(&env);
    let src = env.src();
    let backup = ["backup", src.to_str().unwrap(), "--volume-size", "4M"];
    // T60: the store refuses to complete volume uploads.
    let refusing = FaultProxy::start(|line, _| {
        if line.starts_with("PUT ") && line.contains("/tv0") {
            Action::Answer(400, "InvalidPart")
        } else {
            Action::Forward
        }
    });
    let (code, _, err) = run_json(refusing.route(env.tv(&backup)));
    assert_eq!(code, 1, "{err}");
    assert_eq!(volume_count(&env), 0);
    // T64: credentials revoked after the first few requests: access denied, named.
    let revoked = FaultProxy::start(|_, n| {
        if n >= 6 {
            Action::Answer(403, "AccessDenied")
        } else {
            Action::Forward
        }
    });
    let (code, _, err) = run_json(revoked.route(env.tv(&backup)));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("access denied") && err.contains(&env.vault),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(open_uploads(&bucket), 0);
    // Next run, all well: complete, and everything restores from it alone.
    env.tv(&backup).assert().success();
    let (code, deep, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 0, "{deep}");
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn t61_t62_short_reads_and_throttling_are_retried_and_quota_is_terminal() {
    let env = Env::on_s3();
    fill_source(&env);
    // T62: volume uploads meet 429, 503 and 500, each once in a row.
    let throttled = FaultProxy::start(|line, _| Action::Forward.then_fail(line));
    let src = env.src();
    let (code, _, err) = run_json(throttled.route(env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "4M",
    ])));
    assert_eq!(code, 0, "{err}");
    assert!(throttled.requests_like("PUT ") > volume_count(&env));

    // T61: every volume GET ends early once; read again, the restore is exact.
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let short = FaultProxy::start(move |line, _| {
        if line.starts_with("GET ")
            && line.contains("/tv0")
            && seen.lock().unwrap().insert(line.to_string())
        {
            Action::ShortAnswer(1000)
        } else {
            Action::Forward
        }
    });
    let target = env.path("out");
    let (code, report, err) =
        run_json(short.route(env.tv(&["restore", "--json", "--target", target.to_str().unwrap()])));
    assert_eq!(code, 0, "{report} {err}");
    assert_same_tree(
        &env.src(),
        &target.join(env.src().strip_prefix("/").unwrap()),
    );

    // Storage full: terminal at once, exit 1, nothing counted as stored.
    std::fs::write(env.src().join("new.bin"), noise(1 << 20, 9)).unwrap();
    let full = FaultProxy::start(|line, _| {
        if line.starts_with("PUT ") {
            Action::Answer(507, "InsufficientStorage")
        } else {
            Action::Forward
        }
    });
    let before = volume_count(&env);
    let started = std::time::Instant::now();
    let (code, _, err) = run_json(full.route(env.tv(&["backup", src.to_str().unwrap()])));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        full.requests_like("PUT "),
        1,
        "a full store was asked again"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(volume_count(&env), before);
}

trait Throttle {
    fn then_fail(self, line: &str) -> Action;
}

impl Throttle for Action {
    /// Volume PUTs 0, 2 and 4 answer 429 SlowDown, 503 and 500; the rest pass.
    fn then_fail(self, line: &str) -> Action {
        static PUTS: AtomicUsize = AtomicUsize::new(0);
        if !(line.starts_with("PUT ") && line.contains("/tv0")) {
            return self;
        }
        match PUTS.fetch_add(1, Ordering::SeqCst) {
            0 => Action::Answer(429, "SlowDown"),
            2 => Action::Answer(503, "ServiceUnavailable"),
            4 => Action::Answer(500, "InternalError"),
            _ => self,
        }
    }
}

#[test]
fn t63_a_failing_listing_is_never_taken_for_missing_volumes() {
    let env = Env::on_s3();
    fill_source(&env);
    env.backup(&[]);
    env.backup(&[]);
    env.tv(&["forget", "--keep-last", "1"]).assert().success();
    let failing = FaultProxy::start(|line, _| {
        if line.contains("list-type=2") {
            Action::Answer(500, "InternalError")
        } else {
            Action::Forward
        }
    });
    for args in [&["verify"][..], &["prune"][..], &["volumes"][..]] {
        let (code, _, err) = run_json(failing.route(env.tv(args)));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(!err.contains("missing"), "{args:?}: {err}");
    }
    let (code, report, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 0, "{report}");
    assert!(report["missing"].as_array().unwrap().is_empty());
}

#[test]
fn t58_bad_addresses_buckets_endpoints_and_sizes_are_one_clear_line() {
    let env = Env::on_s3();
    fill_source(&env);
    let src = env.src();
    // A volume larger than S3's largest object: refused before any upload.
    let (code, _, err) =
        run_json(env.tv(&["backup", src.to_str().unwrap(), "--volume-size", "6T"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("5 TiB"), "{err}");
    assert_eq!(volume_count(&env), 0);
    assert_eq!(tapevault_objects(&env), vec!["vault.tvl".to_string()]);

    let mut missing = Env::uninitialised();
    missing.vault = "s3://no-such-bucket-here/x".into();
    let (code, _, err) = run_json(missing.tv(&crate::util::CHEAP_INIT));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bucket no-such-bucket-here does not exist"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, _, err) = run_json({
        let mut cmd = env.tv(&["verify"]);
        cmd.env("AWS_ENDPOINT_URL", &nowhere)
            .env("TAPEVAULT_S3_RETRIES", "1");
        cmd
    });
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot reach") && err.contains(&nowhere),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let (code, _, err) = run_json(env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--storage-class",
        "GLACIER",
        "--vault",
        "dir:/tmp/x",
    ]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn archived_volumes_are_named_for_rehydration_not_called_damaged() {
    let env = Env::on_s3();
    fill_source(&env);
    env.backup(&["--storage-class", "GLACIER"]);
    let (code, report, _) = env.restore("out", &[]);
    assert_eq!(code, 4, "{report}");
    assert!(report.to_string().contains("rehydrate"), "{report}");
    let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 4, "{verify}");
    assert!(verify["damaged"].as_array().unwrap().is_empty(), "{verify}");
    assert!(verify["missing"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("rehydrate"));
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    for volume in volumes["volumes"].as_array().unwrap() {
        assert_eq!(volume["state"], "sealed", "{volumes}");
    }
}

#[test]
fn wrong_credentials_are_access_denied_in_one_line() {
    let mut env = Env::uninitialised();
    env.vault = "s3://any-bucket/site1".into();
    let (code, _, err) = run_json({
        let mut cmd = env.tv(&crate::util::CHEAP_INIT);
        cmd.env(
            "AWS_ENDPOINT_URL",
            crate::util::s3_endpoint_checking_credentials(),
        );
        cmd
    });
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("access denied to s3://any-bucket/site1") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        !env.path("catalog").exists(),
        "a catalog was made for a vault never written"
    );
}

#[test]
fn deep_verify_checks_a_copy_for_what_this_vault_lacks() {
    let env = filled_dir_env();
    let bucket = format!("{}/offsite", new_bucket());
    env.tv(&["copy", "--to", &bucket]).assert().success();
    let lost = env.volumes()[0].clone();
    let name = lost.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&lost).unwrap();
    let (code, report, err) =
        run_json(env.tv(&["verify", "--deep", "--json", "--copy-vault", &bucket]));
    assert_eq!(code, 3, "{report} {err}");
    assert_eq!(report["damaged_files"], serde_json::json!([]), "{report}");
    assert_eq!(report["missing"], serde_json::json!([]), "{report}");
    let line = report["from_copies"][0].as_str().unwrap();
    assert!(line.starts_with(&name) && line.contains(&bucket), "{line}");
    assert!(report["files_hashed"].as_u64().unwrap() >= 22, "{report}");
    // The vault itself still lacks it: without the copy, that is damage.
    let (code, report, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["missing"][0]["name"], name.as_str());
}

#[test]
fn t14_the_same_volume_uploaded_twice_is_recognised_by_its_id() {
    let env = Env::on_s3();
    fill_source(&env);
    env.backup(&[]);
    let vault =
        tapevault::vault::open_vault_with(&env.vault, &crate::vaults::test_s3_options()).unwrap();
    let first = vault
        .list()
        .unwrap()
        .sealed
        .into_iter()
        .find(|n| n.starts_with("tv000001"))
        .unwrap();
    let (size, bytes) = vault.read_range(&first, 0, u64::MAX).unwrap();
    let mut again = vault.create("tv000009-deadbeef.tar", size).unwrap();
    again.write_all(&bytes).unwrap();
    again.seal().unwrap();
    let (code, rebuilt, err) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 3, "{rebuilt} {err}");
    assert!(
        rebuilt["problems"]
            .to_string()
            .contains("tv000009-deadbeef.tar"),
        "{rebuilt}"
    );
    restores_exactly_with_catalog(&env, &env.path("rebuilt"));
}

/// Restore everything with the catalog in `catalog`: exit 0 and the source exactly.
fn restores_exactly_with_catalog(env: &Env, catalog: &std::path::Path) {
    let target = env.path("from-catalog");
    let (code, report, _) = run_json(env.tv(&[
        "restore",
        "--json",
        "--catalog",
        catalog.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{report}");
    assert_same_tree(
        &env.src(),
        &target.join(env.src().strip_prefix("/").unwrap()),
    );
}

#[test]
fn credentials_come_from_a_shared_profile_and_none_at_all_is_said() {
    let env = Env::on_s3();
    let profile = env.path("aws-credentials");
    std::fs::write(
        &profile,
        "[offsite]\naws_access_key_id = from-profile\naws_secret_access_key = secret\n",
    )
    .unwrap();
    let without_keys = |profile_file: Option<&std::path::Path>| {
        let mut cmd = env.tv(&["verify"]);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONFIG_FILE", env.path("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", env.path("no-credentials"));
        if let Some(file) = profile_file {
            cmd.env("AWS_SHARED_CREDENTIALS_FILE", file)
                .env("AWS_PROFILE", "offsite");
        }
        run_json(cmd)
    };
    let (code, _, err) = without_keys(Some(&profile));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = without_keys(None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no S3 credentials for s3://"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn t61_an_object_stored_short_with_a_200_is_never_trusted() {
    let env = Env::on_s3();
    fill_source(&env);
    let src = env.src();
    let backup = ["backup", src.to_str().unwrap(), "--volume-size", "4M"];
    let short = FaultProxy::start(|line, _| {
        if line.starts_with("PUT ") && line.contains("/tv000002") {
            Action::ShortUpload(512)
        } else {
            Action::Forward
        }
    });
    let (code, _, err) = run_json(short.route(env.tv(&backup)));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not trusted"), "{err}");
    assert!(short.requests_like("/tv000002") >= 1);
    // The short object is gone, the first volume stays unreferenced or adopted; the
    // next run completes and everything restores.
    assert!(!tapevault_objects(&env)
        .iter()
        .any(|n| n.starts_with("tv000002")));
    env.tv(&backup).assert().success();
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn copies_take_the_storage_class_asked_for() {
    let env = filled_dir_env();
    let bucket = format!("{}/cold", new_bucket());
    env.tv(&["copy", "--to", &bucket, "--storage-class", "GLACIER"])
        .assert()
        .success();
    let lost = env.volumes()[0].clone();
    std::fs::remove_file(&lost).unwrap();
    // The copy holds the volume, archived: the restore names it for rehydration.
    let (code, report, _) = env.restore("out", &["--copy-vault", &bucket]);
    assert_eq!(code, 4, "{report}");
    assert!(report.to_string().contains("rehydrate"), "{report}");
}

/// The object lock headers S3 answers a HEAD of `name` in `vault` with, lowercased.
fn lock_headers(vault: &str, name: &str) -> Vec<String> {
    let path = vault.trim_start_matches("s3:/");
    let answer = s3_request("HEAD", &format!("{path}/{name}"), "");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .lines()
        .map(str::to_ascii_lowercase)
        .filter(|line| line.starts_with("x-amz-object-lock"))
        .collect()
}

#[test]
fn object_lock_keeps_locked_volumes_through_prune_until_their_date() {
    // A bucket that cannot lock: refused before anything is written.
    let plain = Env::on_s3();
    fill_source(&plain);
    let before = tapevault_objects(&plain);
    let src = plain.src();
    let backup = |env: &Env, extra: &[&str]| {
        let mut args = vec!["backup", src.to_str().unwrap(), "--volume-size", "4M"];
        args.extend_from_slice(extra);
        env.tv(&args).output().unwrap()
    };
    let refused = backup(&plain, &["--object-lock-days", "3"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("has no object lock"), "{err}");
    assert_eq!(tapevault_objects(&plain), before);
    let on_dir = Env::new();
    let refused = backup(&on_dir, &["--object-lock-days", "3"]);
    assert_eq!(refused.status.code(), Some(2));

    // A locked bucket: the first run's volumes locked for 3 days, the second's not.
    let mut env = Env::uninitialised();
    env.vault = format!("{}/site1", new_locked_bucket());
    env.tv(&CHEAP_INIT).assert().success();
    std::fs::write(env.src().join("a"), noise(7 << 20, 1)).unwrap();
    // A retention the store refuses: that volume is not kept, and the run says why.
    let refusing = FaultProxy::start(|line, _| {
        if line.contains("?retention") {
            Action::Answer(403, "AccessDenied")
        } else {
            Action::Forward
        }
    });
    let locked_src = env.src();
    let (code, _, err) = run_json(refusing.route(env.tv(&[
        "backup",
        locked_src.to_str().unwrap(),
        "--object-lock-days",
        "3",
        "--json",
    ])));
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("access denied") && err.contains("cannot set the object lock of tv0"),
        "{err}"
    );
    assert_eq!(volume_count(&env), 0);
    assert!(
        tapevault_objects(&env)
            .iter()
            .all(|n| !n.starts_with("tv0")),
        "{:?}",
        tapevault_objects(&env)
    );
    let first = env.backup(&[
        "--object-lock-days",
        "3",
        "--object-lock-mode",
        "compliance",
    ]);
    let locked: Vec<String> = first["volumes_written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(locked.len() >= 2, "{first}");
    for name in &locked {
        let headers = lock_headers(&env.vault, name);
        assert!(
            headers.contains(&"x-amz-object-lock-mode: compliance".to_string()),
            "{name}: {headers:?}"
        );
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with("x-amz-object-lock-retain-until-date: 20")),
            "{headers:?}"
        );
    }
    std::fs::remove_file(env.src().join("a")).unwrap();
    std::fs::write(env.src().join("b"), noise(3 << 20, 2)).unwrap();
    env.backup(&[]);
    env.tv(&["forget", "--keep-last", "1"]).assert().success();

    // A lock that cannot be read is never taken for no lock: the prune stops.
    let unreadable = FaultProxy::start(|line, _| {
        if line.starts_with("HEAD ") && line.contains("/tv0") {
            Action::Answer(403, "AccessDenied")
        } else {
            Action::Forward
        }
    });
    let (code, _, err) = run_json(unreadable.route(env.tv(&["prune", "--json"])));
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot read the object lock of tv0"), "{err}");

    // Prune deletes nothing locked, names each locked volume with its date, exit 0.
    let (code, report, err) = run_json(env.tv(&["prune", "--json"]));
    assert_eq!(code, 0, "{err}");
    let kept: Vec<&str> = report["locked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept, locked.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(report["locked"][0]["lock"]
        .as_str()
        .unwrap()
        .contains("COMPLIANCE) until 20"));
    assert!(report["volumes"].as_array().unwrap().is_empty(), "{report}");
    let stored = tapevault_objects(&env);
    assert!(
        locked.iter().all(|name| stored.contains(name)),
        "{stored:?}"
    );
    let out = env.tv(&["prune"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("kept {}", locked[0])) && text.contains("prune again after"),
        "{text}"
    );
    let (code, _, landed) = env.restore("out", &[]);
    assert_eq!(code, 0);
    assert_same_tree(&env.src(), &landed);

    // Four days on, the locks have ended and the same prune deletes them.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(4 * 24 * 3600);
    let later = humantime::format_rfc3339_seconds(later).to_string();
    let when = later.trim_end_matches('Z').replace('T', " ");
    let (code, err) = at_time(&env, &when, &["prune"]);
    assert_eq!(code, 0, "{err}");
    let stored = tapevault_objects(&env);
    assert!(
        locked.iter().all(|name| !stored.contains(name)),
        "{stored:?}"
    );
    let (code, _, landed) = env.restore("again", &[]);
    assert_eq!(code, 0);
    assert_same_tree(&env.src(), &landed);

    // A copy takes the lock asked for.
    let offsite = format!("{}/offsite", new_locked_bucket());
    env.tv(&["copy", "--to", &offsite, "--object-lock-days", "1"])
        .assert()
        .success();
    let copied = objects_in(&offsite);
    let volume = copied.iter().find(|n| n.ends_with(".tar")).unwrap();
    assert!(
        lock_headers(&offsite, volume).contains(&"x-amz-object-lock-mode: governance".to_string())
    );
}
