//! RFC 4733 telephone-events (DTMF) on a trunk leg, both ways.
//!
//! Receiving: every packet of one key press carries the same RTP
//! timestamp; the last three have the end bit. A key is reported once,
//! at its first end packet; the repeated end packets are duplicates. When
//! the end packets were all lost, the key is still reported when the next
//! event (a new timestamp) begins, so a key is never lost nor doubled.
//!
//! Sending: the agent's digits to the customer are played by the bridge
//! as in-band tones, 100 ms on and 60 ms off each (a comma pauses 500 ms).
//! With telephone-event negotiated, each key also goes out as an event on
//! the same schedule (5 packets of growing duration, the first with the
//! marker bit, then 3 end packets), replacing the voice packets of that
//! slot so the far end never hears the key twice. Without it the in-band
//! tones are the fallback.
//!
//! Clock: the event's timestamp is the audio stream's (one SSRC), and its
//! duration counts units of the negotiated event clock, which RFC 4733
//! §2.1 and §7.1.1 want equal to the audio's: 8 kHz beside G.711, 48 kHz
//! beside Opus (`sdp::Events`). A far end that offered only
//! `telephone-event/8000` beside Opus gets 8 kHz durations, as it declared.

use std::collections::VecDeque;

use super::sdp::Events;
use super::Media;

/// Event packets per key: 5 while pressed (100 ms), 3 end packets.
const KEY_SLOTS: u8 = 8;
/// Packets (20 ms) of a comma's pause.
const PAUSE_SLOTS: u8 = 25;
/// Packets per second (20 ms each).
const PACKETS_PER_S: u32 = 50;
/// Most keys waiting to go out; more are dropped (the agent's keypad is
/// limited to 64 digits an op).
const MAX_QUEUED: usize = 256;

/// The event code of a key (RFC 4733 §3.2), or `None`.
fn code_of(key: char) -> Option<u8> {
    Some(match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => key as u8 - b'A' + 12,
        _ => return None,
    })
}

