//! The SIP trunk gateway, first slice: inbound calls over UDP from IP-
//! authenticated trunks. An INVITE from an allowed address to a configured
//! DID becomes a contact in the mapped queue, exactly like a caller on the
//! customer phone page: the call's RTP leg attaches to the bridge under
//! `customer:<contact>` and talks Opus media frames there, transcoded here
//! from and to G.711 at 8 kHz. Signaling state follows the center's
//! caller view (queued: 100; ringing: 180; connected: 200 with SDP; ended:
//! BYE or a final error). See docs/sip.md for what is and is not done.

pub mod digest;
mod dtmf;
mod early;
mod keepalive;
pub mod msg;
mod opus_leg;
mod outbound;
mod prack;
mod register;
pub mod sdp;
pub mod tcp;
mod timers;
mod transport;
mod uac_session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::g711;
use protocol::media::{decode_media_frame, encode_media_frame_codec, Codec, MediaHeader};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::bridge::route::MediaOut;
use crate::bridge::{customer_key, CallerAudio, AGENT_QUEUE};
use crate::center::{random_id, random_leg};
use crate::config::{SipCodec, SipTrunk};
use crate::http::AppState;
use msg::{Message, Start};

/// Why a SIP or SDP input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// Not a well-formed SIP message (answered 400 when it can be).
    #[error("malformed SIP: {0}")]
    Malformed(String),
    /// Not a usable SDP offer (answered 488).
    #[error("bad SDP: {0}")]
    BadSdp(String),
    /// No RTP port free in the configured range.
    #[error("no free RTP port")]
    NoRtpPort,
}

/// A call's queue of SIP messages from the receive loop.
const CALL_QUEUE: usize = 16;
/// Most RTP packets waiting for the pacing clock (200 ms); older ones are
/// dropped first. Also the most sent at one tick when the task ran late.
const PACED_MAX: usize = 10;
/// One RTP packet's worth of wall time.
const PACE: Duration = Duration::from_millis(20);
/// RFC 3261 T1.
const T1: Duration = Duration::from_millis(500);

/// Binds the SIP socket and runs the gateway; returns where it listens.
pub async fn start(state: AppState) -> std::io::Result<SocketAddr> {
    let listen = state
        .cfg
        .sip
        .listen_udp
        .ok_or_else(|| std::io::Error::other("sip.listen_udp not set"))?;
    let udp = Arc::new(UdpSocket::bind(listen).await?);
    let addr = udp.local_addr()?;
    let (socket, tcp_rx) = transport::Transport::start(&state.cfg.sip, udp).await?;
    // Outbound calls go through the first trunk with an address.
    let (dial_tx, dial_rx) = mpsc::channel(crate::center::TRUNK_DIAL_QUEUE);
    if state.cfg.sip.trunks.iter().any(|t| t.address.is_some()) {
        if let Ok(mut c) = state.center.lock() {
            c.set_trunk(dial_tx);
        }
    }
    tokio::spawn(receive_loop(socket, addr, state, dial_rx, tcp_rx));
    Ok(addr)
}

struct Gateway {
    socket: transport::Transport,
    local: SocketAddr,
    state: AppState,
    calls: HashMap<String, mpsc::Sender<Message>>,
    next_rtp: u16,
    /// Addresses of the trunks we send to (registrars, outbound proxies):
    /// their responses are accepted even when not in an `allow` list.
    known: std::collections::HashSet<std::net::IpAddr>,
    /// 403s sent to unknown sources in the current second (a budget, so
    /// a flood costs a first-line check and nothing sent).
    refusals: (tokio::time::Instant, u32),
    /// Datagrams from unknown sources dropped unparsed.
    pub dropped: u64,
    /// Trunks' OPTIONS keepalive state (`sip/keepalive.rs`).
    health: keepalive::Health,
}

/// 403s per second at most for requests from unknown sources.
const REFUSALS_PER_S: u32 = 20;

async fn receive_loop(
    socket: transport::Transport,
    local: SocketAddr,
    state: AppState,
    mut dial_rx: mpsc::Receiver<crate::center::TrunkDial>,
    mut tcp_rx: mpsc::Receiver<transport::Inbound>,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut gw = Gateway {
        socket: socket.clone(),
        local,
        next_rtp: state.cfg.sip.rtp_ports.0,
        state,
        calls: HashMap::new(),
        known: Default::default(),
        refusals: (tokio::time::Instant::now(), 0),
        dropped: 0,
        health: keepalive::Health::default(),
    };
    gw.start_registrations().await;
    gw.start_keepalives().await;
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            Some(id) = done_rx.recv() => { gw.calls.remove(&id); }
            Some(dial) = dial_rx.recv() => gw.on_dial(dial, &done_tx).await,
            r = socket.udp().recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                gw.on_datagram(&buf[..n], from, &done_tx).await;
            }
            // A message framed off a TCP connection is handled as a datagram.
            Some((bytes, from)) = tcp_rx.recv() => gw.on_datagram(&bytes, from, &done_tx).await,
        }
    }
}

impl Gateway {
    fn trunk_for(&self, from: SocketAddr) -> Option<&SipTrunk> {
        self.state
            .cfg
            .sip
            .trunks
            .iter()
            .find(|t| t.allow.contains(&from.ip()))
    }

    /// Whether a datagram from an unknown source gets a 403: only an
    /// INVITE, OPTIONS or REGISTER request line (judged from the first
    /// bytes alone, nothing else is parsed), and only within the per-second
    /// budget. Everything else from such a source is dropped.
    fn worth_refusing(&mut self, bytes: &[u8]) -> bool {
        let request = [&b"INVITE "[..], b"OPTIONS ", b"REGISTER "]
            .iter()
            .any(|m| bytes.starts_with(m));
        if !request {
            return false;
        }
        let now = tokio::time::Instant::now();
        if now.duration_since(self.refusals.0) >= Duration::from_secs(1) {
            self.refusals = (now, 0);
        }
        self.refusals.1 += 1;
        self.refusals.1 <= REFUSALS_PER_S
    }

    async fn send(&self, bytes: &[u8], to: SocketAddr) {
        let _ = self.socket.send_to(bytes, to).await;
    }

