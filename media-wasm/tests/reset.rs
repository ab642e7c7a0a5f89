//! Reset equals fresh, for every stage and both chains: after processing
//! some audio and a reset, a stage gives exactly what a new one gives.

mod support;

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::denoise::NoiseSuppressor;
use media::echo::EchoCanceller;
use media::frame::{BLOCK, PACKET};
use media::gain::AutoGain;
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;
use media::send::SendChain;
use support::*;

fn noise_blocks(seed: u64, n: usize) -> Vec<[f32; BLOCK]> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let mut b = [0.0f32; BLOCK];
            for (k, x) in b.iter_mut().enumerate() {
                *x = 0.2 * ((i * BLOCK + k) as f32 * 0.031).sin() + 0.02 * rng.signed();
            }
            b
        })
        .collect()
}

/// Runs `f` over warm-up input, resets, runs test input; compares with a
/// fresh instance on the test input.
fn check<S>(
    name: &str,
    fresh: impl Fn() -> S,
    reset: impl Fn(&mut S),
    run: impl Fn(&mut S, &[[f32; BLOCK]]) -> Vec<f32>,
) {
    let warm = noise_blocks(1, 60);
    let input = noise_blocks(2, 60);
    let mut used = fresh();
    let _ = run(&mut used, &warm);
    reset(&mut used);
    let a = run(&mut used, &input);
    let b = run(&mut fresh(), &input);
    assert!(
        !b.iter().all(|x| *x == 0.0),
        "{name}: the stage produced audio"
    );
    assert!(a == b, "{name}: reset differs from fresh");
}

#[test]
fn every_stage_resets_to_fresh() {
    check(
        "echo",
        EchoCanceller::new,
        EchoCanceller::reset,
        |s, blocks| {
            let mut out = Vec::new();
            for b in blocks {
                s.far_end(b);
                let mut x = *b;
                s.process(&mut x);
                out.extend_from_slice(&x);
            }
            out
        },
    );
    check(
        "denoise",
        NoiseSuppressor::new,
        NoiseSuppressor::reset,
        |s, blocks| {
            let mut out = Vec::new();
            for b in blocks {
                let mut x = *b;
                s.process(&mut x);
                out.extend_from_slice(&x);
            }
            out
        },
    );
    check("gain", AutoGain::default, AutoGain::reset, |s, blocks| {
        let mut out = Vec::new();
        for b in blocks {
            let mut x = *b;
            s.process(&mut x, 0.9);
            out.extend_from_slice(&x);
        }
        out
    });
    let codec = || {
        (
            Encoder::new(EncoderSettings::default()).expect("enc"),
            Decoder::new().expect("dec"),
        )
    };
    check(
        "codec",
        codec,
        |(e, d)| {
            e.reset().expect("reset");
            d.reset().expect("reset");
        },
        |(e, d), blocks| {
            let mut out = Vec::new();
            let mut pcm = [0.0f32; PACKET];
            for pair in blocks.chunks_exact(2) {
                let mut inp = [0.0f32; PACKET];
                inp[..BLOCK].copy_from_slice(&pair[0]);
                inp[BLOCK..].copy_from_slice(&pair[1]);
                let p = e.encode(&inp).expect("encode").to_vec();
                d.decode(&p, &mut pcm).expect("decode");
                out.extend_from_slice(&pcm);
                d.conceal(&mut pcm);
                out.extend_from_slice(&pcm);
            }
            out
        },
    );
    check(
        "send chain",
        || SendChain::new(7, EncoderSettings::default()).expect("send"),
        |s| s.reset().expect("reset"),
        |s, blocks| {
            let mut out = Vec::new();
            for b in blocks {
                s.far_end(b);
                let mut x = *b;
                if let Some(frame) = s.process_block(&mut x).expect("encode") {
                    out.extend(frame.iter().map(|&v| f32::from(v)));
                }
            }
            out
        },
    );
    check(
        "receive chain",
        || ReceiveChain::new(None, JitterSettings::default()).expect("recv"),
        |r| r.reset().expect("reset"),
        |r, blocks| {
            let mut enc = Encoder::new(EncoderSettings::default()).expect("enc");
            let mut out = Vec::new();
            let mut block = [0.0f32; BLOCK];
            for (i, pair) in blocks.chunks_exact(2).enumerate() {
                let mut inp = [0.0f32; PACKET];
                inp[..BLOCK].copy_from_slice(&pair[0]);
                inp[BLOCK..].copy_from_slice(&pair[1]);
                let p = enc.encode(&inp).expect("encode").to_vec();
                let now = i as f64 * 20.0;
                if i % 7 != 3 {
                    r.push_packet(i as u32, (i * PACKET) as u32, &p, now + 5.0);
                }
                r.next_block(&mut block, now + 10.0);
                out.extend_from_slice(&block);
                r.next_block(&mut block, now + 20.0);
                out.extend_from_slice(&block);
            }
            out
        },
    );
}
