//! Native CPU benchmark of the audio engine: p50/p99 per stage and for the
//! whole send + receive chain per 20 ms, and the worst single render
//! quantum of the scheduled engine.
//!
//! Then the chain's algorithmic delay, measured deterministically: a
//! synthetic voiced signal (a glottal pulse train through two formant
//! resonators, in syllables) goes through each stage alone and through the
//! whole engine looped back, and the delay is the lag of the normalised
//! cross-correlation peak. It depends on the code only, not on the
//! machine's load, so it is the figure latency work is driven by.
//!
//! `cargo xtask bench media` (runs this and the wasm bench in Node).

use std::time::Instant;

use media::bench::{StageBench, STAGES};
use media::codec::{Decoder, Encoder, EncoderSettings};
use media::denoise::NoiseSuppressor;
use media::echo::EchoCanceller;
use media::engine::Engine;
use media::frame::{BLOCK, PACKET, QUANTUM};
use media::jitter::JitterSettings;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A deterministic voiced test signal: a pulse train whose pitch glides
/// between 110 and 220 Hz, through formant resonators that move, gated
/// into 200 ms syllables with 50 ms gaps; peak about 0.3.
fn voiced(samples: usize) -> Vec<f32> {
    let rate = 48_000.0f64;
    let mut out = vec![0.0f32; samples];
    let mut phase = 0.0f64;
    let (mut y1a, mut y2a, mut y1b, mut y2b) = (0.0f64, 0.0, 0.0, 0.0);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for (i, o) in out.iter_mut().enumerate() {
        let t = i as f64 / rate;
        let pitch = 165.0 + 55.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
        phase += pitch / rate;
        let pulse = if phase >= 1.0 {
            phase -= 1.0;
            1.0
        } else {
            0.0
        };
        // A little aspiration noise, as in real voices.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
        let x = pulse + 0.02 * noise;
        let f1 = 500.0 + 250.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
        let f2 = 1_500.0 + 600.0 * (2.0 * std::f64::consts::PI * 0.9 * t).cos();
        let res = |f: f64, bw: f64| {
            let r = (-std::f64::consts::PI * bw / rate).exp();
            (
                2.0 * r * (2.0 * std::f64::consts::PI * f / rate).cos(),
                -r * r,
            )
        };
        let (a1, a2) = res(f1, 90.0);
        let ya = x + a1 * y1a + a2 * y2a;
        y2a = y1a;
        y1a = ya;
        let (b1, b2) = res(f2, 120.0);
        let yb = ya + b1 * y1b + b2 * y2b;
        y2b = y1b;
        y1b = yb;
        let syllable = (t * 4.0).fract();
        let gate = if syllable < 0.8 {
            (std::f64::consts::PI * syllable / 0.8).sin()
        } else {
            0.0
        };
        *o = (0.004 * (ya + 0.5 * yb) * gate) as f32;
    }
    let peak = out.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for x in &mut out {
        *x *= 0.3 / peak;
    }
    out
}

/// The lag (samples, `output` later than `input`) of the normalised
/// cross-correlation peak, searched over 0..=max_lag on the samples from
/// `from` on; with the peak value.
fn delay_of(input: &[f32], output: &[f32], from: usize, max_lag: usize) -> (usize, f64) {
    let len = input.len().min(output.len()).saturating_sub(from + max_lag);
    let a = &input[from..from + len];
    let ea: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    (0..=max_lag)
        .map(|lag| {
            let b = &output[from + lag..from + lag + len];
            let num: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let eb: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
            (lag, num / (ea * eb).sqrt().max(1e-30))
        })
        .fold((0, f64::MIN), |best, c| if c.1 > best.1 { c } else { best })
}

fn print_delay(what: &str, (lag, corr): (usize, f64), declared: Option<f64>) {
    let declared = declared.map_or_else(|| "-".to_string(), |d| format!("{d:.2}"));
    println!(
        "| {what} | {lag} | {:.2} | {declared} | {corr:.3} |",
        lag as f64 / 48.0
    );
}

