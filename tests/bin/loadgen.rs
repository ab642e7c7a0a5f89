//! Backend load benchmark: N agents connected over real WebSockets, M
//! simulated calls per second routed to them; every agent accepts, talks,
//! hangs up and clears. Reports signaling round-trip latency (p50/p99 of
//! every op) and the backend process's memory.
//!
//! The backend runs as its own process (the release binary) so its memory
//! is its own; this process plays the agents and the callers.
//!
//! `cargo xtask bench load -- --agents 1000 --rate 20 --seconds 30`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::contact::{ConnectionKind, ContactState};
use protocol::wire::Op;
use streams_sdk::{ContactChange, Output, Session};
use switchboard_tests::bench::{arg, rss_kib};
use tokio_tungstenite::tungstenite::Message;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[derive(Default)]
struct Stats {
    latencies_us: Mutex<Vec<u64>>,
    accepted: AtomicU64,
    cleared: AtomicU64,
    errors: AtomicU64,
}

/// One agent: log in, go Available, accept whatever rings, talk, hang up, clear.
async fn agent(
    addr: SocketAddr,
    name: String,
    talk: Duration,
    stats: Arc<Stats>,
    stop: Arc<tokio::sync::Notify>,
) {
    let body = serde_json::json!({ "username": name, "password": "pw" }).to_string();
    let Ok((200, login)) = server::sim::http_request(addr, "POST", "/v1/login", Some(&body)).await
    else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
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
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let mut session = Session::new(&token, 10_000);
    let _ = tx.send(Message::Text(session.hello().into())).await;
    let mut sent: std::collections::HashMap<u64, Instant> = Default::default();
    let mut ready = false;
    let mut hangups: Vec<(Instant, String, String)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let mut ops: Vec<Op> = Vec::new();
        tokio::select! {
            _ = stop.notified() => break,
            _ = tick.tick() => {
                let now = Instant::now();
                while let Some(i) = hangups.iter().position(|(at, _, _)| *at <= now) {
                    let (_, contact_id, connection_id) = hangups.remove(i);
                    ops.push(Op::EndConnection { contact_id, connection_id });
                }
            }
            msg = rx.next() => {
                let Some(Ok(Message::Text(text))) = msg else {
                    if msg.is_none() { break } else { continue }
                };
                let Ok(outputs) = session.handle_text(text.as_str(), server::http::wall_clock()) else { continue };
                for o in outputs {
                    match o {
                        Output::Ready { .. } if !ready => {
                            ready = true;
                            ops.push(Op::SetAgentState { state: "Available".into() });
                        }
                        Output::Reply { id, result } => {
                            if let Some(t) = sent.remove(&id) {
                                stats.latencies_us.lock().map(|mut l| l.push(t.elapsed().as_micros() as u64)).ok();
                            }
                            if result.is_err() {
                                stats.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Output::Contact(ContactChange::Incoming(v)) => ops.push(Op::Accept { contact_id: v.contact_id }),
                        Output::Contact(ContactChange::Connected(v)) => {
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            if let Some(own) = v.connections.iter().find(|c| c.kind == ConnectionKind::Agent) {
                                hangups.push((Instant::now() + talk, v.contact_id.clone(), own.connection_id.clone()));
                            }
                        }
                        Output::Contact(ContactChange::Ended(v)) if matches!(v.state, ContactState::Ended { .. }) => {
                            ops.push(Op::Clear { contact_id: v.contact_id, wrap_up_code: None });
                        }
                        Output::Contact(ContactChange::Destroyed(_)) => {
                            stats.cleared.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
        }
        for op in ops {
            let (id, frame) = session.request(op, server::http::wall_clock());
            sent.insert(id, Instant::now());
            if tx.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let agents = arg("--agents", 1000);
    let rate = arg("--rate", 20);
    let seconds = arg("--seconds", 30);
    let talk = Duration::from_millis(arg("--talk-ms", 3000));
    let backend = switchboard_tests::bench::Backend::start(agents, "load").await;
    let (addr, pid) = (backend.addr, backend.pid());
    let idle_rss = rss_kib(pid);

    let stats = Arc::new(Stats::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..agents {
        tasks.push(tokio::spawn(agent(
            addr,
            format!("agent{i}"),
            talk,
            stats.clone(),
            stop.clone(),
        )));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Wait until every agent is Available (one latency sample each).
    while (stats.latencies_us.lock().map(|l| l.len()).unwrap_or(0) as u64)
        + stats.errors.load(Ordering::Relaxed)
        < agents
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected_rss = rss_kib(pid);
    stats.latencies_us.lock().map(|mut l| l.clear()).ok();

    // Offer calls at the given rate.
    let load_start = Instant::now();
    let mut placed = 0u64;
    let mut refused = 0u64;
    let mut peak_rss = connected_rss;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    while load_start.elapsed() < Duration::from_secs(seconds) {
        interval.tick().await;
        let from = format!("+1555{:07}", placed % 10_000_000);
        match server::sim::place_call(addr, switchboard_tests::SIM_KEY, &from, "support").await {
            Ok((201, _)) => placed += 1,
            _ => refused += 1,
        }
        if placed % 50 == 0 {
            peak_rss = peak_rss.max(rss_kib(pid));
        }
    }
    // Let the calls in progress finish.
    tokio::time::sleep(talk + Duration::from_secs(2)).await;
    peak_rss = peak_rss.max(rss_kib(pid));
    stop.notify_waiters();
    let mut lat = stats
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    drop(backend);

    println!("agents connected:   {agents} in {connect_secs:.1} s");
    println!("calls offered:      {placed} at {rate}/s over {seconds} s ({refused} refused)");
    println!(
        "calls accepted:     {}",
        stats.accepted.load(Ordering::Relaxed)
    );
    println!(
        "contacts cleared:   {}",
        stats.cleared.load(Ordering::Relaxed)
    );
    println!(
        "op errors:          {}",
        stats.errors.load(Ordering::Relaxed)
    );
    println!(
        "op round trips:     {} (p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "backend RSS:        idle {} MiB, {agents} agents connected {} MiB, peak under load {} MiB",
        idle_rss / 1024,
        connected_rss / 1024,
        peak_rss / 1024
    );
    println!(
        "| {agents} | {rate} | {placed} | {} | {:.2} | {:.2} | {} | {} |",
        stats.accepted.load(Ordering::Relaxed),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        connected_rss / 1024,
        peak_rss / 1024
    );
}
