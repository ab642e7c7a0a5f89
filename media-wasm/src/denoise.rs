//! Noise suppression with RNNoise (nnnoiseless), in two forms:
//! - **zero-window** ([`NoiseSuppressor::zero_window`], the send chain's
//!   default): RNNoise decides the gains, a causal minimum-phase filter
//!   applies them, and the stage adds no window of its own. Alone it keeps
//!   RNNoise's noise removal within 1-3 dB and its SI-SDR within 2.5 dB;
//!   in the whole chain it stays within 0.4-0.5 dB of itself through Opus,
//!   in 10 and 20 ms packets, where the chain test allows 1 dB
//!   (`tests/chain.rs`);
//! - **windowed** ([`NoiseSuppressor::new`]): RNNoise run the usual way,
//!   its output one 10 ms block late (what the chain used before).
//!
//! How the zero-window form works:
//!
//! RNNoise's own output is 10 ms late: it is the overlap-add of two 20 ms
//! analysis windows, so each block comes out one block after it went in.
//! That look-ahead is only needed to *apply* its gains through its own
//! synthesis; deciding them needs nothing but the past. So this stage runs
//! RNNoise as an analyser: every 10 ms it reads RNNoise's output for the
//! previous block against that block's input and takes the gain per band
//! (RNNoise's 22 bands, energy ratio of output to input). nnnoiseless does
//! not expose the gains themselves, nor the network without its synthesis,
//! and its source is not ours to copy, so they are measured from outside.
//!
//! The gains are then applied to the current block by a minimum-phase FIR
//! filter designed from them (real cepstrum, folded: the filter with that
//! magnitude response whose energy comes first), run sample by sample. A
//! minimum-phase filter has no look-ahead, so the stage adds no algorithmic
//! delay: what remains is the filter's phase, a few samples where the gains
//! change (measured on speech in `tests/denoise.rs`), against RNNoise's
//! 480.
//! The price is that gains are one block stale (10 ms: onsets are softened
//! for that long) and RNNoise's pitch comb filter is not applied. Between
//! two blocks' filters the output crossfades over [`FADE`] samples so a
//! gain change never clicks.
//!
//! Its voice-activity probability also tells the gain control when to
//! listen.
//!
//! Nothing allocates after construction: the FFTs run with preallocated
//! scratch (`tests/no_alloc.rs`). Every transform here has a real input
//! or a real output, so each runs as a real FFT (half a complex one).

use std::sync::Arc;

use nnnoiseless::DenoiseState;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;

use crate::frame::{fade_in, BLOCK, SAMPLE_RATE};

/// RNNoise works on 16-bit-scaled floats.
const SCALE: f32 = 32_768.0;
/// FFT length for measuring and designing (10.7 ms, 93.75 Hz bins).
const N: usize = 512;
/// Bins from 0 Hz to Nyquist.
const BINS: usize = N / 2 + 1;
/// Taps of the minimum-phase filter (2.7 ms; the smooth band gains give
/// a short impulse response, and the tail is tapered).
pub const TAPS: usize = 128;
/// Samples over which a new block's filter takes over from the last one's.
pub const FADE: usize = 128;
/// RNNoise's band edges in units of 200 Hz (its `EBAND_5MS`).
const BAND_EDGES: [usize; 22] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 34, 40, 48, 60, 78, 100,
];
/// Bands.
const BANDS: usize = BAND_EDGES.len();
/// The lowest gain applied (-50 dB): the log in the filter design needs a
/// floor, and RNNoise's own gains rarely go below it.
const MIN_GAIN: f32 = 0.003;

/// How far over the noise RNNoise has been removing a band must rise
/// before the stale gain is lifted (power ratio; a band of noise alone
/// fluctuates by several dB from block to block).
const ONSET: f32 = 4.0;

/// For each bin, the band below it and the weight of the band above
/// (RNNoise's triangular band interpolation, at this FFT's resolution).
#[derive(Clone, Copy)]
struct BinBand {
    band: usize,
    frac: f32,
}

