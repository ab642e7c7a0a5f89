//! Backend media capacity: N agents each take a simulated call (the caller
//! plays the configured prompt) and stream Opus frames at 20 ms; the
//! backend forwards or plays canned packets, and records every call.
//!
//! The generator is lean so that it, not the backend, is not the limit:
//! agents are driven in groups, many sockets per task, each group on one
//! 20 ms clock (groups are phase-shifted so the backend does not see every
//! frame of a tick at once), with the frame built once per tick.
//!
//! Reports the backend's own CPU (from `/proc/<pid>/stat` over the
//! measured window) and RSS, the frames the agents received, the frames
//! the backend dropped, and the forwarding delay measured inside the
//! backend (socket read, or the mixer's tick, to socket write), with the
//! mixer's tick times.
//!
//! `cargo xtask bench media-load -- --calls 1000 --seconds 20 --group 50`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SelectAll, SplitSink};
use futures_util::{SinkExt, StreamExt};
use media::codec::{Encoder, EncoderSettings};
use media::frame::PACKET;
use protocol::media::{encode_media_frame, MediaHeader};
use protocol::wire::Op;
use streams_sdk::{ContactChange, Output, Session};
use switchboard_tests::bench::{arg, rss_kib, Backend};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Agent {
    tx: SplitSink<Ws, Message>,
    session: Session,
    leg: Option<u32>,
    seq: u32,
}

async fn connect(
    addr: std::net::SocketAddr,
    name: &str,
) -> Option<(Agent, futures_util::stream::SplitStream<Ws>)> {
    let body = serde_json::json!({ "username": name, "password": "pw" }).to_string();
    let Ok((200, login)) = server::sim::http_request(addr, "POST", "/v1/login", Some(&body)).await
    else {
        return None;
    };
    let token = serde_json::from_str::<serde_json::Value>(&login)
        .ok()
        .and_then(|v| v["token"].as_str().map(String::from))?;
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), None, true)
            .await
            .ok()?;
    let (mut tx, rx) = ws.split();
    let session = Session::new(&token, 10_000);
    tx.send(Message::Text(session.hello().into())).await.ok()?;
    Some((
        Agent {
            tx,
            session,
            leg: None,
            seq: 0,
        },
        rx,
    ))
}

