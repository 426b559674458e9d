//! A pack's trailer, sealed header and blobs, under a fixed key.
#![no_main]
use tapevault::crypto::MasterKey;
use tapevault::ids::{VaultId, VolumeId};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_bytes([7; 32]);
    let sealer = key
        .volume_key(&VolumeId([1; 16]))
        .pack_sealer(VaultId([2; 16]), 1);
    if let Ok(entries) = tapevault::pack::read_entries(data, &sealer) {
        for entry in &entries {
            let _ = tapevault::pack::open_blob(data, entry, &sealer, &key.chunk_id_key());
        }
    }
});