    async fn on_datagram(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        done: &mpsc::UnboundedSender<String>,
    ) {
        // Keep-alive CRLFs (RFC 5626) and stray bytes.
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        let trunk = self.trunk_for(from).cloned();
        if trunk.is_none() && !self.known.contains(&from.ip()) && !self.worth_refusing(bytes) {
            self.dropped += 1;
            return;
        }
        let m = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                // Only an allowed trunk gets an answer to garbage: floods
                // from elsewhere cost one parse and nothing sent.
                if trunk.is_some() && !bytes.starts_with(b"SIP/2.0") {
                    if let Some(reply) = bad_request_reply(bytes, &e) {
                        self.send(&reply, from).await;
                    }
                }
                return;
            }
        };
        let Start::Request { method, uri } = &m.start else {
            // Responses (to our BYE) go to their call.
            if let Some(tx) = self.calls.get(m.call_id()) {
                let _ = tx.try_send(m);
            }
            return;
        };
        if trunk.is_none() && self.known.contains(&from.ip()) {
            // In-dialog requests relayed by a registrar we use.
            if let Some(tx) = self.calls.get(m.call_id()) {
                let _ = tx.try_send(m);
                return;
            }
        }
        let Some(trunk) = trunk else {
            if method != "ACK" {
                tracing::warn!("sip: {method} from {from} refused: not an allowed trunk address");
                self.send(&m.response(403, "Forbidden", None, &[], b""), from)
                    .await;
            }
            return;
        };
        if let Some(tx) = self.calls.get(m.call_id()) {
            let _ = tx.try_send(m);
            return;
        }
        match method.as_str() {
            "INVITE" if m.to_tag().is_none() => {
                let uri = uri.clone();
                self.on_invite(m, &uri, from, &trunk, done).await;
            }
            "ACK" => {}
            "OPTIONS" => {
                let allow = ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS".to_string());
                self.send(
                    &m.response(200, "OK", Some(&random_id("t")), &[allow], b""),
                    from,
                )
                .await;
            }
            "CANCEL" | "BYE" => {
                self.send(
                    &m.response(481, "Call/Transaction Does Not Exist", None, &[], b""),
                    from,
                )
                .await;
            }
            _ => {
                self.send(&m.response(501, "Not Implemented", None, &[], b""), from)
                    .await;
            }
        }
    }

    async fn on_invite(
        &mut self,
        m: Message,
        uri: &str,
        from: SocketAddr,
        trunk: &SipTrunk,
        done: &mpsc::UnboundedSender<String>,
    ) {
        let tag = random_id("t");
        let reply = |code: u16, reason: &str| m.response(code, reason, Some(&tag), &[], b"");
        if self.calls.len() >= self.state.cfg.sip.max_calls {
            self.send(&reply(503, "Service Unavailable"), from).await;
            return;
        }
        // The DID is the request URI's user, or, when a registrar
        // rewrote that to our registered Contact, the To header's.
        let to_header_user = msg::user_of(msg::uri_of(m.header("to").unwrap_or_default()));
        let dialed: Vec<String> = [msg::user_of(uri), to_header_user]
            .into_iter()
            .flatten()
            .map(normalize)
            .collect();
        // A DID the trunk maps to a queue goes there; a number that is a
        // contact flow's entry point runs that flow, which decides.
        let target = match dialed.iter().find_map(|d| trunk.dids.get(d)) {
            Some(queue) => Some(Dialed::Queue(queue.clone())),
            None => match self.state.center.lock() {
                Ok(c) => dialed
                    .iter()
                    .find(|d| c.flow_for_number(d).is_some())
                    .map(|d| Dialed::Flow(d.clone())),
                Err(_) => return,
            },
        };
        let Some(target) = target else {
            self.send(&reply(404, "Not Found"), from).await;
            return;
        };
        let offer = match sdp::Offer::parse(&m.body) {
            Ok(o) => o,
            Err(e) => {
                tracing::info!("sip: INVITE from {from}: {e}");
                self.send(&reply(488, "Not Acceptable Here"), from).await;
                return;
            }
        };
        let Some((codec, pt, te)) = offer.choose(&trunk.codecs) else {
            self.send(&reply(488, "Not Acceptable Here"), from).await;
            return;
        };
        // Session timers (RFC 4028, `sip/timers.rs`): too short is a 422.
        let session = match timers::uas_negotiate(&m, self.state.cfg.sip.session_min_se_s) {
            Ok(s) => s,
            Err(e) => {
                let r = match e {
                    timers::TimerError::TooSmall { min_se, .. } => {
                        let h = [("Min-SE", min_se.to_string())];
                        m.response(422, "Session Interval Too Small", Some(&tag), &h, b"")
                    }
                    timers::TimerError::Malformed(_) => reply(400, "Bad Session-Expires"),
                };
                self.send(&r, from).await;
                return;
            }
        };
        let caller = m
            .header("p-asserted-identity")
            .or(m.header("from"))
            .and_then(|v| msg::user_of(msg::uri_of(v)))
            .map(normalize)
            .unwrap_or_default();
        let Ok(rtp) = self.bind_rtp().await else {
            self.send(&reply(503, "Service Unavailable"), from).await;
            return;
        };
        let leg = random_leg();
        let now = self.state.now();
        let placed = match self.state.center.lock() {
            Ok(mut c) => match &target {
                Dialed::Queue(queue) => {
                    c.place_inbound_playing(&caller, queue, CallerAudio::Live { leg }, now)
                }
                Dialed::Flow(number) => {
                    c.place_flow_call(&caller, number, CallerAudio::Live { leg }, now)
                }
            },
            Err(_) => return,
        };
        let contact = match placed {
            Ok(id) => id,
            Err(refused) => {
                tracing::info!(
                    "sip: INVITE from {from} ({caller}) refused: {}",
                    refused.error
                );
                let (code, reason) = if refused.contact_id.is_empty() {
                    (403, "Forbidden")
                } else {
                    (480, "Temporarily Unavailable")
                };
                self.send(&reply(code, reason), from).await;
                return;
            }
        };
        if let Ok(c) = self.state.center.lock() {
            let detail = format!("trunk {} from {from}", trunk.name);
            let _ = c
                .store()
                .contact_event(&contact, now, None, "sip_invite", Some(&detail));
        }
        self.send(&reply(100, "Trying"), from).await;
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        self.calls.insert(m.call_id().to_owned(), tx);
        let call = SipCall {
            socket: self.socket.clone(),
            local: self.local,
            state: self.state.clone(),
            contact,
            leg,
            tag,
            invite: m,
            peer: from,
            rtp: Some(rtp),
            rtp_peer: offer.rtp,
            codec,
            pt,
            te,
            codecs: trunk.codecs.clone(),
            session,
        };
        let done = done.clone();
        tokio::spawn(async move {
            let id = call.invite.call_id().to_owned();
            call.run(rx).await;
            let _ = done.send(id);
        });
    }

    /// The trunk's address, resolved in our socket's address family and
    /// trusted as a sender from then on; `None` (logged, with what is not
    /// done: `skipping`) when it does not resolve.
    async fn resolve_trunk(&mut self, trunk: &SipTrunk, skipping: &str) -> Option<SocketAddr> {
        let address = trunk.address.clone().unwrap_or_default();
        let target = match tokio::net::lookup_host(&address).await {
            Ok(mut a) => a.find(|a| a.is_ipv4() == self.local.is_ipv4()),
            Err(_) => None,
        };
        match target {
            Some(target) => {
                self.known.insert(target.ip());
                Some(target)
            }
            None => {
                tracing::warn!(
                    "sip: trunk {}: `{address}` does not resolve; {skipping}",
                    trunk.name
                );
                None
            }
        }
    }

    /// The configured trunks `keep` selects (copied: each goes to a task
    /// of its own).
    fn trunks_where(&self, keep: impl Fn(&SipTrunk) -> bool) -> Vec<SipTrunk> {
        let trunks = &self.state.cfg.sip.trunks;
        trunks.iter().filter(|t| keep(t)).cloned().collect()
    }

    /// A new Call-ID (prefixed `prefix`) for a task of the gateway's own,
    /// and the inbox its responses reach through `calls`.
    fn task_inbox(&mut self, prefix: &str) -> (String, mpsc::Receiver<Message>) {
        let call_id = random_id(prefix);
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        self.calls.insert(call_id.clone(), tx);
        (call_id, rx)
    }

    /// Starts a registration task for each trunk with `register = true`
    /// (its responses come through `calls` by Call-ID, like a call's).
    async fn start_registrations(&mut self) {
        let trunks = self.trunks_where(|t| t.register);
        for trunk in trunks {
            let Some(target) = self.resolve_trunk(&trunk, "not registering").await else {
                continue;
            };
            let (call_id, rx) = self.task_inbox("r");
            let reg = register::Registration {
                socket: self.socket.clone(),
                local: self.local,
                trunk,
                target,
                call_id,
            };
            tokio::spawn(reg.run(rx));
        }
    }

    /// Starts an OPTIONS keepalive task for each trunk with an address
    /// and `options_interval_s` (its responses come through `calls` by
    /// Call-ID, like a registration's).
    async fn start_keepalives(&mut self) {
        self.health = keepalive::Health::for_trunks(&self.state.cfg.sip.trunks);
        let trunks = self.trunks_where(keepalive::probed);
        for trunk in trunks {
            let Some(health) = self.health.get(&trunk.name) else {
                continue;
            };
            let Some(target) = self.resolve_trunk(&trunk, "no keepalive").await else {
                continue;
            };
            let (call_id, rx) = self.task_inbox("k");
            let probe = keepalive::Keepalive {
                socket: self.socket.clone(),
                local: self.local,
                trunk,
                target,
                call_id,
                health,
            };
            tokio::spawn(probe.run(rx));
        }
    }

    /// Places an agent's outbound call through the first trunk with an
    /// address.
    async fn on_dial(
        &mut self,
        dial: crate::center::TrunkDial,
        done: &mpsc::UnboundedSender<String>,
    ) {
        use crate::center::TrunkFailure;
        let fail = |gw: &Gateway, why: &str| {
            let now = gw.state.now();
            if let Ok(mut c) = gw.state.center.lock() {
                match &dial.third_party {
                    Some(k) => c.third_party_failed(
                        &dial.contact_id,
                        k,
                        TrunkFailure::TrunkUnavailable,
                        why,
                        now,
                    ),
                    None => {
                        c.trunk_failed(&dial.contact_id, TrunkFailure::TrunkUnavailable, why, now)
                    }
                }
            }
        };
        let Some(trunk) = self
            .state
            .cfg
            .sip
            .trunks
            .iter()
            .find(|t| t.address.is_some())
            .cloned()
        else {
            return fail(self, "no trunk with an address");
        };
        if self.health.is_down(&trunk.name) {
            // Known down by its keepalive: fail now, not after timer B.
            return fail(self, "the trunk does not answer OPTIONS (down)");
        }
        let address = trunk.address.clone().unwrap_or_default();
        let target = match tokio::net::lookup_host(&address).await {
            Ok(mut a) => a.find(|a| a.is_ipv4() == self.local.is_ipv4()),
            Err(_) => None,
        };
        let Some(target) = target else {
            return fail(self, "the trunk's address does not resolve");
        };
        if self.calls.len() >= self.state.cfg.sip.max_calls {
            return fail(self, "too many calls");
        }
        let Ok(rtp) = self.bind_rtp().await else {
            return fail(self, "no free RTP port");
        };
        self.known.insert(target.ip());
        let call_id = random_id("o");
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        self.calls.insert(call_id.clone(), tx);
        let call = outbound::OutboundCall {
            socket: self.socket.clone(),
            local: self.local,
            state: self.state.clone(),
            dial,
            trunk,
            target,
            call_id: call_id.clone(),
        };
        let done = done.clone();
        tokio::spawn(async move {
            let party = call.dial.third_party.clone();
            let state = call.state.clone();
            call.run(rx, rtp).await;
            if let (Some(k), Ok(mut c)) = (party, state.center.lock()) {
                c.third_party_gone(&k);
            }
            let _ = done.send(call_id);
        });
    }

    /// Binds the next free even port of the range (RTCP would take +1).
    async fn bind_rtp(&mut self) -> Result<UdpSocket, SipError> {
        let (first, last) = self.state.cfg.sip.rtp_ports;
        let ip = self.local.ip();
        let span = u32::from(last - first) / 2 + 1;
        for _ in 0..span {
            let port = self.next_rtp;
            self.next_rtp = if port.saturating_add(2) > last {
                first
            } else {
                port + 2
            };
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
                return Ok(s);
            }
        }
        Err(SipError::NoRtpPort)
    }
}

