//! Any bytes as a client text frame: a value or a typed error, never a
//! panic; whatever decodes must re-encode and decode to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::wire::{decode_client_frame, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = decode_client_frame(text) {
        let again = decode_client_frame(&encode(&frame)).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
