//! Switchboard's small FFT, published to the build under the name
//! `rustfft` (through `[patch.crates-io]` in the root Cargo.toml) so the
//! audio engine's DSP crates use it unchanged: aec3 (complex FFTs of 128,
//! and 256/512 in parts the engine does not link), realfft and easyfft
//! (a complex FFT of 480 under nnnoiseless's real FFT of 960).
//!
//! Why: rustfft chooses its planner (AVX, SSE, NEON, wasm SIMD, scalar) at
//! run time and links every algorithm of every planner for both f32 and
//! f64, which was over half of the engine's WebAssembly code. This crate
//! is one portable mixed-radix Stockham FFT (radix-4, -2, -3 and -5
//! butterflies, a direct DFT butterfly for other small primes, a direct
//! DFT of the whole length when a prime factor is large), with twiddles
//! computed once per plan. An even-length transform whose input is real
//! (every imaginary part zero) or Hermitian (its output real) runs as one
//! transform of half the length plus a twiddle pass: AEC3 feeds its
//! 128-point FFTs only such inputs. It implements only what those crates call:
//! [`FftPlanner`], [`Fft`] (`process`, `process_with_scratch`,
//! `process_outofplace_with_scratch` and the scratch lengths), [`Length`],
//! [`Direction`], [`FftDirection`], [`FftNum`], and the `num_complex` and
//! `num_traits` re-exports. Like rustfft, results are not normalised, and
//! a buffer holding several transforms end to end is processed as a batch.
//!
//! No call allocates once a plan exists: `process_with_scratch` and the
//! out-of-place form use the caller's buffers, and `process` (which
//! rustfft serves with a fresh heap scratch on every call) uses a stack
//! scratch for lengths up to [`STACK_SCRATCH`].

use std::fmt::Debug;
use std::sync::Arc;

pub use num_complex;
pub use num_traits;

use num_complex::Complex;
use num_traits::{FromPrimitive, Signed};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

/// The sample types an FFT can run on (the same bounds as rustfft's).
pub trait FftNum: Copy + FromPrimitive + Signed + Sync + Send + Debug + 'static {}

impl<T> FftNum for T where T: Copy + FromPrimitive + Signed + Sync + Send + Debug + 'static {}

/// Forward (e^-i) or inverse (e^+i, not normalised) transform.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum FftDirection {
    /// X[k] = sum x[n] e^(-2 pi i k n / N).
    Forward,
    /// x[n] = sum X[k] e^(+2 pi i k n / N), without the 1/N.
    Inverse,
}

impl FftDirection {
    /// The other direction.
    pub fn opposite_direction(&self) -> FftDirection {
        match self {
            FftDirection::Forward => FftDirection::Inverse,
            FftDirection::Inverse => FftDirection::Forward,
        }
    }
}

/// The length of one transform.
pub trait Length {
    /// Points per transform.
    fn len(&self) -> usize;
    /// Whether the transform has no points.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The direction of a planned transform.
pub trait Direction {
    /// Forward or inverse.
    fn fft_direction(&self) -> FftDirection;
}

/// Stack scratch `process` uses; longer transforms allocate in `process`
/// (use `process_with_scratch` for them).
pub const STACK_SCRATCH: usize = 1024;

/// A planned transform of one length and direction.
pub trait Fft<T: FftNum>: Length + Direction + Sync + Send {
    /// Transforms `buffer` (a multiple of the length) in place, using
    /// `scratch` (at least [`Fft::get_inplace_scratch_len`]).
    fn process_with_scratch(&self, buffer: &mut [Complex<T>], scratch: &mut [Complex<T>]);

    /// Transforms `input` into `output` (equal lengths, a multiple of the
    /// length); `input` is used as working space and left undefined.
    fn process_outofplace_with_scratch(
        &self,
        input: &mut [Complex<T>],
        output: &mut [Complex<T>],
        scratch: &mut [Complex<T>],
    );

    /// Scratch `process_with_scratch` needs.
    fn get_inplace_scratch_len(&self) -> usize;

