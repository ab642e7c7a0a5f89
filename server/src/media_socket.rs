//! The media-only socket (docs/protocol.md section 8, "Media socket"):
//! a second WebSocket per agent that carries only binary media frames, so
//! a browser can open it from a dedicated Worker and move its frames
//! between the audio engine and the network without the page's main
//! thread on the way (a busy page then delays no packet).
//!
//! The agent's control socket asks for a ticket (`media_socket` op):
//! random, single use, bound to the agent, valid a few seconds. The client
//! opens `/v1/media` and sends `{"type":"media_hello","ticket":…}`; the
//! backend answers `{"type":"media_welcome"}` and from then on sends the
//! agent's media there instead of on the control socket, and reads media
//! from it exactly as from the control socket (the same frame handling,
//! [`crate::ws::on_binary`], the same rate limits). When the media socket
//! closes, the agent's media goes back to the control socket (the page's
//! fallback path); when a newer socket takes the agent's media (a newer
//! media socket, or a reconnected control socket), this one is closed.
//!
//! What it may cost is bounded: at most [`MAX_TICKETS_PER_AGENT`] unused
//! tickets per agent and [`MAX_TICKETS`] in all (expired ones are dropped
//! first), and the socket has the control socket's limits (hello timeout,
//! flood guard, write deadline, outgoing queue).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{encode, FrameError, OpResult, ServerFrame};
use protocol::Millis;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::bridge::route::MediaOut;
use crate::http::AppState;
use crate::limits::{close_code, CloseReason, FloodGuard, PreHelloErrors, SocketTicket};
use crate::ws::{flooded, read_one, start_socket, Inbound, RATE_LIMITED};

/// The media socket's path.
pub const PATH: &str = "/v1/media";
/// How long a ticket stays valid, ms: enough to start a Worker and open a
/// socket, short enough that a leaked one is soon worthless.
pub const TICKET_TTL_MS: u64 = 10_000;
/// Unused tickets one agent may hold; asking for more drops the oldest.
pub const MAX_TICKETS_PER_AGENT: usize = 4;
/// Unused tickets the backend holds in all.
pub const MAX_TICKETS: usize = 20_000;

/// Why a ticket was not issued or not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaSocketError {
    /// The ticket is unknown, used already, or expired.
    #[error("unknown or expired media ticket")]
    BadTicket,
    /// The agent's session has no media (no bridge, or its control socket
    /// is gone).
    #[error("this session has no media")]
    NoMedia,
    /// Too many unused tickets in the backend.
    #[error("too many media tickets; try again later")]
    TooMany,
}

impl MediaSocketError {
    /// The wire error.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            MediaSocketError::BadTicket => ErrorCode::AuthFailed,
            MediaSocketError::NoMedia => ErrorCode::InvalidState,
            MediaSocketError::TooMany => ErrorCode::RateLimited,
        };
        ErrorBody::new(code, self.to_string())
    }
}

/// Closes a media socket whose agent's media a newer socket took.
pub const REPLACED: CloseReason = CloseReason {
    code: close_code::POLICY,
    reason: "another socket took this agent's media",
};

struct Pending {
    agent: String,
    expires: Instant,
}

/// An agent's control socket, where its media goes back to.
struct Control {
    id: u64,
    tx: mpsc::Sender<MediaOut>,
    mixes_legs: bool,
    /// The codecs besides Opus its `hello` announced: whichever socket
    /// carries the media gets them (G.711 stays forwarded, not
    /// transcoded, when the media moves to or from a media socket).
    codecs: Vec<protocol::media::Codec>,
    /// The media socket holding the agent's media now (0: none).
    media: u64,
}

#[derive(Default)]
struct Inner {
    tickets: HashMap<String, Pending>,
    controls: HashMap<String, Control>,
}