/// A caller or DID number as E.164: digits alone get a `+`.
fn normalize(user: &str) -> String {
    if !user.starts_with('+') && !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{user}")
    } else {
        user.to_owned()
    }
}

/// A 400 for a request we could not parse, when its headers still say
/// where to send one (Via, From, To, Call-ID, CSeq read leniently).
fn bad_request_reply(bytes: &[u8], e: &SipError) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("SIP/2.0 400 Bad Request\r\n");
    let mut found = 0;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) {
            found += 1;
            out.push_str(&format!("{}: {}\r\n", name, value.trim()));
        }
    }
    if found < 5 {
        return None;
    }
    let why: String = e
        .to_string()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    out.push_str(&format!(
        "Warning: 399 switchboard \"{why}\"\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(out.into_bytes())
}

/// One inbound call after its INVITE was accepted for queueing.
struct SipCall {
    socket: transport::Transport,
    local: SocketAddr,
    state: AppState,
    contact: String,
    leg: u32,
    tag: String,
    invite: Message,
    peer: SocketAddr,
    rtp: Option<UdpSocket>,
    rtp_peer: SocketAddr,
    codec: SipCodec,
    pt: u8,
    te: Option<sdp::Events>,
    /// The trunk's codecs (for re-INVITE offers).
    codecs: Vec<SipCodec>,
    /// The session timer the INVITE negotiated (RFC 4028).
    session: Option<timers::Session>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Queued,
    Ringing,
    /// 200 sent, waiting for ACK (retransmitting).
    Answered,
    Confirmed,
}

/// The answer to a REFER in a call's dialog (the far end asking us to
/// transfer the call elsewhere): 603 Decline, which RFC 3515 allows, and
/// the contact event's detail naming the target. Honouring it would let
/// whoever is on the far end make our trunk place a call to any number,
/// billed to us (toll fraud); transfers are the agents' and the flows'
/// to decide, and the call goes on unchanged.
fn refer_refusal(m: &Message) -> (Vec<u8>, String) {
    let target: String = m
        .header("refer-to")
        .unwrap_or("(no Refer-To)")
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let reply = m.response(603, "Decline", None, &[], b"");
    (reply, format!("REFER to {target} declined"))
}

/// What an inbound call sends when the agent side answers, by the phase
/// it was in: a call still queued (the agent accepted within one poll of
/// the caller view, so it was never seen ringing) sends 180 first, so a
/// 200 is always preceded by a 180.
fn answer_responses(phase: Phase) -> &'static [u16] {
    match phase {
        Phase::Queued => &[180, 200],
        Phase::Ringing => &[200],
        Phase::Answered | Phase::Confirmed => &[],
    }
}

impl SipCall {
    fn record(&self, event: &str, detail: &str) {
        let now = self.state.now();
        if let Ok(c) = self.state.center.lock() {
            let _ = c
                .store()
                .contact_event(&self.contact, now, None, event, Some(detail));
        }
    }

    fn hang_up_center(&self) {
        let now = self.state.now();
        if let Ok(mut c) = self.state.center.lock() {
            let _ = c.caller_hangup(&self.contact, now);
        }
    }

    async fn send(&self, bytes: &[u8]) {
        let _ = self.socket.send_to(bytes, self.peer).await;
    }

    fn trunk_codecs(&self) -> Vec<SipCodec> {
        self.codecs.clone()
    }

