//! Backend media capacity: N agents each take a call and stream Opus
//! frames at 20 ms; the backend forwards or plays canned packets, and
//! records every call. The call's other side depends on `--shape`:
//!
//! - `prompt` (the default): a simulated caller playing the configured
//!   prompt. The agent hears canned packets; nothing is forwarded.
//! - `customer`: a customer phone socket (`/v1/customer/ws`) per call,
//!   driven by the same group tasks, streaming 50 packets a second like
//!   the agent. Both directions are forwarded in the sockets' tasks: this
//!   is the forward-heavy shape.
//! - `conference`: `--calls N` conferences of three: a customer phone
//!   socket, agent A who accepts, and agent B whom A adds and then
//!   conferences in (2N agents). Every party streams. With `--legs 1`
//!   (the default) the agents announce `media_legs`, so each hears the
//!   other two forwarded on their own legs and only the customer's mix is
//!   encoded; `--legs 0` makes every party a mix.
//!
//! The generator is lean so that it, not the backend, is the limit:
//! sockets are driven in groups, many sockets per task, each group on one
//! 20 ms clock (groups are phase-shifted so the backend does not see every
//! frame of a tick at once). After the WebSocket handshake a socket is a
//! bare TCP stream: each socket's frame is built once (masked with the
//! zero key RFC 6455 allows) and only its sequence and timestamp bytes are
//! rewritten per tick, written with one non-blocking `write`; reads are
//! non-blocking too, once per tick per socket (no wake-up per arriving
//! frame), and parse only frame headers (media frames are counted, text
//! frames handled). The generator's own CPU per frame is reported apart
//! from the backend's; `--pin 1` pins the backend to CPU 1 and the
//! generator to CPU 0 (with `taskset`), so neither takes the other's core.
//!
//! Reports the backend's own CPU (from `/proc/<pid>/stat` over the
//! measured window) and RSS, the frames the agents received, the frames
//! the backend dropped, and the forwarding delay measured inside the
//! backend (socket read, or the mixer's tick, to socket write), with the
//! mixer's tick times.
//!
//! `--talk turns` makes each socket talk one 2 s turn in three (a phase of
//! its own per socket) and send digital silence otherwise, as parties of
//! a conversation do; the default, `--talk all`, has everyone talk all
//! the time (the mixer's worst case).
//!
//! `cargo xtask bench media-load -- --calls 1000 --seconds 20 --group 50 --shape customer`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use media::codec::{Encoder, EncoderSettings};
use media::frame::PACKET;
use protocol::media::{encode_media_frame, MediaHeader};
use protocol::wire::Op;
use std::io::{Read, Write};
use std::net::TcpStream;
use streams_sdk::{ContactChange, Output, Session};
use switchboard_tests::bench::{arg, rss_kib, Backend};
use switchboard_tests::raw;
use tokio::io::AsyncWriteExt;

struct Agent {
    /// The socket after its handshake: a plain non-blocking stream, not
    /// registered with tokio's reactor (see [`bare`]).
    tx: TcpStream,
    out: Outgoing,
    session: Session,
    name: String,
    leg: Option<u32>,
    seq: u32,
    /// The contact it accepted.
    contact: Option<String>,
    /// Stays unavailable until its partner asks (agent B of a conference).
    held_back: bool,
}

/// What one read of a socket brought: media frames (counted, not kept)
/// and text frames.
struct Incoming {
    binary: u64,
    texts: Vec<String>,
}

/// A socket's reading side: bytes read but not parsed yet. Read without
/// waiting, every [`READ_EVERY`] ticks (see [`Reader::drain`]).
struct Reader {
    buf: Vec<u8>,
    /// False once the socket ended (EOF, an error or a close frame).
    open: bool,
}

/// At most this much is read from one socket per call.
const READ_CHUNK: usize = 16 * 1024;

/// Sockets are read every this many 20 ms ticks: 5 frames of about 100
/// bytes wait in the kernel meanwhile, and one `read` takes them all (a
/// generator only counts what it receives; the backend's delay is
/// measured inside the backend, at its write).
const READ_EVERY: u64 = 5;

impl Reader {
    fn new() -> Reader {
        Reader {
            buf: Vec::with_capacity(READ_CHUNK),
            open: true,
        }
    }

