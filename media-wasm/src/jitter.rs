//! The adaptive jitter buffer: packets arrive late, lost, duplicated and
//! out of order; audio must leave at a steady 48 kHz.
//!
//! Every packet's *relative delay* (arrival time minus its media time) is
//! kept over a window of recent packets. The smallest is the network's
//! floor; the spread above it is jitter. The target playout delay is the
//! 95th percentile of that jitter plus a small margin, bounded. (A margin
//! measured from the window's tail over its percentile was tried, issue
//! 16: it made the target follow the window's largest delay, and on a
//! loaded machine the buffer grew and shrank by turns, 26 grows and 23
//! shrinks in 7 s, for about 4 ms saved on a quiet loopback; the fixed
//! margin stays.) Playout
//! runs on the receiver's audio clock: packet `ts` plays at
//! `ts + floor + target`. When the actual delay drifts more than 5 ms from
//! the target, the receive chain is told to shrink or grow by 10 ms, which
//! it does with a crossfaded splice (no clicks).
//!
//! Packets may be 10 or 20 ms (the sender's choice, negotiated in the
//! `hello`; a forwarded leg may switch at a source change), so the buffer
//! counts media time in samples, never in packets: each packet keeps its own
//! timestamp and duration (from its Opus TOC), playout advances by the
//! duration of what it plays, and a missing packet is taken to last as
//! long as the gap to the next one (or the stream's last duration).
//!
//! Packets live in a fixed ring indexed by sequence number; nothing is
//! allocated after construction. The delay window is kept sorted as it
//! goes: each packet removes the delay it evicts and inserts its own by
//! binary search and one shift, instead of re-sorting 256 values per packet.
//!
//! Start-up: the first half second of a stream is not like the rest (the
//! page compiles, the socket and the audio threads warm up, packets come in
//! bursts), so its delays leave the window as soon as enough later ones are
//! in, and a buffer a whole splice or more too deep shrinks at once instead
//! of waiting. Together they bring the delay to its steady state within
//! about a second of media start, instead of carrying start-up jitter for
//! the window's 5 s and shrinking 10 ms per 300 ms after it.

use protocol::media::MAX_OPUS_PACKET;

use crate::frame::{PACKET, PACKET_10MS, SAMPLE_RATE};

/// Packets the ring holds (1.28 s of 10 ms packets, 2.56 s of 20 ms ones).
pub const CAPACITY: usize = 128;
/// How long the delay must stay too deep before the buffer shrinks, ms.
const SHRINK_AFTER_MS: f64 = 300.0;
/// No shrinking this soon after growing, ms.
const SHRINK_COOLDOWN_MS: f64 = 1_000.0;
/// Delay samples the target is computed from (about 5 s of packets).
pub const WINDOW: usize = 256;
/// Packets that arrive this soon after a stream's first one are start-up
/// transients: their delays leave the window once `STARTUP_KEEP` later ones
/// are in, ms.
pub const STARTUP_MS: f64 = 500.0;
/// Later delays needed before the start-up ones are dropped.
const STARTUP_KEEP: usize = 25;
/// A delay this far over the target's tolerance is a whole splice too deep
/// even after shrinking once: it shrinks after this short wait, ms, and not
/// after `SHRINK_AFTER_MS` (a shrink cannot take it below the target). The
/// cooldown after a grow still applies: under heavy jitter the target
/// itself swings, and shrinking into it again at once made the buffer grow
/// and shrink by turns (29 grows, 23 shrinks in 6 s on a loaded machine).
const FAST_SHRINK_AFTER_MS: f64 = 10.0;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterSettings {
    /// The percentile of jitter the target tracks (0-1).
    pub quantile: f32,
    /// Added on top of the percentile, ms.
    pub margin_ms: f32,
    /// Lowest target, ms.
    pub min_delay_ms: f32,
    /// Highest target, ms.
    pub max_delay_ms: f32,
    /// Drift from the target tolerated before adjusting, ms.
    pub tolerance_ms: f32,
}

impl Default for JitterSettings {
    fn default() -> Self {
        JitterSettings {
            quantile: 0.95,
            margin_ms: 12.0,
            min_delay_ms: 0.0,
            max_delay_ms: 500.0,
            tolerance_ms: 5.0,
        }
    }
}

