//! Radix-4 and radix-2 Stockham stages on f32 with WebAssembly SIMD
//! (`simd128`): two complex numbers per 128-bit vector. The audio engine's
//! transforms (AEC3's 128-point FFTs, run as 64-point ones, and the noise
//! suppressor's 512-point real FFTs, run as 256-point ones) are all
//! radix-4 and radix-2 stages, so these carry nearly all of its FFT work
//! in the browser; everything else takes the portable stages in `lib.rs`.
//!
//! The arithmetic is the portable stages' to the bit (up to the sign of
//! a zero): the same operations in the same order, no fused multiply-add
//! (a complex product is `a.re * b.re - a.im * b.im`, `a.re * b.im +
//! a.im * b.re`, as num_complex computes it), so the engine's output does
//! not depend on which path ran. The native tests cannot run this module;
//! it was checked in Node against the portable stages and a naive DFT for
//! every power-of-two length from 4 to 1,024 and 480, both directions
//! (docs/benchmarks.md, issue 16, dsp2).
//!
//! Unsafe code, allowed in this module only: the plan is generic over
//! the sample type, so an f32 plan's buffers are reinterpreted as
//! `Complex<f32>` after a `TypeId` check, and vectors are loaded and
//! stored through pointers whose bounds are checked before each loop.
#![allow(unsafe_code)]

use core::any::TypeId;
use core::arch::wasm32::{
    f32x4, f32x4_add, f32x4_mul, f32x4_sub, i32x4_shuffle, i64x2_shuffle, v128, v128_load,
    v128_store,
};

use num_complex::Complex;

use crate::{FftDirection, FftNum};

/// The slice as `Complex<f32>` when `T` is `f32`.
pub(crate) fn as_f32<T: FftNum>(x: &[Complex<T>]) -> Option<&[Complex<f32>]> {
    if TypeId::of::<T>() != TypeId::of::<f32>() {
        return None;
    }
    // SAFETY: T is f32 (checked above), so the types are identical.
    Some(unsafe { core::slice::from_raw_parts(x.as_ptr().cast(), x.len()) })
}

/// The slice as `Complex<f32>` when `T` is `f32`, mutably.
pub(crate) fn as_f32_mut<T: FftNum>(x: &mut [Complex<T>]) -> Option<&mut [Complex<f32>]> {
    if TypeId::of::<T>() != TypeId::of::<f32>() {
        return None;
    }
    // SAFETY: T is f32 (checked above), so the types are identical.
    Some(unsafe { core::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) })
}

/// Two complex numbers from `x[i]` and `x[i + 1]`; the caller checked
/// `i + 1 < x.len()`.
#[inline(always)]
fn load(x: &[Complex<f32>], i: usize) -> v128 {
    debug_assert!(i + 1 < x.len());
    // SAFETY: Complex<f32> is repr(C) (two f32), so x[i], x[i + 1] are 16
    // contiguous bytes inside the slice (bounds checked by the caller's
    // loop limits, asserted in debug); v128_load allows any alignment.
    unsafe { v128_load(x.as_ptr().add(i).cast()) }
}

/// Stores two complex numbers at `x[i]`, `x[i + 1]` (as [`load`]).
#[inline(always)]
fn store(x: &mut [Complex<f32>], i: usize, v: v128) {
    debug_assert!(i + 1 < x.len());
    // SAFETY: as in `load`.
    unsafe { v128_store(x.as_mut_ptr().add(i).cast(), v) }
}

/// Twiddles for a pair of positions: (re, re', im sign-folded), so
/// a product is `v * re + swap(v) * im` (see [`mul`]).
#[derive(Clone, Copy)]
struct Twiddle {
    re: v128,
    im: v128,
}

#[inline(always)]
fn twiddle(a: Complex<f32>, b: Complex<f32>) -> Twiddle {
    Twiddle {
        re: f32x4(a.re, a.re, b.re, b.re),
        im: f32x4(-a.im, a.im, -b.im, b.im),
    }
}

/// Two complex products: (x.re w.re - x.im w.im, x.re w.im + x.im w.re)
/// lane pair by lane pair (the same operations as num_complex's `*`:
/// `x.re w.re + (-(x.im w.im))` rounds as the subtraction does).
#[inline(always)]
fn mul(x: v128, w: Twiddle) -> v128 {
    let swapped = i32x4_shuffle::<1, 0, 3, 2>(x, x);
    // re lanes: x.re w.re + x.im (-w.im); im lanes: x.im w.re + x.re w.im.
    f32x4_add(f32x4_mul(x, w.re), f32x4_mul(swapped, w.im))
}

