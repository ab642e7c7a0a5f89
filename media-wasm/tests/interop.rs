//! Interop with C libopus (the `opus` crate, native only): packets our
//! encoder makes decode in libopus to the same audio our decoder gives,
//! and libopus packets decode in ours to what libopus gives.

mod support;

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::frame::PACKET;
use support::*;

const TEXT: &str = "Interoperability check: one two three four five, the quick brown fox.";

#[test]
fn our_packets_decode_in_libopus() {
    let pcm = speech("interop", "en-us", TEXT);
    let mut ours = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut our_dec = Decoder::new().expect("decoder");
    let mut c_dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("libopus decoder");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut buf = [0.0f32; PACKET];
    let mut cbuf = vec![0.0f32; PACKET];
    for chunk in pcm.chunks_exact(PACKET) {
        let packet = ours
            .encode(chunk.try_into().expect("packet"))
            .expect("encode")
            .to_vec();
        our_dec.decode(&packet, &mut buf).expect("our decode");
        let n = c_dec
            .decode_float(&packet, &mut cbuf, false)
            .expect("libopus decodes our packet");
        assert_eq!(n, PACKET);
        a.extend_from_slice(&buf);
        b.extend_from_slice(&cbuf);
    }
    let snr = snr_db(&b, &a);
    eprintln!("our packets: libopus vs our decoder SNR {snr:.1} dB");
    assert!(snr > 40.0, "decoders disagree on our packets: {snr:.1} dB");
    let (lag, corr) = best_lag(&pcm, &b, 960);
    assert!(
        corr > 0.9,
        "libopus output follows the input speech (corr {corr:.2} at lag {lag})"
    );
}

#[test]
fn libopus_packets_decode_in_ours() {
    let pcm = speech("interop", "en-us", TEXT);
    let mut c_enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
        .expect("libopus encoder");
    c_enc.set_inband_fec(true).expect("fec");
    c_enc
        .set_bitrate(opus::Bitrate::Bits(32_000))
        .expect("bitrate");
    let mut c_dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("libopus decoder");
    let mut our_dec = Decoder::new().expect("decoder");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut buf = [0.0f32; PACKET];
    let mut cbuf = vec![0.0f32; PACKET];
    for chunk in pcm.chunks_exact(PACKET) {
        let packet = c_enc
            .encode_vec_float(chunk, 1275)
            .expect("libopus encodes");
        our_dec
            .decode(&packet, &mut buf)
            .expect("our decoder takes libopus packets");
        c_dec
            .decode_float(&packet, &mut cbuf, false)
            .expect("libopus decode");
        a.extend_from_slice(&buf);
        b.extend_from_slice(&cbuf);
    }
    let snr = snr_db(&b, &a);
    eprintln!("libopus packets: our decoder vs libopus SNR {snr:.1} dB");
    assert!(
        snr > 40.0,
        "decoders disagree on libopus packets: {snr:.1} dB"
    );
}