    fn contact_header(&self) -> (&'static str, String) {
        ("Contact", format!("<sip:switchboard@{}>", self.local))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let Some(rtp) = self.rtp.take() else { return };
        let Ok(rtp_local) = rtp.local_addr() else {
            return;
        };
        let mut leg = Leg::new(
            &self.state,
            &self.contact,
            None,
            self.leg,
            rtp,
            self.peer,
            self.rtp_peer,
            self.codec,
            self.pt,
            self.te,
        );
        let session = u64::from(self.leg);
        let answer_sdp = sdp::answer(rtp_local, session, self.codec, self.pt, self.te);
        let mut phase = Phase::Queued;
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut retransmit_at: Option<(tokio::time::Instant, Duration)> = None;
        let answered_at = tokio::time::Instant::now();
        // Our own requests in the dialog: session refreshes, then BYE.
        let mut bye_cseq = 1u32;
        let origin = tokio::time::Instant::now();
        let mut clock: Option<timers::Clock> = None;
        let (mut refresh_cseq, mut refresh_bytes) = (0u32, None::<Vec<u8>>);
        // Our 2xx to a re-INVITE until its ACK (timers G/H).
        let mut ack_wait: Option<(timers::AckWait, Vec<u8>)> = None;
        let min_se = self.state.cfg.sip.session_min_se_s;
        // 183 with SDP while the caller waits (`early`).
        let mut early = early::Early::new(&self.invite, T1);
        let rtp_timeout = Duration::from_secs(self.state.cfg.sip.rtp_timeout_s);
        let ok_200 = |s: &SipCall| {
            let mut h = vec![s.contact_header()];
            h.extend(
                s.session
                    .as_ref()
                    .map(timers::response_headers)
                    .unwrap_or_default(),
            );
            s.invite
                .response(200, "OK", Some(&s.tag), &h, answer_sdp.as_bytes())
        };
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { break };
                    let method = m.method().to_owned();
                    let is_request = matches!(m.start, Start::Request { .. });
                    match (is_request, method.as_str()) {
                        (true, "INVITE") if m.to_tag().is_none() => {
                            // A retransmitted INVITE: repeat where we are.
                            let again = match phase {
                                Phase::Queued => self.invite.response(100, "Trying", None, &[], b""),
                                Phase::Ringing => self.invite.response(180, "Ringing", Some(&self.tag), &[self.contact_header()], b""),
                                _ => ok_200(&self),
                            };
                            self.send(&again).await;
                        }
                        (true, "ACK") => {
                            if ack_wait.as_ref().zip(m.cseq()).is_some_and(|((w, _), (n, _))| w.acked_by(n)) {
                                ack_wait = None;
                            }
                            if phase == Phase::Answered {
                                phase = Phase::Confirmed;
                                retransmit_at = None;
                                leg.last_rtp = tokio::time::Instant::now();
                                clock = self.session.map(|t| timers::Clock::new(t, origin.elapsed(), T1));
                            }
                        }
                        (true, "CANCEL") if matches!(phase, Phase::Queued | Phase::Ringing) => {
                            self.send(&m.response(200, "OK", Some(&self.tag), &[], b"")).await;
                            self.send(&self.invite.response(487, "Request Terminated", Some(&self.tag), &[], b"")).await;
                            self.record("sip_cancel", "the caller cancelled before answer");
                            self.hang_up_center();
                            return;
                        }
                        (true, "CANCEL") => {
                            self.send(&m.response(200, "OK", Some(&self.tag), &[], b"")).await;
                        }
                        (true, "BYE") => {
                            self.send(&m.response(200, "OK", None, &[], b"")).await;
                            self.record("sip_bye", "the caller hung up");
                            self.hang_up_center();
                            return;
                        }
                        (true, "INVITE" | "UPDATE") => {
                            // A re-INVITE (or UPDATE) in our dialog; each
                            // renegotiates the session timer (RFC 4028 §9).
                            let renewed = timers::uas_negotiate(&m, min_se);
                            if let Err(timers::TimerError::TooSmall { min_se, .. }) = renewed {
                                let h = [("Min-SE", min_se.to_string())];
                                self.send(&m.response(422, "Session Interval Too Small", None, &h, b"")).await;
                                continue;
                            }
                            let offer = if m.body.is_empty() { None } else { sdp::Offer::parse(&m.body).ok() };
                            let usable = m.body.is_empty() || offer.is_some();
                            match usable.then(|| leg.reoffer(offer.as_ref(), &self.trunk_codecs())).flatten() {
                                Some((sdp, what)) => {
                                    let mut h = vec![self.contact_header()];
                                    let renewed = renewed.ok().flatten();
                                    h.extend(renewed.as_ref().map(timers::response_headers).unwrap_or_default());
                                    // An UPDATE without an offer gets no answer SDP.
                                    let body = if method == "UPDATE" && m.body.is_empty() { &b""[..] } else { sdp.as_bytes() };
                                    let ok = m.response(200, "OK", None, &h, body);
                                    self.send(&ok).await;
                                    if let (Some((n, "INVITE")), "INVITE") = (m.cseq(), method.as_str()) {
                                        ack_wait = Some((timers::AckWait::new(n, origin.elapsed(), T1), ok));
                                    }
                                    self.record(what, &format!("{method} from the caller's side"));
                                    let now = origin.elapsed();
                                    clock = renewed.map(|t| match clock.take() {
                                        Some(mut c) => { c.refreshed(t, now); c }
                                        None => timers::Clock::new(t, now, T1),
                                    });
                                }
                                None => self.send(&m.response(488, "Not Acceptable Here", None, &[], b"")).await,
                            }
                        }
                        (true, "OPTIONS") => {
                            self.send(&m.response(200, "OK", None, &[], b"")).await;
                        }
                        (true, "REFER") => {
                            let (reply, detail) = refer_refusal(&m);
                            self.send(&reply).await;
                            self.record("sip_refer_refused", &detail);
                        }
                        (true, "PRACK") => {
                            let reply = match early.on_prack(&m) {
                                Ok(()) => m.response(200, "OK", None, &[], b""),
                                Err(_) => m.response(481, "Call/Transaction Does Not Exist", None, &[], b""),
                            };
                            self.send(&reply).await;
                        }
                        (true, _) => {
                            self.send(&m.response(501, "Not Implemented", None, &[], b"")).await;
                        }
                        (false, _) => {
                            // The answer to our session refresh.
                            let Start::Response { code } = m.start else { continue };
                            let Some((n, meth)) = m.cseq() else { continue };
                            if n != refresh_cseq || code < 200 {
                                continue;
                            }
                            if meth == "INVITE" && code < 300 {
                                let ack = timers::uas_request(&self.invite, &self.tag, self.local, "ACK", n, &random_id("z9hG4bK"), &[], b"");
                                self.send(&ack).await;
                            }
                            if refresh_bytes.take().is_none() {
                                continue; // a retransmitted answer
                            }
                            let Some(c) = clock.as_mut() else { continue };
                            match code {
                                200..=299 => {
                                    let t = c.session;
                                    c.refreshed(t, origin.elapsed());
                                }
                                422 => match timers::after_422(&m, c.session.interval) {
                                    Ok(i) => c.retry_with(i),
                                    Err(_) => c.refresh_failed(),
                                },
                                408 | 481 => {
                                    // RFC 4028 §10: the dialog is gone.
                                    self.record("sip_session_expired", &format!("our session refresh got {code}"));
                                    self.send(&self.bye(bye_cseq)).await;
                                    let now = self.state.now();
                                    if let Ok(mut c) = self.state.center.lock() {
                                        c.trunk_lost(&self.contact, "session_expired", now);
                                    }
                                    return;
                                }
                                _ => c.refresh_failed(),
                            }
                        }
                    }
                }
                ev = leg.next() => leg.on_event(ev),
                _ = poll.tick() => {
                    leg.pace().await;
                    let view = self.state.center.lock().ok().and_then(|c| c.caller_view(&self.contact));
                    if let Some(v) = &view {
                        leg.sync_digits(&v.digits_heard);
                    }
                    let st = view.map_or("ended", |v| v.state.as_str());
                    if phase == Phase::Confirmed && leg.rtp_dead(rtp_timeout) {
                        self.record("sip_rtp_timeout", "no RTP from the caller's side");
                        self.send(&self.bye(bye_cseq)).await;
                        let now = self.state.now();
                        if let Ok(mut c) = self.state.center.lock() {
                            c.trunk_lost(&self.contact, "media_timeout", now);
                        }
                        return;
                    }
                    match ack_wait.as_mut().and_then(|(w, ok)| Some((w.poll(origin.elapsed())?, ok))) {
                        Some((timers::AckDue::Resend, ok)) => {
                            let ok = ok.clone();
                            self.send(&ok).await;
                        }
                        Some((timers::AckDue::GiveUp, _)) => {
                            // RFC 3261 §13.3.1.4: no ACK, end the session.
                            self.record("sip_no_ack", "no ACK for our 200 OK to a re-INVITE");
                            self.send(&self.bye(bye_cseq)).await;
                            self.hang_up_center();
                            return;
                        }
                        None => {}
                    }
                    let due = clock.as_mut().and_then(|c| c.poll(origin.elapsed()));
                    match (due, clock.as_ref()) {
                        (Some(timers::Due::Expired), _) => {
                            self.record("sip_session_expired", "no session refresh in time (RFC 4028)");
                            self.send(&self.bye(bye_cseq)).await;
                            let now = self.state.now();
                            if let Ok(mut c) = self.state.center.lock() {
                                c.trunk_lost(&self.contact, "session_expired", now);
                            }
                            return;
                        }
                        (Some(timers::Due::Refresh), Some(c)) => {
                            refresh_cseq = bye_cseq;
                            bye_cseq += 1;
                            let bytes = self.refresh_request(&leg, &c.session, refresh_cseq);
                            self.send(&bytes).await;
                            refresh_bytes = Some(bytes);
                            self.record("sip_refresh_sent", &format!("session interval {} s", c.session.interval));
                        }
                        (Some(timers::Due::Resend), _) if self.socket.should_retransmit(self.peer) => {
                            if let Some(b) = &refresh_bytes {
                                self.send(b).await;
                            }
                        }
                        _ => {}
                    }
                    if phase == Phase::Queued && matches!(st, "queued" | "flow") && !early.sent() {
                        let b = early.progress(&self.invite, &self.tag, &[self.contact_header()], answer_sdp.as_bytes(), origin.elapsed());
                        self.send(&b).await;
                        self.record("sip_early_media", if early.reliable() { "183 (100rel)" } else { "183" });
                    }
                    match early.poll(&self.invite, &self.tag, origin.elapsed()) {
                        Some(early::EarlyDue::Resend(b)) => self.send(&b).await,
                        Some(early::EarlyDue::GiveUp(b)) => {
                            self.send(&b).await;
                            self.record("sip_no_prack", "no PRACK for our reliable 183");
                            self.hang_up_center();
                            return;
                        }
                        None => {}
                    }
                    match st {
                        "ended" => {
                            match phase {
                                Phase::Queued | Phase::Ringing => {
                                    self.send(&self.invite.response(480, "Temporarily Unavailable", Some(&self.tag), &[], b"")).await;
                                }
                                Phase::Answered | Phase::Confirmed => {
                                    self.record("sip_bye_sent", "the agent side ended the call");
                                    self.send(&self.bye(bye_cseq)).await;
                                }
                            }
                            return;
                        }
                        "ringing" if phase == Phase::Queued => {
                            phase = Phase::Ringing;
                            // With 100rel the reliable 183 stands for it.
                            if !early.reliable() {
                                self.send(&self.invite.response(180, "Ringing", Some(&self.tag), &[self.contact_header()], b"")).await;
                            }
                        }
                        "connected" | "hold" if matches!(phase, Phase::Queued | Phase::Ringing) && early.may_answer() => {
                            // An agent who accepted within one poll was
                            // never seen ringing: 180 still goes first, so
                            // the far end always sees the phone ring
                            // before the answer (RFC 3261 allows skipping
                            // it, but trunks and SIPp scenarios expect it).
                            for &code in answer_responses(phase) {
                                if code == 180 && early.reliable() {
                                    continue;
                                }
                                let r = if code == 180 {
                                    self.invite.response(180, "Ringing", Some(&self.tag), &[self.contact_header()], b"")
                                } else {
                                    ok_200(&self)
                                };
                                self.send(&r).await;
                            }
                            phase = Phase::Answered;
                            retransmit_at = Some((tokio::time::Instant::now() + T1, T1));
                        }
                        _ => {}
                    }
                    if let Some((at, gap)) = retransmit_at {
                        if tokio::time::Instant::now() >= at {
                            if answered_at.elapsed() > 64 * T1 {
                                // No ACK: RFC 3261 §13.3.1.4 says end it.
                                self.record("sip_no_ack", "no ACK for our 200 OK");
                                self.send(&self.bye(bye_cseq)).await;
                                self.hang_up_center();
                                return;
                            }
                            self.send(&ok_200(&self)).await;
                            let gap = (gap * 2).min(Duration::from_secs(4));
                            retransmit_at = Some((tokio::time::Instant::now() + gap, gap));
                        }
                    }
                }
            }
        }
    }

    /// Our session refresh (RFC 4028 §7.4): an UPDATE without a body when
    /// the far end allows UPDATE, else a re-INVITE offering our current
    /// SDP unchanged.
    fn refresh_request(&self, leg: &Leg, session: &timers::Session, cseq: u32) -> Vec<u8> {
        let min_se = self.state.cfg.sip.session_min_se_s;
        let h = timers::refresh_headers(session, min_se);
        let branch = random_id("z9hG4bK");
        if timers::allows_update(&self.invite) {
            timers::uas_request(
                &self.invite,
                &self.tag,
                self.local,
                "UPDATE",
                cseq,
                &branch,
                &h,
                b"",
            )
        } else {
            let sdp = leg.our_sdp();
            timers::uas_request(
                &self.invite,
                &self.tag,
                self.local,
                "INVITE",
                cseq,
                &branch,
                &h,
                sdp.as_bytes(),
            )
        }
    }

    /// Our BYE in the dialog the INVITE created (we are the UAS: our To is
    /// its From, sent to its Contact).
    fn bye(&self, cseq: u32) -> Vec<u8> {
        let from = self.invite.header("from").unwrap_or_default();
        let to = self.invite.header("to").unwrap_or_default();
        let target = msg::uri_of(self.invite.header("contact").unwrap_or(from)).to_owned();
        let branch = random_id("z9hG4bK");
        format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} BYE\r\n\