    /// Reads what is waiting on `tcp` without waiting and parses the
    /// complete server frames (not masked): media frames are counted,
    /// text frames kept.
    fn drain(&mut self, mut tcp: &TcpStream, chunk: &mut [u8]) -> Incoming {
        let mut got = Incoming {
            binary: 0,
            texts: Vec::new(),
        };
        if !self.open {
            return got;
        }
        loop {
            match tcp.read(chunk) {
                Ok(0) => {
                    self.open = false;
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.open = false;
                    break;
                }
            }
        }
        let mut at = 0;
        while self.buf.len() - at >= 2 {
            let b = &self.buf[at..];
            let opcode = b[0] & 0x0f;
            let (len, head) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(l) as usize, 10)
                }
                126 | 127 => break,
                n => (usize::from(n), 2),
            };
            if b.len() < head + len {
                break;
            }
            match opcode {
                0x2 => got.binary += 1,
                0x1 => got
                    .texts
                    .push(String::from_utf8_lossy(&b[head..head + len]).into_owned()),
                0x8 => self.open = false,
                _ => {}
            }
            at += head + len;
        }
        self.buf.drain(..at);
        got
    }
}

/// A socket's writing side, beside its stream: the media frame
/// built once for the socket's leg, and bytes the kernel did not take yet.
#[derive(Default)]
struct Outgoing {
    /// The whole client frame (WebSocket header, media header, payload).
    frame: Vec<u8>,
    /// Where the media header starts in `frame`.
    media_at: usize,
    /// The leg `frame` was built for, and whether with the talking payload.
    leg: Option<(u32, bool)>,
    /// Bytes accepted but not yet written (the socket was full).
    pending: Vec<u8>,
}

/// At most this much waits in [`Outgoing::pending`]; a frame that would
/// go over it is dropped (and counted: the backend is not reading).
const PENDING_MAX: usize = 64 * 1024;

impl Outgoing {
    /// The media frame for `leg` with `seq`, rewritten in place.
    fn media(&mut self, leg: u32, seq: u32, payload: &[u8], talking: bool) -> &[u8] {
        if self.leg != Some((leg, talking)) {
            let header = MediaHeader {
                flags: 0,
                leg,
                sequence: 0,
                timestamp: 0,
            };
            let mut media = Vec::new();
            encode_media_frame(&header, payload, &mut media);
            self.frame = raw::header(0x2, media.len() as u64);
            self.media_at = self.frame.len();
            self.frame.extend_from_slice(&media);
            self.leg = Some((leg, talking));
        }
        // Sequence at bytes 8..12 of the media header, timestamp 12..16
        // (docs/protocol.md); the zero mask leaves them as written.
        let at = self.media_at;
        self.frame[at + 8..at + 12].copy_from_slice(&seq.to_be_bytes());
        self.frame[at + 12..at + 16]
            .copy_from_slice(&seq.wrapping_mul(PACKET as u32).to_be_bytes());
        &self.frame
    }
}

/// Writes `bytes` without waiting: what the kernel does not take at once
/// waits in `pending` and goes first next time. False when it was dropped
/// (the pending bytes would pass [`PENDING_MAX`], or the socket failed).
fn send_now(mut tx: &TcpStream, pending: &mut Vec<u8>, bytes: &[u8]) -> bool {
    if !pending.is_empty() {
        match tx.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        if !pending.is_empty() {
            if pending.len() + bytes.len() > PENDING_MAX {
                return false;
            }
            pending.extend_from_slice(bytes);
            return true;
        }
    }
    match tx.write(bytes) {
        Ok(n) => {
            pending.extend_from_slice(&bytes[n..]);
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            pending.extend_from_slice(bytes);
            true
        }
        Err(_) => false,
    }
}

async fn connect(
    addr: std::net::SocketAddr,
    name: &str,
    legs: bool,
    held_back: bool,
) -> Option<Agent> {
    let body = serde_json::json!({ "username": name, "password": "pw" }).to_string();
    let Ok((200, login)) = server::sim::http_request(addr, "POST", "/v1/login", Some(&body)).await
    else {
        return None;
    };
    let token = serde_json::from_str::<serde_json::Value>(&login)
        .ok()
        .and_then(|v| v["token"].as_str().map(String::from))?;
    let mut tcp = raw::upgrade(addr, "/v1/ws").await.ok()?;
    let _ = tcp.set_nodelay(true);
    let mut session = Session::new(&token, 10_000);
    if legs {
        session.announce(protocol::wire::CAP_MEDIA_LEGS);
    }
    tcp.write_all(&raw::text(&session.hello())).await.ok()?;
    Some(Agent {
        tx: bare(tcp)?,
        out: Outgoing::default(),
        session,
        name: name.to_owned(),
        leg: None,
        seq: 0,
        contact: None,
        held_back,
    })
}

