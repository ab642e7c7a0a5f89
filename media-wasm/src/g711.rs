//! G.711 (ITU-T G.711 μ-law and A-law) and the 8 kHz <-> 48 kHz
//! conversion, shared by the server's SIP trunk legs (which transcode for
//! an agent whose engine takes only Opus) and the engine's telephone legs
//! ([`crate::telephone`], which play and send G.711 the backend forwards
//! untouched). One implementation, so both ends quantise alike.
//!
//! The resampler is a windowed-sinc FIR (cutoff 3.6 kHz) used both ways:
//! zero-stuff then filter going up, filter then keep every 6th going down.
//! Its state spans packets so there is no click at packet edges.

use protocol::media::Codec;

/// 20 ms at 8 kHz.
pub const NARROW: usize = 160;
/// The upsampling factor 8 kHz -> 48 kHz.
const RATIO: usize = 6;
/// Filter length (at 48 kHz); odd, so each pass delays a whole 48 samples.
const TAPS: usize = 97;

/// Encodes one 16-bit linear sample as μ-law (G.711 table 2a, on the
/// 14-bit magnitude the 16-bit sample's top bits carry).
pub fn ulaw_encode_i16(x: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(x);
    let sign = if s < 0 {
        s = -s - 1;
        0x80
    } else {
        0
    };
    s = (s + BIAS).min(0x7fff);
    let exp = (31 - (s as u32).leading_zeros()) as i32 - 7;
    let mant = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mant as u8)
}

/// Decodes one μ-law byte to its 16-bit reconstruction value.
pub fn ulaw_decode_i16(b: u8) -> i16 {
    let b = !b;
    let exp = i32::from((b >> 4) & 7);
    let mant = i32::from(b & 0x0f);
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    (if b & 0x80 != 0 { -mag } else { mag }) as i16
}

/// Encodes one 16-bit linear sample as A-law (G.711 table 1a, on the
/// 13-bit magnitude; even bits inverted).
pub fn alaw_encode_i16(x: i16) -> u8 {
    let s = i32::from(x) >> 3; // 13-bit
    let (sign, mag) = if s >= 0 { (0x80u8, s) } else { (0, -s - 1) };
    let byte = if mag < 32 {
        (mag >> 1) as u8
    } else {
        let exp = (31 - (mag as u32).leading_zeros()) as i32 - 4;
        ((exp << 4) as u8) | ((mag >> exp) & 0x0f) as u8
    };
    (byte | sign) ^ 0x55
}

/// Decodes one A-law byte to its 16-bit reconstruction value.
pub fn alaw_decode_i16(b: u8) -> i16 {
    let b = b ^ 0x55;
    let exp = i32::from((b >> 4) & 7);
    let mant = i32::from(b & 0x0f);
    let mag = if exp == 0 {
        (mant << 4) + 8
    } else {
        ((mant << 4) + 0x108) << (exp - 1)
    };
    (if b & 0x80 != 0 { mag } else { -mag }) as i16
}

fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32768.0)
        .round()
        .clamp(-32768.0, 32767.0) as i16
}

/// Encodes one sample (-1.0..1.0) as μ-law.
pub fn ulaw_encode(x: f32) -> u8 {
    ulaw_encode_i16(to_i16(x))
}

/// Decodes one μ-law byte.
pub fn ulaw_decode(b: u8) -> f32 {
    f32::from(ulaw_decode_i16(b)) / 32768.0
}

/// Encodes one sample as A-law.
pub fn alaw_encode(x: f32) -> u8 {
    alaw_encode_i16(to_i16(x))
}

/// Decodes one A-law byte.
pub fn alaw_decode(b: u8) -> f32 {
    f32::from(alaw_decode_i16(b)) / 32768.0
}

/// Encodes with `codec` (A-law for PCMA, μ-law otherwise).
pub fn encode(codec: Codec, pcm: &[f32], out: &mut Vec<u8>) {
    out.clear();
    match codec {
        Codec::Pcma => out.extend(pcm.iter().map(|&x| alaw_encode(x))),
        _ => out.extend(pcm.iter().map(|&x| ulaw_encode(x))),
    }
}

/// Encodes one sample with `codec` (A-law for PCMA, μ-law otherwise).
pub fn encode_one(codec: Codec, x: f32) -> u8 {
    match codec {
        Codec::Pcma => alaw_encode(x),
        _ => ulaw_encode(x),
    }
}

