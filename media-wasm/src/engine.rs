//! The engine: both chains on the render-quantum clock of an AudioWorklet.
//!
//! Each 128-sample quantum, the engine copies the microphone in and the
//! playout out, decoding the next 10 ms block just in time when the one
//! playing runs out (decoding is cheap: about 20 us a packet in wasm).
//! Echo cancellation runs inline, on each 4 ms chunk as soon as the
//! microphone has delivered it (at most one chunk per quantum, a quantum
//! being shorter than a chunk), so it adds no framing of its own; then at
//! most one heavy job runs: denoise and level a completed 10 ms block (and,
//! when that completes a packet, encode it). A 20 ms packet is five whole
//! chunks, so the packet is encoded in the quantum that captures its last
//! sample; the price is that quantum, which [`Engine::added_latency_ms`]
//! reports.
//!
//! Decoding just in time matters for delay: a block decoded ahead waits
//! for the one playing, and that wait is added to every sample (10 ms on
//! average, measured in `tests/engine.rs`).
//!
//! The far-end reference for echo cancellation is exactly the samples
//! written to the output, in order.

use crate::codec::{CodecError, EncoderSettings};
use crate::echo::CHUNK;
use crate::frame::{BLOCK, QUANTUM, SAMPLE_RATE};
use crate::jitter::{JitterSettings, JitterStats};
use crate::quality::mos;
use crate::receive::{ReceiveChain, ReceiveError};
use crate::send::SendChain;

/// Queue depth for blocks between stages.
const DEPTH: usize = 4;

/// A small fixed ring of blocks.
struct Ring {
    blocks: Box<[[f32; BLOCK]; DEPTH]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            blocks: Box::new([[0.0; BLOCK]; DEPTH]),
            head: 0,
            len: 0,
        }
    }
    /// A slot to fill at the tail, or `None` when full (oldest is dropped).
    fn push_slot(&mut self) -> &mut [f32; BLOCK] {
        if self.len == DEPTH {
            self.head = (self.head + 1) % DEPTH;
            self.len -= 1;
        }
        let i = (self.head + self.len) % DEPTH;
        self.len += 1;
        &mut self.blocks[i]
    }
    fn front_mut(&mut self) -> Option<&mut [f32; BLOCK]> {
        (self.len > 0).then(|| &mut self.blocks[self.head])
    }
    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % DEPTH;
            self.len -= 1;
        }
    }
}

/// What the call-quality indicator shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Jitter buffer counters.
    pub jitter: JitterStats,
    /// Packets sent.
    pub packets_sent: u64,
    /// Playout delay above the network floor, ms.
    pub buffer_delay_ms: f32,
    /// Its target, ms.
    pub target_delay_ms: f32,
    /// Echo return loss enhancement, dB.
    pub erle_db: f64,
    /// Microphone level, dBFS.
    pub input_dbfs: f32,
    /// Playout level, dBFS.
    pub output_dbfs: f32,
    /// Estimated MOS (E-model) from loss and delay.
    pub mos: f64,
    /// Captured blocks dropped because processing fell behind.
    pub overruns: u64,
    /// Whether the microphone is muted.
    pub muted: bool,
}

/// The engine.
pub struct Engine {
    send: SendChain,
    recv: ReceiveChain,
    mic: [f32; CHUNK],
    mic_len: usize,
    /// Echo-cancelled samples being assembled into a 10 ms block.
    echoed: [f32; BLOCK],
    echoed_len: usize,
    cleaned: Ring,
    played: [f32; BLOCK],
    played_len: usize,
    out: Box<[f32; BLOCK]>,
    out_pos: usize,
    quanta: u64,
    packets_sent: u64,
    overruns: u64,
    /// Extra one-way delay to report in the MOS (network), ms.
    pub network_delay_ms: f64,
    /// A conference's other legs, mixed into the own leg's playout (only
    /// once [`Engine::enable_legs`] was called).
    legs: Option<crate::legs::Legs>,
    /// Whether what this engine plays is its own echo reference (true),
    /// or the capture runs in another engine that is handed the played
    /// audio ([`Engine::far_end_reference`]; see [`Engine::play_quantum`]).
    local_reference: bool,
    /// Capture samples lost and not yet skipped ([`Engine::skip_capture`]).
    skipped: usize,
}