fn bin_bands() -> [BinBand; BINS] {
    let mut out = [BinBand {
        band: BANDS - 1,
        frac: 0.0,
    }; BINS];
    for (k, b) in out.iter_mut().enumerate() {
        let hz = k as f32 * SAMPLE_RATE as f32 / N as f32;
        for i in 0..BANDS - 1 {
            let lo = (BAND_EDGES[i] * 200) as f32;
            let hi = (BAND_EDGES[i + 1] * 200) as f32;
            if hz >= lo && hz < hi {
                *b = BinBand {
                    band: i,
                    frac: (hz - lo) / (hi - lo),
                };
            }
        }
    }
    out
}

/// The FFT and its buffers, borrowed apart from the signals they measure.
struct Spectral<'a> {
    window: &'a [f32; BLOCK],
    bands: &'a [BinBand; BINS],
    forward: &'a dyn RealToComplex<f32>,
    real: &'a mut [f32; N],
    spectrum: &'a mut [Complex<f32>; BINS],
    scratch: &'a mut [Complex<f32>],
}

impl Spectral<'_> {
    /// RNNoise-band energies of `x`, windowed and zero-padded, into `out`.
    fn band_energy(&mut self, x: &[f32; BLOCK], out: &mut [f32; BANDS]) {
        for (i, r) in self.real.iter_mut().enumerate() {
            *r = if i < BLOCK {
                x[i] * self.window[i]
            } else {
                0.0
            };
        }
        // Lengths are fixed by construction, so this cannot fail.
        let _ = self.forward.process_with_scratch(
            &mut self.real[..],
            &mut self.spectrum[..],
            self.scratch,
        );
        *out = [0.0; BANDS];
        for (k, b) in self.bands.iter().enumerate() {
            let p = self.spectrum[k].norm_sqr();
            out[b.band] += (1.0 - b.frac) * p;
            if b.band + 1 < BANDS {
                out[b.band + 1] += b.frac * p;
            }
        }
    }
}

/// The noise suppressor stage: windowed or zero-window (see the module).
pub struct NoiseSuppressor {
    inner: Inner,
}

enum Inner {
    Windowed(Box<Windowed>),
    ZeroWindow(Box<ZeroWindow>),
}

/// RNNoise the usual way.
struct Windowed {
    state: Box<DenoiseState<'static>>,
    scratch_in: [f32; BLOCK],
    scratch_out: [f32; BLOCK],
    voice_probability: f32,
}

impl Windowed {
    fn process(&mut self, block: &mut [f32; BLOCK]) -> f32 {
        for (d, s) in self.scratch_in.iter_mut().zip(block.iter()) {
            *d = s * SCALE;
        }
        self.voice_probability = self
            .state
            .process_frame(&mut self.scratch_out, &self.scratch_in);
        for (d, s) in block.iter_mut().zip(self.scratch_out.iter()) {
            *d = s / SCALE;
        }
        self.voice_probability
    }
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self::new()
    }
}

impl NoiseSuppressor {
    /// A fresh windowed suppressor (RNNoise's own 10 ms synthesis).
    pub fn new() -> NoiseSuppressor {
        NoiseSuppressor {
            inner: Inner::Windowed(Box::new(Windowed {
                state: DenoiseState::new(),
                scratch_in: [0.0; BLOCK],
                scratch_out: [0.0; BLOCK],
                voice_probability: 0.0,
            })),
        }
    }

    /// A fresh zero-window suppressor (see the module).
    pub fn zero_window() -> NoiseSuppressor {
        NoiseSuppressor {
            inner: Inner::ZeroWindow(Box::new(ZeroWindow::new())),
        }
    }

    /// Whether this is the zero-window form.
    pub fn is_zero_window(&self) -> bool {
        matches!(self.inner, Inner::ZeroWindow(_))
    }

    /// Denoises one block in place; returns the voice probability (0-1).
    pub fn process(&mut self, block: &mut [f32; BLOCK]) -> f32 {
        match &mut self.inner {
            Inner::Windowed(w) => w.process(block),
            Inner::ZeroWindow(z) => z.process(block),
        }
    }

