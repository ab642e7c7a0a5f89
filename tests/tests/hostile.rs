//! Hostile clients, one test per bound of issue 10 (docs/protocol.md
//! section 1, "Limits"): each asserts the typed error or the close the
//! contract promises, and that another agent keeps working meanwhile.
//! Loopback only, bounded loops, timeouts shortened through `[limits]` so
//! each test takes about a second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::wire::{Op, OpResult};
use server::config::Config;
use streams_sdk::{ContactChange, Output, Session};
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(
    dir_name: &str,
    tune: impl FnOnce(&mut Config),
) -> (server::Running, std::path::PathBuf) {
    let dir = temp_dir(dir_name);
    let mut cfg = test_config(&dir);
    tune(&mut cfg);
    (server::start(cfg).await.expect("start"), dir)
}

/// A raw WebSocket (no session): what a hostile client holds.
async fn raw(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}{path}"), None, true)
            .await
            .expect("ws connect");
    ws
}

/// What a raw socket received until it was closed.
#[derive(Debug, Default)]
struct Received {
    texts: Vec<serde_json::Value>,
    close: Option<u16>,
    /// The stream ended (close frame, EOF or reset).
    ended: bool,
}

impl Received {
    fn codes(&self) -> Vec<String> {
        self.texts
            .iter()
            .filter_map(|t| {
                t["code"]
                    .as_str()
                    .or(t["error"]["code"].as_str())
                    .map(String::from)
            })
            .collect()
    }
}

/// Reads until the socket closes or `within` passes.
async fn read_until_closed(ws: &mut Ws, within: Duration) -> Received {
    let mut r = Received::default();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return r,
            Ok(Some(Ok(Message::Text(t)))) => {
                r.texts
                    .push(serde_json::from_str(t.as_str()).unwrap_or(serde_json::Value::Null));
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                r.close = frame.map(|f| u16::from(f.code));
                r.ended = true;
                return r;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => {
                r.ended = true;
                return r;
            }
        }
    }
}

fn hello(token: &str) -> String {
    serde_json::json!({ "type": "hello", "versions": [1], "token": token }).to_string()
}

fn request(id: u64, op: &str) -> String {
    serde_json::json!({ "type": "request", "id": id, "op": op }).to_string()
}

