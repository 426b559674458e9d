//! Crashes, failing media and concurrent runs: a run can lose only itself.

use crate::util::*;
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tapevault::vault::{Listing, Vault, VolumeSink};

/// How the fault vault fails once its byte budget is spent.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// Writes fail with ENOSPC (after a short write).
    NoSpace,
    /// Writes fail with EIO.
    Io,
    /// Writes succeed, but sealing (fsync, rename) fails.
    Seal,
    /// After `budget` volumes, one is sealed and then the run dies before the catalog
    /// records it: a power cut between the rename and the commit.
    AfterSeal,
}

/// A dir vault whose writes fail after `budget` bytes, across all volumes, and whose
/// first `failing_reads` opened volumes fail with EIO after 600 KiB.
struct FaultVault {
    inner: Box<dyn Vault>,
    budget: Arc<AtomicI64>,
    fault: Fault,
    failing_reads: AtomicI64,
}

/// A reader that fails with EIO after `left` bytes.
struct FailingReader {
    inner: Box<dyn std::io::Read + Send>,
    left: u64,
}

impl std::io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(rustix::io::Errno::IO.into());
        }
        let n = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }
}

struct FaultSink {
    inner: Box<dyn VolumeSink>,
    budget: Arc<AtomicI64>,
    fault: Fault,
}

impl Vault for FaultVault {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn list(&self) -> tapevault::error::Result<Listing> {
        self.inner.list()
    }
    fn create(&self, name: &str, max_len: u64) -> tapevault::error::Result<Box<dyn VolumeSink>> {
        Ok(Box::new(FaultSink {
            inner: self.inner.create(name, max_len)?,
            budget: Arc::clone(&self.budget),
            fault: self.fault,
        }))
    }
    fn open(&self, name: &str) -> tapevault::error::Result<Box<dyn std::io::Read + Send>> {
        let inner = self.inner.open(name)?;
        if self.failing_reads.fetch_sub(1, Ordering::SeqCst) > 0 {
            return Ok(Box::new(FailingReader {
                inner,
                left: 600 << 10,
            }));
        }
        Ok(inner)
    }
    fn read_range(
        &self,
        name: &str,
        offset: u64,
        len: u64,
    ) -> tapevault::error::Result<(u64, Vec<u8>)> {
        self.inner.read_range(name, offset, len)
    }
    fn lock_writers(&self) -> tapevault::error::Result<tapevault::lock::RunLock> {
        self.inner.lock_writers()
    }
    fn delete(&self, name: &str) -> tapevault::error::Result<()> {
        self.inner.delete(name)
    }
}

impl Write for FaultSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.fault == Fault::AfterSeal {
            return self.inner.write(buf);
        }
        let left = self.budget.load(Ordering::SeqCst);
        if left <= 0 && self.fault != Fault::Seal {
            let errno = if self.fault == Fault::NoSpace {
                rustix::io::Errno::NOSPC
            } else {
                rustix::io::Errno::IO
            };
            return Err(errno.into());
        }
        // A short write at the edge, as a filling disk gives.
        let n = if self.fault == Fault::Seal {
            buf.len()
        } else {
            buf.len().min(left as usize)
        };
        self.budget.fetch_sub(n as i64, Ordering::SeqCst);
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl VolumeSink for FaultSink {
    fn seal(self: Box<Self>) -> tapevault::error::Result<()> {
        if self.fault == Fault::AfterSeal {
            let left = self.budget.fetch_sub(1, Ordering::SeqCst);
            self.inner.seal()?;
            if left <= 0 {
                return Err(tapevault::error::Error::new(
                    tapevault::error::ErrorKind::Io,
                    "power cut after the volume was sealed (injected)",
                ));
            }
            return Ok(());
        }
        if self.fault == Fault::Seal && self.budget.load(Ordering::SeqCst) <= 0 {
            return Err(tapevault::error::Error::new(
                tapevault::error::ErrorKind::Io,
                "cannot sync volume: Input/output error (injected)",
            ));
        }
        self.inner.seal()
    }
}

