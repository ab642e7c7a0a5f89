//! The media-only socket (docs/protocol.md section 8, "Media socket"),
//! over real sockets: the control socket's `media_socket` op gives a
//! single-use ticket; `/v1/media` with it is welcomed and then carries the
//! agent's media both ways (an echo caller returns the agent's frames
//! there, not on the control socket); a used or made-up ticket gets
//! `auth_failed` and a close; text on a welcomed media socket gets
//! `bad_request`; and once the media socket closes, the media is back on
//! the control socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::media::{encode_media_frame, MediaHeader};
use protocol::wire::{Op, OpResult};
use switchboard_tests::*;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_media(addr: std::net::SocketAddr, path: &str, ticket: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .expect("media socket");
    let hello = serde_json::json!({"type": "media_hello", "ticket": ticket}).to_string();
    ws.send(Message::Text(hello.into())).await.expect("send");
    ws
}

/// The next text message (binary ones are skipped), or `None` at close.
async fn next_text(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).ok(),
            Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
            _ => return None,
        }
    }
}

fn frame(leg: u32, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    // An empty SILK WB 20 ms frame (DTX): enough for the echo to return.
    encode_media_frame(
        &MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq * 960,
        },
        &[9 << 3],
        &mut out,
    );
    out
}

async fn ticket(alice: &mut Client) -> (String, String) {
    match alice.ok(Op::MediaSocket).await {
        OpResult::MediaSocket { ticket, path, .. } => (ticket, path),
        other => panic!("not a media ticket: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_socket_carries_the_agents_media_and_gives_it_back_when_it_closes() {
    let dir = temp_dir("media-socket");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let (_, leg, _) = alice.accept_echo_call(addr).await;

    // A made-up ticket: refused and closed.
    let mut bad = open_media(addr, "/v1/media", "mt-made-up").await;
    let err = next_text(&mut bad).await.expect("an error");
    assert_eq!(err["code"], "auth_failed", "{err}");
    assert!(
        next_text(&mut bad).await.is_none(),
        "closed after a bad ticket"
    );

    let (t, path) = ticket(&mut alice).await;
    assert_eq!(path, "/v1/media");
    let mut media = open_media(addr, &path, &t).await;
    let welcome = next_text(&mut media).await.expect("welcome");
    assert_eq!(welcome["type"], "media_welcome", "{welcome}");

    // The same ticket again: single use.
    let mut again = open_media(addr, &path, &t).await;
    let err = next_text(&mut again).await.expect("an error");
    assert_eq!(err["code"], "auth_failed", "{err}");

    // Frames sent on the media socket come back from the echo line there.
    alice.ok(Op::Ping).await;
    let before = alice.media_in.len();
    let mut back = 0;
    let mut seq = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while back < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "echoed frames on the media socket"
        );
        media
            .send(Message::Binary(frame(leg, seq).into()))
            .await
            .expect("send");
        seq += 1;
        if let Ok(Some(Ok(Message::Binary(b)))) =
            tokio::time::timeout(Duration::from_millis(20), media.next()).await
        {
            let f = protocol::media::decode_media_frame(&b).expect("a media frame");
            assert_eq!(f.header.leg, leg);
            back += 1;
        }
    }
    // Text is not for this socket.
    media.send(Message::Text("{}".into())).await.expect("send");
    let err = next_text(&mut media).await.expect("an error");
    assert_eq!(err["code"], "bad_request", "{err}");
    // The control socket got none of them: at most the few frames already
    // queued for it when the media socket took over (the bridge queues
    // at most `AGENT_QUEUE` per socket).
    alice.ok(Op::Ping).await;
    let queued = server::bridge::AGENT_QUEUE;
    assert!(
        alice.media_in.len() <= before + queued,
        "media went to the media socket only"
    );

    // Closed: the media goes back to the control socket.
    media.close(None).await.expect("close");
    drop(media);
    let mut next_seq = seq;
    let mut next = || {
        next_seq += 1;
        frame(leg, next_seq)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while alice.media_in.len() <= before + queued {
        assert!(
            tokio::time::Instant::now() < deadline,
            "media back on the control socket"
        );
        alice
            .stream_media(Duration::from_millis(200), &mut next)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_media_socket_is_closed_and_media_before_its_ticket_is_refused() {
    let dir = temp_dir("media-socket-none");
    let mut cfg = test_config(&dir);
    cfg.limits.hello_timeout_ms = 300;
    let running = server::start(cfg).await.expect("start");
    let addr = running.addr;
    // No media_hello: closed after the hello timeout.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/media"))
        .await
        .expect("media socket");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent media socket is closed");
    // Binary before the ticket: not authenticated.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/media"))
        .await
        .expect("media socket");
    ws.send(Message::Binary(frame(1, 0).into()))
        .await
        .expect("send");
    let err = next_text(&mut ws).await.expect("an error");
    assert_eq!(err["code"], "not_authenticated", "{err}");
}