Content-Length: 0\r\n\r\n",
            local = self.local,
            tag = self.tag,
            cid = self.invite.call_id(),
        )
        .into_bytes()
    }
}

/// What a leg's two inputs produced.
enum LegEvent {
    /// An RTP datagram of this many bytes from there.
    Rtp(usize, SocketAddr),
    /// A frame from the bridge, or `None` when it dropped our sink.
    Out(Option<MediaOut>),
}

/// Frames from the bridge a SIP leg may have waiting before new ones are
/// dropped. Larger than an agent socket's ([`AGENT_QUEUE`]): the leg's
/// task transcodes each frame and, when it bridges to another SIP leg
/// (a transfer to a number), both directions transcode in tasks the
/// busy machine may delay by more than four frames; the leg's own paced
/// queue still bounds what it sends late.
const LEG_QUEUE: usize = 4 * AGENT_QUEUE;

/// The media side of one SIP call: its RTP socket and its media leg on
/// the bridge (`customer:<contact>`), transcoding between them. Shared by
/// inbound and outbound calls.
struct Leg {
    state: AppState,
    key: String,
    leg: u32,
    rtp: UdpSocket,
    /// The signaling peer's address: RTP from its host is accepted too.
    signal_ip: std::net::IpAddr,
    rtp_peer: SocketAddr,
    media: Media,
    slot: Option<Arc<crate::bridge::route::SocketSlot>>,
    media_rx: mpsc::Receiver<MediaOut>,
    media_open: bool,
    paced: std::collections::VecDeque<Vec<u8>>,
    /// When the next paced packet is due (see [`Leg::pace`]).
    pace_due: Option<tokio::time::Instant>,
    buf: Vec<u8>,
    contact: String,
    dtmf: dtmf::Dtmf,
    /// What our SDP says (re-sent, with a new version, on a re-INVITE).
    rtp_local: SocketAddr,
    codec: SipCodec,
    pt: u8,
    te: Option<sdp::Events>,
    sdp_version: u64,
    /// The far end's direction in its latest SDP.
    remote_dir: sdp::Direction,
    /// When RTP last came from the far end.
    last_rtp: tokio::time::Instant,
}

