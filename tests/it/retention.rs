//! Forget and prune: never delete what a kept snapshot needs; a crash at any step
//! leaves a vault that verifies and a rerun that completes.

use crate::util::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use tapevault::vault::{Listing, Vault, VolumeSink};

/// Three runs: `a` alone (two volumes or more), then `b` instead of `a`, then
/// unchanged. Returns the env and the volumes each run wrote.
fn three_runs() -> (Env, Vec<BTreeSet<String>>) {
    let env = Env::new();
    let mut written: Vec<BTreeSet<String>> = Vec::new();
    for (name, seed, size) in [("a", 1, 7 << 20), ("b", 2, 3 << 20), ("b", 2, 3 << 20)] {
        for entry in std::fs::read_dir(env.src()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        std::fs::write(env.src().join(name), noise(size, seed)).unwrap();
        let summary = env.backup(&[]);
        written.push(
            summary["volumes_written"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
        );
    }
    assert!(written[0].len() >= 2, "{written:?}");
    (env, written)
}

fn names(report: &serde_json::Value, field: &str) -> BTreeSet<String> {
    report[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

fn vault_files(env: &Env) -> BTreeSet<String> {
    env.volumes()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn prune_after_forget_frees_exactly_the_unneeded_volumes_and_keeps_restores_exact() {
    let (env, written) = three_runs();
    let (code, report, stderr) =
        run_json(env.tv(&["forget", "--keep-last", "1", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        (report["kept"].as_u64(), report["removed"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(report["decisions"][2]["reasons"][0], "last");
    let (_, list, _) = run_json(env.tv(&["snapshots", "--json"]));
    assert_eq!(
        list["snapshots"].as_array().unwrap().len(),
        3,
        "dry run changed nothing"
    );

    let (code, report, stderr) = run_json(env.tv(&["forget", "--keep-last", "1", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(report["record"].as_str().unwrap().starts_with("forget-"));
    let (_, list, _) = run_json(env.tv(&["snapshots", "--json"]));
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1);

    // The kept (third) snapshot uses b, stored by the second run: only the first
    // run's volumes are free.
    let (code, reclaimable, _) = run_json(env.tv(&["volumes", "--reclaimable", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(names(&reclaimable, "volumes"), written[0]);
    let before = vault_files(&env);
    let (code, plan, stderr) = run_json(env.tv(&["prune", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(&plan, "volumes"), written[0]);
    assert_eq!(vault_files(&env), before, "a dry run deletes nothing");

    let (code, done, stderr) = run_json(env.tv(&["prune", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(&done, "volumes"), written[0]);
    let after = vault_files(&env);
    assert!(after.is_disjoint(&written[0]), "{after:?}");
    assert_eq!(after.len(), before.len() - written[0].len());
    // Nothing is reported missing, everything kept restores exactly.
    let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
    assert_eq!(code, 0, "{verify}");
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let (code, again, _) = run_json(env.tv(&["prune", "--json"]));
    assert_eq!((code, again["volumes"].as_array().unwrap().len()), (0, 0));

    // The vault alone knows what was forgotten and pruned: a rebuilt catalog has the
    // one kept snapshot, reports no lost volume, and restores exactly.
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
    let rebuilt = env.path("rebuilt");
    let (code, report, landed) =
        env.restore("out-rebuilt", &["--catalog", rebuilt.to_str().unwrap()]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}

#[test]
fn forget_refuses_to_remove_everything_and_bad_rules_are_usage_errors() {
    let (env, _) = three_runs();
    for args in [
        &["forget"][..],
        &["forget", "--keep-within", "soon"],
        &["forget", "--keep-daily", "1", "--utc-offset", "01:00"],
    ] {
        let (code, _, stderr) = run_json(env.tv(args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let (_, list, _) = run_json(env.tv(&["snapshots", "--json"]));
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 3);
}

#[test]
fn t30_t63_no_clock_and_no_empty_listing_ever_deletes_anything() {
    let (env, _) = three_runs();
    // Far in the future, "within a day" still counts from the newest snapshot.
    let (code, stderr) = at_time(
        &env,
        "2100-01-01 00:00:00",
        &["forget", "--keep-within", "1d"],
    );
    assert_eq!(code, 0, "{stderr}");
    let (_, list, _) = run_json(env.tv(&["snapshots", "--json"]));
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 3);
    // The disk is not mounted: the folder is empty. Nothing is planned or written.
    let away = env.path("vault-away");
    std::fs::rename(env.vault_dir(), &away).unwrap();
    std::fs::create_dir(env.vault_dir()).unwrap();
    for args in [&["forget", "--keep-last", "1"][..], &["prune"]] {
        let (code, _, stderr) = run_json(env.tv(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains("is it mounted"), "{stderr}");
        assert_eq!(std::fs::read_dir(env.vault_dir()).unwrap().count(), 0);
    }
    std::fs::remove_dir(env.vault_dir()).unwrap();
    std::fs::rename(&away, env.vault_dir()).unwrap();
    let (code, _, stderr) = run_json(env.tv(&["verify"]));
    assert_eq!(code, 0, "{stderr}");
}

/// A dir vault that dies at a chosen step: after sealing an object whose name starts
/// with `die_after_sealing` (before the catalog hears of it), or at the n-th deletion.
struct DyingVault {
    inner: Box<dyn Vault>,
    die_after_sealing: Option<&'static str>,
    deletions_left: AtomicI64,
}

struct DyingSink {
    inner: Box<dyn VolumeSink>,
    die: bool,
}

impl std::io::Write for DyingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl VolumeSink for DyingSink {
    fn seal(self: Box<Self>) -> tapevault::error::Result<()> {
        self.inner.seal()?;
        if self.die {
            return Err(tapevault::error::Error::new(
                tapevault::error::ErrorKind::Io,
                "power cut after sealing, before the catalog heard of it (injected)",
            ));
        }
        Ok(())
    }
}

impl Vault for DyingVault {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn list(&self) -> tapevault::error::Result<Listing> {
        self.inner.list()
    }
    fn create(&self, name: &str, max_len: u64) -> tapevault::error::Result<Box<dyn VolumeSink>> {
        Ok(Box::new(DyingSink {
            inner: self.inner.create(name, max_len)?,
            die: self
                .die_after_sealing
                .is_some_and(|prefix| name.starts_with(prefix)),
        }))
    }
    fn open(&self, name: &str) -> tapevault::error::Result<Box<dyn std::io::Read + Send>> {
        self.inner.open(name)
    }
    fn read_range(
        &self,
        name: &str,
        offset: u64,
        len: u64,
    ) -> tapevault::error::Result<(u64, Vec<u8>)> {
        self.inner.read_range(name, offset, len)
    }
    fn delete(&self, name: &str) -> tapevault::error::Result<()> {
        if self.deletions_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(tapevault::error::Error::new(
                tapevault::error::ErrorKind::Io,
                "power cut during deletion (injected)",
            ));
        }
        self.inner.delete(name)
    }
    fn lock_writers(&self) -> tapevault::error::Result<tapevault::lock::RunLock> {
        self.inner.lock_writers()
    }
}

#[test]
fn a_prune_stopped_at_any_step_leaves_a_vault_that_verifies_and_a_rerun_completes() {
    // Die after the record, before the first deletion, and after one deletion.
    for (case, die_after_sealing, deletions) in [
        ("after the record", Some("prune-"), i64::MAX),
        ("before deleting", None, 0),
        ("after one deletion", None, 1),
    ] {
        let (env, written) = three_runs();
        env.tv(&["forget", "--keep-last", "1"]).assert().success();
        let vault = DyingVault {
            inner: tapevault::vault::open_vault(&format!("dir:{}", env.vault_dir().display()))
                .unwrap(),
            die_after_sealing,
            deletions_left: AtomicI64::new(deletions),
        };
        {
            let mut catalog =
                tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
            let key = tapevault::keys::unlock(&catalog, PASSPHRASE.as_bytes()).unwrap();
            let err = tapevault::prune::prune(&vault, &mut catalog, &key, false)
                .expect_err("the injected fault stops the prune");
            assert!(err.to_string().contains("injected"), "{case}: {err}");
        }
        // What is left verifies, restores exactly, and rebuilds without a lost volume.
        let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
        assert_eq!(code, 0, "{case}: {verify}");
        let (code, report, landed) = env.restore("out", &[]);
        assert_eq!(code, 0, "{case}: {report}");
        assert_same_tree(&env.src(), &landed);
        let (code, _, stderr) = rebuild_into(&env, "rebuilt");
        assert_eq!(code, 0, "{case}: {stderr}");
        // The next prune finishes the job.
        let (code, _, stderr) = run_json(env.tv(&["prune"]));
        assert_eq!(code, 0, "{case}: {stderr}");
        assert!(vault_files(&env).is_disjoint(&written[0]), "{case}");
        let (code, verify, _) = run_json(env.tv(&["verify", "--json"]));
        assert_eq!(code, 0, "{case}: {verify}");
    }
}

#[test]
fn a_new_set_restores_with_every_volume_of_other_sets_removed() {
    let env = Env::new();
    std::fs::write(env.src().join("a"), noise(3 << 20, 11)).unwrap();
    let first = env.backup(&[]);
    std::fs::write(env.src().join("b"), noise(1 << 20, 12)).unwrap();
    // The weekly full: everything stored again, depending on no earlier volume.
    let full = env.backup(&["--new-set"]);
    let stats = &full["snapshot"]["stats"];
    assert!(
        stats["bytes_added"].as_u64().unwrap() >= 4 << 20,
        "a new set stores everything again: {full}"
    );
    // A nightly after it joins the new set and deduplicates within it.
    let nightly = env.backup(&[]);
    assert_eq!(nightly["snapshot"]["stats"]["bytes_added"], 0, "{nightly}");
    let (_, volumes, _) = run_json(env.tv(&["volumes", "--json"]));
    let first_set: BTreeSet<String> = first["volumes_written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let sets: Vec<(String, u64)> = volumes["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["volume_set"].as_u64().unwrap(),
            )
        })
        .collect();
    let new_set = sets
        .iter()
        .find(|(name, _)| !first_set.contains(name))
        .unwrap()
        .1;
    for (name, set) in &sets {
        assert_eq!(*set == 1, first_set.contains(name), "{sets:?}");
        if !first_set.contains(name) {
            assert_eq!(*set, new_set, "{sets:?}");
        }
    }
    let (_, plan, _) = run_json(env.tv(&["restore", "--plan", "--json"]));
    for volume in plan["volumes"].as_array().unwrap() {
        assert_eq!(volume["volume_set"], new_set, "{plan}");
    }
    // The offsite set alone: every volume of the first set is gone.
    for name in &first_set {
        std::fs::remove_file(env.vault_dir().join(name)).unwrap();
    }
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    // A rebuild from the new set alone knows the sets too.
    let (code, _, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 3, "the first set is reported missing: {stderr}");
    let rebuilt = env.path("rebuilt");
    let (_, volumes, _) =
        run_json(env.tv(&["volumes", "--json", "--catalog", rebuilt.to_str().unwrap()]));
    for volume in volumes["volumes"].as_array().unwrap() {
        assert_eq!(volume["volume_set"], new_set, "{volumes}");
    }
}

/// Run 1 writes four files; run 2 keeps only the last of them (plus a new one), and
/// run 1 is forgotten: its volumes are mostly dead. Returns them.
fn mostly_dead_first_run(env: &Env) -> BTreeSet<String> {
    for i in 0..4 {
        std::fs::write(env.src().join(format!("old{i}")), noise(700 << 10, 30 + i)).unwrap();
    }
    let first = env.backup(&[]);
    for i in 0..3 {
        std::fs::remove_file(env.src().join(format!("old{i}"))).unwrap();
    }
    std::fs::write(env.src().join("new"), noise(500 << 10, 40)).unwrap();
    env.backup(&[]);
    env.tv(&["forget", "--keep-last", "1"]).assert().success();
    first["volumes_written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn consolidate_then_prune_frees_mostly_dead_volumes_and_restores_stay_exact() {
    let env = Env::new();
    let first_volumes = mostly_dead_first_run(&env);
    // Still needed for old3: prune alone cannot free it.
    let (_, plan, _) = run_json(env.tv(&["prune", "--dry-run", "--json"]));
    assert!(
        names(&plan, "volumes").is_disjoint(&first_volumes),
        "{plan}"
    );

    let (code, dry, stderr) = run_json(env.tv(&["consolidate", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(&dry, "volumes"), first_volumes, "{dry}");
    assert!(dry["written"].as_array().unwrap().is_empty());
    let (code, done, stderr) = run_json(env.tv(&[
        "consolidate",
        "--json",
        "--max-volumes",
        "4",
        "--volume-size",
        "4M",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(&done, "volumes"), first_volumes, "{done}");
    assert!(!done["written"].as_array().unwrap().is_empty(), "{done}");
    // Now prune frees the first run's volumes, and everything kept is exact.
    let (code, pruned, stderr) = run_json(env.tv(&["prune", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names(&pruned, "volumes"), first_volumes, "{pruned}");
    assert!(vault_files(&env).is_disjoint(&first_volumes));
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    let (code, verify, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 0, "{verify}");
    let (code, summary, stderr) = rebuild_into(&env, "rebuilt");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["snapshots"], 1, "{summary}");
}

#[test]
fn a_consolidation_stopped_after_sealing_a_volume_is_finished_by_the_next_runs() {
    let env = Env::new();
    let first_volumes = mostly_dead_first_run(&env);
    let vault = DyingVault {
        inner: tapevault::vault::open_vault(&format!("dir:{}", env.vault_dir().display())).unwrap(),
        die_after_sealing: Some("tv"),
        deletions_left: AtomicI64::new(i64::MAX),
    };
    {
        let mut catalog = tapevault::catalog::Catalog::open(&env.path("catalog"), "test").unwrap();
        let key = tapevault::keys::unlock(&catalog, PASSPHRASE.as_bytes()).unwrap();
        let options = tapevault::prune::ConsolidateOptions {
            max_volumes: 4,
            max_bytes: u64::MAX,
            max_live_percent: 50,
            volume_size: 4 << 20,
            dry_run: false,
        };
        let err = tapevault::prune::consolidate(&vault, &mut catalog, &key, &options)
            .expect_err("the injected power cut stops the run");
        assert!(err.to_string().contains("injected"), "{err}");
    }
    // Nothing is lost: the kept snapshot restores exactly from where the catalog says.
    let (code, report, landed) = env.restore("out", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
    // The next consolidation records the sealed orphan (exit 3, saying so) and goes on;
    // prune then frees the old volumes.
    let (code, done, stderr) = run_json(env.tv(&["consolidate", "--json", "--volume-size", "4M"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(done["notes"].to_string().contains("recorded now"), "{done}");
    let (code, _, stderr) = run_json(env.tv(&["prune"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(vault_files(&env).is_disjoint(&first_volumes));
    let (code, verify, _) = run_json(env.tv(&["verify", "--deep", "--json"]));
    assert_eq!(code, 0, "{verify}");
    let (code, report, landed) = env.restore("out-after", &[]);
    assert_eq!(code, 0, "{report}");
    assert_same_tree(&env.src(), &landed);
}
