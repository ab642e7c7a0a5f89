//! The receive chain: media frames in, 10 ms blocks of 48 kHz audio out.
//! Packets go through the jitter buffer; the decoder plays each packet,
//! rebuilds a missing one from the next packet's FEC, or conceals it. When
//! the buffer asks to shrink or grow, the chain drops or repeats 10 ms with
//! a crossfaded splice so the waveform stays continuous. Packets may be 10
//! or 20 ms, mixed freely: the chain plays each for its own duration.

use protocol::media::{decode_media_frame, Codec};

use crate::codec::{CodecError, Decoder};
use crate::frame::{fade_in, rms_dbfs, BLOCK, PACKET, SAMPLE_RATE};
use crate::jitter::{Adjust, JitterBuffer, JitterSettings, JitterStats, Next};

/// Splice crossfade length: 5 ms.
const FADE: usize = 240;

/// A frame the chain refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The media header was malformed.
    #[error("bad media frame: {0}")]
    BadFrame(String),
    /// The frame belongs to another leg.
    #[error("frame for leg {got}, expected {expected}")]
    WrongLeg {
        /// The frame's leg.
        got: u32,
        /// This chain's leg.
        expected: u32,
    },
}

/// The receive chain.
pub struct ReceiveChain {
    leg: Option<u32>,
    jitter: JitterBuffer,
    decoder: Decoder,
    pcm: Box<[f32; PACKET]>,
    /// Samples of `pcm` the last decode filled (480 or 960).
    pcm_len: usize,
    pcm_pos: usize,
    /// A block handed back after a grow, emitted next.
    pushback: Option<Box<[f32; BLOCK]>>,
    last: Box<[f32; BLOCK]>,
    /// Spare block buffers, so splicing never allocates after warm-up.
    /// Boxed because they move in and out of `pushback` by pointer.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<[f32; BLOCK]>>,
    decode_errors: u64,
    level_dbfs: f32,
    /// What the leg carries now (the last frame's codec byte).
    codec: Codec,
    /// The decoder of a telephone leg (G.711).
    telephone: crate::telephone::TelephoneDecoder,
    /// The packets played since [`ReceiveChain::start_window`], see
    /// [`ReceiveChain::window_packets`].
    window: Window,
}

/// What a playout window (a mixer's tick) was made of.
#[derive(Default)]
struct Window {
    /// Every packet decoded in the window was an Opus packet decoded as
    /// it was sent, and nothing was spliced (no concealment, FEC, or
    /// jitter buffer shrink or grow).
    clean: bool,
    /// The packets decoded, back to back, and where each ends.
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// A window longer than this many packets is not a mixer's tick.
const WINDOW_PACKETS: usize = 4;

impl ReceiveChain {
    /// A chain accepting frames for `leg` (any leg when `None`).
    pub fn new(leg: Option<u32>, settings: JitterSettings) -> Result<ReceiveChain, CodecError> {
        Ok(ReceiveChain {
            leg,
            jitter: JitterBuffer::new(settings),
            decoder: Decoder::new()?,
            pcm: Box::new([0.0; PACKET]),
            pcm_len: PACKET,
            pcm_pos: PACKET,
            pushback: None,
            last: Box::new([0.0; BLOCK]),
            spare: vec![Box::new([0.0; BLOCK]), Box::new([0.0; BLOCK])],
            decode_errors: 0,
            level_dbfs: -120.0,
            codec: Codec::Opus,
            telephone: crate::telephone::TelephoneDecoder::default(),
            window: Window::default(),
        })
    }

    /// Starts a playout window: the blocks pulled from now on, until
    /// [`ReceiveChain::window_packets`], are what a mixer's tick plays.
    pub fn start_window(&mut self) {
        self.window.clean = self.pushback.is_none();
        self.window.bytes.clear();
        self.window.ends.clear();
    }

    /// The Opus packets decoded for the blocks pulled since
    /// [`ReceiveChain::start_window`], in order, when the window is plain:
    /// each decoded as it arrived, with no concealment, FEC or jitter
    /// splice in the window. A mixer that would re-encode this window
    /// alone can send these instead: over consecutive windows every
    /// packet is named exactly once, so the stream they make is the
    /// talker's own. (When the packets straddle the window's edges, the
    /// window's audio is the same stream shifted by up to one packet, which
    /// only the switches to and from a mix show, as a skip or repeat of
    /// that shift.)
    pub fn window_packets(&self) -> Option<impl Iterator<Item = &[u8]>> {
        let w = &self.window;
        let plain = w.clean && !w.ends.is_empty() && self.pushback.is_none();
        plain.then(|| {
            w.ends.iter().scan(0, |start, &end| {
                let p = w.bytes.get(*start..end);
                *start = end;
                p
            })
        })
    }