/// The tickets issued and the agents' control sockets.
#[derive(Default)]
pub struct MediaSockets {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

impl MediaSockets {
    /// An empty registry.
    pub fn new() -> MediaSockets {
        MediaSockets::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is whole before the guard drops: a poisoned lock is
        // still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// An agent's control socket now takes its media through `tx`; returns
    /// the id to detach it with.
    pub fn control_attached(
        &self,
        agent: &str,
        tx: &mpsc::Sender<MediaOut>,
        mixes_legs: bool,
        codecs: &[protocol::media::Codec],
    ) -> u64 {
        let id = self.fresh_id();
        self.lock().controls.insert(
            agent.to_owned(),
            Control {
                id,
                tx: tx.clone(),
                mixes_legs,
                codecs: codecs.to_vec(),
                media: 0,
            },
        );
        id
    }

    /// The control socket `id` of `agent` closed.
    pub fn control_detached(&self, agent: &str, id: u64) {
        let mut inner = self.lock();
        if inner.controls.get(agent).is_some_and(|c| c.id == id) {
            inner.controls.remove(agent);
        }
    }

    /// A ticket for `agent`, valid [`TICKET_TTL_MS`] from `now`.
    pub fn issue(
        &self,
        agent: &str,
        wall: Millis,
        now: Instant,
    ) -> Result<OpResult, MediaSocketError> {
        let mut inner = self.lock();
        if !inner.controls.contains_key(agent) {
            return Err(MediaSocketError::NoMedia);
        }
        inner.tickets.retain(|_, p| p.expires > now);
        let mine: Vec<(String, Instant)> = inner
            .tickets
            .iter()
            .filter(|(_, p)| p.agent == agent)
            .map(|(t, p)| (t.clone(), p.expires))
            .collect();
        if mine.len() >= MAX_TICKETS_PER_AGENT {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, at)| *at) {
                inner.tickets.remove(oldest);
            }
        }
        if inner.tickets.len() >= MAX_TICKETS {
            return Err(MediaSocketError::TooMany);
        }
        let ticket = format!(
            "{}{}",
            crate::center::random_id("mt"),
            &crate::center::random_id("")[1..]
        );
        inner.tickets.insert(
            ticket.clone(),
            Pending {
                agent: agent.to_owned(),
                expires: now + Duration::from_millis(TICKET_TTL_MS),
            },
        );
        Ok(OpResult::MediaSocket {
            ticket,
            path: PATH.into(),
            expires_at: Millis(wall.0 + TICKET_TTL_MS),
        })
    }

    /// Uses a ticket up: the agent it was issued to, when it is valid.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Result<String, MediaSocketError> {
        let mut inner = self.lock();
        match inner.tickets.remove(ticket) {
            Some(p) if p.expires > now => Ok(p.agent),
            _ => Err(MediaSocketError::BadTicket),
        }
    }

    /// A media socket takes `agent`'s media: its id and whether the
    /// agent's client mixes legs, or none when the agent has no control
    /// socket any more.
    fn media_attached(&self, agent: &str) -> Option<(u64, bool, Vec<protocol::media::Codec>)> {
        let id = self.fresh_id();
        let mut inner = self.lock();
        let control = inner.controls.get_mut(agent)?;
        control.media = id;
        Some((id, control.mixes_legs, control.codecs.clone()))
    }

    /// The media socket `id` closed: where the agent's media goes back to
    /// (its control socket), unless another socket has taken it since.
    #[allow(clippy::type_complexity)]
    fn media_detached(
        &self,
        agent: &str,
        id: u64,
    ) -> Option<(mpsc::Sender<MediaOut>, bool, Vec<protocol::media::Codec>)> {
        let mut inner = self.lock();
        let control = inner.controls.get_mut(agent)?;
        if control.media != id || control.tx.is_closed() {
            return None;
        }
        control.media = 0;
        Some((
            control.tx.clone(),
            control.mixes_legs,
            control.codecs.clone(),
        ))
    }

    /// Unused tickets held now (tests and limits).
    pub fn pending(&self) -> usize {
        self.lock().tickets.len()
    }
}

/// The media socket's first message.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MediaHello {
    MediaHello { ticket: String },
}

fn error_frame(code: ErrorCode, message: impl Into<String>) -> String {
    encode(&ServerFrame::Error(FrameError {
        id: None,
        error: ErrorBody::new(code, message),
        supported_versions: None,
    }))
}

/// `GET /v1/media`: upgrades to a media socket, counted among the
/// backend's sockets like any other.
pub async fn upgrade(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = match crate::http::admit(&state, &extensions) {
        Ok(t) => t,
        Err(refused) => return refused.into_response(),
    };
    crate::http::limit_transport(ws, &state.cfg.limits)
        .on_upgrade(move |socket| serve(socket, state, ticket))
}