impl Leg {
    #[allow(clippy::too_many_arguments)]
    fn new(
        state: &AppState,
        contact: &str,
        key: Option<String>,
        leg: u32,
        rtp: UdpSocket,
        signal: SocketAddr,
        rtp_peer: SocketAddr,
        codec: SipCodec,
        pt: u8,
        te: Option<sdp::Events>,
    ) -> Leg {
        let (media_tx, media_rx) = mpsc::channel::<MediaOut>(LEG_QUEUE);
        let key = key.unwrap_or_else(|| customer_key(contact));
        let rtp_local = rtp.local_addr().unwrap_or(SocketAddr::new(signal.ip(), 0));
        let slot = state.bridge.as_ref().map(|b| b.attach(&key, media_tx));
        // A trunk leg takes G.711 from the bridge (an agent's engine
        // answering a forwarded leg in kind) and sends it on untouched.
        if let Some(slot) = &slot {
            slot.set_codecs(opus_leg::bridge_codecs(codec));
        }
        Leg {
            state: state.clone(),
            key,
            leg,
            rtp,
            signal_ip: signal.ip(),
            rtp_peer,
            media: Media::new(codec, pt, leg),
            slot,
            media_rx,
            media_open: true,
            paced: std::collections::VecDeque::new(),
            pace_due: None,
            buf: vec![0u8; 2048],
            contact: contact.to_owned(),
            dtmf: dtmf::Dtmf::new(te),
            rtp_local,
            codec,
            pt,
            te,
            sdp_version: 1,
            remote_dir: sdp::Direction::SendRecv,
            last_rtp: tokio::time::Instant::now(),
        }
    }

    /// Our current SDP.
    fn our_sdp(&self) -> String {
        sdp::answer_with(
            self.rtp_local,
            u64::from(self.leg),
            self.sdp_version,
            self.codec,
            self.pt,
            self.te,
            self.remote_dir.answer(),
        )
    }

    /// A re-INVITE's offer from the far end (hold, resume, a new address
    /// or codec, a session refresh): our answer, or `None` when no codec
    /// of ours is left (then 488 and the call goes on as it was). What
    /// changed is returned for the contact's timeline.
    fn reoffer(
        &mut self,
        offer: Option<&sdp::Offer>,
        prefs: &[SipCodec],
    ) -> Option<(String, &'static str)> {
        let Some(offer) = offer else {
            // No SDP: a refresh asking for our offer; same session.
            return Some((self.our_sdp(), "sip_refresh"));
        };
        let (codec, pt, te) = offer.choose(prefs)?;
        let was = self.remote_dir;
        let changed = codec != self.codec
            || pt != self.pt
            || offer.rtp != self.rtp_peer
            || offer.direction != was;
        if codec != self.codec || pt != self.pt {
            self.media = Media::new(codec, pt, self.leg);
            if let Some(slot) = &self.slot {
                slot.set_codecs(opus_leg::bridge_codecs(codec));
            }
        }
        self.codec = codec;
        self.pt = pt;
        self.te = te;
        self.dtmf.set_events(te);
        if !offer.rtp.ip().is_unspecified() {
            self.rtp_peer = offer.rtp;
        }
        self.remote_dir = offer.direction;
        // Hold or resume restarts the no-RTP clock.
        self.last_rtp = tokio::time::Instant::now();
        if changed {
            self.sdp_version += 1;
        }
        let holding =
            |d: sdp::Direction| matches!(d, sdp::Direction::SendOnly | sdp::Direction::Inactive);
        let what = if holding(offer.direction) && !holding(was) {
            "sip_hold"
        } else if !holding(offer.direction) && holding(was) {
            "sip_resume"
        } else if changed {
            "sip_reinvite"
        } else {
            "sip_refresh"
        };
        Some((self.our_sdp(), what))
    }

    /// Whether the far end has sent nothing for `timeout` while it
    /// should be sending (not holding with `inactive` or `recvonly`).
    fn rtp_dead(&self, timeout: Duration) -> bool {
        !timeout.is_zero() && self.remote_dir.far_end_sends() && self.last_rtp.elapsed() > timeout
    }

    /// Digits the agent sent the customer (the caller view's
    /// `digits_heard`) that have not gone out yet become RFC 4733 events.
    fn sync_digits(&mut self, heard: &str) {
        self.dtmf.sync(heard);
    }

    /// The next RTP datagram or bridge frame.
    async fn next(&mut self) -> LegEvent {
        tokio::select! {
            r = self.rtp.recv_from(&mut self.buf) => match r {
                Ok((n, src)) => LegEvent::Rtp(n, src),
                Err(_) => LegEvent::Rtp(0, self.rtp_peer),
            },
            out = self.media_rx.recv(), if self.media_open => LegEvent::Out(out),
        }
    }

    fn on_event(&mut self, ev: LegEvent) {
        match ev {
            LegEvent::Rtp(n, src) => {
                // Symmetric RTP: only the trunk's hosts may send; we
                // answer to wherever its packets come from.
                if n == 0 || (src.ip() != self.signal_ip && src.ip() != self.rtp_peer.ip()) {
                    return;
                }
                self.rtp_peer = src;
                self.last_rtp = tokio::time::Instant::now();
                if let Some(key) = self.dtmf.on_rtp(&self.buf[..n]) {
                    // A caller's key (once per event, end bit or not); a
                    // third party's keys are not the caller's.
                    if self.key != customer_key(&self.contact) {
                        return;
                    }
                    let now = self.state.now();
                    if let Ok(mut c) = self.state.center.lock() {
                        let _ = c.caller_digits(&self.contact, &key.to_string(), now);
                    }
                    return;
                }
                let (Some(slot), Some(bridge)) = (&self.slot, &self.state.bridge) else {
                    return;
                };
                let Some(route) = slot.route_shared(self.leg) else {
                    return;
                };
                let forward = forwards_g711(&route, self.media.law);
                let mut frames = Vec::new();
                self.media
                    .frames_of_rtp(&self.buf[..n], forward, &mut frames);
                for frame in &frames {
                    bridge.on_frame(&self.key, &route, frame, Instant::now());
                }
            }
            // The bridge replaced or dropped our sink: stop polling it.
            LegEvent::Out(None) => self.media_open = false,
            LegEvent::Out(Some(out)) => {
                let mut packets = Vec::new();
                self.media.rtp_of_frame(&out.bytes, &mut packets);
                for packet in packets {
                    // Paced out on the 20 ms clock: frames come from the
                    // bridge in bursts when the machine is busy, and a
                    // trunk's jitter buffer may be small.
                    if self.paced.len() >= PACED_MAX {
                        self.paced.pop_front();
                    }
                    self.paced.push_back(packet);
                }
            }
        }
    }

    /// Sends what is due: one packet per 20 ms of wall time since the
    /// last, however late this tick runs. The poll clock skips the ticks
    /// a busy machine missed, and sending one (or two) a tick then fell
    /// behind the bridge for good: the queue overflowed and the trunk lost
    /// packets. An idle queue banks no credit, so a stream that resumes
    /// starts at its own rate. While a telephone-event is going out it
    /// replaces the voice packet (the bridge's in-band tone for the same
    /// key), so the far end does not detect the key twice.
    async fn pace(&mut self) {
        let now = tokio::time::Instant::now();
        let mut due = self.pace_due.unwrap_or(now);
        let mut sent = 0;
        while due <= now && sent < PACED_MAX {
            if let Some(event) = self.dtmf.next_packet(&mut self.media) {
                self.paced.pop_front();
                let _ = self.rtp.send_to(&event, self.rtp_peer).await;
            } else if let Some(p) = self.paced.pop_front() {
                let _ = self.rtp.send_to(&p, self.rtp_peer).await;
            } else {
                due = now;
                break;
            }
            sent += 1;
            due += PACE;
        }
        self.pace_due = Some(due);
    }
}

