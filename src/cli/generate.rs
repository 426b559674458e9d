//! `tapevault generate man DIR`: man pages from the clap definitions, so they never drift.

use super::args::{Cli, GenerateArgs};
use crate::error::{at, Error, Result};
use clap::CommandFactory;

/// Render every man page: `tapevault.1` and `tapevault-<command>.1`.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut top = Cli::command();
    top.build();
    let mut pages = Vec::new();
    pages.push(("tapevault.1".to_string(), render(top.clone(), "")?));
    for sub in top
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("tapevault-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("tapevault {}", sub.get_name()));
        pages.push((format!("{name}.1"), render(page, sub.get_name())?));
    }
    Ok(pages)
}

/// Hand-written EXAMPLES for each page (roff), keyed by subcommand ("" = the top page).
fn examples(command: &str) -> &'static [(&'static str, &'static str)] {
    match command {
        "" => &[
            ("Start a vault and back up every night from cron", "tapevault init --vault dir:/mnt/offsite\n15 2 * * * tapevault backup --profile nightly"),
            ("Prove last night's backup restores", "tapevault drill --profile nightly --sample 200"),
        ],
        "init" => &[("A vault on a removable disk", "tapevault init --vault dir:/media/offsite/vault")],
        "backup" => &[
            ("Back up two trees into 4 GiB volumes", "tapevault backup /etc /srv --volume-size 4G --exclude '*.tmp'"),
            ("To LTO-9 cartridges, a script loading each next one", "tapevault backup /srv --vault tape:/dev/nst0 --media lto-9 --change-volume-command '/usr/local/bin/load-next %n'"),
            ("Rehearse the tape run on an emulated library", "tapevault backup /srv --vault tape:/var/lib/vtl --volume-size 64M"),
            ("Through a buffer to a drive another tool owns", "tapevault backup /srv --vault - --volume-size 2T | mbuffer -m 4G | dd of=/dev/nst0 bs=256k"),
            ("From cron, with settings in a profile and metrics for Prometheus", "tapevault backup --profile nightly --metrics-file /var/lib/node_exporter/textfile/tapevault.prom"),
        ],
        "snapshots" => &[("Every snapshot, as JSON", "tapevault snapshots --json")],
        "ls" => &[("What the latest snapshot holds under /srv/app", "tapevault ls latest /srv/app")],
        "restore" => &[
            ("Which volumes a restore needs, in order", "tapevault restore latest --include /srv/db --plan"),
            ("Which cartridges, in which order, how many bytes", "tapevault restore --include /srv/db --plan --json --vault tape:/dev/nst0"),
            ("From a stream written by dd", "dd if=/dev/nst0 bs=256k | tapevault restore --vault - --target /restore"),
            ("Restore one tree into an empty folder", "tapevault restore latest --target /restore --include /srv/db"),
        ],
        "verify" => &[
            ("Weekly, on a machine without the key", "tapevault verify --vault dir:/mnt/offsite"),
            ("Monthly, every blob and file", "tapevault verify --deep --metrics-file /var/lib/node_exporter/textfile/tapevault-verify.prom"),
        ],
        "drill" => &[
            ("A weekly sample with a saved report", "tapevault drill --sample 200 --report /var/log/tapevault/drill.json"),
            ("The site-burned rehearsal", "tapevault drill --all --from-scratch --scratch /srv/scratch"),
            ("Past drills", "tapevault drill --history"),
        ],
        "catalog" => &[
            ("The catalog was lost: build a new one", "tapevault catalog rebuild --catalog /var/lib/tapevault/new"),
            ("From cartridges in a lone drive, loaded by a changer", "tapevault catalog rebuild --vault tape:/dev/nst0 --change-volume-command 'mtx load %n 0'"),
            ("From a stream", "dd if=/dev/nst0 bs=256k | tapevault catalog rebuild --vault -"),
        ],
        "key" => &[
            ("Print a paper key to keep offline", "tapevault key export --paper | lp"),
            ("The passphrase is lost", "tapevault key import --paper sheet.txt"),
            ("Change the passphrase", "tapevault key passwd --new-passphrase-file /root/new-pass"),
        ],
        "volumes" => &[
            ("Volumes and their state", "tapevault volumes"),
            ("Say where a cartridge is kept", "tapevault volumes note 12 'offsite vault B, box 12'"),
        ],
        _ => &[],
    }
}

