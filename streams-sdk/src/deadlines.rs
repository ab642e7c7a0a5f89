//! Request deadlines on the caller's clock, sans-IO (the `poll_timeout`
//! pattern): the core says *when* it next needs to be woken, a driver arms
//! one timer for that instant and calls back, and the core fails whatever
//! is due. No driver checks on a heartbeat, so a 5 s timeout fires at 5 s
//! (plus the timer's slack), not somewhere between 5 and 10 s.
//!
//! The timeouts of one request seen from its three places are chained so
//! that the inner one always decides: the client core gives the backend
//! [`REQUEST_TIMEOUT_MS`]; a follower tab, which relays through the leader
//! tab's core, gives the leader [`RELAY_TIMEOUT_MS`] (longer, so the
//! leader's own verdict arrives first); and the page SDK waits for the
//! CCP's verdict with only a backstop of [`PAGE_BACKSTOP_MS`] for a CCP
//! that stopped answering at all. A page is therefore never told `timeout`
//! for an op that the CCP then completes.

use std::collections::BTreeMap;

use protocol::Millis;

/// The client core's timeout for a request to the backend.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// A follower tab's timeout for a request it relays through the leader
/// tab: the leader's core answers `timeout` itself at
/// [`REQUEST_TIMEOUT_MS`]; this only covers a leader that vanished.
pub const RELAY_TIMEOUT_MS: u64 = REQUEST_TIMEOUT_MS + 1_000;

/// The page SDK's default backstop: longer than every verdict the CCP can
/// give (its own core's, a follower's), so the CCP's answer decides.
pub const PAGE_BACKSTOP_MS: u64 = RELAY_TIMEOUT_MS + 2_000;

/// Pending requests by id, each with the instant it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deadlines {
    by_id: BTreeMap<u64, Millis>,
}

impl Deadlines {
    /// Awaits request `id` until `deadline`.
    pub fn insert(&mut self, id: u64, deadline: Millis) {
        self.by_id.insert(id, deadline);
    }

    /// Request `id` was answered; returns whether it was still awaited (an
    /// answer after its timeout, or a duplicate, is not).
    pub fn remove(&mut self, id: u64) -> bool {
        self.by_id.remove(&id).is_some()
    }

    /// Whether request `id` is awaited.
    pub fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// How many requests are awaited.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no request is awaited.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The instant the driver's one timer should fire at, if any request
    /// is awaited.
    pub fn next(&self) -> Option<Millis> {
        self.by_id.values().min().copied()
    }

    /// Removes and returns (in id order) every request due at `now`.
    pub fn expire(&mut self, now: Millis) -> Vec<u64> {
        let due: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.by_id.remove(id);
        }
        due
    }

    /// Removes and returns every awaited request (the link went away).
    pub fn drain(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.by_id).into_keys().collect()
    }
}

/// How long a driver's timer should wait, from `now`, to fire at
/// `deadline` (zero when it is already due).
pub fn delay_ms(deadline: Millis, now: Millis) -> u64 {
    deadline.since(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeouts_are_chained_so_the_inner_verdict_comes_first() {
        const { assert!(REQUEST_TIMEOUT_MS < RELAY_TIMEOUT_MS) };
        const { assert!(RELAY_TIMEOUT_MS < PAGE_BACKSTOP_MS) };
    }

    #[test]
    fn next_is_the_earliest_and_expire_takes_only_what_is_due() {
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.insert(1, Millis(5_000));
        d.insert(2, Millis(3_000));
        d.insert(3, Millis(9_000));
        assert_eq!(d.next(), Some(Millis(3_000)));
        assert_eq!(delay_ms(Millis(3_000), Millis(1_000)), 2_000);
        assert_eq!(delay_ms(Millis(3_000), Millis(4_000)), 0);
        assert!(d.expire(Millis(2_999)).is_empty());
        assert_eq!(d.expire(Millis(5_000)), vec![1, 2]);
        assert_eq!(d.next(), Some(Millis(9_000)));
        assert!(d.remove(3));
        assert!(!d.remove(3), "a second answer is not awaited");
        assert!(d.is_empty());
        assert_eq!(d.next(), None);
        d.insert(4, Millis(1));
        assert_eq!(d.drain(), vec![4]);
        assert_eq!(d.len(), 0);
    }
}