/// Drives `names` on one 20 ms clock that starts after `phase`.
async fn group(
    addr: std::net::SocketAddr,
    names: Vec<String>,
    phase: Duration,
    payload: Arc<Vec<u8>>,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut agents = Vec::new();
    let mut reads = SelectAll::new();
    for name in &names {
        if let Some((agent, rx)) = connect(addr, name).await {
            let i = agents.len();
            agents.push(agent);
            reads.push(rx.map(move |m| (i, m)));
        }
    }
    tokio::time::sleep(phase).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut frame = Vec::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                for a in agents.iter_mut() {
                    let Some(leg) = a.leg else { continue };
                    let header = MediaHeader {
                        flags: 0,
                        leg,
                        sequence: a.seq,
                        timestamp: a.seq.wrapping_mul(PACKET as u32),
                    };
                    encode_media_frame(&header, &payload, &mut frame);
                    a.seq = a.seq.wrapping_add(1);
                    if a.tx.send(Message::Binary(frame.clone().into())).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            next = reads.next() => {
                let Some((i, msg)) = next else { break };
                match msg {
                    Ok(Message::Binary(_)) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Message::Text(text)) => {
                        let a = &mut agents[i];
                        let Ok(outputs) = a.session.handle_text(text.as_str(), server::http::wall_clock()) else {
                            continue;
                        };
                        let mut ops = Vec::new();
                        for o in outputs {
                            match o {
                                Output::Ready { .. } => ops.push(Op::SetAgentState { state: "Available".into() }),
                                Output::Contact(ContactChange::Incoming(v)) => ops.push(Op::Accept { contact_id: v.contact_id }),
                                // The media leg comes with the accepted contact
                                // (or a later update of it).
                                Output::Contact(
                                    ContactChange::Accepted(v)
                                    | ContactChange::Connected(v)
                                    | ContactChange::Refreshed(v),
                                ) => {
                                    if let Some(leg) = v.agent_connection().and_then(|c| c.media_leg) {
                                        a.leg = Some(leg);
                                    }
                                }
                                _ => {}
                            }
                        }
                        for op in ops {
                            let (_, f) = a.session.request(op, server::http::wall_clock());
                            let _ = a.tx.send(Message::Text(f.into())).await;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The backend's user + system CPU time so far, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

async fn stats(addr: std::net::SocketAddr) -> serde_json::Value {
    let (_, stats) = server::sim::http_request_with(
        addr,
        "GET",
        "/v1/sim/media-stats",
        None,
        &[switchboard_tests::sim_auth()],
    )
    .await
    .expect("stats");
    serde_json::from_str(&stats).unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let calls = arg("--calls", 50);
    let seconds = arg("--seconds", 20);
    let per_group = arg("--group", 50).max(1);
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
    let sent = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let names: Vec<String> = (0..calls).map(|i| format!("agent{i}")).collect();
    let groups: Vec<Vec<String>> = names
        .chunks(per_group as usize)
        .map(<[String]>::to_vec)
        .collect();
    let n_groups = groups.len().max(1) as u64;
    let mut tasks = Vec::new();
    for (g, names) in groups.into_iter().enumerate() {
        let phase = Duration::from_micros(20_000 * g as u64 / n_groups);
        tasks.push(tokio::spawn(group(
            addr,
            names,
            phase,
            payload.clone(),
            received.clone(),
            sent.clone(),
            stop.clone(),
        )));
    }
    // Every agent logged in and Available before the calls come.
    tokio::time::sleep(Duration::from_secs(2 + calls / 200)).await;
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
    let before = stats(addr).await;
    let (got0, sent0) = (
        received.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
    );
    let cpu0 = cpu_ticks(backend.pid());
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = cpu_ticks(backend.pid()) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed) - got0;
    let out = sent.load(Ordering::Relaxed) - sent0;
    let s = stats(addr).await;
    let rss = rss_kib(backend.pid());
    let _ = stop_tx.send(true);
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let dropped = n(&s, "frames_dropped") + n(&s, "input_dropped")
        - n(&before, "frames_dropped")
        - n(&before, "input_dropped");
    let cpu_pct = cpu as f64 / wall; // ticks are 1/100 s: per second = percent
                                     // The delay histogram over the window only: now less before.
    let hist = |v: &serde_json::Value| -> std::collections::BTreeMap<u64, u64> {
        v["delay_buckets_us"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| Some((b[0].as_u64()?, b[1].as_u64()?)))
            .collect()
    };
    let (h0, h1) = (hist(&before), hist(&s));
    let window: Vec<(u64, u64)> = h1
        .iter()
        .map(|(k, n)| (*k, n - h0.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = window.iter().map(|(_, n)| n).sum();
    let pct = |q: f64| {
        let want = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        window
            .iter()
            .find(|(_, n)| {
                seen += n;
                seen >= want
            })
            .map_or(0.0, |(k, _)| *k as f64 / 1000.0)
    };
    let (w50, w99, wmax) = (pct(0.5), pct(0.99), pct(1.0));
    println!(
        "calls: {calls} bridged ({} with media), {seconds} s measured",
        n(&s, "calls")
    );
    println!(
        "agents sent {:.1} and received {:.1} frames per call per second (50 expected)",
        out as f64 / calls as f64 / wall,
        got as f64 / calls as f64 / wall
    );
    println!(
        "backend CPU {cpu_pct:.0} % of one core, RSS {} MiB",
        rss / 1024
    );
    println!(
        "backend frames dropped in the window: {dropped}; forwarded in all: {}",
        n(&s, "frames_forwarded")
    );
    println!(
        "delay inside the backend (read or tick to write), measured window: p50 {w50:.1} ms, p99 {w99:.1} ms, max {wmax:.1} ms (100 µs buckets) over {total} frames"
    );
    println!(
        "since start: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} frames",
        n(&s, "delay_p50_us") as f64 / 1000.0,
        n(&s, "delay_p99_us") as f64 / 1000.0,
        n(&s, "delay_max_us") as f64 / 1000.0,
        n(&s, "delay_frames")
    );
    println!(
        "mixer tick p99 {:.2} ms, worst {:.2} ms, late ticks {}",
        n(&s, "p99_tick_us") as f64 / 1000.0,
        n(&s, "worst_tick_us") as f64 / 1000.0,
        n(&s, "late_ticks")
    );
    println!(
        "| {calls} | {:.1} | {w50:.1} ms | {w99:.1} ms | {wmax:.1} ms | {dropped} | {cpu_pct:.0} % | {} MiB | {:.1} ms |",
        got as f64 / calls as f64 / wall,
        rss / 1024,
        n(&s, "p99_tick_us") as f64 / 1000.0,
    );
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
}
