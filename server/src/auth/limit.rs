//! Failed-login throttling, per user name and per client address, with a
//! delay that doubles with every failure past a free allowance.
//!
//! An attempt is counted as a failure of its user name *before* the
//! password is checked and forgiven if it succeeds, so a burst of
//! concurrent guesses at one account is throttled as exactly as a
//! sequential one. An address is charged only for checked failures (a
//! shift starting behind one office address logs many agents in at once),
//! and is checked again just before the password check, so a queue of
//! sprayed guesses stops as soon as the address is blocked. While a user
//! or address is blocked, attempts are refused without checking the
//! password at all (no Argon2 work for the attacker to buy, and no way to
//! learn whether a password was right).
//!
//! Memory is bounded: each table holds at most a fixed number of entries;
//! when full, entries whose window has passed go first, then the oldest.
//! Configured user names are evicted last, so spraying made-up names
//! cannot reset a real agent's counter.

use std::collections::HashMap;
use std::net::IpAddr;

use protocol::Millis;

/// The throttling rules (from `[server]`, see `server/config/sample.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failures per user name before delays start.
    pub free_per_user: u32,
    /// Failures per client address before delays start.
    pub free_per_address: u32,
    /// The first delay; each further failure doubles it.
    pub backoff_base_ms: u64,
    /// The longest delay.
    pub backoff_max_ms: u64,
    /// A user or address with no failure for this long starts over.
    pub window_ms: u64,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            free_per_user: 5,
            free_per_address: 20,
            backoff_base_ms: 1_000,
            backoff_max_ms: 900_000,
            window_ms: 900_000,
        }
    }
}

/// Entries per table; beyond this the stalest are dropped.
pub const MAX_TRACKED: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Millis,
    blocked_until: Millis,
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
    free: u32,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Table {
            entries: HashMap::new(),
            free,
        }
    }

    /// Milliseconds until `key` may try again, if it is blocked now.
    fn blocked(&mut self, key: &K, now: Millis, p: &LoginPolicy) -> Option<u64> {
        let e = self.entries.get(key)?;
        if now.0 < e.blocked_until.0 {
            return Some(e.blocked_until.0 - now.0);
        }
        if now.since(e.last) >= p.window_ms {
            self.entries.remove(key);
        }
        None
    }

    /// Counts one failure; returns the count.
    fn fail(&mut self, key: K, now: Millis, p: &LoginPolicy, protect: impl Fn(&K) -> bool) -> u32 {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED {
            self.evict(now, p, protect);
        }
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
            blocked_until: Millis(0),
        });
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if e.failures > self.free {
            let doublings = (e.failures - self.free - 1).min(40);
            let delay = p
                .backoff_base_ms
                .saturating_mul(1u64 << doublings)
                .min(p.backoff_max_ms);
            e.blocked_until = now.plus_ms(delay);
        }
        e.failures
    }

    /// Takes back one counted failure (the attempt succeeded).
    fn forgive(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = e.failures.saturating_sub(1);
            if e.failures <= self.free {
                e.blocked_until = Millis(0);
            }
            if e.failures == 0 {
                self.entries.remove(key);
            }
        }
    }

    fn evict(&mut self, now: Millis, p: &LoginPolicy, protect: impl Fn(&K) -> bool) {
        self.entries
            .retain(|_, e| now.0 < e.blocked_until.0 || now.since(e.last) < p.window_ms);
        while self.entries.len() >= MAX_TRACKED {
            let victim = self
                .entries
                .iter()
                .min_by_key(|(k, e)| (protect(k), e.last))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Why an attempt may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// How long until the next attempt is considered.
    pub retry_after_ms: u64,
}

/// A counted attempt, to settle with [`Limiter::succeeded`] when the
/// password was right. Dropping it leaves the failure counted.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    user: String,
    address: IpAddr,
    /// Failures of this user name so far, this one included.
    pub user_failures: u32,
    /// Failures from this address so far, this one included.
    pub address_failures: u32,
}

