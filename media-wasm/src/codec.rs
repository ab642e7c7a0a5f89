//! Opus in and out, through the pure-Rust `opus-pure` codec (it builds for
//! wasm32, where C libopus cannot). VoIP mode, 10 or 20 ms packets, in-band
//! FEC on by default so a lost packet can be rebuilt from the next one.
//!
//! At 10 ms, SILK wideband still carries in-band FEC (LBRR), but only while
//! the rate left after the per-packet overhead stays above its threshold
//! (about 24.5 kb/s at 10 ms), which is why the default stays at 32 kb/s.

use opus_pure::{Application, OpusDecoder, OpusEncoder};
use protocol::media::MAX_OPUS_PACKET;

use crate::frame::{PACKET, PACKET_10MS, SAMPLE_RATE};

/// Whether `n` samples is a packet duration the engine sends: 10 or 20 ms.
pub fn is_packet_samples(n: usize) -> bool {
    n == PACKET || n == PACKET_10MS
}

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

/// Encodes 10 or 20 ms of 48 kHz mono into one packet.
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

    /// Encodes one packet of 10 or 20 ms (`pcm.len()` 480 or 960); any
    /// other length is an error and nothing is encoded.
    pub fn encode_samples(&mut self, pcm: &[f32]) -> Result<&[u8], CodecError> {
        if !is_packet_samples(pcm.len()) {
            return Err(CodecError(format!(
                "a packet is 480 or 960 samples, not {}",
                pcm.len()
            )));
        }
        let n = self
            .inner
            .encode(pcm, pcm.len(), &mut self.out[..])
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

    /// Decodes a packet of up to 20 ms into the start of `out` (the rest
    /// is left as it was; [`Decoder::decode_len`] says how much was
    /// written). A malformed packet is an error and the output is
    /// concealment instead, so the caller always gets audio.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32; PACKET]) -> Result<(), CodecError> {
        self.decode_len(packet, out).map(|_| ())
    }

    /// As [`Decoder::decode`], returning the samples the packet held (its
    /// duration from the Opus TOC: 480 for 10 ms, 960 for 20 ms). On an
    /// error, `PACKET` samples of concealment are written.
    pub fn decode_len(
        &mut self,
        packet: &[u8],
        out: &mut [f32; PACKET],
    ) -> Result<usize, CodecError> {
        let Some(expected) = protocol::media::opus_packet_samples(packet)
            .map(|n| n as usize)
            .filter(|n| (1..=PACKET).contains(n))
        else {
            self.conceal(out);
            return Err(CodecError(format!(
                "packet of {} bytes is not an Opus packet of at most {PACKET} samples",
                packet.len()
            )));
        };
        match self.inner.decode(packet, PACKET, out) {
            Ok(n) if n == expected => Ok(n),
            Ok(n) => {
                self.conceal(out);
                Err(CodecError(format!(
                    "packet held {n} samples, expected {expected}"
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
        self.decode_fec_len(next, PACKET, out)
    }

    /// Rebuilds the missing packet of `samples` (480 or 960) before `next`
    /// from `next`'s in-band FEC into `out[..samples]`, or conceals that
    /// much when it carries none.
    pub fn decode_fec_len(
        &mut self,
        next: &[u8],
        samples: usize,
        out: &mut [f32; PACKET],
    ) -> Result<(), CodecError> {
        let samples = samples.clamp(1, PACKET);
        match self.inner.decode_fec(next, samples, &mut out[..samples]) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.conceal_len(samples, out);
                Err(CodecError(e.to_string()))
            }
        }
    }

    /// Packet-loss concealment for one missing packet.
    pub fn conceal(&mut self, out: &mut [f32; PACKET]) {
        self.conceal_len(PACKET, out);
    }

    /// Packet-loss concealment for `samples` (480 or 960) into
    /// `out[..samples]`.
    pub fn conceal_len(&mut self, samples: usize, out: &mut [f32; PACKET]) {
        let samples = samples.clamp(1, PACKET);
        if self
            .inner
            .decode(&[], samples, &mut out[..samples])
            .is_err()
        {
            out[..samples].fill(0.0);
        }
    }

    /// Back to a fresh stream.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner
            .reset_state()
            .map_err(|e| CodecError(e.to_string()))
    }
}
