//! The customer phone page's socket (reference backend only, with the
//! simulator on): a person dials a queue from a browser tab and talks
//! through the same audio engine the CCP uses.
//!
//! Text frames, JSON: the page sends `{"type":"dial","from","queue"}` and
//! later `{"type":"hangup"}`; the backend answers `{"type":"dialed",
//! "contact_id","leg"}` or `{"type":"error","code","message"}`, and sends
//! `{"type":"state","state"}` (queued, ringing, connected, hold, ended) as
//! the call moves. Binary frames carry media with the `leg` from `dialed`,
//! both ways, exactly as on an agent's socket.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use protocol::error::ErrorCode;
use protocol::media::decode_media_frame;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::unbounded_channel;

use crate::bridge::{customer_key, CallerAudio, Command, AGENT_QUEUE};
use crate::center::random_leg;
use crate::http::AppState;
use crate::ws::spawn_writer;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Dial { from: String, queue: String },
    Hangup,
}

fn error(code: ErrorCode, message: impl Into<String>) -> String {
    json!({ "type": "error", "code": code, "message": message.into() }).to_string()
}

/// Runs one customer phone socket until it closes; hangs up its call then.
pub async fn serve_customer(socket: WebSocket, state: AppState) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = unbounded_channel::<String>();
    let (media_tx, media_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(AGENT_QUEUE);
    let writer = spawn_writer(sink, rx, media_rx, |s| s);
    let mut media_tx = Some(media_tx);
    let mut call: Option<(String, u32)> = None;
    let mut last_state = String::new();
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    // A graceful stop waits for this socket to tell its caller the call ended.
    let _busy = state.shutdown.busy();
    let stop = state.shutdown.triggered();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                if call.is_some() && last_state != "ended" {
                    let _ = tx.send(json!({ "type": "state", "state": "ended" }).to_string());
                }
                break;
            }
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    Message::Text(text) => match serde_json::from_str::<Request>(text.as_str()) {
                        Ok(Request::Dial { from, queue }) if call.is_none() => {
                            let leg = random_leg();
                            let now = state.now();
                            let placed = match state.center.lock() {
                                Ok(mut c) => c.place_inbound_playing(&from, &queue, CallerAudio::Live { leg }, now),
                                Err(_) => break,
                            };
                            match placed {
                                Ok(id) => {
                                    if let (Some(bridge), Some(media)) = (&state.bridge, media_tx.take()) {
                                        bridge.send(Command::AttachAgent { agent: customer_key(&id), tx: media });
                                    }
                                    let _ = tx.send(json!({ "type": "dialed", "contact_id": id, "leg": leg }).to_string());
                                    call = Some((id, leg));
                                }
                                Err(refused) => {
                                    let _ = tx.send(error(refused.error.code, refused.error.message));
                                }
                            }
                        }
                        Ok(Request::Dial { .. }) => {
                            let _ = tx.send(error(ErrorCode::InvalidState, "this phone is already on a call"));
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
                            let _ = tx.send(error(ErrorCode::BadRequest, format!("bad message: {e}")));
                        }
                    },
                    Message::Binary(bytes) => {
                        let ok = match (&call, decode_media_frame(&bytes)) {
                            (Some((id, leg)), Ok(frame)) if frame.header.leg == *leg => {
                                if let Some(bridge) = &state.bridge {
                                    bridge.send(Command::AgentFrame { agent: customer_key(id), leg: *leg, bytes: bytes.to_vec() });
                                }
                                true
                            }
                            _ => false,
                        };
                        if !ok {
                            let _ = tx.send(error(ErrorCode::NoMediaLeg, "no call on this leg"));
                        }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            _ = poll.tick() => {
                let Some((id, _)) = &call else { continue };
                let view = state.center.lock().ok().and_then(|c| c.caller_view(id));
                let now_state = view.map_or_else(|| "ended".to_string(), |v| v.state);
                if now_state != last_state {
                    let _ = tx.send(json!({ "type": "state", "state": now_state }).to_string());
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
    let _ = writer.await;
}
