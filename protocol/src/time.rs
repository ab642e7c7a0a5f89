//! Wall-clock instants as plain numbers. The machines never read a clock;
//! drivers pass `now` in, which is what lets tests step a virtual clock.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// Milliseconds elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This instant moved `ms` milliseconds later.
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// This instant moved `s` seconds later.
    pub fn plus_secs(self, s: u64) -> Millis {
        self.plus_ms(s.saturating_mul(1000))
    }
}