    /// Scratch `process_outofplace_with_scratch` needs.
    fn get_outofplace_scratch_len(&self) -> usize;

    /// Transforms `buffer` in place. Allocates nothing up to
    /// [`STACK_SCRATCH`] points.
    fn process(&self, buffer: &mut [Complex<T>]) {
        let need = self.get_inplace_scratch_len();
        let zero = Complex::new(T::zero(), T::zero());
        // The scratch is zeroed on every call (no unsafe here), so it is
        // sized to the transform: AEC3 calls this for every 128-point FFT,
        // and clearing 1,024 points each time cost more than the FFT's
        // last stage.
        if need <= 128 {
            let mut scratch = [zero; 128];
            self.process_with_scratch(buffer, &mut scratch[..need]);
        } else if need <= 512 {
            let mut scratch = [zero; 512];
            self.process_with_scratch(buffer, &mut scratch[..need]);
        } else if need <= STACK_SCRATCH {
            let mut scratch = [zero; STACK_SCRATCH];
            self.process_with_scratch(buffer, &mut scratch[..need]);
        } else {
            let mut scratch = vec![Complex::new(T::zero(), T::zero()); need];
            self.process_with_scratch(buffer, &mut scratch);
        }
    }
}

/// Largest radix a stage handles with a butterfly on the stack; a length
/// with a larger prime factor is computed as one direct DFT.
const MAX_RADIX: usize = 32;

/// One planned transform.
struct Plan<T> {
    len: usize,
    direction: FftDirection,
    /// w^k = e^(-+2 pi i k / len) for k in 0..len, sign by direction.
    twiddles: Vec<Complex<T>>,
    /// Radices in stage order; empty for a direct DFT or a length below 2.
    radices: Vec<usize>,
    /// A prime factor exceeded [`MAX_RADIX`]: one direct DFT.
    direct: bool,
    /// For an even length of at least 4: the half-length transform in
    /// the same direction, for inputs that are real or Hermitian (see
    /// [`Plan::transform_real`]).
    half: Option<Box<Plan<T>>>,
    /// Butterfly constants, signed by direction: sin(2 pi / 3) for radix
    /// 3; cos and sin of 2 pi / 5 and 4 pi / 5 for radix 5.
    sin3: T,
    five: [T; 4],
}

/// Where a transform's result ended up.
#[derive(PartialEq, Eq)]
enum Side {
    First,
    Second,
}

fn factor(mut n: usize) -> Vec<usize> {
    let mut radices = Vec::new();
    while n % 4 == 0 {
        radices.push(4);
        n /= 4;
    }
    if n % 2 == 0 {
        radices.push(2);
        n /= 2;
    }
    let mut p = 3;
    while p * p <= n {
        while n % p == 0 {
            radices.push(p);
            n /= p;
        }
        p += 2;
    }
    if n > 1 {
        radices.push(n);
    }
    radices
}

fn from_f64<T: FftNum>(x: f64) -> T {
    T::from_f64(x).unwrap_or_else(T::zero)
}

impl<T: FftNum> Plan<T> {
    fn new(len: usize, direction: FftDirection) -> Plan<T> {
        let sign = match direction {
            FftDirection::Forward => -1.0,
            FftDirection::Inverse => 1.0,
        };
        let twiddles = (0..len)
            .map(|k| {
                let angle = sign * 2.0 * std::f64::consts::PI * k as f64 / len as f64;
                Complex::new(from_f64(angle.cos()), from_f64(angle.sin()))
            })
            .collect();
        let radices = if len < 2 { Vec::new() } else { factor(len) };
        let direct = radices.iter().any(|&r| r > MAX_RADIX);
        let tau = 2.0 * std::f64::consts::PI;
        Plan {
            len,
            direction,
            twiddles,
            radices: if direct { Vec::new() } else { radices },
            direct,
            half: (len >= 4 && len % 2 == 0).then(|| Box::new(Plan::new(len / 2, direction))),
            sin3: from_f64(sign * (tau / 3.0).sin()),
            five: [
                from_f64((tau / 5.0).cos()),
                from_f64((2.0 * tau / 5.0).cos()),
                from_f64(sign * (tau / 5.0).sin()),
                from_f64(sign * (2.0 * tau / 5.0).sin()),
            ],
        }
    }

