//! Echo cancellation on speech through a synthetic room: far-end speech is
//! played, comes back through the room into the microphone with a
//! near-end talker and noise. After convergence, far-end-only periods lose
//! at least 30 dB of echo, and during double talk the near-end speech is
//! attenuated by no more than 8 dB.

mod support;

use media::echo::{EchoCanceller, CHUNK};
use media::frame::BLOCK;
use support::*;

const FAR_TEXT: &str =
    "Thank you for calling the order desk. Your hoodie shipped on the twelfth of November. \
    It should arrive within three business days. Is there anything else I can help you with today? \
    We can also change the delivery address or the size before it leaves the warehouse.";
const NEAR_TEXT: &str =
    "Yes, I would like to change the size to medium please, and the colour to blue.";

struct Run {
    erle_db: f64,
    near_attenuation_db: f64,
    reported_erle: f64,
}

/// How the canceller is driven: the 10 ms interface (bridge, tests), or
/// the engine's way, the reference in 128-sample render quanta and the
/// microphone in 4 ms chunks.
#[derive(Clone, Copy, PartialEq)]
enum Drive {
    Blocks,
    Chunks,
}

fn run(delay_ms: f32, tail_ms: f32, seed: u64) -> Run {
    run_driven(delay_ms, tail_ms, seed, Drive::Blocks)
}

fn run_driven(delay_ms: f32, tail_ms: f32, seed: u64, drive: Drive) -> Run {
    let far = speech("far", "en-us", FAR_TEXT);
    let near_speech = speech("near", "en+f3", NEAR_TEXT);
    let rate = 48_000usize;
    let total = far.len().max(12 * rate);
    let mut far_signal = vec![0.0f32; total];
    far_signal[..far.len().min(total)].copy_from_slice(&far[..far.len().min(total)]);
    // The near-end talker starts at 8 s and overlaps the far end (double talk).
    let dt_start = 8 * rate;
    let mut near = vec![0.0f32; total];
    for (i, s) in near_speech.iter().enumerate() {
        if dt_start + i < total {
            near[dt_start + i] = *s;
        }
    }
    let echo = convolve(&far_signal, &room_impulse(delay_ms, tail_ms, -6.0, seed));
    let mut rng = Rng(seed ^ 0xabc);
    let noise: Vec<f32> = (0..total).map(|_| rng.signed() * 0.0005).collect();
    let mic: Vec<f32> = (0..total).map(|i| echo[i] + near[i] + noise[i]).collect();

    let mut aec = EchoCanceller::new();
    let mut out = vec![0.0f32; total];
    let blocks = total / BLOCK;
    let declared = match drive {
        Drive::Blocks => {
            for b in 0..blocks {
                let r = b * BLOCK..(b + 1) * BLOCK;
                let played: [f32; BLOCK] = far_signal[r.clone()].try_into().expect("block");
                aec.far_end(&played);
                let mut block: [f32; BLOCK] = mic[r.clone()].try_into().expect("block");
                aec.process(&mut block);
                out[r].copy_from_slice(&block);
            }
            EchoCanceller::DELAY_SAMPLES
        }
        Drive::Chunks => {
            // Render quanta, with a chunk of microphone processed each time
            // one completes: the engine's order.
            let mut pending = 0;
            for q in 0..blocks * BLOCK / 128 {
                let r = q * 128..(q + 1) * 128;
                aec.far_end(&far_signal[r.clone()]);
                if r.end - pending >= CHUNK {
                    let c = pending..pending + CHUNK;
                    let mut chunk: [f32; CHUNK] = mic[c.clone()].try_into().expect("chunk");
                    aec.process_chunk(&mut chunk);
                    out[c].copy_from_slice(&chunk);
                    pending += CHUNK;
                }
            }
            EchoCanceller::CHUNK_DELAY_SAMPLES
        }
    };
    let n = blocks * BLOCK;

    // ERLE over far-end-only speech after 3 s of convergence, block by block
    // where the echo is active.
    let (mut e_in, mut e_out) = (0.0, 0.0);
    for b in (3 * rate / BLOCK)..(dt_start / BLOCK) {
        let r = b * BLOCK..(b + 1) * BLOCK;
        let echo_e = energy(&echo[r.clone()]);
        if db(echo_e / BLOCK as f64) > -50.0 {
            e_in += energy(&mic[r.clone()]);
            e_out += energy(&out[r]);
        }
    }
    // Near-end attenuation during double talk: project the output onto
    // the near-end speech (at the best lag within 5 ms).
    let dt = dt_start..n.min(dt_start + near_speech.len());
    let (lag, corr) = best_lag(&near[dt.clone()], &out[dt.start..n], 2400);
    assert!(
        corr > 0.7,
        "near-end speech is recognisable in the output (correlation {corr:.2})"
    );
    assert!(
        lag.abs_diff(declared) <= 4,
        "the canceller's delay moved: measured {lag} samples, declared {declared}"
    );
    let mut num = 0.0;
    let mut den = 0.0;
    for i in dt.clone() {
        if i + lag < n {
            num += f64::from(near[i]) * f64::from(out[i + lag]);
            den += f64::from(near[i]) * f64::from(near[i]);
        }
    }
    let g = num / den;
    Run {
        erle_db: db(e_in / e_out),
        near_attenuation_db: -20.0 * g.abs().max(1e-9).log10(),
        reported_erle: aec.erle_db(),
    }
}

