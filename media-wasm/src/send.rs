//! The send chain: captured 48 kHz audio in, media frames out. Each 10 ms
//! block goes through echo cancellation (against exactly what was played),
//! noise suppression and gain control; every block (10 ms packets) or every
//! two blocks (20 ms, the default here) make one Opus packet with a
//! sequence number and a 48 kHz timestamp. Mute keeps the
//! clock running and sends silence.
//!
//! The stages are separate methods so the engine can run them in different
//! render quanta.

use protocol::media::{encode_media_frame, encode_media_frame_codec, Codec, MediaHeader, FLAG_FEC};

use crate::codec::{is_packet_samples, CodecError, Encoder, EncoderSettings};
use crate::denoise::NoiseSuppressor;
use crate::echo::{EchoCanceller, CHUNK};
use crate::frame::{rms_dbfs, BLOCK, PACKET};
use crate::gain::{AutoGain, GainSettings};

/// The send chain.
pub struct SendChain {
    leg: u32,
    echo: EchoCanceller,
    denoise: NoiseSuppressor,
    gain: AutoGain,
    encoder: Encoder,
    packet: Box<[f32; PACKET]>,
    /// Samples per packet: 480 (10 ms) or 960 (20 ms).
    packet_samples: usize,
    filled: usize,
    silence: Box<[f32; PACKET]>,
    seq: u32,
    ts: u32,
    muted: bool,
    frame: Vec<u8>,
    input_dbfs: f32,
    /// Stages can be switched off (for measurements and A/B tests).
    pub enable_echo: bool,
    /// See `enable_echo`.
    pub enable_denoise: bool,
    /// See `enable_echo`.
    pub enable_gain: bool,
    /// What the leg sends: Opus, or G.711 on a telephone leg.
    codec: Codec,
    /// The encoder of a telephone leg.
    telephone: crate::telephone::TelephoneEncoder,
}

impl SendChain {
    /// A chain for `leg` with these encoder settings.
    pub fn new(leg: u32, settings: EncoderSettings) -> Result<SendChain, CodecError> {
        Ok(SendChain {
            leg,
            echo: EchoCanceller::new(),
            // The zero-window form: no delay of its own (10 ms less than
            // RNNoise's windowed synthesis), within 1 dB of itself in the
            // whole chain (`tests/chain.rs`).
            denoise: NoiseSuppressor::zero_window(),
            gain: AutoGain::new(GainSettings::default()),
            encoder: Encoder::new(settings)?,
            packet: Box::new([0.0; PACKET]),
            packet_samples: PACKET,
            filled: 0,
            silence: Box::new([0.0; PACKET]),
            seq: 0,
            ts: 0,
            muted: false,
            frame: Vec::with_capacity(
                protocol::media::HEADER_LEN + protocol::media::MAX_OPUS_PACKET,
            ),
            input_dbfs: -120.0,
            enable_echo: true,
            enable_denoise: true,
            enable_gain: true,
            codec: Codec::Opus,
            telephone: crate::telephone::TelephoneEncoder::default(),
        })
    }

    /// Sends in `codec` from the next packet on: G.711 on a telephone leg
    /// (what the backend forwards to a trunk untouched), Opus otherwise.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    /// What the leg sends.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Sets the packet duration, 10 or 20 ms; anything else is refused
    /// and changes nothing. Takes effect at the next packet (a packet
    /// being assembled is sent at the old duration first when it is
    /// already longer than the new one).
    pub fn set_packet_ms(&mut self, ms: u32) -> Result<(), CodecError> {
        let samples = ms as usize * BLOCK / 10;
        if ms % 10 != 0 || !is_packet_samples(samples) {
            return Err(CodecError(format!(
                "packet duration {ms} ms: only 10 or 20"
            )));
        }
        self.packet_samples = samples;
        Ok(())
    }

    /// Samples per packet (480 or 960).
    pub fn packet_samples(&self) -> usize {
        self.packet_samples
    }

    /// Switches noise suppression to its zero-window form (no delay of its
    /// own; see [`crate::denoise`]) or back to RNNoise's windowed one,
    /// starting fresh.
    pub fn set_denoise_zero_window(&mut self, on: bool) {
        if self.denoise.is_zero_window() != on {
            self.denoise = if on {
                NoiseSuppressor::zero_window()
            } else {
                NoiseSuppressor::new()
            };
        }
    }

    /// Mutes or unmutes; packets keep flowing either way.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Whether muted.
    pub fn muted(&self) -> bool {
        self.muted
    }

    /// The far-end reference: what was just played, in order.
    pub fn far_end(&mut self, played: &[f32; BLOCK]) {
        self.far_end_level(played);
        self.far_end_echo(played);
    }

    /// The far-end reference for the echo canceller only, any number of
    /// samples, in order: it analyses each 4 ms chunk as it completes, so
    /// fed as played (a render quantum at a time) no quantum carries more
    /// than one chunk of render analysis. The gain control's half is
    /// [`SendChain::far_end_level`]; [`SendChain::far_end`] does both.
    pub fn far_end_echo(&mut self, played: &[f32]) {
        if self.enable_echo {
            self.echo.far_end(played);
        }
    }

    /// The far-end reference for the gain control only (its far-end
    /// activity), a 10 ms block at a time.
    pub fn far_end_level(&mut self, played: &[f32; BLOCK]) {
        self.gain.far_end(played);
    }

    /// Stage 1: echo cancellation of a captured block, in place.
    pub fn cancel_echo(&mut self, block: &mut [f32; BLOCK]) {
        let level = rms_dbfs(block);
        self.input_dbfs = if level > self.input_dbfs {
            level
        } else {
            self.input_dbfs + 0.2 * (level - self.input_dbfs)
        };
        if self.enable_echo {
            self.echo.process(block);
        }
    }

