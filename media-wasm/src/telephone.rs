//! Telephone legs: G.711 packets the backend forwards from a SIP trunk
//! untouched (docs/protocol.md section 8, the codec byte), played and
//! answered by the engine itself so a two-party trunk call costs the
//! backend no transcoding.
//!
//! Receiving, a packet is decoded ([`crate::g711`]) and brought from 8 kHz
//! to the engine's 48 kHz by the shared FIR resampler, whose state spans
//! packets. G.711 has no FEC, so a lost packet is concealed here: the last
//! 10 ms played is repeated, attenuated by half each time, crossfaded in
//! so the seam does not click, until it fades out (after about 60 ms);
//! the packet after a loss is faded in from the concealment. Sending, a
//! 10 or 20 ms packet of 48 kHz audio is filtered down to 8 kHz and
//! encoded in the leg's G.711 law.
//!
//! Nothing here allocates after the first packets (the scratch vectors
//! keep their capacity), so it runs on the audio thread.

use protocol::media::Codec;

use crate::frame::{fade_in, PACKET};
use crate::g711;

/// The concealment's repeated segment: 10 ms at 48 kHz.
const SEGMENT: usize = 480;
/// Each repetition's gain relative to the previous one.
const DECAY: f32 = 0.5;
/// How long a concealment plays before it is silence (60 ms).
const FADE_OUT: usize = 6 * SEGMENT;
/// Crossfade length at either seam of a concealment, samples (2.5 ms).
const SEAM: usize = 120;

/// The receiving half of a telephone leg.
pub struct TelephoneDecoder {
    up: g711::Resampler,
    narrow: Vec<f32>,
    wide: Vec<f32>,
    /// The last 10 ms played (decoded or concealed), for concealment.
    history: Box<[f32; SEGMENT]>,
    /// The gain of the next concealed segment (1 right after real audio).
    conceal_gain: f32,
    /// Samples concealed in a row (0 after a real packet).
    concealed: usize,
}

impl Default for TelephoneDecoder {
    fn default() -> Self {
        TelephoneDecoder {
            up: g711::Resampler::default(),
            narrow: Vec::with_capacity(PACKET / 6),
            wide: Vec::with_capacity(PACKET),
            history: Box::new([0.0; SEGMENT]),
            conceal_gain: 1.0,
            concealed: 0,
        }
    }
}

impl TelephoneDecoder {
    /// Decodes one G.711 packet of `codec` into `out` at 48 kHz; returns
    /// the samples written (six per byte, at most `out`'s length: a longer
    /// packet is cut, which the jitter buffer never hands over).
    pub fn decode(&mut self, codec: Codec, payload: &[u8], out: &mut [f32; PACKET]) -> usize {
        let bytes = payload.len().min(PACKET / 6);
        g711::decode(codec, &payload[..bytes], &mut self.narrow);
        self.up.up(&self.narrow, &mut self.wide);
        let n = self.wide.len().min(PACKET);
        out[..n].copy_from_slice(&self.wide[..n]);
        if self.concealed > 0 {
            // Out of a concealment: fade from its continuation into the
            // real audio.
            let mut tail = [0.0f32; SEAM];
            self.continue_into(&mut tail);
            for (i, t) in tail.iter().enumerate().take(n.min(SEAM)) {
                let w = fade_in(i, SEAM);
                out[i] = t * (1.0 - w) + out[i] * w;
            }
        }
        self.concealed = 0;
        self.conceal_gain = 1.0;
        self.remember(&out[..n]);
        n
    }

    /// Fills `n` samples (at most a packet) for a packet that did not
    /// come: the last 10 ms again, quieter each time.
    pub fn conceal(&mut self, n: usize, out: &mut [f32; PACKET]) -> usize {
        let n = n.clamp(1, PACKET);
        let first = self.concealed == 0;
        let mut i = 0;
        while i < n {
            let take = (n - i).min(SEGMENT);
            // Past the fade's length the concealment is silence.
            let gain = if self.concealed + i >= FADE_OUT {
                0.0
            } else {
                self.conceal_gain
            };
            for k in 0..take {
                out[i + k] = self.history[k] * gain;
            }
            i += take;
            self.conceal_gain *= DECAY;
        }
        if first {
            // Into the concealment: the history's own end flows into its
            // start only after a crossfade.
            let last = self.history[SEGMENT - 1];
            for (k, o) in out.iter_mut().enumerate().take(n.min(SEAM)) {
                let w = fade_in(k, SEAM);
                *o = last * (1.0 - w) + *o * w;
            }
        }
        self.concealed += n;
        n
    }

