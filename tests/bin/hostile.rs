//! Hostile-client benchmark (issue 10): a release backend as its own
//! process, well-behaved agents pinging it every 50 ms, and in turn N
//! hostile clients that
//!
//! - `flood`: open sockets and write garbage frames as fast as the socket
//!   takes them, never reading, reconnecting when closed;
//! - `big`: announce 15 MiB frames and start sending them;
//! - `hold`: hold unfinished frames just under the transport limit (the
//!   most a socket before `hello` can make the server buffer);
//! - `noread`: log in as agents and request snapshots within the rate
//!   limit without ever reading the answers.
//!
//! For each it reports the backend's resident memory above idle (peak, and
//! after the attack) and the other agents' ping round trip (p50, p99, max).
//! Every hostile client is admitted unless `--per-ip` says otherwise (the
//! worst case: N attackers on N addresses), and the per-address penalty
//! for repeated abuse is off unless `--penalty N` sets
//! `policy_closes_per_minute` (it would carry over from one attack to the
//! next; measure one attack with `--only MODE`). The attackers run in a
//! child process at `nice` 19 (`--nice`), standing in for machines of
//! their own.
//!
//! `cargo xtask bench hostile --agents 20 --hostile 200 --noread 20 --seconds 10`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchboard_tests::bench::{arg, rss_kib, Backend};
use switchboard_tests::raw;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Counters {
    sockets: AtomicU64,
    refused: AtomicU64,
    closed: AtomicU64,
    bytes: AtomicU64,
}

async fn token(addr: SocketAddr, user: &str) -> Option<String> {
    let body = serde_json::json!({ "username": user, "password": "pw" }).to_string();
    let (status, text) = server::sim::http_request(addr, "POST", "/v1/login", Some(&body))
        .await
        .ok()?;
    (status == 200).then_some(())?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("token")?
        .as_str()
        .map(String::from)
}

fn hello(token: &str) -> String {
    serde_json::json!({ "type": "hello", "versions": [1], "token": token }).to_string()
}

/// A well-behaved agent: pings every 50 ms and records each round trip
/// while `measure` is set.
async fn agent(
    addr: SocketAddr,
    name: String,
    latencies: Arc<Mutex<Vec<u64>>>,
    measure: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) {
    let Some(token) = token(addr, &name).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Ok((mut ws, _)) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), None, true)
            .await
    else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if ws.send(Message::Text(hello(&token).into())).await.is_err() {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        id += 1;
        let req = serde_json::json!({ "type": "request", "id": id, "op": "ping" }).to_string();
        let sent = Instant::now();
        if ws.send(Message::Text(req.into())).await.is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let want = format!("\"id\":{id},");
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(&want) => break,
                Ok(Some(Ok(_))) => {}
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        if measure.load(Ordering::Relaxed) {
            let us = sent.elapsed().as_micros() as u64;
            latencies.lock().map(|mut l| l.push(us)).ok();
        }
    }
}

