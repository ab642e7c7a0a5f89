//! The scheduled engine end to end, natively: microphone in, packets out,
//! packets back in, audio out. Mute keeps packets flowing (the clock never
//! stops) but what they carry is silence.

mod support;

use media::codec::EncoderSettings;
use media::engine::Engine;
use media::frame::QUANTUM;
use media::jitter::JitterSettings;
use support::*;

/// Runs `seconds` of a 300 Hz tone through a loopback engine; returns the
/// output and the number of packets sent, muting from `mute_at` seconds.
fn run(seconds: f32, mute_at: Option<f32>) -> (Vec<f32>, u64, Engine) {
    let mut engine =
        Engine::new(9, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    let mut out_all = Vec::new();
    let mut mic = [0.0f32; QUANTUM];
    let mut out = [0.0f32; QUANTUM];
    let quanta = (seconds * 48_000.0 / QUANTUM as f32) as usize;
    for q in 0..quanta {
        if mute_at.is_some_and(|m| q as f32 * QUANTUM as f32 / 48_000.0 >= m) {
            engine.set_muted(true);
        }
        for (i, x) in mic.iter_mut().enumerate() {
            *x = 0.2
                * (2.0 * std::f32::consts::PI * 300.0 * (q * QUANTUM + i) as f32 / 48_000.0).sin();
        }
        let frame = engine
            .process_quantum(&mic, &mut out)
            .expect("process")
            .map(<[u8]>::to_vec);
        if let Some(f) = frame {
            engine.receive(&f).expect("own frames are valid");
        }
        out_all.extend_from_slice(&out);
    }
    let sent = engine.stats().packets_sent;
    (out_all, sent, engine)
}

#[test]
fn loopback_carries_audio_and_mute_sends_silence_without_stopping() {
    let (out, sent, engine) = run(6.0, Some(3.0));
    // 50 packets a second, muted or not.
    assert!((295..=300).contains(&sent), "packets sent: {sent}");
    let s = engine.stats();
    assert!(s.muted);
    assert_eq!(s.jitter.late, 0);
    let rate = 48_000;
    let before = db(energy(&out[rate..3 * rate]) / (2 * rate) as f64);
    let after = db(energy(&out[(3 * rate + rate / 2)..6 * rate]) / (5 * rate / 2) as f64);
    eprintln!("output level before mute {before:.1} dB, after {after:.1} dB");
    assert!(
        before > -40.0,
        "the tone came through the loopback ({before:.1} dB)"
    );
    assert!(
        after < before - 40.0,
        "muted audio is silence ({after:.1} dB)"
    );
}

#[test]
fn malformed_frames_are_refused_without_changing_playout() {
    let mut engine =
        Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    for bad in [&[][..], &[1, 2, 3][..], &[9; 40][..]] {
        assert!(engine.receive(bad).is_err());
    }
    assert_eq!(engine.stats().jitter.received, 0);
}