/// Both tables.
#[derive(Debug)]
pub struct Limiter {
    policy: LoginPolicy,
    users: Table<String>,
    addresses: Table<IpAddr>,
}

/// The address an attempt is counted under: the IP, and for IPv6 its /64
/// (one subscriber's allocation), since a host can pick any address in it.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// User names are counted as given, case-folded and cut to a bounded size.
fn user_key(user: &str) -> String {
    user.chars().take(64).flat_map(char::to_lowercase).collect()
}

impl Limiter {
    /// Empty tables under `policy`.
    pub fn new(policy: LoginPolicy) -> Self {
        Limiter {
            policy,
            users: Table::new(policy.free_per_user),
            addresses: Table::new(policy.free_per_address),
        }
    }

    /// Refuses the attempt if the user or address is blocked; otherwise
    /// counts it as a failure until [`Limiter::succeeded`] says otherwise.
    /// `known` tells configured user names (evicted last).
    pub fn begin(
        &mut self,
        user: &str,
        ip: IpAddr,
        now: Millis,
        known: impl Fn(&str) -> bool,
    ) -> Result<Attempt, Throttled> {
        let p = self.policy;
        let user = user_key(user);
        let address = address_key(ip);
        let wait = self
            .users
            .blocked(&user, now, &p)
            .max(self.addresses.blocked(&address, now, &p));
        if let Some(retry_after_ms) = wait {
            return Err(Throttled { retry_after_ms });
        }
        let user_failures = self.users.fail(user.clone(), now, &p, |k| known(k));
        Ok(Attempt {
            user,
            address,
            user_failures,
            address_failures: 0,
        })
    }

    /// Just before the password check (after waiting for a turn): refuses
    /// the attempt if its address was blocked meanwhile. The refused
    /// attempt is not held against the user name.
    pub fn recheck(&mut self, attempt: &Attempt, now: Millis) -> Result<(), Throttled> {
        let p = self.policy;
        match self.addresses.blocked(&attempt.address, now, &p) {
            Some(retry_after_ms) => {
                self.users.forgive(&attempt.user);
                Err(Throttled { retry_after_ms })
            }
            None => Ok(()),
        }
    }

    /// The password was wrong: the address is charged too. Returns the
    /// attempt with both counts for the log.
    pub fn failed(&mut self, mut attempt: Attempt, now: Millis) -> Attempt {
        let p = self.policy;
        attempt.address_failures = self.addresses.fail(attempt.address, now, &p, |_| false);
        attempt
    }

    /// The attempt's password was right: it was no failure, and the user's
    /// earlier failures are forgotten (the address keeps its own).
    pub fn succeeded(&mut self, attempt: Attempt) {
        self.users.entries.remove(&attempt.user);
    }

