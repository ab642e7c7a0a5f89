//! Any body as an SDP offer or answer: an offer or a typed error, never
//! a panic; choosing a codec from a parsed offer never panics either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use server::config::SipCodec;
use server::sip::sdp::Offer;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = Offer::parse(data) {
        let _ = o.choose(&[SipCodec::Pcma, SipCodec::Pcmu, SipCodec::TelephoneEvent]);
    }
});