/// `d` times -i (forward) or +i (inverse), as the portable radix-4
/// butterfly rotates.
#[inline(always)]
fn rotate(d: v128, forward: bool) -> v128 {
    let swapped = i32x4_shuffle::<1, 0, 3, 2>(d, d);
    // Forward: (d.im, -d.re); inverse: (-d.im, d.re). Negation by
    // multiplying by -1 is exact.
    let sign = if forward {
        f32x4(1.0, -1.0, 1.0, -1.0)
    } else {
        f32x4(-1.0, 1.0, -1.0, 1.0)
    };
    f32x4_mul(swapped, sign)
}

#[inline(always)]
fn butterfly4(x: [v128; 4], forward: bool) -> [v128; 4] {
    let t0 = f32x4_add(x[0], x[2]);
    let t1 = f32x4_sub(x[0], x[2]);
    let t2 = f32x4_add(x[1], x[3]);
    let t3 = rotate(f32x4_sub(x[1], x[3]), forward);
    [
        f32x4_add(t0, t2),
        f32x4_add(t1, t3),
        f32x4_sub(t0, t2),
        f32x4_sub(t1, t3),
    ]
}

/// One Stockham stage of radix `R` (2 or 4), as `Plan::stage_fixed`:
/// returns false (and does nothing) when this stage has no SIMD form.
pub(crate) fn stage<T: FftNum, const R: usize>(
    n: usize,
    span: usize,
    direction: FftDirection,
    twiddles: &[Complex<T>],
    src: &[Complex<T>],
    dst: &mut [Complex<T>],
) -> bool {
    let (Some(tw), Some(src)) = (as_f32(twiddles), as_f32(src)) else {
        return false;
    };
    let Some(dst) = as_f32_mut(dst) else {
        return false;
    };
    if src.len() < n || dst.len() < n || tw.len() < n {
        return false;
    }
    let forward = direction == FftDirection::Forward;
    let m = n / R;
    let step = n / (span * R);
    match R {
        // Pairs of neighbouring positions k, k + 1 within each group: src
        // and dst are contiguous in k, the twiddles are per pair.
        4 if span % 2 == 0 => {
            for k in (0..span).step_by(2) {
                let w1 = twiddle(tw[k * step], tw[(k + 1) * step]);
                let w2 = twiddle(tw[2 * k * step], tw[2 * (k + 1) * step]);
                let w3 = twiddle(tw[3 * k * step], tw[3 * (k + 1) * step]);
                for g in 0..m / span {
                    let j = g * span + k;
                    let x = [
                        load(src, j),
                        mul(load(src, j + m), w1),
                        mul(load(src, j + 2 * m), w2),
                        mul(load(src, j + 3 * m), w3),
                    ];
                    let y = butterfly4(x, forward);
                    let d = g * span * 4 + k;
                    for (r, v) in y.into_iter().enumerate() {
                        store(dst, d + r * span, v);
                    }
                }
            }
            true
        }
        // The first stage (no twiddles): pairs of neighbouring groups g,
        // g + 1, whose four outputs each land side by side.
        4 if span == 1 && m % 2 == 0 => {
            for g in (0..m).step_by(2) {
                let x = [
                    load(src, g),
                    load(src, g + m),
                    load(src, g + 2 * m),
                    load(src, g + 3 * m),
                ];
                let y = butterfly4(x, forward);
                let d = 4 * g;
                store(dst, d, i64x2_shuffle::<0, 2>(y[0], y[1]));
                store(dst, d + 2, i64x2_shuffle::<0, 2>(y[2], y[3]));
                store(dst, d + 4, i64x2_shuffle::<1, 3>(y[0], y[1]));
                store(dst, d + 6, i64x2_shuffle::<1, 3>(y[2], y[3]));
            }
            true
        }
        2 if span % 2 == 0 => {
            for k in (0..span).step_by(2) {
                let w1 = twiddle(tw[k * step], tw[(k + 1) * step]);
                for g in 0..m / span {
                    let j = g * span + k;
                    let a = load(src, j);
                    let b = mul(load(src, j + m), w1);
                    let d = g * span * 2 + k;
                    store(dst, d, f32x4_add(a, b));
                    store(dst, d + span, f32x4_sub(a, b));
                }
            }
            true
        }
        _ => false,
    }
}
