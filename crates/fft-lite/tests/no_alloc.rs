//! The DSP rule: once planned, a transform allocates nothing. A counting
//! global allocator (this test binary's only) watches `process`,
//! `process_with_scratch` and the out-of-place form at the engine's sizes.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn planned_transforms_do_not_allocate() {
    let mut planner = FftPlanner::<f32>::new();
    for n in [128usize, 256, 480, 512] {
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let mut buffer = vec![Complex::new(0.5f32, -0.25); n];
        let mut other = vec![Complex::new(0.0f32, 0.0); n];
        let mut scratch = vec![Complex::new(0.0f32, 0.0); n];
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..10 {
            // Fresh input each round (unnormalised transforms grow).
            buffer.fill(Complex::new(0.5, -0.25));
            forward.process(&mut buffer);
            inverse.process_with_scratch(&mut buffer, &mut scratch);
            forward.process_outofplace_with_scratch(&mut buffer, &mut other, &mut []);
            // The planner hands back the same plan without building one.
            let _ = planner.plan_fft_forward(n);
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(after, before, "{} allocations at n {n}", after - before);
        // The last round: forward, inverse (n times the input), forward:
        // the DC bin holds n * n * (0.5 - 0.25i).
        let dc = other[0] / (n * n) as f32;
        assert!(
            (dc.re - 0.5).abs() < 1e-3 && (dc.im + 0.25).abs() < 1e-3,
            "{dc}"
        );
    }
}
