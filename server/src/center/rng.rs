//! Where the center's randomness comes from: contact, connection and
//! session ids and media leg ids. Passed in (the OS in production, a
//! seeded generator in tests) so a run on a virtual clock is repeatable,
//! like the clock, which the center never reads either.

/// A source of random bytes.
pub trait Rng: Send {
    /// Fills `buf`.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng;

impl Rng for OsRng {
    fn fill(&mut self, buf: &mut [u8]) {
        // getrandom only fails without an OS entropy source; fall back to a
        // counter rather than panic (ids must differ, not be secret: tokens
        // are made elsewhere).
        if getrandom::fill(buf).is_err() {
            static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (b, n) in buf.iter_mut().zip(n.to_be_bytes().iter().cycle()) {
                *b = *n;
            }
        }
    }
}

/// A small deterministic generator (SplitMix64) for tests and
/// simulations: the same seed gives the same ids.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// An id like `c-3f9a0c...` (16 hex digits).
pub(crate) fn id_from(rng: &mut dyn Rng, prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rng.fill(&mut bytes);
    let mut s = String::with_capacity(prefix.len() + 17);
    s.push_str(prefix);
    s.push('-');
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A nonzero media leg id.
pub(crate) fn leg_from(rng: &mut dyn Rng) -> u32 {
    let mut bytes = [0u8; 4];
    rng.fill(&mut bytes);
    u32::from_be_bytes(bytes).max(1)
}
