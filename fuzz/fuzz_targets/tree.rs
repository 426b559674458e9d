//! A snapshot's tree stream and its snapshot record, as decoded after decryption.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tapevault::model::decode_tree(data);
    let _ = serde_json::from_slice::<tapevault::model::SnapshotRecord>(data);
});