/// A handshaken socket as a plain non-blocking stream, taken off tokio's
/// reactor: the group reads and writes it on its own clock, so nothing
/// should wake for each frame that arrives (nor cost the backend's
/// sending thread an epoll wake-up on this side).
fn bare(tcp: tokio::net::TcpStream) -> Option<TcpStream> {
    let tcp = tcp.into_std().ok()?;
    tcp.set_nonblocking(true).ok()?;
    Some(tcp)
}

/// A customer phone socket of the `customer` shape.
struct Customer {
    tx: TcpStream,
    out: Outgoing,
    leg: Option<u32>,
    seq: u32,
}

/// Opens a customer phone socket and dials the support queue.
async fn dial(addr: std::net::SocketAddr, from: &str) -> Option<Customer> {
    let mut tcp = raw::upgrade(addr, "/v1/customer/ws").await.ok()?;
    let _ = tcp.set_nodelay(true);
    let dial = serde_json::json!({
        "type": "dial", "from": from, "queue": "support", "key": switchboard_tests::SIM_KEY,
    });
    tcp.write_all(&raw::text(&dial.to_string())).await.ok()?;
    Some(Customer {
        tx: bare(tcp)?,
        out: Outgoing::default(),
        leg: None,
        seq: 0,
    })
}

/// Frame counters shared by the groups.
#[derive(Default)]
struct Counters {
    /// Frames the agents received.
    agent_received: AtomicU64,
    /// Frames the customer sockets received.
    customer_received: AtomicU64,
    /// Frames sent (agents and customers).
    sent: AtomicU64,
    /// Frames the generator could not write (a socket's kernel buffer and
    /// its pending bytes were full: the backend was not reading).
    unsent: AtomicU64,
    /// Frames each socket sent: agents first (by agent number), then
    /// customers (by caller number), so the report can say whether every
    /// socket kept its 50 a second, not only the average.
    per_socket: Vec<AtomicU64>,
    /// How late the groups' 20 ms ticks fired, by millisecond (the last
    /// bucket holds everything later): the generator's own lag.
    tick_late_ms: Vec<AtomicU64>,
}

/// Buckets of [`Counters::tick_late_ms`].
const LATE_BUCKETS: usize = 101;

