//! Acoustic echo cancellation with the Rust port of WebRTC's AEC3, at
//! 48 kHz in 10 ms blocks. The far-end reference is exactly what the
//! engine played, fed in playout order; AEC3's own delay estimator finds
//! the bulk delay of the room and the device path.

use aec3::api::config::EchoCanceller3Config;
use aec3::api::control::EchoControl;
use aec3::audio_processing::aec3::echo_canceller3::EchoCanceller3;
use aec3::audio_processing::audio_buffer::AudioBuffer;
use aec3::audio_processing::stream_config::StreamConfig;

use crate::frame::{BLOCK, SAMPLE_RATE};

/// The echo canceller stage.
pub struct EchoCanceller {
    aec: EchoCanceller3,
    render: AudioBuffer,
    capture: AudioBuffer,
    config: StreamConfig,
}

fn buffer() -> AudioBuffer {
    let r = SAMPLE_RATE as usize;
    AudioBuffer::from_sample_rates(r, 1, r, 1, r)
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

impl EchoCanceller {
    /// Samples the canceller delays the capture path by (AEC3's block
    /// framing and three-band filter bank at 48 kHz), measured by
    /// cross-correlation in `tests/echo.rs`, which fails if it changes.
    pub const DELAY_SAMPLES: usize = 430;

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
        EchoCanceller {
            aec: EchoCanceller3::new(config, SAMPLE_RATE as i32, 1, 1),
            render: buffer(),
            capture: buffer(),
            config: StreamConfig::new(SAMPLE_RATE as usize, 1, false),
        }
    }

    /// Tells the canceller what was just played (the far-end reference).
    pub fn far_end(&mut self, played: &[f32; BLOCK]) {
        self.render.copy_from(&[&played[..]], &self.config);
        self.render.split_into_frequency_bands();
        self.aec.analyze_render(&mut self.render);
    }

    /// Removes the echo from one captured block, in place.
    pub fn process(&mut self, block: &mut [f32; BLOCK]) {
        self.capture.copy_from(&[&block[..]], &self.config);
        self.aec.analyze_capture(&mut self.capture);
        self.capture.split_into_frequency_bands();
        self.aec.process_capture(&mut self.capture, false);
        self.capture.merge_frequency_bands();
        self.capture
            .copy_to_stream(&self.config, &mut [&mut block[..]]);
    }

    /// AEC3's estimate of echo return loss enhancement, in dB.
    pub fn erle_db(&self) -> f64 {
        self.aec.metrics().echo_return_loss_enhancement
    }

    /// AEC3's estimate of the echo path delay, in milliseconds.
    pub fn delay_ms(&self) -> i32 {
        self.aec.metrics().delay_ms
    }

    /// Back to a fresh canceller.
    pub fn reset(&mut self) {
        *self = EchoCanceller::new();
    }
}
