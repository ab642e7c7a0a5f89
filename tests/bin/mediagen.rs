//! Backend media capacity: N agents each take a simulated call and stream
//! Opus frames at 20 ms; the backend's bridge decodes, mixes, encodes and
//! records every call. Reports the bridge's mixing tick (p99 and worst:
//! the processing each frame waits for on its way through), late ticks,
//! frames dropped, and what the agents received.
//!
//! `cargo xtask bench media-load -- --calls 50 --seconds 20`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use media::codec::{Encoder, EncoderSettings};
use media::frame::PACKET;
use protocol::media::{encode_media_frame, MediaHeader};
use protocol::wire::Op;
use streams_sdk::{ContactChange, Output, Session};
use switchboard_tests::bench::{arg, rss_kib, Backend};
use tokio_tungstenite::tungstenite::Message;

async fn agent(
    addr: std::net::SocketAddr,
    name: String,
    payload: Arc<Vec<u8>>,
    received: Arc<AtomicU64>,
    stop: Arc<tokio::sync::Notify>,
) {
    let body = serde_json::json!({ "username": name, "password": "pw" }).to_string();
    let Ok((200, login)) = server::sim::http_request(addr, "POST", "/v1/login", Some(&body)).await
    else {
        return;
    };
    let token = serde_json::from_str::<serde_json::Value>(&login)
        .ok()
        .and_then(|v| v["token"].as_str().map(String::from))
        .unwrap_or_default();
    let Ok((ws, _)) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), None, true)
            .await
    else {
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let mut session = Session::new(&token, 10_000);
    let _ = tx.send(Message::Text(session.hello().into())).await;
    let mut leg: Option<u32> = None;
    let mut seq = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut frame = Vec::new();
    loop {
        let mut ops = Vec::new();
        tokio::select! {
            _ = stop.notified() => break,
            _ = tick.tick() => {
                if let Some(leg) = leg {
                    encode_media_frame(&MediaHeader { flags: 0, leg, sequence: seq, timestamp: seq.wrapping_mul(PACKET as u32) }, &payload, &mut frame);
                    seq = seq.wrapping_add(1);
                    if tx.send(Message::Binary(frame.clone().into())).await.is_err() { break; }
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(_))) => { received.fetch_add(1, Ordering::Relaxed); }
                Some(Ok(Message::Text(text))) => {
                    let Ok(outputs) = session.handle_text(text.as_str(), server::http::wall_clock()) else { continue };
                    for o in outputs {
                        match o {
                            Output::Ready { .. } => ops.push(Op::SetAgentState { state: "Available".into() }),
                            Output::Contact(ContactChange::Incoming(v)) => ops.push(Op::Accept { contact_id: v.contact_id }),
                            Output::Contact(ContactChange::Connected(v)) => leg = v.agent_connection().and_then(|c| c.media_leg),
                            _ => {}
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        for op in ops {
            let (_, f) = session.request(op, server::http::wall_clock());
            let _ = tx.send(Message::Text(f.into())).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let calls = arg("--calls", 50);
    let seconds = arg("--seconds", 20);
    let backend = Backend::start(calls, "media").await;
    let addr = backend.addr;
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let tone: Vec<f32> = (0..PACKET).map(|i| 0.1 * (i as f32 * 0.06).sin()).collect();
    let payload = Arc::new(
        enc.encode(tone.as_slice().try_into().expect("packet"))
            .expect("encode")
            .to_vec(),
    );
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for i in 0..calls {
        tasks.push(tokio::spawn(agent(
            addr,
            format!("agent{i}"),
            payload.clone(),
            received.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..calls {
        let body =
            serde_json::json!({ "from": format!("+1555{:07}", i), "queue": "support" }).to_string();
        let _ = server::sim::http_request_with(
            addr,
            "POST",
            "/v1/sim/calls",
            Some(&body),
            &[switchboard_tests::sim_auth()],
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = received.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let got = received.load(Ordering::Relaxed) - before;
    let (_, stats) = server::sim::http_request_with(
        addr,
        "GET",
        "/v1/sim/media-stats",
        None,
        &[switchboard_tests::sim_auth()],
    )
    .await
    .expect("stats");
    let rss = rss_kib(backend.pid());
    stop.notify_waiters();
    let s: serde_json::Value = serde_json::from_str(&stats).unwrap_or_default();
    println!("calls: {calls} bridged, {seconds} s measured");
    println!(
        "frames to agents: {:.1} per call per second (50 expected)",
        got as f64 / calls as f64 / seconds as f64
    );
    println!("bridge: {}", stats);
    println!("backend RSS {} MiB", rss / 1024);
    println!(
        "| {calls} | {:.1} | {:.2} | {:.2} | {} | {} | {} |",
        got as f64 / calls as f64 / seconds as f64,
        s["p99_tick_us"].as_f64().unwrap_or(0.0) / 1000.0,
        s["worst_tick_us"].as_f64().unwrap_or(0.0) / 1000.0,
        s["late_ticks"],
        s["frames_dropped"],
        rss / 1024
    );
}
