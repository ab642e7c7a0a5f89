//! One connection's protocol logic, without the connection. Feed it the
//! frames that arrive and the current time; send the strings it returns.
//! Requests time out on the caller's clock; after a reconnect it says
//! `hello` with a resume point, and a gap in event numbers asks for a
//! fresh snapshot instead of guessing.

use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{
    decode_server_frame, encode, ClientFrame, Event, Hello, Op, OpResult, Request, ResumeFrom,
    ServerFrame,
};
use protocol::Millis;

use crate::deadlines::Deadlines;
use crate::state::{ClientState, ContactChange};

/// What a frame, or the passing of time, produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// The server accepted `hello`; `resumed` says whether events were replayed.
    Ready {
        /// Whether the event stream continued without a snapshot.
        resumed: bool,
    },
    /// A request finished.
    Reply {
        /// The request id.
        id: u64,
        /// Its result or error (including timeouts).
        result: Result<OpResult, ErrorBody>,
    },
    /// The state was replaced from a snapshot (on connect, or after missed
    /// events); contact changes it caused follow as `Contact`.
    Snapshot,
    /// A raw event, after it was applied to the state.
    Event(Event),
    /// A contact lifecycle step.
    Contact(ContactChange),
    /// A frame-level error from the server.
    ServerError(ErrorBody),
    /// Events were missed: send this `get_snapshot` request frame.
    Resync(String),
    /// The token expires at `expires_at` (the server's `token_expiring`).
    /// Send `refresh` (a `refresh_token` request) to keep the session;
    /// it is `None` when a refresh is already under way.
    TokenExpiring {
        /// When the socket's token stops working.
        expires_at: Millis,
        /// The request frame to send.
        refresh: Option<String>,
    },
    /// A `refresh_token` succeeded: this session now says `hello` with
    /// `token`. Store it where the old one was kept.
    TokenRefreshed {
        /// The new token.
        token: String,
        /// When it stops working.
        expires_at: Millis,
    },
    /// The server ended the login (`session_expired` or `token_revoked`)
    /// and closes the socket: do not reconnect with this token.
    SessionEnded(ErrorBody),
}

/// Why a frame could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server sent something that is not protocol v1.
    #[error("undecodable server frame: {0}")]
    Decode(String),
}

/// A protocol session.
#[derive(Debug)]
pub struct Session {
    token: String,
    next_id: u64,
    pending: Deadlines,
    server_session: Option<String>,
    /// The agent's state as known so far.
    pub state: ClientState,
    timeout_ms: u64,
    snapshot_request: Option<u64>,
    refresh_request: Option<u64>,
    /// Announced in every `hello` (see [`Session::announce`]).
    capabilities: Vec<String>,
    /// The media packet duration the last `welcome` granted, ms.
    packet_ms: u32,
    /// The durations the `hello` offers, most preferred first.
    packet_ms_offer: Vec<u32>,
    /// Codecs besides Opus the `hello` announces (see
    /// [`Session::announce_codecs`]).
    codecs: Vec<String>,
}

impl Session {
    /// A session that will authenticate with `token`; requests fail after
    /// `timeout_ms` without an answer.
    pub fn new(token: &str, timeout_ms: u64) -> Self {
        Session {
            token: token.to_owned(),
            next_id: 1,
            pending: Deadlines::default(),
            server_session: None,
            state: ClientState::default(),
            timeout_ms,
            snapshot_request: None,
            refresh_request: None,
            capabilities: Vec::new(),
            packet_ms: 20,
            packet_ms_offer: vec![20, 10],
            codecs: Vec::new(),
        }
    }

    /// Announces, in every `hello` from now on, the codecs besides Opus
    /// the client's audio engine decodes and encodes (`"pcmu"`,
    /// `"pcma"`): the backend may then forward a telephone leg's G.711
    /// to it untouched (docs/protocol.md section 3). Names the protocol
    /// does not know are left out.
    pub fn announce_codecs(&mut self, codecs: &[&str]) {
        for c in codecs {
            let known = protocol::media::Codec::from_name(c)
                .is_some_and(|c| c != protocol::media::Codec::Opus);
            if known && !self.codecs.iter().any(|x| x.eq_ignore_ascii_case(c)) {
                self.codecs.push(c.to_ascii_lowercase());
            }
        }
    }

    /// Announces an optional feature (e.g. `protocol::wire::CAP_MEDIA_LEGS`)
    /// in every `hello` from now on. Announce only what the client really
    /// does: the server changes what it sends.
    pub fn announce(&mut self, capability: &str) {
        if !self.capabilities.iter().any(|c| c == capability) {
            self.capabilities.push(capability.to_owned());
        }
    }

