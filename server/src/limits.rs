//! Resource bounds for sockets, before and after login: the bounded
//! outgoing queue every socket writes through ([`Outbox`]), the per-socket
//! message-rate limiter ([`FloodGuard`]), the count of bad frames before
//! a socket identifies itself ([`PreHelloErrors`]), and the registry that caps
//! sockets per remote address, per agent and in total ([`Sockets`]).
//!
//! The numbers come from the configuration's `[limits]` table
//! ([`crate::config::Limits`]). Nothing here blocks: a full queue, an empty
//! token bucket or a full registry answers at once, and the socket driver
//! (`ws.rs`, `customer.rs`) turns that into a typed error or a close.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::Notify;

use crate::config::Limits;

/// WebSocket close codes the backend uses (RFC 6455 section 7.4.1 and the
/// IANA registry).
pub mod close_code {
    /// Policy violation: kept flooding after `rate_limited`, too many
    /// errors before `hello`, no `hello` in time, evicted by a newer socket.
    pub const POLICY: u16 = 1008;
    /// A message over the transport's size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Try again later: the client did not read what it was sent.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Why a socket is being closed: sent as the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code.
    pub code: u16,
    /// A short reason for people (at most 123 bytes on the wire).
    pub reason: &'static str,
}

impl CloseReason {
    /// Whether the client earned this close: it counts against its
    /// address ([`SocketTicket::penalize`]). Being evicted by a newer
    /// socket of the same agent or being slow to read does not.
    pub fn is_abuse(self) -> bool {
        self == CloseReason::TOO_BIG
            || (self.code == close_code::POLICY && self != CloseReason::EVICTED)
    }

    /// The client did not read: its queue or write deadline ran out.
    pub const SLOW_READER: CloseReason = CloseReason {
        code: close_code::TRY_AGAIN_LATER,
        reason: "the client did not read its messages",
    };
    /// A frame over the transport limit.
    pub const TOO_BIG: CloseReason = CloseReason {
        code: close_code::TOO_BIG,
        reason: "frame too large",
    };
    /// Kept sending after `rate_limited`.
    pub const FLOOD: CloseReason = CloseReason {
        code: close_code::POLICY,
        reason: "message rate limit exceeded",
    };
    /// Too many errors before `hello`.
    pub const PRE_HELLO_ERRORS: CloseReason = CloseReason {
        code: close_code::POLICY,
        reason: "too many bad frames before hello",
    };
    /// No `hello` (or `dial`) in time.
    pub const HELLO_TIMEOUT: CloseReason = CloseReason {
        code: close_code::POLICY,
        reason: "no hello in time",
    };
    /// A newer socket for the same agent pushed this one over the cap.
    pub const EVICTED: CloseReason = CloseReason {
        code: close_code::POLICY,
        reason: "too many sockets for this agent",
    };
}

/// Shared between a socket's driver, its writer and whoever holds its
/// [`Outbox`]: the first reason to close wins, and the driver is woken.
#[derive(Debug, Default)]
pub struct Shutdown {
    notify: Notify,
    reason: OnceLock<CloseReason>,
}

impl Shutdown {
    /// Asks the socket to close with `reason` (the first reason sticks).
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.notify.notify_one();
    }

    /// Sets the close frame's reason without waking the driver (the
    /// driver itself is closing).
    pub fn set_reason(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
    }

    /// Why, if a close was asked for.
    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    /// Resolves once a close is asked for.
    pub async fn requested(&self) {
        self.notify.notified().await;
    }
}

/// The sending half of a socket's outgoing text queue: encoded frames,
/// bounded in frames and in bytes. A push never waits: when the queue is
/// full the client is not reading, so the socket is asked to close
/// ([`CloseReason::SLOW_READER`]) and the frame is dropped. A client that
/// reconnects resumes from its last `seq` out of the agent's backlog.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<String>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
    shutdown: Arc<Shutdown>,
}

