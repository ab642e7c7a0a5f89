//! Generated audio the bridge mixes in: the hold tone a held party hears,
//! and DTMF tones for digits sent to a party.

use media::frame::PACKET;

const RATE: f32 = 48_000.0;

/// Hold music: a slow, soft arpeggio (C5 E5 G5 E5, 400 ms a note with
/// a smooth envelope, about -28 dBFS), continuous so a held caller always
/// hears that the line is alive.
pub struct HoldTone {
    pos: u64,
}

const NOTES: [f32; 4] = [523.25, 659.25, 783.99, 659.25];
const NOTE_SAMPLES: u64 = 19_200; // 400 ms

/// One whole hold pattern in 20 ms packets (4 notes of 400 ms): the
/// bridge encodes this many once and loops them. Each note starts and
/// ends at zero amplitude, so the loop has no audible seam.
pub const HOLD_LOOP_PACKETS: usize = (NOTES.len() as u64 * NOTE_SAMPLES / PACKET as u64) as usize;

impl HoldTone {
    /// Starts at the first note.
    pub fn new() -> HoldTone {
        HoldTone { pos: 0 }
    }

    /// Writes the next 20 ms.
    pub fn fill(&mut self, out: &mut [f32; PACKET]) {
        for x in out.iter_mut() {
            let note = NOTES[((self.pos / NOTE_SAMPLES) % NOTES.len() as u64) as usize];
            let k = (self.pos % NOTE_SAMPLES) as f32 / NOTE_SAMPLES as f32;
            let envelope = (std::f32::consts::PI * k).sin();
            let t = self.pos as f32 / RATE;
            *x = 0.06 * envelope * (2.0 * std::f32::consts::PI * note * t).sin();
            self.pos += 1;
        }
    }
}

impl Default for HoldTone {
    fn default() -> Self {
        Self::new()
    }
}

/// The two frequencies of a DTMF key, or `None` for a pause (`,`).
pub fn dtmf_pair(key: char) -> Option<(f32, f32)> {
    let (row, col) = match key {
        '1' => (697.0, 1209.0),
        '2' => (697.0, 1336.0),
        '3' => (697.0, 1477.0),
        'A' => (697.0, 1633.0),
        '4' => (770.0, 1209.0),
        '5' => (770.0, 1336.0),
        '6' => (770.0, 1477.0),
        'B' => (770.0, 1633.0),
        '7' => (852.0, 1209.0),
        '8' => (852.0, 1336.0),
        '9' => (852.0, 1477.0),
        'C' => (852.0, 1633.0),
        '*' => (941.0, 1209.0),
        '0' => (941.0, 1336.0),
        '#' => (941.0, 1477.0),
        'D' => (941.0, 1633.0),
        _ => return None,
    };
    Some((row, col))
}

/// The key being played: its frequencies (none for a pause), the sample
/// reached, and the key's whole length including the gap after it.
struct Playing {
    pair: Option<(f32, f32)>,
    sample: u32,
    len: u32,
}

/// The keys DTMF can play, in the order of [`DTMF_KEYS`]'s canned packets.
pub const DTMF_KEYS: &str = "123A456B789C*0#D";

/// A key's length in 20 ms packets (100 ms on, 60 ms off).
pub const KEY_PACKETS: usize = 160 * 48 / PACKET;

/// A pause's length in 20 ms packets.
pub const PAUSE_PACKETS: usize = 500 * 48 / PACKET;

/// One key's whole sound (tone and gap), for encoding once.
pub fn key_pcm(key: char) -> Vec<f32> {
    let mut q = DtmfQueue::default();
    q.push(&key.to_string());
    let mut out = Vec::with_capacity(KEY_PACKETS * PACKET);
    for _ in 0..KEY_PACKETS {
        let mut pcm = [0.0f32; PACKET];
        q.mix_into(&mut pcm);
        out.extend_from_slice(&pcm);
    }
    out
}

