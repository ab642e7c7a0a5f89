//! Noise suppression with nnnoiseless (RNNoise in Rust), 10 ms blocks at
//! 48 kHz. Its voice-activity probability also tells the gain control
//! when to listen.

use nnnoiseless::DenoiseState;

use crate::frame::BLOCK;

/// RNNoise works on 16-bit-scaled floats.
const SCALE: f32 = 32_768.0;

/// The noise suppressor stage.
pub struct NoiseSuppressor {
    state: Box<DenoiseState<'static>>,
    scratch_in: [f32; BLOCK],
    scratch_out: [f32; BLOCK],
    voice_probability: f32,
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self::new()
    }
}

impl NoiseSuppressor {
    /// A fresh suppressor.
    pub fn new() -> NoiseSuppressor {
        NoiseSuppressor {
            state: DenoiseState::new(),
            scratch_in: [0.0; BLOCK],
            scratch_out: [0.0; BLOCK],
            voice_probability: 0.0,
        }
    }

    /// Denoises one block in place; returns the voice probability (0-1).
    pub fn process(&mut self, block: &mut [f32; BLOCK]) -> f32 {
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

    /// The last block's voice probability.
    pub fn voice_probability(&self) -> f32 {
        self.voice_probability
    }

    /// Samples of delay the stage adds (RNNoise's analysis window overlap).
    pub fn delay_samples(&self) -> usize {
        BLOCK
    }

    /// Back to a fresh suppressor.
    pub fn reset(&mut self) {
        *self = NoiseSuppressor::new();
    }
}