    /// Takes one binary media frame that arrived at `now_ms` (audio clock).
    pub fn push_frame(&mut self, bytes: &[u8], now_ms: f64) -> Result<(), ReceiveError> {
        let frame = decode_media_frame(bytes).map_err(|e| ReceiveError::BadFrame(e.message))?;
        if let Some(expected) = self.leg {
            if frame.header.leg != expected {
                return Err(ReceiveError::WrongLeg {
                    got: frame.header.leg,
                    expected,
                });
            }
        }
        self.push_packet_codec(
            frame.header.sequence,
            frame.header.timestamp,
            frame.codec,
            frame.payload,
            now_ms,
        );
        Ok(())
    }

    /// Takes one Opus packet with its sequence number and timestamp.
    pub fn push_packet(&mut self, seq: u32, ts: u32, payload: &[u8], now_ms: f64) {
        self.push_packet_codec(seq, ts, Codec::Opus, payload, now_ms);
    }

    /// Takes one packet in `codec` (Opus, or G.711 on a telephone leg).
    /// A change of codec starts the stream over: what is buffered was
    /// made by the other codec.
    pub fn push_packet_codec(
        &mut self,
        seq: u32,
        ts: u32,
        codec: Codec,
        payload: &[u8],
        now_ms: f64,
    ) {
        if codec != self.codec {
            self.jitter.restart_stream();
            self.codec = codec;
        }
        match codec.payload_samples(payload) {
            Some(n) if codec.is_g711() => self
                .jitter
                .insert_samples(seq, ts, payload, n as usize, now_ms),
            _ => self.jitter.insert(seq, ts, payload, now_ms),
        }
    }

    /// The codec the leg carries now (Opus until a G.711 frame arrives):
    /// what the engine answers in on its own leg.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Samples decoded but not yet played.
    pub fn queued_samples(&self) -> usize {
        self.pcm_len - self.pcm_pos + self.pushback.as_ref().map_or(0, |_| BLOCK)
    }

    /// Whether producing the next block will run the decoder.
    pub fn next_block_decodes(&self) -> bool {
        self.pushback.is_none() && self.pcm_len - self.pcm_pos < BLOCK
    }

    /// The next 10 ms of audio to play at `now_ms`.
    pub fn next_block(&mut self, out: &mut [f32; BLOCK], now_ms: f64) {
        let adjust = if self.pushback.is_some() {
            Adjust::Keep
        } else {
            self.jitter.adjust(now_ms, self.queued_samples())
        };
        match adjust {
            Adjust::Keep => self.take(out, now_ms),
            Adjust::Shrink => {
                self.window.clean = false;
                // Drop the next block: fade from it into the one after.
                let mut dropped = self.spare.pop().unwrap_or_else(|| Box::new([0.0; BLOCK]));
                self.take(&mut dropped, now_ms);
                self.take(out, now_ms);
                for i in 0..FADE {
                    let w = fade_in(i, FADE);
                    out[i] = dropped[i] * (1.0 - w) + out[i] * w;
                }
                self.spare.push(dropped);
                self.jitter.adjusted(true, now_ms);
            }
            Adjust::Grow => {
                self.window.clean = false;
                // Play the last block again, entering it from the true
                // continuation, then the held-back block: both seams are
                // continuous.
                let mut next = self.spare.pop().unwrap_or_else(|| Box::new([0.0; BLOCK]));
                self.take(&mut next, now_ms);
                out.copy_from_slice(&self.last[..]);
                for i in 0..FADE {
                    let w = fade_in(i, FADE);
                    out[i] = next[i] * (1.0 - w) + self.last[i] * w;
                }
                self.pushback = Some(next);
                self.jitter.adjusted(false, now_ms);
            }
        }
        self.last.copy_from_slice(out);
        let level = rms_dbfs(out);
        self.level_dbfs = if level > self.level_dbfs {
            level
        } else {
            self.level_dbfs + 0.2 * (level - self.level_dbfs)
        };
    }