/// The next 20 ms of queued DTMF as a canned packet reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfPacket {
    /// Packet `1` of key number `0` (in [`DTMF_KEYS`]).
    Key(usize, usize),
    /// A pause.
    Silence,
}

/// Queued DTMF keys, played 100 ms on, 60 ms off (a comma pauses 500 ms).
#[derive(Default)]
pub struct DtmfQueue {
    keys: std::collections::VecDeque<char>,
    current: Option<Playing>,
    /// The playing key's index in [`DTMF_KEYS`].
    key: Option<usize>,
}

impl DtmfQueue {
    /// Queues keys (validated by the protocol layer).
    pub fn push(&mut self, digits: &str) {
        self.keys.extend(digits.chars());
    }

    /// Starts the next queued key (a tone pair, or a comma's pause), for
    /// both ways of playing the queue; false when none is queued.
    fn start_next(&mut self) -> bool {
        let Some(k) = self.keys.pop_front() else {
            return false;
        };
        let pair = dtmf_pair(k);
        let len = if pair.is_some() { 160 * 48 } else { 500 * 48 };
        self.current = Some(Playing {
            pair,
            sample: 0,
            len,
        });
        self.key = DTMF_KEYS.chars().position(|c| c == k);
        true
    }

    /// Whether anything is playing or queued.
    pub fn is_active(&self) -> bool {
        self.current.is_some() || !self.keys.is_empty()
    }

    /// The next 20 ms as a canned packet (keys are whole packets long, so
    /// this and [`DtmfQueue::mix_into`] stay aligned whichever is used);
    /// `None` when nothing is queued.
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        if self.current.is_none() && !self.start_next() {
            return None;
        }
        let p = self.current.as_mut()?;
        let index = p.sample as usize / PACKET;
        p.sample += PACKET as u32;
        let out = match (p.pair, self.key) {
            (Some(_), Some(key)) => DtmfPacket::Key(key, index),
            _ => DtmfPacket::Silence,
        };
        if p.sample >= p.len {
            self.current = None;
        }
        Some(out)
    }

    /// Adds the next 20 ms of tones to `out`.
    pub fn mix_into(&mut self, out: &mut [f32; PACKET]) {
        for x in out.iter_mut() {
            if self.current.is_none() && !self.start_next() {
                return;
            }
            if let Some(p) = &mut self.current {
                if let Some((a, b)) = p.pair {
                    if p.sample < 100 * 48 {
                        let t = p.sample as f32 / RATE;
                        *x += 0.1
                            * ((2.0 * std::f32::consts::PI * a * t).sin()
                                + (2.0 * std::f32::consts::PI * b * t).sin());
                    }
                }
                p.sample += 1;
                if p.sample >= p.len {
                    self.current = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_dtmf_packets_follow_the_keys_and_pauses() {
        let mut q = DtmfQueue::default();
        q.push("5,#");
        let mut got = Vec::new();
        while let Some(p) = q.next_packet() {
            got.push(p);
            assert!(got.len() < 100, "bounded");
        }
        let five = DTMF_KEYS.find('5').expect("5");
        let hash = DTMF_KEYS.find('#').expect("#");
        let mut want: Vec<DtmfPacket> =
            (0..KEY_PACKETS).map(|k| DtmfPacket::Key(five, k)).collect();
        want.extend(std::iter::repeat_n(DtmfPacket::Silence, PAUSE_PACKETS));
        want.extend((0..KEY_PACKETS).map(|k| DtmfPacket::Key(hash, k)));
        assert_eq!(got, want);
        assert!(!q.is_active());
        // A key's sound: 100 ms of tone, then 60 ms of silence.
        let pcm = key_pcm('5');
        assert_eq!(pcm.len(), KEY_PACKETS * PACKET);
        assert!(pcm[..100 * 48].iter().any(|x| x.abs() > 0.1));
        assert!(pcm[100 * 48..].iter().all(|x| *x == 0.0));
    }
}