    /// Transforms `a` (len points); the result is left in `a` or `b`.
    fn transform(&self, a: &mut [Complex<T>], b: &mut [Complex<T>]) -> Side {
        if self.direct {
            self.direct_dft(a, b);
            return Side::Second;
        }
        let mut side = Side::First;
        let mut span = 1;
        for &radix in &self.radices {
            let (src, dst) = match side {
                Side::First => (&*a, &mut *b),
                Side::Second => (&*b, &mut *a),
            };
            match radix {
                2 if self.stage_simd::<2>(span, src, dst) => {}
                4 if self.stage_simd::<4>(span, src, dst) => {}
                2 => self.stage_fixed::<2>(span, src, dst),
                3 => self.stage_fixed::<3>(span, src, dst),
                4 => self.stage_fixed::<4>(span, src, dst),
                5 => self.stage_fixed::<5>(span, src, dst),
                _ => self.stage(radix, span, src, dst),
            }
            side = match side {
                Side::First => Side::Second,
                Side::Second => Side::First,
            };
            span *= radix;
        }
        side
    }

    /// Transforms one chunk in place with `scratch` (`len` points) by the
    /// fastest path its values allow: a real input (every imaginary part
    /// zero: what AEC3 feeds its forward FFTs) or a Hermitian one (a
    /// real output: AEC3's inverse FFTs) takes half a transform; anything
    /// else the full one. The paths agree to rounding.
    fn transform_in_place(&self, chunk: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        if let Some(half) = &self.half {
            if chunk.iter().all(|c| c.im == T::zero()) {
                self.transform_real(half, chunk, scratch);
                return;
            }
            if self.is_hermitian(chunk) {
                self.transform_hermitian(half, chunk, scratch);
                return;
            }
        }
        if self.transform(chunk, scratch) == Side::Second {
            chunk.copy_from_slice(scratch);
        }
    }

    /// Whether `x[len - k]` is exactly the conjugate of `x[k]` (so the
    /// transform's output is real).
    fn is_hermitian(&self, x: &[Complex<T>]) -> bool {
        let n = self.len;
        x[0].im == T::zero()
            && x[n / 2].im == T::zero()
            && (1..n / 2).all(|k| x[n - k].re == x[k].re && x[n - k].im == -x[k].im)
    }

    /// A real input of `len` points as one complex input of `len / 2`
    /// (even samples real, odd imaginary): with Z its transform,
    /// E[k] = (Z[k] + conj Z[M-k]) / 2 and O[k] = (Z[k] - conj Z[M-k]) / 2i
    /// are the even and odd samples' transforms, and
    /// X[k] = E[k] + w^k O[k], X[k + M] = E[k] - w^k O[k].
    fn transform_real(&self, half: &Plan<T>, x: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        let m = self.len / 2;
        let (z, other) = scratch.split_at_mut(m);
        for (i, v) in z.iter_mut().enumerate() {
            *v = Complex::new(x[2 * i].re, x[2 * i + 1].re);
        }
        let z: &[Complex<T>] = if half.transform(z, &mut other[..m]) == Side::First {
            z
        } else {
            &other[..m]
        };
        let half_of = T::from_f64(0.5).unwrap_or_else(T::zero);
        for k in 0..m {
            let a = z[k];
            let b = z[(m - k) % m].conj();
            let e = (a + b) * half_of;
            let d = (a - b) * half_of;
            // d / i = -i d.
            let o = Complex::new(d.im, -d.re);
            let wo = self.twiddles[k] * o;
            x[k] = e + wo;
            x[k + m] = e - wo;
        }
    }

