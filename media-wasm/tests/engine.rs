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

/// Feeds `mic` through a loopback engine (each packet straight back in);
/// returns the output and the engine.
fn loopback(mic_all: &[f32]) -> (Vec<f32>, Engine) {
    let mut engine =
        Engine::new(9, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    let mut out_all = Vec::with_capacity(mic_all.len());
    let mut out = [0.0f32; QUANTUM];
    for mic in mic_all.chunks_exact(QUANTUM) {
        let frame = engine
            .process_quantum(mic, &mut out)
            .expect("process")
            .map(<[u8]>::to_vec);
        if let Some(f) = frame {
            engine.receive(&f).expect("own frames are valid");
        }
        out_all.extend_from_slice(&out);
    }
    (out_all, engine)
}

/// The lag (samples) at which `output` best matches `input` over
/// `from..from + len`, searching 0..max_lag; with its correlation.
fn best_lag(
    input: &[f32],
    output: &[f32],
    from: usize,
    len: usize,
    max_lag: usize,
) -> (usize, f64) {
    let a = &input[from..from + len];
    let ea: f64 = a.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    (0..=max_lag)
        .map(|lag| {
            let b = &output[from + lag..from + lag + len];
            let num: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let eb: f64 = b.iter().map(|y| f64::from(*y) * f64::from(*y)).sum();
            (lag, num / (ea * eb).sqrt().max(1e-12))
        })
        .fold((0, -1.0), |best, c| if c.1 > best.1 { c } else { best })
}

#[test]
fn the_declared_latency_is_what_a_loopback_measures() {
    // Speech, looped: the engine's own capture-to-packet and packet-to-
    // playout plus its jitter buffer's floor are the whole delay.
    let speech = speech(
        "engine-latency",
        "en-us",
        "Thank you for calling the order desk. Your hoodie shipped on the twelfth of November.",
    );
    let mut mic = vec![0.0f32; 48_000];
    while mic.len() < 48_000 * 8 {
        mic.extend_from_slice(&speech);
    }
    mic.truncate(48_000 * 8 / QUANTUM * QUANTUM);
    let (out, engine) = loopback(&mic);
    let mut lags = Vec::new();
    let window = 12_000;
    let mut from = 48_000 * 3;
    while from + window + 9_600 < mic.len() {
        if energy(&mic[from..from + window]) / window as f64 > 1e-4 {
            let (lag, corr) = best_lag(&mic, &out, from, window, 9_600);
            if corr > 0.6 {
                lags.push(lag as f64 / 48.0);
            }
        }
        from += window;
    }
    lags.sort_by(f64::total_cmp);
    assert!(lags.len() >= 5, "speech windows matched: {lags:?}");
    let measured = lags[lags.len() / 2];
    // The playout side is inside the buffer's delay (it counts the queued
    // output); `receive` is its average, reported for the MOS.
    let (send, receive) = engine.added_latency_ms();
    let buffer = f64::from(engine.stats().buffer_delay_ms);
    let declared = send + buffer;
    let j = engine.stats().jitter;
    eprintln!(
        "jitter buffer: {} shrinks, {} grows; levels in {:.1} dB, out {:.1} dB",
        j.shrinks,
        j.grows,
        db(energy(&mic[48_000 * 3..]) / (mic.len() - 48_000 * 3) as f64),
        db(energy(&out[48_000 * 3..]) / (out.len() - 48_000 * 3) as f64)
    );
    eprintln!(
        "loopback delay measured {measured:.1} ms; declared send {send:.1} + jitter buffer {buffer:.1} = {declared:.1} ms (of which playout about {receive:.1})"
    );
    assert!(
        (measured - declared).abs() <= 6.0,
        "measured {measured:.1} ms against declared {declared:.1} ms"
    );
}