    /// Sets the packet durations the next `hello` offers (10 and/or 20 ms,
    /// most preferred first). By default 20 first: the browser engine
    /// sends 20 ms unless told otherwise, because over the page's main
    /// thread 10 ms packets arrived late too often on a loaded machine
    /// (docs/benchmarks.md); a client whose engine takes the grant as its
    /// `packetMs` offers 10 first.
    pub fn offer_packet_ms(&mut self, offer: &[u32]) {
        self.packet_ms_offer = offer.to_vec();
    }

    /// The media packet duration to send, ms: what the last `welcome`
    /// granted (10 or 20), 20 before one or when it granted nothing. The
    /// audio engine takes it as its `packetMs`.
    pub fn packet_ms(&self) -> u32 {
        self.packet_ms
    }

    /// The token the next `hello` presents (updated by a refresh).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `hello` to send on a (re)connected socket, resuming when possible.
    pub fn hello(&self) -> String {
        let resume = self.server_session.as_ref().map(|s| ResumeFrom {
            session: s.clone(),
            last_seq: self.state.seq,
        });
        encode(&ClientFrame::Hello(Hello {
            versions: protocol::SUPPORTED_VERSIONS.to_vec(),
            token: self.token.clone(),
            resume,
            capabilities: self.capabilities.clone(),
            packet_ms: self.packet_ms_offer.clone(),
            codecs: self.codecs.clone(),
        }))
    }

    /// Starts a request; returns its id and the frame to send.
    pub fn request(&mut self, op: Op, now: Millis) -> (u64, String) {
        let id = self.begin_request(now);
        (id, encode(&ClientFrame::Request(Request { id, op })))
    }

