//! OPTIONS keepalive towards trunks (RFC 3261 §11): for each trunk with an
//! `address` and `options_interval_s > 0`, a task sends an out-of-dialog
//! OPTIONS every interval and waits for its answer (retransmitting per
//! timer E, at most one interval). Any final response proves the trunk
//! reachable, except 408 and 503, which a proxy sends when what is behind
//! it is not. After [`DOWN_AFTER`] probes in a row fail, the trunk is
//! marked down (a warning in the log, the shared [`Health`] flag), and
//! outbound calls through it fail at once as `trunk_unavailable` instead of
//! waiting out timer B (32 s). The first answered probe marks it up again.
//!
//! The up/down decision is the sans-IO [`Prober`]: it is fed probe results
//! and says when the state changes, so its rules are unit-tested without
//! sockets or clocks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::msg::{Message, Start};
use super::T1;
use crate::center::random_id;
use crate::config::SipTrunk;

/// Probes in a row without a usable answer before a trunk is down.
pub const DOWN_AFTER: u32 = 2;

/// One trunk's health as the gateway sees it.
#[derive(Debug, Default)]
pub struct TrunkHealth {
    down: AtomicBool,
    /// Probes sent (every transaction, not retransmissions).
    pub probes: AtomicU64,
    /// Probes that failed (no answer, 408, 503).
    pub failures: AtomicU64,
    /// Times the trunk went down.
    pub downs: AtomicU64,
}

impl TrunkHealth {
    /// Whether the last [`DOWN_AFTER`] probes failed (and none since
    /// succeeded).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

/// Health per trunk name, shared by the keepalive tasks (writers) and the
/// gateway (reader, when placing outbound calls). A trunk without
/// keepalive has no entry and counts as up.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<HashMap<String, Arc<TrunkHealth>>>);

impl Health {
    /// An entry for each trunk that will be probed.
    pub fn for_trunks(trunks: &[SipTrunk]) -> Health {
        Health(Arc::new(
            trunks
                .iter()
                .filter(|t| probed(t))
                .map(|t| (t.name.clone(), Arc::default()))
                .collect(),
        ))
    }

    /// The trunk's health, when it is probed.
    pub fn get(&self, trunk: &str) -> Option<Arc<TrunkHealth>> {
        self.0.get(trunk).cloned()
    }

    /// Whether the trunk is known to be down.
    pub fn is_down(&self, trunk: &str) -> bool {
        self.0.get(trunk).is_some_and(|h| h.is_down())
    }
}

/// Whether a trunk gets keepalive probes.
pub fn probed(t: &SipTrunk) -> bool {
    t.address.is_some() && t.options_interval_s > 0
}

/// What one probe came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// A final response with this status.
    Answered(u16),
    /// No final response within the probe's time.
    NoAnswer,
}

impl ProbeResult {
    /// Whether the result shows the trunk able to take calls.
    pub fn alive(self) -> bool {
        match self {
            ProbeResult::Answered(code) => !matches!(code, 408 | 503),
            ProbeResult::NoAnswer => false,
        }
    }
}

/// A change of a trunk's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It stopped answering.
    Down,
    /// It answers again.
    Up,
}

/// The up/down rule, sans-IO. A trunk starts up (calls are tried until
/// probes say otherwise).
#[derive(Debug, Default, Clone)]
pub struct Prober {
    failed_in_a_row: u32,
    down: bool,
}

impl Prober {
    /// Feeds one probe's result; returns the change it causes, if any.
    pub fn on_result(&mut self, r: ProbeResult) -> Option<Change> {
        if r.alive() {
            self.failed_in_a_row = 0;
            if self.down {
                self.down = false;
                return Some(Change::Up);
            }
            return None;
        }
        self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
        if !self.down && self.failed_in_a_row >= DOWN_AFTER {
            self.down = true;
            return Some(Change::Down);
        }
        None
    }

    /// Whether the trunk is down.
    pub fn is_down(&self) -> bool {
        self.down
    }
}

/// One trunk's keepalive task.
pub(super) struct Keepalive {
    pub socket: super::transport::Transport,
    pub local: SocketAddr,
    pub trunk: SipTrunk,
    pub target: SocketAddr,
    pub call_id: String,
    pub health: Arc<TrunkHealth>,
}

impl Keepalive {
    fn request(&self, cseq: u32, tag: &str) -> Vec<u8> {
        let host = self.trunk.address.as_deref().unwrap_or_default().to_owned();
        format!(
            "OPTIONS sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:keepalive@{local}>;tag={tag}\r\nTo: <sip:{host}>\r\n\
Call-ID: {cid}\r\nCSeq: {cseq} OPTIONS\r\nContact: <sip:keepalive@{local}>\r\n\
Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
            local = self.local,
            branch = random_id("z9hG4bK"),
            cid = self.call_id,
        )
        .into_bytes()
    }

