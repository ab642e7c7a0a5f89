//! Outbound calls (we are the UAC): an agent's `connect` to a phone number
//! becomes an INVITE to the trunk. The center hands us a [`TrunkDial`];
//! this task runs the INVITE client transaction (RFC 3261 §17.1.1: timer
//! A retransmits, timer B gives up), answers 401/407 challenges with
//! digest credentials once per challenge, reports 180/183 (with early
//! media when the 18x carries SDP), a 2xx (then ACK and audio both ways)
//! or a typed failure back to the center, and ends the dialog with BYE or
//! CANCEL when the agent side hangs up. Every request goes to the trunk's
//! address (an outbound proxy for a registrar like Kamailio, the far end
//! itself for an IP trunk), with the dialog's route set from
//! Record-Route.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::digest::Challenge;
use super::msg::{self, Message, Start};
use super::prack::{self, Prack, Provisional};
use super::uac_session::{RefreshOutcome, UacSession};
use super::{sdp, timers, Leg, T1};
use crate::center::{random_id, third_party_key, TrunkDial, TrunkFailure};
use crate::config::SipTrunk;
use crate::http::AppState;

/// How long an outbound call may ring before we give up (CANCEL, then
/// `no_answer`).
const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// After our CANCEL or BYE, how long we wait for the far end's answer.
const LINGER: Duration = Duration::from_secs(4);

/// Where the INVITE transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE sent, nothing heard (retransmitting).
    Calling,
    /// A provisional response came.
    Proceeding,
    /// 2xx received and ACKed.
    Confirmed,
}

/// One outbound call.
pub(super) struct OutboundCall {
    pub socket: super::transport::Transport,
    pub local: SocketAddr,
    pub state: AppState,
    pub dial: TrunkDial,
    pub trunk: SipTrunk,
    /// The trunk's address: every request goes there.
    pub target: SocketAddr,
    pub call_id: String,
}

/// The dialog as the 2xx set it up.
struct Dialog {
    /// The To header of the 2xx (with the far end's tag).
    to: String,
    /// The far end's Contact URI (the request URI of in-dialog requests).
    remote_target: String,
    /// Route headers for in-dialog requests (Record-Route, reversed).
    routes: Vec<String>,
}

impl OutboundCall {
    fn record(&self, event: &str, detail: &str) {
        let now = self.state.now();
        if let Ok(c) = self.state.center.lock() {
            let _ = c
                .store()
                .contact_event(&self.dial.contact_id, now, None, event, Some(detail));
        }
    }

    fn fail(&self, failure: TrunkFailure, detail: &str) {
        tracing::info!(
            "sip: outbound call {} failed: {} ({detail})",
            self.dial.contact_id,
            failure.as_str()
        );
        let now = self.state.now();
        if let Ok(mut c) = self.state.center.lock() {
            match &self.dial.third_party {
                Some(k) => c.third_party_failed(&self.dial.contact_id, k, failure, detail, now),
                None => c.trunk_failed(&self.dial.contact_id, failure, detail, now),
            }
        }
    }

    /// The far end is gone (its BYE, or no RTP): for the customer the call
    /// ends; a third party's connection ends.
    fn far_end_gone(&self, reason: &str) {
        let now = self.state.now();
        let Ok(mut c) = self.state.center.lock() else {
            return;
        };
        match (&self.dial.third_party, reason) {
            (Some(k), _) => c.third_party_hangup(&self.dial.contact_id, k, reason, now),
            (None, "media_timeout" | "session_expired") => {
                c.trunk_lost(&self.dial.contact_id, reason, now)
            }
            (None, _) => {
                let _ = c.caller_hangup(&self.dial.contact_id, now);
            }
        }
    }

    /// Whether the agent side still wants this call.
    fn wanted(&self) -> (bool, Option<String>) {
        let Ok(c) = self.state.center.lock() else {
            return (false, None);
        };
        match &self.dial.third_party {
            Some(k) => (c.third_party_live(&self.dial.contact_id, k), None),
            None => match c.caller_view(&self.dial.contact_id) {
                Some(v) => (v.state.as_str() != "ended", Some(v.digits_heard)),
                None => (false, None),
            },
        }
    }

