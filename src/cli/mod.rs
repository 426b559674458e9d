//! The command-line shell: parse → options → library call → render → exit code.
//!
//! The only code that knows clap, environment variables, terminals and
//! JSON output. Every failure is printed as one line on stderr.

mod args;
mod exit;
mod generate;
mod metrics;
mod profile;
mod progress;
mod render;
mod secret;

pub use args::Cli;
pub use generate::{completions, pages as man_pages};

use crate::catalog::{self, Catalog};
use crate::console::{errln, outln};
use crate::error::{Error, Result};
use crate::keys::KeySource;
use crate::vault::{self, Vault};
use args::{CatalogCommand, Command, Global, KeyCommand};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Check a command line (program name first) without running it: for tests of the
/// command lines shipped in docs/examples.
pub fn parse_only(args: &[&str]) -> std::result::Result<(), String> {
    Cli::try_parse_from(args)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Run the CLI with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let cli = match profile::apply(cli) {
        Ok(cli) => cli,
        Err(err) => {
            errln!("tapevault: error: {err}");
            return ExitCode::from(exit::for_error(err.kind()));
        }
    };
    let metrics_to = metrics_command(&cli.command)
        .zip(cli.global.metrics_file.clone())
        .map(|(command, path)| (command, path, cli.global.vault.clone().unwrap_or_default()));
    let started = std::time::Instant::now();
    let mut measured = metrics::RunMetrics::default();
    let mut code = match run(cli, &mut measured) {
        Ok(code) => code,
        Err(err) => {
            errln!("tapevault: error: {err}");
            exit::for_error(err.kind())
        }
    };
    // A reader that stopped early (`| head`) asked for no more: not a failure. Judged
    // before the metrics are written, so that they carry the exit code.
    if let Some(err) = crate::console::stdout_failure() {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            errln!("tapevault: error: cannot write the report to standard output: {err}");
            code = exit::at_least(code, exit::ERROR);
        }
    }
    if let Some((command, path, vault)) = metrics_to {
        let seconds = started.elapsed().as_secs_f64();
        if let Err(err) = metrics::write(&path, command, &vault, code, seconds, &measured) {
            errln!("tapevault: warning: metrics not written: {err}");
            code = exit::at_least(code, exit::WARNINGS);
        }
    }
    ExitCode::from(code)
}

/// The commands that report metrics, by the name the metrics carry.
fn metrics_command(command: &Command) -> Option<&'static str> {
    match command {
        Command::Backup(_) => Some("backup"),
        Command::Verify(_) => Some("verify"),
        Command::Drill(args) if !args.history => Some("drill"),
        _ => None,
    }
}

/// A vault open for writing, see [`Context::for_writing`].
struct Writing {
    vault: Box<dyn Vault>,
    catalog: Catalog,
    /// Still being derived when a run starts: a backup walks meanwhile.
    key: crate::keys::Unlocking,
    _locks: (crate::lock::RunLock, crate::lock::RunLock),
}

struct Context {
    global: Global,
    address: String,
    catalog_dir: PathBuf,
    /// Tape settings and where a drive or stream keeps its labels.
    options: vault::VaultOptions,
}

impl Context {
    fn new(global: Global) -> Result<Context> {
        let address = global.vault.clone().ok_or_else(|| {
            Error::usage("no vault given: pass --vault dir:/path or set TAPEVAULT_VAULT")
        })?;
        let catalog_dir = match &global.catalog {
            Some(dir) => dir.clone(),
            None => catalog::default_dir(&address)?,
        };
        let options = vault::VaultOptions {
            tape: crate::tape::TapeOptions {
                block_size: global
                    .block_size
                    .as_deref()
                    .map(parse_block_size)
                    .transpose()?,
                change_volume_command: global.change_volume_command.clone(),
                overwrite: false,
                drive_timeout: std::time::Duration::from_secs(global.drive_timeout),
            },
            meta_dir: Some(catalog_dir.join("vault")),
            ..vault::VaultOptions::default()
        };
        // Refuse an unusable address before anything else happens.
        vault::open_vault_with(&address, &options)?;
        Ok(Context {
            global,
            address,
            catalog_dir,
            options,
        })
    }

    fn vault(&self) -> Result<Box<dyn Vault>> {
        vault::open_vault_with(&self.address, &self.options)
    }

