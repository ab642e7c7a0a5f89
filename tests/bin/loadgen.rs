//! Backend load benchmark: N agents connected over real WebSockets, M
//! simulated calls per second routed to them; every agent accepts, talks,
//! hangs up and clears. Reports signaling round-trip latency (p50/p99 of
//! every op), the backend process's own CPU and memory, and this
//! generator's CPU (so a run where the generator, not the backend, was the
//! limit shows as such).
//!
//! The backend runs as its own process (the release binary) so its memory
//! and CPU are its own; this process plays the agents and the callers.
//! The generator is built not to be the bottleneck: a few driver tasks
//! each own hundreds of sockets (a `SelectAll` of their read halves) and
//! one shared 20 ms clock for their hang-ups, instead of one task and one
//! timer per agent; calls are placed by concurrent requests on a fixed
//! schedule, so a slow answer does not lower the offered rate.
//!
//! `cargo xtask bench load -- --agents 10000 --rate 100 --seconds 20`
//! (`--drivers N`, `--talk-ms N` tune it).

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SelectAll, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use protocol::contact::{ConnectionKind, ContactState};
use protocol::wire::Op;
use streams_sdk::{ContactChange, Output, Session};
use switchboard_tests::bench::{arg, rss_kib};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Counters every driver shares.
#[derive(Default)]
struct Stats {
    /// Agents whose `Available` was answered.
    ready: AtomicU64,
    accepted: AtomicU64,
    cleared: AtomicU64,
    errors: AtomicU64,
    /// The drivers' 20 ms clock: ticks, ticks that fired more than 10 ms
    /// late, and the latest one (µs). A driver that is late reads its
    /// sockets late, so its round trips include its own lag: a run is
    /// only a backend figure when the generator kept its clock.
    ticks: AtomicU64,
    ticks_late: AtomicU64,
    tick_late_max_us: AtomicU64,
    /// Media frames the agents read (the caller's prompt they hear).
    media_frames: AtomicU64,
}

/// One simulated agent's side of its socket.
struct Agent {
    tx: SplitSink<Ws, Message>,
    session: Session,
    /// Request id -> when it was sent.
    sent: HashMap<u64, Instant>,
    ready: bool,
    /// The request id of `Available`, answered once.
    available: Option<u64>,
    /// The contact whose hang-up is scheduled (one per contact, whichever
    /// of `Accepted` and `Connected` comes).
    talking: Option<String>,
}

/// A hang-up due at `at` (earliest first in a max-heap).
#[derive(PartialEq, Eq)]
struct Hangup {
    at: Instant,
    agent: usize,
    contact_id: String,
    connection_id: String,
}

impl Ord for Hangup {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

impl PartialOrd for Hangup {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Op round trips a driver measured: (sent since the start, micros).
type Samples = Vec<(Duration, u64)>;

/// Logs `name` in and opens its socket with `hello` sent.
async fn connect(addr: SocketAddr, name: &str) -> Option<(Ws, Session)> {
    let body = serde_json::json!({ "username": name, "password": "pw" }).to_string();
    let Ok((200, login)) = server::sim::http_request(addr, "POST", "/v1/login", Some(&body)).await
    else {
        return None;
    };
    let token = serde_json::from_str::<serde_json::Value>(&login)
        .ok()
        .and_then(|v| v["token"].as_str().map(String::from))?;
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), None, true)
            .await
            .ok()?;
    let session = Session::new(&token, 10_000);
    ws.send(Message::Text(session.hello().into())).await.ok()?;
    Some((ws, session))
}

/// Sends `op` for agent `a`, remembering when.
async fn request(a: &mut Agent, op: Op) -> Option<u64> {
    let (id, frame) = a.session.request(op, server::http::wall_clock());
    a.sent.insert(id, Instant::now());
    a.tx.send(Message::Text(frame.into())).await.ok()?;
    Some(id)
}