    /// A Hermitian input (real output) of `len` points through one
    /// complex transform of `len / 2`: the even outputs are the transform
    /// of X[k] + X[k + M], the odd ones of (X[k] - X[k + M]) w^k, both
    /// real, so one transform of the first plus i times the second gives
    /// them as real and imaginary parts.
    fn transform_hermitian(
        &self,
        half: &Plan<T>,
        x: &mut [Complex<T>],
        scratch: &mut [Complex<T>],
    ) {
        let m = self.len / 2;
        let (z, other) = scratch.split_at_mut(m);
        for (k, v) in z.iter_mut().enumerate() {
            let even = x[k] + x[k + m];
            let odd = (x[k] - x[k + m]) * self.twiddles[k];
            // even + i odd.
            *v = Complex::new(even.re - odd.im, even.im + odd.re);
        }
        let z: &[Complex<T>] = if half.transform(z, &mut other[..m]) == Side::First {
            z
        } else {
            &other[..m]
        };
        for (n, v) in z.iter().enumerate() {
            x[2 * n] = Complex::new(v.re, T::zero());
            x[2 * n + 1] = Complex::new(v.im, T::zero());
        }
    }

    /// One Stockham stage: sub-transforms of `span` points are combined
    /// `radix` at a time into sub-transforms of `span * radix` points,
    /// read from `src` and written to `dst` in natural order.
    fn stage(&self, radix: usize, span: usize, src: &[Complex<T>], dst: &mut [Complex<T>]) {
        let n = self.len;
        let m = n / radix;
        let step = n / (span * radix);
        let zero = Complex::new(T::zero(), T::zero());
        let mut v = [zero; MAX_RADIX];
        let mut w = [zero; MAX_RADIX];
        // Twiddles depend only on the position within the sub-transform,
        // so each set is looked up once and used for every group.
        for k in 0..span {
            for (r, t) in w.iter_mut().enumerate().take(radix) {
                *t = self.twiddles[r * k * step];
            }
            for g in 0..m / span {
                let j = g * span + k;
                v[0] = src[j];
                for r in 1..radix {
                    let x = src[j + r * m];
                    v[r] = if k == 0 { x } else { x * w[r] };
                }
                self.butterfly(radix, &mut v[..radix]);
                let d = g * span * radix + k;
                for (r, x) in v.iter().enumerate().take(radix) {
                    dst[d + r * span] = *x;
                }
            }
        }
    }

    /// A radix-2 or -4 stage with WebAssembly SIMD on f32 (see
    /// `simd.rs`); false when it has none here (other targets, f64, odd
    /// spans), and the portable stage runs.
    #[inline(always)]
    fn stage_simd<const R: usize>(
        &self,
        span: usize,
        src: &[Complex<T>],
        dst: &mut [Complex<T>],
    ) -> bool {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            simd::stage::<T, R>(self.len, span, self.direction, &self.twiddles, src, dst)
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        {
            let _ = (span, src, dst);
            false
        }
    }

    /// [`Plan::stage`] for a radix known at compile time (the common
    /// ones), so its loops unroll and its values stay in registers.
    fn stage_fixed<const R: usize>(&self, span: usize, src: &[Complex<T>], dst: &mut [Complex<T>]) {
        let n = self.len;
        let m = n / R;
        let step = n / (span * R);
        let zero = Complex::new(T::zero(), T::zero());
        let mut w = [zero; R];
        for k in 0..span {
            for (r, t) in w.iter_mut().enumerate() {
                *t = self.twiddles[r * k * step];
            }
            for g in 0..m / span {
                let j = g * span + k;
                let mut v = [zero; R];
                for (r, x) in v.iter_mut().enumerate() {
                    *x = src[j + r * m];
                }
                if k != 0 {
                    for r in 1..R {
                        v[r] = v[r] * w[r];
                    }
                }
                self.butterfly(R, &mut v);
                let d = g * span * R + k;
                for (r, x) in v.iter().enumerate() {
                    dst[d + r * span] = *x;
                }
            }
        }
    }

