//! Acoustic echo cancellation with the Rust port of WebRTC's AEC3, driven
//! block by block: every 4 ms (192 samples at 48 kHz, one 64-sample AEC3
//! block in each of the three 16 kHz bands) goes through the three-band
//! filter bank and AEC3's public `BlockProcessor` as soon as it is
//! captured. AEC3's 10 ms wrapper is not used: its frame-to-block framer
//! starts with a block of zeros and adds 4 ms to every sample, which this
//! stage does not pay. The far-end reference is exactly what the engine
//! played, fed in playout order; AEC3's own delay estimator finds the bulk
//! delay of the room and the device path.
//!
//! The wrapper's duties become this stage's: the render reference is
//! framed into blocks, high-passed when the configuration asks for it
//! (`high_pass_filter_echo_reference`, as the wrapper does), handed to AEC3 before any capture
//! block captured after it (the wrapper's render queue, emptied before each
//! capture call, gives the same order), and a captured block at or near
//! full scale is flagged as saturated so AEC3 does not adapt on clipped
//! echo. Only mono is supported, so the wrapper's multichannel detection
//! has nothing to do.

use aec3::api::config::EchoCanceller3Config;
use aec3::audio_processing::aec3::block::Block;
use aec3::audio_processing::aec3::block_processor::BlockProcessor;
use aec3::audio_processing::high_pass_filter::HighPassFilter;

use crate::band_split::BandSplit;
use crate::frame::{BLOCK, SAMPLE_RATE};

/// Samples of one AEC3 block per band (16 kHz).
const BAND: usize = 64;
/// Bands at 48 kHz.
const BANDS: usize = 3;
/// One chunk: an AEC3 block in each band, 4 ms at 48 kHz.
pub const CHUNK: usize = BAND * BANDS;
/// AEC3 works on 16-bit-scaled floats.
const SCALE: f32 = 32_768.0;
/// A captured sample at or above this (16-bit scale) counts as saturated,
/// AEC3's own threshold.
const SATURATION: f32 = 32_700.0;
/// Extra delay of the 10 ms-block interface: 480 samples are not a whole
/// number of chunks, so every other block ends 96 samples into a chunk
/// that can only be processed with the next block.
const BLOCK_FRAMING: usize = BLOCK - 2 * CHUNK;

/// The echo canceller stage.
pub struct EchoCanceller {
    processor: BlockProcessor,
    /// The three-band filter bank (aec3's filters, vectorised: see
    /// [`crate::band_split`]).
    capture_bank: BandSplit,
    render_bank: BandSplit,
    /// Present when the configuration asks for it, as in AEC3's wrapper.
    render_hpf: Option<HighPassFilter>,
    /// The high-pass filter's per-channel buffer (allocated once).
    hpf_band: Vec<Vec<f32>>,
    capture_block: Block,
    render_block: Block,
    bands: [[f32; BAND]; BANDS],
    scaled: [f32; CHUNK],
    /// Far-end samples not yet making a whole chunk.
    render_pending: [f32; CHUNK],
    render_len: usize,
    /// The 10 ms interface's input and output queues.
    block_in: [f32; CHUNK],
    block_in_len: usize,
    block_out: [f32; BLOCK + CHUNK],
    block_out_len: usize,
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

impl EchoCanceller {
    /// Samples the canceller delays the capture path by when driven chunk
    /// by chunk ([`EchoCanceller::process_chunk`]): the suppressor's
    /// overlap-add (64 samples at 16 kHz) and the three-band filter bank.
    /// Measured by cross-correlation in `tests/echo.rs`, which fails if it
    /// changes.
    pub const CHUNK_DELAY_SAMPLES: usize = 241;

    /// Samples of delay through the 10 ms interface
    /// ([`EchoCanceller::process`]): the chunk delay plus the framing of
    /// 480-sample blocks into 192-sample chunks.
    pub const DELAY_SAMPLES: usize = Self::CHUNK_DELAY_SAMPLES + BLOCK_FRAMING;

    /// A fresh canceller.
    pub fn new() -> EchoCanceller {
        Self::with_config(Self::config())
    }

    /// The configuration in use: AEC3's defaults, except the echo path
    /// gain assumed before the adaptive filter has converged. The default
    /// (0 dB: echo as loud as what is played) makes AEC3 suppress the
    /// agent's own voice by 18-20 dB whenever the caller speaks until real
    /// echo has been measured, and with a headset (most agents) there is
    /// none to measure: the first sentences of every call were swallowed.
    /// At -20 dB the near end loses 3-4 dB in that phase, and the echo
    /// tests (ERLE at least 30 dB on speakers) still pass.
    pub fn config() -> EchoCanceller3Config {
        let mut config = EchoCanceller3Config::default();
        config.ep_strength.default_gain = 0.1;
        config
    }

