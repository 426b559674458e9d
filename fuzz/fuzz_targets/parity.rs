//! The repairing reader over a whole (hostile) volume: descriptors, shards, repairs.
#![no_main]
use std::io::Read;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = tapevault::parity::RepairingReader::new(data);
    let mut out = Vec::new();
    if reader.read_to_end(&mut out).is_ok() {
        // Repairs rewrite bytes in place: never more, never fewer.
        assert_eq!(out.len(), data.len());
    }
});
