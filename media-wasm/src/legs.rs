//! Several legs in, one playout: the engine of an agent that announced
//! the `media_legs` capability (docs/protocol.md, section 8) receives each
//! talker of a conference as its own leg, with the talker's packets
//! forwarded untouched, instead of a mix the backend decoded, summed and
//! re-encoded. Each leg other than the engine's own gets a receive chain
//! of its own (jitter buffer + decoder, so one talker's loss or jitter
//! never stretches another's), and every 10 ms block the legs' audio is
//! summed into the own leg's and clamped to full scale, the same clipping
//! protection as the backend's mixer.
//!
//! Bounded: at most [`MAX_LEGS`] other legs at once; a leg silent for
//! [`IDLE_MS`] is let go (its talker left the conference, or the backend
//! went back to one stream), which frees a place for a new one.

use protocol::media::decode_media_frame;

use crate::frame::BLOCK;
use crate::jitter::JitterSettings;
use crate::receive::ReceiveChain;

/// Other legs an engine mixes at most (a conference's other talkers).
pub const MAX_LEGS: usize = 6;

/// A leg with no packet for this long is dropped, ms.
pub const IDLE_MS: f64 = 2_000.0;

/// A frame the legs refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LegsError {
    /// The media header was malformed.
    #[error("bad media frame: {0}")]
    BadFrame(String),
    /// Every place is taken by a leg that is still live.
    #[error("already {max} legs live; frame for leg {leg} dropped")]
    TooMany {
        /// The frame's leg.
        leg: u32,
        /// [`MAX_LEGS`].
        max: usize,
    },
    /// A decoder for a new leg could not start.
    #[error("cannot start a decoder for leg {leg}")]
    Codec {
        /// The frame's leg.
        leg: u32,
    },
}

struct Leg {
    id: u32,
    chain: ReceiveChain,
    /// When its last packet came, ms (audio clock).
    last_ms: f64,
}

/// The other legs of an engine whose own leg is `own`.
pub struct Legs {
    own: u32,
    legs: Vec<Leg>,
    scratch: Box<[f32; BLOCK]>,
    settings: JitterSettings,
}

impl Legs {
    /// No other legs yet; frames for `own` are not taken here.
    pub fn new(own: u32, settings: JitterSettings) -> Legs {
        Legs {
            own,
            legs: Vec::new(),
            scratch: Box::new([0.0; BLOCK]),
            settings,
        }
    }

    /// The engine's own leg.
    pub fn own(&self) -> u32 {
        self.own
    }

    /// Other legs live now.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// Whether no other leg is live.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// The leg of `bytes` when it is another leg than the own one (a frame
    /// for these legs); `None` for the own leg or a malformed frame.
    pub fn other_leg(&self, bytes: &[u8]) -> Option<u32> {
        decode_media_frame(bytes)
            .ok()
            .map(|f| f.header.leg)
            .filter(|&leg| leg != self.own)
    }

    /// Takes a frame of another leg that arrived at `now_ms`.
    pub fn push_frame(&mut self, bytes: &[u8], now_ms: f64) -> Result<(), LegsError> {
        let frame = decode_media_frame(bytes).map_err(|e| LegsError::BadFrame(e.message))?;
        let leg = frame.header.leg;
        let at = match self.legs.iter().position(|l| l.id == leg) {
            Some(i) => i,
            None => {
                self.evict_idle(now_ms);
                if self.legs.len() >= MAX_LEGS {
                    return Err(LegsError::TooMany { leg, max: MAX_LEGS });
                }
                let chain = ReceiveChain::new(Some(leg), self.settings)
                    .map_err(|_| LegsError::Codec { leg })?;
                self.legs.push(Leg {
                    id: leg,
                    chain,
                    last_ms: now_ms,
                });
                self.legs.len() - 1
            }
        };
        let l = &mut self.legs[at];
        l.last_ms = now_ms;
        l.chain.push_packet_codec(
            frame.header.sequence,
            frame.header.timestamp,
            frame.codec,
            frame.payload,
            now_ms,
        );
        Ok(())
    }