    /// Stage 1 on the engine's clock: echo cancellation of one 4 ms chunk
    /// as soon as it is captured, in place (see [`EchoCanceller`]); the
    /// caller assembles the chunks into blocks for [`SendChain::clean`].
    pub fn cancel_echo_chunk(&mut self, chunk: &mut [f32; CHUNK]) {
        let level = rms_dbfs(chunk);
        // The same release as per 10 ms block (0.2), per 4 ms.
        self.input_dbfs = if level > self.input_dbfs {
            level
        } else {
            self.input_dbfs + 0.085 * (level - self.input_dbfs)
        };
        if self.enable_echo {
            self.echo.process_chunk(chunk);
        }
    }

    /// Stage 2: noise suppression and gain, in place; then the block joins
    /// the packet being assembled. Returns true when a packet is ready.
    pub fn clean(&mut self, block: &mut [f32; BLOCK]) -> bool {
        let voice = if self.enable_denoise {
            self.denoise.process(block)
        } else {
            1.0
        };
        if self.enable_gain {
            self.gain.process(block, voice);
        }
        if self.filled + BLOCK > PACKET {
            // Unreachable with 10/20 ms packets; a guard, not a panic.
            self.filled = 0;
        }
        self.packet[self.filled..self.filled + BLOCK].copy_from_slice(block);
        self.filled += BLOCK;
        self.filled >= self.packet_samples
    }

    /// Stage 3: encodes the assembled packet into a media frame (header and
    /// Opus payload); the slice lives until the next call.
    pub fn encode(&mut self) -> Result<&[u8], CodecError> {
        // One packet of the duration in force; a 20 ms packet begun before
        // a switch to 10 ms goes out whole.
        let n = if self.filled >= PACKET {
            PACKET
        } else {
            self.packet_samples
        };
        self.filled = 0;
        let pcm = if self.muted {
            &self.silence
        } else {
            &self.packet
        };
        let header = MediaHeader {
            flags: if self.encoder.settings().fec {
                FLAG_FEC
            } else {
                0
            },
            leg: self.leg,
            sequence: self.seq,
            timestamp: self.ts,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(n as u32);
        if self.codec.is_g711() {
            let header = MediaHeader { flags: 0, ..header };
            let payload = self.telephone.encode(self.codec, &pcm[..n]);
            encode_media_frame_codec(&header, self.codec, payload, &mut self.frame);
            return Ok(&self.frame);
        }
        let payload = self.encoder.encode_samples(&pcm[..n])?;
        encode_media_frame(&header, payload, &mut self.frame);
        Ok(&self.frame)
    }

    /// Counts `packets` packets as sent without sending them (sequence
    /// numbers and timestamps move on): the capture lost that much audio
    /// (a stalled capture whose chunks the browser dropped), so the
    /// receiver conceals it as loss instead of playing everything after it
    /// that much later.
    pub fn skip_packets(&mut self, packets: u32) {
        self.seq = self.seq.wrapping_add(packets);
        self.ts = self
            .ts
            .wrapping_add(packets.wrapping_mul(self.packet_samples as u32));
    }

    /// The next packet's sequence number and timestamp.
    pub fn position(&self) -> (u32, u32) {
        (self.seq, self.ts)
    }

    /// Continues a stream another send chain began (the same leg, taken
    /// over when capture moves from a Worker back to the worklet): its
    /// next sequence number and timestamp, so the receiver sees one
    /// stream and not a restart or a run of late packets.
    pub fn continue_from(&mut self, seq: u32, ts: u32) {
        self.seq = seq;
        self.ts = ts;
    }

    /// All three stages for one block; a frame when a packet completes.
    pub fn process_block(&mut self, block: &mut [f32; BLOCK]) -> Result<Option<&[u8]>, CodecError> {
        self.cancel_echo(block);
        if self.clean(block) {
            self.encode().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Echo return loss enhancement estimate, dB.
    pub fn erle_db(&self) -> f64 {
        self.echo.erle_db()
    }

    /// Microphone level before processing, dBFS.
    pub fn input_dbfs(&self) -> f32 {
        self.input_dbfs
    }

    /// The gain in force, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain.gain_db()
    }

    /// Samples of delay from capture to the packet's first sample: the
    /// echo canceller's framing, the denoiser's window and the encoder's
    /// look-ahead (block
    /// accumulation and scheduling are the engine's).
    pub fn processing_delay_samples(&self) -> usize {
        EchoCanceller::DELAY_SAMPLES + self.denoise.delay_samples() + self.encoder.lookahead()
    }

    /// As [`SendChain::processing_delay_samples`], for a chain whose echo
    /// cancellation runs chunk by chunk ([`SendChain::cancel_echo_chunk`],
    /// the engine's way): without the 10 ms interface's framing.
    /// A stage switched off adds nothing (the loopback page runs without
    /// echo cancellation).
    pub fn streaming_delay_samples(&self) -> usize {
        let echo = if self.enable_echo {
            EchoCanceller::CHUNK_DELAY_SAMPLES
        } else {
            0
        };
        let denoise = if self.enable_denoise {
            self.denoise.delay_samples()
        } else {
            0
        };
        echo + denoise + self.encoder.lookahead()
    }

    /// Back to a fresh chain with the same leg and settings.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.echo.reset();
        self.denoise.reset();
        self.gain.reset();
        self.encoder.reset()?;
        self.filled = 0;
        self.seq = 0;
        self.ts = 0;
        self.muted = false;
        self.input_dbfs = -120.0;
        Ok(())
    }
}