impl Counters {
    fn new(sockets: usize) -> Counters {
        Counters {
            per_socket: (0..sockets).map(|_| AtomicU64::new(0)).collect(),
            tick_late_ms: (0..LATE_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            ..Counters::default()
        }
    }

    fn snapshot(v: &[AtomicU64]) -> Vec<u64> {
        v.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// The value at quantile `q` of `sorted` (ascending), 0 when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Frames per second a socket sends: one every 20 ms.
const RATE: f64 = 50.0;

/// The generator kept up when every socket sent at least this share of
/// [`RATE`] over the window: below it, the backend was not offered the
/// load, and the run's figures are not capacity figures.
const KEPT_UP: f64 = 0.95;

/// One group's part of the run.
struct GroupPlan {
    names: Vec<String>,
    /// The first agent's and the first customer's index in
    /// [`Counters::per_socket`].
    agent_base: usize,
    customer_base: usize,
    /// Customer phones this group dials (the `customer` shape), by caller number.
    callers: Vec<String>,
    phase: Duration,
    /// When the customers dial (every agent is Available by then).
    dial_at: tokio::time::Instant,
    /// Conference shape: `names` are pairs (A, B); from `pair_at` on, each
    /// A adds its B and conferences.
    pairs: bool,
    pair_at: tokio::time::Instant,
    /// The agents announce `media_legs`.
    legs: bool,
    /// `--talk turns`: each socket talks one turn of [`TURN_TICKS`] in
    /// three, at a phase of its own, and sends digital silence otherwise.
    turns: bool,
}

/// A turn of `--talk turns`: 2 s.
const TURN_TICKS: u64 = 100;

/// Where a conference pair is: 0 A has no call yet, 1 B asked to be
/// Available, 2 B added (ringing), 3 conferenced.
struct Pair {
    stage: u8,
    since: tokio::time::Instant,
}

/// Sends an op for agent `a` (behind any media bytes still pending).
fn op(a: &mut Agent, op: Op) {
    let (_, f) = a.session.request(op, server::http::wall_clock());
    let _ = send_now(&a.tx, &mut a.out.pending, &raw::text(&f));
}

/// Moves each conference pair on (called every tick).
fn step_pairs(agents: &mut [Agent], pairs: &mut [Pair]) {
    let now = tokio::time::Instant::now();
    for (p, pair) in pairs.iter_mut().enumerate() {
        let Some([a, b]) = agents.get_mut(2 * p..2 * p + 2) else {
            continue;
        };
        let waited = now - pair.since;
        match pair.stage {
            0 if a.contact.is_some() => {
                op(
                    b,
                    Op::SetAgentState {
                        state: "Available".into(),
                    },
                );
                *pair = Pair {
                    stage: 1,
                    since: now,
                };
            }
            1 if waited > Duration::from_millis(300) => {
                let endpoint = protocol::Endpoint {
                    id: format!("agent-{}", b.name),
                    kind: protocol::EndpointKind::Agent,
                    name: b.name.clone(),
                    phone_number: None,
                    agent: Some(b.name.clone()),
                    queue: None,
                };
                let contact_id = a.contact.clone().unwrap_or_default();
                op(
                    a,
                    Op::AddConnection {
                        contact_id,
                        endpoint,
                    },
                );
                *pair = Pair {
                    stage: 2,
                    since: now,
                };
            }
            2 if b.leg.is_some() => {
                let contact_id = a.contact.clone().unwrap_or_default();
                op(a, Op::Conference { contact_id });
                *pair = Pair {
                    stage: 3,
                    since: now,
                };
            }
            // Not rung yet (B was not Available in time): add again.
            2 if waited > Duration::from_secs(3) => {
                *pair = Pair {
                    stage: 1,
                    since: now,
                }
            }
            _ => {}
        }
    }
}

/// Drives `plan.names` (and its customers) on one 20 ms clock that starts
/// after `plan.phase`. Every tick: conference pairs move on and every
/// socket with a leg writes its frame; every [`READ_EVERY`] ticks every
/// socket is read (without waiting) and its text frames handled.
async fn group(
    addr: std::net::SocketAddr,
    plan: GroupPlan,
    payload: Arc<Vec<u8>>,
    silence: Arc<Vec<u8>>,
    counters: Arc<Counters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut agents = Vec::new();
    let mut agent_reads = Vec::new();
    let mut customers: Vec<Customer> = Vec::new();
    let mut customer_reads = Vec::new();
    for (k, name) in plan.names.iter().enumerate() {
        let held_back = plan.pairs && k % 2 == 1;
        if let Some(agent) = connect(addr, name, plan.legs, held_back).await {
            agents.push(agent);
            agent_reads.push(Reader::new());
        }
    }
    let dialing = tokio::time::sleep_until(plan.dial_at);
    tokio::pin!(dialing);
    let mut dialed = plan.callers.is_empty();
    tokio::time::sleep(plan.phase).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut ticks = 0u64;
    let mut pairs: Vec<Pair> = if plan.pairs {
        (0..agents.len() / 2)
            .map(|_| Pair {
                stage: 0,
                since: tokio::time::Instant::now(),
            })
            .collect()
    } else {
        Vec::new()
    };
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            () = &mut dialing, if !dialed => {
                dialed = true;
                for from in &plan.callers {
                    if let Some(c) = dial(addr, from).await {
                        customers.push(c);
                        customer_reads.push(Reader::new());
                    }
                }
            }
            due = tick.tick() => {
                let late = due.elapsed().as_millis() as usize;
                counters.tick_late_ms[late.min(LATE_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
                if plan.pairs && tokio::time::Instant::now() >= plan.pair_at {
                    step_pairs(&mut agents, &mut pairs);
                }
                let legs = agents
                    .iter_mut()
                    .enumerate()
                    .map(|(i, a)| (plan.agent_base + i, &a.tx, &mut a.out, a.leg, &mut a.seq))
                    .chain(customers.iter_mut().enumerate().map(|(i, c)| {
                        (plan.customer_base + i, &c.tx, &mut c.out, c.leg, &mut c.seq)
                    }));
                let (mut sent, mut unsent) = (0, 0);
                for (slot, tx, out, leg, seq) in legs {
                    let Some(leg) = leg else { continue };
                    let talking = !plan.turns || (ticks / TURN_TICKS + slot as u64) % 3 == 0;
                    let said = if talking { &payload } else { &silence };
                    let mut pending = std::mem::take(&mut out.pending);
                    let ok = send_now(tx, &mut pending, out.media(leg, *seq, said, talking));
                    out.pending = pending;
                    *seq = seq.wrapping_add(1);
                    if ok {
                        sent += 1;
                        if let Some(c) = counters.per_socket.get(slot) {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        unsent += 1;
                    }
                }
                counters.sent.fetch_add(sent, Ordering::Relaxed);
                counters.unsent.fetch_add(unsent, Ordering::Relaxed);
                ticks += 1;
                if ticks % READ_EVERY != 0 {
                    continue;
                }
                let mut got = 0;
                for (a, rd) in agents.iter_mut().zip(&mut agent_reads) {
                    let incoming = rd.drain(&a.tx, &mut chunk);
                    got += incoming.binary;
                    for text in incoming.texts {
                        agent_text(a, &text);
                    }
                }
                counters.agent_received.fetch_add(got, Ordering::Relaxed);
                let mut got = 0;
                for (c, rd) in customers.iter_mut().zip(&mut customer_reads) {
                    let incoming = rd.drain(&c.tx, &mut chunk);
                    got += incoming.binary;
                    for text in incoming.texts {
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        if v["type"] == "dialed" {
                            c.leg = v["leg"].as_u64().and_then(|l| u32::try_from(l).ok());
                        }
                    }
                }
                counters.customer_received.fetch_add(got, Ordering::Relaxed);
            }
        }
    }
}

/// An agent's text frame: go Available when ready, accept what rings,
/// take the media leg from the accepted contact.
fn agent_text(a: &mut Agent, text: &str) {
    let Ok(outputs) = a.session.handle_text(text, server::http::wall_clock()) else {
        return;
    };
    let mut ops = Vec::new();
    for o in outputs {
        match o {
            Output::Ready { .. } if !a.held_back => ops.push(Op::SetAgentState {
                state: "Available".into(),
            }),
            Output::Contact(ContactChange::Incoming(v)) => ops.push(Op::Accept {
                contact_id: v.contact_id,
            }),
            // The media leg comes with the accepted contact (or a later
            // update of it).
            Output::Contact(
                ContactChange::Accepted(v)
                | ContactChange::Connected(v)
                | ContactChange::Refreshed(v),
            ) => {
                if let Some(leg) = v.agent_connection().and_then(|c| c.media_leg) {
                    a.leg = Some(leg);
                    a.contact = Some(v.contact_id.clone());
                }
            }
            _ => {}
        }
    }
    for o in ops {
        op(a, o);
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

/// The one-minute load average (what else the machine was doing).
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Pins every thread of process `pid` to `cpu` with `taskset`.
fn pin(pid: u32, cpu: u32) {
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("taskset could not pin {pid} to CPU {cpu}");
        std::process::exit(2);
    }
}

/// Calls with a recording directory holding at least one party file with
/// audio pages (over 4 KiB: more than the Ogg Opus headers), and the party
/// files in all.
fn recorded(data_dir: &std::path::Path) -> (u64, u64) {
    let (mut calls, mut files) = (0, 0);
    let Ok(dirs) = std::fs::read_dir(data_dir.join("recordings")) else {
        return (0, 0);
    };
    for dir in dirs.flatten() {
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        let mut with_audio = false;
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "opus") {
                files += 1;
                with_audio |= e.metadata().is_ok_and(|m| m.len() > 4096);
            }
        }
        calls += u64::from(with_audio);
    }
    (calls, files)
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

/// The call's other side (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Prompt,
    Customer,
    Conference,
}

/// `--shape prompt|customer` (default prompt); anything else stops the run.
fn shape_arg() -> Shape {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .position(|a| a == "--shape")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
    {
        None | Some("prompt") => Shape::Prompt,
        Some("customer") => Shape::Customer,
        Some("conference") => Shape::Conference,
        Some(other) => {
            eprintln!("unknown --shape {other} (known: prompt, customer, conference)");
            std::process::exit(2);
        }
    }
}

/// A histogram of `/v1/sim/media-stats` (`key`) over the window between
/// two readings: (bucket upper bound in µs, frames).
fn window_of(before: &serde_json::Value, after: &serde_json::Value, key: &str) -> Vec<(u64, u64)> {
    let hist = |v: &serde_json::Value| -> std::collections::BTreeMap<u64, u64> {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| Some((b[0].as_u64()?, b[1].as_u64()?)))
            .collect()
    };
    let (h0, h1) = (hist(before), hist(after));
    h1.iter()
        .map(|(k, n)| (*k, n - h0.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The `q` quantile of a window histogram, ms.
fn quantile_of(window: &[(u64, u64)], q: f64) -> f64 {
    let total: u64 = window.iter().map(|(_, n)| n).sum();
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    window
        .iter()
        .find(|(_, n)| {
            seen += n;
            seen >= want
        })
        .map_or(0.0, |(k, _)| *k as f64 / 1000.0)
}

/// The two payloads every socket sends, each repeated with only its
/// sequence and timestamp rewritten: a tone packet while it talks, and a
/// silence packet otherwise. The silence is what an encoder makes once it
/// has settled on digital zeros (the tenth zero frame): the first zero
/// frame after the tone still carries the tone's tail (the encoder's
/// look-ahead and overlap), and sent over and over it decodes to a
/// steady -31 dBFS, which is a talker, not silence, for the mixer.
fn talk_and_silence() -> (Vec<u8>, Vec<u8>) {
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let tone: Vec<f32> = (0..PACKET).map(|i| 0.1 * (i as f32 * 0.06).sin()).collect();
    let payload = enc
        .encode(tone.as_slice().try_into().expect("packet"))
        .expect("encode")
        .to_vec();
    let mut silence = Vec::new();
    for _ in 0..10 {
        silence = enc.encode(&[0.0; PACKET]).expect("encode").to_vec();
    }
    (payload, silence)
}

#[tokio::main]
async fn main() {
    let calls = arg("--calls", 50);
    let seconds = arg("--seconds", 20);
    let per_group = arg("--group", 50).max(1);
    let shape = shape_arg();
    let legs = arg("--legs", 1) == 1 && shape == Shape::Conference;
    // A conference has two agents; every other shape one.
    let agents_n = match shape {
        Shape::Conference => 2 * calls,
        _ => calls,
    };
    let backend = Backend::start(agents_n, "media").await;
    let addr = backend.addr;
    let pinned = arg("--pin", 0) == 1;
    if pinned {
        pin(backend.pid(), 1);
        pin(std::process::id(), 0);
    }
    let (payload, silence) = talk_and_silence();
    let (payload, silence) = (Arc::new(payload), Arc::new(silence));
    let turns = match std::env::args()
        .skip_while(|a| a != "--talk")
        .nth(1)
        .as_deref()
    {
        None | Some("all") => false,
        Some("turns") => true,
        Some(other) => {
            eprintln!("unknown --talk {other} (known: all, turns)");
            std::process::exit(2);
        }
    };
    let customers_n = match shape {
        Shape::Prompt => 0,
        _ => calls,
    };
    let sockets = agents_n + customers_n;
    let counters = Arc::new(Counters::new(sockets as usize));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let names: Vec<String> = (0..agents_n).map(|i| format!("agent{i}")).collect();
    // Conference pairs stay in one group.
    let per_group = match shape {
        Shape::Conference => per_group + per_group % 2,
        _ => per_group,
    };
    let groups: Vec<Vec<String>> = names
        .chunks(per_group as usize)
        .map(<[String]>::to_vec)
        .collect();
    let n_groups = groups.len().max(1) as u64;
    // Every agent logged in and Available before the calls come.
    let dial_at = tokio::time::Instant::now() + Duration::from_secs(2 + agents_n / 200);
    // Every call is taken by an A agent before any B agent is Available.
    let pair_at = dial_at + Duration::from_secs(3 + calls / 100);
    let mut tasks = Vec::new();
    let mut first = 0;
    let mut agent_base = 0;
    let mut customers_so_far = 0;
    for (g, names) in groups.into_iter().enumerate() {
        let phase = Duration::from_micros(20_000 * g as u64 / n_groups);
        let callers = match shape {
            Shape::Customer => (first..first + names.len())
                .map(|i| format!("+1555{i:07}"))
                .collect(),
            Shape::Conference => (first..first + names.len() / 2)
                .map(|i| format!("+1555{i:07}"))
                .collect(),
            Shape::Prompt => Vec::new(),
        };
        let customer_base = agents_n as usize + customers_so_far;
        customers_so_far += callers.len();
        first += callers.len().max(names.len());
        let n_names = names.len();
        let plan = GroupPlan {
            names,
            agent_base,
            customer_base,
            callers,
            phase,
            dial_at,
            pairs: shape == Shape::Conference,
            pair_at,
            legs,
            turns,
        };
        agent_base += n_names;
        tasks.push(tokio::spawn(group(
            addr,
            plan,
            payload.clone(),
            silence.clone(),
            counters.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep_until(dial_at).await;
    if shape == Shape::Prompt {
        for i in 0..calls {
            let body = serde_json::json!({ "from": format!("+1555{:07}", i), "queue": "support" })
                .to_string();
            let _ = server::sim::http_request_with(
                addr,
                "POST",
                "/v1/sim/calls",
                Some(&body),
                &[switchboard_tests::sim_auth()],
            )
            .await;
        }
    }
    let settle = match shape {
        Shape::Conference => pair_at + Duration::from_secs(3 + calls / 50),
        _ => tokio::time::Instant::now() + Duration::from_secs(3 + calls / 250),
    };
    tokio::time::sleep_until(settle).await;
    let before = stats(addr).await;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (got0, cgot0, sent0) = (
        load(&counters.agent_received),
        load(&counters.customer_received),
        load(&counters.sent),
    );
    let per0 = Counters::snapshot(&counters.per_socket);
    let late0 = Counters::snapshot(&counters.tick_late_ms);
    let cpu0 = cpu_ticks(backend.pid());
    let gen0 = cpu_ticks(std::process::id());
    let unsent0 = load(&counters.unsent);
    let load0 = loadavg();
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = cpu_ticks(backend.pid()) - cpu0;
    let gen_cpu = cpu_ticks(std::process::id()) - gen0;
    let unsent = load(&counters.unsent) - unsent0;
    let wall = t0.elapsed().as_secs_f64();
    let got = load(&counters.agent_received) - got0;
    let cgot = load(&counters.customer_received) - cgot0;
    let out = load(&counters.sent) - sent0;
    let per1 = Counters::snapshot(&counters.per_socket);
    let late1 = Counters::snapshot(&counters.tick_late_ms);
    let s = stats(addr).await;
    let rss = rss_kib(backend.pid());
    let _ = stop_tx.send(true);
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    // Every frame the backend dropped: to a backed-up socket, at a full
    // mixer inbox, or at the recording writer's full inbox.
    let dropped = n(&s, "frames_dropped") + n(&s, "input_dropped") + n(&s, "recording_dropped")
        - n(&before, "frames_dropped")
        - n(&before, "input_dropped")
        - n(&before, "recording_dropped");
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
    // The same for the mixer's packets alone (canned, mixed, lone talkers').
    let mixer_window = window_of(&before, &s, "mixer_delay_buckets_us");
    let mixer_pct = |q: f64| quantile_of(&mixer_window, q);
    let mixer_total: u64 = mixer_window.iter().map(|(_, n)| n).sum();
    let load1 = loadavg();
    println!(
        "calls: {calls} bridged ({} with media), {seconds} s measured; load average {load0:.2} at the start, {load1:.2} at the end ({}); {}",
        n(&s, "calls"),
        if load0.max(load1) > 2.5 {
            "LOADED: other processes shared the two cores"
        } else {
            "mostly the benchmark's own processes"
        },
        if pinned {
            "pinned: backend on CPU 1, generator on CPU 0"
        } else {
            "not pinned (backend and generator share both cores)"
        }
    );
    println!(
        "shape {shape:?}{}: sockets sent {:.1} frames per socket per second; each agent received {:.1}, each customer {:.1} per second (50 a stream)",
        if legs { " with media_legs" } else { "" },
        out as f64 / sockets as f64 / wall,
        got as f64 / agents_n as f64 / wall,
        cgot as f64 / customers_n.max(1) as f64 / wall,
    );
    // What each socket achieved: the generator kept up only if every
    // socket that had a leg sent about 50 a second. A socket that never
    // got a leg (a call not placed) counts as 0.
    let mut rates: Vec<f64> = per1
        .iter()
        .zip(&per0)
        .map(|(b, a)| (b - a) as f64 / wall)
        .collect();
    rates.sort_by(f64::total_cmp);
    let late: Vec<u64> = late1.iter().zip(&late0).map(|(b, a)| b - a).collect();
    let ticks: u64 = late.iter().sum();
    let late_q = |q: f64| {
        let want = (ticks as f64 * q).ceil() as u64;
        let mut seen = 0;
        late.iter()
            .position(|n| {
                seen += n;
                seen >= want
            })
            .unwrap_or(0)
    };
    let kept_up = rates.first().is_some_and(|r| *r >= RATE * KEPT_UP);
    println!(
        "generator: frames sent per socket per second min {:.1}, p1 {:.1}, p50 {:.1}, max {:.1} (of {RATE}); its 20 ms ticks late p50 {} ms, p99 {} ms over {ticks} ticks",
        quantile(&rates, 0.0),
        quantile(&rates, 0.01),
        quantile(&rates, 0.5),
        quantile(&rates, 1.0),
        late_q(0.5),
        late_q(0.99),
    );
    println!(
        "generator kept up: {} (every socket at least {:.0} % of {RATE} a second){}",
        if kept_up { "yes" } else { "NO" },
        KEPT_UP * 100.0,
        if kept_up {
            ""
        } else {
            ": the backend was not offered the load, so the figures below are not capacity figures"
        }
    );
    // The generator's own cost, per frame it wrote or read.
    let gen_frames = out + got + cgot;
    println!(
        "generator CPU {:.0} % of one core ({:.1} µs per frame sent or received, {gen_frames} frames); frames it could not write (backend not reading): {unsent}",
        gen_cpu as f64 / wall,
        gen_cpu as f64 * 10_000.0 / gen_frames.max(1) as f64,
    );
    // CPU per frame the backend wrote: comparable across runs on a
    // loaded machine, where the rates are not.
    let written = n(&s, "frames_sent") - n(&before, "frames_sent");
    let read = n(&s, "frames_received") - n(&before, "frames_received");
    println!(
        "backend CPU {cpu_pct:.0} % of one core ({:.1} µs per frame written, {written} written, {read} read), RSS {} MiB",
        cpu as f64 * 10_000.0 / written.max(1) as f64,
        rss / 1024
    );
    // The same CPU per frame op (a read or a write), the figure the
    // forwarding path's work is compared by.
    println!(
        "backend CPU per frame op (read or written): {:.2} µs",
        cpu as f64 * 10_000.0 / (written + read).max(1) as f64
    );
    let delta = |k: &str| n(&s, k).saturating_sub(n(&before, k));
    println!(
        "backend frames dropped in the window: {dropped} (to backed-up sockets {}, at the mixer's inbox {}, at the recording writer's inbox {}); forwarded in all: {}",
        delta("frames_dropped"),
        delta("input_dropped"),
        delta("recording_dropped"),
        n(&s, "frames_forwarded")
    );
    println!(
        "delay inside the backend (read or tick to write), measured window: p50 {w50:.1} ms, p99 {w99:.1} ms, max {wmax:.1} ms (100 µs buckets) over {total} frames"
    );
    println!(
        "of which the mixer's packets (from its tick's start): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {mixer_total} frames; mixes encoded {}, sent without an encode (a lone talker's packets or silence) {}{}",
        mixer_pct(0.5),
        mixer_pct(0.99),
        mixer_pct(1.0),
        n(&s, "mix_encodes") - n(&before, "mix_encodes"),
        n(&s, "mix_encodes_saved") - n(&before, "mix_encodes_saved"),
        if turns { " (--talk turns)" } else { "" },
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
    let (recorded, party_files) = recorded(&backend.dir);
    println!(
        "recorded: {recorded} of {calls} calls have party files with audio ({party_files} party files)"
    );
    let goal = w99 < 10.0 && dropped == 0 && kept_up && recorded >= calls;
    println!(
        "goal (generator kept up, p99 < 10 ms, 0 dropped, every call recorded): {}",
        if goal { "MET" } else { "not met" }
    );
    println!(
        "| {calls} | {:.1} / {:.1} | {:.1} | {} | {w50:.1} ms | {w99:.1} ms | {wmax:.1} ms | {dropped} | {cpu_pct:.0} % | {} MiB | {:.1} ms | {} of {} |",
        got as f64 / agents_n as f64 / wall,
        cgot as f64 / customers_n.max(1) as f64 / wall,
        quantile(&rates, 0.0),
        if kept_up { "yes" } else { "no" },
        rss / 1024,
        n(&s, "p99_tick_us") as f64 / 1000.0,
        n(&s, "calls_idle"),
        n(&s, "calls"),
    );
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::codec::Decoder;

    /// `--talk turns` sends digital silence between turns: decoded as one
    /// stream after a turn of talk, it is silent (under -60 dBFS, below
    /// the mixer's -55 dBFS speech gate) within 160 ms (the decoder's
    /// fade), and the talk is not. The first zero frame, which the
    /// generator sent before, stays at -31 dBFS however often it is
    /// repeated.
    #[test]
    fn the_silence_between_turns_decodes_to_silence_and_the_talk_does_not() {
        let (talk, silence) = talk_and_silence();
        let mut dec = Decoder::new().expect("decoder");
        let mut pcm = [0.0f32; PACKET];
        let db = |pcm: &[f32; PACKET]| {
            let power = pcm.iter().map(|x| x * x).sum::<f32>() / PACKET as f32;
            10.0 * power.max(1e-12).log10()
        };
        for k in 0..50 {
            dec.decode(&talk, &mut pcm).expect("decode");
            if k >= 2 {
                assert!(db(&pcm) > -30.0, "talk packet {k}: {:.1} dBFS", db(&pcm));
            }
        }
        for k in 0..50 {
            dec.decode(&silence, &mut pcm).expect("decode");
            if k >= 8 {
                assert!(db(&pcm) < -60.0, "silence packet {k}: {:.1} dBFS", db(&pcm));
            }
        }
    }
}