/// What one quantum produced for the socket.
pub type Outgoing<'a> = Option<&'a [u8]>;

impl Engine {
    /// An engine sending on `leg` with these settings.
    pub fn new(
        leg: u32,
        encoder: EncoderSettings,
        jitter: JitterSettings,
    ) -> Result<Engine, CodecError> {
        Ok(Engine {
            send: SendChain::new(leg, encoder)?,
            recv: ReceiveChain::new(None, jitter)?,
            mic: [0.0; CHUNK],
            mic_len: 0,
            echoed: [0.0; BLOCK],
            echoed_len: 0,
            cleaned: Ring::new(),
            played: [0.0; BLOCK],
            played_len: 0,
            out: Box::new([0.0; BLOCK]),
            out_pos: BLOCK,
            quanta: 0,
            packets_sent: 0,
            overruns: 0,
            network_delay_ms: 0.0,
            legs: None,
            local_reference: true,
            skipped: 0,
        })
    }

    /// The audio clock: milliseconds of audio processed.
    pub fn now_ms(&self) -> f64 {
        self.quanta as f64 * QUANTUM as f64 * 1000.0 / f64::from(SAMPLE_RATE)
    }

    /// The send chain (settings, switches).
    pub fn send_chain(&mut self) -> &mut SendChain {
        &mut self.send
    }

    /// Sets the packet duration: 10 or 20 ms (what the backend granted in
    /// its `welcome`); anything else is refused and changes nothing.
    pub fn set_packet_ms(&mut self, ms: u32) -> Result<(), CodecError> {
        self.send.set_packet_ms(ms)
    }

    /// Mutes or unmutes the microphone.
    pub fn set_muted(&mut self, muted: bool) {
        self.send.set_muted(muted);
    }

    /// From now on, frames of legs other than `own` (the leg this engine
    /// sends on) are separate talkers, each with its own jitter buffer and
    /// decoder, mixed into the playout: what a client announcing the
    /// `media_legs` capability does.
    pub fn enable_legs(&mut self, own: u32) {
        if self.legs.as_ref().map(crate::legs::Legs::own) != Some(own) {
            self.legs = Some(crate::legs::Legs::new(own, JitterSettings::default()));
        }
    }

    /// A media frame arrived from the socket.
    pub fn receive(&mut self, frame: &[u8]) -> Result<(), ReceiveError> {
        let now = self.now_ms();
        if let Some(legs) = &mut self.legs {
            if let Some(leg) = legs.other_leg(frame) {
                return legs.push_frame(frame, now).map_err(|e| match e {
                    crate::legs::LegsError::BadFrame(m) => ReceiveError::BadFrame(m),
                    _ => ReceiveError::WrongLeg {
                        got: leg,
                        expected: legs.own(),
                    },
                });
            }
        }
        self.recv.push_frame(frame, now)?;
        // A telephone leg is answered in its own codec (G.711 the backend
        // forwards to the trunk untouched); Opus otherwise.
        self.send.set_codec(self.recv.codec());
        Ok(())
    }

