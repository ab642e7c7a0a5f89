//! What the bridge's mixes lose at a lower encoder complexity (issue 12):
//! a conference customer's mix is the one stream the bridge still
//! encodes, one encode per customer per 20 ms, and complexity 2 costs
//! about 109 us an encode against 64 us at complexity 0
//! (/work/shared/notes/bridge-scale.md). Measured here with the project's
//! own metrics on a two-talker speech mix and on a two-tone mix, encoded
//! in 20 ms packets at the bridge's settings (32 kb/s, wideband, FEC) at
//! complexity 0, 1 and 2, decoded, aligned on the codec's delay: the
//! waveform SNR and the normalised cross-correlation against the mix
//! itself. The figures are in docs/benchmarks.md; the test holds the
//! lower complexities to complexity 2's quality within a margin, so a
//! codec change that makes them worse shows here first.

mod support;

use std::time::Instant;

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::frame::PACKET;
use support::*;

const ALICE: &str = "Your order number is one hundred. The hoodie is dark blue, size large, \
    and it shipped on the twelfth of November from our warehouse in Osaka.";
const BOB: &str = "Let me check that for you. I can see the parcel left the depot this \
    morning, so it should reach you on Thursday before noon.";

/// The mix at `complexity`: its decode, aligned on the codec's delay and
/// cut to the mix's length; and the mean encode time, microseconds.
fn through_codec(mix: &[f32], complexity: i32) -> (Vec<f32>, f64) {
    let mut enc = Encoder::new(EncoderSettings {
        complexity,
        ..EncoderSettings::default()
    })
    .expect("encoder");
    let mut dec = Decoder::new().expect("decoder");
    let mut out = Vec::with_capacity(mix.len() + 4 * PACKET);
    let mut pcm = [0.0f32; PACKET];
    let mut spent = 0.0;
    let mut n = 0;
    // A packet of zeros after the mix flushes the encoder's look-ahead.
    let tail = [0.0f32; PACKET];
    for chunk in mix.chunks_exact(PACKET).chain([&tail[..], &tail[..]]) {
        let block: &[f32; PACKET] = chunk.try_into().expect("a packet");
        let t = Instant::now();
        let packet = enc.encode(block).expect("encode").to_vec();
        spent += t.elapsed().as_secs_f64();
        n += 1;
        let k = dec.decode_len(&packet, &mut pcm).expect("decode");
        out.extend_from_slice(&pcm[..k]);
    }
    let (lag, _) = best_lag(mix, &out, 2 * PACKET);
    let aligned = out[lag..].iter().copied().take(mix.len()).collect();
    (aligned, spent / n as f64 * 1e6)
}

/// Normalised cross-correlation at lag 0.
fn ncc(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(1e-30)
}

/// SNR and ncc of the mix through the codec at complexity 0, 1, 2 (the
/// bridge's until now) and 5 (the engine's, for reference).
fn measure(name: &str, mix: &[f32]) -> Vec<(i32, f64, f64, f64)> {
    // Whole packets only, as the bridge encodes them.
    let mix = &mix[..mix.len() / PACKET * PACKET];
    let rows: Vec<(i32, f64, f64, f64)> = [0, 1, 2, 5]
        .into_iter()
        .map(|c| {
            let (out, us) = through_codec(mix, c);
            (c, snr_db(mix, &out), ncc(mix, &out), us)
        })
        .collect();
    for (c, snr, ncc, us) in &rows {
        eprintln!(
            "{name}, complexity {c}: SNR {snr:.2} dB, ncc {ncc:.4}, encode {us:.0} us (this build)"
        );
    }
    rows
}

#[test]
fn a_mix_at_complexity_0_or_1_keeps_close_to_complexity_2() {
    // Two talkers over each other, as a conference customer hears them
    // when both agents talk (each at -20 dBFS, the sum clipped as the
    // mixer clips it).
    let a = speech("mix-alice", "en-us", ALICE);
    let b = speech("mix-bob", "en-gb", BOB);
    let n = a.len().min(b.len());
    let speech_mix: Vec<f32> = (0..n).map(|i| (a[i] + b[i]).clamp(-1.0, 1.0)).collect();
    let tone_mix: Vec<f32> = (0..48_000 * 3)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            0.2 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 2000.0 * t).sin()
        })
        .collect();
    for (name, mix) in [("speech mix", speech_mix), ("1 kHz + 2 kHz", tone_mix)] {
        let rows = measure(name, &mix);
        let (_, snr2, ncc2, _) = rows[2];
        assert!(
            snr2 > 3.0 && ncc2 > 0.7,
            "{name}: complexity 2 is the reference ({snr2:.2} dB, ncc {ncc2:.3})"
        );
        for &(c, snr, ncc, _) in &rows[..2] {
            assert!(
                snr >= snr2 - 1.5 && ncc >= ncc2 - 0.03,
                "{name}: complexity {c} ({snr:.2} dB, ncc {ncc:.4}) against 2 ({snr2:.2} dB, ncc {ncc2:.4})"
            );
        }
    }
}
