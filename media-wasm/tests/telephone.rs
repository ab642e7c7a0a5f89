//! A telephone leg through the whole engine (docs/protocol.md section 8,
//! "Telephone legs"): G.711 frames the backend forwards from a trunk are
//! played, a lost one is concealed, and the engine answers in G.711 of the
//! same law while the leg carries G.711, and in Opus again once Opus
//! arrives.

use media::codec::{Encoder, EncoderSettings};
use media::engine::Engine;
use media::frame::{PACKET, QUANTUM};
use media::jitter::JitterSettings;
use protocol::media::{
    decode_media_frame, encode_media_frame, encode_media_frame_codec, Codec, MediaHeader,
};

const LEG: u32 = 9;

fn power(x: &[f32], freq: f32, rate: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / rate;
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f32).powi(2)
}

/// 20 ms packet `n` of a 500 Hz tone as 8 kHz `law`.
fn trunk_packet(law: Codec, n: u32) -> Vec<u8> {
    let pcm: Vec<f32> = (0..160)
        .map(|k| 0.3 * (2.0 * std::f32::consts::PI * 500.0 * (n * 160 + k) as f32 / 8000.0).sin())
        .collect();
    let mut out = Vec::new();
    media::g711::encode(law, &pcm, &mut out);
    out
}

#[test]
fn a_g711_leg_is_played_concealed_and_answered_in_kind() {
    let mut engine =
        Engine::new(LEG, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    let mut mic = [0.0f32; QUANTUM];
    let mut out = [0.0f32; QUANTUM];
    let mut played = Vec::new();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut opus = Encoder::new(EncoderSettings::default()).expect("encoder");
    let total_quanta = 48_000 * 4 / QUANTUM; // 4 s
    let mut next_packet = 0u32;
    for q in 0..total_quanta {
        let t = q * QUANTUM;
        // One trunk packet per 20 ms of audio clock; packet 60 is lost;
        // from 3 s on the leg carries Opus (a mix, hold music).
        while (next_packet as usize) * PACKET <= t {
            let n = next_packet;
            next_packet += 1;
            if n == 60 {
                continue;
            }
            let header = MediaHeader {
                flags: 0,
                leg: LEG,
                sequence: n,
                timestamp: n * PACKET as u32,
            };
            let mut frame = Vec::new();
            if n < 150 {
                encode_media_frame_codec(
                    &header,
                    Codec::Pcmu,
                    &trunk_packet(Codec::Pcmu, n),
                    &mut frame,
                );
            } else {
                let silence = opus.encode(&[0.0; PACKET]).expect("opus").to_vec();
                encode_media_frame(&header, &silence, &mut frame);
            }
            engine.receive(&frame).expect("a valid frame");
        }
        for (i, x) in mic.iter_mut().enumerate() {
            *x = 0.2 * (2.0 * std::f32::consts::PI * 300.0 * (t + i) as f32 / 48_000.0).sin();
        }
        if let Some(f) = engine.process_quantum(&mic, &mut out).expect("process") {
            sent.push(f.to_vec());
        }
        played.extend_from_slice(&out);
    }
    // The trunk's 500 Hz is what plays (between 0.5 s and 2.5 s).
    let middle = &played[24_000..120_000];
    let (tone, other) = (
        power(middle, 500.0, 48_000.0),
        power(middle, 300.0, 48_000.0),
    );
    assert!(tone > 100.0 * other, "500 Hz {tone} vs 300 Hz {other}");
    let s = engine.stats();
    assert!(
        s.jitter.concealed >= 1,
        "the lost packet was concealed: {:?}",
        s.jitter
    );
    // What the engine sent: Opus until the first G.711 frame arrived, then
    // PCMU (160 bytes, 20 ms) until the Opus frames, then Opus again.
    let codecs: Vec<Codec> = sent
        .iter()
        .map(|f| decode_media_frame(f).expect("valid frame").codec)
        .collect();
    let first_g711 = codecs
        .iter()
        .position(|c| *c == Codec::Pcmu)
        .expect("some G.711 sent");
    assert!(first_g711 <= 2, "answered in kind at once ({first_g711})");
    let last_g711 = codecs
        .iter()
        .rposition(|c| *c == Codec::Pcmu)
        .expect("G.711");
    assert!(
        codecs[first_g711..=last_g711]
            .iter()
            .all(|c| *c == Codec::Pcmu),
        "G.711 while the leg carries it"
    );
    assert!(
        (145..=152).contains(&last_g711),
        "back to Opus when Opus arrives ({last_g711})"
    );
    assert!(codecs[last_g711 + 1..].iter().all(|c| *c == Codec::Opus));
    // The G.711 sent is the microphone's 300 Hz, 160 bytes a packet.
    let mut heard = Vec::new();
    for f in &sent[first_g711 + 10..last_g711] {
        let frame = decode_media_frame(f).expect("valid");
        assert_eq!(frame.payload.len(), 160);
        let mut pcm = Vec::new();
        media::g711::decode(Codec::Pcmu, frame.payload, &mut pcm);
        heard.extend(pcm);
    }
    let (mine, theirs) = (power(&heard, 300.0, 8000.0), power(&heard, 500.0, 8000.0));
    assert!(mine > 100.0 * theirs, "300 Hz {mine} vs 500 Hz {theirs}");
}