/// The writer's half of an [`Outbox`].
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<String>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// A queue of at most `frames` frames and `max_bytes` bytes.
    pub fn new(frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                tx,
                queued: queued.clone(),
                max_bytes,
                shutdown: Arc::new(Shutdown::default()),
            },
            Inbox { rx, queued },
        )
    }

    /// A queue sized by the configuration.
    pub fn for_socket(limits: &Limits) -> (Outbox, Inbox) {
        Outbox::new(limits.send_queue_frames, limits.send_queue_bytes)
    }

    /// Queues an encoded frame. False when it was not queued: the socket is
    /// gone, or the queue is full (and the socket is now closing).
    pub fn push(&self, text: String) -> bool {
        let n = text.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        // One frame larger than the whole budget still goes into an empty queue.
        if before > 0 && before + n > self.max_bytes {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.shutdown.close(CloseReason::SLOW_READER);
            return false;
        }
        match self.tx.try_send(text) {
            Ok(()) => true,
            Err(e) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                if matches!(e, TrySendError::Full(_)) {
                    self.shutdown.close(CloseReason::SLOW_READER);
                }
                false
            }
        }
    }

    /// The socket's shutdown signal.
    pub fn shutdown(&self) -> &Arc<Shutdown> {
        &self.shutdown
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl Inbox {
    /// The next frame, or `None` once every [`Outbox`] is dropped.
    pub async fn recv(&mut self) -> Option<String> {
        let text = self.rx.recv().await?;
        self.queued.fetch_sub(text.len(), Ordering::AcqRel);
        Some(text)
    }

    /// A frame if one is waiting (tests).
    pub fn try_recv(&mut self) -> Option<String> {
        let text = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(text.len(), Ordering::AcqRel);
        Some(text)
    }
}

/// A token bucket: `rate` tokens a second up to `burst`. Driven by the
/// caller's clock, so tests step it.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u32, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: f64::from(rate_per_s),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// What to do with an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Answer `rate_limited` and drop it.
    Refuse,
    /// The client kept flooding after being told: close the socket.
    Close,
}

/// Which bucket a message draws from: signaling and media are paced
/// differently (media arrives 50 times a second on a live call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A text frame.
    Text,
    /// A binary (media) frame.
    Media,
}

/// One socket's message-rate limiter: a token bucket per kind, and a
/// count of refused messages. The count starts over once a bucket has
/// refilled completely (the client slowed down); past
/// `rate_limit_strikes` refusals the socket is closed.
#[derive(Debug, Clone)]
pub struct FloodGuard {
    text: TokenBucket,
    media: TokenBucket,
    strikes: u32,
    max_strikes: u32,
}

impl FloodGuard {
    /// A guard with the configured rates.
    pub fn new(limits: &Limits, now: Instant) -> FloodGuard {
        FloodGuard {
            text: TokenBucket::new(limits.messages_per_s, limits.message_burst, now),
            media: TokenBucket::new(limits.media_per_s, limits.media_burst, now),
            strikes: 0,
            max_strikes: limits.rate_limit_strikes,
        }
    }

