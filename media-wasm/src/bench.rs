//! One unit of each stage on synthetic speech-like audio, for the
//! benchmarks: the native bench times these with `Instant`, the wasm bench
//! (in Node) times the `sb_bench` export that calls the same code.

use crate::codec::{Decoder, Encoder, EncoderSettings};
use crate::denoise::NoiseSuppressor;
use crate::echo::EchoCanceller;
use crate::frame::{BLOCK, PACKET};
use crate::gain::AutoGain;

/// The stages, in chain order.
pub const STAGES: [&str; 5] = [
    "echo (10 ms)",
    "denoise+gain (10 ms)",
    "opus encode (20 ms)",
    "opus decode (20 ms)",
    "jitter insert+pop (20 ms)",
];

/// State for running stages one unit at a time.
pub struct StageBench {
    echo: EchoCanceller,
    denoise: NoiseSuppressor,
    gain: AutoGain,
    encoder: Encoder,
    decoder: Decoder,
    jitter: crate::jitter::JitterBuffer,
    block: [f32; BLOCK],
    packet_pcm: [f32; PACKET],
    packet: Vec<u8>,
    out: [f32; PACKET],
    n: u64,
}

impl StageBench {
    /// Fresh stages.
    pub fn new() -> Result<StageBench, crate::codec::CodecError> {
        let mut encoder = Encoder::new(EncoderSettings::default())?;
        let mut packet_pcm = [0.0f32; PACKET];
        for (i, x) in packet_pcm.iter_mut().enumerate() {
            let t = i as f32 / 48_000.0;
            *x = 0.1
                * (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                * (1.0 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin());
        }
        let packet = encoder.encode(&packet_pcm)?.to_vec();
        Ok(StageBench {
            echo: EchoCanceller::new(),
            // The send chain's form (zero-window).
            denoise: NoiseSuppressor::zero_window(),
            gain: AutoGain::default(),
            encoder,
            decoder: Decoder::new()?,
            jitter: crate::jitter::JitterBuffer::new(crate::jitter::JitterSettings::default()),
            block: [0.0; BLOCK],
            packet_pcm,
            packet,
            out: [0.0; PACKET],
            n: 0,
        })
    }

    /// Runs one unit of `stage` (an index into [`STAGES`]).
    pub fn run(&mut self, stage: usize) {
        self.n += 1;
        let offset = (self.n as usize % 2) * BLOCK;
        match stage {
            0 => {
                let mut played = [0.0f32; BLOCK];
                played.copy_from_slice(&self.packet_pcm[offset..offset + BLOCK]);
                self.echo.far_end(&played);
                self.block
                    .copy_from_slice(&self.packet_pcm[BLOCK - offset..2 * BLOCK - offset]);
                self.echo.process(&mut self.block);
            }
            1 => {
                self.block
                    .copy_from_slice(&self.packet_pcm[offset..offset + BLOCK]);
                let v = self.denoise.process(&mut self.block);
                self.gain.process(&mut self.block, v);
            }
            2 => {
                let _ = self.encoder.encode(&self.packet_pcm);
            }
            3 => {
                let _ = self.decoder.decode(&self.packet, &mut self.out);
            }
            _ => {
                let seq = self.n as u32;
                self.jitter.insert(
                    seq,
                    seq.wrapping_mul(PACKET as u32),
                    &self.packet,
                    self.n as f64 * 20.0,
                );
                let _ = self.jitter.pop(self.n as f64 * 20.0 + 1_000.0);
            }
        }
    }
}