    /// A DFT of `radix` points in place.
    #[inline(always)]
    fn butterfly(&self, radix: usize, v: &mut [Complex<T>]) {
        match radix {
            2 => {
                let (a, b) = (v[0], v[1]);
                v[0] = a + b;
                v[1] = a - b;
            }
            4 => {
                let t0 = v[0] + v[2];
                let t1 = v[0] - v[2];
                let t2 = v[1] + v[3];
                let d = v[1] - v[3];
                // (v1 - v3) times -i (forward) or +i (inverse).
                let t3 = match self.direction {
                    FftDirection::Forward => Complex::new(d.im, -d.re),
                    FftDirection::Inverse => Complex::new(-d.im, d.re),
                };
                v[0] = t0 + t2;
                v[1] = t1 + t3;
                v[2] = t0 - t2;
                v[3] = t1 - t3;
            }
            3 => {
                let sum = v[1] + v[2];
                let half = T::from_f64(0.5).unwrap_or_else(T::zero);
                let mid = v[0] - sum * half;
                let d = (v[1] - v[2]) * self.sin3;
                // i times d.
                let rot = Complex::new(-d.im, d.re);
                v[0] = v[0] + sum;
                v[1] = mid + rot;
                v[2] = mid - rot;
            }
            5 => {
                let [c1, c2, s1, s2] = self.five;
                let (a0, b1, b2) = (v[0], v[1] + v[4], v[2] + v[3]);
                let (d1, d2) = (v[1] - v[4], v[2] - v[3]);
                let r1 = a0 + b1 * c1 + b2 * c2;
                let r2 = a0 + b1 * c2 + b2 * c1;
                let q1 = d1 * s1 + d2 * s2;
                let q2 = d1 * s2 - d2 * s1;
                // i times q.
                let i1 = Complex::new(-q1.im, q1.re);
                let i2 = Complex::new(-q2.im, q2.re);
                v[0] = a0 + b1 + b2;
                v[1] = r1 + i1;
                v[4] = r1 - i1;
                v[2] = r2 + i2;
                v[3] = r2 - i2;
            }
            _ => {
                let zero = Complex::new(T::zero(), T::zero());
                let mut input = [zero; MAX_RADIX];
                input[..radix].copy_from_slice(v);
                let step = self.len / radix;
                for (s, out) in v.iter_mut().enumerate() {
                    let mut acc = input[0];
                    for (r, x) in input.iter().enumerate().take(radix).skip(1) {
                        acc = acc + *x * self.twiddles[(r * s % radix) * step];
                    }
                    *out = acc;
                }
            }
        }
    }

    /// The whole transform as one direct DFT, `src` into `dst`.
    fn direct_dft(&self, src: &[Complex<T>], dst: &mut [Complex<T>]) {
        let n = self.len;
        for (k, out) in dst.iter_mut().enumerate().take(n) {
            let mut acc = Complex::new(T::zero(), T::zero());
            for (j, x) in src.iter().enumerate().take(n) {
                acc = acc + *x * self.twiddles[j * k % n];
            }
            *out = acc;
        }
    }
}

impl<T: FftNum> Length for Plan<T> {
    fn len(&self) -> usize {
        self.len
    }
}

impl<T: FftNum> Direction for Plan<T> {
    fn fft_direction(&self) -> FftDirection {
        self.direction
    }
}

impl<T: FftNum> Fft<T> for Plan<T> {
    fn process_with_scratch(&self, buffer: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        let n = self.len;
        if n == 0 {
            return;
        }
        assert!(
            buffer.len() % n == 0 && scratch.len() >= n,
            "FFT of {n}: buffer of {} (not a multiple) or scratch of {} (too short)",
            buffer.len(),
            scratch.len()
        );
        let scratch = &mut scratch[..n];
        for chunk in buffer.chunks_exact_mut(n) {
            self.transform_in_place(chunk, scratch);
        }
    }

    fn process_outofplace_with_scratch(
        &self,
        input: &mut [Complex<T>],
        output: &mut [Complex<T>],
        _scratch: &mut [Complex<T>],
    ) {
        let n = self.len;
        if n == 0 {
            return;
        }
        assert!(
            input.len() == output.len() && input.len() % n == 0,
            "FFT of {n}: input of {} and output of {}",
            input.len(),
            output.len()
        );
        for (i, o) in input.chunks_exact_mut(n).zip(output.chunks_exact_mut(n)) {
            if self.transform(i, o) == Side::First {
                o.copy_from_slice(i);
            }
        }
    }