/// Whether the trunk's G.711 goes to the bridge untouched: everyone who
/// hears the trunk hears it alone (forwarded, no mix), plays `law`, and
/// the recording (if any) takes it as it is.
fn forwards_g711(route: &crate::bridge::route::InRoute, law: Codec) -> bool {
    !route.to_mixer && !route.forward.is_empty() && route.forward.iter().all(|o| o.accepts(law))
}

/// The media between one G.711 RTP stream and one media leg: forwarded
/// untouched (only the RTP header and the media frame header rewritten)
/// when everyone who hears the trunk plays G.711, transcoded to and from
/// Opus otherwise (a client that did not announce G.711, a mix, a
/// recording of Opus).
pub(crate) struct Media {
    /// The trunk's G.711 law as a media frame codec.
    law: Codec,
    pt: u8,
    leg: u32,
    enc: Option<media::codec::Encoder>,
    dec: Option<media::codec::Decoder>,
    up: g711::Resampler,
    down: g711::Resampler,
    narrow_in: Vec<f32>,
    scratch: Vec<f32>,
    frame_seq: u32,
    /// The next frame's timestamp, 48 kHz samples.
    frame_ts: u32,
    ssrc: u32,
    rtp_seq: u16,
    rtp_ts: u32,
    /// G.711 bytes from the bridge waiting to fill a 20 ms RTP packet
    /// (an engine sending 10 ms packets).
    pending: Vec<u8>,
    /// Frames towards the bridge forwarded untouched / transcoded.
    pub(crate) forwarded: u64,
    /// See `forwarded`.
    pub(crate) transcoded: u64,
    /// An Opus trunk's stream (`law` is [`Codec::Opus`]): `opus_leg`.
    opus: opus_leg::OpusLeg,
}

/// The law of a trunk codec (anything but PCMA is sent as PCMU, as the
/// G.711 functions do).
fn law_of(codec: SipCodec) -> Codec {
    match codec {
        SipCodec::Pcma => Codec::Pcma,
        SipCodec::Opus => Codec::Opus,
        _ => Codec::Pcmu,
    }
}

/// The payload of an RTP packet of payload type `pt`, `None` for anything
/// else (comfort noise, unknown payload types, not RTP).
fn rtp_payload(packet: &[u8], pt: u8) -> Option<&[u8]> {
    if packet.len() < 12 || packet[0] >> 6 != 2 || packet[1] & 0x7f != pt {
        return None;
    }
    let csrc = usize::from(packet[0] & 0x0f) * 4;
    let mut start = 12 + csrc;
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        // Padding: its length is the last byte.
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    packet.get(start..end)
}

impl Media {
    pub(crate) fn new(codec: SipCodec, pt: u8, leg: u32) -> Media {
        Media {
            law: law_of(codec),
            pt,
            leg,
            enc: None,
            dec: None,
            up: g711::Resampler::default(),
            down: g711::Resampler::default(),
            narrow_in: Vec::with_capacity(2 * g711::NARROW),
            scratch: Vec::new(),
            frame_seq: 0,
            frame_ts: 0,
            ssrc: random_leg(),
            rtp_seq: 0,
            rtp_ts: 0,
            pending: Vec::with_capacity(2 * g711::NARROW),
            forwarded: 0,
            transcoded: 0,
            opus: opus_leg::OpusLeg::default(),
        }
    }

    fn frame(&mut self, codec: Codec, payload: &[u8], samples: u32, out: &mut Vec<Vec<u8>>) {
        let header = MediaHeader {
            flags: 0,
            leg: self.leg,
            sequence: self.frame_seq,
            timestamp: self.frame_ts,
        };
        self.frame_seq = self.frame_seq.wrapping_add(1);
        self.frame_ts = self.frame_ts.wrapping_add(samples);
        let mut frame = Vec::with_capacity(protocol::media::HEADER_LEN + payload.len());
        encode_media_frame_codec(&header, codec, payload, &mut frame);
        out.push(frame);
    }

    /// An RTP packet from the trunk to media frames for the bridge: with
    /// `forward`, its G.711 payload as it came (cut into 20 ms frames if
    /// the trunk sends longer packets); otherwise one Opus frame per 20 ms
    /// of audio gathered.
    fn frames_of_rtp(&mut self, packet: &[u8], forward: bool, out: &mut Vec<Vec<u8>>) {
        if self.law == Codec::Opus {
            return opus_leg::frames_of_rtp(self, packet, out);
        }
        let Some(payload) = rtp_payload(packet, self.pt) else {
            return;
        };
        if forward {
            // Audio gathered for Opus before the switch is dropped: the
            // frame numbering goes on, so the receiver sees no gap.
            self.narrow_in.clear();
            for chunk in payload.chunks(g711::NARROW) {
                self.forwarded += 1;
                self.frame(self.law, chunk, chunk.len() as u32 * 6, out);
            }
            return;
        }
        let mut pcm = Vec::new();
        g711::decode(self.law, payload, &mut pcm);
        self.narrow_in.extend_from_slice(&pcm);
        if self.narrow_in.len() > 4 * g711::NARROW {
            self.narrow_in.clear(); // bounded: a burst is dropped
            return;
        }
        while self.narrow_in.len() >= g711::NARROW {
            let chunk: Vec<f32> = self.narrow_in.drain(..g711::NARROW).collect();
            self.up.up(&chunk, &mut self.scratch);
            let mut wide = [0.0f32; media::frame::PACKET];
            wide.copy_from_slice(&self.scratch[..media::frame::PACKET]);
            if self.enc.is_none() {
                self.enc =
                    media::codec::Encoder::new(media::codec::EncoderSettings::default()).ok();
            }
            let Some(Ok(opus)) = self
                .enc
                .as_mut()
                .map(|e| e.encode(&wide).map(<[u8]>::to_vec))
            else {
                return;
            };
            self.transcoded += 1;
            self.frame(Codec::Opus, &opus, media::frame::PACKET as u32, out);
        }
    }

    fn rtp_packet(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + payload.len());
        let marker = if self.rtp_seq == 0 { 0x80 } else { 0 };
        p.push(0x80);
        p.push(marker | self.pt);
        p.extend_from_slice(&self.rtp_seq.to_be_bytes());
        p.extend_from_slice(&self.rtp_ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.rtp_seq = self.rtp_seq.wrapping_add(1);
        self.rtp_ts = self.rtp_ts.wrapping_add(payload.len() as u32);
        p
    }