    fn catalog(&self) -> Result<Catalog> {
        let catalog = Catalog::open(&self.catalog_dir, &self.address)?;
        self.note_address(&catalog)?;
        Ok(catalog)
    }

    /// The catalog, refused when it belongs to another vault than the one addressed.
    fn catalog_for(&self, vault: &dyn Vault) -> Result<Catalog> {
        let mut catalog = Catalog::open(&self.catalog_dir, &self.address)?;
        crate::keys::check_catalog_matches(vault, &catalog)?;
        self.note_address(&catalog)?;
        for note in crate::rebuild::follow_renamed(vault, &mut catalog)? {
            errln!("tapevault: note: {note}");
        }
        Ok(catalog)
    }

    /// Everything a run that writes to the vault needs: the vault, its catalog, both
    /// writer locks (held while the returned value lives) and the unlocked key.
    fn for_writing(&self) -> Result<Writing> {
        self.for_writing_with(&vault::VaultOptions::default())
    }

    fn for_writing_with(&self, options: &vault::VaultOptions) -> Result<Writing> {
        let vault = vault::open_vault_with(&self.address, options)?;
        let catalog = self.catalog_for(vault.as_ref())?;
        let catalog_lock = catalog::lock(&self.catalog_dir)?;
        let vault_lock = vault.lock_writers()?;
        let key = crate::keys::Unlocking::start(&catalog, self.passphrase(false)?)?;
        Ok(Writing {
            vault,
            catalog,
            key,
            _locks: (catalog_lock, vault_lock),
        })
    }

    /// A catalog used under another address (a moved mount, a copied vault) is fine, but say so.
    fn note_address(&self, catalog: &Catalog) -> Result<()> {
        let info = catalog.vault_info()?;
        if info.address != self.address {
            errln!(
                "tapevault: note: catalog {} was made for {}, used here with {}",
                self.catalog_dir.display(),
                info.address,
                self.address
            );
        }
        Ok(())
    }

    fn passphrase(&self, confirm: bool) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        secret::passphrase(self.global.passphrase_file.as_deref(), confirm)
    }
}