    /// Runs for the gateway's life: one probe per interval.
    pub async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let interval = Duration::from_secs(u64::from(self.trunk.options_interval_s));
        let tag = random_id("t");
        let mut prober = Prober::default();
        let mut cseq = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            cseq = cseq.wrapping_add(1);
            self.health.probes.fetch_add(1, Ordering::Relaxed);
            // A probe waits at most one interval (and at most timer F).
            let deadline = started + interval.min(64 * T1);
            let result = self
                .probe(&mut rx, self.request(cseq, &tag), cseq, deadline)
                .await;
            let Some(result) = result else { return };
            if !result.alive() {
                self.health.failures.fetch_add(1, Ordering::Relaxed);
            }
            match prober.on_result(result) {
                Some(Change::Down) => {
                    self.health.downs.fetch_add(1, Ordering::Relaxed);
                    self.health.down.store(prober.is_down(), Ordering::Relaxed);
                    tracing::warn!(
                        "sip: trunk {} is down: {DOWN_AFTER} OPTIONS in a row unanswered \
                         (last: {result:?}); outbound calls through it fail at once",
                        self.trunk.name
                    );
                }
                Some(Change::Up) => {
                    self.health.down.store(prober.is_down(), Ordering::Relaxed);
                    tracing::info!("sip: trunk {} answers OPTIONS again: up", self.trunk.name);
                }
                None => {}
            }
            tokio::time::sleep_until(started + interval).await;
        }
    }

    /// One OPTIONS transaction; `None` when the gateway stopped.
    async fn probe(
        &self,
        rx: &mut mpsc::Receiver<Message>,
        request: Vec<u8>,
        cseq: u32,
        deadline: tokio::time::Instant,
    ) -> Option<ProbeResult> {
        let mut gap = T1;
        let _ = self.socket.send_to(&request, self.target).await;
        loop {
            let next = (tokio::time::Instant::now() + gap).min(deadline);
            tokio::select! {
                m = rx.recv() => {
                    let m = m?;
                    let Start::Response { code } = m.start else { continue };
                    // Late answers to earlier probes, and provisionals, do
                    // not settle this one.
                    if m.cseq() != Some((cseq, "OPTIONS")) || code < 200 {
                        continue;
                    }
                    return Some(ProbeResult::Answered(code));
                }
                _ = tokio::time::sleep_until(next) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Some(ProbeResult::NoAnswer);
                    }
                    // Timer E only on UDP (RFC 3261 17.1.2.2), or to reopen a
                    // lost TCP connection.
                    if self.socket.should_retransmit(self.target) {
                        let _ = self.socket.send_to(&request, self.target).await;
                    }
                    gap = (gap * 2).min(Duration::from_secs(4));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trunk_goes_down_after_consecutive_failures_only() {
        let mut p = Prober::default();
        assert_eq!(p.on_result(ProbeResult::NoAnswer), None);
        // One answer in between resets the count.
        assert_eq!(p.on_result(ProbeResult::Answered(200)), None);
        assert_eq!(p.on_result(ProbeResult::NoAnswer), None);
        assert!(!p.is_down());
        assert_eq!(p.on_result(ProbeResult::NoAnswer), Some(Change::Down));
        assert!(p.is_down());
        // Further failures change nothing more.
        assert_eq!(p.on_result(ProbeResult::NoAnswer), None);
        assert_eq!(p.on_result(ProbeResult::Answered(200)), Some(Change::Up));
        assert!(!p.is_down());
        assert_eq!(p.on_result(ProbeResult::Answered(200)), None);
    }

    #[test]
    fn any_final_answer_but_408_and_503_proves_the_trunk_alive() {
        // RFC 3261 §11: a UAS that does not do OPTIONS still answers (405,
        // 501, even 404 for our user): it is there.
        for code in [200, 404, 405, 483, 501, 603] {
            assert!(ProbeResult::Answered(code).alive(), "{code}");
        }
        for code in [408, 503] {
            assert!(!ProbeResult::Answered(code).alive(), "{code}");
        }
        assert!(!ProbeResult::NoAnswer.alive());
        let mut p = Prober::default();
        p.on_result(ProbeResult::Answered(503));
        assert_eq!(p.on_result(ProbeResult::Answered(408)), Some(Change::Down));
    }

    #[test]
    fn a_bad_interval_fails_with_file_line_and_reason() {
        let base = crate::config::sample_without_flows();
        let base_lines = base.lines().count();
        for (trunk, why) in [
            (
                "address = \"127.0.0.1:5060\"\noptions_interval_s = 3601\n",
                "3601",
            ),
            ("options_interval_s = 5\n", "no address"),
            (
                "address = \"127.0.0.1:5060\"\noptions_interval_s = -1\n",
                "negative",
            ),
        ] {
            let text = format!(
                "{base}\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n\
[[sip.trunks]]\nname = \"a\"\nallow = [\"127.0.0.1\"]\n{trunk}"
            );
            let e = crate::config::Config::parse(&text, "f.toml").expect_err(why);
            assert!(e.to_string().starts_with("f.toml:"), "{why}: {e}");
            assert!(e.line.unwrap_or(0) > base_lines, "{why}: {e}");
            if why != "negative" {
                assert!(e.message.contains("options_interval_s"), "{why}: {e}");
            }
        }
    }

    #[test]
    fn only_trunks_with_an_address_and_an_interval_are_probed() {
        let cfg = crate::config::Config::parse(
            &format!(
                "{}\n[sip]\nlisten_udp = \"127.0.0.1:0\"\n\
[[sip.trunks]]\nname = \"a\"\naddress = \"127.0.0.1:5060\"\nallow = [\"127.0.0.1\"]\n\
options_interval_s = 5\n\
[[sip.trunks]]\nname = \"b\"\naddress = \"127.0.0.1:5062\"\nallow = [\"127.0.0.2\"]\n\
[[sip.trunks]]\nname = \"c\"\nallow = [\"127.0.0.3\"]\n",
                crate::config::sample_without_flows()
            ),
            "t",
        )
        .expect("config");
        let h = Health::for_trunks(&cfg.sip.trunks);
        assert!(h.get("a").is_some());
        assert!(h.get("b").is_none() && h.get("c").is_none());
        assert!(!h.is_down("a") && !h.is_down("b"));
        h.get("a").expect("a").down.store(true, Ordering::Relaxed);
        assert!(h.is_down("a"));
    }
}
