//! G.711 (ITU-T G.711 μ-law and A-law) and the 8 kHz <-> 48 kHz
//! conversion between a trunk's RTP leg and the bridge's Opus legs.
//!
//! The resampler is a windowed-sinc FIR (cutoff 3.6 kHz) used both ways:
//! zero-stuff then filter going up, filter then keep every 6th going down.
//! Its state spans packets so there is no click at packet edges.

use crate::config::SipCodec;

/// 20 ms at 8 kHz.
pub const NARROW: usize = 160;
/// The upsampling factor 8 kHz -> 48 kHz.
const RATIO: usize = 6;
/// Filter length (at 48 kHz); odd, so each pass delays a whole 48 samples.
const TAPS: usize = 97;

/// Encodes one sample (-1.0..1.0) as μ-law.
pub fn ulaw_encode(x: f32) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = (x.clamp(-1.0, 1.0) * 32767.0) as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = (s + BIAS).min(0x7fff);
    let exp = (31 - (s as u32).leading_zeros()) as i32 - 7;
    let mant = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mant as u8)
}

/// Decodes one μ-law byte.
pub fn ulaw_decode(b: u8) -> f32 {
    let b = !b;
    let exp = i32::from((b >> 4) & 7);
    let mant = i32::from(b & 0x0f);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    let v = if b & 0x80 != 0 { -mag } else { mag };
    v as f32 / 32768.0
}

/// Encodes one sample as A-law.
pub fn alaw_encode(x: f32) -> u8 {
    let s = (x.clamp(-1.0, 1.0) * 32767.0) as i32;
    let (sign, mag) = if s >= 0 { (0x80u8, s) } else { (0, -s - 1) };
    let mag = mag.min(0x7fff) >> 3; // 12-bit magnitude
    let byte = if mag < 32 {
        (mag >> 1) as u8
    } else {
        let exp = (31 - (mag as u32).leading_zeros()) as i32 - 4;
        ((exp << 4) as u8) | ((mag >> exp) & 0x0f) as u8
    };
    (byte | sign) ^ 0x55
}

/// Decodes one A-law byte.
pub fn alaw_decode(b: u8) -> f32 {
    let b = b ^ 0x55;
    let exp = i32::from((b >> 4) & 7);
    let mant = i32::from(b & 0x0f);
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    let v = if b & 0x80 != 0 { mag } else { -mag };
    v as f32 / 32768.0
}

/// Encodes with `codec` (PCMA or PCMU).
pub fn encode(codec: SipCodec, pcm: &[f32], out: &mut Vec<u8>) {
    out.clear();
    match codec {
        SipCodec::Pcma => out.extend(pcm.iter().map(|&x| alaw_encode(x))),
        _ => out.extend(pcm.iter().map(|&x| ulaw_encode(x))),
    }
}

/// Decodes with `codec` (PCMA or PCMU).
pub fn decode(codec: SipCodec, bytes: &[u8], out: &mut Vec<f32>) {
    out.clear();
    match codec {
        SipCodec::Pcma => out.extend(bytes.iter().map(|&b| alaw_decode(b))),
        _ => out.extend(bytes.iter().map(|&b| ulaw_decode(b))),
    }
}

fn kernel() -> [f32; TAPS] {
    let mut k = [0.0f32; TAPS];
    let fc = 3600.0 / 48_000.0;
    let mid = (TAPS - 1) as f32 / 2.0;
    let mut sum = 0.0;
    for (i, v) in k.iter_mut().enumerate() {
        let t = i as f32 - mid;
        let sinc = if t == 0.0 {
            2.0 * fc
        } else {
            (2.0 * std::f32::consts::PI * fc * t).sin() / (std::f32::consts::PI * t)
        };
        let w = 0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / (TAPS - 1) as f32).cos();
        *v = sinc * w;
        sum += *v;
    }
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// A FIR low-pass over 48 kHz samples with history across calls.
pub struct Resampler {
    k: [f32; TAPS],
    hist: [f32; TAPS],
    pos: usize,
}

impl Default for Resampler {
    fn default() -> Self {
        Resampler {
            k: kernel(),
            hist: [0.0; TAPS],
            pos: 0,
        }
    }
}

impl Resampler {
    fn push(&mut self, x: f32) {
        self.hist[self.pos] = x;
        self.pos = (self.pos + 1) % TAPS;
    }

    fn output(&self) -> f32 {
        let mut acc = 0.0;
        for (i, k) in self.k.iter().enumerate() {
            // hist[pos - 1 - i], the i-th newest sample.
            acc += k * self.hist[(self.pos + TAPS - 1 - i) % TAPS];
        }
        acc
    }

    /// 8 kHz -> 48 kHz (`out` gets 6 samples per input sample).
    pub fn up(&mut self, narrow: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for &x in narrow {
            for j in 0..RATIO {
                self.push(if j == 0 { x * RATIO as f32 } else { 0.0 });
                out.push(self.output());
            }
        }
    }

    /// 48 kHz -> 8 kHz (one sample out per 6 in).
    pub fn down(&mut self, wide: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for chunk in wide.chunks_exact(RATIO) {
            // Output at the chunk's first sample, so the delay is a whole
            // number of 8 kHz samples.
            self.push(chunk[0]);
            out.push(self.output());
            for &x in &chunk[1..] {
                self.push(x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for i in -1000..=1000 {
            let x = i as f32 / 1000.0 * 0.9;
            let tol = 0.002 + x.abs() * 0.07;
            assert!((ulaw_decode(ulaw_encode(x)) - x).abs() < tol, "ulaw {x}");
            assert!((alaw_decode(alaw_encode(x)) - x).abs() < tol, "alaw {x}");
        }
        // Reference points (G.711 tables): μ-law 0xFF and A-law 0xD5 are +0.
        assert_eq!(ulaw_encode(0.0), 0xff);
        assert_eq!(alaw_encode(0.0), 0xd5);
        assert!(ulaw_decode(0x00) < -0.9 && ulaw_decode(0x80) > 0.9);
        assert!(alaw_decode(0xaa) > 0.9 && alaw_decode(0x2a) < -0.9);
    }

    #[test]
    fn a_tone_survives_up_and_down() {
        let tone: Vec<f32> = (0..1600)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin())
            .collect();
        let (mut up, mut down) = (Resampler::default(), Resampler::default());
        let (mut wide, mut back) = (Vec::new(), Vec::new());
        up.up(&tone, &mut wide);
        assert_eq!(wide.len(), 9600);
        down.down(&wide, &mut back);
        assert_eq!(back.len(), 1600);
        // Delay: (TAPS - 1) / 2 = 48 at 48 kHz, twice: 16 samples at 8 kHz.
        let lag = 16;
        let err: f32 = (400..1500)
            .map(|n| (back[n] - tone[n - lag]).powi(2))
            .sum::<f32>()
            / 1100.0;
        assert!(err < 0.01 * 0.125, "round-trip error {err}");
        // Above 4 kHz is removed going down: 10 kHz at 48 kHz vanishes.
        let hi: Vec<f32> = (0..4800)
            .map(|n| 0.5 * (2.0 * std::f32::consts::PI * 10_000.0 * n as f32 / 48_000.0).sin())
            .collect();
        let mut d = Resampler::default();
        d.down(&hi, &mut back);
        let rms = (back[100..].iter().map(|x| x * x).sum::<f32>() / 700.0).sqrt();
        assert!(rms < 0.01, "aliasing {rms}");
    }
}
