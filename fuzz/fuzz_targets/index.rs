//! A volume index (sealed), under a fixed key.
#![no_main]
use tapevault::crypto::MasterKey;
use tapevault::ids::{VaultId, VolumeId};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_bytes([7; 32]);
    let volume = VolumeId([1; 16]);
    let _ = tapevault::volume::VolumeIndex::open(
        data,
        VaultId([2; 16]),
        volume,
        1,
        &key.volume_key(&volume),
    );
});