    async fn send(&self, bytes: &[u8]) {
        let _ = self.socket.send_to(bytes, self.target).await;
    }

    fn request_uri(&self) -> String {
        format!("sip:{}@{}", self.dial.number, self.target)
    }

    fn our_from(&self, tag: &str) -> String {
        let user = self
            .dial
            .caller_id_number
            .clone()
            .or_else(|| self.trunk.credentials.as_ref().map(|c| c.username.clone()))
            .unwrap_or_else(|| "anonymous".into());
        let name = self
            .dial
            .caller_id_name
            .as_ref()
            .map(|n| format!("\"{n}\" "))
            .unwrap_or_default();
        format!("{name}<sip:{user}@{}>;tag={tag}", self.local.ip())
    }

    fn to_header(&self) -> String {
        format!("<{}>", self.request_uri())
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &self,
        cseq: u32,
        branch: &str,
        from_tag: &str,
        offer: &str,
        auth: Option<&(String, String)>,
        timer: &str,
    ) -> Vec<u8> {
        // Session timer lines (RFC 4028 §7.1, `uac_session`), with 100rel
        // in their Supported (RFC 3262 §4, `prack`).
        let mut extra = prack::with_supported(timer);
        if let Some(number) = &self.dial.caller_id_number {
            let name = self
                .dial
                .caller_id_name
                .as_ref()
                .map(|n| format!("\"{n}\" "))
                .unwrap_or_default();
            extra.push_str(&format!(
                "P-Asserted-Identity: {name}<sip:{number}@{}>\r\n",
                self.local.ip()
            ));
        }
        if let Some((name, value)) = auth {
            extra.push_str(&format!("{name}: {value}\r\n"));
        }
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\n\
Contact: <sip:switchboard@{local}>\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n{extra}\
Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
            ruri = self.request_uri(),
            local = self.local,
            from = self.our_from(from_tag),
            to = self.to_header(),
            cid = self.call_id,
            len = offer.len(),
        )
        .into_bytes()
    }

    /// A request outside the 2xx dialog that reuses the INVITE's branch:
    /// the ACK of a non-2xx final response (with its To) or a CANCEL.
    fn same_branch(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        from_tag: &str,
        to: &str,
    ) -> Vec<u8> {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n",
            ruri = self.request_uri(),
            local = self.local,
            from = self.our_from(from_tag),
            cid = self.call_id,
        )
        .into_bytes()
    }

    /// A request in the confirmed dialog (ACK for the 2xx, BYE).
    fn in_dialog(&self, method: &str, cseq: u32, from_tag: &str, d: &Dialog) -> Vec<u8> {
        self.in_dialog_with(method, cseq, from_tag, d, &[], b"")
    }

    /// [`OutboundCall::in_dialog`] with `extra` headers and an SDP `body`
    /// (a session refresh).
    fn in_dialog_with(
        &self,
        method: &str,
        cseq: u32,
        from_tag: &str,
        d: &Dialog,
        extra: &[(&'static str, String)],
        body: &[u8],
    ) -> Vec<u8> {
        let routes: String = d.routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
        let mut head = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\n{routes}From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n",
            ruri = d.remote_target,
            local = self.local,
            branch = random_id("z9hG4bK"),
            from = self.our_from(from_tag),
            to = d.to,
            cid = self.call_id,
        );
        if !extra.is_empty() || !body.is_empty() {
            head.push_str(&format!("Contact: <sip:switchboard@{}>\r\n", self.local));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/sdp\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    pub async fn run(self, mut rx: mpsc::Receiver<Message>, rtp: UdpSocket) {
        let Ok(rtp_local) = rtp.local_addr() else {
            self.fail(TrunkFailure::TrunkUnavailable, "no RTP socket");
            return;
        };
        let offer = sdp::offer(rtp_local, u64::from(self.dial.leg), &self.trunk.codecs);
        let from_tag = random_id("t");
        let mut cseq = 1u32;
        let mut branch = random_id("z9hG4bK");
        let mut auth: Option<(String, String)> = None;
        let mut challenges = 0u32;
        // Session timers (RFC 4028): our offer, the 2xx's session, our
        // refreshes (CSeqs above the INVITE's; BYE above them all).
        let mut uac = UacSession::new(self.state.cfg.sip.session_min_se_s);
        let origin = tokio::time::Instant::now();
        let mut dlg_cseq = 0u32;
        // Reliable 18x (RFC 3262): their RSeq order and our PRACK.
        let mut reliable = Prack::default();
        let mut refresh_bytes: Option<Vec<u8>> = None;
        self.record(
            "sip_invite_sent",
            &format!("trunk {} to {}", self.trunk.name, self.dial.number),
        );
        self.send(&self.invite(
            cseq,
            &branch,
            &from_tag,
            &offer,
            None,
            &uac.invite_headers(),
        ))
        .await;
        let started = tokio::time::Instant::now();
        let mut phase = Phase::Calling;
        let mut retransmit = (started + T1, T1);
        let mut rtp_socket = Some(rtp);
        let mut leg: Option<Leg> = None;
        let mut dialog: Option<Dialog> = None;
        // Set once we sent CANCEL: we only wait for the far end's answer.
        let mut closing: Option<tokio::time::Instant> = None;
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let rtp_timeout = Duration::from_secs(self.state.cfg.sip.rtp_timeout_s);
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { break };
                    match &m.start {
                        Start::Response { code } => {
                            let code = *code;
                            let Some((n, method)) = m.cseq() else { continue };
                            if phase == Phase::Confirmed {
                                // The answer to our session refresh?
                                match uac.on_response(&m, code, origin.elapsed()) {
                                    RefreshOutcome::NotOurs => {}
                                    RefreshOutcome::Done { ack } => {
                                        if code >= 200 {
                                            refresh_bytes = None;
                                        }
                                        if let (true, Some(d)) = (ack, &dialog) {
                                            self.send(&self.in_dialog("ACK", n, &from_tag, d)).await;
                                        }
                                        continue;
                                    }
                                    RefreshOutcome::End => {
                                        if let Some(d) = &dialog {
                                            self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, d)).await;
                                        }
                                        self.record("sip_session_expired", &format!("our session refresh got {code}"));
                                        self.far_end_gone("session_expired");
                                        return;
                                    }
                                }
                            }
                            if method != "INVITE" || n != cseq {
                                continue; // answers to our CANCEL/BYE, old transactions
                            }
                            if closing.is_some() && code >= 200 {
                                if code < 300 {
                                    // Answered as we cancelled: hang up at once.
                                    if let Some(d) = self.dialog_of(&m) {
                                        self.send(&self.in_dialog("ACK", cseq, &from_tag, &d)).await;
                                        self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, &d)).await;
                                    }
                                } else {
                                    let to = m.header("to").unwrap_or_default().to_owned();
                                    self.send(&self.same_branch("ACK", cseq, &branch, &from_tag, &to)).await;
                                }
                                return;
                            }
                            match code {
                                100..=199 => {
                                    if phase == Phase::Calling {
                                        phase = Phase::Proceeding;
                                    }
                                    if code == 100 {
                                        continue;
                                    }
                                    match reliable.on_provisional(&m, cseq) {
                                        Provisional::Unreliable => {}
                                        Provisional::Ignore => continue,
                                        Provisional::Again(bytes) => {
                                            self.send(&bytes).await;
                                            continue;
                                        }
                                        Provisional::Acknowledge { rack } => {
                                            // PRACK in the early dialog the 18x
                                            // set up, on a CSeq of its own.
                                            let Some(d) = self.dialog_of(&m) else {
                                                tracing::info!("sip: outbound {}: a reliable {code} without To tag or Contact", self.dial.contact_id);
                                                continue;
                                            };
                                            dlg_cseq = cseq.max(dlg_cseq) + 1;
                                            let bytes = self.in_dialog_with("PRACK", dlg_cseq, &from_tag, &d, &[("RAck", rack.clone())], b"");
                                            self.send(&bytes).await;
                                            reliable.sent(bytes);
                                            self.record("sip_prack_sent", &format!("{code} RAck {rack}"));
                                        }
                                    }
                                    let mut early = false;
                                    if leg.is_none() && !m.body.is_empty() && self.dial.third_party.is_none() {
                                        if let Some(l) = self.leg_of(&m, &mut rtp_socket) {
                                            leg = Some(l);
                                            early = true;
                                        }
                                    }
                                    let now = self.state.now();
                                    if let Ok(mut c) = self.state.center.lock() {
                                        match &self.dial.third_party {
                                            Some(_) => drop(c.store().contact_event(&self.dial.contact_id, now, None, "trunk_progress", Some("third party ringing"))),
                                            None => c.trunk_progress(&self.dial.contact_id, early, now),
                                        }
                                    }
                                }
                                200..=299 => {
                                    let Some(d) = self.dialog_of(&m) else { continue };
                                    self.send(&self.in_dialog("ACK", cseq, &from_tag, &d)).await;
                                    if phase == Phase::Confirmed {
                                        continue; // a retransmitted 2xx: ACKed again
                                    }
                                    phase = Phase::Confirmed;
                                    uac.on_answer(&m, origin.elapsed());
                                    if leg.is_none() {
                                        leg = self.leg_of(&m, &mut rtp_socket);
                                    }
                                    if leg.is_none() {
                                        // 2xx without a usable answer: end it.
                                        self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, &d)).await;
                                        self.fail(TrunkFailure::TrunkError, "no usable SDP answer");
                                        return;
                                    }
                                    dialog = Some(d);
                                    if let Some(l) = leg.as_mut() {
                                        l.last_rtp = tokio::time::Instant::now();
                                    }
                                    let now = self.state.now();
                                    let answered = match (self.state.center.lock(), &self.dial.third_party) {
                                        (Ok(mut c), Some(k)) => c.third_party_answered(&self.dial.contact_id, k, now),
                                        (Ok(mut c), None) => c.trunk_answered(&self.dial.contact_id, now).is_ok(),
                                        (Err(_), _) => false,
                                    };
                                    self.record("sip_answered", &format!("{code}"));
                                    if !answered {
                                        // The agent hung up meanwhile.
                                        if let Some(d) = &dialog {
                                            self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, d)).await;
                                        }
                                        return;
                                    }
                                }
                                401 | 407 => {
                                    let to = m.header("to").unwrap_or_default().to_owned();
                                    self.send(&self.same_branch("ACK", cseq, &branch, &from_tag, &to)).await;
                                    let header = if code == 401 { "www-authenticate" } else { "proxy-authenticate" };
                                    let challenge = m.header(header).map(Challenge::parse);
                                    let creds = self.trunk.credentials.as_ref();
                                    let (Some(Ok(ch)), Some(creds)) = (challenge, creds) else {
                                        self.fail(TrunkFailure::TrunkAuthFailed, &format!("{code} we cannot answer"));
                                        return;
                                    };
                                    challenges += 1;
                                    if challenges > 2 && !ch.stale {
                                        self.fail(TrunkFailure::TrunkAuthFailed, &format!("{code} after our credentials"));
                                        return;
                                    }
                                    let value = ch.answer(&creds.username, &creds.password, "INVITE", &self.request_uri(), 1, &random_id("c"));
                                    let name = if code == 401 { "Authorization" } else { "Proxy-Authorization" };
                                    auth = Some((name.to_owned(), value));
                                    cseq += 1;
                                    branch = random_id("z9hG4bK");
                                    phase = Phase::Calling;
                                    reliable.restart();
                                    retransmit = (tokio::time::Instant::now() + T1, T1);
                                    self.send(&self.invite(cseq, &branch, &from_tag, &offer, auth.as_ref(), &uac.invite_headers())).await;
                                }
                                422 if uac.on_invite_422(&m) => {
                                    // RFC 4028 §7.2: again with its Min-SE.
                                    let to = m.header("to").unwrap_or_default().to_owned();
                                    self.send(&self.same_branch("ACK", cseq, &branch, &from_tag, &to)).await;
                                    self.record("sip_422", m.header("min-se").unwrap_or_default());
                                    cseq += 1;
                                    branch = random_id("z9hG4bK");
                                    phase = Phase::Calling;
                                    reliable.restart();
                                    retransmit = (tokio::time::Instant::now() + T1, T1);
                                    self.send(&self.invite(cseq, &branch, &from_tag, &offer, auth.as_ref(), &uac.invite_headers())).await;
                                }
                                _ => {
                                    let to = m.header("to").unwrap_or_default().to_owned();
                                    self.send(&self.same_branch("ACK", cseq, &branch, &from_tag, &to)).await;
                                    self.fail(TrunkFailure::of_status(code), &format!("SIP {code}"));
                                    return;
                                }
                            }
                        }
                        Start::Request { method, .. } => {
                            let reply = |code: u16, reason: &str| m.response(code, reason, None, &[], b"");
                            match method.as_str() {
                                "BYE" => {
                                    self.send_to_via(&m, &reply(200, "OK")).await;
                                    self.record("sip_bye", "the far end hung up");
                                    self.far_end_gone("third_party_disconnect");
                                    return;
                                }
                                "ACK" => {}
                                "INVITE" | "UPDATE" if m.to_tag().is_some() => {
                                    // An UPDATE without a body is a bare
                                    // session refresh: no SDP either way.
                                    let bare = method == "UPDATE" && m.body.is_empty();
                                    let offer = if m.body.is_empty() { None } else { sdp::Offer::parse(&m.body).ok() };
                                    let usable = m.body.is_empty() || offer.is_some();
                                    let answer = match leg.as_mut() {
                                        Some(_) if bare => Some((String::new(), "sip_refresh")),
                                        Some(l) if usable => l.reoffer(offer.as_ref(), &self.trunk.codecs),
                                        _ => None,
                                    };
                                    match answer {
                                        Some((sdp, what)) => match uac.on_peer_refresh(&m, origin.elapsed()) {
                                            Ok(timer) => {
                                                let mut h = vec![("Contact", format!("<sip:switchboard@{}>", self.local))];
                                                h.extend(timer);
                                                self.send(&m.response(200, "OK", None, &h, sdp.as_bytes())).await;
                                                self.record(what, &format!("{method} from the far end"));
                                            }
                                            Err((code, h)) => {
                                                let reason = if code == 422 { "Session Interval Too Small" } else { "Bad Session-Expires" };
                                                self.send(&m.response(code, reason, None, &h, b"")).await;
                                            }
                                        },
                                        None => self.send(&reply(488, "Not Acceptable Here")).await,
                                    }
                                }
                                "OPTIONS" => self.send_to_via(&m, &reply(200, "OK")).await,
                                "REFER" => {
                                    let (refusal, detail) = super::refer_refusal(&m);
                                    self.send_to_via(&m, &refusal).await;
                                    self.record("sip_refer_refused", &detail);
                                }
                                _ => self.send_to_via(&m, &reply(501, "Not Implemented")).await,
                            }
                        }
                    }
                }
                ev = async { match leg.as_mut() { Some(l) => l.next().await, None => std::future::pending().await } } => {
                    if let Some(l) = leg.as_mut() {
                        l.on_event(ev);
                    }
                }
                _ = poll.tick() => {
                    if let Some(l) = leg.as_mut() {
                        l.pace().await;
                    }
                    let now_i = tokio::time::Instant::now();
                    if let Some(since) = closing {
                        if now_i >= since + LINGER {
                            return;
                        }
                        continue;
                    }
                    if phase == Phase::Calling && now_i >= retransmit.0 {
                        if now_i >= started + 64 * T1 && challenges == 0 {
                            self.fail(TrunkFailure::TrunkUnavailable, "no response to the INVITE (timer B)");
                            return;
                        }
                        // Timer A only on UDP (RFC 3261 17.1.1.2), or to reopen a
                        // lost TCP connection; timer B always.
                        if self.socket.should_retransmit(self.target) {
                            self.send(&self.invite(cseq, &branch, &from_tag, &offer, auth.as_ref(), &uac.invite_headers())).await;
                        }
                        let gap = (retransmit.1 * 2).min(Duration::from_secs(4));
                        retransmit = (now_i + gap, gap);
                    }
                    if let (Some(d), Some(l)) = (&dialog, leg.as_ref()) {
                        match uac.poll(origin.elapsed()) {
                            Some(timers::Due::Expired) => {
                                self.record("sip_session_expired", "no session refresh in time (RFC 4028)");
                                self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, d)).await;
                                self.far_end_gone("session_expired");
                                return;
                            }
                            Some(timers::Due::Refresh) => {
                                dlg_cseq = cseq.max(dlg_cseq) + 1;
                                let (method, h) = uac.refresh_sent(dlg_cseq);
                                let body = if method == "INVITE" { l.our_sdp() } else { String::new() };
                                let bytes = self.in_dialog_with(method, dlg_cseq, &from_tag, d, &h, body.as_bytes());
                                self.send(&bytes).await;
                                refresh_bytes = Some(bytes);
                                let interval = uac.session().map(|s| s.interval).unwrap_or_default();
                                self.record("sip_refresh_sent", &format!("{method}, session interval {interval} s"));
                            }
                            Some(timers::Due::Resend) => {
                                if let Some(b) = &refresh_bytes {
                                    self.send(b).await;
                                }
                            }
                            None => {}
                        }
                    }
                    let (wanted, digits) = self.wanted();
                    if let (Some(l), Some(d)) = (leg.as_mut(), &digits) {
                        l.sync_digits(d);
                    }
                    let ended = !wanted;
                    let dead = dialog.is_some() && leg.as_ref().is_some_and(|l| l.rtp_dead(rtp_timeout));
                    if dead && !ended {
                        if let Some(d) = &dialog {
                            self.record("sip_rtp_timeout", "no RTP from the far end");
                            self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, d)).await;
                        }
                        self.far_end_gone("media_timeout");
                        return;
                    }
                    if ended {
                        match &dialog {
                            Some(d) => {
                                self.record("sip_bye_sent", "the agent side ended the call");
                                self.send(&self.in_dialog("BYE", cseq.max(dlg_cseq) + 1, &from_tag, d)).await;
                                return;
                            }
                            None => {
                                let to = self.to_header();
                                self.record("sip_cancel_sent", "the agent hung up while dialing");
                                self.send(&self.same_branch("CANCEL", cseq, &branch, &from_tag, &to)).await;
                                closing = Some(now_i);
                            }
                        }
                    } else if phase != Phase::Confirmed && now_i >= started + RING_TIMEOUT {
                        let to = self.to_header();
                        self.send(&self.same_branch("CANCEL", cseq, &branch, &from_tag, &to)).await;
                        self.fail(TrunkFailure::NoAnswer, "nobody answered in time");
                        closing = Some(now_i);
                    }
                }
            }
        }
    }

    /// Sends a response to where the request's top Via says (its source
    /// for us: always the trunk's address).
    async fn send_to_via(&self, _request: &Message, bytes: &[u8]) {
        self.send(bytes).await;
    }

    /// The dialog a 2xx sets up, when it has a To tag and a Contact.
    fn dialog_of(&self, m: &Message) -> Option<Dialog> {
        let to = m.header("to")?;
        msg::param(to, "tag")?;
        let remote_target = msg::uri_of(m.header("contact")?).to_owned();
        let mut routes: Vec<String> = m
            .headers_named("record-route")
            .flat_map(|v| v.split(',').map(|r| r.trim().to_owned()))
            .filter(|r| !r.is_empty())
            .collect();
        routes.reverse();
        Some(Dialog {
            to: to.to_owned(),
            remote_target,
            routes,
        })
    }

    /// The media leg for the SDP answer in `m` (18x or 2xx), taking the
    /// RTP socket; `None` when the answer is unusable.
    fn leg_of(&self, m: &Message, rtp: &mut Option<UdpSocket>) -> Option<Leg> {
        let answer = match sdp::Offer::parse(&m.body) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!("sip: outbound {}: {e}", self.dial.contact_id);
                return None;
            }
        };
        let (codec, pt, te) = answer.choose(&self.trunk.codecs)?;
        Some(Leg::new(
            &self.state,
            &self.dial.contact_id,
            self.dial.third_party.as_deref().map(third_party_key),
            self.dial.leg,
            rtp.take()?,
            self.target,
            answer.rtp,
            codec,
            pt,
            te,
        ))
    }
}