    /// A fresh request id, awaited until its deadline.
    fn begin_request(&mut self, now: Millis) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, now.plus_ms(self.timeout_ms));
        id
    }

    /// Starts a request for an op given as a JSON object (`{"op": ...,
    /// ...fields}`), as a page or another tab sent it. The backend
    /// validates the op itself and answers an unknown or malformed one
    /// with a typed error; decoding it here as well would only repeat that
    /// (and cost the CCP's download the op decoder).
    pub fn request_raw(
        &mut self,
        op: &serde_json::Map<String, serde_json::Value>,
        now: Millis,
    ) -> (u64, String) {
        let id = self.begin_request(now);
        let mut frame = op.clone();
        frame.insert("type".into(), "request".into());
        frame.insert("id".into(), id.into());
        (id, serde_json::Value::Object(frame).to_string())
    }

    /// Number of requests awaiting an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the next request times out, if any is pending: a driver arms
    /// one timer for this instant and then calls [`Session::poll_timeouts`]
    /// (see [`crate::deadlines`]). It changes whenever a request starts or
    /// is answered, so drivers ask again after each.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.pending.next()
    }

    /// Fails every request whose deadline passed.
    pub fn poll_timeouts(&mut self, now: Millis) -> Vec<Output> {
        self.pending
            .expire(now)
            .into_iter()
            .map(|id| Output::Reply {
                id,
                result: Err(ErrorBody::new(
                    ErrorCode::Timeout,
                    "timed out waiting for the backend",
                )),
            })
            .collect()
    }

    /// The socket closed: pending requests fail now (their outcome is
    /// unknown; the state after reconnecting tells what happened).
    pub fn disconnected(&mut self) -> Vec<Output> {
        self.pending
            .drain()
            .into_iter()
            .map(|id| Output::Reply {
                id,
                result: Err(ErrorBody::new(
                    ErrorCode::Unknown,
                    "connection lost before the answer",
                )),
            })
            .collect()
    }

    /// Handles one text frame from the server.
    pub fn handle_text(&mut self, text: &str, now: Millis) -> Result<Vec<Output>, SessionError> {
        let frame = decode_server_frame(text).map_err(|e| SessionError::Decode(e.body.message))?;
        let mut out = Vec::new();
        match frame {
            ServerFrame::Welcome(w) => {
                if self.server_session.as_deref() != Some(&w.session) {
                    self.state = ClientState::default();
                }
                self.server_session = Some(w.session);
                self.packet_ms = w.packet_ms.filter(|ms| *ms == 10).unwrap_or(20);
                out.push(Output::Ready { resumed: w.resumed });
            }
            ServerFrame::Snapshot(s) => {
                out.push(Output::Snapshot);
                out.extend(
                    self.state
                        .apply_snapshot(s)
                        .into_iter()
                        .map(Output::Contact),
                );
            }
            ServerFrame::Event(e) => {
                if self.state.agent.is_some() && e.seq != self.state.seq + 1 {
                    if e.seq > self.state.seq + 1 && self.snapshot_request.is_none() {
                        let (id, frame) = self.request(Op::GetSnapshot, now);
                        self.snapshot_request = Some(id);
                        out.push(Output::Resync(frame));
                    }
                    return Ok(out);
                }
                let changes = self.state.apply_event(e.seq, &e.event);
                out.push(Output::Event(e.event));
                out.extend(changes.into_iter().map(Output::Contact));
            }
            ServerFrame::TokenExpiring(t) => {
                let refresh = if self
                    .refresh_request
                    .is_some_and(|id| self.pending.contains(id))
                {
                    None
                } else {
                    let (id, frame) = self.request(Op::RefreshToken, now);
                    self.refresh_request = Some(id);
                    Some(frame)
                };
                out.push(Output::TokenExpiring {
                    expires_at: t.expires_at,
                    refresh,
                });
            }
            ServerFrame::Response(r) => {
                if !self.pending.remove(r.id) {
                    return Ok(out);
                }
                if self.refresh_request == Some(r.id) {
                    self.refresh_request = None;
                }
                // Whoever asked for it, a new token replaces the old one.
                if let Some(OpResult::Token { token, expires_at }) = &r.result {
                    self.token.clone_from(token);
                    out.push(Output::TokenRefreshed {
                        token: token.clone(),
                        expires_at: *expires_at,
                    });
                }
                if self.snapshot_request == Some(r.id) {
                    self.snapshot_request = None;
                    if let Some(OpResult::Snapshot(s)) = &r.result {
                        out.push(Output::Snapshot);
                        out.extend(
                            self.state
                                .apply_snapshot(s.clone())
                                .into_iter()
                                .map(Output::Contact),
                        );
                    }
                }
                let result = match (r.result, r.error) {
                    (Some(ok), _) => Ok(ok),
                    (None, Some(e)) => Err(e),
                    (None, None) => Err(ErrorBody::new(ErrorCode::Unknown, "empty response")),
                };
                out.push(Output::Reply { id: r.id, result });
            }
            ServerFrame::Error(e) => {
                if let Some(id) = e.id {
                    if self.pending.remove(id) {
                        out.push(Output::Reply {
                            id,
                            result: Err(e.error),
                        });
                        return Ok(out);
                    }
                }
                if matches!(
                    e.error.code,
                    ErrorCode::SessionExpired
                        | ErrorCode::TokenRevoked
                        | ErrorCode::SessionReplaced
                ) {
                    out.push(Output::SessionEnded(e.error));
                } else {
                    out.push(Output::ServerError(e.error));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::wire::{EventFrame, Response, Welcome};

    #[test]
    fn the_granted_packet_duration_is_kept_and_offered_in_every_hello() {
        let mut s = Session::new("t", 1_000);
        assert!(s.hello().contains("\"packet_ms\":[20,10]"));
        s.offer_packet_ms(&[10, 20]);
        assert!(s.hello().contains("\"packet_ms\":[10,20]"));
        assert_eq!(s.packet_ms(), 20, "20 ms until a welcome grants 10");
        let mut w = Welcome {
            version: 1,
            session: "s-1".into(),
            agent: "a".into(),
            resumed: false,
            heartbeat_ms: 1,
            packet_ms: Some(10),
            codecs: vec![],
        };
        s.handle_text(&encode(&ServerFrame::Welcome(w.clone())), Millis(0))
            .expect("welcome");
        assert_eq!(s.packet_ms(), 10);
        // A server that grants nothing (or something unknown): 20 ms.
        for granted in [None, Some(40)] {
            w.packet_ms = granted;
            s.handle_text(&encode(&ServerFrame::Welcome(w.clone())), Millis(0))
                .expect("welcome");
            assert_eq!(s.packet_ms(), 20, "{granted:?}");
        }
    }

    #[test]
    fn announced_codecs_go_in_every_hello_and_unknown_ones_are_left_out() {
        let mut s = Session::new("t", 1_000);
        assert!(!s.hello().contains("codecs"), "Opus only: no codecs key");
        s.announce_codecs(&["pcmu", "g729", "PCMA", "pcmu", "opus"]);
        assert!(
            s.hello().contains(r#""codecs":["pcmu","pcma"]"#),
            "{}",
            s.hello()
        );
    }

    fn welcome(session: &str) -> String {
        encode(&ServerFrame::Welcome(Welcome {
            version: 1,
            session: session.into(),
            agent: "a".into(),
            resumed: false,
            heartbeat_ms: 1,
            packet_ms: None,
            codecs: vec![],
        }))
    }

    #[test]
    fn requests_resolve_once_and_time_out() {
        let mut s = Session::new("t", 1_000);
        let (id, frame) = s.request(Op::Ping, Millis(0));
        assert!(frame.contains("\"op\":\"ping\""));
        let reply = encode(&ServerFrame::Response(Response::ok(id, OpResult::Pong)));
        let out = s.handle_text(&reply, Millis(10)).expect("decodes");
        assert_eq!(
            out,
            vec![Output::Reply {
                id,
                result: Ok(OpResult::Pong)
            }]
        );
        assert!(
            s.handle_text(&reply, Millis(11))
                .expect("decodes")
                .is_empty(),
            "a second answer is ignored"
        );
        let (late, _) = s.request(Op::Ping, Millis(100));
        assert!(s.poll_timeouts(Millis(1_099)).is_empty());
        let out = s.poll_timeouts(Millis(1_100));
        assert!(matches!(&out[..], [Output::Reply { id, result: Err(e) }]
            if *id == late && e.code == ErrorCode::Timeout && e.code.as_str() == "timeout"));
        assert_eq!(s.pending(), 0);
    }

    /// A driver as web.rs is one: it sleeps until the session's next
    /// deadline (or until a frame arrives), on a virtual clock.
    #[test]
    fn a_driver_woken_at_the_next_deadline_times_out_at_5_s_and_not_a_reply_at_4_9_s() {
        use crate::deadlines::REQUEST_TIMEOUT_MS;
        let mut s = Session::new("t", REQUEST_TIMEOUT_MS);
        let t0 = Millis(1_000_000);
        let (answered, _) = s.request(Op::Ping, t0);
        let (never, _) = s.request(Op::Ping, t0.plus_ms(100));
        assert_eq!(s.next_deadline(), Some(t0.plus_ms(5_000)));
        // The answer to the first arrives at 4.9 s, before its deadline.
        let reply = encode(&ServerFrame::Response(Response::ok(
            answered,
            OpResult::Pong,
        )));
        let mut clock = t0;
        let mut replies = Vec::new();
        let mut frame_at = Some(t0.plus_ms(4_900));
        for _ in 0..10 {
            let wake = match (s.next_deadline(), frame_at) {
                (Some(d), Some(f)) => d.min(f),
                (Some(d), None) => d,
                (None, Some(f)) => f,
                (None, None) => break,
            };
            assert!(wake >= clock, "time runs forward");
            clock = wake;
            if frame_at == Some(clock) {
                frame_at = None;
                let out = s.handle_text(&reply, clock).expect("decodes");
                replies.extend(out.into_iter().map(|o| (clock, o)));
            }
            replies.extend(s.poll_timeouts(clock).into_iter().map(|o| (clock, o)));
        }
        assert_eq!(replies.len(), 2, "{replies:?}");
        assert!(
            matches!(&replies[0], (at, Output::Reply { id, result: Ok(OpResult::Pong) })
            if *id == answered && *at == t0.plus_ms(4_900))
        );
        // The second fails exactly at its deadline: 5 s after it started.
        assert!(
            matches!(&replies[1], (at, Output::Reply { id, result: Err(e) })
            if *id == never && *at == t0.plus_ms(5_100) && e.code == ErrorCode::Timeout)
        );
        assert_eq!(s.next_deadline(), None);
        // The late answer changes nothing.
        let late = encode(&ServerFrame::Response(Response::ok(never, OpResult::Pong)));
        assert!(s
            .handle_text(&late, t0.plus_ms(6_000))
            .expect("decodes")
            .is_empty());
    }

    #[test]
    fn the_next_deadline_follows_requests_and_answers() {
        let mut s = Session::new("t", 1_000);
        assert_eq!(s.next_deadline(), None);
        let (a, _) = s.request(Op::Ping, Millis(0));
        let (_b, _) = s.request(Op::Ping, Millis(300));
        assert_eq!(s.next_deadline(), Some(Millis(1_000)));
        let reply = encode(&ServerFrame::Response(Response::ok(a, OpResult::Pong)));
        s.handle_text(&reply, Millis(10)).expect("decodes");
        assert_eq!(s.next_deadline(), Some(Millis(1_300)));
        let lost = s.disconnected();
        assert!(
            matches!(&lost[..], [Output::Reply { result: Err(e), .. }] if e.code == ErrorCode::Unknown)
        );
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn hello_resumes_after_a_welcome() {
        let mut s = Session::new("tok", 1_000);
        assert!(!s.hello().contains("resume"));
        assert!(!s.hello().contains("capabilities"), "none announced");
        s.announce(protocol::wire::CAP_MEDIA_LEGS);
        s.announce(protocol::wire::CAP_MEDIA_LEGS);
        assert!(s.hello().contains(r#""capabilities":["media_legs"]"#));
        s.handle_text(&welcome("s-1"), Millis(0)).expect("welcome");
        assert!(s.hello().contains("\"session\":\"s-1\""));
    }

    #[test]
    fn an_event_gap_asks_for_a_snapshot() {
        let mut s = Session::new("tok", 1_000);
        s.handle_text(&welcome("s-1"), Millis(0)).expect("welcome");
        s.state.agent = Some(crate::state::AgentView {
            status: protocol::AgentStatusView {
                state: protocol::AgentState::available(),
                since: Millis(0),
                next_state: None,
            },
            muted: false,
            configuration: protocol::wire::AgentConfiguration {
                username: "a".into(),
                name: "A".into(),
                routing_profile: protocol::wire::RoutingProfile {
                    id: "p".into(),
                    name: "P".into(),
                    queues: vec![],
                },
                softphone_enabled: true,
                wrap_up_codes: vec![],
                country_code: None,
            },
            states: vec![],
        });
        let ev = |seq| {
            encode(&ServerFrame::Event(EventFrame {
                seq,
                event: Event::MuteChanged { muted: true },
            }))
        };
        let out = s.handle_text(&ev(1), Millis(1)).expect("in order");
        assert_eq!(out, vec![Output::Event(Event::MuteChanged { muted: true })]);
        let out = s.handle_text(&ev(5), Millis(2)).expect("gap");
        assert!(matches!(&out[..], [Output::Resync(f)] if f.contains("get_snapshot")));
        assert_eq!(s.state.seq, 1, "the gapped event is not applied");
    }

    #[test]
    fn token_expiring_refreshes_once_and_the_new_token_is_used() {
        let mut s = Session::new("old", 1_000);
        s.handle_text(&welcome("s-1"), Millis(0)).expect("welcome");
        let warn = encode(&ServerFrame::TokenExpiring(protocol::wire::TokenExpiring {
            expires_at: Millis(500),
        }));
        let out = s.handle_text(&warn, Millis(10)).expect("decodes");
        let [Output::TokenExpiring {
            expires_at,
            refresh: Some(frame),
        }] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(*expires_at, Millis(500));
        assert!(frame.contains("\"op\":\"refresh_token\""), "{frame}");
        // A second warning while the refresh is out does not ask again.
        let out = s.handle_text(&warn, Millis(20)).expect("decodes");
        assert!(matches!(
            &out[..],
            [Output::TokenExpiring { refresh: None, .. }]
        ));
        let id = s.refresh_request.expect("pending");
        let reply = encode(&ServerFrame::Response(Response::ok(
            id,
            OpResult::Token {
                token: "new".into(),
                expires_at: Millis(9_000),
            },
        )));
        let out = s.handle_text(&reply, Millis(30)).expect("decodes");
        assert_eq!(
            out[0],
            Output::TokenRefreshed {
                token: "new".into(),
                expires_at: Millis(9_000)
            }
        );
        assert_eq!(s.token(), "new");
        assert!(s.hello().contains("\"token\":\"new\""));
        // The next warning (for the new token) refreshes again.
        let out = s.handle_text(&warn, Millis(40)).expect("decodes");
        assert!(matches!(
            &out[..],
            [Output::TokenExpiring {
                refresh: Some(_),
                ..
            }]
        ));
    }

    #[test]
    fn expiry_and_revocation_end_the_session() {
        let mut s = Session::new("tok", 1_000);
        for code in [ErrorCode::SessionExpired, ErrorCode::TokenRevoked] {
            let frame = encode(&ServerFrame::Error(protocol::wire::FrameError {
                id: None,
                error: ErrorBody::new(code, "bye"),
                supported_versions: None,
            }));
            let out = s.handle_text(&frame, Millis(0)).expect("decodes");
            assert!(
                matches!(&out[..], [Output::SessionEnded(e)] if e.code == code),
                "{out:?}"
            );
        }
    }

    #[test]
    fn garbage_from_the_server_is_an_error_not_a_panic() {
        let mut s = Session::new("tok", 1_000);
        assert!(s.handle_text("{nope", Millis(0)).is_err());
        assert!(s.handle_text("{\"type\":\"welcome\"}", Millis(0)).is_err());
    }
}
