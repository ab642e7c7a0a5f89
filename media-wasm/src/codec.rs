//! Opus in and out, through the pure-Rust `opus-pure` codec (it builds for
//! wasm32, where C libopus cannot). VoIP mode, 20 ms packets, in-band FEC
//! on by default so a lost packet can be rebuilt from the next one.

use opus_pure::{Application, OpusDecoder, OpusEncoder};
use protocol::media::MAX_OPUS_PACKET;

use crate::frame::{PACKET, SAMPLE_RATE};

/// A codec failure (bad packet, bad setting).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(pub String);

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    /// Target bitrate in bits per second.
    pub bitrate_bps: i32,
    /// In-band forward error correction.
    pub fec: bool,
    /// The loss rate the encoder protects against, in percent.
    pub expected_loss_percent: i32,
    /// Discontinuous transmission during silence.
    pub dtx: bool,
    /// Encoder effort, 0-10.
    pub complexity: i32,
    /// Code only up to wideband (8 kHz of audio, "HD voice"). Keeps every
    /// packet in SILK, which is what in-band FEC protects: with
    /// super-wideband or fullband, packets coded as hybrid or CELT carry
    /// less (or no) redundancy.
    pub wideband_only: bool,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_bps: 32_000,
            fec: true,
            expected_loss_percent: 15,
            dtx: false,
            complexity: 5,
            wideband_only: true,
        }
    }
}

/// Encodes 20 ms of 48 kHz mono into one packet.
pub struct Encoder {
    inner: OpusEncoder,
    settings: EncoderSettings,
    out: Box<[u8; MAX_OPUS_PACKET]>,
}

impl Encoder {
    /// An encoder with these settings.
    pub fn new(settings: EncoderSettings) -> Result<Encoder, CodecError> {
        let mut inner = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::Voip)
            .map_err(|e| CodecError(e.to_string()))?;
        apply(&mut inner, &settings);
        Ok(Encoder {
            inner,
            settings,
            out: Box::new([0; MAX_OPUS_PACKET]),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Changes settings without resetting the stream.
    pub fn set_settings(&mut self, settings: EncoderSettings) {
        self.settings = settings;
        apply(&mut self.inner, &settings);
    }

    /// Encodes one packet; the slice lives until the next call.
    pub fn encode(&mut self, pcm: &[f32; PACKET]) -> Result<&[u8], CodecError> {
        let n = self
            .inner
            .encode(pcm, PACKET, &mut self.out[..])
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(&self.out[..n])
    }

    /// Samples of look-ahead the encoder adds.
    pub fn lookahead(&self) -> usize {
        self.inner.lookahead()
    }

    /// Back to a fresh stream with the same settings.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner
            .reset_state()
            .map_err(|e| CodecError(e.to_string()))
    }
}

fn apply(enc: &mut OpusEncoder, s: &EncoderSettings) {
    enc.bitrate_bps = s.bitrate_bps.clamp(6_000, 510_000);
    enc.use_inband_fec = s.fec;
    enc.packet_loss_perc = s.expected_loss_percent.clamp(0, 100);
    enc.use_dtx = s.dtx;
    enc.complexity = s.complexity.clamp(0, 10);
    enc.signal_type = Some(opus_pure::Signal::Voice);
    enc.max_bandwidth = if s.wideband_only {
        opus_pure::Bandwidth::Wideband
    } else {
        opus_pure::Bandwidth::Fullband
    };
}

/// Decodes packets, conceals lost ones, and rebuilds them from FEC.
pub struct Decoder {
    inner: OpusDecoder,
}

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Result<Decoder, CodecError> {
        Ok(Decoder {
            inner: OpusDecoder::new(SAMPLE_RATE as i32, 1)
                .map_err(|e| CodecError(e.to_string()))?,
        })
    }

    /// Decodes a 20 ms packet. A malformed packet is an error and the
    /// output is concealment instead, so the caller always gets audio.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32; PACKET]) -> Result<(), CodecError> {
        match self.inner.decode(packet, PACKET, out) {
            Ok(n) if n == PACKET => Ok(()),
            Ok(n) => {
                self.conceal(out);
                Err(CodecError(format!(
                    "packet held {n} samples, expected {PACKET}"
                )))
            }
            Err(e) => {
                self.conceal(out);
                Err(CodecError(e.to_string()))
            }
        }
    }

    /// Rebuilds the packet before `next` from `next`'s in-band FEC (or
    /// conceals when `next` carries none).
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [f32; PACKET]) -> Result<(), CodecError> {
        match self.inner.decode_fec(next, PACKET, out) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.conceal(out);
                Err(CodecError(e.to_string()))
            }
        }
    }

    /// Packet-loss concealment for one missing packet.
    pub fn conceal(&mut self, out: &mut [f32; PACKET]) {
        if self.inner.decode(&[], PACKET, out).is_err() {
            out.fill(0.0);
        }
    }

    /// Back to a fresh stream.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner
            .reset_state()
            .map_err(|e| CodecError(e.to_string()))
    }
}
