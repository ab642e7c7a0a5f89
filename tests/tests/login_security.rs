//! Login security over real sockets, written from issue 10's findings:
//! passwords are Argon2id hashes and plain text needs the development flag;
//! "300 wrong passwords in 0.2 s, then the right one accepted at once" no
//! longer happens; failures are throttled per user and per address with a
//! growing delay and one generic message; logout revokes the token for
//! sockets, `hello` and HTTP; the store keeps only token hashes; and a
//! token's expiry holds on an open socket unless the client refreshes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use protocol::error::ErrorCode;
use protocol::wire::{Op, OpResult};
use server::config::Config;
use streams_sdk::Output;
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AGENTS: &str = include_str!("../config/agents.toml");

/// The shared test agents (hashed passwords) with this `[server]` table body.
fn config(dir: &std::path::Path, server: &str) -> Config {
    let text =
        format!("{AGENTS}\n[server]\nlisten = \"127.0.0.1:0\"\nsimulator = false\n{server}\n");
    let mut cfg = Config::parse(&text, "login-test").expect("config");
    cfg.data_dir = dir.to_path_buf();
    cfg.public_dir = dir.join("public");
    cfg
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    json: serde_json::Value,
}

/// A raw HTTP/1.1 request from a chosen loopback source address (the
/// backend throttles per client address; 127.0.0.0/8 is all loopback).
async fn request(
    addr: SocketAddr,
    from: Ipv4Addr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(from), 0))
        .expect("bind a loopback source address");
    let mut stream = socket.connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().parse().ok())
            .flatten()
    });
    Answer {
        status,
        retry_after,
        json: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    }
}

const HOME: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

async fn try_login(addr: SocketAddr, from: Ipv4Addr, user: &str, password: &str) -> Answer {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    request(addr, from, "POST", "/v1/login", None, Some(&body)).await
}