    /// Judges one incoming message.
    pub fn check(&mut self, kind: Kind, now: Instant) -> Verdict {
        let bucket = match kind {
            Kind::Text => &mut self.text,
            Kind::Media => &mut self.media,
        };
        if bucket.is_full(now) {
            self.strikes = 0;
        }
        if bucket.try_take(now) {
            return Verdict::Allow;
        }
        self.strikes += 1;
        if self.strikes > self.max_strikes {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

/// The bad frames a socket sends before it says who it is (`hello`,
/// `dial`, `media_hello`): at `pre_hello_errors` of them the socket is
/// closed, so a client that never identifies cannot keep one open with
/// junk. One counter for every socket driver, so the limit means the
/// same on each.
#[derive(Debug, Clone)]
pub struct PreHelloErrors {
    seen: u32,
    limit: u32,
}

impl PreHelloErrors {
    /// A counter with the configured limit.
    pub fn new(limits: &Limits) -> PreHelloErrors {
        PreHelloErrors {
            seen: 0,
            limit: limits.pre_hello_errors,
        }
    }

    /// Counts one bad frame. At the limit, sets the close reason and
    /// answers true: the driver stops reading.
    pub fn strike(&mut self, shutdown: &Shutdown) -> bool {
        self.seen += 1;
        if self.seen >= self.limit {
            shutdown.set_reason(CloseReason::PRE_HELLO_ERRORS);
            return true;
        }
        false
    }
}

/// Most attributes a contact holds (docs/protocol.md, section 5).
pub const MAX_ATTRIBUTES: usize = 128;
/// Longest attribute key, bytes.
pub const MAX_ATTRIBUTE_KEY: usize = 128;
/// Longest attribute value, bytes.
pub const MAX_ATTRIBUTE_VALUE: usize = 4096;
/// Most bytes of keys and values a contact holds in all, so a whole
/// contact always fits well inside one 64 KiB frame.
pub const MAX_ATTRIBUTE_BYTES: usize = 32 * 1024;

/// Checks a contact's whole attribute map against the protocol's bounds.
pub fn check_attributes(
    attributes: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    if let Some(k) = attributes
        .keys()
        .find(|k| k.is_empty() || k.len() > MAX_ATTRIBUTE_KEY)
    {
        return Err(format!(
            "attribute keys are 1-{MAX_ATTRIBUTE_KEY} bytes (got {})",
            k.len()
        ));
    }
    if let Some((k, _)) = attributes
        .iter()
        .find(|(_, v)| v.len() > MAX_ATTRIBUTE_VALUE)
    {
        return Err(format!(
            "attribute `{}` is over {MAX_ATTRIBUTE_VALUE} bytes",
            k.chars().take(40).collect::<String>()
        ));
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "a contact holds at most {MAX_ATTRIBUTES} attributes"
        ));
    }
    let total: usize = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ATTRIBUTE_BYTES {
        return Err(format!(
            "a contact's attributes hold at most {MAX_ATTRIBUTE_BYTES} bytes of keys and values (got {total})"
        ));
    }
    Ok(())
}

/// Why a socket was refused at the upgrade (answered with HTTP 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The backend holds `max_sockets` sockets.
    #[error("the backend is at its socket limit; try again later")]
    Total,
    /// This address holds `max_pre_hello_per_ip` sockets that have not
    /// said hello yet.
    #[error("too many unauthenticated sockets from this address; try again later")]
    PerAddress,
    /// Sockets from this address were closed for abuse
    /// `policy_closes_per_minute` times this minute: for the rest of it,
    /// it may have one socket at a time that has not said hello.
    #[error("sockets from this address keep being closed for abuse; one at a time for now")]
    Penalized,
}

/// How long policy closes count against an address.
const PENALTY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Addresses remembered for penalties; beyond it expired entries are dropped.
const PENALTY_TABLE: usize = 65_536;

/// The key sockets are counted under: the IPv4 address, or the /64 of an
/// IPv6 address (one host usually owns a whole /64).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    pre_hello: HashMap<IpAddr, usize>,
    /// Authenticated sockets per agent, oldest first.
    agents: HashMap<String, VecDeque<(u64, Arc<Shutdown>)>>,
    /// Policy closes per address in its current window (count, start).
    penalties: HashMap<IpAddr, (u32, Instant)>,
    next_id: u64,
}

/// Every open socket (agent and customer), counted against the caps.
#[derive(Debug)]
pub struct Sockets {
    max_total: usize,
    max_pre_hello_per_ip: usize,
    max_per_agent: usize,
    max_policy_closes: u32,
    counts: Mutex<Counts>,
}

/// One admitted socket; dropping it gives its place back.
#[derive(Debug)]
#[must_use = "dropping the ticket frees the socket's place at once"]
pub struct SocketTicket {
    sockets: Arc<Sockets>,
    id: u64,
    addr: IpAddr,
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    PreHello,
    Agent(String),
    Other,
}