/// Drives many agents: sockets arrive on `new`, their read halves are
/// polled together, hang-ups run on one 20 ms clock. Returns the round
/// trips it measured when `stop` turns true.
async fn driver(
    mut new: tokio::sync::mpsc::Receiver<(Ws, Session)>,
    talk: Duration,
    start: Instant,
    stats: Arc<Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Samples {
    let mut agents: Vec<Agent> = Vec::new();
    let mut reads: SelectAll<futures_util::stream::Map<SplitStream<Ws>, _>> = SelectAll::new();
    let mut hangups: BinaryHeap<Hangup> = BinaryHeap::new();
    let mut samples: Samples = Vec::new();
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut accepting = true;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            conn = new.recv(), if accepting => {
                let Some((ws, session)) = conn else {
                    accepting = false;
                    continue;
                };
                let (tx, rx) = ws.split();
                let index = agents.len();
                agents.push(Agent { tx, session, sent: HashMap::new(), ready: false, available: None, talking: None });
                reads.push(rx.map(move |m| (index, m)));
            }
            due = clock.tick() => {
                let late = due.elapsed();
                stats.ticks.fetch_add(1, Ordering::Relaxed);
                if late > Duration::from_millis(10) {
                    stats.ticks_late.fetch_add(1, Ordering::Relaxed);
                }
                stats.tick_late_max_us.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
                let now = Instant::now();
                while hangups.peek().is_some_and(|h| h.at <= now) {
                    let Some(h) = hangups.pop() else { break };
                    let op = Op::EndConnection { contact_id: h.contact_id, connection_id: h.connection_id };
                    let _ = request(&mut agents[h.agent], op).await;
                }
            }
            Some((i, msg)) = reads.next(), if !reads.is_empty() => {
                let text = match msg {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Binary(_)) => {
                        stats.media_frames.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    _ => continue,
                };
                let a = &mut agents[i];
                let Ok(outputs) = a.session.handle_text(text.as_str(), server::http::wall_clock()) else { continue };
                let mut ops = Vec::new();
                for o in outputs {
                    match o {
                        Output::Ready { .. } if !a.ready => {
                            a.ready = true;
                            ops.push(Op::SetAgentState { state: "Available".into() });
                        }
                        Output::Reply { id, result } => {
                            if let Some(t) = a.sent.remove(&id) {
                                samples.push((t.duration_since(start), t.elapsed().as_micros() as u64));
                            }
                            if result.is_err() {
                                stats.errors.fetch_add(1, Ordering::Relaxed);
                            } else if a.available == Some(id) {
                                stats.ready.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Output::Contact(ContactChange::Incoming(v)) => ops.push(Op::Accept { contact_id: v.contact_id }),
                        // The SDK reports a contact the agent accepted as
                        // `Accepted` (a contact connected without ringing
                        // here as `Connected`): either starts the talk. Before
                        // this matched `Accepted`, no call was ever hung up,
                        // so every call of the run stayed in the bridge.
                        Output::Contact(ContactChange::Accepted(v) | ContactChange::Connected(v))
                            if a.talking.as_deref() != Some(v.contact_id.as_str()) =>
                        {
                            a.talking = Some(v.contact_id.clone());
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            if let Some(own) = v.connections.iter().find(|c| c.kind == ConnectionKind::Agent) {
                                hangups.push(Hangup {
                                    at: Instant::now() + talk,
                                    agent: i,
                                    contact_id: v.contact_id.clone(),
                                    connection_id: own.connection_id.clone(),
                                });
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
                for op in ops {
                    let available = matches!(op, Op::SetAgentState { .. });
                    let id = request(a, op).await;
                    if available {
                        a.available = id;
                    }
                }
            }
        }
    }
    samples
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let ticks_per_s = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = f.get(11)?.parse().ok()?;
            let system: f64 = f.get(12)?.parse().ok()?;
            Some((user + system) / ticks_per_s)
        })
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let agents = arg("--agents", 1000);
    let rate = arg("--rate", 20);
    let seconds = arg("--seconds", 30);
    let talk = Duration::from_millis(arg("--talk-ms", 3000));
    let drivers = arg("--drivers", 8).max(1) as usize;
    let backend = switchboard_tests::bench::Backend::start(agents, "load").await;
    let (addr, pid) = (backend.addr, backend.pid());
    let backend_pid = pid.to_string();
    let idle_rss = rss_kib(pid);

    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut feeds = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..drivers {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        feeds.push(tx);
        tasks.push(tokio::spawn(driver(
            rx,
            talk,
            started,
            stats.clone(),
            stop_rx.clone(),
        )));
    }
    // Log in and connect, at most 64 at a time; each socket goes to a driver.
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    for i in 0..agents {
        let Ok(permit) = connecting.clone().acquire_owned().await else {
            break;
        };
        let feed = feeds[i as usize % drivers].clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            match connect(addr, &format!("agent{i}")).await {
                Some(conn) => {
                    let _ = feed.send(conn).await;
                }
                None => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        });
    }
    drop(feeds);
    // Wait until every agent is Available.
    while stats.ready.load(Ordering::Relaxed) + stats.errors.load(Ordering::Relaxed) < agents
        && started.elapsed() < Duration::from_secs(180)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected_rss = rss_kib(pid);

    // Offer calls at the given rate, each request on its own task so a
    // slow answer does not hold back the next call.
    let load_start = Instant::now();
    let load_from = load_start.duration_since(started);
    let backend_cpu0 = cpu_seconds(&backend_pid);
    let own_cpu0 = cpu_seconds("self");
    let placed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut offered = 0u64;
    let mut peak_rss = connected_rss;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut calls = Vec::new();
    while load_start.elapsed() < Duration::from_secs(seconds) {
        interval.tick().await;
        let from = format!("+1555{:07}", offered % 10_000_000);
        offered += 1;
        let (placed, refused) = (placed.clone(), refused.clone());
        calls.push(tokio::spawn(async move {
            match server::sim::place_call(addr, switchboard_tests::SIM_KEY, &from, "support").await
            {
                Ok((201, _)) => placed.fetch_add(1, Ordering::Relaxed),
                _ => refused.fetch_add(1, Ordering::Relaxed),
            };
        }));
        if offered % 50 == 0 {
            peak_rss = peak_rss.max(rss_kib(pid));
        }
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    let backend_cpu = cpu_seconds(&backend_pid) - backend_cpu0;
    let own_cpu = cpu_seconds("self") - own_cpu0;
    for c in calls {
        let _ = c.await;
    }
    // Let the calls in progress finish.
    tokio::time::sleep(talk + Duration::from_secs(2)).await;
    peak_rss = peak_rss.max(rss_kib(pid));
    let _ = stop_tx.send(true);
    let mut lat: Vec<u64> = Vec::new();
    for t in tasks {
        if let Ok(samples) = t.await {
            lat.extend(
                samples
                    .into_iter()
                    .filter(|(at, _)| *at >= load_from)
                    .map(|(_, us)| us),
            );
        }
    }
    lat.sort_unstable();
    drop(backend);

    let placed = placed.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    println!("agents connected:   {agents} in {connect_secs:.1} s ({drivers} driver tasks)");
    println!("calls offered:      {offered} at {rate}/s over {seconds} s: {placed} placed, {refused} refused");
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
        "CPU during load:    backend {:.0} % of a core, load generator {:.0} % ({load_secs:.1} s)",
        backend_cpu / load_secs * 100.0,
        own_cpu / load_secs * 100.0
    );
    let ticks = stats.ticks.load(Ordering::Relaxed).max(1);
    let late_share = stats.ticks_late.load(Ordering::Relaxed) as f64 / ticks as f64;
    println!(
        "load generator:     {:.1} % of its 20 ms ticks more than 10 ms late (worst {:.0} ms), {} media frames read by the agents; kept up: {}",
        late_share * 100.0,
        stats.tick_late_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        stats.media_frames.load(Ordering::Relaxed),
        if late_share < 0.01 {
            "yes"
        } else {
            "NO (its round trips include its own lag)"
        }
    );
    println!(
        "backend RSS:        idle {} MiB, {agents} agents connected {} MiB, peak under load {} MiB",
        idle_rss / 1024,
        connected_rss / 1024,
        peak_rss / 1024
    );
    println!(
        "| {agents} | {rate} | {placed} | {} | {:.2} | {:.2} | {:.0} % | {:.0} % | {} | {} |",
        stats.accepted.load(Ordering::Relaxed),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        backend_cpu / load_secs * 100.0,
        own_cpu / load_secs * 100.0,
        connected_rss / 1024,
        peak_rss / 1024
    );
}
