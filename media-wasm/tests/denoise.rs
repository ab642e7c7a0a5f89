//! Noise suppression without a window of its own (issue 16's decision):
//! the stage adds no window (its output lines up with its input within a
//! few samples of filter phase on speech, against RNNoise's 480), it removes the noise RNNoise removes, and its speech
//! quality (SI-SDR against clean speech) stays close to RNNoise run the
//! usual way, with its 10 ms look-ahead, on the same noisy speech.

mod support;

use media::denoise::NoiseSuppressor;
use media::frame::BLOCK;
use nnnoiseless::DenoiseState;
use support::*;

const RATE: usize = 48_000;
const NEAR_EN: &str = "I have a question about my invoice from last month. The total looks \
    higher than the quote I was given on the phone, so could you check it for me?";
const NEAR_JA: &str = "はい、 サイズを エムに かえて ください。 いろは あおで おねがいします。";

/// SI-SDR of `test` against `reference` (aligned already), dB.
fn si_sdr(reference: &[f32], test: &[f32]) -> f64 {
    let dot: f64 = reference
        .iter()
        .zip(test)
        .map(|(&r, &t)| f64::from(r) * f64::from(t))
        .sum();
    let alpha = dot / energy(reference).max(1e-30);
    let err: f64 = reference
        .iter()
        .zip(test)
        .map(|(&r, &t)| (alpha * f64::from(r) - f64::from(t)).powi(2))
        .sum();
    db(alpha * alpha * energy(reference) / err.max(1e-30))
}

/// A noise-only lead-in of 1.5 s, then speech with white noise 5 dB
/// under it (speech at -20 dBFS RMS): clean, noisy.
fn scene(lang: &str) -> (Vec<f32>, Vec<f32>) {
    let near = match lang {
        "en" => speech("chain-near-en-2", "en-us", NEAR_EN),
        _ => speech("denoise-ja", "ja", NEAR_JA),
    };
    let lead = 3 * RATE / 2;
    let total = (lead + near.len().min(6 * RATE)) / BLOCK * BLOCK;
    let mut clean = vec![0.0f32; total];
    let level = (energy(&near) / near.len() as f64).sqrt() as f32;
    for (i, s) in near.iter().enumerate() {
        if lead + i < total {
            clean[lead + i] = s * 0.1 / level.max(1e-6);
        }
    }
    let amplitude = 0.1 * 10f32.powf(-5.0 / 20.0) * 3f32.sqrt();
    let mut rng = Rng(77);
    let noisy = clean.iter().map(|c| c + amplitude * rng.signed()).collect();
    (clean, noisy)
}

fn ours(noisy: &[f32]) -> Vec<f32> {
    let mut ns = NoiseSuppressor::zero_window();
    let mut out = Vec::with_capacity(noisy.len());
    for c in noisy.chunks_exact(BLOCK) {
        let mut b: [f32; BLOCK] = c.try_into().expect("block");
        ns.process(&mut b);
        out.extend_from_slice(&b);
    }
    out
}

/// RNNoise as it is usually run: its own synthesis, 480 samples late
/// (returned realigned).
fn rnnoise(noisy: &[f32]) -> Vec<f32> {
    let mut st = DenoiseState::new();
    let mut out = Vec::with_capacity(noisy.len());
    let mut y = [0.0f32; BLOCK];
    for c in noisy.chunks_exact(BLOCK) {
        let x: Vec<f32> = c.iter().map(|v| v * 32_768.0).collect();
        st.process_frame(&mut y, &x);
        out.extend(y.iter().map(|v| v / 32_768.0));
    }
    out.drain(..BLOCK);
    out.resize(noisy.len(), 0.0);
    out
}

#[test]
fn the_suppressor_adds_no_delay_and_keeps_rnnoises_quality() {
    for lang in ["en", "ja"] {
        let (clean, noisy) = scene(lang);
        let lead = 3 * RATE / 2;
        let ours = ours(&noisy);
        let full = rnnoise(&noisy);
        let speech = lead..clean.len();
        // Delay: the lag at which our output best matches the clean
        // speech, searched over 0-10 ms.
        let (lag, corr) = best_lag(&clean[speech.clone()], &ours[speech.start..], BLOCK);
        // Judged at that lag: a minimum-phase filter has no look-ahead but
        // some group delay (a few samples where the gains change).
        let shifted: Vec<f32> = speech
            .clone()
            .map(|i| ours.get(i + lag).copied().unwrap_or(0.0))
            .collect();
        let sdr_ours = si_sdr(&clean[speech.clone()], &shifted);
        let sdr_full = si_sdr(&clean[speech.clone()], &full[speech.clone()]);
        let sdr_noisy = si_sdr(&clean[speech.clone()], &noisy[speech.clone()]);
        // Noise removed where the speech pauses (RNNoise hardly touches a
        // noise-only lead-in of white noise; it acts once it has heard
        // speech): over the blocks whose clean signal is near silent.
        let (mut e_in, mut e_ours, mut e_full) = (0.0, 0.0, 0.0);
        for b in (speech.start / BLOCK)..(clean.len() / BLOCK) {
            let r = b * BLOCK..(b + 1) * BLOCK;
            if energy(&clean[r.clone()]) < 1e-6 {
                e_in += energy(&noisy[r.clone()]);
                e_ours += energy(&ours[r.clone()]);
                e_full += energy(&full[r]);
            }
        }
        let (red_ours, red_full) = (db(e_in / e_ours.max(1e-30)), db(e_in / e_full.max(1e-30)));
        eprintln!(
            "{lang}: lag {lag} (corr {corr:.3}); SI-SDR noisy {sdr_noisy:.1} dB, RNNoise {sdr_full:.1} dB, \
             ours {sdr_ours:.1} dB; noise in pauses reduced {red_full:.1} dB (RNNoise), {red_ours:.1} dB (ours)"
        );
        // Under a millisecond: no window, only the filter's phase.
        assert!(
            lag <= 48,
            "{lang}: the suppressor delays speech by {lag} samples"
        );
        assert!(
            sdr_ours >= sdr_noisy + 4.0,
            "{lang}: SI-SDR {sdr_ours:.1} dB, noisy {sdr_noisy:.1} dB"
        );
        assert!(
            sdr_ours >= sdr_full - 3.0,
            "{lang}: SI-SDR {sdr_ours:.1} dB against RNNoise's {sdr_full:.1} dB"
        );
        assert!(
            red_ours >= red_full - 3.0 && red_ours >= 15.0,
            "{lang}: noise reduced {red_ours:.1} dB, RNNoise {red_full:.1} dB"
        );
    }
}

#[test]
fn silence_and_full_scale_stay_finite_and_bounded() {
    let mut ns = NoiseSuppressor::zero_window();
    let mut rng = Rng(5);
    for k in 0..200 {
        let mut b = [0.0f32; BLOCK];
        if k % 3 == 1 {
            for x in b.iter_mut() {
                *x = if rng.unit() < 0.5 { 1.0 } else { -1.0 };
            }
        }
        ns.process(&mut b);
        assert!(
            b.iter().all(|x| x.is_finite() && x.abs() < 2.0),
            "block {k}"
        );
    }
}