/// One hostile client of kind `mode`, reconnecting until `stop`.
async fn attacker(
    addr: SocketAddr,
    mode: &'static str,
    user: String,
    max_frame: u64,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let garbage: Vec<u8> = (0..64)
        .flat_map(|i| raw::text(&format!("garbage {i}")))
        .collect();
    let token = if mode == "noread" {
        token(addr, &user).await
    } else {
        None
    };
    while !stop.load(Ordering::Relaxed) {
        let tcp = if mode == "noread" {
            let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
                return;
            };
            let _ = sock.set_recv_buffer_size(4096);
            match sock.connect(addr).await {
                Ok(tcp) => raw::upgrade_on(tcp, addr, "/v1/ws").await,
                Err(e) => Err(raw::UpgradeError::Io(e)),
            }
        } else {
            raw::upgrade(addr, "/v1/ws").await
        };
        let mut tcp = match tcp {
            Ok(t) => t,
            Err(_) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        c.sockets.fetch_add(1, Ordering::Relaxed);
        match mode {
            "flood" => {
                while !stop.load(Ordering::Relaxed) {
                    if tcp.write_all(&garbage).await.is_err() {
                        break;
                    }
                    c.bytes.fetch_add(garbage.len() as u64, Ordering::Relaxed);
                }
            }
            "big" | "hold" => {
                let (len, send) = if mode == "big" {
                    (15u64 << 20, 256usize << 10)
                } else {
                    (max_frame - 64, (max_frame - 4096) as usize)
                };
                let mut ok = tcp.write_all(&raw::header(0x1, len)).await.is_ok();
                let piece = vec![b'x'; 16 << 10];
                let mut sent = 0;
                while ok && sent < send {
                    ok = tcp.write_all(&piece).await.is_ok();
                    sent += piece.len();
                    c.bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
                // Hold it (never finishing) until the server closes or the phase ends.
                while !stop.load(Ordering::Relaxed) {
                    let (code, _) =
                        raw::read_until_close(&mut tcp, Duration::from_millis(200)).await;
                    if code.is_some() {
                        break;
                    }
                    if tcp.peer_addr().is_err() {
                        break;
                    }
                    let mut probe = [0u8; 1];
                    if let Ok(0) = tcp.try_read(&mut probe) {
                        break;
                    }
                }
            }
            "noread" => {
                let Some(token) = &token else { return };
                if tcp.write_all(&raw::text(&hello(token))).await.is_err() {
                    continue;
                }
                let mut tick = tokio::time::interval(Duration::from_millis(25));
                let mut id = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    id += 1;
                    let req =
                        serde_json::json!({ "type": "request", "id": id, "op": "get_snapshot" })
                            .to_string();
                    // A write that does not complete in a second: the server
                    // has stopped reading us (it closed the socket).
                    match tokio::time::timeout(
                        Duration::from_secs(1),
                        tcp.write_all(&raw::text(&req)),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                }
            }
            _ => return,
        }
        c.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU time the process has used (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which ends with ')').
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// `--name VALUE` as a string.
fn sarg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The child process: `n` attackers of one kind for `seconds`, then
/// prints "sockets refused".
async fn attack(mode: &'static str, addr: SocketAddr) {
    let n = arg("--n", 200);
    let first = arg("--first", 0);
    let seconds = arg("--seconds", 10);
    let max_frame = 65_536 + 4_096;
    let c = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(attacker(
                addr,
                mode,
                format!("agent{}", first + i),
                max_frame,
                c.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    println!(
        "{} {}",
        c.sockets.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed)
    );
}

#[tokio::main]
async fn main() {
    if let (Some(mode), Some(addr)) = (sarg("--attack"), sarg("--addr")) {
        let mode = ["flood", "big", "hold", "noread"]
            .into_iter()
            .find(|m| *m == mode)
            .expect("--attack flood|big|hold|noread");
        attack(mode, addr.parse().expect("--addr")).await;
        return;
    }
    let nice = arg("--nice", 19);
    let agents = arg("--agents", 20);
    let hostile = arg("--hostile", 200);
    let noread = arg("--noread", 20);
    let seconds = arg("--seconds", 10);
    let per_ip = arg("--per-ip", hostile + noread + 16);
    let penalty = arg("--penalty", 1_000_000);
    let only = sarg("--only");
    let extra = format!(
        "[limits]\nmax_pre_hello_per_ip = {per_ip}\npolicy_closes_per_minute = {penalty}\n"
    );
    let backend = Backend::start_with(agents + noread, "hostile", &extra).await;
    let (addr, pid) = (backend.addr, backend.pid());

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let measure = Arc::new(AtomicBool::new(false));
    let stop_agents = Arc::new(AtomicBool::new(false));
    let agent_errors = Arc::new(AtomicU64::new(0));
    // The well-behaved agents get a runtime of their own, so the attackers'
    // tasks in this process do not delay their measurements.
    let agents_thread = {
        let (latencies, measure, stop, errors) = (
            latencies.clone(),
            measure.clone(),
            stop_agents.clone(),
            agent_errors.clone(),
        );
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let tasks: Vec<_> = (0..agents)
                    .map(|i| {
                        tokio::spawn(agent(
                            addr,
                            format!("agent{i}"),
                            latencies.clone(),
                            measure.clone(),
                            stop.clone(),
                            errors.clone(),
                        ))
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid);
    // Baseline round trips with nobody attacking.
    measure.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rows = Vec::new();
    let mut report = |mode: &str, peak: u64, after: u64, cpu: f64, c: &Counters| {
        let mut lat = latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        lat.sort_unstable();
        let row = format!(
            "| {mode} | {} | {:.1} | {:.1} | {:.0}% | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            if mode == "none" {
                0
            } else {
                hostile_count(mode, hostile, noread)
            },
            peak.saturating_sub(idle) as f64 / 1024.0,
            after.saturating_sub(idle) as f64 / 1024.0,
            cpu,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
            c.sockets.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            lat.len(),
        );
        println!("{row}");
        rows.push(row);
    };
    let cpu0 = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base_cpu = (cpu_ticks(pid) - cpu0) as f64 / 2.0;
    report(
        "none",
        rss_kib(pid),
        rss_kib(pid),
        base_cpu,
        &Counters::default(),
    );

    let exe = std::env::current_exe().expect("exe");
    for mode in ["flood", "big", "hold", "noread"] {
        if only.as_deref().is_some_and(|o| o != mode) {
            continue;
        }
        let n = hostile_count(mode, hostile, noread);
        // The attackers run in a child process at low priority: on this
        // one machine they would otherwise take the CPU the backend and
        // the agents need, which a remote attacker does not.
        let child = std::process::Command::new("nice")
            .args(["-n", &nice.to_string()])
            .arg(&exe)
            .args(["--attack", mode, "--addr", &addr.to_string()])
            .args(["--n", &n.to_string(), "--first", &agents.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the attackers");
        let start = Instant::now();
        let cpu0 = cpu_ticks(pid);
        let mut peak = rss_kib(pid);
        while start.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(rss_kib(pid));
        }
        let cpu = (cpu_ticks(pid) - cpu0) as f64 / start.elapsed().as_secs_f64();
        measure.store(false, Ordering::Relaxed);
        let out = child.wait_with_output().expect("attackers");
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let c = Counters::default();
        c.sockets
            .store(nums.first().copied().unwrap_or(0), Ordering::Relaxed);
        c.refused
            .store(nums.get(1).copied().unwrap_or(0), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid);
        report(mode, peak, after, cpu, &c);
        measure.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop_agents.store(true, Ordering::Relaxed);
    let _ = agents_thread.join();
    println!();
    println!(
        "backend idle RSS: {} MiB ({agents} agents connected)",
        idle / 1024
    );
    println!(
        "well-behaved agent errors: {}",
        agent_errors.load(Ordering::Relaxed)
    );
    println!("| attack | hostile clients | peak RSS above idle, MiB | 2 s after, MiB | backend CPU | ping p50 ms | p99 ms | max ms | hostile sockets opened | refused (429) | pings |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
    drop(backend);
}

fn hostile_count(mode: &str, hostile: u64, noread: u64) -> u64 {
    if mode == "noread" {
        noread
    } else {
        hostile
    }
}