fn run(cli: Cli, measured: &mut metrics::RunMetrics) -> Result<u8> {
    if let Command::Generate(args) = &cli.command {
        return generate::run(args).map(|()| exit::OK);
    }
    let mut global = cli.global;
    if let Command::Copy(args::CopyArgs {
        from: Some(from), ..
    }) = &cli.command
    {
        global.vault = Some(from.clone());
    }
    let ctx = Context::new(global)?;
    let out = render::Output {
        json: ctx.global.json,
        quiet: ctx.global.quiet,
        verbose: ctx.global.verbose,
    };
    match cli.command {
        Command::Init(args) => {
            let kdf = crate::crypto::KdfParams::new(
                args.kdf_memory.saturating_mul(1024),
                args.kdf_iterations,
                args.kdf_parallelism,
            )?;
            let passphrase = ctx.passphrase(true)?;
            vault::create_vault_home(&ctx.address)?;
            let vault = ctx.vault()?;
            let summary = crate::keys::init(vault.as_ref(), &ctx.catalog_dir, &passphrase, kdf)?;
            out.init(&summary, &ctx.address);
            Ok(exit::OK)
        }
        Command::Backup(args) => {
            if ctx.address == "-" {
                if args.verify_after_write {
                    return Err(Error::usage(
                        "--verify-after-write cannot read back a stream: verify where the stream is stored",
                    ));
                }
                vault::stream::claim_stdout()?;
            }
            let mut run = ctx.for_writing_with(&vault::VaultOptions {
                storage_class: args.s3.storage_class.clone(),
                object_lock: args.s3.object_lock(),
                tape: crate::tape::TapeOptions {
                    overwrite: args.overwrite,
                    ..ctx.options.tape.clone()
                },
                ..ctx.options.clone()
            })?;
            let excludes = args
                .exclude
                .iter()
                .map(|g| {
                    glob::Pattern::new(g).map_err(|e| Error::usage(format!("--exclude {g:?}: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            if args.paths.is_empty() {
                return Err(Error::usage(
                    "nothing to back up: give one or more PATHs, or a --profile with sources",
                ));
            }
            let options = crate::backup::BackupOptions {
                sources: args.paths,
                volume_size_bytes: match (&args.volume_size, args.media) {
                    (Some(size), _) => parse_size(size)?,
                    (None, Some(media)) => media.volume_bytes(),
                    (None, None) => parse_size("4G")?,
                },
                parity_percent: args.parity.unwrap_or(0),
                new_set: args.new_set,
                compression_level: args.compression_level,
                walk: crate::source::WalkOptions {
                    one_file_system: !args.cross_file_systems,
                    excludes,
                },
                tags: args.tag,
                verify_after_write: args.verify_after_write,
                threads: args.threads,
            };
            raise_open_files_limit();
            let shown = progress::Shown::new(&out, "backup");
            let stop = std::sync::atomic::AtomicBool::new(false);
            let summary = std::thread::scope(|scope| {
                if shown.wants_totals() {
                    scope.spawn(|| {
                        progress::estimate_backup(&options.sources, &options.walk, &shown, &stop)
                    });
                }
                let summary = crate::backup::backup(
                    run.vault.as_ref(),
                    &mut run.catalog,
                    &run.key,
                    &options,
                    &shown,
                );
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                summary
            });
            shown.finish();
            let summary = summary?;
            let stats = &summary.snapshot.stats;
            *measured = metrics::RunMetrics {
                bytes: stats.bytes,
                files: stats.files,
                volumes: summary.volumes_written.len() as u64,
                warnings: summary.warnings.len() as u64,
                damage: 0,
            };
            out.backup(&summary);
            Ok(exit::for_report(false, !summary.warnings.is_empty()))
        }
        Command::Snapshots => {
            let catalog = ctx.catalog()?;
            out.snapshots(&catalog.snapshots()?);
            Ok(exit::OK)
        }
        Command::Ls(args) => {
            let catalog = ctx.catalog()?;
            let snapshot = catalog.find_snapshot(&args.snapshot)?;
            let prefix = args.path.as_deref().map(crate::source::node_path);
            let mut nodes = Vec::new();
            catalog.for_each_node(&snapshot.id, |node| {
                let keep = match &prefix {
                    None => true,
                    Some(p) => {
                        node.path == *p
                            || (node.path.0.starts_with(&p.0)
                                && node.path.0.get(p.0.len()) == Some(&b'/'))
                    }
                };
                if keep {
                    nodes.push(node);
                }
                Ok(())
            })?;
            out.ls(&snapshot, &nodes);
            Ok(exit::OK)
        }
        Command::Restore(args) => {
            let catalog = ctx.catalog()?;
            if args.plan {
                // The plan is the catalog's; the vault, when it answers, says what is gone.
                let listing = ctx
                    .vault()
                    .and_then(|vault| vault.list())
                    .ok()
                    .filter(|listing| !listing.volumes_unlisted);
                let plan = crate::restore::plan(
                    &catalog,
                    &args.snapshot,
                    &args.include,
                    listing.as_ref(),
                )?;
                out.plan(&plan);
                return Ok(exit::OK);
            }
            let vault = ctx.vault()?;
            let catalog = ctx.catalog_for(vault.as_ref())?;
            // Derived while the restore plans; it waits for the key before it makes anything.
            let key = crate::keys::Unlocking::start(&catalog, ctx.passphrase(false)?)?;
            let options = crate::restore::RestoreOptions {
                snapshot: args.snapshot,
                target: args.target.expect("clap requires --target without --plan"),
                includes: args.include,
                overwrite: args.overwrite,
                copy_vaults: args.copy_vault,
            };
            let shown = progress::Shown::new(&out, "restore");
            let report = crate::restore::restore(vault.as_ref(), &catalog, &key, &options, &shown);
            shown.finish();
            let report = report?;
            out.restore(&report);
            Ok(exit::for_report(
                report.problems.has_damage(),
                report.problems.has_warnings(),
            ))
        }
        Command::Drill(args) => drill(&ctx, &out, args, measured),
        Command::Key(command) => key(&ctx, &out, command),
        Command::Volumes(args::VolumesArgs {
            action: Some(args::VolumesAction::Note { sequence, text }),
            ..
        }) => {
            let mut catalog = ctx.catalog()?;
            catalog.set_volume_note(sequence, &text)?;
            if !out.quiet && !out.json {
                outln!(
                    "volume #{sequence}: {}",
                    if text.is_empty() {
                        "note cleared"
                    } else {
                        &text
                    }
                );
            }
            Ok(exit::OK)
        }
        Command::Volumes(args) => {
            let catalog = ctx.catalog_for(ctx.vault()?.as_ref())?;
            let listing = ctx.vault()?.list()?;
            let volumes = if args.reclaimable {
                crate::prune::reclaimable(&catalog)?.0
            } else {
                catalog.volumes()?
            };
            out.volumes(
                &volumes,
                &listing,
                &catalog.copies()?,
                &catalog.volume_notes()?,
            );
            Ok(exit::OK)
        }
        Command::Forget(args) => {
            let policy = crate::retention::Policy {
                last: args.keep_last,
                hourly: args.keep_hourly,
                daily: args.keep_daily,
                weekly: args.keep_weekly,
                monthly: args.keep_monthly,
                yearly: args.keep_yearly,
                within_seconds: args
                    .keep_within
                    .as_deref()
                    .map(|d| {
                        humantime::parse_duration(d)
                            .map(|d| d.as_secs())
                            .map_err(|e| Error::usage(format!("--keep-within {d:?}: {e}")))
                    })
                    .transpose()?,
                tags: args.keep_tag,
                utc_offset_seconds: crate::retention::parse_utc_offset(&args.utc_offset)
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "--utc-offset {:?}: write it as +HH:MM or -HH:MM, or Z",
                            args.utc_offset
                        ))
                    })?,
            };
            let options = crate::prune::ForgetOptions {
                policy,
                hosts: args.host,
                tags: args.tag,
                dry_run: args.dry_run,
            };
            let mut run = ctx.for_writing()?;
            let report = crate::prune::forget(
                run.vault.as_ref(),
                &mut run.catalog,
                run.key.master_key()?,
                &options,
            )?;
            out.forget(&report);
            Ok(exit::for_report(false, !report.warnings.is_empty()))
        }
        Command::Consolidate(args) => {
            let volume_size = parse_size(args.volume_size.as_deref().unwrap_or("4G"))?;
            if volume_size < crate::backup::MIN_VOLUME_BYTES {
                return Err(Error::usage(format!(
                    "volume size {volume_size} is below the minimum of 4M"
                )));
            }
            let options = crate::prune::ConsolidateOptions {
                max_volumes: args.max_volumes,
                max_bytes: parse_size(&args.max_bytes)?,
                max_live_percent: args.max_live,
                volume_size,
                dry_run: args.dry_run,
            };
            let mut run = ctx.for_writing_with(&vault::VaultOptions {
                storage_class: args.s3.storage_class.clone(),
                object_lock: args.s3.object_lock(),
                ..ctx.options.clone()
            })?;
            let report = crate::prune::consolidate(
                run.vault.as_ref(),
                &mut run.catalog,
                run.key.master_key()?,
                &options,
            )?;
            out.consolidate(&report);
            let warnings = !report.unreadable.is_empty() || !report.notes.is_empty();
            Ok(exit::for_report(false, warnings))
        }
        Command::Prune(args) => {
            let mut run = ctx.for_writing()?;
            let report = crate::prune::prune(
                run.vault.as_ref(),
                &mut run.catalog,
                run.key.master_key()?,
                args.dry_run,
            )?;
            out.prune(&report);
            Ok(exit::for_report(false, !report.warnings.is_empty()))
        }
        Command::Copy(args) => {
            let from = ctx.vault()?;
            // A copy starts an empty destination, as init starts a vault.
            let to_options = vault::VaultOptions {
                storage_class: args.s3.storage_class.clone(),
                object_lock: args.s3.object_lock(),
                tape: ctx.options.tape.clone(),
                ..vault::VaultOptions::default()
            };
            vault::open_vault_with(&args.to, &to_options)?;
            vault::create_vault_home(&args.to)?;
            let to = vault::open_vault_with(&args.to, &to_options)?;
            let mut catalog = ctx.catalog_for(from.as_ref())?;
            let shown = progress::Shown::new(&out, "copy");
            let report = crate::copy::copy(&mut catalog, from.as_ref(), to.as_ref(), &shown);
            shown.finish();
            let report = report?;
            out.copy(&report);
            Ok(exit::for_report(!report.problems.is_empty(), false))
        }
        Command::Verify(args) => {
            let vault = ctx.vault()?;
            let mut catalog = ctx.catalog_for(vault.as_ref())?;
            if args.deep {
                let copies = args
                    .copy_vault
                    .iter()
                    .map(|address| vault::open_vault(address))
                    .collect::<Result<Vec<_>>>()?;
                let key = crate::keys::unlock(&catalog, &ctx.passphrase(false)?)?;
                let shown = progress::Shown::new(&out, "verify");
                let report = crate::verify::deep(
                    vault.as_ref(),
                    &mut catalog,
                    &key,
                    args.snapshot.as_deref(),
                    &copies,
                    &shown,
                );
                shown.finish();
                let report = report?;
                let volumes = &report.volumes;
                *measured = metrics::RunMetrics {
                    bytes: volumes.bytes_checked,
                    files: report.files_checked,
                    volumes: volumes.volumes_ok + volumes.damaged.len() as u64,
                    warnings: (volumes.abandoned.len()
                        + volumes.extra.len()
                        + report.warnings.len()) as u64,
                    damage: (volumes.missing.len()
                        + volumes.damaged.len()
                        + report.damaged_blobs.len()
                        + report.damaged_files.len()) as u64,
                };
                out.deep_verify(&report);
                return Ok(exit::for_report(report.has_damage(), report.has_warnings()));
            }
            let shown = progress::Shown::new(&out, "verify");
            let report = crate::verify::verify(vault.as_ref(), &mut catalog, &shown);
            shown.finish();
            let report = report?;
            *measured = metrics::RunMetrics {
                bytes: report.bytes_checked,
                files: 0,
                volumes: report.volumes_ok + report.damaged.len() as u64,
                warnings: (report.abandoned.len() + report.extra.len()) as u64,
                damage: (report.missing.len() + report.damaged.len()) as u64,
            };
            out.verify(&report);
            Ok(exit::for_report(report.has_damage(), report.has_warnings()))
        }
        Command::Catalog(CatalogCommand::Rebuild) => {
            let passphrase = ctx.passphrase(false)?;
            let vault = ctx.vault()?;
            let summary = if vault.sequential_only() {
                // A rebuild seeks to labels and indexes: the volumes are stored beside
                // the new catalog first, and removed after.
                let parent = ctx.catalog_dir.parent().unwrap_or(Path::new("."));
                std::fs::create_dir_all(parent)
                    .map_err(crate::error::at("cannot create", parent))?;
                let spool = tempfile::Builder::new()
                    .prefix(".tapevault-spool-")
                    .tempdir_in(parent)
                    .map_err(crate::error::at("cannot create a spool folder in", parent))?;
                let spooled = vault.spool(spool.path())?;
                crate::rebuild::rebuild(&spooled, &ctx.catalog_dir, &passphrase)?
            } else {
                crate::rebuild::rebuild(vault.as_ref(), &ctx.catalog_dir, &passphrase)?
            };
            out.rebuild(&summary, &ctx.catalog_dir);
            Ok(exit::for_report(false, !summary.problems.is_empty()))
        }
        Command::Generate(_) => unreachable!("handled above"),
    }
}

