//! Hostile and broken input over a real socket: each gets its typed error,
//! the connection stays usable and the agent's state does not change.

use futures_util::{SinkExt, StreamExt};
use protocol::error::ErrorCode;
use protocol::media::{encode_media_frame, MediaHeader};
use protocol::wire::{Op, OpResult};
use streams_sdk::Output;
use switchboard_tests::*;
use tokio_tungstenite::tungstenite::Message;

async fn reply_code(c: &mut Client, text: &str, id: u64) -> ErrorCode {
    c.send_text(text).await;
    loop {
        for o in c.pump().await {
            match o {
                Output::ServerError(e) if id == 0 => return e.code,
                Output::Reply {
                    id: rid,
                    result: Err(e),
                } if rid == id => return e.code,
                _ => {}
            }
        }
    }
}

/// Responses to ids the session did not issue are dropped by the session,
/// so raw requests here use ids the session tracks.
fn raw_request(c: &mut Client, body: &str) -> (u64, String) {
    let (id, _) = c.session.request(Op::Ping, now());
    (id, body.replace("ID", &id.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_frame_gets_a_typed_error_and_changes_nothing() {
    let dir = temp_dir("bad");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let token = login(addr, "alice", "alice-pass").await;

    // Before hello: requests are refused, not dropped.
    let mut early = Client::open(addr, &token).await;
    let (id, text) = raw_request(&mut early, r#"{"type":"request","id":ID,"op":"ping"}"#);
    assert_eq!(
        reply_code(&mut early, &text, id).await,
        ErrorCode::NotAuthenticated
    );
    // Wrong version, then a bad token, then the right hello on the same socket.
    assert_eq!(
        reply_code(
            &mut early,
            r#"{"type":"hello","versions":[99],"token":"x"}"#,
            0
        )
        .await,
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        reply_code(
            &mut early,
            r#"{"type":"hello","versions":[1],"token":"forged"}"#,
            0
        )
        .await,
        ErrorCode::AuthFailed
    );
    early.hello().await;

    let mut alice = Client::connect(addr, &token).await;
    alice.set_available().await;
    let before = alice.state().clone();

    assert_eq!(
        reply_code(&mut alice, "{not json", 0).await,
        ErrorCode::BadJson
    );
    assert_eq!(
        reply_code(&mut alice, r#"{"type":"warp"}"#, 0).await,
        ErrorCode::UnknownType
    );
    let (id, text) = raw_request(
        &mut alice,
        r#"{"type":"request","id":ID,"op":"self_destruct"}"#,
    );
    assert_eq!(
        reply_code(&mut alice, &text, id).await,
        ErrorCode::UnknownOp
    );
    let (id, text) = raw_request(
        &mut alice,
        r#"{"type":"request","id":ID,"op":"hold","contact_id":5}"#,
    );
    assert_eq!(
        reply_code(&mut alice, &text, id).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        reply_code(
            &mut alice,
            r#"{"type":"hello","versions":[1],"token":"again"}"#,
            0
        )
        .await,
        ErrorCode::AlreadyAuthenticated
    );

    // Just over the protocol's 64 KiB: a typed error, the socket survives.
    let big = format!(
        r#"{{"type":"request","id":1,"op":"ping","pad":"{}"}}"#,
        "x".repeat(65 * 1024)
    );
    assert_eq!(
        reply_code(&mut alice, &big, 0).await,
        ErrorCode::FrameTooLarge
    );
    // A 10 MB frame is over the transport's limit: refused from its
    // header with close 1009 (docs/protocol.md section 1), on its own socket.
    let huge = format!(
        r#"{{"type":"request","id":1,"op":"ping","pad":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let (mut raw, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .expect("ws connect");
    // The server may reset the connection before the client has written
    // it all: the send may fail, the close frame is still there to read.
    let _ = raw.send(Message::Text(huge.into())).await;
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match raw.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(close, Some(1009));

    // Binary frames: garbage and a well-formed frame for a leg that does not exist.
    alice.send_binary(vec![0xde, 0xad]).await;
    assert_eq!(
        alice.next_server_error().await.code,
        ErrorCode::BadMediaFrame
    );
    let mut frame = Vec::new();
    encode_media_frame(
        &MediaHeader {
            flags: 0,
            leg: 77,
            sequence: 1,
            timestamp: 960,
        },
        &[0xfc; 40],
        &mut frame,
    );
    alice.send_binary(frame).await;
    assert_eq!(alice.next_server_error().await.code, ErrorCode::NoMediaLeg);

    // Another agent's contact.
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    let c = sim_call(addr, "+15550001111", "support").await;
    alice
        .wait_for("ring", |a| a.state().contacts.contains_key(&c))
        .await;
    for op in [
        Op::Accept {
            contact_id: c.clone(),
        },
        Op::Reject {
            contact_id: c.clone(),
        },
        Op::GetAttributes {
            contact_id: c.clone(),
        },
        Op::Hold {
            contact_id: c.clone(),
            connection_id: "k-x".into(),
        },
    ] {
        let err = bob.op(op).await.expect_err("not bob's");
        assert_eq!(err.code, ErrorCode::NotOwner);
    }
    // Invalid arguments and states.
    assert_eq!(
        alice
            .op(Op::SetAgentState {
                state: "Busy".into()
            })
            .await
            .expect_err("system state")
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        alice
            .op(Op::Clear {
                contact_id: c.clone(),
                wrap_up_code: None
            })
            .await
            .expect_err("ringing")
            .code,
        ErrorCode::InvalidState
    );

    // The connection still works and nothing changed but the new call.
    assert_eq!(alice.ok(Op::Ping).await, OpResult::Pong);
    let mut after = alice.state().clone();
    after.contacts.remove(&c);
    assert_eq!(after.agent, before.agent);
    assert_eq!(after.contacts, before.contacts);
    assert!(
        alice.undecodable.is_empty(),
        "the server only sent protocol frames"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_refuses_bad_bodies_with_typed_errors() {
    let dir = temp_dir("http");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let (status, json) = http(addr, "POST", "/v1/login", Some("{oops")).await;
    assert_eq!((status, json["code"].as_str()), (400, Some("bad_request")));
    let (status, json) = http(
        addr,
        "POST",
        "/v1/login",
        Some(r#"{"username":"alice","password":"nope"}"#),
    )
    .await;
    assert_eq!((status, json["code"].as_str()), (401, Some("auth_failed")));
    let (status, json) = sim_http(
        addr,
        "POST",
        "/v1/sim/calls",
        Some(r#"{"from":"12","queue":"support"}"#),
    )
    .await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("invalid_argument"))
    );
    let (status, json) = sim_http(
        addr,
        "POST",
        "/v1/sim/calls",
        Some(r#"{"from":"+15550001111","queue":"nowhere"}"#),
    )
    .await;
    assert_eq!((status, json["code"].as_str()), (404, Some("not_found")));
    let (status, _) = sim_http(addr, "DELETE", "/v1/sim/calls/c-unknown", None).await;
    assert_eq!(status, 404);
    let _ = std::fs::remove_dir_all(dir);
}
