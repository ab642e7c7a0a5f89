//! One agent's WebSocket: the thin driver between the socket and the
//! center. It authenticates the first `hello`, forwards requests, and
//! writes whatever the center emits, in order, through one writer task.
//!
//! Bad JSON, unknown types and ops, and malformed frames each get a typed
//! error and the session carries on. What the socket may cost is bounded
//! (`[limits]`, see [`crate::limits`]): a frame over the transport limit
//! closes it with 1009, a client that floods gets `rate_limited` and then
//! a close, one that does not read is disconnected, one that sends only
//! errors or no `hello` at all is closed.
//!
//! The login holds on the open socket ([`crate::auth::Grant`]): a
//! configured lead time before the token expires the socket gets
//! `token_expiring`; `refresh_token` moves its expiry to the new token's;
//! at expiry it gets `session_expired` and is closed, and a logout closes
//! it at once with `token_revoked`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::media::decode_media_frame;
use protocol::wire::{
    decode_client_frame, encode, ClientFrame, FrameError, Hello, Op, OpResult, Response,
    ServerFrame, TokenExpiring,
};
use protocol::SUPPORTED_VERSIONS;
use tokio::sync::mpsc;

use crate::auth::{authenticate, Grant, GrantEvent};
use crate::bridge::route::{MediaOut, SocketSlot, FORWARD_DELAY};
use crate::center::HEARTBEAT_MS;
use crate::http::AppState;
use crate::limits::{
    CloseReason, FloodGuard, Inbox, Kind, Outbox, Shutdown, SocketTicket, Verdict,
};

/// A session that sends nothing for this long is considered gone.
const IDLE_TIMEOUT: Duration = Duration::from_millis(HEARTBEAT_MS * 3);

fn frame_error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error(FrameError {
        id: None,
        error: ErrorBody::new(code, message),
        supported_versions: None,
    })
}

/// Queues a frame on the socket's outbox (see [`Outbox::push`]).
fn send(tx: &Outbox, frame: ServerFrame) -> bool {
    tx.push(encode(&frame))
}

/// The answer to a message over the rate limit.
pub(crate) const RATE_LIMITED: &str = "too many messages; slow down";

