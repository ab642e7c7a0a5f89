//! Measures of what a test party heard, and tones for it to send: the
//! media tests judge audio from the outside (which tones a party hears and
//! how loud), and these are the yardsticks they share.

use media::codec::{Encoder, EncoderSettings};
use media::frame::PACKET;
use protocol::media::{encode_media_frame, MediaHeader};

/// Power of `f` Hz in `x` sampled at `rate` (Goertzel), relative to the
/// signal's power: about 1 for a pure tone, about 1/2 for each of two
/// equal tones, near 0 for a tone that is absent.
pub fn tone_share_at(x: &[f32], f: f32, rate: f32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f64::from(f) / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    let total: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    if total < 1e-9 {
        return 0.0;
    }
    // A pure tone of amplitude A over N samples gives power ~ (A N / 2)^2
    // and total A^2 N / 2, so the share is ~ N / 2 for a pure tone.
    power / total / (x.len() as f64 / 2.0)
}

/// [`tone_share_at`] for audio at the engine's 48 kHz.
pub fn tone_share(x: &[f32], f: f32) -> f64 {
    tone_share_at(x, f, 48_000.0)
}

/// RMS level in dBFS.
pub fn level_db(x: &[f32]) -> f64 {
    let p: f64 =
        x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64;
    10.0 * p.max(1e-12).log10()
}

/// Media frames on `leg` carrying an Opus-encoded tone at `hz` (amplitude
/// 0.2), one 20 ms frame per call, numbered from 0.
pub fn tone_frames(hz: f32, leg: u32) -> impl FnMut() -> Vec<u8> {
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut seq = 0u32;
    move || {
        let mut pcm = [0.0f32; PACKET];
        for (i, x) in pcm.iter_mut().enumerate() {
            let n = seq as usize * PACKET + i;
            *x = 0.2 * (2.0 * std::f32::consts::PI * hz * n as f32 / 48_000.0).sin();
        }
        let payload = enc.encode(&pcm).expect("encode").to_vec();
        let mut frame = Vec::new();
        let header = MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq.wrapping_mul(PACKET as u32),
        };
        encode_media_frame(&header, &payload, &mut frame);
        seq += 1;
        frame
    }
}

/// Writes a 48 kHz mono 16-bit WAV of a `hz` sine of `amplitude` (full
/// scale 1), `ms` long: a prompt or a simulated caller's audio.
pub fn write_tone_wav(path: &std::path::Path, hz: f32, amplitude: f32, ms: u32) {
    let pcm: Vec<f32> = (0..48 * ms)
        .map(|i| amplitude * (2.0 * std::f32::consts::PI * hz * i as f32 / 48_000.0).sin())
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, server::bridge::mixdown::wav_bytes(&pcm)).expect("write wav");
}

/// The samples of a 16-bit mono WAV as the backend writes it (a 44-byte
/// header, then the data), as floats.
pub fn wav_samples(wav: &[u8]) -> Vec<f32> {
    wav.get(44..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect()
}