/// The key of an event code, or `None` for events that are not DTMF.
fn key_of(code: u8) -> Option<char> {
    match code {
        0..=9 => Some(char::from(b'0' + code)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + code - 12)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Packet `index` (0..KEY_SLOTS) of key `code`.
    Key { code: u8, index: u8 },
    /// A 20 ms of voice (a comma, or the gap after a key).
    Pause,
}

/// One leg's DTMF state.
#[derive(Debug, Default)]
pub(super) struct Dtmf {
    /// The negotiated telephone-event format.
    events: Option<Events>,
    /// Receiving: the timestamp of the current event, its code, whether
    /// it was reported.
    rx_ts: Option<u32>,
    rx_code: u8,
    rx_reported: bool,
    /// Sending: how many of the call's agent digits were queued already.
    sent: usize,
    plan: VecDeque<Slot>,
    /// The RTP timestamp of the event going out.
    tx_ts: u32,
}

impl Dtmf {
    pub fn new(events: Option<Events>) -> Dtmf {
        Dtmf {
            events,
            ..Dtmf::default()
        }
    }

    /// The telephone-event format changed (a re-INVITE).
    pub fn set_events(&mut self, events: Option<Events>) {
        self.events = events;
    }

    /// Queues the digits of `heard` (all the agent's digits on this call
    /// so far) not queued yet.
    pub fn sync(&mut self, heard: &str) {
        let total = heard.chars().count();
        if total <= self.sent {
            return;
        }
        let new: Vec<char> = heard.chars().skip(self.sent).collect();
        self.sent = total;
        if self.events.is_none() {
            return; // in-band tones only
        }
        for key in new {
            if self.plan.len() >= MAX_QUEUED {
                break;
            }
            match code_of(key) {
                Some(code) => {
                    self.plan
                        .extend((0..KEY_SLOTS).map(|index| Slot::Key { code, index }));
                    // The bridge's 60 ms gap after each key.
                    self.plan.extend([Slot::Pause; 3]);
                }
                None => self.plan.extend([Slot::Pause; PAUSE_SLOTS as usize]),
            }
        }
    }

    /// The packet that replaces this tick's voice packet, if a key is
    /// going out (sequence numbers and SSRC shared with the voice).
    pub fn next_packet(&mut self, media: &mut Media) -> Option<Vec<u8>> {
        let Events { pt, rate } = self.events?;
        let Slot::Key { code, index } = self.plan.pop_front()? else {
            return None;
        };
        if index == 0 {
            self.tx_ts = media.rtp_ts;
        }
        let end = index >= 5;
        // 20 ms a packet on the event clock: 160 at 8 kHz, 960 at 48 kHz
        // (the longest, 5 packets at 192 kHz, still fits 16 bits).
        let step = rate / PACKETS_PER_S;
        let duration = u16::try_from(step * u32::from(index.min(4) + 1)).unwrap_or(u16::MAX);
        let mut p = Vec::with_capacity(16);
        p.push(0x80);
        p.push(if index == 0 { 0x80 | pt } else { pt });
        p.extend_from_slice(&media.rtp_seq.to_be_bytes());
        p.extend_from_slice(&self.tx_ts.to_be_bytes());
        p.extend_from_slice(&media.ssrc.to_be_bytes());
        p.push(code);
        // End bit, then volume 10 (-10 dBm0).
        p.push(if end { 0x80 | 10 } else { 10 });
        p.extend_from_slice(&duration.to_be_bytes());
        media.rtp_seq = media.rtp_seq.wrapping_add(1);
        Some(p)
    }

    /// An incoming RTP packet: `Some(key)` when it completes a key press,
    /// `None` when it is not a telephone-event or adds nothing. Returns
    /// `Some` at most once per event.
    pub fn on_rtp(&mut self, packet: &[u8]) -> Option<char> {
        let pt = self.events?.pt;
        if packet.len() < 12 || packet[0] >> 6 != 2 || packet[1] & 0x7f != pt {
            return None;
        }
        let csrc = usize::from(packet[0] & 0x0f) * 4;
        let payload = packet.get(12 + csrc..12 + csrc + 4)?;
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let (code, end) = (payload[0], payload[1] & 0x80 != 0);
        if self.rx_ts == Some(ts) {
            if end && !self.rx_reported {
                self.rx_reported = true;
                return key_of(code);
            }
            return None;
        }
        // A new event: one whose end we never saw counts now.
        let lost = (self.rx_ts.is_some() && !self.rx_reported)
            .then(|| key_of(self.rx_code))
            .flatten();
        self.rx_ts = Some(ts);
        self.rx_code = code;
        self.rx_reported = end;
        match (lost, end) {
            (Some(k), _) => {
                // Report the lost one now; this one at its own end (or
                // at the next event).
                self.rx_reported = false;
                Some(k)
            }
            (None, true) => key_of(code),
            (None, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SipCodec;

    const TE8: Events = Events {
        pt: 101,
        rate: 8000,
    };

    fn event(ts: u32, code: u8, end: bool, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 101];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(&[code, if end { 0x8a } else { 0x0a }, 0, 160]);
        p
    }

    #[test]
    fn a_key_is_reported_once_despite_repeated_end_packets() {
        let mut d = Dtmf::new(Some(TE8));
        let mut got = String::new();
        for i in 0..5 {
            got.extend(d.on_rtp(&event(1000, 4, false, i)));
        }
        for i in 5..8 {
            got.extend(d.on_rtp(&event(1000, 4, true, i)));
        }
        // A second press of the same key is a new event (new timestamp).
        for i in 8..10 {
            got.extend(d.on_rtp(&event(2000, 4, false, i)));
        }
        for i in 10..13 {
            got.extend(d.on_rtp(&event(2000, 4, true, i)));
        }
        // `#` whose end packets were lost, then `*`.
        got.extend(d.on_rtp(&event(3000, 11, false, 13)));
        got.extend(d.on_rtp(&event(4000, 10, true, 14)));
        got.extend(d.on_rtp(&event(4000, 10, true, 15)));
        assert_eq!(got, "44#*");
        // Not telephone-events: nothing.
        let mut voice = event(5000, 1, true, 16);
        voice[1] = 0;
        assert_eq!(d.on_rtp(&voice), None);
        assert_eq!(d.on_rtp(&[0x80, 101, 0]), None);
        assert_eq!(Dtmf::new(None).on_rtp(&event(1, 1, true, 1)), None);
    }

    #[test]
    fn keys_go_out_as_events_on_the_tone_clock() {
        let mut media = Media::new(SipCodec::Pcmu, 0, 1);
        let mut d = Dtmf::new(Some(TE8));
        d.sync("1");
        d.sync("1"); // nothing new
        let packets: Vec<Vec<u8>> = std::iter::from_fn(|| d.next_packet(&mut media)).collect();
        assert_eq!(packets.len(), 8, "5 pressed + 3 end packets");
        assert_eq!(packets[0][1], 0x80 | 101, "marker on the first");
        assert!(packets
            .iter()
            .all(|p| p[12] == 1 && p[4..8] == packets[0][4..8]));
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p[14], p[15]]))
            .collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
        assert!(packets[5..].iter().all(|p| p[13] & 0x80 != 0));
        assert!(packets[..5].iter().all(|p| p[13] & 0x80 == 0));
        // The gap after the key lets voice through (no packet).
        assert_eq!(d.next_packet(&mut media), None);
        // Round trip through our own receiver.
        let mut rx = Dtmf::new(Some(TE8));
        let keys: String = packets.iter().filter_map(|p| rx.on_rtp(p)).collect();
        assert_eq!(keys, "1");
        // Without telephone-event: in-band only, no events.
        let mut inband = Dtmf::new(None);
        inband.sync("123");
        assert_eq!(inband.next_packet(&mut media), None);
    }

    #[test]
    fn keys_beside_opus_count_on_the_48_khz_clock() {
        // RFC 4733 §2.1: the event's timestamp is the audio's, and its
        // duration is on the same (48 kHz) clock: 100 ms pressed = 4800.
        let mut media = Media::new(SipCodec::Opus, 111, 1);
        media.rtp_ts = 96_000;
        let te = Events {
            pt: 110,
            rate: 48000,
        };
        let mut d = Dtmf::new(Some(te));
        d.sync("#");
        let packets: Vec<Vec<u8>> = std::iter::from_fn(|| d.next_packet(&mut media)).collect();
        assert_eq!(packets.len(), 8);
        assert!(packets.iter().all(|p| p[1] & 0x7f == 110 && p[12] == 11));
        assert!(packets
            .iter()
            .all(|p| u32::from_be_bytes([p[4], p[5], p[6], p[7]]) == 96_000));
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p[14], p[15]]))
            .collect();
        assert_eq!(durations, [960, 1920, 2880, 3840, 4800, 4800, 4800, 4800]);
        // A far end's key on that clock reads the same.
        let mut rx = Dtmf::new(Some(te));
        let keys: String = packets.iter().filter_map(|p| rx.on_rtp(p)).collect();
        assert_eq!(keys, "#");
        // After a re-INVITE to G.711 the 8 kHz clock again.
        d.set_events(Some(TE8));
        d.sync("#1");
        // (the pause slots after `#` first: voice, no packet).
        let last = (0..20).filter_map(|_| d.next_packet(&mut media)).last();
        let last = last.expect("packets");
        assert_eq!(last[12], 1);
        assert_eq!(u16::from_be_bytes([last[14], last[15]]), 800);
    }
}
