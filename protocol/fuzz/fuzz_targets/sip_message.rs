//! Any datagram as a SIP message from a trunk: a message or a typed
//! error, never a panic; a parsed message's accessors, a response to it
//! and a digest challenge in it never panic either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use server::sip::{digest::Challenge, msg};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = msg::Message::parse(data) {
        let _ = (m.method(), m.cseq(), m.call_id(), m.to_tag(), m.branch());
        let _ = m.response(400, "Bad Request", Some("t"), &[], b"");
        for name in ["from", "to", "contact", "p-asserted-identity"] {
            if let Some(v) = m.header(name) {
                let uri = msg::uri_of(v);
                let _ = (msg::user_of(uri), msg::hostport_of(uri), msg::param(v, "tag"));
            }
        }
        for name in ["www-authenticate", "proxy-authenticate"] {
            if let Some(v) = m.header(name) {
                if let Ok(c) = Challenge::parse(v) {
                    let _ = c.answer("u", "p", "INVITE", "sip:x@y", 1, "c");
                }
            }
        }
    }
});