    /// A canceller with a given AEC3 configuration (for experiments).
    pub fn with_config(config: EchoCanceller3Config) -> EchoCanceller {
        let mut block_out = [0.0; BLOCK + CHUNK];
        // The 10 ms interface starts with its framing delay as silence.
        block_out[..BLOCK_FRAMING].fill(0.0);
        let render_hpf = config
            .filter
            .high_pass_filter_echo_reference
            .then(|| HighPassFilter::new(16_000, 1));
        EchoCanceller {
            processor: BlockProcessor::new(config, SAMPLE_RATE as i32, 1, 1),
            capture_bank: BandSplit::new(),
            render_bank: BandSplit::new(),
            render_hpf,
            hpf_band: vec![vec![0.0; BAND]],
            capture_block: Block::new(BANDS, 1),
            render_block: Block::new(BANDS, 1),
            bands: [[0.0; BAND]; BANDS],
            scaled: [0.0; CHUNK],
            render_pending: [0.0; CHUNK],
            render_len: 0,
            block_in: [0.0; CHUNK],
            block_in_len: 0,
            block_out,
            block_out_len: BLOCK_FRAMING,
        }
    }

    /// Tells the canceller what was just played (the far-end reference),
    /// any number of samples; whole chunks go to AEC3 at once.
    pub fn far_end(&mut self, played: &[f32]) {
        let mut taken = 0;
        while taken < played.len() {
            let k = (played.len() - taken).min(CHUNK - self.render_len);
            self.render_pending[self.render_len..self.render_len + k]
                .copy_from_slice(&played[taken..taken + k]);
            self.render_len += k;
            taken += k;
            if self.render_len == CHUNK {
                self.render_len = 0;
                self.buffer_render();
            }
        }
    }

    fn buffer_render(&mut self) {
        for (d, s) in self.scaled.iter_mut().zip(self.render_pending.iter()) {
            *d = s.clamp(-1.0, 1.0) * SCALE;
        }
        self.render_bank.analysis(&self.scaled, &mut self.bands);
        // The reference's lowest band is high-passed when the
        // configuration says so (`high_pass_filter_echo_reference`, off by
        // default), as AEC3's wrapper does.
        if let Some(hpf) = self.render_hpf.as_mut() {
            self.hpf_band[0].copy_from_slice(&self.bands[0]);
            hpf.process(&mut self.hpf_band);
            self.bands[0].copy_from_slice(&self.hpf_band[0]);
        }
        for (band, data) in self.bands.iter().enumerate() {
            self.render_block.view_mut(band, 0).copy_from_slice(data);
        }
        self.processor.buffer_render(&self.render_block);
    }

    /// Removes the echo from one captured chunk (4 ms), in place. Its
    /// delay is [`EchoCanceller::CHUNK_DELAY_SAMPLES`].
    pub fn process_chunk(&mut self, chunk: &mut [f32; CHUNK]) {
        let mut saturated = false;
        for (d, s) in self.scaled.iter_mut().zip(chunk.iter()) {
            *d = s.clamp(-1.0, 1.0) * SCALE;
            saturated |= d.abs() >= SATURATION;
        }
        self.capture_bank.analysis(&self.scaled, &mut self.bands);
        for (band, data) in self.bands.iter().enumerate() {
            self.capture_block.view_mut(band, 0).copy_from_slice(data);
        }
        self.processor
            .process_capture(false, saturated, None, &mut self.capture_block);
        for (band, data) in self.bands.iter_mut().enumerate() {
            data.copy_from_slice(self.capture_block.view(band, 0));
        }
        self.capture_bank.synthesis(&self.bands, &mut self.scaled);
        for (d, s) in chunk.iter_mut().zip(self.scaled.iter()) {
            *d = (s / SCALE).clamp(-1.0, 1.0);
        }
    }

    /// Removes the echo from one captured 10 ms block, in place (for
    /// callers on the 10 ms clock: the bridge, tests). Its delay is
    /// [`EchoCanceller::DELAY_SAMPLES`].
    pub fn process(&mut self, block: &mut [f32; BLOCK]) {
        let mut taken = 0;
        while taken < BLOCK {
            let k = (BLOCK - taken).min(CHUNK - self.block_in_len);
            self.block_in[self.block_in_len..self.block_in_len + k]
                .copy_from_slice(&block[taken..taken + k]);
            self.block_in_len += k;
            taken += k;
            if self.block_in_len == CHUNK {
                self.block_in_len = 0;
                let mut chunk = self.block_in;
                self.process_chunk(&mut chunk);
                self.block_out[self.block_out_len..self.block_out_len + CHUNK]
                    .copy_from_slice(&chunk);
                self.block_out_len += CHUNK;
            }
        }
        // The framing delay keeps at least a block queued (480 = 2.5 chunks).
        debug_assert!(self.block_out_len >= BLOCK);
        block.copy_from_slice(&self.block_out[..BLOCK]);
        self.block_out.copy_within(BLOCK..self.block_out_len, 0);
        self.block_out_len -= BLOCK;
    }

    /// AEC3's estimate of echo return loss enhancement, in dB.
    pub fn erle_db(&self) -> f64 {
        self.processor.get_metrics().echo_return_loss_enhancement
    }

    /// AEC3's estimate of the echo path delay, in milliseconds.
    pub fn delay_ms(&self) -> i32 {
        self.processor.get_metrics().delay_ms
    }

    /// Back to a fresh canceller.
    pub fn reset(&mut self) {
        *self = EchoCanceller::new();
    }
}