    /// What a further concealment would play next, for the fade back in.
    fn continue_into(&self, tail: &mut [f32; SEAM]) {
        for (k, t) in tail.iter_mut().enumerate() {
            *t = self.history[k] * self.conceal_gain;
        }
    }

    fn remember(&mut self, played: &[f32]) {
        if played.len() >= SEGMENT {
            self.history
                .copy_from_slice(&played[played.len() - SEGMENT..]);
        } else {
            self.history.copy_within(played.len().., 0);
            self.history[SEGMENT - played.len()..].copy_from_slice(played);
        }
    }

    /// Back to fresh.
    pub fn reset(&mut self) {
        *self = TelephoneDecoder::default();
    }
}

/// The sending half of a telephone leg.
pub struct TelephoneEncoder {
    down: g711::Resampler,
    narrow: Vec<f32>,
    payload: Vec<u8>,
}

impl Default for TelephoneEncoder {
    fn default() -> Self {
        TelephoneEncoder {
            down: g711::Resampler::default(),
            narrow: Vec::with_capacity(PACKET / 6),
            payload: Vec::with_capacity(PACKET / 6),
        }
    }
}

impl TelephoneEncoder {
    /// Encodes 48 kHz audio (a whole number of 8 kHz samples: 480 or 960)
    /// as one `codec` payload; the slice lives until the next call.
    pub fn encode(&mut self, codec: Codec, pcm: &[f32]) -> &[u8] {
        self.down.down(pcm, &mut self.narrow);
        g711::encode(codec, &self.narrow, &mut self.payload);
        &self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, n: usize, rate: f32) -> Vec<f32> {
        (0..n)
            .map(|k| 0.4 * (2.0 * std::f32::consts::PI * freq * k as f32 / rate).sin())
            .collect()
    }

    #[test]
    fn a_tone_goes_down_to_g711_and_back_up() {
        // 48 kHz, 600 Hz: encoded as the engine sends it, decoded as the
        // engine plays a forwarded packet.
        let src = tone(600.0, 48_000, 48_000.0);
        let (mut enc, mut dec) = (TelephoneEncoder::default(), TelephoneDecoder::default());
        let mut played = Vec::new();
        let mut out = [0.0f32; PACKET];
        for chunk in src.chunks_exact(PACKET) {
            let payload = enc.encode(Codec::Pcmu, chunk).to_vec();
            assert_eq!(payload.len(), 160, "20 ms is 160 G.711 bytes");
            let n = dec.decode(Codec::Pcmu, &payload, &mut out);
            assert_eq!(n, PACKET);
            played.extend_from_slice(&out[..n]);
        }
        // The two filters delay 96 samples at 48 kHz.
        let lag = 96;
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for k in 4800..40_000 {
            let e = f64::from(played[k] - src[k - lag]);
            num += e * e;
            den += f64::from(src[k - lag]).powi(2);
        }
        let snr = 10.0 * (den / num).log10();
        assert!(snr > 25.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn a_lost_packet_is_concealed_by_the_last_audio_fading_out() {
        let mut dec = TelephoneDecoder::default();
        let mut enc = TelephoneEncoder::default();
        let src = tone(400.0, PACKET * 3, 48_000.0);
        let mut out = [0.0f32; PACKET];
        for chunk in src.chunks_exact(PACKET) {
            let p = enc.encode(Codec::Pcma, chunk).to_vec();
            dec.decode(Codec::Pcma, &p, &mut out);
        }
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let live = rms(&out[..]);
        // First concealed 20 ms: the tone goes on (not silence), quieter.
        assert_eq!(dec.conceal(PACKET, &mut out), PACKET);
        let first = rms(&out[..]);
        assert!(first > 0.3 * live && first < live, "{first} vs {live}");
        // It keeps fading: after 80 ms it is near silence.
        for _ in 0..3 {
            dec.conceal(PACKET, &mut out);
        }
        assert!(rms(&out[..]) < 0.01 * live, "{}", rms(&out[..]));
        // A packet after the loss plays at full level again.
        let p = enc.encode(Codec::Pcma, &src[..PACKET]).to_vec();
        dec.decode(Codec::Pcma, &p, &mut out);
        assert!(rms(&out[SEAM..]) > 0.5 * live);
    }
}