/// Decodes with `codec` (A-law for PCMA, μ-law otherwise).
pub fn decode(codec: Codec, bytes: &[u8], out: &mut Vec<f32>) {
    out.clear();
    match codec {
        Codec::Pcma => out.extend(bytes.iter().map(|&b| alaw_decode(b))),
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
    }

    /// Code words and reconstruction values from G.711's tables (16-bit
    /// linear: μ-law's 14-bit values times 4, A-law's 13-bit times 8).
    #[test]
    fn known_code_words_of_the_g711_tables() {
        // μ-law: +0 is 0xFF, -0 is 0x7F; full scale 0x80 / 0x00 (8031
        // in 14 bits, i.e. 32124); segment 1 starts at 33 (132).
        assert_eq!(ulaw_encode_i16(0), 0xff);
        assert_eq!(ulaw_encode_i16(-1), 0x7f);
        assert_eq!(ulaw_encode_i16(i16::MAX), 0x80);
        assert_eq!(ulaw_encode_i16(i16::MIN), 0x00);
        assert_eq!(ulaw_decode_i16(0x80), 32124);
        assert_eq!(ulaw_decode_i16(0x00), -32124);
        assert_eq!(ulaw_decode_i16(0xff), 0);
        assert_eq!(ulaw_decode_i16(0x7f), 0);
        assert_eq!(ulaw_decode_i16(0xfe), 8);
        assert_eq!(ulaw_decode_i16(0xef), 132);
        assert_eq!(ulaw_decode_i16(0xdf), 396);
        // Decision values: 14-bit 1 and 2 are interval 1 (0xFE); 4 is the
        // next (0xFD); 31 is segment 0's last, 32 still (interval 15)...
        assert_eq!(ulaw_encode_i16(4), 0xfe);
        assert_eq!(ulaw_encode_i16(12), 0xfd);
        // A-law: +0 is 0xD5, -0 0x55 (reconstruction +-1 in 13 bits: 8);
        // full scale 0xAA / 0x2A (4032 in 13 bits: 32256).
        assert_eq!(alaw_encode_i16(0), 0xd5);
        assert_eq!(alaw_encode_i16(-1), 0x55);
        assert_eq!(alaw_encode_i16(i16::MAX), 0xaa);
        assert_eq!(alaw_encode_i16(i16::MIN), 0x2a);
        assert_eq!(alaw_decode_i16(0xd5), 8);
        assert_eq!(alaw_decode_i16(0x55), -8);
        assert_eq!(alaw_decode_i16(0xaa), 32256);
        assert_eq!(alaw_decode_i16(0x2a), -32256);
        // Segment 2 starts at 13-bit 64 (512): code 0x20 before inversion.
        assert_eq!(alaw_encode_i16(512), 0x20 ^ 0x80 ^ 0x55);
        assert_eq!(alaw_decode_i16(0x20 ^ 0x80 ^ 0x55), 528);
    }

    /// The sign and segment rules: the sign bit (set for positive, after
    /// μ-law's inversion of all bits and A-law's of the even bits), three
    /// segment bits and four interval bits; the step doubles from segment
    /// to segment (μ-law 2, 4 ... 256 in 14 bits; A-law 2, 2, 4 ... 128 in
    /// 13 bits), and every reconstruction value encodes back to its word.
    #[test]
    fn sign_and_segment_rules_hold_for_every_code_word() {
        for c in 0..=255u8 {
            let u = !c;
            let (seg, q) = (u32::from((u >> 4) & 7), i32::from(u & 15));
            let v = ulaw_decode_i16(c);
            assert_eq!(v > 0, u & 0x80 == 0 && v != 0, "μ-law sign of {c:#x}");
            if q < 15 {
                let next = ulaw_decode_i16(!(u + 1));
                assert_eq!((next - v).abs(), 8 << seg, "μ-law step in segment {seg}");
            }
            if c != 0x7f {
                assert_eq!(ulaw_encode_i16(v), c, "μ-law {c:#x} round trip");
            }
            let a = c ^ 0x55;
            let (seg, q) = (u32::from((a >> 4) & 7), i32::from(a & 15));
            let v = alaw_decode_i16(c);
            assert_eq!(v > 0, a & 0x80 != 0, "A-law sign of {c:#x}");
            if q < 15 {
                let next = alaw_decode_i16((a + 1) ^ 0x55);
                let step = if seg == 0 { 16 } else { 16 << (seg - 1) };
                assert_eq!((next - v).abs(), step, "A-law step in segment {seg}");
            }
            assert_eq!(alaw_encode_i16(v), c, "A-law {c:#x} round trip");
        }
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