/// Counters for the call-quality indicator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Times the sender restarted its sequence (a far jump either way).
    pub restarts: u64,
    /// Packets that arrived twice.
    pub duplicates: u64,
    /// Packets that arrived before an earlier-numbered one.
    pub reordered: u64,
    /// Missing packets rebuilt from the next packet's FEC.
    pub fec_recovered: u64,
    /// Missing packets concealed.
    pub concealed: u64,
    /// Packets played from themselves.
    pub played: u64,
    /// RFC 3550 interarrival jitter, ms.
    pub jitter_ms: f32,
    /// Times the buffer shrank / grew by 10 ms.
    pub shrinks: u64,
    /// See `shrinks`.
    pub grows: u64,
}

impl JitterStats {
    /// Packets that were not played from themselves (recovered or concealed).
    pub fn lost(&self) -> u64 {
        self.fec_recovered + self.concealed
    }

    /// Loss as a percentage of packets due.
    pub fn loss_percent(&self) -> f64 {
        let due = self.played + self.lost();
        if due == 0 {
            0.0
        } else {
            100.0 * self.lost() as f64 / due as f64
        }
    }
}

/// What to decode next (one packet's worth: 10 or 20 ms).
#[derive(Debug, PartialEq)]
pub enum Next<'a> {
    /// Nothing has started yet: play this many samples of silence.
    Silence(usize),
    /// The packet itself.
    Packet(&'a [u8]),
    /// The packet is missing; the next one is here: decode its FEC for
    /// the missing packet's duration.
    Fec {
        /// The packet after the missing one.
        next: &'a [u8],
        /// The missing packet's duration, samples.
        samples: usize,
    },
    /// Missing, this many samples: conceal.
    Conceal(usize),
}

/// A correction the receive chain should make at its next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// On target.
    Keep,
    /// Playing too late: drop 10 ms.
    Shrink,
    /// Playing too early: insert 10 ms.
    Grow,
}

struct Slot {
    filled: bool,
    seq: u32,
    /// Extended (unwrapped) timestamp, samples.
    ts: i64,
    /// Duration, samples (480 or 960 for our senders).
    samples: usize,
    len: usize,
    data: [u8; MAX_OPUS_PACKET],
}

/// The buffer.
pub struct JitterBuffer {
    settings: JitterSettings,
    slots: Box<[Slot]>,
    /// Next sequence number to play, once started.
    next_seq: Option<u32>,
    /// Extended (unwrapped) timestamp of `next_seq`, in samples.
    next_ts: i64,
    /// First packet's sequence and timestamp anchor the unwrapping.
    anchor: Option<(u32, u32, i64)>,
    highest_seq: Option<u32>,
    /// Delays in arrival order (a ring ending before `delay_pos`).
    delays: [f32; WINDOW],
    /// The same `delay_len` delays, ascending (`f32::total_cmp`).
    sorted: [f32; WINDOW],
    delay_len: usize,
    delay_pos: usize,
    /// The stream's first arrival, for the start-up period.
    first_arrival_ms: Option<f64>,
    /// Delays recorded after the start-up period (saturating at WINDOW).
    settled_delays: usize,
    /// Whether the start-up delays have left the window.
    startup_dropped: bool,
    floor_ms: f32,
    target_ms: f32,
    last_transit: Option<f32>,
    /// Since when the delay has been over the target's tolerance.
    over_since: Option<f64>,
    /// When the buffer last grew.
    last_grow_ms: f64,
    /// Decays from 1 after each missing packet; while it is high the
    /// target keeps one extra packet so the next packet's FEC is at hand.
    recent_loss: f32,
    /// The duration of the last packet received, samples: what a missing
    /// packet is assumed to last, and the extra delay FEC needs.
    last_samples: usize,
    stats: JitterStats,
}

