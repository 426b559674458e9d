//! Getting the passphrase: file, environment, or terminal prompt; never echoed or logged.

use crate::console::errln;
use crate::error::{Error, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The passphrase, from `--passphrase-file`, `TAPEVAULT_PASSPHRASE` or the terminal.
///
/// A file's one trailing newline (`\n` or `\r\n`) is dropped; nothing else is trimmed.
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
    let source = ("TAPEVAULT_PASSPHRASE", "--passphrase-file");
    obtain(file, source, "tapevault passphrase: ", confirm)
}

/// A new passphrase (`key passwd`, `key import`), from `--new-passphrase-file`,
/// `TAPEVAULT_NEW_PASSPHRASE` or the terminal (asked twice).
pub fn new_passphrase(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>> {
    let source = ("TAPEVAULT_NEW_PASSPHRASE", "--new-passphrase-file");
    obtain(file, source, "new passphrase: ", true)
}

fn obtain(
    file: Option<&Path>,
    (variable, flag): (&str, &str),
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<Vec<u8>>> {
    // Keys in memory must not end up in a core dump.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    if let Some(path) = file {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::io("cannot read passphrase file", path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            errln!(
                "tapevault: warning: passphrase file {} is readable by others (chmod 600 it)",
                path.display()
            );
        }
        let mut bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| Error::io("cannot read passphrase file", path, e))?,
        );
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        return Ok(bytes);
    }
    if let Some(value) = std::env::var_os(variable) {
        return Ok(Zeroizing::new(value.into_encoded_bytes()));
    }
    if !rustix::termios::isatty(std::io::stdin()) {
        return Err(Error::usage(format!(
            "no passphrase: set {variable} or pass {flag} (no terminal to ask on)"
        )));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(prompt)
            .map_err(|e| Error::usage(format!("cannot read passphrase: {e}")))?,
    );
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("repeat it: ")
                .map_err(|e| Error::usage(format!("cannot read passphrase: {e}")))?,
        );
        if *first != *second {
            return Err(Error::usage("the two passphrases differ"));
        }
    }
    Ok(Zeroizing::new(first.as_bytes().to_vec()))
}
