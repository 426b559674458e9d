//! The plaintext label of a volume or a key label.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tapevault::volume::Label::decode(data);
});