/// The agent a media socket carries, once its ticket was accepted.
struct Bound {
    agent: String,
    id: u64,
    session: Option<(String, u64)>,
    slot: Arc<crate::bridge::route::SocketSlot>,
}

/// Runs one media socket until it closes.
async fn serve(socket: WebSocket, state: AppState, mut ticket: SocketTicket) {
    let limits = state.cfg.limits.clone();
    let hello_timeout = Duration::from_millis(limits.hello_timeout_ms);
    let (mut stream, tx, shutdown, mut writer, direct, media_tx) = start_socket(socket, &limits);
    // Tells when the bridge has let go of this socket (a newer one took
    // the agent's media): the only strong sender is the bridge's.
    let probe = media_tx.downgrade();
    let mut media_tx = Some(media_tx);
    let mut writer_done = false;
    let mut flood = FloodGuard::new(&limits, Instant::now());
    let mut bound: Option<Bound> = None;
    let mut pre_hello = PreHelloErrors::new(&limits);
    let hello_by = tokio::time::Instant::now() + hello_timeout;
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let _busy = state.shutdown.busy();
    let stop = state.shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let waiting = bound.is_none();
        let next = tokio::select! {
            biased;
            () = shutdown.requested() => break,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            () = &mut stop => break,
            () = tokio::time::sleep_until(hello_by), if waiting => {
                shutdown.set_reason(CloseReason::HELLO_TIMEOUT);
                break;
            }
            _ = poll.tick(), if !waiting => {
                if probe.upgrade().is_none() {
                    shutdown.set_reason(REPLACED);
                    break;
                }
                continue;
            }
            next = stream.next() => next,
        };
        let read_at = Instant::now();
        let (msg, limited) = match read_one(next, &mut flood, read_at, &tx, &shutdown, flooded) {
            Inbound::Message { msg, limited } => (msg, limited),
            Inbound::End => break,
        };
        let errored = match (msg, &bound) {
            (Message::Binary(bytes), Some(b)) => crate::ws::on_binary(
                &bytes,
                &state,
                &tx,
                &b.session,
                Some(&b.slot),
                limited,
                read_at,
            ),
            (Message::Text(_) | Message::Binary(_), _) if limited => {
                tx.push(error_frame(ErrorCode::RateLimited, RATE_LIMITED));
                true
            }
            (Message::Binary(_), None) => {
                tx.push(error_frame(
                    ErrorCode::NotAuthenticated,
                    "send media_hello with a ticket first",
                ));
                true
            }
            (Message::Text(text), None) => {
                match serde_json::from_str::<MediaHello>(text.as_str()) {
                    Ok(MediaHello::MediaHello { ticket: t }) => {
                        let agent = match state.media_sockets.redeem(&t, Instant::now()) {
                            Ok(agent) => agent,
                            Err(e) => {
                                let body = e.body();
                                tx.push(error_frame(body.code, body.message));
                                shutdown.set_reason(CloseReason {
                                    code: close_code::POLICY,
                                    reason: "bad media ticket",
                                });
                                break;
                            }
                        };
                        let (Some(bridge), Some((id, mixes_legs, codecs)), Some(media)) = (
                            &state.bridge,
                            state.media_sockets.media_attached(&agent),
                            media_tx.take(),
                        ) else {
                            let body = MediaSocketError::NoMedia.body();
                            tx.push(error_frame(body.code, body.message));
                            break;
                        };
                        let slot = bridge.attach_direct(&agent, media, mixes_legs, direct.clone());
                        slot.set_codecs(&codecs);
                        ticket.admitted_other();
                        tx.push(r#"{"type":"media_welcome"}"#.to_owned());
                        bound = Some(Bound {
                            session: Some((agent.clone(), 0)),
                            agent,
                            id,
                            slot,
                        });
                        false
                    }
                    Err(_) => {
                        tx.push(error_frame(
                            ErrorCode::BadRequest,
                            "expected {\"type\":\"media_hello\",\"ticket\":…}",
                        ));
                        true
                    }
                }
            }
            (Message::Text(_), Some(_)) => {
                tx.push(error_frame(
                    ErrorCode::BadRequest,
                    "this socket carries media frames only",
                ));
                true
            }
            // Pings are answered by tungstenite.
            _ => false,
        };
        if errored && bound.is_none() && pre_hello.strike(&shutdown) {
            break;
        }
    }
    // The agent's media goes back to its control socket (the page's
    // main-thread path), unless another socket took it meanwhile.
    if let Some(b) = bound {
        if let (Some(bridge), Some((control, mixes_legs, codecs))) = (
            &state.bridge,
            state.media_sockets.media_detached(&b.agent, b.id),
        ) {
            bridge
                .attach_with_legs(&b.agent, control, mixes_legs)
                .set_codecs(&codecs);
        }
    }
    drop(tx);
    crate::ws::wind_down(ticket, &shutdown, writer, writer_done, &mut stream, &limits).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(m: &MediaSockets, agent: &str) -> (u64, mpsc::Receiver<MediaOut>) {
        let (tx, rx) = mpsc::channel(4);
        let codecs = [protocol::media::Codec::Pcmu];
        (m.control_attached(agent, &tx, true, &codecs), rx)
    }

    #[test]
    fn a_ticket_is_single_use_bound_to_its_agent_and_expires() {
        let m = MediaSockets::new();
        let now = Instant::now();
        assert_eq!(
            m.issue("alice", Millis(1_000), now),
            Err(MediaSocketError::NoMedia),
            "no control socket, no media"
        );
        let (_id, _rx) = control(&m, "alice");
        let Ok(OpResult::MediaSocket {
            ticket,
            path,
            expires_at,
        }) = m.issue("alice", Millis(1_000), now)
        else {
            panic!("issued");
        };
        assert_eq!(path, PATH);
        assert_eq!(expires_at, Millis(1_000 + TICKET_TTL_MS));
        assert!(ticket.len() >= 24, "a long random ticket: {ticket}");
        assert_eq!(m.redeem(&ticket, now), Ok("alice".into()));
        assert_eq!(
            m.redeem(&ticket, now),
            Err(MediaSocketError::BadTicket),
            "single use"
        );
        assert_eq!(m.redeem("mt-guess", now), Err(MediaSocketError::BadTicket));
        let Ok(OpResult::MediaSocket { ticket: late, .. }) = m.issue("alice", Millis(1_000), now)
        else {
            panic!("issued");
        };
        let after = now + Duration::from_millis(TICKET_TTL_MS + 1);
        assert_eq!(
            m.redeem(&late, after),
            Err(MediaSocketError::BadTicket),
            "expired"
        );
    }

    #[test]
    fn unused_tickets_are_bounded_per_agent() {
        let m = MediaSockets::new();
        let (_id, _rx) = control(&m, "alice");
        let now = Instant::now();
        for _ in 0..(MAX_TICKETS_PER_AGENT * 3) {
            assert!(m.issue("alice", Millis(0), now).is_ok());
        }
        assert_eq!(m.pending(), MAX_TICKETS_PER_AGENT);
    }

    #[test]
    fn media_goes_back_to_the_control_socket_only_if_no_newer_socket_took_it() {
        let m = MediaSockets::new();
        let (control_id, _rx) = control(&m, "alice");
        let (first, mixes, codecs) = m.media_attached("alice").expect("a control socket");
        assert!(mixes);
        // What the hello announced follows the media to the media socket
        // (a G.711 leg stays forwarded, not transcoded).
        assert_eq!(codecs, [protocol::media::Codec::Pcmu]);
        let (second, _, _) = m.media_attached("alice").expect("a control socket");
        assert!(
            m.media_detached("alice", first).is_none(),
            "a newer media socket holds it"
        );
        let (_, _, back) = m
            .media_detached("alice", second)
            .expect("back to the control socket");
        assert_eq!(back, [protocol::media::Codec::Pcmu], "and back again");
        // A closed control socket takes nothing back.
        m.control_detached("alice", control_id + 100);
        assert!(
            m.media_attached("alice").is_some(),
            "another socket's id detaches nothing"
        );
        m.control_detached("alice", control_id);
        assert!(m.media_attached("alice").is_none());
        assert_eq!(
            m.issue("alice", Millis(0), Instant::now()),
            Err(MediaSocketError::NoMedia)
        );
    }
}
