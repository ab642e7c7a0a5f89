//! Any bytes as a TCP connection's stream from a trunk, cut into reads at
//! points the input itself chooses: the framer yields messages (each
//! within the message limit, each then parsed as a datagram would be),
//! pings, or a typed error, never a panic, and never holds more than the
//! limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use server::sip::{msg, tcp};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size; the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let limits = tcp::Limits {
        max_header: 512,
        max_message: 2048,
    };
    let mut framer = tcp::Framer::new(limits);
    let step = usize::from(cut % 64) + 1;
    let mut rest = stream;
    while !rest.is_empty() {
        let n = step.min(rest.len()).min(framer.space());
        if n == 0 {
            return;
        }
        if framer.push(&rest[..n]).is_err() {
            return;
        }
        rest = &rest[n..];
        loop {
            match framer.next_frame() {
                Ok(Some(tcp::Frame::Message(m))) => {
                    assert!(m.len() <= limits.max_message);
                    let _ = msg::Message::parse(&m);
                }
                Ok(Some(tcp::Frame::Ping)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(framer.space() > 0);
    }
});
