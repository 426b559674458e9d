//! Many small files: what an incremental run costs when almost nothing changed.
//!
//! `cargo bench --bench small_files` writes a synthetic tree of one million small
//! files (1,000 folders of 1,000 files of 64 to 4,160 bytes; `TAPEVAULT_BENCH_FILES`
//! changes the count), then times the release binary on it: the first full backup, an
//! unchanged run (every file skipped by size, mtime, ctime and inode), and a nightly
//! after 1% of the files changed, with the catalog's size after each. A cheap key
//! derivation keeps the figures about the tree, not the passphrase.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const PER_FOLDER: usize = 1000;

fn main() {
    let files: usize = std::env::var("TAPEVAULT_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let scratch = tempfile::tempdir().expect("scratch folder");
    let tree = scratch.path().join("tree");
    let started = Instant::now();
    write_tree(&tree, files, 0);
    println!(
        "{files} files written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let vault = format!("dir:{}", scratch.path().join("vault").display());
    let catalog = scratch.path().join("catalog");
    let tapevault = |args: &[&str]| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_tapevault"))
            .args(args)
            .args(["--vault", &vault, "--catalog"])
            .arg(&catalog)
            .env("TAPEVAULT_PASSPHRASE", "bench-pass")
            .output()
            .expect("tapevault runs");
        assert!(
            out.status.success(),
            "tapevault {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed().as_secs_f64()
    };
    tapevault(&["init", "--kdf-memory", "8"]);
    let source = tree.to_str().expect("a UTF-8 scratch path");
    let catalog_mib = || {
        std::fs::metadata(catalog.join("catalog.sqlite"))
            .map(|m| m.len())
            .unwrap_or(0) as f64
            / (1 << 20) as f64
    };
    let step = |name: &str, seconds: f64| {
        println!(
            "{name:<20} {seconds:8.1} s  ({:6.0} files/s)  catalog {:8.1} MiB",
            files as f64 / seconds,
            catalog_mib()
        );
    };
    step("first full backup", tapevault(&["backup", source]));
    step("unchanged run", tapevault(&["backup", source]));
    write_tree(&tree, files / 100, 1);
    step("nightly, 1% changed", tapevault(&["backup", source]));
}

/// Write the first `count` files of the tree; `generation` changes their content.
fn write_tree(root: &Path, count: usize, generation: u64) {
    for n in 0..count {
        let folder = root.join(format!("d{:04}", n / PER_FOLDER));
        if n % PER_FOLDER == 0 {
            std::fs::create_dir_all(&folder).expect("folder");
        }
        let seed = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ generation;
        let len = 64 + (seed % 4097) as usize;
        let line = format!("file {n} generation {generation} {seed:x}\n");
        let body: Vec<u8> = line.bytes().cycle().take(len).collect();
        std::fs::write(folder.join(format!("f{n:07}.txt")), body).expect("file");
    }
}
