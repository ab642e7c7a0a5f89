//! Native CPU benchmark of the audio engine: p50/p99 per stage and for the
//! whole send + receive chain per 20 ms, and the worst single render
//! quantum of the scheduled engine.
//!
//! `cargo xtask bench media` (runs this and the wasm bench in Node).

use std::time::Instant;

use media::bench::{StageBench, STAGES};
use media::codec::EncoderSettings;
use media::engine::Engine;
use media::frame::QUANTUM;
use media::jitter::JitterSettings;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let iterations = 3_000;
    let mut bench = StageBench::new().expect("bench");
    println!("native, {iterations} units per stage, microseconds");
    println!("| stage | p50 | p99 |");
    println!("| --- | --- | --- |");
    let mut per_20ms = vec![0.0f64; iterations];
    for (stage, name) in STAGES.iter().enumerate() {
        let mut t = Vec::with_capacity(iterations);
        for slot in per_20ms.iter_mut() {
            let start = Instant::now();
            bench.run(stage);
            let us = start.elapsed().as_secs_f64() * 1e6;
            t.push(us);
            // Echo and denoise run twice per 20 ms.
            *slot += if stage <= 1 { 2.0 * us } else { us };
        }
        t.sort_by(f64::total_cmp);
        println!("| {name} | {:.0} | {:.0} |", pct(&t, 0.5), pct(&t, 0.99));
    }
    per_20ms.sort_by(f64::total_cmp);
    println!(
        "| whole chain per 20 ms | {:.0} | {:.0} |",
        pct(&per_20ms, 0.5),
        pct(&per_20ms, 0.99)
    );

    // The scheduled engine, loopback: every quantum timed.
    let mut engine =
        Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    let mut mic = [0.0f32; QUANTUM];
    let mut out = [0.0f32; QUANTUM];
    let mut quanta = Vec::new();
    let mut pending: Vec<Vec<u8>> = Vec::new();
    for q in 0..(48_000 * 20 / QUANTUM) {
        for (i, x) in mic.iter_mut().enumerate() {
            let t = (q * QUANTUM + i) as f32 / 48_000.0;
            *x = 0.1 * (2.0 * std::f32::consts::PI * 200.0 * t).sin();
        }
        for f in pending.drain(..) {
            let _ = engine.receive(&f);
        }
        let start = Instant::now();
        let frame = engine
            .process_quantum(&mic, &mut out)
            .expect("process")
            .map(<[u8]>::to_vec);
        quanta.push(start.elapsed().as_secs_f64() * 1e6);
        if let Some(f) = frame {
            pending.push(f);
        }
    }
    quanta.sort_by(f64::total_cmp);
    let (s, r) = engine.added_latency_ms();
    println!();
    println!("engine render quantum (128 samples = 2,667 us budget): p50 {:.0} us, p99 {:.0} us, worst {:.0} us", pct(&quanta, 0.5), pct(&quanta, 0.99), pct(&quanta, 1.0));
    println!("engine added latency: capture-to-packet {s:.1} ms + packet-to-playout {r:.1} ms = {:.1} ms (jitter buffer at its floor)", s + r);
}