    /// The last block's voice probability.
    pub fn voice_probability(&self) -> f32 {
        match &self.inner {
            Inner::Windowed(w) => w.voice_probability,
            Inner::ZeroWindow(z) => z.voice_probability,
        }
    }

    /// Samples of delay the stage adds: RNNoise's synthesis overlap (one
    /// block) windowed, none zero-window (gains from the past, applied by
    /// a minimum-phase filter).
    pub fn delay_samples(&self) -> usize {
        match self.inner {
            Inner::Windowed(_) => BLOCK,
            Inner::ZeroWindow(_) => 0,
        }
    }

    /// Back to a fresh suppressor of the same form.
    pub fn reset(&mut self) {
        *self = if self.is_zero_window() {
            NoiseSuppressor::zero_window()
        } else {
            NoiseSuppressor::new()
        };
    }
}

/// The zero-window form.
struct ZeroWindow {
    state: Box<DenoiseState<'static>>,
    scaled_in: [f32; BLOCK],
    analysed: [f32; BLOCK],
    window: [f32; BLOCK],
    bands: [BinBand; BINS],
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// A real signal of N samples and the lower half of its spectrum.
    real: Box<[f32; N]>,
    spectrum: Box<[Complex<f32>; BINS]>,
    scratch: Vec<Complex<f32>>,
    /// Band gains measured on the last block.
    gains: [f32; BANDS],
    /// Band noise power estimated from RNNoise's last gains (what it took
    /// out of the last block), smoothed.
    noise: [f32; BANDS],
    /// The gains applied to the current block.
    applied: [f32; BANDS],
    /// The filter in force and the one taking over.
    filter: [f32; TAPS],
    next_filter: [f32; TAPS],
    /// The last `TAPS - 1` input samples, then the current block.
    history: Box<[f32; TAPS - 1 + BLOCK]>,
    /// The block through the new filter, and its first [`FADE`] samples
    /// through the old one (scratch).
    filtered: [f32; BLOCK],
    faded: [f32; FADE],
    /// RNNoise-band energies of the current block (scratch): the next
    /// block's energies of the previous one.
    now: [f32; BANDS],
    voice_probability: f32,
    /// Whether a filter has been designed yet (until then: pass through).
    started: bool,
}

impl ZeroWindow {
    fn new() -> ZeroWindow {
        let mut planner = RealFftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(N);
        let inverse = planner.plan_fft_inverse(N);
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        let mut window = [0.0f32; BLOCK];
        for (i, w) in window.iter_mut().enumerate() {
            *w = (std::f32::consts::FRAC_PI_2 * (i as f32 + 0.5) / BLOCK as f32)
                .sin()
                .powi(6);
        }
        let mut identity = [0.0f32; TAPS];
        identity[0] = 1.0;
        ZeroWindow {
            state: DenoiseState::new(),
            scaled_in: [0.0; BLOCK],
            analysed: [0.0; BLOCK],
            window,
            bands: bin_bands(),
            forward,
            inverse,
            real: Box::new([0.0; N]),
            spectrum: Box::new([Complex::new(0.0, 0.0); BINS]),
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
            gains: [1.0; BANDS],
            noise: [0.0; BANDS],
            applied: [1.0; BANDS],
            filter: identity,
            next_filter: identity,
            history: Box::new([0.0; TAPS - 1 + BLOCK]),
            filtered: [0.0; BLOCK],
            faded: [0.0; FADE],
            now: [0.0; BANDS],
            voice_probability: 0.0,
            started: false,
        }
    }

    fn process(&mut self, block: &mut [f32; BLOCK]) -> f32 {
        for (d, s) in self.scaled_in.iter_mut().zip(block.iter()) {
            *d = s * SCALE;
        }
        self.voice_probability = self
            .state
            .process_frame(&mut self.analysed, &self.scaled_in);
        // RNNoise's first output is its fade-in: measure from the second.
        if self.started {
            self.measure_gains();
            self.design_filter();
        } else {
            // Only the energies, for the next block's measurement.
            let mut now = [0.0f32; BANDS];
            Spectral {
                window: &self.window,
                bands: &self.bands,
                forward: &*self.forward,
                real: &mut self.real,
                spectrum: &mut self.spectrum,
                scratch: &mut self.scratch,
            }
            .band_energy(&self.scaled_in, &mut now);
            self.now = now;
        }
        self.started = true;
        self.apply(block);
        self.voice_probability
    }