fn drill(
    ctx: &Context,
    out: &render::Output,
    args: args::DrillArgs,
    measured: &mut metrics::RunMetrics,
) -> Result<u8> {
    if args.history {
        out.drill_history(&ctx.catalog()?.drills()?);
        return Ok(exit::OK);
    }
    // A mistyped copy address is a usage error before the drill looks at anything.
    for address in &args.copy_vault {
        vault::open_vault(address)?;
    }
    let vault = ctx.vault()?;
    let options = crate::drill::DrillOptions {
        snapshot: args.snapshot,
        sample: (!args.all).then_some(args.sample),
        seed: args
            .seed
            .unwrap_or_else(|| u64::from_le_bytes(crate::ids::random_bytes())),
        scratch: args.scratch,
        copy_vaults: args.copy_vault,
    };
    // The history goes to the usual catalog; a from-scratch drill works without one.
    let mut catalog = match ctx.catalog_for(vault.as_ref()) {
        Ok(catalog) => Some(catalog),
        Err(err) if args.from_scratch => {
            errln!("tapevault: note: drill not recorded in a catalog: {err}");
            None
        }
        Err(err) => return Err(err),
    };
    // A from-scratch drill looks for the snapshot the catalog knows: not finding it is the finding.
    let mut options = options;
    if let Some(catalog) = &catalog {
        options.snapshot = catalog.find_snapshot(&options.snapshot)?.id.to_string();
    }
    let passphrase = ctx.passphrase(false)?;
    let shown = progress::Shown::new(out, "drill");
    let report = match &catalog {
        Some(catalog) if !args.from_scratch => {
            let key = crate::keys::unlock(catalog, &passphrase)?;
            crate::drill::drill(vault.as_ref(), catalog, &key, &options, &shown)
        }
        _ => crate::drill::drill_from_scratch(vault.as_ref(), &passphrase, &options, &shown),
    };
    shown.finish();
    let report = report?;
    let problems = &report.problems;
    *measured = metrics::RunMetrics {
        bytes: report.bytes_checked,
        files: report.files_checked,
        volumes: report.volumes_read.len() as u64,
        warnings: problems.warnings.len() as u64,
        damage: (problems.damaged.len() + problems.refused.len() + problems.volume_errors.len())
            as u64,
    };
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    if let Some(catalog) = catalog.as_mut() {
        catalog.record_drill(&report.record(), &json)?;
    }
    if let Some(path) = &args.report {
        write_atomically(path, json.as_bytes())?;
    }
    out.drill(&report);
    Ok(exit::for_report(report.has_damage(), report.has_warnings()))
}