    fn get_inplace_scratch_len(&self) -> usize {
        self.len
    }

    fn get_outofplace_scratch_len(&self) -> usize {
        0
    }
}

/// Plans transforms and keeps them, so asking twice for the same length
/// and direction returns the same plan (easyfft asks on every call).
pub struct FftPlanner<T: FftNum> {
    plans: Vec<(usize, FftDirection, Arc<dyn Fft<T>>)>,
}

impl<T: FftNum> Default for FftPlanner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FftNum> FftPlanner<T> {
    /// An empty planner.
    pub fn new() -> FftPlanner<T> {
        FftPlanner { plans: Vec::new() }
    }

    /// A transform of `len` points in `direction`.
    pub fn plan_fft(&mut self, len: usize, direction: FftDirection) -> Arc<dyn Fft<T>> {
        if let Some((_, _, plan)) = self
            .plans
            .iter()
            .find(|(l, d, _)| *l == len && *d == direction)
        {
            return Arc::clone(plan);
        }
        let plan: Arc<dyn Fft<T>> = Arc::new(Plan::new(len, direction));
        self.plans.push((len, direction, Arc::clone(&plan)));
        plan
    }

    /// A forward transform of `len` points.
    pub fn plan_fft_forward(&mut self, len: usize) -> Arc<dyn Fft<T>> {
        self.plan_fft(len, FftDirection::Forward)
    }

    /// An inverse (unnormalised) transform of `len` points.
    pub fn plan_fft_inverse(&mut self, len: usize) -> Arc<dyn Fft<T>> {
        self.plan_fft(len, FftDirection::Inverse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A naive DFT in f64, the reference.
    fn naive(x: &[Complex<f64>], direction: FftDirection) -> Vec<Complex<f64>> {
        let n = x.len();
        let sign = match direction {
            FftDirection::Forward => -1.0,
            FftDirection::Inverse => 1.0,
        };
        (0..n)
            .map(|k| {
                x.iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let a = sign * 2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
                        v * Complex::new(a.cos(), a.sin())
                    })
                    .fold(Complex::new(0.0, 0.0), |s, t| s + t)
            })
            .collect()
    }

    fn signal(n: usize, seed: u64) -> Vec<Complex<f64>> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        (0..n).map(|_| Complex::new(next(), next())).collect()
    }

