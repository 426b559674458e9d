//! A snapshot's tree stream and its snapshot record, as decoded after decryption.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Cut where the first byte says, as blob boundaries cut a real stream.
    let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut decoder = tapevault::model::TreeDecoder::default();
    let _ = decoder
        .feed(&data[..cut])
        .and_then(|_| decoder.feed(&data[cut..]))
        .and_then(|_| decoder.finish());
    let _ = serde_json::from_slice::<tapevault::model::SnapshotRecord>(data);
});
