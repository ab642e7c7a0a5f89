//! The customer phone page's socket (reference backend only, with the
//! simulator on): a person dials a queue from a browser tab and talks
//! through the same audio engine the CCP uses.
//!
//! Text frames, JSON: the page sends `{"type":"dial","from","queue","key"}`
//! or, to call a number that is a contact flow's entry point,
//! `{"type":"dial","from","to","key"}` (`key` is the simulator key: a
//! page's WebSocket cannot carry a header, and a URL is no place for a
//! secret; see [`crate::fence`]), then `{"type":"digits","digits"}` for
//! keys pressed (the flow takes them) and `{"type":"hangup"}`; the
//! backend answers `{"type":"dialed",
//! "contact_id","leg"}` or `{"type":"error","code","message"}`, and sends
//! `{"type":"state","state"}` (flow, queued, ringing, connected, hold, ended) as
//! the call moves. Binary frames carry media with the `leg` from `dialed`,
//! both ways, exactly as on an agent's socket.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use protocol::error::ErrorCode;
use protocol::media::decode_media_frame;
use serde::Deserialize;
use serde_json::json;

use crate::bridge::{customer_key, CallerAudio};
use crate::center::random_leg;
use crate::http::AppState;
use crate::limits::{CloseReason, FloodGuard, PreHelloErrors, SocketTicket};
use crate::ws::{read_one, start_socket, Inbound, FLOODED, RATE_LIMITED};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Dial {
        from: String,
        /// A queue to wait in, or...
        #[serde(default)]
        queue: Option<String>,
        /// ...a number to call: an entry point, whose contact flow runs.
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        key: String,
    },
    /// Keys pressed on the page's keypad (out of band, as RFC 4733 events
    /// are on a trunk): they go to the call's flow, and agents see them.
    Digits {
        digits: String,
    },
    Hangup,
}

fn error(code: ErrorCode, message: impl Into<String>) -> String {
    json!({ "type": "error", "code": code, "message": message.into() }).to_string()
}