    /// One render quantum: `mic` in, `out` filled; returns a media frame to
    /// send when one was encoded in this quantum.
    pub fn process_quantum(
        &mut self,
        mic: &[f32],
        out: &mut [f32],
    ) -> Result<Outgoing<'_>, CodecError> {
        let n = mic.len().min(out.len()).min(QUANTUM);
        // Whole driving (again, after a split one was given up).
        self.local_reference = true;
        self.play(&mut out[..n]);
        self.capture(&mic[..n]);
        self.quanta += 1;
        self.run_one_job()
    }

    /// Split driving, playout half: one quantum of playout into `out`, no
    /// capture. The engine's capture then runs in another engine (in a
    /// Worker, where the browser delivers the microphone's track without
    /// the AudioContext's capture hand-off: [`Engine::capture_quantum`]),
    /// to which the caller hands what was played as its echo reference;
    /// this engine keeps none of its own.
    pub fn play_quantum(&mut self, out: &mut [f32]) {
        self.local_reference = false;
        let n = out.len().min(QUANTUM);
        self.play(&mut out[..n]);
        self.quanta += 1;
    }

    /// Split in time, not in engines: one quantum of playout, no capture,
    /// what is played being this engine's own echo reference as usual.
    /// The capture comes separately, as the track delivers it
    /// ([`Engine::capture_quantum`] on the same engine: the worklet's
    /// 'direct' capture).
    pub fn play_local_quantum(&mut self, out: &mut [f32]) {
        self.local_reference = true;
        let n = out.len().min(QUANTUM);
        self.play(&mut out[..n]);
        self.quanta += 1;
    }

    /// Split driving, capture half: up to a quantum of microphone samples
    /// (any length up to 128: track chunks need not divide into quanta)
    /// through echo cancellation, and a completed block denoised, levelled
    /// and, when it completes a packet, encoded, as in
    /// [`Engine::process_quantum`]. Nothing is played; the echo reference
    /// comes from [`Engine::far_end_reference`].
    pub fn capture_quantum(&mut self, mic: &[f32]) -> Result<Outgoing<'_>, CodecError> {
        let n = mic.len().min(QUANTUM);
        self.capture(&mic[..n]);
        self.run_one_job()
    }

    /// Split driving: `samples` of capture never came (the browser dropped
    /// track chunks while this engine's thread was stalled). Whole packets
    /// of it are skipped in the stream's sequence and timestamps, so the
    /// receiver conceals them rather than playing all that follows later;
    /// the remainder is carried to the next call.
    pub fn skip_capture(&mut self, samples: usize) {
        self.skipped += samples;
        let packet = self.send.packet_samples();
        let whole = self.skipped / packet;
        if whole > 0 {
            self.send.skip_packets(whole as u32);
            self.skipped -= whole * packet;
        }
    }

    /// Split driving: the far end's audio as another engine played it
    /// ([`Engine::play_quantum`]), any number of samples, in order. It must
    /// reach this engine before the microphone captures its echo, which
    /// the output device's latency guarantees for a reference posted as it
    /// is rendered; the echo canceller's delay estimator absorbs the rest.
    pub fn far_end_reference(&mut self, played: &[f32]) {
        self.push_reference(played);
    }

    /// Frames the far-end reference into blocks for the send chain.
    fn push_reference(&mut self, samples: &[f32]) {
        let mut copied = 0;
        while copied < samples.len() {
            let m = (samples.len() - copied).min(BLOCK - self.played_len);
            self.played[self.played_len..self.played_len + m]
                .copy_from_slice(&samples[copied..copied + m]);
            // The echo canceller's render analysis runs as the samples
            // are played, a 4 ms chunk whenever one completes (at most
            // one per quantum), not two and a half chunks at once when a
            // 10 ms block completes: that quantum could also be the one
            // completing a packet (echo chunk, suppressor, encode), the
            // heaviest there is. It is never late either way.
            self.send
                .far_end_echo(&self.played[self.played_len..self.played_len + m]);
            self.played_len += m;
            copied += m;
            if self.played_len == BLOCK {
                // The gain control's far-end activity, per 10 ms block.
                self.send.far_end_level(&self.played);
                self.played_len = 0;
            }
        }
    }

    fn play(&mut self, out: &mut [f32]) {
        let mut written = 0;
        while written < out.len() {
            if self.out_pos == BLOCK {
                let now = self.now_ms();
                self.recv.next_block(&mut self.out, now);
                if let Some(legs) = &mut self.legs {
                    legs.mix_into(&mut self.out, now);
                }
                self.out_pos = 0;
            }
            let k = (out.len() - written).min(BLOCK - self.out_pos);
            out[written..written + k].copy_from_slice(&self.out[self.out_pos..self.out_pos + k]);
            // The far-end reference is exactly what was played.
            if self.local_reference {
                self.push_reference(&out[written..written + k]);
            }
            self.out_pos += k;
            written += k;
        }
    }

    fn capture(&mut self, mic: &[f32]) {
        let mut taken = 0;
        while taken < mic.len() {
            let k = (mic.len() - taken).min(CHUNK - self.mic_len);
            self.mic[self.mic_len..self.mic_len + k].copy_from_slice(&mic[taken..taken + k]);
            self.mic_len += k;
            taken += k;
            if self.mic_len == CHUNK {
                self.mic_len = 0;
                self.send.cancel_echo_chunk(&mut self.mic);
                self.assemble();
            }
        }
    }

    /// Moves an echo-cancelled chunk into the blocks waiting for the
    /// denoiser (480 samples are two and a half chunks).
    fn assemble(&mut self) {
        let mut moved = 0;
        while moved < CHUNK {
            let k = (CHUNK - moved).min(BLOCK - self.echoed_len);
            self.echoed[self.echoed_len..self.echoed_len + k]
                .copy_from_slice(&self.mic[moved..moved + k]);
            self.echoed_len += k;
            moved += k;
            if self.echoed_len == BLOCK {
                self.echoed_len = 0;
                if self.cleaned.len == DEPTH {
                    self.overruns += 1;
                }
                *self.cleaned.push_slot() = self.echoed;
            }
        }
    }

    fn run_one_job(&mut self) -> Result<Outgoing<'_>, CodecError> {
        if let Some(block) = self.cleaned.front_mut() {
            let ready = self.send.clean(block);
            self.cleaned.pop();
            if ready {
                // Denoising and encoding together stay well under the 1 ms a
                // quantum may take (about 180 us in wasm, plus a chunk of
                // echo cancellation), and a quantum less of delay for every
                // packet is worth it.
                self.packets_sent += 1;
                return self.send.encode().map(Some);
            }
        }
        Ok(None)
    }

    /// The engine's own latency, ms: capture-to-packet (packet
    /// accumulation, the quantum that completes it, the echo canceller's
    /// overlap-add and filter bank, denoiser window, encoder look-ahead) and packet-to-playout (the block that is
    /// playing when a packet becomes due: half a block on average). Network
    /// and device latency and the jitter buffer's delay are excluded; the
    /// stats' `buffer_delay_ms` is that delay, output queue included.
    pub fn added_latency_ms(&self) -> (f64, f64) {
        let ms = |samples: f64| samples * 1000.0 / f64::from(SAMPLE_RATE);
        let quantum = ms(QUANTUM as f64);
        // Every sample of a packet waits as long as its first: a whole
        // packet (the timestamp is the first sample), then up to a quantum
        // (the one that delivers its last sample: echo, denoise and encode
        // all run in it).
        // At 10 ms, every other block ends inside a 4 ms echo chunk (480
        // is two and a half chunks) and waits for the chunk's last 96
        // samples: 48 on average.
        let packet = self.send.packet_samples();
        let chunk_wait = if packet % CHUNK == 0 {
            0.0
        } else {
            (CHUNK - packet % CHUNK) as f64 / 2.0
        };
        let send = ms(packet as f64)
            + quantum
            + ms(chunk_wait)
            + ms(self.send.streaming_delay_samples() as f64);
        let receive = ms(BLOCK as f64) / 2.0;
        (send, receive)
    }

    /// Counters for the quality indicator.
    pub fn stats(&self) -> EngineStats {
        let now = self.now_ms();
        let jitter = self.recv.stats();
        let unplayed = BLOCK - self.out_pos;
        let buffer = f64::from(self.recv.buffer_delay_ms(now, unplayed));
        let (s, r) = self.added_latency_ms();
        EngineStats {
            jitter,
            packets_sent: self.packets_sent,
            buffer_delay_ms: buffer as f32,
            target_delay_ms: self.recv.target_delay_ms(),
            erle_db: self.send.erle_db(),
            input_dbfs: self.send.input_dbfs(),
            output_dbfs: self.recv.level_dbfs(),
            mos: mos(
                s + r + buffer + self.network_delay_ms,
                jitter.loss_percent(),
            ),
            overruns: self.overruns,
            muted: self.send.muted(),
        }
    }
}
