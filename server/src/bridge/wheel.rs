//! The mixer's clock: a wheel of the 20 ms tick's phase slots (see
//! [`SLOTS`]) that holds a deadline only for the slots that have calls to
//! tick, so a mixer sleeps until the next busy slot instead of waking
//! every millisecond, and not at all when it has nothing to mix.
//!
//! Every deadline is computed from the wheel's epoch (slot `k` is due at
//! `epoch + k ms + n * 20 ms`), never from when the last wake happened, so
//! a late wake does not move the cadence: each call still gets its tick
//! every 20 ms with no drift, and a tick missed while the thread was not
//! running is made up at once (as the `Burst` interval before it did).
//! The thread sleeps on a futex with a deadline (`Condvar::wait_timeout`):
//! measured on this machine it wakes within about 0.1-0.2 ms of it, where
//! the Tokio timer's 1 ms wheel rounds every sleep up to the next
//! millisecond (docs/benchmarks.md, "Mixer wakes only for busy slots").

use std::time::{Duration, Instant};

use super::{SLOTS, TICK};

/// One slot's share of the tick: its phase offset step.
const PHASE: Duration = Duration::from_millis(TICK.as_millis() as u64 / SLOTS as u64);

/// The deadlines of the busy phase slots.
pub(super) struct Wheel {
    epoch: Instant,
    /// Per slot: when it is next due, while it has calls to tick.
    due: [Option<Instant>; SLOTS],
}

impl Wheel {
    /// A wheel with no busy slot, slot 0's phase at `epoch`.
    pub(super) fn new(epoch: Instant) -> Wheel {
        Wheel {
            epoch,
            due: [None; SLOTS],
        }
    }

    /// Which slots have calls to tick, at `now`: a slot that becomes busy
    /// is due at its next phase at or after `now` (its calls start on
    /// the slot's cadence); a busy slot keeps its deadline, so its cadence
    /// never jumps; a slot that has none left is forgotten.
    pub(super) fn set_busy(&mut self, busy: &[bool; SLOTS], now: Instant) {
        for (k, (due, &busy)) in self.due.iter_mut().zip(busy).enumerate() {
            *due = match (busy, *due) {
                (false, _) => None,
                (true, Some(at)) => Some(at),
                (true, None) => Some(next_phase(self.epoch, k, now)),
            };
        }
    }

    /// The busy slot due earliest, if it is due by `now`, with the
    /// instant it was due; its next deadline is one tick after that one
    /// (not after `now`: no drift, and a missed tick is made up).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(usize, Instant)> {
        let (k, at) = self
            .due
            .iter()
            .enumerate()
            .filter_map(|(k, d)| d.map(|at| (k, at)))
            .min_by_key(|&(k, at)| (at, k))?;
        if at > now {
            return None;
        }
        self.due[k] = Some(at + TICK);
        Some((k, at))
    }

    /// When the next busy slot is due (`None`: no slot is busy).
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }
}

/// Slot `k`'s first phase at or after `now`, on a wheel started at
/// `epoch`.
fn next_phase(epoch: Instant, k: usize, now: Instant) -> Instant {
    let first = epoch + PHASE * k as u32;
    let Some(behind) = now.checked_duration_since(first) else {
        return first;
    };
    let periods = behind.as_nanos().div_ceil(TICK.as_nanos());
    // u32 periods of 20 ms are 2.7 years: a mixer lives less.
    first + TICK * u32::try_from(periods).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(slots: &[usize]) -> [bool; SLOTS] {
        let mut b = [false; SLOTS];
        for &k in slots {
            b[k] = true;
        }
        b
    }

    /// No busy slot: nothing is due, ever, so the mixer sleeps until a
    /// command wakes it.
    #[test]
    fn an_idle_wheel_has_no_deadline() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.set_busy(&[false; SLOTS], t0);
        assert_eq!(w.next(), None);
        assert_eq!(w.pop_due(t0 + Duration::from_secs(3600)), None);
    }

    /// Two busy slots over ten seconds: the wheel is due exactly at
    /// their phases, 50 times a second each and at no other instant, and
    /// the ten-thousandth deadline is where the first one predicts (no
    /// drift), whatever instant the wakes happen at.
    #[test]
    fn busy_slots_are_due_at_their_phases_only_with_no_drift() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.set_busy(&busy(&[3, 11]), t0);
        let mut ticks = Vec::new();
        // Wakes that come a little late (0.3 ms) each time.
        let mut now = t0;
        for _ in 0..1_000 {
            now = w.next().expect("busy") + Duration::from_micros(300);
            while let Some(t) = w.pop_due(now) {
                ticks.push(t);
            }
        }
        assert_eq!(ticks.len(), 1_000);
        for (i, (k, at)) in ticks.iter().enumerate() {
            let cycle = (i / 2) as u32;
            let (slot, phase) = if i % 2 == 0 { (3, 3) } else { (11, 11) };
            assert_eq!(*k, slot);
            assert_eq!(*at, t0 + TICK * cycle + PHASE * phase, "tick {i}");
        }
        assert!(now < t0 + Duration::from_secs(10) + Duration::from_millis(12));
    }

    /// A stall of 65 ms makes up the missed ticks at once, in deadline
    /// order, and the cadence then continues from the epoch.
    #[test]
    fn a_late_wake_makes_up_the_missed_ticks_in_order() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.set_busy(&busy(&[0, 10]), t0);
        let mut got = Vec::new();
        while let Some(t) = w.pop_due(t0 + Duration::from_millis(65)) {
            got.push(t);
        }
        let want: Vec<(usize, Instant)> = (0..7u32)
            .map(|i| ((i as usize % 2) * 10, t0 + PHASE * (10 * i)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(w.next(), Some(t0 + Duration::from_millis(70)));
    }

    /// A slot that becomes busy starts at its next phase, not in the past
    /// (no burst of ticks its calls never had) and not at the wake; a
    /// busy slot keeps its deadline when others come and go; a slot that
    /// empties is forgotten.
    #[test]
    fn slots_join_at_their_next_phase_and_leave_without_moving_others() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.set_busy(&busy(&[5]), t0 + Duration::from_millis(1_000));
        assert_eq!(w.next(), Some(t0 + Duration::from_millis(1_005)));
        // Slot 2 joins at 1,003.5 ms: its next phase is 1,022 ms.
        let at = t0 + Duration::from_micros(1_003_500);
        w.set_busy(&busy(&[2, 5]), at);
        assert_eq!(
            w.pop_due(t0 + Duration::from_millis(1_005)).map(|t| t.0),
            Some(5)
        );
        assert_eq!(w.next(), Some(t0 + Duration::from_millis(1_022)));
        // Slot 5 leaves; slot 2 keeps its deadline.
        w.set_busy(&busy(&[2]), t0 + Duration::from_millis(1_010));
        assert_eq!(w.next(), Some(t0 + Duration::from_millis(1_022)));
        w.set_busy(&[false; SLOTS], t0 + Duration::from_millis(1_011));
        assert_eq!(w.next(), None);
    }
}