fn key(ctx: &Context, out: &render::Output, command: KeyCommand) -> Result<u8> {
    let vault = ctx.vault()?;
    match command {
        KeyCommand::Export(_) => {
            let catalog = ctx.catalog_for(vault.as_ref())?;
            let key = crate::keys::unlock(&catalog, &ctx.passphrase(false)?)?;
            let paper = crate::paper::export(catalog.vault_info()?.vault_id, &key);
            out.paper(&paper);
        }
        KeyCommand::Import(args) => {
            let text = if args.paper.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| Error::io("cannot read", std::path::Path::new("stdin"), e))?
            } else {
                std::fs::read_to_string(&args.paper)
                    .map_err(|e| Error::io("cannot read paper key", &args.paper, e))?
            };
            let text = zeroize::Zeroizing::new(text);
            let new = secret::new_passphrase(args.new_passphrase_file.as_deref())?;
            let summary = crate::keys::import_paper(vault.as_ref(), &ctx.catalog_dir, &text, &new)?;
            out.key(&summary);
        }
        KeyCommand::Passwd(args) => {
            let mut catalog = ctx.catalog_for(vault.as_ref())?;
            let _lock = catalog::lock(&ctx.catalog_dir)?;
            let _writer = vault.lock_writers()?;
            let key = crate::keys::unlock(&catalog, &ctx.passphrase(false)?)?;
            let new = secret::new_passphrase(args.new_passphrase_file.as_deref())?;
            let summary = crate::keys::change_passphrase(vault.as_ref(), &mut catalog, &key, &new)?;
            out.key(&summary);
        }
    }
    Ok(exit::OK)
}

