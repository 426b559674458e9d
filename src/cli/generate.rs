//! `tapevault generate man DIR`: man pages from the clap definitions, so they never drift.

use super::args::{Cli, GenerateArgs};
use crate::error::{at, Error, Result};
use clap::CommandFactory;

/// Render every man page: `tapevault.1` and `tapevault-<command>.1`.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut top = Cli::command();
    top.build();
    let mut pages = Vec::new();
    pages.push(("tapevault.1".to_string(), render(top.clone())?));
    for sub in top
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("tapevault-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("tapevault {}", sub.get_name()));
        pages.push((format!("{name}.1"), render(page)?));
    }
    Ok(pages)
}

fn render(command: clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command)
        .date("2026-11-25")
        .source("tapevault")
        .manual("tapevault manual");
    man.render(&mut out)
        .map_err(|e| Error::usage(format!("man page: {e}")))?;
    out.extend_from_slice(EXIT_STATUS.as_bytes());
    Ok(out)
}

const EXIT_STATUS: &str = ".SH \"EXIT STATUS\"
.TP
0
ok
.TP
1
error; nothing half-done is trusted
.TP
2
usage error
.TP
3
done with warnings (some sources skipped, attributes not applied)
.TP
4
damage found: some data is missing or wrong; the report names every affected file
.TP
5
wrong key or passphrase
.TP
6
the vault is in use by another run
.SH ENVIRONMENT
.TP
TAPEVAULT_VAULT
the vault, when --vault is not given
.TP
TAPEVAULT_CATALOG
the catalog folder, when --catalog is not given
.TP
TAPEVAULT_PASSPHRASE
the passphrase, when --passphrase-file is not given
.TP
TAPEVAULT_NEW_PASSPHRASE
the new passphrase of key passwd and key import, when --new-passphrase-file is not given
";

/// Write the man pages into the folder given.
pub fn run(args: &GenerateArgs) -> Result<()> {
    if args.what != "man" {
        return Err(Error::usage(format!(
            "cannot generate {:?}; only 'man'",
            args.what
        )));
    }
    std::fs::create_dir_all(&args.dir).map_err(at("cannot create", &args.dir))?;
    for (name, bytes) in pages()? {
        let path = args.dir.join(name);
        std::fs::write(&path, bytes).map_err(at("cannot write", &path))?;
    }
    Ok(())
}