/// Whether a read error is the transport's size limit (then the socket
/// closes with 1009). The error comes from tungstenite through axum.
pub(crate) fn is_too_big(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// The one task that writes to a socket: text frames in order, media
/// frames as they come (text first when both are ready). Every write has
/// a deadline: a client that stops reading is disconnected (its driver is
/// told through `shutdown`), never waited for. Ends when every [`Outbox`]
/// is dropped, after sending the close frame `shutdown` holds, if any.
pub fn spawn_writer(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut inbox: Inbox,
    mut media_rx: mpsc::Receiver<MediaOut>,
    shutdown: Arc<Shutdown>,
    write_timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut media_open = true;
        loop {
            let mut since = None;
            let msg = tokio::select! {
                biased;
                text = inbox.recv() => match text {
                    Some(text) => Message::Text(text.into()),
                    None => break,
                },
                media = media_rx.recv(), if media_open => match media {
                    Some(out) => {
                        since = Some(out.since);
                        Message::Binary(out.bytes.into())
                    }
                    None => {
                        // The bridge let go of this socket (a newer one took over).
                        media_open = false;
                        continue;
                    }
                },
            };
            match tokio::time::timeout(write_timeout, sink.send(msg)).await {
                Ok(Ok(())) => {
                    if let Some(since) = since {
                        FORWARD_DELAY.record(since);
                    }
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    shutdown.close(CloseReason::SLOW_READER);
                    return;
                }
            }
        }
        if let Some(why) = shutdown.reason() {
            let close = Message::Close(Some(CloseFrame {
                code: why.code,
                reason: why.reason.into(),
            }));
            if !matches!(
                tokio::time::timeout(write_timeout, sink.send(close)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
        let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    })
}

/// Whether a text frame is a `hello` announcing `media_legs` (read before
/// the frame is handled, since the bridge learns it with the socket).
fn announces_media_legs(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Caps {
        #[serde(default)]
        capabilities: Vec<String>,
    }
    serde_json::from_str::<Caps>(text).is_ok_and(|c| {
        c.capabilities
            .iter()
            .any(|c| c == protocol::wire::CAP_MEDIA_LEGS)
    })
}

/// Waits for a socket's writer to finish, within its deadline; a writer
/// stuck on a client that does not read is stopped.
pub async fn finish_writer(writer: &mut tokio::task::JoinHandle<()>, write_timeout: Duration) {
    // The writer may need one deadline for the last queued frame and one
    // for the close frame.
    if tokio::time::timeout(write_timeout * 2 + Duration::from_millis(100), &mut *writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// After the backend closes a socket, how long it keeps reading (and
/// discarding) what the client still sends. Closing a TCP socket with
/// unread input resets the connection, and a reset makes the client's
/// kernel drop what it had received but not yet read: the last errors and
/// the close frame would be lost. Reading until the client answers the
/// close (or this passes, or [`LINGER_MESSAGES`] arrive) avoids that.
const LINGER: Duration = Duration::from_secs(1);
/// At most this many messages are read while lingering.
const LINGER_MESSAGES: usize = 1_000;

/// Whether a close for `reason` lingers: not for an oversized frame
/// (reading on would buffer it) nor for a client that does not read.
pub(crate) fn lingers(reason: Option<CloseReason>) -> bool {
    reason.is_some_and(|r| r != CloseReason::TOO_BIG && r != CloseReason::SLOW_READER)
}

/// Reads and discards until the client closes, for at most [`LINGER`].
pub(crate) async fn linger(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let deadline = tokio::time::Instant::now() + LINGER;
    for _ in 0..LINGER_MESSAGES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Runs one socket until it closes. `ticket` holds its place among the
/// backend's sockets (see [`crate::limits::Sockets`]).
pub async fn serve_socket(socket: WebSocket, state: AppState, mut ticket: SocketTicket) {
    let limits = state.cfg.limits.clone();
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    let hello_timeout = Duration::from_millis(limits.hello_timeout_ms);
    let (sink, mut stream) = socket.split();
    let (tx, inbox) = Outbox::for_socket(&limits);
    let shutdown = tx.shutdown().clone();
    // Media to this socket: bounded, so a backed-up socket drops stale
    // frames at the bridge instead of queueing delay.
    let (media_tx, media_rx) = mpsc::channel::<MediaOut>(crate::bridge::AGENT_QUEUE);
    let mut writer = spawn_writer(sink, inbox, media_rx, shutdown.clone(), write_timeout);
    let mut writer_done = false;
    let mut media_tx = Some(media_tx);
    let mut media_slot: Option<Arc<SocketSlot>> = None;
    let mut media_control: Option<u64> = None;
    // Whether the hello announced `media_legs` (the client mixes legs).
    let mut mixes_legs = false;
    let mut flood = FloodGuard::new(&limits, Instant::now());
    let mut errors_before_hello = 0u32;

    let mut session: Option<(String, u64)> = None;
    let mut grant: Option<Grant> = None;
    let opened = tokio::time::Instant::now();
    // A graceful stop waits for this socket to send what it has queued.
    let _busy = state.shutdown.busy();
    let stop = state.shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let wait = if session.is_some() {
            IDLE_TIMEOUT
        } else {
            hello_timeout.saturating_sub(opened.elapsed())
        };
        let next = tokio::select! {
            biased;
            () = shutdown.requested() => break,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            event = next_grant_event(&mut grant, &state) => {
                if on_grant_event(event, &tx) {
                    continue;
                }
                break;
            }
            // The backend is stopping: the center has already sent this
            // agent what happened to its contacts; flush and close.
            () = &mut stop => break,
            next = tokio::time::timeout(wait, stream.next()) => next,
        };
        let msg = match next {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => {
                tracing::debug!("socket error: {e}");
                if is_too_big(e) {
                    shutdown.set_reason(CloseReason::TOO_BIG);
                }
                break;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::debug!(authenticated = session.is_some(), "socket timed out");
                if session.is_none() {
                    shutdown.set_reason(CloseReason::HELLO_TIMEOUT);
                }
                break;
            }
        };
        let kind = match &msg {
            Message::Binary(_) => Kind::Media,
            Message::Close(_) => break,
            _ => Kind::Text,
        };
        let verdict = flood.check(kind, Instant::now());
        if verdict == Verdict::Close {
            send(
                &tx,
                frame_error(ErrorCode::RateLimited, "too many messages; closing"),
            );
            shutdown.set_reason(CloseReason::FLOOD);
            break;
        }
        let limited = verdict == Verdict::Refuse;
        let was_authenticated = session.is_some();
        let errored = match msg {
            Message::Text(text) => {
                if session.is_none() {
                    mixes_legs = announces_media_legs(text.as_str());
                }
                on_text(
                    text.as_str(),
                    &state,
                    &tx,
                    &mut session,
                    &mut grant,
                    limited,
                )
            }
            Message::Binary(bytes) => on_binary(
                &bytes,
                &state,
                &tx,
                &session,
                media_slot.as_deref(),
                limited,
            ),
            // Control frames: tungstenite answers pings itself.
            _ => false,
        };
        if let (false, Some((agent, _))) = (was_authenticated, &session) {
            ticket.authenticated(agent, shutdown.clone());
            // The bridge learns where this agent's audio goes.
            if let (Some(bridge), Some(media)) = (&state.bridge, media_tx.take()) {
                // Where a media socket gives the agent's media back to.
                media_control = Some(
                    state
                        .media_sockets
                        .control_attached(agent, &media, mixes_legs),
                );
                media_slot = Some(bridge.attach_with_legs(agent, media, mixes_legs));
            }
        }
        if errored && session.is_none() {
            errors_before_hello += 1;
            if errors_before_hello >= limits.pre_hello_errors {
                shutdown.set_reason(CloseReason::PRE_HELLO_ERRORS);
                break;
            }
        }
    }
    if let (Some((agent, _)), Some(control)) = (&session, media_control) {
        state.media_sockets.control_detached(agent, control);
    }
    if let Some((agent, id)) = session {
        if let Ok(mut center) = state.center.lock() {
            center.detach(&agent, id);
        }
    }
    drop(grant);
    drop(tx);
    wind_down(
        ticket,
        &shutdown,
        writer,
        writer_done,
        &mut stream,
        write_timeout,
    )
    .await;
}

/// The end of every socket, once its driver has dropped its outbox: an
/// address that abused it is penalised, and the writer gets its deadlines
/// to send what is queued and the close frame, while the socket lingers
/// (reads and discards) when the close reason calls for it.
pub(crate) async fn wind_down(
    ticket: SocketTicket,
    shutdown: &Shutdown,
    mut writer: tokio::task::JoinHandle<()>,
    writer_done: bool,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    write_timeout: Duration,
) {
    if shutdown.reason().is_some_and(CloseReason::is_abuse) {
        ticket.penalize();
    }
    if !writer_done {
        if lingers(shutdown.reason()) {
            tokio::join!(finish_writer(&mut writer, write_timeout), linger(stream));
        } else {
            finish_writer(&mut writer, write_timeout).await;
        }
    }
    drop(ticket);
}

/// The next thing the socket's login needs (never, before `hello`).
async fn next_grant_event(grant: &mut Option<Grant>, state: &AppState) -> GrantEvent {
    match grant {
        Some(g) => g.next(|| state.now()).await,
        None => std::future::pending().await,
    }
}

/// Tells the client; returns whether the socket stays open.
fn on_grant_event(event: GrantEvent, tx: &Outbox) -> bool {
    match event {
        GrantEvent::Expiring(expires_at) => {
            send(tx, ServerFrame::TokenExpiring(TokenExpiring { expires_at }));
            true
        }
        GrantEvent::Expired => {
            tracing::debug!("socket closed: token expired");
            send(
                tx,
                frame_error(
                    ErrorCode::SessionExpired,
                    "your login expired; log in again",
                ),
            );
            false
        }
        GrantEvent::Revoked => {
            tracing::debug!("socket closed: token revoked");
            send(
                tx,
                frame_error(ErrorCode::TokenRevoked, "you logged out; log in again"),
            );
            false
        }
    }
}

/// `refresh_token`: a new token in this socket's login; the socket now
/// lives until the new token expires.
fn refresh(
    state: &AppState,
    agent: &str,
    grant: &mut Option<Grant>,
) -> Result<OpResult, ErrorBody> {
    let now = state.now();
    let Some(g) = grant.as_mut().filter(|g| g.valid(now)) else {
        return Err(ErrorBody::new(
            ErrorCode::SessionExpired,
            "your login expired; log in again",
        ));
    };
    let center = state
        .center
        .lock()
        .map_err(|_| ErrorBody::new(ErrorCode::Internal, "backend unavailable"))?;
    let login = crate::auth::refresh(&center, agent, g.family(), now).map_err(|e| e.body())?;
    drop(center);
    g.extend(login.expires_at);
    Ok(OpResult::Token {
        token: login.token,
        expires_at: login.expires_at,
    })
}

/// Handles a binary (media) frame; true when it was answered with an error.
///
/// A frame on a leg the bridge routes goes straight on (forwarded in this
/// task, copied to the mixer), without the contact center's lock. Only a
/// frame on a leg that has no route asks the center whether the leg is
/// live at all (a leg still connecting, or one that just ended and whose
/// client has not heard yet: dropped quietly; any other: `no_media_leg`).
pub(crate) fn on_binary(
    bytes: &[u8],
    state: &AppState,
    tx: &Outbox,
    session: &Option<(String, u64)>,
    slot: Option<&SocketSlot>,
    limited: bool,
) -> bool {
    let read_at = Instant::now();
    let reply = match decode_media_frame(bytes) {
        _ if limited => frame_error(ErrorCode::RateLimited, RATE_LIMITED),
        Err(e) => ServerFrame::Error(FrameError {
            id: None,
            error: e,
            supported_versions: None,
        }),
        Ok(_) if session.is_none() => frame_error(ErrorCode::NotAuthenticated, "send hello first"),
        Ok(frame) => {
            let leg = frame.header.leg;
            let agent = session
                .as_ref()
                .map(|(a, _)| a.as_str())
                .unwrap_or_default();
            if let (Some(bridge), Some(route)) =
                (&state.bridge, slot.and_then(|s| s.route_shared(leg)))
            {
                bridge.on_frame(agent, &route, bytes, read_at);
                return false;
            }
            let (live, ended) = state.center.lock().map_or((false, false), |c| {
                (
                    c.media_leg_active(agent, leg),
                    c.media_leg_ended(agent, leg),
                )
            });
            match (&state.bridge, live) {
                (Some(_), true) => return false,
                // Sent before the client heard its leg end (leaving a
                // conference): the frames crossed the end, nothing is wrong.
                _ if ended => return false,
                _ => frame_error(
                    ErrorCode::NoMediaLeg,
                    format!("no media leg {leg} on this session"),
                ),
            }
        }
    };
    send(tx, reply);
    true
}

/// Handles a text frame; true when it was answered with an error.
fn on_text(
    text: &str,
    state: &AppState,
    tx: &Outbox,
    session: &mut Option<(String, u64)>,
    grant: &mut Option<Grant>,
    limited: bool,
) -> bool {
    let frame = match decode_client_frame(text) {
        Ok(f) => f,
        Err(mut e) => {
            if limited {
                e.body = ErrorBody::new(ErrorCode::RateLimited, RATE_LIMITED);
            }
            send(tx, e.to_frame());
            return true;
        }
    };
    if limited {
        let body = ErrorBody::new(ErrorCode::RateLimited, RATE_LIMITED);
        let reply = match frame {
            ClientFrame::Request(req) => ServerFrame::Response(Response::err(req.id, body)),
            ClientFrame::Hello(_) => ServerFrame::Error(FrameError {
                id: None,
                error: body,
                supported_versions: None,
            }),
        };
        send(tx, reply);
        return true;
    }
    match frame {
        ClientFrame::Hello(hello) => on_hello(hello, state, tx, session, grant),
        ClientFrame::Request(req) => {
            let Some((agent, _)) = session.as_ref() else {
                let body = ErrorBody::new(
                    ErrorCode::NotAuthenticated,
                    "send hello with your token first",
                );
                send(tx, ServerFrame::Response(Response::err(req.id, body)));
                return true;
            };
            if req.op == Op::MediaSocket {
                // A ticket for a media-only socket (crate::media_socket).
                let issued = state
                    .media_sockets
                    .issue(agent, state.now(), Instant::now());
                let failed = issued.is_err();
                let response = match issued {
                    Ok(result) => Response::ok(req.id, result),
                    Err(e) => Response::err(req.id, e.body()),
                };
                send(tx, ServerFrame::Response(response));
                return failed;
            }
            if req.op == Op::RefreshToken {
                let (response, failed) = match refresh(state, agent, grant) {
                    Ok(result) => (Response::ok(req.id, result), false),
                    Err(e) => (Response::err(req.id, e), true),
                };
                send(tx, ServerFrame::Response(response));
                return failed;
            }
            let now = state.now();
            let Ok(mut center) = state.center.lock() else {
                send(
                    tx,
                    ServerFrame::Response(Response::err(
                        req.id,
                        ErrorBody::new(ErrorCode::Internal, "backend unavailable"),
                    )),
                );
                return true;
            };
            let result = center.handle(agent, req.op, now);
            // The op's events are queued; the response is encoded and
            // queued after them without holding every other agent up.
            drop(center);
            let (response, failed) = match result {
                Ok(result) => (Response::ok(req.id, result), false),
                // The one place a domain error becomes a wire error.
                Err(e) => (Response::err(req.id, e.body()), true),
            };
            send(tx, ServerFrame::Response(response));
            failed
        }
    }
}

/// Handles `hello`; true when it was answered with an error.
fn on_hello(
    hello: Hello,
    state: &AppState,
    tx: &Outbox,
    session: &mut Option<(String, u64)>,
    grant: &mut Option<Grant>,
) -> bool {
    if session.is_some() {
        send(
            tx,
            frame_error(
                ErrorCode::AlreadyAuthenticated,
                "this socket already said hello",
            ),
        );
        return true;
    }
    if !hello
        .versions
        .iter()
        .any(|v| SUPPORTED_VERSIONS.contains(v))
    {
        send(
            tx,
            ServerFrame::Error(FrameError {
                id: None,
                error: ErrorBody::new(
                    ErrorCode::UnsupportedVersion,
                    "none of the offered protocol versions is supported",
                ),
                supported_versions: Some(SUPPORTED_VERSIONS.to_vec()),
            }),
        );
        return true;
    }
    let now = state.now();
    let Ok(mut center) = state.center.lock() else {
        return true;
    };
    let Some(token) = authenticate(&center, &hello.token, now) else {
        send(
            tx,
            frame_error(
                ErrorCode::AuthFailed,
                "the token is unknown or expired; log in again",
            ),
        );
        return true;
    };
    // The first frames go into the channel while the lock is held, so no
    // event can slip in ahead of the welcome and snapshot.
    if let Some((id, mut frames)) = center.attach(&token.agent, hello.resume.as_ref(), tx.clone()) {
        // The bridge forwards, records and mixes 10 and 20 ms packets
        // alike, so the client's first choice is granted.
        if let Some(ServerFrame::Welcome(w)) = frames.first_mut() {
            w.packet_ms = protocol::wire::choose_packet_ms(&hello.packet_ms);
        }
        for f in frames {
            send(tx, f);
        }
        *session = Some((token.agent, id));
        *grant = Some(state.auth.live.track(
            &token.family,
            token.expires_at,
            state.cfg.token_warning_s.saturating_mul(1000),
        ));
    }
    false
}
