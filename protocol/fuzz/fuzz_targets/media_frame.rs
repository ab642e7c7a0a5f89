//! Any bytes as a binary media frame; valid frames round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::media::{decode_media_frame, encode_media_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_media_frame(data) {
        let mut out = Vec::new();
        encode_media_frame(&frame.header, frame.payload, &mut out);
        assert_eq!(out, data);
    }
});