    fn take(&mut self, out: &mut [f32; BLOCK], now_ms: f64) {
        if let Some(b) = self.pushback.take() {
            out.copy_from_slice(&b[..]);
            self.spare.push(b);
            return;
        }
        let mut filled = 0;
        while filled < BLOCK {
            if self.pcm_pos >= self.pcm_len {
                // The time of the sample being filled (the jitter buffer
                // starts a stream to the sample).
                self.decode_next(now_ms + filled as f64 * 1000.0 / f64::from(SAMPLE_RATE));
            }
            let n = (BLOCK - filled).min(self.pcm_len - self.pcm_pos);
            out[filled..filled + n].copy_from_slice(&self.pcm[self.pcm_pos..self.pcm_pos + n]);
            self.pcm_pos += n;
            filled += n;
        }
    }

    fn decode_next(&mut self, now_ms: f64) {
        // Only a plain Opus decode keeps the window whole (set below).
        let clean = std::mem::replace(&mut self.window.clean, false);
        if self.codec.is_g711() {
            // A telephone leg: G.711, no FEC (a missing packet is
            // concealed either way).
            let len = match self.jitter.pop(now_ms) {
                Next::Silence(n) => {
                    self.pcm[..n].fill(0.0);
                    n
                }
                Next::Packet(p) => self.telephone.decode(self.codec, p, &mut self.pcm),
                Next::Fec { samples: n, .. } | Next::Conceal(n) => {
                    self.telephone.conceal(n, &mut self.pcm)
                }
            };
            self.pcm_len = len.clamp(1, PACKET);
            self.pcm_pos = 0;
            return;
        }
        let (len, result) = match self.jitter.pop(now_ms) {
            Next::Silence(n) => {
                self.pcm[..n].fill(0.0);
                (n, Ok(()))
            }
            Next::Packet(p) => match self.decoder.decode_len(p, &mut self.pcm) {
                Ok(n) => {
                    let w = &mut self.window;
                    if clean && w.ends.len() < WINDOW_PACKETS {
                        w.bytes.extend_from_slice(p);
                        w.ends.push(w.bytes.len());
                        w.clean = true;
                    }
                    (n, Ok(()))
                }
                // The decoder concealed a whole 20 ms; play what the
                // jitter buffer counted for the packet (its TOC's).
                Err(e) => (
                    protocol::media::opus_packet_samples(p)
                        .map_or(PACKET, |n| n as usize)
                        .clamp(1, PACKET),
                    Err(e),
                ),
            },
            Next::Fec { next, samples } => (
                samples,
                self.decoder.decode_fec_len(next, samples, &mut self.pcm),
            ),
            Next::Conceal(n) => {
                self.decoder.conceal_len(n, &mut self.pcm);
                (n, Ok(()))
            }
        };
        if result.is_err() {
            self.decode_errors += 1;
        }
        self.pcm_len = len.clamp(1, PACKET);
        self.pcm_pos = 0;
    }

    /// Jitter buffer counters.
    pub fn stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    /// Packets that failed to decode.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// The playout delay above the network floor, ms, of the sample that
    /// plays at `now_ms`: call it before pulling the next block, or pass
    /// the samples already pulled but not yet played as `unplayed`.
    pub fn buffer_delay_ms(&self, now_ms: f64, unplayed: usize) -> f32 {
        self.jitter
            .current_delay_ms(now_ms, self.queued_samples() + unplayed)
            .unwrap_or(0.0)
    }

    /// The target delay, ms.
    pub fn target_delay_ms(&self) -> f32 {
        self.jitter.target_ms()
    }

    /// Output level, dBFS (fast attack, slow release).
    pub fn level_dbfs(&self) -> f32 {
        self.level_dbfs
    }

    /// Back to fresh.
    pub fn reset(&mut self) -> Result<(), CodecError> {
        let settings_leg = self.leg;
        self.jitter.reset();
        self.decoder.reset()?;
        *self.pcm = [0.0; PACKET];
        self.pcm_len = PACKET;
        self.pcm_pos = PACKET;
        if let Some(b) = self.pushback.take() {
            self.spare.push(b);
        }
        *self.last = [0.0; BLOCK];
        self.decode_errors = 0;
        self.level_dbfs = -120.0;
        self.leg = settings_leg;
        self.codec = Codec::Opus;
        self.telephone.reset();
        self.window = Window::default();
        Ok(())
    }
}
