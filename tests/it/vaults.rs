//! The vault conformance suite: every vault kind keeps the same promises, checked
//! through the library on a `dir:` folder, on the test S3 server and on an emulated
//! tape library. (The stream vault cannot list, delete or seek; its promises are
//! checked through the command line in `tape.rs`.)

use crate::util::{new_bucket, s3_endpoint};
use std::io::{Read, Write};
use tapevault::error::ErrorKind;
use tapevault::vault::{open_vault_with, S3Config, Vault, VaultOptions};

/// Options that reach the test S3 server without touching this process's environment.
pub fn test_s3_options() -> VaultOptions {
    VaultOptions {
        s3: Some(S3Config {
            endpoint: Some(s3_endpoint().to_string()),
            region: "us-east-1".into(),
            credentials: Some((
                "tapevault-test".into(),
                "tapevault-test-secret".into(),
                None,
            )),
            retries: 2,
        }),
        ..VaultOptions::default()
    }
}

fn each_kind(check: impl Fn(&dyn Vault)) {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = open_vault_with(
        &format!("dir:{}", dir.path().display()),
        &VaultOptions::default(),
    )
    .unwrap();
    check(on_disk.as_ref());
    let bucket = open_vault_with(&format!("{}/site", new_bucket()), &test_s3_options()).unwrap();
    check(bucket.as_ref());
    let library = format!("tape:{}", dir.path().join("library").display());
    let options = VaultOptions {
        tape: tapevault::tape::TapeOptions {
            block_size: Some(64 << 10),
            ..Default::default()
        },
        ..VaultOptions::default()
    };
    tapevault::vault::create_vault_home(&library).unwrap();
    let tape = open_vault_with(&library, &options).unwrap();
    check(tape.as_ref());
}

/// A volume's shape (label, one pack of `len` bytes, index, end blocks): what a tape
/// vault splits into parts; other vaults take any bytes.
fn volume_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("label.tvl", b"tapevault-label v1\n{}".to_vec()),
        ("pack-000001.tvp", crate::util::noise(len, seed)),
        ("index.tvi", b"index".to_vec()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        out.append(&header, &data[..]).unwrap();
    }
    out.into_inner().unwrap()
}

fn read_all(vault: &dyn Vault, name: &str) -> Vec<u8> {
    let mut back = Vec::new();
    vault.open(name).unwrap().read_to_end(&mut back).unwrap();
    back
}

#[test]
fn objects_appear_only_when_sealed_and_read_back_exactly() {
    each_kind(|vault| {
        // Larger than one upload part, so S3 completes a real multipart upload.
        let data = volume_bytes((17 << 20) + 12345, 7);
        let mut sink = vault.create("tv000001-aaaaaaaa.tar", 32 << 20).unwrap();
        sink.write_all(&data).unwrap();
        assert!(
            vault.list().unwrap().sealed.is_empty(),
            "{}",
            vault.location()
        );
        sink.seal().unwrap();
        assert_eq!(vault.list().unwrap().sealed, vec!["tv000001-aaaaaaaa.tar"]);
        assert!(read_all(vault, "tv000001-aaaaaaaa.tar") == data);
        let (size, middle) = vault
            .read_range("tv000001-aaaaaaaa.tar", 5 << 20, 1000)
            .unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(middle, data[5 << 20..(5 << 20) + 1000]);
        let (_, tail) = vault
            .read_range("tv000001-aaaaaaaa.tar", data.len() as u64 - 10, 1000)
            .unwrap();
        assert_eq!(tail, data[data.len() - 10..]);
    });
}

#[test]
fn an_abandoned_write_is_never_a_sealed_object() {
    each_kind(|vault| {
        let mut sink = vault.create("tv000002-bbbbbbbb.tar", 32 << 20).unwrap();
        sink.write_all(&volume_bytes(20 << 20, 2)).unwrap();
        drop(sink);
        let listing = vault.list().unwrap();
        assert!(
            listing.sealed.is_empty(),
            "{}: {listing:?}",
            vault.location()
        );
        assert_eq!(
            vault.open("tv000002-bbbbbbbb.tar").err().unwrap().kind(),
            ErrorKind::Missing
        );
    });
}

#[test]
fn t59_an_existing_object_is_never_replaced() {
    each_kind(|vault| {
        let mut first = vault.create("vault.tvl", 1 << 20).unwrap();
        first.write_all(b"first").unwrap();
        first.seal().unwrap();
        let mut second = vault.create("vault.tvl", 1 << 20).unwrap();
        second.write_all(b"second, longer").unwrap();
        let err = second.seal().err().unwrap();
        assert!(err.to_string().contains("vault.tvl"), "{err}");
        assert_eq!(read_all(vault, "vault.tvl"), b"first");
    });
}

#[test]
fn missing_objects_and_deletes() {
    each_kind(|vault| {
        assert_eq!(
            vault.open("tv000009-cccccccc.tar").err().unwrap().kind(),
            ErrorKind::Missing
        );
        assert_eq!(
            vault
                .read_range("tv000009-cccccccc.tar", 0, 10)
                .err()
                .unwrap()
                .kind(),
            ErrorKind::Missing
        );
        let mut sink = vault.create("tv000003-dddddddd.tar", 1 << 20).unwrap();
        sink.write_all(&volume_bytes(1, 3)).unwrap();
        sink.seal().unwrap();
        vault.delete("tv000003-dddddddd.tar").unwrap();
        vault.delete("tv000003-dddddddd.tar").unwrap();
        assert!(vault.list().unwrap().sealed.is_empty());
    });
}

#[test]
fn the_writer_lock_is_exclusive_and_refused_on_an_empty_vault() {
    each_kind(|vault| {
        // T63: nothing of ours there (unmounted disk, mistyped prefix): no lock, no writes.
        assert_eq!(
            vault.lock_writers().err().unwrap().kind(),
            ErrorKind::Missing
        );
        let mut label = vault.create("vault.tvl", 1 << 20).unwrap();
        label.write_all(b"label").unwrap();
        label.seal().unwrap();
        let held = vault.lock_writers().unwrap();
        let err = vault.lock_writers().err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        drop(vault.lock_writers().unwrap());
        assert_eq!(vault.list().unwrap().sealed, vec!["vault.tvl"]);
    });
}