const TAPE: &str = ".SH TAPE
One volume goes on one cartridge, in three parts separated by filemarks: the
label, the data (packs) and the index, then a second filemark. Each part starts
with a 512-byte part header and ends with a trailer giving its exact length, so
the label and the index are reached by spacing over filemarks (MTFSF) without
reading the data, and a volume has the same bytes and BLAKE3 on tape as on disk.
.PP
tape:/dev/nstN is a Linux st drive (always the non-rewinding device). tapevault
uses two ioctls: MTIOCTOP for MTREW (rewind), MTWEOF (write filemarks), MTFSF
(space over filemarks), MTFSR (step over an unreadable block) and MTSETBLK (fixed
block size for writing, 0 = variable to find the size when reading), and
MTIOCGET for the status (online, write-protected, early warning). Check a drive
with mt -f /dev/nst0 status before a run.
.PP
Writes use --block-size blocks (256K unless given). When the drive reports early
warning (st answers ENOSPC once), the pack being written is finished and the
index written in the reserve, and the next cartridge is asked for; a second
ENOSPC in a row is the physical end: that volume is abandoned and the run exits 1.
A cartridge is asked for by --change-volume-command, else on the terminal, else
the run stops with exit 1 (cron never waits). A cartridge whose label names a live
volume is never written without --overwrite; one whose volume prune removed is
scratch and reused. On restore a wrong cartridge is named with the one needed. A lone drive cannot
list its cartridges: catalog rebuild asks for each in turn (any order; %n counts
them, and a change command that fails ends the list, as Ctrl-D does on the
terminal) and reads them into a folder beside the new catalog.
A block that cannot be read is stepped over and read as zeros: parity rebuilds
it, or the files it held are named. With --verify-after-write each volume is read
back as soon as it is sealed; one that differs is recorded damaged and its data
written again to the next cartridge in the same run (exit 3). A drive that is
becoming ready (loading, calibrating a new cartridge) is waited for, and a change
command allowed to run, up to --drive-timeout seconds (600), then exit 1.
.PP
tape:DIR is an emulated library for rehearsals and tests: DIR/NAME.cart is one
cartridge, DIR/drive names the one loaded (a change command may write it),
DIR/library.json sets capacity, early_warning, write_protected, autoload and
read_errors, and DIR/drive.log records every load, rewind, spacing and block read.
.PP
- is a stream: backup writes its volumes one after another to stdout (reports
go to stderr) and restore reads them from stdin in sequence order; a stream
padded to whole blocks (dd bs=256k conv=sync iflag=fullblock) reads back. A
stream cannot seek, so catalog rebuild first stores it in a folder beside the new
catalog (room for the whole stream is needed) and removes it when done.
";

const FILES: &str = ".SH FILES
.TP
$XDG_STATE_HOME/tapevault/HASH/catalog.sqlite
the catalog of the vault whose address hashes to HASH (see --catalog)
.TP
$XDG_CONFIG_HOME/tapevault/config.toml
profiles for --profile: [profiles.NAME] tables with vault, catalog, passphrase_file,
metrics_file, sources, exclude, volume_size and tags
.TP
VAULT/tvNNNNNN-XXXXXXXX.tar
a sealed volume; VAULT/*.partial is an unfinished one and never trusted
.TP
VAULT/vault.tvl, VAULT/vault-XXXXXXXX.tvl
key labels: the vault id and the master key wrapped by a passphrase
";

fn render(command: clap::Command, name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(command)
        .date("2026-11-25")
        .source("tapevault")
        .manual("tapevault manual");
    man.render(&mut out)
        .map_err(|e| Error::usage(format!("man page: {e}")))?;
    let examples = examples(name);
    if !examples.is_empty() {
        out.extend_from_slice(b".SH EXAMPLES\n");
        for (what, how) in examples {
            let how = how.replace('\\', "\\e").replace('\n', "\n.br\n");
            out.extend_from_slice(format!(".TP\n{what}\n{how}\n").as_bytes());
        }
    }
    if matches!(
        name,
        "" | "backup" | "restore" | "volumes" | "catalog" | "copy"
    ) {
        out.extend_from_slice(TAPE.as_bytes());
    }
    out.extend_from_slice(FILES.as_bytes());
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
done with warnings (some sources skipped, attributes not applied, damage repaired from parity)
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
.TP
TAPEVAULT_CHANGE_VOLUME_COMMAND
the command that loads the next cartridge, when --change-volume-command is not given;
it sees TAPEVAULT_SEQUENCE and TAPEVAULT_VOLUME
.TP
XDG_STATE_HOME, XDG_CONFIG_HOME
where catalogs and the config file live by default
";

/// Shell completion scripts: bash, zsh and fish.
pub fn completions() -> Vec<(String, Vec<u8>)> {
    use clap_complete::Shell;
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "tapevault", &mut out);
            let name = match shell {
                Shell::Bash => "tapevault.bash",
                Shell::Zsh => "_tapevault",
                _ => "tapevault.fish",
            };
            (name.to_string(), out)
        })
        .collect()
}

/// Write the man pages or completion scripts into the folder given.
pub fn run(args: &GenerateArgs) -> Result<()> {
    let files = match args.what.as_str() {
        "man" => pages()?,
        "completions" => completions(),
        other => {
            return Err(Error::usage(format!(
                "cannot generate {other:?}: use man or completions"
            )))
        }
    };
    std::fs::create_dir_all(&args.dir).map_err(at("cannot create", &args.dir))?;
    for (name, bytes) in files {
        let path = args.dir.join(name);
        std::fs::write(&path, bytes).map_err(at("cannot write", &path))?;
    }
    Ok(())
}