    /// The gain RNNoise applied per band to the previous block.
    fn measure_gains(&mut self) {
        let mut ex = [0.0f32; BANDS];
        let mut ey = [0.0f32; BANDS];
        let mut spectral = Spectral {
            window: &self.window,
            bands: &self.bands,
            forward: &*self.forward,
            real: &mut self.real,
            spectrum: &mut self.spectrum,
            scratch: &mut self.scratch,
        };
        // The previous block's energies were measured as "now" a block ago.
        ex.copy_from_slice(&self.now);
        spectral.band_energy(&self.analysed, &mut ey);
        let mut now = [0.0f32; BANDS];
        spectral.band_energy(&self.scaled_in, &mut now);
        self.now = now;
        for i in 0..BANDS {
            // A band with nothing in it keeps its gain (no evidence).
            if ex[i] > 1e-3 {
                self.gains[i] = (ey[i] / ex[i]).sqrt().clamp(MIN_GAIN, 1.0);
                let removed = (ex[i] - ey[i]).max(0.0);
                self.noise[i] += 0.5 * (removed - self.noise[i]);
            }
            // The gains are a block old. Where the block being filtered
            // (whole before it is filtered: no look-ahead) holds far more
            // than the noise RNNoise has been removing, speech has started
            // since: let it through as a Wiener gain would, never below
            // RNNoise's own.
            let wiener = if now[i] > 1e-3 {
                (1.0 - ONSET * self.noise[i] / now[i]).max(0.0).sqrt()
            } else {
                0.0
            };
            self.applied[i] = self.gains[i].max(wiener).clamp(MIN_GAIN, 1.0);
        }
    }

    /// The minimum-phase filter whose magnitude is the band gains,
    /// interpolated per bin: log magnitude -> real cepstrum, folded onto
    /// positive quefrencies -> exp -> impulse response.
    fn design_filter(&mut self) {
        // The log magnitude is real and even, so its (real) cepstrum is
        // the real inverse FFT of its lower half.
        for k in 0..BINS {
            let b = self.bands[k];
            let hi = if b.band + 1 < BANDS {
                self.applied[b.band + 1]
            } else {
                self.applied[b.band]
            };
            let g = (1.0 - b.frac) * self.applied[b.band] + b.frac * hi;
            // A comparison, not `f32::max` (a libm call in wasm).
            let g = if g > MIN_GAIN { g } else { MIN_GAIN };
            self.spectrum[k] = Complex::new(g.ln(), 0.0);
        }
        // Lengths are fixed by construction and the DC and Nyquist bins
        // are real, so these cannot fail.
        let _ = self.inverse.process_with_scratch(
            &mut self.spectrum[..],
            &mut self.real[..],
            &mut self.scratch,
        );
        // Cepstrum (scaled by N, the inverse being unnormalised), folded.
        let scale = 1.0 / N as f32;
        for (q, c) in self.real.iter_mut().enumerate() {
            let fold = match q {
                0 => 1.0,
                q if q < N / 2 => 2.0,
                q if q == N / 2 => 1.0,
                _ => 0.0,
            };
            *c *= scale * fold;
        }
        let _ = self.forward.process_with_scratch(
            &mut self.real[..],
            &mut self.spectrum[..],
            &mut self.scratch,
        );
        // The folded cepstrum is real, so its spectrum is Hermitian: exp
        // the lower half, the real inverse FFT gives the impulse response.
        for c in self.spectrum.iter_mut() {
            *c = c.exp();
        }
        // DC and Nyquist are real up to rounding; the real inverse needs
        // them exactly real.
        self.spectrum[0].im = 0.0;
        self.spectrum[BINS - 1].im = 0.0;
        let _ = self.inverse.process_with_scratch(
            &mut self.spectrum[..],
            &mut self.real[..],
            &mut self.scratch,
        );
        // The impulse response, with its last quarter tapered to zero.
        let taper = TAPS / 4;
        for (t, h) in self.next_filter.iter_mut().enumerate() {
            let w = if t + taper >= TAPS {
                let x = (TAPS - t) as f32 / taper as f32;
                0.5 - 0.5 * (std::f32::consts::PI * x).cos()
            } else {
                1.0
            };
            *h = self.real[t] * scale * w;
        }
    }