#[test]
fn echo_is_cancelled_and_double_talk_survives() {
    for (delay, tail, seed) in [(30.0, 150.0, 1), (90.0, 200.0, 2), (150.0, 250.0, 3)] {
        let r = run(delay, tail, seed);
        eprintln!(
            "room delay {delay} ms tail {tail} ms: ERLE {:.1} dB (AEC3 reports {:.1}), near-end attenuation in double talk {:.1} dB",
            r.erle_db, r.reported_erle, r.near_attenuation_db
        );
        assert!(
            r.erle_db >= 30.0,
            "ERLE {:.1} dB < 30 dB (delay {delay}, tail {tail})",
            r.erle_db
        );
        assert!(
            r.near_attenuation_db <= 8.0,
            "near end attenuated {:.1} dB > 8 dB",
            r.near_attenuation_db
        );
    }
}

/// The engine's way of driving the canceller (reference in render quanta,
/// microphone in 4 ms chunks as they arrive) keeps the same thresholds,
/// at the shorter delay it declares.
#[test]
fn chunk_by_chunk_cancels_echo_at_its_declared_delay() {
    for (delay, tail, seed) in [(30.0, 150.0, 4), (150.0, 250.0, 5)] {
        let r = run_driven(delay, tail, seed, Drive::Chunks);
        eprintln!(
            "chunks, room delay {delay} ms tail {tail} ms: ERLE {:.1} dB (AEC3 reports {:.1}), near-end attenuation in double talk {:.1} dB",
            r.erle_db, r.reported_erle, r.near_attenuation_db
        );
        assert!(r.erle_db >= 30.0, "ERLE {:.1} dB < 30 dB", r.erle_db);
        assert!(
            r.near_attenuation_db <= 8.0,
            "near end attenuated {:.1} dB > 8 dB",
            r.near_attenuation_db
        );
    }
}

/// The reference may arrive in any slices (render quanta, 10 ms blocks):
/// the canceller frames it itself, so the output is the same.
#[test]
fn the_reference_is_framed_whatever_its_slices() {
    let far = speech("far", "en-us", FAR_TEXT);
    let n = (3 * 48_000).min(far.len()) / BLOCK * BLOCK;
    let echo = convolve(&far[..n], &room_impulse(40.0, 100.0, -6.0, 7));
    let mut outs = Vec::new();
    for slice in [BLOCK, 128, 7] {
        let mut aec = EchoCanceller::new();
        let mut out = Vec::with_capacity(n);
        for b in 0..n / BLOCK {
            let r = b * BLOCK..(b + 1) * BLOCK;
            for piece in far[r.clone()].chunks(slice) {
                aec.far_end(piece);
            }
            let mut x: [f32; BLOCK] = echo[r].try_into().expect("block");
            aec.process(&mut x);
            out.extend_from_slice(&x);
        }
        outs.push(out);
    }
    assert!(energy(&outs[0]) > 0.0);
    assert_eq!(outs[0], outs[1], "128-sample slices change the output");
    assert_eq!(outs[0], outs[2], "7-sample slices change the output");
}

/// A microphone driven into clipping by loud echo: AEC3 is told (so it
/// does not adapt on clipped echo) and the output stays within full scale
/// and finite; once the clipping stops the echo is cancelled again.
#[test]
fn a_saturated_microphone_is_survived() {
    let far = speech("far", "en-us", FAR_TEXT);
    let n = (10 * 48_000).min(far.len()) / BLOCK * BLOCK;
    let mut echo = convolve(&far[..n], &room_impulse(40.0, 100.0, -6.0, 8));
    // Seconds 2-3: the echo is 30 dB hotter and clips.
    for x in &mut echo[2 * 48_000..3 * 48_000] {
        *x = (*x * 31.6).clamp(-1.0, 1.0);
    }
    let mut aec = EchoCanceller::new();
    let mut out = vec![0.0f32; n];
    for b in 0..n / BLOCK {
        let r = b * BLOCK..(b + 1) * BLOCK;
        aec.far_end(&far[r.clone()]);
        let mut x: [f32; BLOCK] = echo[r.clone()].try_into().expect("block");
        aec.process(&mut x);
        out[r].copy_from_slice(&x);
    }
    assert!(out.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    let tail = 6 * 48_000..n;
    let erle = db(energy(&echo[tail.clone()]) / energy(&out[tail]).max(1e-30));
    eprintln!("after clipping: ERLE {erle:.1} dB");
    assert!(
        erle >= 20.0,
        "echo not cancelled after clipping: {erle:.1} dB"
    );
}

/// A headset: the caller talks from the first moment and there is no echo
/// at all. The agent's voice must not be swallowed while AEC3 has not yet
/// measured an echo path (its default assumption suppressed it by 18-20 dB).
#[test]
fn no_echo_double_talk_from_the_start_keeps_the_near_end() {
    let far = speech("far", "en-us", FAR_TEXT);
    let near = speech("near", "en+f3", NEAR_TEXT);
    let n = far.len().min(near.len()) / BLOCK * BLOCK;
    let mut aec = EchoCanceller::new();
    let mut out = vec![0.0f32; n];
    for b in 0..n / BLOCK {
        let r = b * BLOCK..(b + 1) * BLOCK;
        aec.far_end(&far[r.clone()]);
        let mut x: [f32; BLOCK] = near[r.clone()].try_into().expect("block");
        aec.process(&mut x);
        out[r].copy_from_slice(&x);
    }
    let lag = EchoCanceller::DELAY_SAMPLES;
    for (from, to) in [(0usize, 2usize), (2, 4)] {
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for i in from * 48_000..(to * 48_000).min(n - lag) {
            num += f64::from(near[i]) * f64::from(out[i + lag]);
            den += f64::from(near[i]) * f64::from(near[i]);
        }
        let attenuation = -20.0 * (num / den).abs().max(1e-9).log10();
        eprintln!("no echo, double talk {from}-{to} s: near end attenuated {attenuation:.1} dB");
        assert!(
            attenuation <= 6.0,
            "near end attenuated {attenuation:.1} dB in {from}-{to} s"
        );
    }
}
