//! The strict tar reader over a whole volume.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = tapevault::volume::VolumeReader::new(data);
    let _ = reader.read_label();
    while let Ok(Some(member)) = reader.next_member() {
        if reader.read_data(&member).is_err() {
            break;
        }
    }
});
