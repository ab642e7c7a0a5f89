//! Any bytes as a server text frame (the client's decoder).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = protocol::wire::decode_server_frame(text);
    }
});