    /// Adds the next 10 ms of every other leg to `out` (the own leg's
    /// block) and clamps the sum to full scale.
    pub fn mix_into(&mut self, out: &mut [f32; BLOCK], now_ms: f64) {
        self.evict_idle(now_ms);
        if self.legs.is_empty() {
            return;
        }
        for l in &mut self.legs {
            l.chain.next_block(&mut self.scratch, now_ms);
            for (o, x) in out.iter_mut().zip(self.scratch.iter()) {
                *o += x;
            }
        }
        clamp(out);
    }

    fn evict_idle(&mut self, now_ms: f64) {
        self.legs.retain(|l| now_ms - l.last_ms < IDLE_MS);
    }
}

/// Keeps a sum of talkers within full scale: the backend's mixer does the
/// same to what it encodes, so a conference sounds alike either way.
pub fn clamp(x: &mut [f32]) {
    for s in x.iter_mut() {
        *s = s.clamp(-1.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Encoder, EncoderSettings};
    use crate::frame::PACKET;
    use protocol::media::{encode_media_frame, MediaHeader};

    fn tone(freq: f32, amp: f32, k: usize) -> [f32; PACKET] {
        let mut p = [0.0f32; PACKET];
        for (i, s) in p.iter_mut().enumerate() {
            let t = (k * PACKET + i) as f32 / 48_000.0;
            *s = amp * (2.0 * std::f32::consts::PI * freq * t).sin();
        }
        p
    }

    /// A talker: its encoder and leg.
    struct Talker {
        enc: Encoder,
        leg: u32,
        freq: f32,
        amp: f32,
    }

    impl Talker {
        fn new(leg: u32, freq: f32, amp: f32) -> Talker {
            Talker {
                enc: Encoder::new(EncoderSettings::default()).expect("encoder"),
                leg,
                freq,
                amp,
            }
        }

        fn frame(&mut self, k: usize) -> Vec<u8> {
            let pcm = tone(self.freq, self.amp, k);
            let payload = self.enc.encode(&pcm).expect("encode").to_vec();
            let mut out = Vec::new();
            encode_media_frame(
                &MediaHeader {
                    flags: 0,
                    leg: self.leg,
                    sequence: 1000 + k as u32,
                    timestamp: 7 + (k * PACKET) as u32,
                },
                &payload,
                &mut out,
            );
            out
        }
    }

    /// Share of `x`'s energy at `freq` (Goertzel over the whole slice,
    /// against the total power).
    fn share(x: &[f32], freq: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * freq / 48_000.0;
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, s) in x.iter().enumerate() {
            re += f64::from(*s) * f64::from(w * i as f32).cos();
            im += f64::from(*s) * f64::from(w * i as f32).sin();
        }
        let tone_power = 2.0 * (re * re + im * im) / (x.len() as f64).powi(2);
        let power: f64 = x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / x.len() as f64;
        (tone_power / power.max(1e-12)) as f32
    }

    /// Runs talkers for `packets` packets; returns what plays (after the
    /// first quarter second, once the buffers have started).
    fn run(legs: &mut Legs, talkers: &mut [Talker], packets: usize) -> Vec<f32> {
        let mut played = Vec::new();
        let mut block = [0.0f32; BLOCK];
        for k in 0..packets {
            let now = (k * 20) as f64;
            for t in talkers.iter_mut() {
                legs.push_frame(&t.frame(k), now).expect("taken");
            }
            for half in 0..2 {
                block.fill(0.0);
                legs.mix_into(&mut block, now + f64::from(half) * 10.0);
                if k >= 12 {
                    played.extend_from_slice(&block);
                }
            }
        }
        played
    }

    #[test]
    fn each_leg_is_decoded_on_its_own_and_summed() {
        let mut legs = Legs::new(1, JitterSettings::default());
        let mut talkers = [Talker::new(7, 440.0, 0.3), Talker::new(9, 1300.0, 0.3)];
        let played = run(&mut legs, &mut talkers, 100);
        assert_eq!(legs.len(), 2);
        let (a, b) = (share(&played, 440.0), share(&played, 1300.0));
        assert!(a > 0.3 && b > 0.3, "both talkers heard: {a:.2} {b:.2}");
        assert!(
            share(&played, 2000.0) < 0.02,
            "nothing else: {}",
            share(&played, 2000.0)
        );
    }

    #[test]
    fn the_sum_is_clamped_like_the_bridge_mixer() {
        let mut legs = Legs::new(1, JitterSettings::default());
        let mut talkers = [Talker::new(7, 300.0, 0.9), Talker::new(9, 300.0, 0.9)];
        let played = run(&mut legs, &mut talkers, 60);
        let peak = played.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= 1.0, "clamped: {peak}");
        assert!(
            peak > 0.95,
            "two loud talkers in phase reach full scale: {peak}"
        );
        let mut x = [1.7f32, -3.0, 0.25];
        clamp(&mut x);
        assert_eq!(x, [1.0, -1.0, 0.25]);
    }

    #[test]
    fn the_own_leg_and_bad_frames_are_not_taken() {
        let mut legs = Legs::new(7, JitterSettings::default());
        let mut own = Talker::new(7, 440.0, 0.3);
        let f = own.frame(0);
        assert_eq!(
            legs.other_leg(&f),
            None,
            "the own leg stays with the engine"
        );
        assert_eq!(legs.other_leg(&[1, 2, 3]), None);
        assert!(matches!(
            legs.push_frame(&[1, 2, 3], 0.0),
            Err(LegsError::BadFrame(_))
        ));
        assert!(legs.is_empty(), "a refused frame changes nothing");
    }

    #[test]
    fn legs_are_bounded_and_idle_ones_make_room() {
        let mut legs = Legs::new(1, JitterSettings::default());
        let mut talkers: Vec<Talker> = (0..=MAX_LEGS as u32)
            .map(|i| Talker::new(100 + i, 440.0, 0.1))
            .collect();
        for t in talkers.iter_mut().take(MAX_LEGS) {
            legs.push_frame(&t.frame(0), 0.0).expect("room");
        }
        let extra = talkers[MAX_LEGS].frame(0);
        assert_eq!(
            legs.push_frame(&extra, 10.0),
            Err(LegsError::TooMany {
                leg: 100 + MAX_LEGS as u32,
                max: MAX_LEGS
            })
        );
        assert_eq!(legs.len(), MAX_LEGS);
        // Later, every old leg has gone quiet: the new talker gets a place.
        legs.push_frame(&extra, IDLE_MS + 1.0).expect("room again");
        assert_eq!(legs.len(), 1);
        let mut block = [0.0f32; BLOCK];
        legs.mix_into(&mut block, 2.0 * IDLE_MS + 2.0);
        assert!(legs.is_empty(), "an idle leg is let go");
    }

    #[test]
    fn an_engine_with_legs_plays_its_own_leg_and_the_others_mixed() {
        use crate::engine::Engine;
        use crate::frame::QUANTUM;
        let mut engine =
            Engine::new(5, EncoderSettings::default(), JitterSettings::default()).expect("engine");
        engine.enable_legs(5);
        let mut own = Talker::new(5, 440.0, 0.3);
        let mut other = Talker::new(9, 1300.0, 0.3);
        let mic = [0.0f32; QUANTUM];
        let mut out = [0.0f32; QUANTUM];
        let mut played = Vec::new();
        for k in 0..100 {
            engine.receive(&own.frame(k)).expect("own leg");
            engine.receive(&other.frame(k)).expect("another leg");
            while engine.now_ms() < ((k + 1) * 20) as f64 {
                engine.process_quantum(&mic, &mut out).expect("quantum");
                if k >= 25 {
                    played.extend_from_slice(&out);
                }
            }
        }
        let (a, b) = (share(&played, 440.0), share(&played, 1300.0));
        assert!(
            a > 0.3 && b > 0.3,
            "own leg and the other leg both play: {a:.2} {b:.2}"
        );
    }
}