fn library_backup(env: &Env, vault: &dyn Vault) -> tapevault::error::Result<u64> {
    let mut catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test")?;
    let key = tapevault::keys::unlock(&catalog, PASSPHRASE.as_bytes())?;
    let options = tapevault::backup::BackupOptions {
        sources: vec![env.src()],
        volume_size_bytes: 4 << 20,
        parity_percent: 0,
        new_set: false,
        compression_level: 3,
        walk: tapevault::source::WalkOptions {
            one_file_system: true,
            excludes: Vec::new(),
        },
        tags: Vec::new(),
        verify_after_write: false,
        threads: 2,
    };
    let summary = tapevault::backup::backup(
        vault,
        &mut catalog,
        &key,
        &options,
        &tapevault::progress::Silent,
    )?;
    Ok(summary.snapshot.stats.bytes_added)
}

fn dir_vault(env: &Env) -> Box<dyn Vault> {
    tapevault::vault::open_vault(&format!("dir:{}", env.vault_dir().display())).unwrap()
}

fn assert_exact_restore(env: &Env, into: &str) {
    let (code, report, landed) = env.restore(into, &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn t24_t28_t29_a_backup_failing_at_any_byte_loses_only_itself() {
    let env = Env::new();
    std::fs::write(env.src().join("first"), noise(3 << 20, 1)).unwrap();
    std::fs::write(env.src().join("second"), noise(3 << 20, 2)).unwrap();
    std::fs::write(env.src().join("small"), b"small").unwrap();
    let total = 6 << 20;
    let mut failed_runs = 0;
    // Budgets stay below what is left to write (over 1.8 MB after the first run, whose
    // 4.5 MB is enough to seal a volume and then fail; a volume holds at least ~2 MB, so
    // the later, smaller budgets seal none): every run must fail, wherever the keyed
    // chunker puts its boundaries.
    for (fault, budget) in [
        (Fault::Io, 4_500_000),
        (Fault::NoSpace, 0),
        (Fault::NoSpace, 700),
        (Fault::Io, 300_000),
        (Fault::NoSpace, 1_500_000),
        (Fault::Seal, 1_000_000),
    ] {
        let vault = FaultVault {
            inner: dir_vault(&env),
            budget: Arc::new(AtomicI64::new(budget)),
            fault,
            failing_reads: AtomicI64::new(0),
        };
        let err = library_backup(&env, &vault).expect_err("the injected fault must fail the run");
        assert_eq!(err.kind(), tapevault::error::ErrorKind::Io, "{err}");
        if fault == Fault::NoSpace {
            assert!(err.to_string().contains("no space left"), "{err}");
        }
        // Nothing half-done is trusted: the catalog opens and lists no snapshot.
        let (code, list, stderr) = run_json(env.tv(&["snapshots", "--json"]));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(list["snapshots"].as_array().unwrap().len(), 0);
        let (code, _, stderr) = run_json(env.tv(&["verify", "--json"]));
        assert!(
            code == 0 || code == 3,
            "verify after a failed run: {stderr}"
        );
        failed_runs += 1;
    }
    assert!(failed_runs > 0);
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    assert!(
        !volumes["volumes"].as_array().unwrap().is_empty(),
        "a failed run keeps the volumes it sealed: {volumes}"
    );
    // The next run completes and reuses every blob the failed runs sealed.
    let added = library_backup(&env, dir_vault(&env).as_ref()).unwrap();
    assert!(
        added < total,
        "sealed blobs of failed runs are reused ({added} bytes added)"
    );
    assert_exact_restore(&env, "out");
    let (code, report, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 3, "abandoned volumes are reported: {report}");
    assert!(
        !report["abandoned"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    assert!(!volumes["abandoned"].as_array().unwrap().is_empty());
}

/// A backup of the source folder running in the background.
fn spawn_backup(env: &Env) -> std::process::Child {
    let src = env.src();
    env.process(&[
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "4M",
        "--quiet",
    ])
    .spawn()
    .unwrap()
}

#[test]
fn t25_t26_t49_killed_backups_never_block_the_next_and_lose_nothing_sealed() {
    let env = Env::new();
    for n in 0..4 {
        std::fs::write(env.src().join(format!("f{n}")), noise(2 << 20, 10 + n)).unwrap();
    }
    let delays_ms = [5, 40, 120, 300, 600, 1000, 1600, 2400];
    for delay in delays_ms {
        let mut child = spawn_backup(&env);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
        let _ = child.wait();
        // The lock of the killed run is gone at once: never exit 6.
        let (code, _, stderr) = run_json(env.tv(&["snapshots", "--json"]));
        assert_eq!(code, 0, "after a kill at {delay} ms: {stderr}");
    }
    env.backup(&[]);
    assert_exact_restore(&env, "out");
    let (code, report, _) = run_json(env.tv(&["verify", "--json"]));
    assert!(code == 0 || code == 3, "{report}");
    assert!(report["damaged"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["missing"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn t48_read_only_commands_run_beside_a_backup() {
    let env = two_volume_vault();
    std::fs::write(env.src().join("more"), noise(6 << 20, 30)).unwrap();
    let mut child = spawn_backup(&env);
    std::thread::sleep(std::time::Duration::from_millis(200));
    for args in [
        &["snapshots"][..],
        &["volumes"],
        &["ls"],
        &["restore", "--plan"],
    ] {
        let (code, _, stderr) = run_json(env.tv(args));
        assert_eq!(code, 0, "{args:?} beside a backup: {stderr}");
    }
    assert!(child.wait().unwrap().success());
    assert_exact_restore(&env, "out");
}

#[test]
fn t29_disk_full_on_a_real_small_filesystem_is_exit_1_and_the_next_run_completes() {
    // A 6 MiB tmpfs as the vault, when this machine lets the tests mount one (root).
    let env = Env::new();
    let vault = env.vault_dir();
    let moved = env.path("vault-data");
    std::fs::rename(&vault, &moved).unwrap();
    let Some(mounted) = Mounted::tmpfs(&vault, "6m") else {
        eprintln!("note: cannot mount a tmpfs here; the injected-ENOSPC test covers disk full");
        return;
    };
    for entry in std::fs::read_dir(&moved).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), vault.join(entry.file_name())).unwrap();
    }
    std::fs::write(env.src().join("big"), noise(9 << 20, 40)).unwrap();
    let src = env.src();
    let (code, _, stderr) =
        run_json(env.tv(&["backup", src.to_str().unwrap(), "--volume-size", "4M"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Free space: the abandoned partial goes, and the operator grows the filesystem
    // (how much the full disk held depends on where the keyed chunker cut). Then the
    // same backup completes, reusing every volume sealed before the disk filled.
    for name in std::fs::read_dir(&vault).unwrap() {
        let path = name.unwrap().path();
        if path.extension().is_some_and(|e| e == "partial") {
            std::fs::remove_file(path).unwrap();
        }
    }
    mounted.remount("size=32m");
    let (code, summary, stderr) = run_json(env.tv(&[
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "4M",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let added = summary["snapshot"]["stats"]["bytes_added"]
        .as_u64()
        .unwrap();
    assert!(
        added < 9 << 20,
        "nothing sealed before the disk filled is stored again: {summary}"
    );
    assert_exact_restore(&env, "out");
}

#[test]
fn a_full_restore_target_stops_the_restore_in_one_line_and_a_rerun_completes() {
    let env = Env::new();
    for n in 0..12 {
        std::fs::write(env.src().join(format!("f{n:02}")), noise(512 << 10, n)).unwrap();
    }
    env.backup(&[]);
    let target = env.path("out");
    let Some(mounted) = Mounted::tmpfs(&target, "2m") else {
        eprintln!("note: cannot mount a tmpfs here; the writer's unit test covers a full target");
        return;
    };
    let (code, _, stderr) = run_json(env.tv(&["restore", "--target", target.to_str().unwrap()]));
    assert_eq!(code, 1, "an error, not damage: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("can take no more (No space left on device")
            && stderr.contains("nothing was found damaged"),
        "{stderr}"
    );
    // What was put in place is whole; nothing else is left, not even a temporary name.
    let landed = target.join(env.src().strip_prefix("/").unwrap());
    let mut kept = 0;
    for entry in std::fs::read_dir(&landed).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        assert_eq!(
            std::fs::read(entry.path()).unwrap(),
            std::fs::read(env.src().join(&name)).unwrap(),
            "{name}"
        );
        kept += 1;
    }
    assert!((1..12).contains(&kept), "{kept} files fit");
    // A drill whose scratch space fills up says so: it is no damage to the vault.
    let scratch = env.path("scratch");
    let Some(_small) = Mounted::tmpfs(&scratch, "1m") else {
        panic!("a second tmpfs could not be mounted");
    };
    let (code, _, stderr) = run_json(env.tv(&["drill", "--scratch", scratch.to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("can take no more") && stderr.contains("--scratch"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch removed"
    );
    // With room, the same restore over what is there completes.
    mounted.remount("size=32m");
    let (code, _, stderr) = run_json(env.tv(&[
        "restore",
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_same_tree(&env.src(), &landed);
    // Damage found before the target filled is not forgotten in the message.
    flip_first_chunk_of(&env, "f00");
    let again = env.path("again");
    let _again = Mounted::tmpfs(&again, "2m").expect("a third tmpfs");
    let (code, _, stderr) = run_json(env.tv(&["restore", "--target", again.to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("can take no more")
            && stderr.contains("1 damaged files or volumes were found"),
        "{stderr}"
    );
}

#[test]
fn a_read_only_restore_target_is_refused_in_one_line_before_anything_is_read() {
    let env = Env::new();
    std::fs::write(env.src().join("f"), b"data").unwrap();
    env.backup(&[]);
    // With its volumes gone, a restore that read the vault would report them missing.
    for volume in env.volumes() {
        std::fs::remove_file(volume).unwrap();
    }
    let target = env.path("out");
    let Some(mounted) = Mounted::tmpfs(&target, "1m") else {
        eprintln!("note: cannot mount a tmpfs here");
        return;
    };
    mounted.remount("ro");
    let (code, _, stderr) = run_json(env.tv(&["restore", "--target", target.to_str().unwrap()]));
    assert_eq!(code, 1, "an error, not damage: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is on a read-only filesystem"), "{stderr}");
}

#[test]
fn t32_an_interrupted_restore_never_leaves_a_wrong_file_and_a_rerun_completes() {
    let env = Env::new();
    for n in 0..4 {
        std::fs::write(env.src().join(format!("f{n}")), noise(8 << 20, 50 + n)).unwrap();
    }
    env.backup(&[]);
    let target = env.path("out");
    let landed = target.join(env.src().strip_prefix("/").unwrap());
    let temps_left = || {
        std::fs::read_dir(&landed).map_or(0, |dir| {
            dir.filter(|e| {
                let entry = e.as_ref().unwrap();
                entry.file_name().to_string_lossy().starts_with(".tv-")
            })
            .count()
        })
    };
    // Kills ever later, until one lands while files are being written (each run clears
    // what the run before left): how long a restore takes depends on the machine.
    for delay in [10, 20, 40, 70, 100, 150, 250, 400, 600, 900, 1400] {
        let mut child = env
            .process(&[
                "restore",
                "--target",
                target.to_str().unwrap(),
                "--overwrite",
                "--quiet",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
        let _ = child.wait();
        // Whatever carries a real name is exact.
        for n in 0..4 {
            let path = landed.join(format!("f{n}"));
            if path.exists() {
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    std::fs::read(env.src().join(format!("f{n}"))).unwrap(),
                    "f{n} after a kill at {delay} ms"
                );
            }
        }
        if temps_left() > 0 {
            break;
        }
    }
    assert!(
        temps_left() > 0,
        "no kill landed while files were being written"
    );
    // Without --overwrite the rerun refuses, naming the conflict; with it, it completes
    // and clears what the killed runs left under temporary names.
    let (code, _, stderr) = run_json(env.tv(&["restore", "--target", target.to_str().unwrap()]));
    if code != 0 {
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("--overwrite"), "{stderr}");
    }
    let (code, report, _) = env.restore("out", &["--overwrite"]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report["stale_temps_removed"].as_u64().unwrap() > 0,
        "the kills should have left temporary files: {report}"
    );
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn t68_a_transient_read_failure_is_retried_and_a_lasting_one_is_damage() {
    let env = two_volume_vault();
    let restore_through = |failing_reads: i64, into: &str| {
        let vault = FaultVault {
            inner: dir_vault(&env),
            budget: Arc::new(AtomicI64::new(i64::MAX)),
            fault: Fault::Io,
            failing_reads: AtomicI64::new(failing_reads),
        };
        let catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
        let key = tapevault::keys::unlock(&catalog, PASSPHRASE.as_bytes()).unwrap();
        let options = tapevault::restore::RestoreOptions {
            snapshot: "latest".into(),
            target: env.path(into),
            includes: Vec::new(),
            overwrite: false,
            copy_vaults: Vec::new(),
        };
        tapevault::restore::restore(
            &vault,
            &catalog,
            &key,
            &options,
            &tapevault::progress::Silent,
        )
        .unwrap()
    };
    // Fails once: read again, exact, and the report says so (exit 0 material, not silence).
    let report = restore_through(1, "once");
    assert!(!report.problems.has_damage(), "{report:?}");
    assert_eq!(report.retried.len(), 1, "{report:?}");
    assert!(report.retried[0].contains("read again"));
    assert_same_tree(
        &env.src(),
        &env.path("once").join(env.src().strip_prefix("/").unwrap()),
    );
    // Fails every time: damage, with the files named.
    let report = restore_through(i64::MAX, "always");
    assert!(report.problems.has_damage());
    assert!(!report.problems.damaged.is_empty(), "{report:?}");
}

#[test]
fn t27_a_volume_sealed_but_never_recorded_is_adopted_by_the_next_run() {
    // The power goes between a volume's rename and the catalog commit: once for the
    // first volume of a run, once for the volume that completes the snapshot.
    for (case, sealed_before) in [("first volume", 0), ("last volume", 1)] {
        let env = Env::new();
        std::fs::write(env.src().join("first"), noise(3 << 20, 1)).unwrap();
        std::fs::write(env.src().join("second"), noise(3 << 20, 2)).unwrap();
        std::fs::write(env.src().join("small"), b"small").unwrap();
        let vault = FaultVault {
            inner: dir_vault(&env),
            budget: Arc::new(AtomicI64::new(sealed_before)),
            fault: Fault::AfterSeal,
            failing_reads: AtomicI64::new(0),
        };
        let err = library_backup(&env, &vault).expect_err("the power cut must stop the run");
        assert!(err.to_string().contains("power cut"), "{case}: {err}");
        let unrecorded = env.volumes().len();
        // The next cron run needs no human: it records the orphan and completes.
        let src = env.src();
        let out = env
            .tv(&["backup", src.to_str().unwrap(), "--volume-size", "4M"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{case}: {stderr}");
        assert!(stderr.contains("recorded now"), "{case}: {stderr}");
        let (code, list, _) = run_json(env.tv(&["snapshots", "--json"]));
        assert_eq!(code, 0);
        let snapshots = list["snapshots"].as_array().unwrap().len();
        if case == "last volume" && unrecorded == 2 {
            // The orphan completed the interrupted snapshot: it is whole and listed.
            assert!(stderr.contains("(1 snapshot)"), "{stderr}");
            assert_eq!(snapshots, 2, "{list}");
        }
        if case == "last volume" {
            // Everything the orphan holds is deduplicated against, not stored again:
            // the new run's one volume carries only its snapshot.
            let volumes = env.volumes();
            assert_eq!(volumes.len(), unrecorded + 1, "{case}");
            let newest = std::fs::metadata(volumes.last().unwrap()).unwrap().len();
            assert!(newest < 1 << 20, "{case}: {newest} bytes stored again");
        }
        let (code, report, _) = run_json(env.tv(&["verify", "--json"]));
        assert_eq!(code, 0, "{case}: {report}");
        assert_exact_restore(&env, &format!("out-{sealed_before}"));
    }
}

#[test]
fn t50_a_writer_on_another_host_is_exit_6_naming_it_until_it_lets_go() {
    let env = two_volume_vault();
    // Host B: its own catalog of the same vault.
    let (code, _, stderr) = rebuild_into(&env, "catalog-b");
    assert_eq!(code, 0, "{stderr}");
    let catalog_b = env.path("catalog-b");
    // Host A is writing: its lock in the vault names it.
    let lock_path = env.vault_dir().join(".writer-lock");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    std::fs::write(&lock_path, "pid 777 on host-a since 2026-11-28T02:00:00Z").unwrap();
    std::fs::write(env.src().join("new"), noise(1 << 20, 50)).unwrap();
    let src = env.src();
    let backup_b = [
        "backup",
        src.to_str().unwrap(),
        "--volume-size",
        "4M",
        "--catalog",
        catalog_b.to_str().unwrap(),
    ];
    let started = std::time::Instant::now();
    let (code, _, stderr) = run_json(env.tv(&backup_b));
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("pid 777 on host-a"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Nothing was written by the refused run; the vault still verifies.
    let (code, _, stderr) = run_json(env.tv(&["verify"]));
    assert_eq!(code, 0, "{stderr}");
    drop(lock);
    let (code, _, stderr) = run_json(env.tv(&backup_b));
    assert_eq!(code, 0, "a released lock must not block: {stderr}");
}

#[test]
fn t51_a_suspended_holder_keeps_its_lock_and_finishes_safely() {
    let env = two_volume_vault();
    std::fs::write(env.src().join("more"), noise(24 << 20, 60)).unwrap();
    let mut first = spawn_backup(&env);
    // Stopped as soon as it holds the catalog's lock, with its work still ahead of it.
    let holder = format!("pid {} ", first.id());
    let lock = env.path("catalog").join("lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&lock).is_ok_and(|held| held.starts_with(&holder)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let pid = rustix::process::Pid::from_child(&first);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended before it could be stopped"
    );
    // The lock has no lease to run out while its holder is stopped: a second run
    // never takes over, so the first never commits over it.
    let src = env.src();
    for _ in 0..2 {
        let (code, _, stderr) =
            run_json(env.tv(&["backup", src.to_str().unwrap(), "--volume-size", "4M"]));
        assert_eq!(code, 6, "{stderr}");
        assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    }
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    assert!(first.wait().unwrap().success());
    let (code, _, stderr) = run_json(env.tv(&["verify"]));
    assert_eq!(code, 0, "{stderr}");
    assert_exact_restore(&env, "out");
}

#[test]
fn t30_clock_jumps_never_reorder_snapshots_or_plans() {
    let env = Env::new();
    let file = env.src().join("state");
    let src = env.src();
    let backup = ["backup", src.to_str().unwrap(), "--volume-size", "4M"];
    // The clock goes to 2038, then back to 1970, then to today.
    for (when, content) in [
        ("2038-01-19 04:00:00", "written in 2038"),
        ("1970-01-02 00:00:00", "written in 1970"),
    ] {
        std::fs::write(&file, content).unwrap();
        let (code, stderr) = at_time(&env, when, &backup);
        assert_eq!(code, 0, "backup at {when}: {stderr}");
    }
    let (code, list, _) = run_json(env.tv(&["snapshots", "--json"]));
    assert_eq!(code, 0);
    let snapshots = list["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2);
    assert!(
        snapshots[0]["time"].as_i64() > snapshots[1]["time"].as_i64(),
        "the 1970 run is second by sequence, whatever its clock said: {list}"
    );
    // "latest" is the last run, at any clock.
    for when in [
        "1970-01-01 00:00:10",
        "2038-01-19 05:00:00",
        "2106-02-07 00:00:00",
    ] {
        let target = env.path(&format!("out-{}", &when[..4]));
        let (code, stderr) = at_time(
            &env,
            when,
            &["restore", "latest", "--target", target.to_str().unwrap()],
        );
        assert_eq!(code, 0, "restore at {when}: {stderr}");
        let landed = target.join(file.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read_to_string(landed).unwrap(), "written in 1970");
        let (code, stderr) = at_time(&env, when, &["verify"]);
        assert_eq!(code, 0, "verify at {when}: {stderr}");
    }
    // A third run at today's clock: still after both, nothing lost or reordered.
    std::fs::write(&file, "written today").unwrap();
    env.tv(&backup).assert().success();
    let (code, report, landed) = env.restore("out-today", &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        std::fs::read_to_string(landed.join("state")).unwrap(),
        "written today"
    );
    let (code, _, stderr) = run_json(env.tv(&["drill", "--all"]));
    assert_eq!(code, 0, "{stderr}");
}