    /// Filters the block with the new filter, crossfading from the old one
    /// over the first [`FADE`] samples.
    fn apply(&mut self, block: &mut [f32; BLOCK]) {
        let h = &mut self.history;
        h[TAPS - 1..].copy_from_slice(block);
        // Tap by tap over the whole block (out[i] += c[t] * x[i - t]): each
        // tap is a multiply-add over contiguous samples with no running
        // sum, which the compiler turns into SIMD, where a dot product per
        // sample (a serial float sum) stays scalar. Sample i's past is
        // history[.. TAPS - 1 + i], newest last.
        let new = &mut self.filtered;
        let old = &mut self.faded;
        *new = [0.0; BLOCK];
        *old = [0.0; FADE];
        for t in 0..TAPS {
            let x = &h[TAPS - 1 - t..TAPS - 1 - t + BLOCK];
            let c = self.next_filter[t];
            for (y, v) in new.iter_mut().zip(x) {
                *y += c * v;
            }
            let c = self.filter[t];
            for (y, v) in old.iter_mut().zip(&x[..FADE]) {
                *y += c * v;
            }
        }
        for (i, out) in block.iter_mut().enumerate() {
            *out = if i < FADE {
                let w = fade_in(i, FADE);
                old[i] * (1.0 - w) + new[i] * w
            } else {
                new[i]
            };
        }
        h.copy_within(BLOCK.., 0);
        self.filter = self.next_filter;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The designed filter's magnitude at `hz`, dB.
    fn response_db(h: &[f32], hz: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * hz / SAMPLE_RATE as f32;
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (t, c) in h.iter().enumerate() {
            re += c * (w * t as f32).cos();
            im -= c * (w * t as f32).sin();
        }
        10.0 * (re * re + im * im).max(1e-20).log10()
    }

    #[test]
    fn the_filter_has_the_band_gains_and_is_minimum_phase() {
        let mut ns = ZeroWindow::new();
        // Speech bands kept, the rest suppressed by 12 to 30 dB.
        for (i, g) in ns.applied.iter_mut().enumerate() {
            *g = match i {
                0..=2 => 0.25,
                3..=12 => 1.0,
                13..=16 => 0.5,
                _ => 0.03,
            };
        }
        ns.design_filter();
        let h = ns.next_filter;
        for (i, edge) in BAND_EDGES.iter().enumerate() {
            let hz = (*edge * 200) as f32 + 1.0;
            let want = 20.0 * ns.applied[i].log10();
            let got = response_db(&h, hz);
            // A band edge next to a steep step is smeared by the filter's
            // 2.7 ms length (375 Hz resolution); judge the others.
            let step = |j: usize| (20.0 * (ns.applied[j] / ns.applied[i]).log10()).abs();
            if (i > 0 && step(i - 1) > 6.0) || (i + 1 < BANDS && step(i + 1) > 6.0) {
                continue;
            }
            assert!(
                (got - want).abs() < 1.5,
                "band {i} ({hz} Hz): {got:.1} dB, want {want:.1} dB"
            );
        }
        // Minimum phase: the energy is at the start (no look-ahead).
        let e: f32 = h.iter().map(|x| x * x).sum();
        let head: f32 = h[..16].iter().map(|x| x * x).sum();
        assert!(
            head > 0.9 * e,
            "{:.3} of the energy in the first 16 taps",
            head / e
        );
    }
}