/// Runs one customer phone socket until it closes; hangs up its call then.
/// Bounded like an agent's socket: it must dial within the hello timeout
/// (and is closed that long after its call ended), its messages are rate
/// limited, and its outgoing queue and writes have the same limits.
pub async fn serve_customer(socket: WebSocket, state: AppState, mut ticket: SocketTicket) {
    let limits = state.cfg.limits.clone();
    let hello_timeout = Duration::from_millis(limits.hello_timeout_ms);
    let (mut stream, tx, shutdown, mut writer, direct, media_tx) = start_socket(socket, &limits);
    let mut writer_done = false;
    let mut media_tx = Some(media_tx);
    let mut media_slot = None;
    let mut flood = FloodGuard::new(&limits, Instant::now());
    let mut errors_before_dial = PreHelloErrors::new(&limits);
    let mut call: Option<(String, u32)> = None;
    let mut last_state = String::new();
    // Until a call is placed, and again once it has ended, the socket
    // must do something within the hello timeout.
    let mut deadline = Some(tokio::time::Instant::now() + hello_timeout);
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    // A graceful stop waits for this socket to tell its caller the call ended.
    let _busy = state.shutdown.busy();
    let stop = state.shutdown.triggered();
    tokio::pin!(stop);
    // Awaited across frames (not made anew per media frame).
    let requested = shutdown.requested();
    tokio::pin!(requested);
    // The call's socket key, made once (not per media frame).
    let mut call_key = String::new();
    loop {
        let expiry = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut requested => break,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            () = &mut stop => {
                if call.is_some() && last_state != "ended" {
                    tx.push(json!({ "type": "state", "state": "ended" }).to_string());
                }
                break;
            }
            () = expiry => {
                shutdown.set_reason(CloseReason::HELLO_TIMEOUT);
                break;
            }
            next = stream.next() => {
                let flooded = || error(ErrorCode::RateLimited, FLOODED);
                let (msg, limited) = match read_one(next, &mut flood, Instant::now(), &tx, &shutdown, flooded) {
                    Inbound::Message { msg, limited } => (msg, limited),
                    Inbound::End => break,
                };
                let mut errored = false;
                if limited {
                    if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
                        tx.push(error(ErrorCode::RateLimited, RATE_LIMITED));
                    }
                    errored = true;
                } else {
                    match msg {
                        Message::Text(text) => match serde_json::from_str::<Request>(text.as_str()) {
                            Ok(Request::Dial { from, queue, to, key }) if call.is_none() => {
                                let now = state.now();
                                if let Err(e) = state.fence.check_key(&key) {
                                    // Wrong key: say so and hang up the socket.
                                    tx.push(error(e.code(), e.to_string()));
                                    break;
                                }
                                if let Err(e) = state.fence.take_call(now) {
                                    // Rate-limited: not the caller's error; it may dial again.
                                    tx.push(error(e.code(), e.to_string()));
                                    continue;
                                }
                                let leg = random_leg();
                                let placed = match (state.center.lock(), queue, to) {
                                    (Err(_), _, _) => break,
                                    (Ok(mut c), Some(queue), None) => {
                                        Some(c.place_inbound_playing(&from, &queue, CallerAudio::Live { leg }, now))
                                    }
                                    (Ok(mut c), None, Some(to)) => Some(c.place_flow_call(&from, &to, CallerAudio::Live { leg }, now)),
                                    // Neither or both.
                                    (Ok(_), _, _) => None,
                                };
                                match placed {
                                    None => {
                                        tx.push(error(ErrorCode::BadRequest, "dial needs either `queue` or `to`"));
                                        errored = true;
                                    }
                                    Some(Ok(id)) => {
                                        if let (Some(bridge), Some(media)) = (&state.bridge, media_tx.take()) {
                                            media_slot = Some(bridge.attach_direct(&customer_key(&id), media, false, direct.clone()));
                                        }
                                        tx.push(json!({ "type": "dialed", "contact_id": id, "leg": leg }).to_string());
                                        call_key = customer_key(&id);
                                        call = Some((id, leg));
                                        deadline = None;
                                        ticket.admitted_other();
                                    }
                                    Some(Err(refused)) => {
                                        let body = refused.body();
                                        tx.push(error(body.code, body.message));
                                        errored = true;
                                    }
                                }
                            }
                            Ok(Request::Dial { .. }) => {
                                tx.push(error(ErrorCode::InvalidState, "this phone is already on a call"));
                                errored = true;
                            }
                            Ok(Request::Digits { digits }) => {
                                let now = state.now();
                                let done = match (&call, state.center.lock()) {
                                    (Some((id, _)), Ok(mut c)) => c.caller_digits(id, &digits, now).map_err(|e| e.body()),
                                    (None, _) => Err(protocol::error::ErrorBody::new(ErrorCode::InvalidState, "no call on this phone")),
                                    (_, Err(_)) => break,
                                };
                                if let Err(body) = done {
                                    tx.push(error(body.code, body.message));
                                    errored = true;
                                }
                            }
                            Ok(Request::Hangup) => {
                                if let Some((id, _)) = &call {
                                    let now = state.now();
                                    if let Ok(mut c) = state.center.lock() {
                                        let _ = c.caller_hangup(id, now);
                                    }
                                }
                            }
                            Err(e) => {
                                // serde's message may quote the input: keep it short.
                                let m: String = format!("bad message: {e}").chars().take(200).collect();
                                tx.push(error(ErrorCode::BadRequest, m));
                                errored = true;
                            }
                        },
                        Message::Binary(bytes) => {
                            let read_at = Instant::now();
                            let ok = match (&call, decode_media_frame(&bytes)) {
                                (Some((_, leg)), Ok(frame)) if frame.header.leg == *leg => {
                                    // Routed once the call has media; before that, dropped.
                                    let route = media_slot.as_ref().and_then(|s: &std::sync::Arc<crate::bridge::route::SocketSlot>| s.route_shared(*leg));
                                    if let (Some(bridge), Some(route)) = (&state.bridge, route) {
                                        bridge.on_frame(&call_key, &route, &bytes, read_at);
                                    }
                                    true
                                }
                                _ => false,
                            };
                            if !ok {
                                tx.push(error(ErrorCode::NoMediaLeg, "no call on this leg"));
                                errored = true;
                            }
                        }
                        _ => {}
                    }
                }
                if errored && call.is_none() && errors_before_dial.strike(&shutdown) {
                    break;
                }
            }
            _ = poll.tick() => {
                let Some((id, _)) = &call else { continue };
                let view = state.center.lock().ok().and_then(|c| c.caller_view(id));
                let now_state = view.map_or_else(|| "ended".to_string(), |v| v.state.as_str().to_string());
                if now_state != last_state {
                    if now_state == "ended" {
                        deadline = Some(tokio::time::Instant::now() + hello_timeout);
                    }
                    tx.push(json!({ "type": "state", "state": now_state }).to_string());
                    last_state = now_state;
                }
            }
        }
    }
    if let Some((id, _)) = call {
        let now = state.now();
        if let Ok(mut c) = state.center.lock() {
            let _ = c.caller_hangup(&id, now);
        }
    }
    drop(tx);
    crate::ws::wind_down(ticket, &shutdown, writer, writer_done, &mut stream, &limits).await;
}
