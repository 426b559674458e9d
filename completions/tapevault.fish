# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tapevault_global_optspecs
    string join \n vault= catalog= passphrase-file= profile= config= metrics-file= json q/quiet v/verbose h/help V/version
end

function __fish_tapevault_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tapevault_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tapevault_using_subcommand
    set -l cmd (__fish_tapevault_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tapevault -n "__fish_tapevault_needs_command" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_needs_command" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_needs_command" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_needs_command" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_needs_command" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_needs_command" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_needs_command" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_needs_command" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_needs_command" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_needs_command" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_needs_command" -s V -l version -d 'Print version'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "init" -d 'Create a new vault and its catalog, with a fresh random key wrapped by your passphrase'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "backup" -d 'Back up files and folders into new volumes of the vault'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "snapshots" -d 'List the snapshots in the catalog, oldest first'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "ls" -d 'List the entries of a snapshot'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "restore" -d 'Restore a snapshot (or parts of it) into a folder, checking every byte'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "volumes" -d 'List the volumes of the vault and their state'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "forget" -d 'Forget snapshots by a keep policy (grandfather-father-son); prune then frees space'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "prune" -d 'Delete the volumes that no kept snapshot needs (run after forget)'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "consolidate" -d 'Copy the still-used blobs out of mostly-unused volumes, so prune can delete them'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "copy" -d 'Copy sealed volumes to a second vault (another disk, a bucket, another site)'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "verify" -d 'Check every volume\'s bytes against the catalog (no passphrase needed), or with --deep every blob and file; exit 4 names missing or damaged volumes and files'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "drill" -d 'Prove a restore works: restore a sample (or all) of a snapshot into scratch space, check every byte, report timings and an RTO estimate, and record the outcome'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "catalog" -d 'Catalog maintenance (rebuild from the vault after the catalog was lost)'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "key" -d 'Key management: paper key export and import, passphrase change'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "generate" -d 'Generate man pages (for packaging)'
complete -c tapevault -n "__fish_tapevault_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l kdf-memory -d 'argon2id memory in MiB for deriving the key from the passphrase (at least 8)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l kdf-iterations -d 'argon2id passes' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l kdf-parallelism -d 'argon2id lanes' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l volume-size -d 'Largest volume to write, with K/M/G/T suffix (binary units; at least 4M) [default: 4G, or from --media]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l media -d 'Size volumes for one cartridge of this LTO generation: 95% of its native (uncompressed) capacity, leaving room for the early-warning zone and the index; --volume-size overrides it' -r -f -a "lto-5\t'1.5 TB native'
lto-6\t'2.5 TB native'
lto-7\t'6 TB native'
lto-8\t'12 TB native'
lto-9\t'18 TB native'
lto-10\t'30 TB native'"
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l parity -d 'Reed-Solomon parity inside each volume, in percent (0 = none, at most 50). Damage in one place of up to P% of a 16 MiB segment, less one 64 KiB shard (1.5 MiB at 10), is rebuilt on read, and restore, verify and drill exit 3 naming what they repaired. [default: 0 for dir: vaults, which belong on redundant disks]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l storage-class -d 'S3 storage class of the new volumes (STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE, ...). Volumes in GLACIER or DEEP_ARCHIVE must be rehydrated (S3 RestoreObject) before a restore can read them; restore names each one it needs [default: the bucket\'s]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l compression-level -d 'zstd level, 1 (fast) to 19 (small)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l exclude -d 'Skip entries whose path or name matches this glob (repeatable), e.g. \'*.tmp\'' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l tag -d 'Tag the snapshot (repeatable)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l threads -d 'Worker threads [default: one per core]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l new-set -d 'Start an independent volume set: store everything again, deduplicating against no earlier volume, so this set alone restores this snapshot (the weekly offsite full of a rotation). Later backups join the newest set'
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l cross-file-systems -d 'Descend into other filesystems mounted below the sources'
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand snapshots" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand ls" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l target -d 'Folder to restore into; the snapshot\'s absolute paths are recreated below it' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l include -d 'Restore only this absolute path and what is below it (repeatable)' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l copy-vault -d 'A vault holding copies of the same volumes (a second disk, another site), read for any volume that is missing or damaged here; repeatable, tried in order' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l overwrite -d 'Replace entries that already exist in the target (symlinks are replaced, never followed)'
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l plan -d 'Only print which volumes would be read, in order, and how many bytes; restore nothing'
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand restore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l reclaimable -d 'Only the volumes no kept snapshot needs (what prune would delete)'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -f -a "note" -d 'Record where a volume (a cartridge, a disk) is kept, e.g. "offsite vault B, box 12"; shown by `volumes` and `restore --plan`. An empty TEXT clears it'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and not __fish_seen_subcommand_from note help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from note" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from help" -f -a "note" -d 'Record where a volume (a cartridge, a disk) is kept, e.g. "offsite vault B, box 12"; shown by `volumes` and `restore --plan`. An empty TEXT clears it'
complete -c tapevault -n "__fish_tapevault_using_subcommand volumes; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-last -d 'Keep the N newest snapshots' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-hourly -d 'Keep the newest snapshot of each of the N most recent hours that have one' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-daily -d 'Keep the newest snapshot of each of the N most recent days that have one' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-weekly -d 'Keep the newest snapshot of each of the N most recent ISO weeks (Monday to Sunday) that have one' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-monthly -d 'Keep the newest snapshot of each of the N most recent months that have one' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-yearly -d 'Keep the newest snapshot of each of the N most recent years that have one' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-within -d 'Keep every snapshot within this long of the newest one, e.g. 30d, 12h, 1y' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l keep-tag -d 'Keep every snapshot carrying this tag (repeatable)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l host -d 'Judge only snapshots of this host (repeatable)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l tag -d 'Judge only snapshots carrying this tag (repeatable)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l utc-offset -d 'Count hours, days, weeks, months and years at this offset from UTC, e.g. +01:00' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l dry-run -d 'Print what would be kept and forgotten, and why; change nothing'
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand forget" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l dry-run -d 'List the volumes that would be deleted and the space they hold; delete nothing'
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l max-volumes -d 'Rewrite at most this many volumes in this run' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l max-bytes -d 'Copy at most this much (K/M/G/T) in this run' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l max-live -d 'Only volumes whose still-used blobs fill at most this percentage of them' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l volume-size -d 'Largest new volume (K/M/G/T, at least 4M) [default: 4G]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l dry-run -d 'List the volumes that would be rewritten and what would be copied; change nothing'
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand consolidate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l from -d 'The vault to copy from [default: --vault]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l to -d 'The vault to copy to: empty (it becomes a copy of this vault) or a copy already' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l storage-class -d 'S3 storage class of the copies (see backup --storage-class)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand copy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l snapshot -d 'With --deep: check only this snapshot\'s blobs and files (id prefix or \'latest\')' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l copy-vault -d 'With --deep: a vault holding copies of the same volumes, checked for any volume that is missing or damaged here; when a copy is whole, the data is safe (exit 3, naming the copy) but this vault\'s volume is still reported; repeatable' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l deep -d 'Also decrypt every blob and check its chunk id, every volume index, and every file of every snapshot (needs the passphrase; reads every volume once)'
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l sample -d 'Restore this many files, chosen at random (see --seed)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l seed -d 'Seed of the random sample; the report names it so a drill can be repeated exactly [default: random]' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l scratch -d 'Make the scratch restore under this folder (it needs room for what is restored) [default: $TMPDIR or /tmp]; the restored files are removed afterwards' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l report -d 'Also write the JSON report to this file' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l copy-vault -d 'A vault holding copies of the same volumes (a second disk, another site), read for any volume that is missing or damaged here; repeatable, tried in order' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l all -d 'Restore every file of the snapshot instead of a sample'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l from-scratch -d 'First rebuild a catalog from the vault alone (passphrase only) in scratch space and drill against it: the rehearsal of losing the whole site'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l history -d 'List past drills and their outcome instead of running one'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand drill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -f -a "rebuild" -d 'Build a new catalog from the vault and the passphrase alone (the catalog folder must not exist yet); reads every volume, never writes to the vault'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and not __fish_seen_subcommand_from rebuild help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from rebuild" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from help" -f -a "rebuild" -d 'Build a new catalog from the vault and the passphrase alone (the catalog folder must not exist yet); reads every volume, never writes to the vault'
complete -c tapevault -n "__fish_tapevault_using_subcommand catalog; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -f -a "export" -d 'Print the master key and vault id as a paper key, to be printed and kept offline'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -f -a "import" -d 'Make a working catalog from a paper key after the passphrase was lost, under a new passphrase (rebuilds the catalog from the vault when there is none)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -f -a "passwd" -d 'Change the passphrase: the same master key, wrapped under a new passphrase'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and not __fish_seen_subcommand_from export import passwd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l paper -d 'Paper form: numbered lines with a checksum each (the only form there is)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l paper -d 'The typed-back paper key (\'-\' reads standard input)' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l new-passphrase-file -d 'Read the new passphrase from this file; otherwise TAPEVAULT_NEW_PASSPHRASE, otherwise a prompt' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l new-passphrase-file -d 'Read the new passphrase from this file; otherwise TAPEVAULT_NEW_PASSPHRASE, otherwise a prompt' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "export" -d 'Print the master key and vault id as a paper key, to be printed and kept offline'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "import" -d 'Make a working catalog from a paper key after the passphrase was lost, under a new passphrase (rebuilds the catalog from the vault when there is none)'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Change the passphrase: the same master key, wrapped under a new passphrase'
complete -c tapevault -n "__fish_tapevault_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l vault -d 'Where the volumes live: dir:/path (a folder on disk, NFS or a removable drive) or s3://bucket/prefix (S3 or compatible; credentials, region and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL or AWS_PROFILE; a failing request is tried again TAPEVAULT_S3_RETRIES times, 6 by default, about 16 s in all)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l catalog -d 'The catalog folder for this vault [default: $XDG_STATE_HOME/tapevault/<vault hash>]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l passphrase-file -d 'Read the passphrase from this file (one trailing newline is ignored); otherwise TAPEVAULT_PASSPHRASE, otherwise a prompt on the terminal' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l profile -d 'Take unset options from this profile of the config file (see --config)' -r
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l config -d 'The config file holding [profiles.NAME] tables [default: $XDG_CONFIG_HOME/tapevault/config.toml]' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l metrics-file -d 'After backup, verify or drill, write Prometheus metrics (node_exporter textfile format) to this file, atomically, whether the run succeeded or not' -r -F
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -l json -d 'Print one JSON document on stdout instead of text'
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -s q -l quiet -d 'Print only errors'
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c tapevault -n "__fish_tapevault_using_subcommand generate" -s h -l help -d 'Print help'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "init" -d 'Create a new vault and its catalog, with a fresh random key wrapped by your passphrase'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "backup" -d 'Back up files and folders into new volumes of the vault'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "snapshots" -d 'List the snapshots in the catalog, oldest first'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "ls" -d 'List the entries of a snapshot'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "restore" -d 'Restore a snapshot (or parts of it) into a folder, checking every byte'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "volumes" -d 'List the volumes of the vault and their state'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "forget" -d 'Forget snapshots by a keep policy (grandfather-father-son); prune then frees space'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "prune" -d 'Delete the volumes that no kept snapshot needs (run after forget)'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "consolidate" -d 'Copy the still-used blobs out of mostly-unused volumes, so prune can delete them'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "copy" -d 'Copy sealed volumes to a second vault (another disk, a bucket, another site)'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "verify" -d 'Check every volume\'s bytes against the catalog (no passphrase needed), or with --deep every blob and file; exit 4 names missing or damaged volumes and files'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "drill" -d 'Prove a restore works: restore a sample (or all) of a snapshot into scratch space, check every byte, report timings and an RTO estimate, and record the outcome'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "catalog" -d 'Catalog maintenance (rebuild from the vault after the catalog was lost)'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "key" -d 'Key management: paper key export and import, passphrase change'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "generate" -d 'Generate man pages (for packaging)'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and not __fish_seen_subcommand_from init backup snapshots ls restore volumes forget prune consolidate copy verify drill catalog key generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and __fish_seen_subcommand_from volumes" -f -a "note" -d 'Record where a volume (a cartridge, a disk) is kept, e.g. "offsite vault B, box 12"; shown by `volumes` and `restore --plan`. An empty TEXT clears it'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and __fish_seen_subcommand_from catalog" -f -a "rebuild" -d 'Build a new catalog from the vault and the passphrase alone (the catalog folder must not exist yet); reads every volume, never writes to the vault'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "export" -d 'Print the master key and vault id as a paper key, to be printed and kept offline'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "import" -d 'Make a working catalog from a paper key after the passphrase was lost, under a new passphrase (rebuilds the catalog from the vault when there is none)'
complete -c tapevault -n "__fish_tapevault_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "passwd" -d 'Change the passphrase: the same master key, wrapped under a new passphrase'
