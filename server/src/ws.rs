//! One agent's WebSocket: the thin driver between the socket and the
//! center. It authenticates the first `hello`, forwards requests, and
//! writes whatever the center emits, in order, through one writer task.
//!
//! Nothing a client sends can take the socket down except closing it:
//! bad JSON, unknown types and ops, oversized and malformed frames each get
//! a typed error and the session carries on.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::media::decode_media_frame;
use protocol::wire::{
    decode_client_frame, encode, ClientFrame, FrameError, Hello, Response, ServerFrame,
};
use protocol::SUPPORTED_VERSIONS;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::auth::authenticate;
use crate::center::HEARTBEAT_MS;
use crate::http::AppState;

/// A session that sends nothing for this long is considered gone.
const IDLE_TIMEOUT: Duration = Duration::from_millis(HEARTBEAT_MS * 3);
/// A socket that has not completed `hello` by then is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

fn frame_error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error(FrameError {
        id: None,
        error: ErrorBody::new(code, message),
        supported_versions: None,
    })
}

/// The one task that writes to a socket: text frames in order, media
/// frames as they come (text first when both are ready). Ends when the
/// text channel closes.
pub fn spawn_writer<T: Send + 'static>(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
    mut media_rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    to_text: fn(T) -> String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut media_open = true;
        loop {
            let msg = tokio::select! {
                biased;
                frame = rx.recv() => match frame {
                    Some(frame) => Message::Text(to_text(frame).into()),
                    None => break,
                },
                media = media_rx.recv(), if media_open => match media {
                    Some(bytes) => Message::Binary(bytes.into()),
                    None => {
                        // The bridge let go of this socket (a newer one took over).
                        media_open = false;
                        continue;
                    }
                },
            };
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    })
}

/// Runs one socket until it closes.
pub async fn serve_socket(socket: WebSocket, state: AppState) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = unbounded_channel::<ServerFrame>();
    // Media to this socket: bounded, so a backed-up socket drops stale
    // frames at the bridge instead of queueing delay.
    let (media_tx, media_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(crate::bridge::AGENT_QUEUE);
    let writer = spawn_writer(sink, rx, media_rx, |f| encode(&f));
    let mut media_tx = Some(media_tx);

    let mut session: Option<(String, u64)> = None;
    let opened = tokio::time::Instant::now();
    // A graceful stop waits for this socket to send what it has queued.
    let _busy = state.shutdown.busy();
    let stop = state.shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let wait = if session.is_some() {
            IDLE_TIMEOUT
        } else {
            HELLO_TIMEOUT.saturating_sub(opened.elapsed())
        };
        let read = tokio::select! {
            read = tokio::time::timeout(wait, stream.next()) => read,
            // The backend is stopping: the center has already sent this
            // agent what happened to its contacts; flush and close.
            () = &mut stop => break,
        };
        let msg = match read {
            Ok(Some(Ok(msg))) => msg,
            Ok(Some(Err(e))) => {
                tracing::debug!("socket error: {e}");
                break;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::debug!(authenticated = session.is_some(), "socket timed out");
                break;
            }
        };
        match msg {
            Message::Text(text) => {
                on_text(text.as_str(), &state, &tx, &mut session);
                // Once authenticated, the bridge learns where this agent's audio goes.
                if let (Some((agent, _)), Some(bridge)) = (&session, &state.bridge) {
                    if let Some(media) = media_tx.take() {
                        bridge.send(crate::bridge::Command::AttachAgent {
                            agent: agent.clone(),
                            tx: media,
                        });
                    }
                }
            }
            Message::Binary(bytes) => {
                let reply = match decode_media_frame(&bytes) {
                    Err(e) => ServerFrame::Error(FrameError {
                        id: None,
                        error: e,
                        supported_versions: None,
                    }),
                    Ok(_) if session.is_none() => {
                        frame_error(ErrorCode::NotAuthenticated, "send hello first")
                    }
                    Ok(frame) => {
                        let leg = frame.header.leg;
                        let agent = session.as_ref().map(|(a, _)| a.clone()).unwrap_or_default();
                        let live = state
                            .center
                            .lock()
                            .is_ok_and(|c| c.media_leg_active(&agent, leg));
                        match (&state.bridge, live) {
                            (Some(bridge), true) => {
                                bridge.send(crate::bridge::Command::AgentFrame {
                                    agent,
                                    leg,
                                    bytes: bytes.to_vec(),
                                });
                                continue;
                            }
                            _ => frame_error(
                                ErrorCode::NoMediaLeg,
                                format!("no media leg {leg} on this session"),
                            ),
                        }
                    }
                };
                let _ = tx.send(reply);
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    if let Some((agent, id)) = session {
        if let Ok(mut center) = state.center.lock() {
            center.detach(&agent, id);
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn on_text(
    text: &str,
    state: &AppState,
    tx: &UnboundedSender<ServerFrame>,
    session: &mut Option<(String, u64)>,
) {
    let frame = match decode_client_frame(text) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(e.to_frame());
            return;
        }
    };
    match frame {
        ClientFrame::Hello(hello) => on_hello(hello, state, tx, session),
        ClientFrame::Request(req) => {
            let Some((agent, _)) = session.as_ref() else {
                let body = ErrorBody::new(
                    ErrorCode::NotAuthenticated,
                    "send hello with your token first",
                );
                let _ = tx.send(ServerFrame::Response(Response::err(req.id, body)));
                return;
            };
            let now = state.now();
            let Ok(mut center) = state.center.lock() else {
                let _ = tx.send(ServerFrame::Response(Response::err(
                    req.id,
                    ErrorBody::new(ErrorCode::Internal, "backend unavailable"),
                )));
                return;
            };
            let response = match center.handle(agent, req.op, now) {
                Ok(result) => Response::ok(req.id, result),
                Err(e) => Response::err(req.id, e),
            };
            let _ = tx.send(ServerFrame::Response(response));
        }
    }
}

fn on_hello(
    hello: Hello,
    state: &AppState,
    tx: &UnboundedSender<ServerFrame>,
    session: &mut Option<(String, u64)>,
) {
    if session.is_some() {
        let _ = tx.send(frame_error(
            ErrorCode::AlreadyAuthenticated,
            "this socket already said hello",
        ));
        return;
    }
    if !hello
        .versions
        .iter()
        .any(|v| SUPPORTED_VERSIONS.contains(v))
    {
        let _ = tx.send(ServerFrame::Error(FrameError {
            id: None,
            error: ErrorBody::new(
                ErrorCode::UnsupportedVersion,
                "none of the offered protocol versions is supported",
            ),
            supported_versions: Some(SUPPORTED_VERSIONS.to_vec()),
        }));
        return;
    }
    let now = state.now();
    let Ok(mut center) = state.center.lock() else {
        return;
    };
    let Some(agent) = authenticate(&center, &hello.token, now) else {
        let _ = tx.send(frame_error(
            ErrorCode::AuthFailed,
            "the token is unknown or expired; log in again",
        ));
        return;
    };
    // The first frames go into the channel while the lock is held, so no
    // event can slip in ahead of the welcome and snapshot.
    if let Some((id, frames)) = center.attach(&agent, hello.resume.as_ref(), tx.clone()) {
        for f in frames {
            let _ = tx.send(f);
        }
        *session = Some((agent, id));
    }
}
