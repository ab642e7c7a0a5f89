//! The echo canceller's three-band filter bank (48 kHz <-> three 16 kHz
//! bands), the same linear filters as aec3's `ThreeBandFilterBank` but
//! computed so the compiler can vectorise them.
//!
//! aec3's bank runs twelve sparse 4-tap filters per call, each sample
//! through a branch per tap (is this tap in the block or in the saved
//! state?): in wasm it was a quarter of the echo canceller's time, more
//! than its FFTs. Both directions of that bank are linear and invariant
//! under a shift of three input samples (one band sample), so each is
//! fully described by its impulse responses, which this module *measures*
//! once, at construction, by feeding impulses through aec3's own bank (no
//! coefficients are copied from it):
//! - analysis: band `b` at band time `n` is the sum over the three input
//!   phases `p` (the samples `3j + p`) of a short FIR over that phase's
//!   samples;
//! - synthesis: output sample `3n + p` is the sum over the bands of a
//!   short FIR over each band.
//!
//! Each FIR is run tap by tap over the whole 64-sample block (a
//! multiply-add over contiguous samples, with no running sum), which is
//! what the wasm build's SIMD turns into four lanes at a time. Rounding
//! differs from aec3's (a different order of the same sums): the outputs
//! agree to about 1e-6 of full scale (unit test below), and the echo
//! tests hold their thresholds.

use aec3::audio_processing::three_band_filter_bank::ThreeBandFilterBank;

/// Bands.
pub const BANDS: usize = 3;
/// Samples per band per call (a 4 ms chunk: 192 samples at 48 kHz).
pub const BAND: usize = 64;
/// Samples per call at 48 kHz.
pub const FULL: usize = BAND * BANDS;
/// Longest response kept, in band samples. aec3's filters are 4 taps at a
/// sparsity of 4 with offsets up to 2, so 15; measured, and checked.
const TAPS: usize = 16;
/// Band samples measured per impulse (three calls: the responses are
/// well inside).
const MEASURED: usize = 3 * BAND;

/// Per band (analysis) or per output phase (synthesis), per input stream,
/// the FIR taps.
type Taps = [[[f32; TAPS]; BANDS]; BANDS];

/// Measures the analysis responses: `taps[b][p][d]` is band `b`'s
/// response at band delay `d` to an impulse on input phase `p`.
fn measure_analysis() -> Taps {
    let mut taps = [[[0.0f32; TAPS]; BANDS]; BANDS];
    for p in 0..BANDS {
        let mut bank = ThreeBandFilterBank::new(FULL);
        let mut input = [0.0f32; FULL];
        input[p] = 1.0;
        let mut out = [[0.0f32; MEASURED]; BANDS];
        for call in 0..MEASURED / BAND {
            let mut bands = [[0.0f32; BAND]; BANDS];
            let [b0, b1, b2] = &mut bands;
            bank.analysis(&input, &mut [&mut b0[..], &mut b1[..], &mut b2[..]]);
            for (o, b) in out.iter_mut().zip(bands.iter()) {
                o[call * BAND..(call + 1) * BAND].copy_from_slice(b);
            }
            input = [0.0; FULL];
        }
        for b in 0..BANDS {
            taps[b][p].copy_from_slice(&out[b][..TAPS]);
        }
    }
    taps
}

/// Measures the synthesis responses: `taps[p][b][d]` is output phase
/// `p`'s response at band delay `d` to an impulse in band `b`.
fn measure_synthesis() -> Taps {
    let mut taps = [[[0.0f32; TAPS]; BANDS]; BANDS];
    for b in 0..BANDS {
        let mut bank = ThreeBandFilterBank::new(FULL);
        let mut bands = [[0.0f32; BAND]; BANDS];
        bands[b][0] = 1.0;
        let mut out = [0.0f32; BANDS * MEASURED];
        for call in 0..MEASURED / BAND {
            let [b0, b1, b2] = &bands;
            bank.synthesis(
                &[&b0[..], &b1[..], &b2[..]],
                &mut out[call * FULL..(call + 1) * FULL],
            );
            bands = [[0.0; BAND]; BANDS];
        }
        for p in 0..BANDS {
            for d in 0..TAPS {
                taps[p][b][d] = out[BANDS * d + p];
            }
        }
    }
    taps
}

/// Largest response beyond [`TAPS`] band samples (zero when the kept taps
/// hold the whole response).
fn tail_beyond_taps() -> f32 {
    let mut worst = 0.0f32;
    for p in 0..BANDS {
        let mut bank = ThreeBandFilterBank::new(FULL);
        let mut input = [0.0f32; FULL];
        input[p] = 1.0;
        for call in 0..MEASURED / BAND {
            let mut bands = [[0.0f32; BAND]; BANDS];
            let [b0, b1, b2] = &mut bands;
            bank.analysis(&input, &mut [&mut b0[..], &mut b1[..], &mut b2[..]]);
            for band in &bands {
                for (i, v) in band.iter().enumerate() {
                    if call * BAND + i >= TAPS {
                        worst = worst.max(v.abs());
                    }
                }
            }
            input = [0.0; FULL];
        }
    }
    worst
}