#[test]
fn plain_text_passwords_are_refused_without_the_development_flag() {
    let plain = AGENTS.replacen(
        &AGENTS
            .lines()
            .find(|l| l.starts_with("password = "))
            .expect("a password line")
            .to_owned(),
        "password = \"alice-pass\"",
        1,
    );
    let text = format!("{plain}\n[server]\nlisten = \"127.0.0.1:0\"\n");
    let err = Config::parse(&text, "agents.toml").expect_err("plain text refused");
    let line = text
        .lines()
        .position(|l| l == "password = \"alice-pass\"")
        .expect("present")
        + 1;
    assert_eq!(err.line, Some(line), "{err}");
    assert!(err.message.contains("agent `alice`"), "{err}");
    assert!(err.message.contains("dev_plaintext_passwords"), "{err}");
    let dev = format!("{text}dev_plaintext_passwords = true\n");
    let cfg = Config::parse(&dev, "agents.toml").expect("allowed in development");
    assert!(cfg.dev_plaintext_passwords);
    // The shared test agents carry real hashes and need no flag.
    let hashed = Config::parse(
        &format!("{AGENTS}\n[server]\nlisten = \"127.0.0.1:0\"\n"),
        "t",
    )
    .expect("hashed agents");
    assert!(!hashed.dev_plaintext_passwords);
    assert!(AGENTS.contains("password = \"$argon2id$"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashed_password_logs_in_and_failures_share_one_message() {
    let dir = temp_dir("login-hash");
    let backend = server::start(config(&dir, "")).await.expect("start");
    let ok = try_login(backend.addr, HOME, "alice", "alice-pass").await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    let token = ok.json["token"].as_str().expect("token");
    let mut alice = Client::connect(backend.addr, token).await;
    assert!(matches!(alice.ok(Op::Ping).await, OpResult::Pong));

    let wrong = try_login(backend.addr, HOME, "alice", "alice-pasS").await;
    let unknown = try_login(backend.addr, HOME, "mallory", "alice-pass").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(
        wrong.json, unknown.json,
        "one message, not telling who exists"
    );
    assert_eq!(wrong.json["code"], "auth_failed");

    // A development configuration with plain text still logs in.
    let plain = AGENTS.replace(
        AGENTS
            .lines()
            .find(|l| l.starts_with("password = "))
            .expect("a password line"),
        "password = \"alice-pass\"",
    );
    let text =
        format!("{plain}\n[server]\nlisten = \"127.0.0.1:0\"\ndev_plaintext_passwords = true\n");
    let mut cfg = Config::parse(&text, "dev").expect("dev config");
    cfg.data_dir = temp_dir("login-dev");
    let dev = server::start(cfg).await.expect("start dev");
    assert_eq!(
        try_login(dev.addr, HOME, "alice", "alice-pass")
            .await
            .status,
        200
    );
    assert_eq!(try_login(dev.addr, HOME, "alice", "nope").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_300_wrong_passwords_then_the_right_one_is_refused() {
    // The probe, with the default allowances; the first delay is
    // longer than the default 1 s so a slow machine's burst fits in it.
    let dir = temp_dir("login-probe");
    let backend = server::start(config(&dir, "login_backoff_base_ms = 10000"))
        .await
        .expect("start");
    let addr = backend.addr;
    let started = Instant::now();
    let guesses: Vec<_> = (0..300)
        .map(|i| {
            tokio::spawn(async move { try_login(addr, HOME, "alice", &format!("guess{i}")).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.expect("task").status);
    }
    let burst = started.elapsed();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked + throttled, 300, "{statuses:?}");
    // Five free failures and the one that starts the delay are checked;
    // the rest never reach the password hash.
    assert_eq!(checked, 6, "password checks during the burst ({burst:?})");

    let right = try_login(addr, HOME, "alice", "alice-pass").await;
    assert_eq!(
        right.status, 429,
        "the right password right after the burst is refused"
    );
    assert_eq!(right.json["code"], "login_throttled");
    let generic = try_login(addr, HOME, "alice", "wrong").await;
    assert_eq!(right.json["message"], generic.json["message"]);
    assert!(right.retry_after.is_some_and(|s| s >= 1), "{right:?}");

    // Another user, and another address, are not locked out by it.
    assert_eq!(try_login(addr, HOME, "bob", "bob-pass").await.status, 200);
    assert_eq!(
        try_login(addr, ELSEWHERE, "bob", "bob-pass").await.status,
        200
    );
    eprintln!("300 guesses took {burst:?}; {checked} checked, {throttled} throttled");
}

/// How long `user` stays throttled from now: polls with a wrong password
/// (a refused attempt is not counted) until one is checked again.
async fn blocked_for(addr: SocketAddr, user: &str) -> Duration {
    let start = Instant::now();
    for _ in 0..400 {
        let a = try_login(addr, HOME, user, "still-wrong").await;
        match a.status {
            429 => tokio::time::sleep(Duration::from_millis(20)).await,
            401 => return start.elapsed(),
            other => panic!("unexpected {other}: {:?}", a.json),
        }
    }
    panic!("still throttled after 400 polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_throttled_with_growing_delays_and_recover() {
    let dir = temp_dir("login-backoff");
    let backend = server::start(config(
        &dir,
        "login_free_failures_per_user = 2\nlogin_free_failures_per_address = 50\n\
         login_backoff_base_ms = 300\nlogin_backoff_max_s = 5\nlogin_failure_window_s = 60",
    ))
    .await
    .expect("start");
    let addr = backend.addr;
    for _ in 0..2 {
        assert_eq!(try_login(addr, HOME, "alice", "wrong").await.status, 401);
    }
    // The third failure is checked and starts a 300 ms delay.
    let third = try_login(addr, HOME, "alice", "wrong").await;
    assert_eq!(third.status, 401);
    let during = try_login(addr, HOME, "alice", "alice-pass").await;
    assert_eq!(
        during.status, 429,
        "the right password is refused while throttled"
    );
    assert_eq!(
        during.json["message"], third.json["message"],
        "one generic message"
    );
    assert_eq!(during.retry_after, Some(1), "300 ms rounds up to 1 s");
    // Bob, from the same address, is unaffected.
    assert_eq!(try_login(addr, HOME, "bob", "bob-pass").await.status, 200);

    // Each checked failure doubles the delay: ~300 ms, then ~600 ms, ~1200 ms.
    let first = blocked_for(addr, "alice").await;
    let second = blocked_for(addr, "alice").await;
    let third = blocked_for(addr, "alice").await;
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(
        second >= first + Duration::from_millis(200),
        "{first:?} then {second:?}"
    );
    assert!(
        third >= second + Duration::from_millis(400),
        "{second:?} then {third:?}"
    );

    // After the delay the right password gets in, and the count starts over.
    let mut waited = 0;
    let ok = loop {
        let a = try_login(addr, HOME, "alice", "alice-pass").await;
        if a.status != 429 || waited > 200 {
            break a;
        }
        waited += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    assert_eq!(try_login(addr, HOME, "alice", "wrong").await.status, 401);
    assert_eq!(
        try_login(addr, HOME, "alice", "alice-pass").await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_spraying_user_names_is_throttled_and_others_are_not() {
    let dir = temp_dir("login-spray");
    let backend = server::start(config(
        &dir,
        "login_free_failures_per_user = 5\nlogin_free_failures_per_address = 4\n\
         login_backoff_base_ms = 5000\nlogin_backoff_max_s = 60",
    ))
    .await
    .expect("start");
    let addr = backend.addr;
    for i in 0..5 {
        let a = try_login(addr, HOME, &format!("user{i}"), "pw").await;
        assert_eq!(a.status, 401, "attempt {i}");
    }
    let blocked = try_login(addr, HOME, "bob", "bob-pass").await;
    assert_eq!(
        blocked.status, 429,
        "this address is throttled, whoever it names"
    );
    assert_eq!(blocked.retry_after, Some(5));
    let other = try_login(addr, ELSEWHERE, "bob", "bob-pass").await;
    assert_eq!(other.status, 200, "another address is not");
}

/// Reads frames until the server closes the socket; returns what the
/// session made of them.
async fn until_closed(c: &mut Client) -> Vec<Output> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        match c.try_pump().await {
            Some(out) => seen.extend(out),
            None => return seen,
        }
    }
    panic!("the socket stayed open: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_login_for_sockets_hello_and_http() {
    let dir = temp_dir("login-logout");
    let backend = server::start(config(&dir, "")).await.expect("start");
    let addr = backend.addr;
    let token = login(addr, "alice", "alice-pass").await;
    let other_login = login(addr, "alice", "alice-pass").await;
    let refreshed = request(addr, HOME, "POST", "/v1/token/refresh", Some(&token), None).await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json);
    let refreshed = refreshed.json["token"].as_str().expect("token").to_owned();
    assert_ne!(refreshed, token);
    let mut alice = Client::connect(addr, &token).await;
    let record = "/v1/contacts/c-0000000000000000";
    assert_eq!(
        request(addr, HOME, "GET", record, Some(&token), None)
            .await
            .status,
        404,
        "the token works for HTTP before logout"
    );

    let out = request(addr, HOME, "POST", "/v1/logout", Some(&token), None).await;
    assert_eq!(out.status, 204, "{:?}", out.json);

    let seen = until_closed(&mut alice).await;
    assert!(
        seen.iter()
            .any(|o| matches!(o, Output::SessionEnded(e) if e.code == ErrorCode::TokenRevoked)),
        "the open socket is told why: {seen:?}"
    );
    for t in [&token, &refreshed] {
        let http = request(addr, HOME, "GET", record, Some(t), None).await;
        assert_eq!(http.status, 401, "HTTP with a revoked token");
        let mut again = Client::open(addr, t).await;
        let hello = again.session.hello();
        again.send_text(&hello).await;
        assert_eq!(again.next_server_error().await.code, ErrorCode::AuthFailed);
    }
    assert_eq!(
        request(addr, HOME, "POST", "/v1/logout", Some(&token), None)
            .await
            .status,
        401,
        "logging out twice"
    );
    // Another login of the same agent is not affected.
    let mut second = Client::connect(addr, &other_login).await;
    assert!(matches!(second.ok(Op::Ping).await, OpResult::Pong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_only_token_hashes() {
    let dir = temp_dir("login-store");
    let backend = server::start(config(&dir, "")).await.expect("start");
    let token = login(backend.addr, "alice", "alice-pass").await;
    let _alice = Client::connect(backend.addr, &token).await;
    let mut bytes = Vec::new();
    for name in ["switchboard.sqlite3", "switchboard.sqlite3-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            bytes.extend(b);
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains(&server::auth::token_hash(&token)),
        "the hash is stored (so these are the right files)"
    );
    assert!(!contains(&token), "the token itself is not");
    assert!(!contains(&token[2..]), "nor its random part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_socket_is_warned_then_closed_at_expiry() {
    let dir = temp_dir("login-expiry");
    let backend = server::start(config(&dir, "token_ttl_s = 2\ntoken_warning_s = 1"))
        .await
        .expect("start");
    let answer = try_login(backend.addr, HOME, "alice", "alice-pass").await;
    let token = answer.json["token"].as_str().expect("token");
    let expires_at = answer.json["expires_at"].as_u64().expect("expiry");
    let mut alice = Client::connect(backend.addr, token).await;
    assert!(matches!(alice.ok(Op::Ping).await, OpResult::Pong));
    // This client never sends the refresh the session offers.
    let seen = until_closed(&mut alice).await;
    let closed_at = now().0;
    let warned = seen.iter().find_map(|o| match o {
        Output::TokenExpiring { expires_at, .. } => Some(expires_at.0),
        _ => None,
    });
    assert_eq!(
        warned,
        Some(expires_at),
        "warned with the token's expiry: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|o| matches!(o, Output::SessionEnded(e) if e.code == ErrorCode::SessionExpired)),
        "closed with a typed reason: {seen:?}"
    );
    assert!(closed_at >= expires_at, "not before the expiry");
    assert!(
        closed_at < expires_at + 2_000,
        "soon after it: {}",
        closed_at - expires_at
    );
    let warn_index = seen
        .iter()
        .position(|o| matches!(o, Output::TokenExpiring { .. }));
    let end_index = seen
        .iter()
        .position(|o| matches!(o, Output::SessionEnded(_)));
    assert!(warn_index < end_index, "warning first: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_keeps_the_socket_past_the_original_expiry() {
    let dir = temp_dir("login-refresh");
    let backend = server::start(config(&dir, "token_ttl_s = 2\ntoken_warning_s = 1"))
        .await
        .expect("start");
    let answer = try_login(backend.addr, HOME, "alice", "alice-pass").await;
    let token = answer.json["token"].as_str().expect("token").to_owned();
    let first_expiry = answer.json["expires_at"].as_u64().expect("expiry");
    let mut alice = Client::connect(backend.addr, &token).await;
    alice.set_available().await;
    // Do what the CCP does: send the refresh the session offers.
    let mut new_token = None;
    for _ in 0..50 {
        for o in alice.pump().await {
            match o {
                Output::TokenExpiring {
                    refresh: Some(frame),
                    ..
                } => alice.send_text(&frame).await,
                Output::TokenRefreshed { token, expires_at } => {
                    new_token = Some((token, expires_at.0));
                }
                _ => {}
            }
        }
        if new_token.is_some() {
            break;
        }
    }
    let (new_token, new_expiry) = new_token.expect("refreshed");
    assert_ne!(new_token, token);
    assert!(new_expiry > first_expiry, "{new_expiry} > {first_expiry}");
    assert_eq!(
        alice.session.token(),
        new_token,
        "the next hello uses the new token"
    );

    // Past the first token's expiry, the socket still works.
    while now().0 < first_expiry + 300 {
        assert!(matches!(alice.ok(Op::Ping).await, OpResult::Pong));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(matches!(
        alice.ok(Op::GetAgentState).await,
        OpResult::AgentState(_)
    ));
    assert!(
        !alice
            .log
            .iter()
            .any(|o| matches!(o, Output::SessionEnded(_))),
        "{:?}",
        alice.log
    );
    // The new token opens a socket; the first one has expired.
    let mut again = Client::connect(backend.addr, &new_token).await;
    assert!(matches!(again.ok(Op::Ping).await, OpResult::Pong));
    let mut old = Client::open(backend.addr, &token).await;
    let hello = old.session.hello();
    old.send_text(&hello).await;
    assert_eq!(old.next_server_error().await.code, ErrorCode::AuthFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_name_takes_as_long_as_a_wrong_password() {
    // Real cost parameters (the `hash-password` defaults), so the hash
    // dominates the time; without the dummy check an unknown name would be
    // refused in microseconds and give itself away.
    let phc = server::auth::password::hash_password("alice-pass").expect("hash");
    let hashed = AGENTS
        .lines()
        .find(|l| l.starts_with("password = "))
        .expect("a password line");
    let agents = AGENTS.replacen(hashed, &format!("password = \"{phc}\""), 1);
    let text = format!(
        "{agents}\n[server]\nlisten = \"127.0.0.1:0\"\n\
         login_free_failures_per_user = 1000\nlogin_free_failures_per_address = 1000\n"
    );
    let mut cfg = Config::parse(&text, "timing").expect("config");
    cfg.data_dir = temp_dir("login-timing");
    let backend = server::start(cfg).await.expect("start");
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..8 {
        let t = Instant::now();
        assert_eq!(
            try_login(backend.addr, HOME, "alice", &format!("no{i}"))
                .await
                .status,
            401
        );
        known.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            try_login(backend.addr, HOME, &format!("nobody{i}"), "x")
                .await
                .status,
            401
        );
        unknown.push(t.elapsed());
    }
    known.sort();
    unknown.sort();
    // The fastest of each: on a shared, loaded machine the median swings by
    // 2x between two runs of the same code, while the minimum is the hash's
    // own cost. Without the dummy check the unknown name's minimum would be
    // microseconds against the known one's tens of milliseconds.
    let (k, u) = (known[0].as_secs_f64(), unknown[0].as_secs_f64());
    eprintln!("fastest wrong password {k:.4} s, fastest unknown user {u:.4} s");
    assert!(
        u > k * 0.5 && u < k * 2.0,
        "known {known:?} unknown {unknown:?}"
    );
}
