//! Test audio and metrics: speech from espeak-ng (resampled to 48 kHz by
//! sox, cached under the target directory), a synthetic room, seeded
//! noise, and the measurements the tests assert on.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Seeded xorshift64* for noise, loss and jitter.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        (self.unit() * 2.0 - 1.0) as f32
    }
}

fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-audio");
    std::fs::create_dir_all(&dir).expect("cache dir");
    dir
}

/// Speech at 48 kHz mono, normalised to -20 dBFS RMS.
pub fn speech(name: &str, voice: &str, text: &str) -> Vec<f32> {
    let dir = cache_dir();
    let wav = dir.join(format!("{name}-48k.wav"));
    if !wav.exists() {
        // Tests run in parallel and may want the same speech: build it under
        // a private name and rename it into place, so no test ever reads a
        // half-written file.
        let tag = format!(
            "{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], "");
        let raw = dir.join(format!("{tag}-raw.wav"));
        let tmp = dir.join(format!("{tag}-48k.wav"));
        let status = Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(&raw)
            .arg(text)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "espeak-ng is needed for test speech (cargo xtask test installs it)"
        );
        // -D: no dither, so the test audio is the same on every run.
        let status = Command::new("sox")
            .arg("-D")
            .arg(&raw)
            .args(["-r", "48000", "-c", "1", "-b", "16"])
            .arg(&tmp)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "sox is needed to resample test speech"
        );
        std::fs::rename(&tmp, &wav).expect("move test speech into place");
        let _ = std::fs::remove_file(&raw);
    }
    let mut pcm = read_wav(&std::fs::read(&wav).expect("wav"));
    let rms = (pcm.iter().map(|x| x * x).sum::<f32>() / pcm.len() as f32).sqrt();
    let gain = 0.1 / rms.max(1e-6);
    for x in &mut pcm {
        *x *= gain;
    }
    pcm
}

/// 16-bit mono PCM from a WAV file's data chunk.
pub fn read_wav(bytes: &[u8]) -> Vec<f32> {
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        if id == b"data" {
            let end = (i + 8 + len).min(bytes.len());
            return bytes[i + 8..end]
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk");
}

/// A room: bulk delay, then an exponentially decaying noise tail.
pub fn room_impulse(delay_ms: f32, tail_ms: f32, gain_db: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let delay = (delay_ms * 48.0) as usize;
    let tail = (tail_ms * 48.0) as usize;
    let mut h = vec![0.0f32; delay + tail];
    // Decay to -60 dB over the tail.
    let decay = (-6.9 / tail as f32).exp();
    let mut a = 1.0f32;
    for k in 0..tail {
        h[delay + k] = a * rng.signed();
        a *= decay;
    }
    h[delay] = 1.0;
    let energy: f32 = h.iter().map(|x| x * x).sum();
    let g = 10f32.powf(gain_db / 20.0) / energy.sqrt();
    for x in &mut h {
        *x *= g;
    }
    h
}

/// Linear convolution, truncated to the input's length.
pub fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let nz: Vec<(usize, f32)> = h
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| v.abs() > 1e-5)
        .collect();
    let mut y = vec![0.0f32; x.len()];
    for (k, v) in nz {
        for n in k..x.len() {
            y[n] += v * x[n - k];
        }
    }
    y
}

pub fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

pub fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(1e-30).log10()
}

/// SNR of `test` against `reference`, dB.
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let err: f64 = reference
        .iter()
        .zip(test)
        .map(|(&r, &t)| f64::from(r - t).powi(2))
        .sum();
    db(energy(reference) / err.max(1e-30))
}

/// The lag (in samples, `b` later than `a`) within `max_lag` that best
/// aligns `b` to `a`, by normalised cross-correlation.
pub fn best_lag(a: &[f32], b: &[f32], max_lag: usize) -> (usize, f64) {
    let mut best = (0, f64::MIN);
    for lag in 0..=max_lag {
        let n = a.len().min(b.len().saturating_sub(lag));
        let mut num = 0.0;
        let mut ea = 0.0;
        let mut eb = 0.0;
        for i in 0..n {
            let (x, y) = (f64::from(a[i]), f64::from(b[i + lag]));
            num += x * y;
            ea += x * x;
            eb += y * y;
        }
        let c = num / (ea * eb).sqrt().max(1e-30);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}