/// One direction's state: the last `TAPS - 1` samples of each input
/// stream, then the current block.
struct Streams {
    history: [[f32; TAPS - 1 + BAND]; BANDS],
}

impl Streams {
    fn new() -> Streams {
        Streams {
            history: [[0.0; TAPS - 1 + BAND]; BANDS],
        }
    }

    /// `out[o][n] = sum over s, d of taps[o][s][d] * stream s at n - d`.
    fn filter(&mut self, taps: &Taps, out: &mut [[f32; BAND]; BANDS]) {
        for (o, taps_o) in out.iter_mut().zip(taps.iter()) {
            *o = [0.0; BAND];
            for (h, taps_os) in self.history.iter().zip(taps_o.iter()) {
                for (d, c) in taps_os.iter().enumerate() {
                    let x = &h[TAPS - 1 - d..TAPS - 1 - d + BAND];
                    for (y, v) in o.iter_mut().zip(x) {
                        *y += c * v;
                    }
                }
            }
        }
        for h in &mut self.history {
            h.copy_within(BAND.., 0);
        }
    }
}

/// A three-band analysis and synthesis bank for 192-sample calls.
pub struct BandSplit {
    analysis_taps: Box<Taps>,
    synthesis_taps: Box<Taps>,
    analysis: Streams,
    synthesis: Streams,
}

impl Default for BandSplit {
    fn default() -> Self {
        Self::new()
    }
}

impl BandSplit {
    /// A fresh bank (measures aec3's bank: a few hundred microseconds).
    pub fn new() -> BandSplit {
        debug_assert!(tail_beyond_taps() == 0.0, "aec3's bank got longer");
        BandSplit {
            analysis_taps: Box::new(measure_analysis()),
            synthesis_taps: Box::new(measure_synthesis()),
            analysis: Streams::new(),
            synthesis: Streams::new(),
        }
    }

    /// 192 samples at 48 kHz into 64 in each band.
    pub fn analysis(&mut self, input: &[f32; FULL], bands: &mut [[f32; BAND]; BANDS]) {
        for (p, h) in self.analysis.history.iter_mut().enumerate() {
            for (n, x) in h[TAPS - 1..].iter_mut().enumerate() {
                *x = input[BANDS * n + p];
            }
        }
        self.analysis.filter(&self.analysis_taps, bands);
    }

    /// 64 samples in each band into 192 at 48 kHz.
    pub fn synthesis(&mut self, bands: &[[f32; BAND]; BANDS], out: &mut [f32; FULL]) {
        for (h, b) in self.synthesis.history.iter_mut().zip(bands.iter()) {
            h[TAPS - 1..].copy_from_slice(b);
        }
        let mut phases = [[0.0f32; BAND]; BANDS];
        self.synthesis.filter(&self.synthesis_taps, &mut phases);
        for (p, phase) in phases.iter().enumerate() {
            for (n, y) in phase.iter().enumerate() {
                out[BANDS * n + p] = *y;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    #[test]
    fn the_measured_responses_are_whole() {
        assert_eq!(tail_beyond_taps(), 0.0);
        // And not trivially empty: every band sees every phase.
        let a = measure_analysis();
        for band in &a {
            for phase in band {
                assert!(phase.iter().any(|c| c.abs() > 1e-3));
            }
        }
    }

    #[test]
    fn matches_aec3s_bank_both_ways_on_noise() {
        let mut ours = BandSplit::new();
        let mut theirs = ThreeBandFilterBank::new(FULL);
        let mut theirs_synthesis = ThreeBandFilterBank::new(FULL);
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        let mut worst = (0.0f32, 0.0f32);
        // 16-bit scale, as the echo canceller feeds it.
        for _ in 0..50 {
            let mut input = [0.0f32; FULL];
            for x in &mut input {
                *x = 20_000.0 * noise(&mut seed);
            }
            let mut a = [[0.0f32; BAND]; BANDS];
            ours.analysis(&input, &mut a);
            let mut b = [[0.0f32; BAND]; BANDS];
            {
                let [b0, b1, b2] = &mut b;
                theirs.analysis(&input, &mut [&mut b0[..], &mut b1[..], &mut b2[..]]);
            }
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                worst.0 = worst.0.max((x - y).abs());
            }
            // Synthesis of the same (their) bands.
            let mut out = [0.0f32; FULL];
            ours.synthesis(&b, &mut out);
            let mut want = [0.0f32; FULL];
            let [b0, b1, b2] = &b;
            theirs_synthesis.synthesis(&[&b0[..], &b1[..], &b2[..]], &mut want);
            for (x, y) in out.iter().zip(want.iter()) {
                worst.1 = worst.1.max((x - y).abs());
            }
        }
        // 1e-6 of full scale (32,768): float rounding, not a different
        // filter.
        assert!(
            worst.0 < 0.03 && worst.1 < 0.03,
            "analysis off by {}, synthesis by {}",
            worst.0,
            worst.1
        );
    }
}