/// Each stage alone, then the whole engine looped back (its frames fed
/// straight back in, so the jitter buffer sits at its floor).
fn algorithmic_delay() {
    let seconds = 6;
    let x = voiced(48_000 * seconds);
    let n = x.len() / PACKET * PACKET;
    let skip = 48_000 * 2;
    let max_lag = 4_800;
    println!();
    println!("algorithmic delay (deterministic: synthetic voiced signal, cross-correlation peak, from the third second)");
    println!("| stage | samples | ms | declared ms | correlation |");
    println!("| --- | --- | --- | --- | --- |");

    // Echo canceller, silent far end.
    let mut aec = EchoCanceller::new();
    let mut out = vec![0.0f32; n];
    let silence = [0.0f32; BLOCK];
    for (i, o) in x[..n].chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
        let mut block: [f32; BLOCK] = i.try_into().expect("block");
        aec.far_end(&silence);
        aec.process(&mut block);
        o.copy_from_slice(&block);
    }
    let declared = |s: usize| Some(s as f64 / 48.0);
    print_delay(
        "echo canceller (AEC3, far end silent)",
        delay_of(&x, &out, skip, max_lag),
        declared(EchoCanceller::DELAY_SAMPLES),
    );

    // Noise suppressor.
    let mut ns = NoiseSuppressor::new();
    for (i, o) in x[..n].chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
        let mut block: [f32; BLOCK] = i.try_into().expect("block");
        ns.process(&mut block);
        o.copy_from_slice(&block);
    }
    print_delay(
        "noise suppressor",
        delay_of(&x, &out, skip, max_lag),
        declared(ns.delay_samples()),
    );

    // Opus encode + decode.
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut dec = Decoder::new().expect("decoder");
    let mut pcm = [0.0f32; PACKET];
    for (i, o) in x[..n]
        .chunks_exact(PACKET)
        .zip(out.chunks_exact_mut(PACKET))
    {
        let packet = enc
            .encode(i.try_into().expect("packet"))
            .expect("encode")
            .to_vec();
        dec.decode(&packet, &mut pcm).expect("decode");
        o.copy_from_slice(&pcm);
    }
    print_delay(
        "Opus encode + decode",
        delay_of(&x, &out, skip, max_lag),
        declared(enc.lookahead()),
    );

    // The zero-window noise suppressor (the send chain's default, see
    // media::denoise).
    let mut ns = NoiseSuppressor::zero_window();
    for (i, o) in x[..n].chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
        let mut block: [f32; BLOCK] = i.try_into().expect("block");
        ns.process(&mut block);
        o.copy_from_slice(&block);
    }
    print_delay(
        "noise suppressor, zero-window form",
        delay_of(&x, &out, skip, max_lag),
        declared(ns.delay_samples()),
    );

    // The whole engine, every stage on, looped back: 20 and 10 ms packets,
    // each with RNNoise windowed (the old default) and with the
    // zero-window suppressor (the default now).
    for (packet_ms, zero_window) in [(20, false), (20, true), (10, false), (10, true)] {
        let mut engine =
            Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
        engine.set_packet_ms(packet_ms).expect("10 or 20 ms");
        engine.send_chain().set_denoise_zero_window(zero_window);
        let m = x.len() / QUANTUM * QUANTUM;
        let mut out = vec![0.0f32; m];
        for (i, o) in x[..m]
            .chunks_exact(QUANTUM)
            .zip(out.chunks_exact_mut(QUANTUM))
        {
            let frame = engine
                .process_quantum(i, o)
                .expect("process")
                .map(<[u8]>::to_vec);
            if let Some(f) = frame {
                engine.receive(&f).expect("own frame");
            }
        }
        let (s, r) = engine.added_latency_ms();
        let buffer = f64::from(engine.stats().buffer_delay_ms);
        let ns = if zero_window { ", zero-window NS" } else { "" };
        print_delay(
            &format!(
                "whole engine, {packet_ms} ms packets{ns}, looped back (send + jitter floor + playout)"
            ),
            delay_of(&x, &out, skip, max_lag),
            Some(s + buffer),
        );
        let stages = engine.send_chain().streaming_delay_samples() as f64 / 48.0;
        println!("declared: send {s:.2} ms (of which the stages' own delay {stages:.2} ms), jitter buffer floor and playout {buffer:.2} ms (playout about {r:.2})");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--delay-only") {
        algorithmic_delay();
        return;
    }
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
    // The quanta that completed a packet (the last echo chunk, the
    // suppressor and the encode in one): the heaviest.
    let mut packet_quanta = Vec::new();
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
        let spent = start.elapsed().as_secs_f64() * 1e6;
        quanta.push(spent);
        if let Some(f) = frame {
            packet_quanta.push(spent);
            pending.push(f);
        }
    }
    quanta.sort_by(f64::total_cmp);
    packet_quanta.sort_by(f64::total_cmp);
    let (s, r) = engine.added_latency_ms();
    println!();
    println!("engine render quantum (128 samples = 2,667 us budget): p50 {:.0} us, p99 {:.0} us, worst {:.0} us", pct(&quanta, 0.5), pct(&quanta, 0.99), pct(&quanta, 1.0));
    println!(
        "  of which the {} quanta completing a packet: p50 {:.0} us, p99 {:.0} us, worst {:.0} us",
        packet_quanta.len(),
        pct(&packet_quanta, 0.5),
        pct(&packet_quanta, 0.99),
        pct(&packet_quanta, 1.0)
    );
    println!("engine added latency: capture-to-packet {s:.1} ms + packet-to-playout {r:.1} ms = {:.1} ms (jitter buffer at its floor)", s + r);
    algorithmic_delay();
}
