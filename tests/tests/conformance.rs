//! The conformance suite (`cargo xtask conformance`) against the reference
//! backend, started in-process on port 0: every check of the contract
//! must pass. The suite talks to it only through its URL, as it would to
//! any third-party backend.

use switchboard_tests::conformance::{self, Agent, CallSource, Endpoint, Outcome, Target};
use switchboard_tests::{temp_dir, test_config, TEST_CONFIG};

/// Checks that may be skipped: the simulated caller may be silent.
const MAY_SKIP: &[&str] = &["media.received"];

/// The simulator key the test configuration sets, if any (the simulator
/// may be fenced behind one), read from the configuration text so this
/// test needs nothing but what a third party would pass on the command line.
fn sim_key() -> Option<String> {
    TEST_CONFIG
        .lines()
        .find_map(|l| {
            let value = l
                .trim()
                .strip_prefix("simulator_key")?
                .trim()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .filter(|k| !k.is_empty())
}

fn target(url: &str) -> Target {
    Target {
        endpoint: Endpoint::parse(url).expect("url"),
        agents: [
            Agent::parse("alice:alice-pass").expect("agent"),
            Agent::parse("bob:bob-pass").expect("agent"),
        ],
        call: CallSource::Simulator {
            key: sim_key(),
            from: "+15550001234".into(),
            queue: "support".into(),
        },
        only: Vec::new(),
        skip: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_backend_passes_the_conformance_suite() {
    let dir = temp_dir("conformance");
    let running = server::start(test_config(&dir)).await.expect("start");
    let t = target(&format!("http://{}", running.addr));
    let report = conformance::run(&t, &mut |_| {}).await;
    println!("{}", report.render());

    let mut problems = Vec::new();
    for r in &report.results {
        let tolerated = match &r.outcome {
            Outcome::Pass => true,
            Outcome::Skip(_) => MAY_SKIP.contains(&r.id.as_str()),
            Outcome::Fail(_) => false,
        };
        if !tolerated {
            problems.push(format!("{}: {:?}", r.id, r.outcome));
        }
    }
    assert!(
        problems.is_empty(),
        "the reference backend fails the contract:\n{}",
        problems.join("\n")
    );
    // Every group ran: a suite that silently skips proves nothing.
    for id in [
        "login.ok",
        "hello.unsupported_version",
        "hello.timeout",
        "events.sequenced",
        "resume.replay",
        "requests.correlation",
        "errors.frame_too_large",
        "media.bad_frame",
        "ownership.other_agent",
        "call.clear",
        "limits.huge_frame",
        "limits.frame_refused_early",
        "limits.rate_limited",
        "limits.non_reading_client",
        "limits.sockets_per_address",
        "wire.every_frame",
    ] {
        assert_eq!(
            report.get(id).map(|r| &r.outcome),
            Some(&Outcome::Pass),
            "{id} must run and pass"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A fake backend that gets the contract wrong in known ways: logins
/// always succeed, `welcome.version` is a string, the snapshot's `seq` is
/// a string, every request is answered `pong`, and a second hello is
/// welcomed again. The suite must catch each of these.
async fn broken_backend() -> std::net::SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                let Ok(n) = stream.peek(&mut head).await else {
                    return;
                };
                if head[..n].starts_with(b"GET") {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        let Message::Text(text) = msg else { continue };
                        let v: serde_json::Value =
                            serde_json::from_str(text.as_str()).unwrap_or_default();
                        let replies = if v["type"] == "hello" {
                            vec![
                                serde_json::json!({"type": "welcome", "version": "1", "session": "s-1", "agent": "alice", "resumed": false, "heartbeat_ms": 15000}),
                                serde_json::json!({"type": "snapshot", "seq": "5", "status": {}, "muted": false, "configuration": {}, "states": [], "contacts": []}),
                            ]
                        } else {
                            vec![
                                serde_json::json!({"type": "response", "id": v["id"].as_u64().unwrap_or(0), "result": {"kind": "pong"}}),
                            ]
                        };
                        for r in replies {
                            if ws.send(Message::Text(r.to_string().into())).await.is_err() {
                                return;
                            }
                        }
                    }
                } else {
                    // Read the request, whatever it is, and let anyone in.
                    let mut buf = vec![0u8; 8192];
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(200),
                        stream.read(&mut buf),
                    )
                    .await;
                    let text = String::from_utf8_lossy(&buf);
                    let agent = if text.contains("\"bob\"") {
                        "bob"
                    } else {
                        "alice"
                    };
                    let body = serde_json::json!({"token": "t-fake", "agent": agent, "expires_at": 4_000_000_000_000u64}).to_string();
                    let _ = stream
                        .write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                        .await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_breaks_the_contract_fails_the_suite() {
    let addr = broken_backend().await;
    let mut t = target(&format!("http://{addr}"));
    t.call = CallSource::None;
    t.only = [
        "login",
        "hello.welcome",
        "hello.unsupported_version",
        "hello.already_authenticated",
        "snapshot",
        "events",
        "requests",
        "wire",
    ]
    .map(String::from)
    .to_vec();
    let report = conformance::run(&t, &mut |_| {}).await;
    println!("{}", report.render());
    assert_eq!(
        report.get("login.ok").map(|r| &r.outcome),
        Some(&Outcome::Pass)
    );
    for id in [
        "login.auth_failed",
        "login.bad_json",
        "hello.welcome",
        "hello.unsupported_version",
        "hello.already_authenticated",
        "snapshot.shape",
        "events.sequenced",
        "requests.results",
        "wire.every_frame",
    ] {
        assert!(
            matches!(report.get(id).map(|r| &r.outcome), Some(Outcome::Fail(_))),
            "{id} must fail against the broken backend: {:?}",
            report.get(id)
        );
    }
    assert!(
        report.get("hello.timeout").is_none(),
        "--only leaves other checks out"
    );
}