    /// Entries held (for tests of the memory bound).
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.entries.len(), self.addresses.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LoginPolicy {
        LoginPolicy {
            free_per_user: 3,
            free_per_address: 10,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            window_ms: 10_000,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn any(_: &str) -> bool {
        false
    }

    /// A wrong password from `ip`, the way `auth::login` reports it.
    fn wrong(l: &mut Limiter, user: &str, ip: IpAddr, now: Millis) -> Result<Attempt, Throttled> {
        let a = l.begin(user, ip, now, any)?;
        l.recheck(&a, now)?;
        Ok(l.failed(a, now))
    }

    #[test]
    fn delays_start_after_the_allowance_and_double() {
        let mut l = Limiter::new(policy());
        let mut now = Millis(1_000);
        for n in 1..=3 {
            let a = l.begin("alice", A, now, any).expect("free attempt");
            assert_eq!(a.user_failures, n);
        }
        // The fourth is checked, and blocks the next for 100 ms.
        let _ = l
            .begin("alice", A, now, any)
            .expect("fourth is let through");
        assert_eq!(
            l.begin("alice", B, now, any).map(|_| ()),
            Err(Throttled {
                retry_after_ms: 100
            }),
            "blocked per user, from any address"
        );
        let mut delays = Vec::new();
        for _ in 0..6 {
            let wait = l
                .begin("alice", A, now, any)
                .expect_err("blocked")
                .retry_after_ms;
            delays.push(wait);
            now = now.plus_ms(wait);
            let _ = l.begin("alice", A, now, any).expect("after the delay");
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn success_forgets_the_user_but_not_while_blocked() {
        let mut l = Limiter::new(policy());
        let now = Millis(0);
        for _ in 0..4 {
            let _ = l.begin("alice", A, now, any).expect("let through");
        }
        assert!(l.begin("alice", A, now, any).is_err(), "blocked");
        let later = now.plus_ms(100);
        let ok = l.begin("alice", A, later, any).expect("after the delay");
        l.succeeded(ok);
        for _ in 0..3 {
            let a = l.begin("alice", A, later, any).expect("fresh allowance");
            l.succeeded(a);
        }
        assert_eq!(l.tracked().0, 0);
    }

    #[test]
    fn the_window_resets_and_other_users_are_unaffected() {
        let mut l = Limiter::new(policy());
        for _ in 0..5 {
            let _ = l.begin("alice", A, Millis(0), any);
        }
        assert!(l.begin("alice", A, Millis(1), any).is_err());
        let bob = l.begin("bob", A, Millis(1), any).expect("bob is not alice");
        assert_eq!(bob.user_failures, 1);
        let again = l
            .begin("alice", B, Millis(20_000), any)
            .expect("window passed");
        assert_eq!(again.user_failures, 1, "counting starts over");
    }

    #[test]
    fn an_address_is_throttled_across_user_names() {
        let mut l = Limiter::new(policy());
        for i in 0..11 {
            let _ = wrong(&mut l, &format!("user{i}"), A, Millis(0)).expect("new name each time");
        }
        assert!(
            l.begin("zed", A, Millis(0), any).is_err(),
            "address blocked"
        );
        assert!(
            l.begin("zed", B, Millis(0), any).is_ok(),
            "another address is not"
        );
    }

    #[test]
    fn queued_attempts_stop_once_the_address_is_blocked() {
        let mut l = Limiter::new(policy());
        // Twelve guesses at different names pass the first check together...
        let queued: Vec<Attempt> = (0..12)
            .map(|i| {
                l.begin(&format!("user{i}"), A, Millis(0), any)
                    .expect("first check")
            })
            .collect();
        let mut checked = 0;
        for a in queued {
            if l.recheck(&a, Millis(0)).is_ok() {
                checked += 1;
                let _ = l.failed(a, Millis(0));
            }
        }
        // ...but only the free allowance plus the one that set the delay
        // get their password checked.
        assert_eq!(checked, 11);
        assert_eq!(
            l.tracked().0,
            11,
            "refused attempts are not held against their users"
        );
    }

    #[test]
    fn many_right_passwords_at_once_from_one_address_all_pass() {
        let mut l = Limiter::new(policy());
        let attempts: Vec<Attempt> = (0..100)
            .map(|i| {
                l.begin(&format!("agent{i}"), A, Millis(0), any)
                    .expect("not throttled")
            })
            .collect();
        for a in attempts {
            l.recheck(&a, Millis(0)).expect("not throttled");
            l.succeeded(a);
        }
        assert_eq!(l.tracked(), (0, 0));
    }

    #[test]
    fn tables_are_bounded_and_keep_configured_names() {
        let mut l = Limiter::new(policy());
        let known = |u: &str| u == "alice";
        for _ in 0..5 {
            let _ = l.begin("alice", A, Millis(0), known);
        }
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            if let Ok(a) = l.begin(&format!("spray{i}"), ip, Millis(1), known) {
                let _ = l.failed(a, Millis(1));
            }
        }
        let (users, addresses) = l.tracked();
        assert!(users <= MAX_TRACKED && addresses <= MAX_TRACKED);
        assert!(
            l.begin("alice", B, Millis(2), known).is_err(),
            "alice still blocked"
        );
    }

    #[test]
    fn ipv6_hosts_in_one_slash_64_share_a_counter() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(address_key(mapped), A);
    }
}