/// Write a report file whole or not at all: a temporary sibling, fsynced, renamed over.
pub(super) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(err) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io("cannot write report", path, err));
    }
    Ok(())
}

/// Parse a size like `4G`, `512M`, `18T` or `1048576` (binary units).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "size {text:?} is not a size: use a number with K, M, G or T, as in 4G"
        ))
    };
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let without_b = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match without_b.chars().last() {
        Some('K') => (&without_b[..without_b.len() - 1], 10),
        Some('M') => (&without_b[..without_b.len() - 1], 20),
        Some('G') => (&without_b[..without_b.len() - 1], 30),
        Some('T') => (&without_b[..without_b.len() - 1], 40),
        _ => (without_b, 0),
    };
    let number: u64 = digits.trim().parse().map_err(|_| bad())?;
    number.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// `--block-size`: a multiple of 512 bytes from 4K to 4M (what st and LTO drives take).
fn parse_block_size(text: &str) -> Result<usize> {
    let size = parse_size(text)?;
    if !(4096..=4 << 20).contains(&size) || size % 512 != 0 {
        return Err(Error::usage(format!(
            "--block-size {text}: use a multiple of 512 bytes from 4K to 4M, as in 256K"
        )));
    }
    Ok(size as usize)
}

/// The walk holds one folder open per level of the tree: the soft limit on open files
/// (often 1024) is raised to the hard one, as Go programs do when they start.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        // At worst the limit stays as it was, and a folder deeper than it is named
        // as skipped.
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("18T").unwrap(), 18 << 40);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        for bad in ["", "G", "4X", "-1M", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