    /// Largest error relative to the reference's largest magnitude.
    fn rel_error(got: &[Complex<f64>], want: &[Complex<f64>]) -> f64 {
        let scale = want.iter().map(|v| v.norm()).fold(1e-300, f64::max);
        got.iter()
            .zip(want)
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max)
            / scale
    }

    const LENGTHS: &[usize] = &[
        1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 25, 27, 30, 31, 32, 37, 48, 49, 60, 64, 67, 74,
        96, 100, 120, 128, 160, 192, 240, 256, 480, 512, 960,
    ];

    #[test]
    fn in_place_matches_naive_dft_in_both_directions() {
        for &n in LENGTHS {
            for direction in [FftDirection::Forward, FftDirection::Inverse] {
                let x = signal(n, n as u64);
                let want = naive(&x, direction);
                let plan = FftPlanner::<f64>::new().plan_fft(n, direction);
                assert_eq!((plan.len(), plan.fft_direction()), (n, direction));
                let mut got = x.clone();
                plan.process(&mut got);
                let e = rel_error(&got, &want);
                assert!(e < 1e-12, "n {n} {direction:?}: error {e:e}");
            }
        }
    }

    #[test]
    fn out_of_place_and_batches_match_naive_dft() {
        for &n in LENGTHS {
            let plan = FftPlanner::<f64>::new().plan_fft_forward(n);
            // Three transforms end to end.
            let x: Vec<_> = (0..3).flat_map(|s| signal(n, s + 100)).collect();
            let want: Vec<_> = x
                .chunks(n)
                .flat_map(|c| naive(c, FftDirection::Forward))
                .collect();
            let mut input = x.clone();
            let mut output = vec![Complex::new(0.0, 0.0); 3 * n];
            let mut scratch = vec![Complex::new(0.0, 0.0); plan.get_outofplace_scratch_len()];
            plan.process_outofplace_with_scratch(&mut input, &mut output, &mut scratch);
            assert!(rel_error(&output, &want) < 1e-12, "n {n} out of place");
            let mut buffer = x.clone();
            let mut scratch = vec![Complex::new(0.0, 0.0); plan.get_inplace_scratch_len()];
            plan.process_with_scratch(&mut buffer, &mut scratch);
            assert!(rel_error(&buffer, &want) < 1e-12, "n {n} in place batch");
        }
    }

    #[test]
    fn real_and_hermitian_inputs_take_the_half_length_path_and_match_naive_dft() {
        for &n in LENGTHS.iter().filter(|&&n| n >= 4 && n % 2 == 0) {
            for direction in [FftDirection::Forward, FftDirection::Inverse] {
                let plan = FftPlanner::<f64>::new().plan_fft(n, direction);
                // Real: every imaginary part zero (AEC3's forward FFTs).
                let real: Vec<_> = signal(n, n as u64 + 1)
                    .iter()
                    .map(|c| Complex::new(c.re, 0.0))
                    .collect();
                // Hermitian: x[n - k] = conj x[k] (AEC3's inverse FFTs).
                let mut hermitian = signal(n, n as u64 + 2);
                hermitian[0].im = 0.0;
                hermitian[n / 2].im = 0.0;
                for k in 1..n / 2 {
                    hermitian[n - k] = hermitian[k].conj();
                }
                for (what, x) in [("real", real), ("hermitian", hermitian)] {
                    let want = naive(&x, direction);
                    // Twice end to end, through `process`.
                    let mut got: Vec<_> = x.iter().chain(x.iter()).copied().collect();
                    plan.process(&mut got);
                    let e = rel_error(&got[..n], &want).max(rel_error(&got[n..], &want));
                    assert!(e < 1e-12, "n {n} {direction:?} {what}: error {e:e}");
                    if what == "hermitian" {
                        // A real output is exactly real.
                        assert!(got.iter().all(|c| c.im == 0.0), "n {n}: imaginary output");
                    }
                }
            }
        }
    }

    #[test]
    fn f32_is_accurate_at_the_engine_sizes() {
        for n in [128usize, 256, 480, 512] {
            let x = signal(n, 7);
            let want = naive(&x, FftDirection::Forward);
            let mut buf: Vec<Complex<f32>> = x
                .iter()
                .map(|v| Complex::new(v.re as f32, v.im as f32))
                .collect();
            FftPlanner::<f32>::new()
                .plan_fft_forward(n)
                .process(&mut buf);
            let got: Vec<_> = buf
                .iter()
                .map(|v| Complex::new(f64::from(v.re), f64::from(v.im)))
                .collect();
            let e = rel_error(&got, &want);
            assert!(e < 1e-5, "n {n}: f32 error {e:e}");
        }
    }

    #[test]
    fn forward_then_inverse_returns_n_times_the_input() {
        let n = 480;
        let mut planner = FftPlanner::<f64>::new();
        let x = signal(n, 3);
        let mut y = x.clone();
        planner.plan_fft_forward(n).process(&mut y);
        planner.plan_fft_inverse(n).process(&mut y);
        let back: Vec<_> = y.iter().map(|v| v / n as f64).collect();
        assert!(rel_error(&back, &x) < 1e-12);
    }

    #[test]
    fn the_planner_reuses_plans() {
        let mut planner = FftPlanner::<f32>::new();
        let a = planner.plan_fft_forward(128);
        let b = planner.plan_fft_forward(128);
        let c = planner.plan_fft_inverse(128);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(
            c.fft_direction().opposite_direction(),
            FftDirection::Forward
        );
    }

    #[test]
    fn zero_length_is_a_no_op() {
        let plan = FftPlanner::<f32>::new().plan_fft_forward(0);
        let mut empty: Vec<Complex<f32>> = Vec::new();
        plan.process(&mut empty);
        assert!(plan.is_empty());
    }
}