impl Sockets {
    /// A registry with the configured caps.
    pub fn new(limits: &Limits) -> Arc<Sockets> {
        Arc::new(Sockets {
            max_total: limits.max_sockets,
            max_pre_hello_per_ip: limits.max_pre_hello_per_ip,
            max_per_agent: limits.max_sockets_per_agent,
            max_policy_closes: limits.policy_closes_per_minute,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every
        // update is a single step.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new socket from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<SocketTicket, Refused> {
        let addr = address_key(ip);
        let mut c = self.counts();
        if c.total >= self.max_total {
            return Err(Refused::Total);
        }
        let penalized = c.penalties.get(&addr).is_some_and(|(n, since)| {
            *n >= self.max_policy_closes && since.elapsed() < PENALTY_WINDOW
        });
        let pre = c.pre_hello.entry(addr).or_insert(0);
        if penalized && *pre >= 1 {
            return Err(Refused::Penalized);
        }
        if *pre >= self.max_pre_hello_per_ip {
            return Err(Refused::PerAddress);
        }
        *pre += 1;
        c.total += 1;
        c.next_id += 1;
        Ok(SocketTicket {
            sockets: self.clone(),
            id: c.next_id,
            addr,
            stage: Stage::PreHello,
        })
    }

    /// Sockets open now (agent and customer).
    pub fn total(&self) -> usize {
        self.counts().total
    }

    /// Sockets from `ip` that have not said hello.
    pub fn pre_hello(&self, ip: IpAddr) -> usize {
        self.counts()
            .pre_hello
            .get(&address_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

impl SocketTicket {
    fn leave_pre_hello(&self, c: &mut Counts) {
        if self.stage == Stage::PreHello {
            if let Some(n) = c.pre_hello.get_mut(&self.addr) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.pre_hello.remove(&self.addr);
                }
            }
        }
    }

    /// The socket said hello as `agent`. If the agent now has more than
    /// `max_sockets_per_agent` sockets, the oldest are asked to close.
    pub fn authenticated(&mut self, agent: &str, shutdown: Arc<Shutdown>) {
        let sockets = self.sockets.clone();
        let mut c = sockets.counts();
        self.leave_pre_hello(&mut c);
        let list = c.agents.entry(agent.to_owned()).or_default();
        list.push_back((self.id, shutdown));
        while list.len() > sockets.max_per_agent {
            if let Some((_, old)) = list.pop_front() {
                old.close(CloseReason::EVICTED);
            }
        }
        self.stage = Stage::Agent(agent.to_owned());
    }

    /// The socket was closed for abuse (flooding, errors or silence before
    /// `hello`): it counts against its address. Once the address reaches
    /// `policy_closes_per_minute`, for the rest of the minute it may hold
    /// one socket before `hello` at a time (not none: agents behind the
    /// same NAT address must still get in), so a flooder that reconnects
    /// at once mostly costs a 429, not a socket.
    pub fn penalize(&self) {
        let sockets = self.sockets.clone();
        let mut c = sockets.counts();
        if c.penalties.len() >= PENALTY_TABLE {
            c.penalties
                .retain(|_, (_, since)| since.elapsed() < PENALTY_WINDOW);
        }
        if c.penalties.len() >= PENALTY_TABLE {
            // Still full of live entries: forget them rather than grow.
            c.penalties.clear();
        }
        let entry = c.penalties.entry(self.addr).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= PENALTY_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// The socket is past its opening step but has no agent (a customer
    /// phone that dialed): it stops counting against its address.
    pub fn admitted_other(&mut self) {
        let sockets = self.sockets.clone();
        let mut c = sockets.counts();
        self.leave_pre_hello(&mut c);
        self.stage = Stage::Other;
    }
}

impl Drop for SocketTicket {
    fn drop(&mut self) {
        let sockets = self.sockets.clone();
        let mut c = sockets.counts();
        c.total = c.total.saturating_sub(1);
        self.leave_pre_hello(&mut c);
        if let Stage::Agent(agent) = &self.stage {
            if let Some(list) = c.agents.get_mut(agent) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    c.agents.remove(agent);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            max_sockets: 3,
            max_pre_hello_per_ip: 2,
            max_sockets_per_agent: 1,
            messages_per_s: 10,
            message_burst: 5,
            rate_limit_strikes: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        assert!(!b.try_take(t0 + Duration::from_millis(100)));
        assert!(b.is_full(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn flood_guard_refuses_then_closes_and_forgives_a_pause() {
        let t0 = Instant::now();
        let mut g = FloodGuard::new(&limits(), t0);
        let verdicts: Vec<Verdict> = (0..8).map(|_| g.check(Kind::Text, t0)).collect();
        assert_eq!(&verdicts[..5], &[Verdict::Allow; 5]);
        assert_eq!(&verdicts[5..7], &[Verdict::Refuse; 2]);
        assert_eq!(verdicts[7], Verdict::Close);
        // After a full refill the count starts over.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(g.check(Kind::Text, later), Verdict::Allow);
        let mut g = FloodGuard::new(&limits(), t0);
        for _ in 0..5 {
            g.check(Kind::Text, t0);
        }
        assert_eq!(g.check(Kind::Text, t0), Verdict::Refuse);
        assert_eq!(
            g.check(Kind::Text, t0 + Duration::from_secs(1)),
            Verdict::Allow
        );
        assert_eq!(g.check(Kind::Media, t0), Verdict::Allow, "own bucket");
    }

    #[test]
    fn the_pre_hello_error_limit_closes_at_its_count_and_not_before() {
        let limits = Limits {
            pre_hello_errors: 3,
            ..Limits::default()
        };
        let shutdown = Shutdown::default();
        let mut errors = PreHelloErrors::new(&limits);
        assert!(!errors.strike(&shutdown));
        assert!(!errors.strike(&shutdown));
        assert_eq!(shutdown.reason(), None);
        assert!(errors.strike(&shutdown), "the third bad frame closes");
        assert_eq!(shutdown.reason(), Some(CloseReason::PRE_HELLO_ERRORS));
    }

    #[test]
    fn registry_caps_pre_hello_per_address_and_total_and_evicts_per_agent() {
        let s = Sockets::new(&limits());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let mut t1 = s.admit(a).expect("first");
        let t2 = s.admit(a).expect("second");
        assert_eq!(s.admit(a).err(), Some(Refused::PerAddress));
        let first = Arc::new(Shutdown::default());
        t1.authenticated("alice", first.clone());
        assert_eq!(s.pre_hello(a), 1);
        let t3 = s.admit(b).expect("other address");
        assert_eq!(s.admit(b).err(), Some(Refused::Total));
        drop(t2);
        let mut t4 = s.admit(a).expect("a place came back");
        let second = Arc::new(Shutdown::default());
        t4.authenticated("alice", second.clone());
        assert_eq!(first.reason(), Some(CloseReason::EVICTED));
        assert_eq!(second.reason(), None);
        drop((t1, t3, t4));
        assert_eq!(s.total(), 0);
        assert_eq!(s.pre_hello(a), 0);
    }

    #[test]
    fn an_address_whose_sockets_keep_being_closed_for_abuse_is_refused() {
        let s = Sockets::new(&Limits {
            policy_closes_per_minute: 2,
            ..Limits::default()
        });
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        for _ in 0..2 {
            let t = s.admit(a).expect("admitted");
            t.penalize();
        }
        let one = s.admit(a).expect("one at a time still gets in");
        assert_eq!(s.admit(a).err(), Some(Refused::Penalized));
        let _other = s
            .admit("10.0.0.2".parse().expect("ip"))
            .expect("other address");
        drop(one);
        assert!(s.admit(a).is_ok());
    }

    #[test]
    fn ipv6_hosts_count_per_64() {
        let x: IpAddr = "2001:db8:1:2::5".parse().expect("ip");
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(address_key(x), address_key(y));
        let m: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(address_key(m), "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn outbox_overflow_asks_the_socket_to_close() {
        let (out, mut inbox) = Outbox::new(2, 100);
        assert!(out.push("a".repeat(60)));
        assert!(!out.push("b".repeat(60)), "over the byte budget");
        assert_eq!(out.shutdown().reason(), Some(CloseReason::SLOW_READER));
        assert_eq!(inbox.try_recv().map(|s| s.len()), Some(60));
        assert_eq!(out.queued_bytes(), 0);
        let (out, _inbox) = Outbox::new(2, 1000);
        assert!(out.push("x".into()) && out.push("y".into()));
        assert!(!out.push("z".into()), "over the frame budget");
        assert_eq!(out.shutdown().reason(), Some(CloseReason::SLOW_READER));
        // A frame larger than the budget still fits an empty queue.
        let (out, _inbox) = Outbox::new(2, 10);
        assert!(out.push("y".repeat(50)));
    }
}