/// Another agent keeps working: a ping answers promptly.
async fn still_works(c: &mut Client) {
    let t = Instant::now();
    assert_eq!(c.ok(Op::Ping).await, OpResult::Pong);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "ping took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_hello_gets_a_few_errors_then_a_close() {
    let (running, dir) = start("hostile-garbage", |c| c.limits.policy_closes_per_minute = 2).await;
    let addr = running.addr;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    let cap = running.state.cfg.limits.pre_hello_errors as usize;

    let mut ws = raw(addr, "/v1/ws").await;
    // A bounded flood, never reading while sending: once the server has
    // closed, sends fail and the flood stops.
    let mut sent = 0;
    for i in 0..2_000 {
        if ws
            .send(Message::Text(format!("garbage {i}").into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let r = read_until_closed(&mut ws, WAIT).await;
    assert!(r.ended, "the socket was closed");
    assert_eq!(r.close, Some(1008), "policy close: {r:?}");
    let codes = r.codes();
    assert_eq!(
        codes.len(),
        cap,
        "exactly {cap} errors answered, got {codes:?}"
    );
    assert!(codes.iter().all(|c| c == "bad_json"), "{codes:?}");
    assert!(sent > cap, "the flood went on after the errors");
    still_works(&mut bob).await;

    // Binary garbage and requests before hello count the same.
    let mut ws = raw(addr, "/v1/ws").await;
    for i in 0..50 {
        let frame = if i % 2 == 0 {
            Message::Binary(vec![0xde, 0xad].into())
        } else {
            Message::Text(request(i, "ping").into())
        };
        if ws.send(frame).await.is_err() {
            break;
        }
    }
    let r = read_until_closed(&mut ws, WAIT).await;
    assert_eq!(r.close, Some(1008), "{r:?}");
    assert_eq!(r.codes().len(), cap, "{:?}", r.codes());
    still_works(&mut bob).await;

    // Two policy closes this minute: the address may now hold one socket
    // before hello at a time (the server counts a close once its socket
    // task ends, a moment later).
    let url = format!("ws://{addr}/v1/ws");
    let t = Instant::now();
    // The one place may still be held by the socket just closed.
    let _one = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => break ws,
            Err(_) if t.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    };
    let status = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => break resp.status().as_u16(),
            Ok(_) if t.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("{:?}", other.map(|_| ())),
        }
    };
    assert_eq!(status, 429);
    // Authenticated agents are not affected.
    still_works(&mut bob).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_timeout_closes_agent_and_customer_sockets() {
    let (running, dir) = start("hostile-hello", |c| c.limits.hello_timeout_ms = 300).await;
    let addr = running.addr;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    for path in ["/v1/ws", "/v1/customer/ws"] {
        let mut ws = raw(addr, path).await;
        let t = Instant::now();
        let r = read_until_closed(&mut ws, WAIT).await;
        let took = t.elapsed();
        assert_eq!(r.close, Some(1008), "{path}: {r:?}");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{path}: closed after {took:?}"
        );
    }
    // An authenticated socket is not subject to it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    still_works(&mut bob).await;
    // The closed sockets gave their places back.
    let t = Instant::now();
    while running.state.sockets.total() != 1 && t.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        running.state.sockets.total(),
        1,
        "only bob's socket is counted"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_refused_from_its_header_with_close_1009() {
    let (running, dir) = start("hostile-big", |_| {}).await;
    let addr = running.addr;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;

    // Announce 15 MiB, then send the payload in 64 KiB pieces, looking for
    // the close between pieces. It must come long before the end.
    let total: u64 = 15 << 20;
    let mut tcp = switchboard_tests::raw::upgrade(addr, "/v1/ws")
        .await
        .expect("upgrade");
    tcp.write_all(&switchboard_tests::raw::header(0x1, total))
        .await
        .expect("header");
    let chunk = vec![b'x'; 64 << 10];
    let mut written = 0u64;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while written < total && got.len() < 4 {
        match tokio::time::timeout(Duration::from_millis(5), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if tcp.write_all(&chunk).await.is_err() {
            break;
        }
        written += chunk.len() as u64;
    }
    // Whatever is still in flight.
    while got.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    assert!(
        written < 4 << 20,
        "the server read {written} bytes of an oversized frame"
    );
    assert!(got.len() >= 4, "a close frame arrived: {got:?}");
    assert_eq!(got[0], 0x88, "a close frame: {got:?}");
    assert_eq!(u16::from_be_bytes([got[2], got[3]]), 1009, "{got:?}");

    // Just over the protocol's 64 KiB but within the transport: typed
    // error, socket open.
    let token = login(addr, "alice", "alice-pass").await;
    let mut alice = Client::connect(addr, &token).await;
    let big = format!(
        r#"{{"type":"request","id":1,"op":"ping","pad":"{}"}}"#,
        "x".repeat(66_000)
    );
    alice.send_text(&big).await;
    assert_eq!(
        alice.next_server_error().await.code,
        protocol::error::ErrorCode::FrameTooLarge
    );
    assert_eq!(alice.ok(Op::Ping).await, OpResult::Pong);
    still_works(&mut bob).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_answered_rate_limited_then_closed() {
    let (running, dir) = start("hostile-rate", |c| {
        c.limits.messages_per_s = 5;
        c.limits.message_burst = 10;
        c.limits.rate_limit_strikes = 5;
    })
    .await;
    let addr = running.addr;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    let token = login(addr, "alice", "alice-pass").await;
    let mut ws = raw(addr, "/v1/ws").await;
    ws.send(Message::Text(hello(&token).into()))
        .await
        .expect("hello");
    for id in 1..=200u64 {
        if ws
            .send(Message::Text(request(id, "ping").into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let r = read_until_closed(&mut ws, WAIT).await;
    assert_eq!(r.close, Some(1008), "{r:?}");
    let pongs = r
        .texts
        .iter()
        .filter(|t| t["result"]["kind"] == "pong")
        .count();
    let limited: Vec<&serde_json::Value> = r
        .texts
        .iter()
        .filter(|t| t["error"]["code"] == "rate_limited" || t["code"] == "rate_limited")
        .collect();
    // The hello and the burst pass (plus what refilled meanwhile).
    assert!((9..40).contains(&pongs), "{pongs} pongs");
    // Five refusals as responses to their requests, then the closing one.
    assert_eq!(limited.len(), 6, "{limited:?}");
    assert!(limited[..5]
        .iter()
        .all(|t| t["type"] == "response" && t["id"].is_u64()));
    assert_eq!(limited[5]["type"], "error");
    still_works(&mut bob).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_capped_per_address_in_total_and_per_agent() {
    let (running, dir) = start("hostile-caps", |c| {
        c.limits.max_pre_hello_per_ip = 3;
        c.limits.max_sockets = 6;
        c.limits.max_sockets_per_agent = 2;
    })
    .await;
    let addr = running.addr;
    let token = login(addr, "alice", "alice-pass").await;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;

    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    };
    let url = format!("ws://{addr}/v1/ws");
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(raw(addr, "/v1/ws").await);
    }
    let (status, body) = refused(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .map(|_| ()),
    );
    assert_eq!(status, 429);
    assert!(body.contains("rate_limited"), "{body}");
    // A socket that says hello no longer counts against its address.
    say_hello(&mut pending[0], &token).await;
    let mut second = raw(addr, "/v1/ws").await;
    say_hello(&mut second, &token).await;
    // Total: bob, alice twice, two more pending make 5; one more fits, then 429.
    let mut third = raw(addr, "/v1/ws").await;
    assert_eq!(running.state.sockets.total(), 6);
    let (status, body) = refused(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .map(|_| ()),
    );
    assert_eq!(status, 429, "total cap: {body}");

    // Per agent: alice's third socket closes her oldest.
    third
        .send(Message::Text(hello(&token).into()))
        .await
        .expect("hello");
    let r = read_until_closed(&mut pending[0], WAIT).await;
    assert_eq!(r.close, Some(1008), "{r:?}");
    still_works(&mut bob).await;
    drop((pending, second, third));
    let _ = std::fs::remove_dir_all(dir);
}

/// Says hello on a raw socket and waits for the snapshot.
async fn say_hello(ws: &mut Ws, token: &str) {
    ws.send(Message::Text(hello(token).into()))
        .await
        .expect("hello");
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"snapshot\"") => return,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// A session-driven socket whose receive buffer is small, so a client that
/// stops reading backs the server up quickly.
async fn small_buffer_socket(addr: SocketAddr) -> Ws {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = sock.connect(addr).await.expect("connect");
    let (ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/v1/ws"), MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
    ws
}

/// Feeds frames to `session` until `pred` holds on an output.
async fn pump_until(
    ws: &mut Ws,
    session: &mut Session,
    pred: impl Fn(&Output) -> bool,
) -> Vec<Output> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let outputs = session.handle_text(t.as_str(), now()).expect("protocol");
            let done = outputs.iter().any(&pred);
            seen.extend(outputs);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_and_resumes_from_its_backlog() {
    let (running, dir) = start("hostile-slow", |c| {
        c.limits.write_timeout_ms = 500;
        c.limits.messages_per_s = 100_000;
        c.limits.message_burst = 100_000;
        c.limits.backlog_events = 4_096;
        c.limits.backlog_bytes = 24 << 20;
        c.limits.send_queue_frames = 8_192;
        c.limits.send_queue_bytes = 32 << 20;
    })
    .await;
    let addr = running.addr;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    let token = login(addr, "alice", "alice-pass").await;
    let mut session = Session::new(&token, 30_000);
    let mut ws = small_buffer_socket(addr).await;
    ws.send(Message::Text(session.hello().into()))
        .await
        .expect("hello");
    pump_until(&mut ws, &mut session, |o| matches!(o, Output::Ready { .. })).await;
    let (id, f) = session.request(
        Op::SetAgentState {
            state: "Available".into(),
        },
        now(),
    );
    ws.send(Message::Text(f.into())).await.expect("send");
    pump_until(
        &mut ws,
        &mut session,
        |o| matches!(o, Output::Reply { id: r, .. } if *r == id),
    )
    .await;
    let contact = sim_call(addr, "+15550001111", "support").await;
    pump_until(
        &mut ws,
        &mut session,
        |o| matches!(o, Output::Contact(ContactChange::Incoming(v)) if v.contact_id == contact),
    )
    .await;
    let (id, f) = session.request(
        Op::Accept {
            contact_id: contact.clone(),
        },
        now(),
    );
    ws.send(Message::Text(f.into())).await.expect("send");
    pump_until(
        &mut ws,
        &mut session,
        |o| matches!(o, Output::Reply { id: r, .. } if *r == id),
    )
    .await;

    // Stop reading. Every op now sends back ~2 x 28 KB (the contact's
    // attributes in its event and in the response).
    let value = |i: usize| format!("{i:04}").repeat(1000);
    let t = Instant::now();
    let mut detached_after = None;
    for i in 0..3_000 {
        let key = format!("k{}", i % 7);
        let op = Op::UpdateAttributes {
            contact_id: contact.clone(),
            attributes: [(key, value(i))].into_iter().collect(),
        };
        let (_, f) = session.request(op, now());
        if ws.send(Message::Text(f.into())).await.is_err() {
            break;
        }
        if i % 10 == 0
            && !running
                .state
                .center
                .lock()
                .expect("lock")
                .is_attached("alice")
        {
            detached_after = Some(t.elapsed());
            break;
        }
    }
    let wait_start = Instant::now();
    while detached_after.is_none() && wait_start.elapsed() < WAIT {
        if !running
            .state
            .center
            .lock()
            .expect("lock")
            .is_attached("alice")
        {
            detached_after = Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = detached_after.expect("the client that does not read was detached");
    assert!(took < Duration::from_secs(8), "detached after {took:?}");
    still_works(&mut bob).await;
    // Its socket is closed too (after what the kernel buffered).
    let mut ended = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
    if tokio::time::Instant::now() < deadline {
        ended = true;
    }
    assert!(ended, "the server closed the socket");

    // Reconnect with the old session: it resumes from the last event it
    // saw, and ends with the server's attributes.
    let mut session2 = session;
    let _ = session2.disconnected();
    let mut ws = raw(addr, "/v1/ws").await;
    ws.send(Message::Text(session2.hello().into()))
        .await
        .expect("hello");
    let outs = pump_until(&mut ws, &mut session2, |o| {
        matches!(o, Output::Ready { .. })
    })
    .await;
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Ready { resumed: true })),
        "resumed: {outs:?}"
    );
    let (id, f) = session2.request(
        Op::GetAttributes {
            contact_id: contact.clone(),
        },
        now(),
    );
    ws.send(Message::Text(f.into())).await.expect("send");
    let outs = pump_until(
        &mut ws,
        &mut session2,
        |o| matches!(o, Output::Reply { id: r, .. } if *r == id),
    )
    .await;
    let server_attrs = outs
        .iter()
        .find_map(|o| match o {
            Output::Reply {
                result: Ok(OpResult::Attributes { attributes }),
                ..
            } => Some(attributes.clone()),
            _ => None,
        })
        .expect("attributes");
    assert_eq!(
        session2
            .state
            .contacts
            .get(&contact)
            .map(|c| c.attributes.clone()),
        Some(server_attrs),
        "the replayed events brought the client to the server's state"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_is_bounded_in_bytes() {
    let (running, dir) = start("hostile-backlog", |c| {
        c.limits.backlog_bytes = 64 << 10;
    })
    .await;
    let addr = running.addr;
    let token = login(addr, "alice", "alice-pass").await;
    let mut alice = Client::connect(addr, &token).await;
    alice.set_available().await;
    let contact = sim_call(addr, "+15550001111", "support").await;
    alice.accept_when_ringing(&contact).await;
    // Leave, and let another socket of the same agent pile up large events.
    alice.ws_close().await;
    let mut other = Client::connect(addr, &token).await;
    for i in 0..20 {
        let attributes = (0..7)
            .map(|k| (format!("k{k}"), format!("{i:04}").repeat(1000)))
            .collect();
        other
            .ok(Op::UpdateAttributes {
                contact_id: contact.clone(),
                attributes,
            })
            .await;
        let (events, bytes) = running
            .state
            .center
            .lock()
            .expect("lock")
            .backlog_size("alice");
        assert!(
            bytes <= 64 << 10,
            "backlog holds {bytes} bytes in {events} events"
        );
    }
    let (events, _) = running
        .state
        .center
        .lock()
        .expect("lock")
        .backlog_size("alice");
    assert!(events <= 3, "{events} events of ~28 KB fit in 64 KiB");
    // The first socket's resume point is gone: it gets a snapshot, with
    // the latest attributes.
    alice.reconnect(addr).await;
    assert!(alice
        .log
        .iter()
        .any(|o| matches!(o, Output::Ready { resumed: false })));
    let latest = "0019".repeat(1000);
    alice
        .wait_for("the snapshot with the latest attributes", |a| {
            a.state()
                .contacts
                .get(&contact)
                .is_some_and(|c| c.attributes.get("k0") == Some(&latest))
        })
        .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_bounds_hold_and_a_refusal_changes_nothing() {
    let (running, dir) = start("hostile-attrs", |_| {}).await;
    let addr = running.addr;
    let mut alice = Client::connect(addr, &login(addr, "alice", "alice-pass").await).await;
    alice.set_available().await;
    let contact = sim_call(addr, "+819012345678", "support").await;
    alice.accept_when_ringing(&contact).await;
    let before = alice
        .ok(Op::GetAttributes {
            contact_id: contact.clone(),
        })
        .await;

    let update = |pairs: Vec<(String, String)>| Op::UpdateAttributes {
        contact_id: contact.clone(),
        attributes: pairs.into_iter().collect(),
    };
    let refused = [
        update(vec![(String::new(), "v".into())]),
        update(vec![("k".repeat(129), "v".into())]),
        update(vec![("k".into(), "v".repeat(4097))]),
        update((0..129).map(|i| (format!("k{i}"), "v".into())).collect()),
        update(
            (0..9)
                .map(|i| (format!("k{i}"), "v".repeat(4000)))
                .collect(),
        ),
    ];
    for op in refused {
        let err = alice.op(op).await.expect_err("refused");
        assert_eq!(
            err.code,
            protocol::error::ErrorCode::InvalidArgument,
            "{err}"
        );
    }
    // Within every bound alone, over the total once merged.
    alice
        .ok(update(
            (0..7)
                .map(|i| (format!("k{i}"), "v".repeat(4000)))
                .collect(),
        ))
        .await;
    let kept = alice
        .ok(Op::GetAttributes {
            contact_id: contact.clone(),
        })
        .await;
    let err = alice
        .op(update(
            (7..9)
                .map(|i| (format!("k{i}"), "v".repeat(4000)))
                .collect(),
        ))
        .await
        .expect_err("over the total");
    assert_eq!(err.code, protocol::error::ErrorCode::InvalidArgument);
    assert!(err.message.contains("32768"), "{}", err.message);
    assert_eq!(
        alice
            .ok(Op::GetAttributes {
                contact_id: contact.clone()
            })
            .await,
        kept
    );
    assert_ne!(kept, before);
    let _ = std::fs::remove_dir_all(dir);
    drop(running);
}
