//! `--profile NAME`: named settings from a TOML file, so that a cron line stays short.
//!
//! Flags and environment variables win over the profile; the profile wins over
//! built-in defaults. Unknown keys are refused, so a typo never silently drops
//! a setting. Without `--profile` no file is read.

use super::args::{Cli, Command};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One named profile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    vault: Option<String>,
    catalog: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
    #[serde(default)]
    sources: Vec<PathBuf>,
    #[serde(default)]
    exclude: Vec<String>,
    volume_size: Option<String>,
    parity: Option<u8>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// `$XDG_CONFIG_HOME/tapevault/config.toml`, else `~/.config/tapevault/config.toml`.
fn default_config() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    Error::usage("neither XDG_CONFIG_HOME nor HOME is set: pass --config FILE")
                })?,
        )
        .join(".config"),
    };
    Ok(base.join("tapevault/config.toml"))
}

fn load(config: Option<&Path>, name: &str) -> Result<Profile> {
    let path = match config {
        Some(path) => path.to_path_buf(),
        None => default_config()?,
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read config", &path, e))?;
    let mut file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1)
            .unwrap_or(1);
        Error::usage(format!(
            "config {} line {line}: {}",
            path.display(),
            e.message().trim()
        ))
    })?;
    file.profiles.remove(name).ok_or_else(|| {
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        Error::usage(format!(
            "no profile {name:?} in {} (it has: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// Fill what the command line left unset from `--profile`, if one is named.
pub fn apply(mut cli: Cli) -> Result<Cli> {
    let Some(name) = cli.global.profile.clone() else {
        return Ok(cli);
    };
    let profile = load(cli.global.config.as_deref(), &name)?;
    let global = &mut cli.global;
    global.vault = global.vault.take().or(profile.vault);
    global.catalog = global.catalog.take().or(profile.catalog);
    global.passphrase_file = global.passphrase_file.take().or(profile.passphrase_file);
    global.metrics_file = global.metrics_file.take().or(profile.metrics_file);
    if let Command::Backup(args) = &mut cli.command {
        if args.paths.is_empty() {
            args.paths = profile.sources;
        }
        if args.exclude.is_empty() {
            args.exclude = profile.exclude;
        }
        if args.tag.is_empty() {
            args.tag = profile.tags;
        }
        args.volume_size = args.volume_size.take().or(profile.volume_size);
        args.parity = args.parity.or(profile.parity);
    }
    Ok(cli)
}