    /// A media frame from the bridge to RTP packets for the trunk: G.711
    /// of the trunk's law goes out as it came (gathered into 20 ms
    /// packets), the other law is converted sample by sample, and Opus
    /// (a mix, hold music, a client without G.711) is transcoded.
    fn rtp_of_frame(&mut self, frame: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.law == Codec::Opus {
            return opus_leg::rtp_of_frame(self, frame, out);
        }
        let Ok(f) = decode_media_frame(frame) else {
            return;
        };
        if f.codec.is_g711() {
            if f.codec == self.law {
                if self.pending.is_empty() && f.payload.len() == g711::NARROW {
                    out.push(self.rtp_packet(f.payload));
                    return;
                }
                self.pending.extend_from_slice(f.payload);
            } else {
                let mut pcm = Vec::new();
                g711::decode(f.codec, f.payload, &mut pcm);
                let mut bytes = Vec::new();
                g711::encode(self.law, &pcm, &mut bytes);
                self.pending.extend_from_slice(&bytes);
            }
            if self.pending.len() > 4 * g711::NARROW {
                self.pending.clear(); // bounded
            }
            while self.pending.len() >= g711::NARROW {
                let chunk: Vec<u8> = self.pending.drain(..g711::NARROW).collect();
                out.push(self.rtp_packet(&chunk));
            }
            return;
        }
        // Whatever G.711 was gathered goes out first, padded to 20 ms.
        if !self.pending.is_empty() {
            let mut chunk = std::mem::take(&mut self.pending);
            let silence = g711::encode_one(self.law, 0.0);
            chunk.resize(g711::NARROW, silence);
            out.push(self.rtp_packet(&chunk));
        }
        if self.dec.is_none() {
            self.dec = media::codec::Decoder::new().ok();
        }
        let mut wide = [0.0f32; media::frame::PACKET];
        // A bad packet comes back as concealment: keep the clock going.
        let n = match self.dec.as_mut() {
            Some(d) => d
                .decode_len(f.payload, &mut wide)
                .unwrap_or(media::frame::PACKET),
            None => return,
        };
        let n = n.clamp(6, media::frame::PACKET) / 6 * 6;
        let mut narrow = Vec::new();
        self.down.down(&wide[..n], &mut narrow);
        let mut payload = Vec::new();
        g711::encode(self.law, &narrow, &mut payload);
        self.pending.extend_from_slice(&payload);
        while self.pending.len() >= g711::NARROW {
            let chunk: Vec<u8> = self.pending.drain(..g711::NARROW).collect();
            out.push(self.rtp_packet(&chunk));
        }
    }
}

/// Where an inbound INVITE's dialed number leads.
enum Dialed {
    /// A DID the trunk maps to this queue.
    Queue(String),
    /// A contact flow's entry point (the number, normalized).
    Flow(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_sip(sip: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::Config::parse(
            &format!("{}\n{sip}", crate::config::sample_without_flows()),
            "f.toml",
        )
    }

    const GOOD: &str = "[sip]\nlisten_udp = \"127.0.0.1:5090\"\nrtp_ports = [30000, 30100]\n\
[[sip.trunks]]\nname = \"t\"\naddress = \"127.0.0.1:5060\"\nallow = [\"127.0.0.1\"]\n\
codecs = [\"PCMA\", \"PCMU\", \"telephone-event\"]\nusername = \"u\"\npassword = \"p\"\n\
register = true\nregister_expires_s = 60\n[sip.trunks.dids]\n\"+15550100\" = \"support\"\n";

    #[test]
    fn sip_config_is_off_by_default_and_parses() {
        let off = crate::config::Config::sample().expect("sample");
        assert!(!off.sip.enabled(), "no trunk: no gateway");
        let cfg = with_sip(GOOD).expect("good sip config");
        let t = &cfg.sip.trunks[0];
        assert_eq!(cfg.sip.rtp_ports, (30000, 30100));
        assert_eq!(
            t.codecs,
            vec![SipCodec::Pcma, SipCodec::Pcmu, SipCodec::TelephoneEvent]
        );
        assert_eq!(t.dids.get("+15550100").map(String::as_str), Some("support"));
        assert!(t.register && t.register_expires_s == 60);
        assert_eq!(
            t.credentials.as_ref().map(|c| c.username.as_str()),
            Some("u")
        );
    }

    #[test]
    fn bad_sip_config_fails_with_file_line_and_reason() {
        let base_lines = crate::config::sample_without_flows().lines().count() + 1;
        for (from, to, why) in [
            ("127.0.0.1:5090", "nope", "sip.listen_udp"),
            ("[30000, 30100]", "[30100, 30000]", "rtp_ports"),
            ("[\"127.0.0.1\"]", "[\"10.0.0.300\"]", "not an IP address"),
            ("[\"127.0.0.1\"]", "[]", "allow must list"),
            ("\"PCMA\", \"PCMU\"", "\"G729\"", "not PCMU, PCMA"),
            ("= \"support\"", "= \"nowhere\"", "unknown queue"),
            ("\"+15550100\" =", "\"5550100\" =", "not an E.164"),
            (
                "register_expires_s = 60",
                "register_expires_s = 5",
                "between 10 and 86400",
            ),
            (
                "password = \"p\"\n",
                "",
                "username and password go together",
            ),
            (
                "address = \"127.0.0.1:5060\"",
                "address = \"nohost\"",
                "not host:port",
            ),
        ] {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "{from}");
            let e = with_sip(&text).expect_err(why);
            let line = e.line.unwrap_or(0);
            assert!(e.message.contains(why), "{why}: {e}");
            assert!(e.to_string().starts_with("f.toml:"), "{e}");
            assert!(
                line > base_lines,
                "{why}: line {line} is in the [sip] section"
            );
        }
    }

    #[test]
    fn queue_caller_id_keys_are_checked() {
        let with = |keys: &str| {
            let sample = crate::config::sample_without_flows();
            let text = sample.replacen(
                "id = \"support\"\n",
                &format!("id = \"support\"\n{keys}"),
                1,
            );
            assert_ne!(text, sample);
            crate::config::Config::parse(&text, "f.toml")
        };
        let cfg = with(
            "outbound_caller_id_number = \"+15550100\"\noutbound_caller_id_name = \"Support\"\n",
        )
        .expect("good caller ID");
        let q = &cfg.queues["support"];
        assert_eq!(q.outbound_caller_id_number.as_deref(), Some("+15550100"));
        assert_eq!(q.outbound_caller_id_name.as_deref(), Some("Support"));
        for (keys, why) in [
            ("outbound_caller_id_number = \"5550100\"\n", "not an E.164"),
            ("outbound_caller_id_name = \"a\\\"b\"\n", "without quotes"),
            ("outbound_caller_id_name = \"\"\n", "1-64 printable"),
        ] {
            let e = with(keys).expect_err(why);
            assert!(e.message.contains(why), "{why}: {e}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    #[test]
    fn numbers_normalize_to_e164() {
        assert_eq!(normalize("15551234"), "+15551234");
        assert_eq!(normalize("+4420"), "+4420");
        assert_eq!(normalize("alice"), "alice");
    }

    #[test]
    fn garbage_with_headers_gets_a_400() {
        let bytes = b"INVITE nonsense\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\n\r\n";
        let e = Message::parse(bytes).expect_err("malformed");
        let r = String::from_utf8(bad_request_reply(bytes, &e).expect("reply")).expect("utf8");
        assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"), "{r}");
        assert!(r.contains("call-id: q\r\n"), "{r}");
        assert!(bad_request_reply(b"junk\r\n\r\n", &e).is_none());
    }

    #[test]
    fn a_refer_is_declined_with_its_target_recorded() {
        let bytes = b"REFER sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKr\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: q\r\nCSeq: 3 REFER\r\nRefer-To: <sip:+15550199@b>\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(bytes).expect("parse");
        let (reply, detail) = refer_refusal(&m);
        let reply = String::from_utf8(reply).expect("utf8");
        assert!(reply.starts_with("SIP/2.0 603 Decline\r\n"), "{reply}");
        assert!(reply.contains("CSeq: 3 REFER"), "{reply}");
        assert!(detail.contains("+15550199"), "{detail}");
    }

    #[test]
    fn an_answer_is_always_preceded_by_180() {
        // Queued then answered within one poll: 180, then 200.
        assert_eq!(answer_responses(Phase::Queued), &[180, 200]);
        assert_eq!(answer_responses(Phase::Ringing), &[200]);
        assert!(answer_responses(Phase::Answered).is_empty());
        assert!(answer_responses(Phase::Confirmed).is_empty());
    }
}