fn ahead(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(settings: JitterSettings) -> JitterBuffer {
        let slots = (0..CAPACITY)
            .map(|_| Slot {
                filled: false,
                seq: 0,
                ts: 0,
                samples: PACKET,
                len: 0,
                data: [0; MAX_OPUS_PACKET],
            })
            .collect();
        JitterBuffer {
            settings,
            slots,
            next_seq: None,
            next_ts: 0,
            anchor: None,
            highest_seq: None,
            delays: [0.0; WINDOW],
            sorted: [0.0; WINDOW],
            delay_len: 0,
            delay_pos: 0,
            first_arrival_ms: None,
            settled_delays: 0,
            startup_dropped: false,
            floor_ms: 0.0,
            target_ms: settings.min_delay_ms.max(settings.margin_ms),
            last_transit: None,
            recent_loss: 0.0,
            last_samples: PACKET,
            over_since: None,
            last_grow_ms: f64::NEG_INFINITY,
            stats: JitterStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The target playout delay above the network floor, ms: the jitter
    /// percentile plus margin, plus one packet while losses are recent
    /// (FEC can only rebuild a packet once the next one is here).
    pub fn target_ms(&self) -> f32 {
        let fec = if self.recent_loss > 0.05 {
            Self::media_ms(self.last_samples as i64) as f32
        } else {
            0.0
        };
        (self.target_ms + fec).min(self.settings.max_delay_ms)
    }

    /// Unwrapped media time of a packet, in samples, from its sequence
    /// number and timestamp relative to the first packet.
    fn extended_ts(&self, ts: u32) -> i64 {
        match self.anchor {
            Some((_, ts0, ext0)) => ext0 + i64::from(ts.wrapping_sub(ts0) as i32),
            None => i64::from(ts),
        }
    }

    /// A packet arrived at `now_ms` on the receiver's audio clock.
    pub fn insert(&mut self, seq: u32, ts: u32, payload: &[u8], now_ms: f64) {
        self.insert_lasting(seq, ts, payload, None, now_ms);
    }

    /// Like [`JitterBuffer::insert`] for a packet whose duration is known
    /// (`samples` at 48 kHz, not read from an Opus TOC): a G.711 packet of
    /// a telephone leg ([`crate::telephone`]).
    pub fn insert_samples(
        &mut self,
        seq: u32,
        ts: u32,
        payload: &[u8],
        samples: usize,
        now_ms: f64,
    ) {
        self.insert_lasting(seq, ts, payload, Some(samples), now_ms);
    }

    /// Forgets the buffered packets and timing but keeps the counters, as
    /// for a sender restart: the leg's codec changed, so what is buffered
    /// would be decoded with the wrong decoder.
    pub fn restart_stream(&mut self) {
        self.restart();
    }

    fn insert_lasting(
        &mut self,
        seq: u32,
        ts: u32,
        payload: &[u8],
        known: Option<usize>,
        now_ms: f64,
    ) {
        if payload.is_empty() || payload.len() > MAX_OPUS_PACKET || !now_ms.is_finite() {
            return;
        }
        if let Some(next) = self.next_seq {
            // Further away than any reordering the buffer could hold, in
            // either direction: the sender restarted (a reloaded page, a
            // new engine) or we fell hopelessly behind. Its sequence and
            // timestamp spaces are new, so start over from this packet.
            if ahead(seq, next).unsigned_abs() >= CAPACITY as u64 {
                self.restart();
            }
        }
        if self.anchor.is_none() {
            self.anchor = Some((seq, ts, i64::from(ts)));
        }
        let ext = self.extended_ts(ts);
        let media_ms = ext as f64 * 1000.0 / f64::from(SAMPLE_RATE);
        let transit = (now_ms - media_ms) as f32;
        if let Some(prev) = self.last_transit {
            // RFC 3550 section 6.4.1.
            self.stats.jitter_ms += ((transit - prev).abs() - self.stats.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);
        self.record_delay(transit, now_ms);

        if let Some(next) = self.next_seq {
            let d = ahead(seq, next);
            if d < 0 {
                // A second copy of a packet already played (its slot still
                // names it) is a duplicate, not a late packet: nothing was
                // lost.
                let slot = &self.slots[seq as usize % CAPACITY];
                if slot.seq == seq && slot.ts == ext {
                    self.stats.duplicates += 1;
                } else {
                    self.stats.late += 1;
                }
                return;
            }
        }
        if let Some(h) = self.highest_seq {
            if ahead(seq, h) < 0 {
                self.stats.reordered += 1;
            }
        }
        let slot = &mut self.slots[seq as usize % CAPACITY];
        if slot.filled && slot.seq == seq {
            self.stats.duplicates += 1;
            return;
        }
        // A duration the engine cannot play in one piece (a malformed TOC,
        // over 20 ms) counts as 20 ms: the decoder rejects the packet and
        // conceals that much, so the clock keeps its pace.
        let samples = known
            .or_else(|| protocol::media::opus_packet_samples(payload).map(|n| n as usize))
            .filter(|n| (1..=PACKET).contains(n))
            .unwrap_or(PACKET);
        self.last_samples = samples;
        slot.filled = true;
        slot.seq = seq;
        slot.ts = ext;
        slot.samples = samples;
        slot.len = payload.len();
        slot.data[..payload.len()].copy_from_slice(payload);
        self.stats.received += 1;
        if self.highest_seq.is_none_or(|h| ahead(seq, h) > 0) {
            self.highest_seq = Some(seq);
        }
    }

    fn record_delay(&mut self, transit: f32, now_ms: f64) {
        if self.delay_len == WINDOW {
            let evicted = self.delays[self.delay_pos];
            self.remove_sorted(evicted);
        }
        self.delays[self.delay_pos] = transit;
        self.delay_pos = (self.delay_pos + 1) % WINDOW;
        self.insert_sorted(transit);

        let first = *self.first_arrival_ms.get_or_insert(now_ms);
        if !self.startup_dropped && now_ms - first >= STARTUP_MS {
            self.settled_delays = (self.settled_delays + 1).min(WINDOW);
            if self.settled_delays >= STARTUP_KEEP {
                // The oldest entries are the start-up ones.
                while self.delay_len > self.settled_delays {
                    let oldest = (self.delay_pos + WINDOW - self.delay_len) % WINDOW;
                    self.remove_sorted(self.delays[oldest]);
                }
                self.startup_dropped = true;
            }
        }

        let n = self.delay_len;
        self.floor_ms = self.sorted[0];
        let q = ((n - 1) as f32 * self.settings.quantile).round() as usize;
        let jitter = self.sorted[q.min(n - 1)] - self.floor_ms;
        self.target_ms = (jitter + self.settings.margin_ms)
            .clamp(self.settings.min_delay_ms, self.settings.max_delay_ms);
    }

    /// Adds a delay to the sorted window (which has room for it).
    fn insert_sorted(&mut self, v: f32) {
        let n = self.delay_len;
        let at = self.sorted[..n].partition_point(|x| x.total_cmp(&v).is_lt());
        self.sorted.copy_within(at..n, at + 1);
        self.sorted[at] = v;
        self.delay_len = n + 1;
    }

    /// Removes one copy of a delay that is in the sorted window.
    fn remove_sorted(&mut self, v: f32) {
        let n = self.delay_len;
        let at = self.sorted[..n].partition_point(|x| x.total_cmp(&v).is_lt());
        if at < n {
            self.sorted.copy_within(at + 1..n, at);
            self.delay_len = n - 1;
        }
    }

    /// Forgets the stream (packets, timing anchor, delay history) but
    /// keeps the statistics and the current target, for a sender restart.
    fn restart(&mut self) {
        self.clear_slots();
        self.next_seq = None;
        self.anchor = None;
        self.highest_seq = None;
        self.last_transit = None;
        self.delay_len = 0;
        self.delay_pos = 0;
        // A restarted sender (a reloaded page) has a start-up of its own.
        self.first_arrival_ms = None;
        self.settled_delays = 0;
        self.startup_dropped = false;
        self.stats.restarts += 1;
    }

    fn clear_slots(&mut self) {
        for s in self.slots.iter_mut() {
            s.filled = false;
        }
    }

    fn slot(&self, seq: u32) -> Option<&Slot> {
        let s = &self.slots[seq as usize % CAPACITY];
        (s.filled && s.seq == seq).then_some(s)
    }

    fn media_ms(samples: i64) -> f64 {
        samples as f64 * 1000.0 / f64::from(SAMPLE_RATE)
    }

    /// The delay being played now above the network floor, ms, given the
    /// decoded audio already queued in front of the next packet.
    pub fn current_delay_ms(&self, now_ms: f64, queued_samples: usize) -> Option<f32> {
        self.next_seq?;
        let playing_ms = Self::media_ms(self.next_ts - queued_samples as i64);
        Some((now_ms - playing_ms) as f32 - self.floor_ms)
    }

    /// Whether the chain should shrink or grow before its next block.
    pub fn adjust(&mut self, now_ms: f64, queued_samples: usize) -> Adjust {
        let Some(delay) = self.current_delay_ms(now_ms, queued_samples) else {
            return Adjust::Keep;
        };
        let error = delay - self.target_ms();
        // Too shallow risks late packets: grow at once. Too deep only costs
        // delay: shrink once that has lasted SHRINK_AFTER_MS, and not
        // within SHRINK_COOLDOWN_MS of a grow. Without the wait, a delay
        // hovering at the threshold while the target moved by a millisecond
        // or two made the buffer shrink and grow by turns, every 50 ms in a
        // browser (an audible warble; measured by tests/browser/engine).
        if error < -self.settings.tolerance_ms {
            self.over_since = None;
            Adjust::Grow
        } else if error > self.settings.tolerance_ms {
            let since = *self.over_since.get_or_insert(now_ms);
            let whole_block = error > self.settings.tolerance_ms + crate::frame::BLOCK_MS as f32;
            let wait = if whole_block {
                FAST_SHRINK_AFTER_MS
            } else {
                SHRINK_AFTER_MS
            };
            if now_ms - since >= wait && now_ms - self.last_grow_ms >= SHRINK_COOLDOWN_MS {
                self.over_since = None;
                Adjust::Shrink
            } else {
                Adjust::Keep
            }
        } else {
            self.over_since = None;
            Adjust::Keep
        }
    }

    /// Records that the chain shrank (`true`) or grew by 10 ms at `now_ms`.
    pub fn adjusted(&mut self, shrink: bool, now_ms: f64) {
        if shrink {
            self.stats.shrinks += 1;
        } else {
            self.stats.grows += 1;
            self.last_grow_ms = now_ms;
        }
    }

    /// The next packet to decode, at `now_ms`.
    pub fn pop(&mut self, now_ms: f64) -> Next<'_> {
        let next = match self.next_seq {
            Some(n) => n,
            None => {
                // Start at the earliest buffered packet's playout time, to
                // the sample: silence up to it (at most 10 ms at a time;
                // `now_ms` is the time of the sample being filled), so the
                // delay starts on its target, not up to 5 ms either side
                // of it as whole 10 ms pulls would make it.
                let Some(first) = self.earliest_buffered() else {
                    return Next::Silence(PACKET_10MS);
                };
                let ts = self.slots[first as usize % CAPACITY].ts;
                let due = Self::media_ms(ts) + f64::from(self.floor_ms + self.target_ms());
                let wait = ((due - now_ms) * f64::from(SAMPLE_RATE) / 1000.0).round();
                if wait >= 1.0 {
                    return Next::Silence((wait as usize).min(PACKET_10MS));
                }
                self.next_seq = Some(first);
                self.next_ts = ts;
                first
            }
        };
        self.next_seq = Some(next.wrapping_add(1));
        // Forget losses over about 10 s (500 to 1,000 packets).
        self.recent_loss *= 0.995;
        let idx = next as usize % CAPACITY;
        if self.slots[idx].filled && self.slots[idx].seq == next {
            self.slots[idx].filled = false;
            self.stats.played += 1;
            let s = &self.slots[idx];
            self.next_ts = s.ts + s.samples as i64;
            return Next::Packet(&s.data[..s.len]);
        }
        let after = next.wrapping_add(1);
        self.recent_loss = 1.0;
        if let Some(a) = self.slot(after) {
            // The gap to the next packet is the missing one's duration
            // when it is one we could have sent; otherwise assume the
            // stream's current duration.
            let gap = a.ts - self.next_ts;
            let samples = if gap == PACKET as i64 || gap == PACKET_10MS as i64 {
                gap as usize
            } else {
                self.last_samples
            };
            self.next_ts += samples as i64;
            self.stats.fec_recovered += 1;
            let s = &self.slots[after as usize % CAPACITY];
            return Next::Fec {
                next: &s.data[..s.len],
                samples,
            };
        }
        let samples = self.last_samples;
        self.next_ts += samples as i64;
        self.stats.concealed += 1;
        Next::Conceal(samples)
    }

    fn earliest_buffered(&self) -> Option<u32> {
        self.slots
            .iter()
            .filter(|s| s.filled)
            .map(|s| s.seq)
            .min_by(|a, b| ahead(*a, *b).cmp(&0))
    }

    /// Back to empty, keeping the settings.
    pub fn reset(&mut self) {
        *self = JitterBuffer::new(self.settings);
    }
}
