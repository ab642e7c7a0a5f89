//! The `limits.*` checks: resource bounds a backend facing the open
//! network must keep (issue 10, item 1): a text frame over the limit is
//! refused as soon as its header says so, a frame past the transport's
//! ceiling is refused, one remote address cannot hold hundreds of
//! sockets, a flooding socket gets `rate_limited`, and a client that does
//! not read is disconnected rather than buffered. They are hostile by
//! design and run only when selected (`--only limits`, or by default
//! unless `--skip limits`).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::checks::{ensure, Ctx, Verdict};
use super::client::{clip, code_of, Closed, Conn};
use super::Outcome;

const S1: &str = "§1 (limits)";

/// Checks that need a quiet agent socket and no call; `token` is the
/// second agent's (its stream is not in use yet).
pub(super) async fn before_call(ctx: &mut Ctx<'_>, main: &mut Conn, token: &str) {
    if !ctx.t.group_selected("limits") {
        return;
    }
    if ctx.t.selected("limits.frame_refused_early") {
        let verdict = frame_refused_early(ctx).await;
        ctx.check("limits.frame_refused_early", S1, "a text frame whose header announces more than 64 KiB is refused before its body arrives", verdict);
    }
    if ctx.t.selected("limits.huge_frame") {
        let verdict = huge_frame(ctx, token).await;
        ctx.check(
            "limits.huge_frame",
            S1,
            "a 17 MiB text frame: close 1009 or frame_too_large, and the backend keeps serving",
            verdict,
        );
    }
    let _ = main.sync().await;
}

/// Checks that need a live call (`cid` connected on `a`).
pub(super) async fn during_call(ctx: &mut Ctx<'_>, a: &mut Conn, cid: &str, token: &str) {
    if !ctx.t.selected("limits.non_reading_client") {
        return;
    }
    let outcome = match non_reading(ctx, a, cid, token).await {
        Ok(o) => o,
        Err(e) => Outcome::Fail(e),
    };
    ctx.record(
        "limits.non_reading_client",
        S1,
        "a client that stops reading is disconnected, not buffered without bound",
        outcome,
    );
}

/// Checks run last (they may leave the backend wary of this address).
pub(super) async fn after_call(ctx: &mut Ctx<'_>, main: &mut Conn, token_b: &str) {
    if !ctx.t.group_selected("limits") {
        return;
    }
    if ctx.t.selected("limits.rate_limited") {
        let verdict = rate_limited(ctx, main, token_b).await;
        ctx.check(
            "limits.rate_limited",
            S1,
            "a socket flooding requests gets rate_limited; other agents keep working",
            verdict,
        );
    }
    if ctx.t.selected("limits.sockets_per_address") {
        let verdict = sockets_per_address(ctx).await;
        ctx.check(
            "limits.sockets_per_address",
            S1,
            "one address cannot hold 300 unauthenticated sockets",
            verdict,
        );
    }
}

/// Opens a raw WebSocket (handshake by hand) to write frames byte by byte.
async fn raw_ws(ctx: &Ctx<'_>) -> Result<TcpStream, String> {
    let ep = &ctx.t.endpoint;
    let mut s = TcpStream::connect(&ep.authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "GET {}/v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: Y29uZm9ybWFuY2Utc3VpdGU=\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ep.prefix, ep.authority
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < 8192, "upgrade response too long");
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .map_err(|_| "no upgrade response".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        ensure!(n == 1, "connection closed during the upgrade");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    ensure!(
        head.starts_with("HTTP/1.1 101"),
        "upgrade refused: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(s)
}

async fn frame_refused_early(ctx: &Ctx<'_>) -> Verdict {
    let mut s = raw_ws(ctx).await?;
    // FIN + text, masked, 64-bit length of 1 MiB, zero mask (identity).
    let mut header = vec![0x81u8, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    s.write_all(&header)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let chunk = vec![b'x'; 16 * 1024];
    // Send 96 KiB of the body: already past the limit, far from complete.
    for _ in 0..6 {
        if s.write_all(&chunk).await.is_err() {
            return Ok(()); // refused while sending
        }
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Err(_) => Err("no answer within 5 s to a frame announcing 1 MiB after 96 KiB of its body: the backend is waiting to buffer the rest".into()),
        Ok(Err(_)) | Ok(Ok(0)) => Ok(()),
        Ok(Ok(n)) => {
            let opcode = buf[0] & 0x0f;
            let text = String::from_utf8_lossy(&buf[..n]);
            ensure!(
                opcode == 0x8 || text.contains("frame_too_large"),
                "answered with something else: {}",
                clip(&text)
            );
            Ok(())
        }
    }
}

async fn huge_frame(ctx: &Ctx<'_>, token: &str) -> Verdict {
    let user = &ctx.t.agents[1].username;
    let mut c = Conn::open(&ctx.t.endpoint, &format!("{user}#huge"), &ctx.v).await?;
    let text = format!(
        r#"{{"type":"request","id":1,"op":"ping","pad":"{}"}}"#,
        "x".repeat(17 << 20)
    );
    let sent = c.send_text(&text).await;
    drop(text);
    if sent.is_ok() {
        match c.recv(Duration::from_secs(10)).await {
            Err(Closed::Close(code)) => {
                ensure!(
                    code.is_none_or(|c| c == 1009),
                    "closed with code {code:?} (1009 expected)"
                );
            }
            Err(Closed::Gone(_)) => {}
            Ok(Some(f)) => {
                ensure!(
                    code_of(&f) == Some("frame_too_large"),
                    "answered {}",
                    clip(&f.to_string())
                );
            }
            Ok(None) => return Err("no answer and no close within 10 s".into()),
        }
    }
    c.close().await;
    let mut fresh = Conn::open(&ctx.t.endpoint, &format!("{user}#after-huge"), &ctx.v)
        .await
        .map_err(|e| format!("the backend stopped serving after the huge frame: {e}"))?;
    fresh.hello(token, None).await?;
    fresh.sync().await?;
    fresh.close().await;
    Ok(())
}

async fn rate_limited(ctx: &Ctx<'_>, main: &mut Conn, token_b: &str) -> Verdict {
    let user = &ctx.t.agents[1].username;
    let mut flood = Conn::open(&ctx.t.endpoint, &format!("{user}#flood"), &ctx.v).await?;
    flood.hello(token_b, None).await?;
    // Bursts of 25 pings as fast as the socket takes them, reading what
    // came back between bursts, until the first `rate_limited` (so the
    // answer is read before a backend that then closes the socket resets
    // it with our unread pings in its buffer).
    const N: u64 = 5000;
    let (mut sent, mut limited, mut pongs, mut closed) = (0u64, 0u64, 0u64, None);
    let mut other = Duration::ZERO;
    'flood: while sent < N && limited == 0 {
        for _ in 0..25 {
            let frame = json!({"type": "request", "id": 10_000 + sent, "op": "ping"});
            if let Err(e) = flood.feed_text(&frame.to_string()).await {
                closed = Some(Closed::Gone(e));
                break 'flood;
            }
            sent += 1;
        }
        if let Err(e) = flood.flush().await {
            closed = Some(Closed::Gone(e));
            break;
        }
        if sent == 100 {
            // Mid-flood, another agent's request must still be served.
            let start = tokio::time::Instant::now();
            main.sync()
                .await
                .map_err(|e| format!("the other agent during the flood: {e}"))?;
            other = start.elapsed();
        }
        loop {
            match flood.recv(Duration::from_millis(2)).await {
                Ok(Some(f)) => {
                    if code_of(&f) == Some("rate_limited") {
                        limited += 1;
                    } else if f["result"]["kind"] == "pong" {
                        pongs += 1;
                    }
                }
                Ok(None) => break,
                Err(c) => {
                    closed = Some(c);
                    break 'flood;
                }
            }
        }
    }
    // The answers to the last burst.
    while limited == 0 && closed.is_none() && limited + pongs < sent {
        match flood.recv(Duration::from_secs(2)).await {
            Ok(Some(f)) if code_of(&f) == Some("rate_limited") => limited += 1,
            Ok(Some(f)) if f["result"]["kind"] == "pong" => pongs += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(c) => closed = Some(c),
        }
    }
    let start = tokio::time::Instant::now();
    main.sync()
        .await
        .map_err(|e| format!("the other agent after the flood: {e}"))?;
    other = other.max(start.elapsed());
    flood.close().await;
    ensure!(
        other < Duration::from_secs(1),
        "the other agent's ping took {other:?} during the flood"
    );
    ensure!(
        limited > 0,
        "{sent} pings sent as fast as possible: {pongs} pongs, no rate_limited{}",
        closed.map(|c| format!(", then {c}")).unwrap_or_default()
    );
    Ok(())
}

async fn sockets_per_address(ctx: &Ctx<'_>) -> Verdict {
    let mut open = Vec::new();
    let mut refused = None;
    for i in 0..300 {
        match Conn::open(&ctx.t.endpoint, &format!("idle#{i}"), &ctx.v).await {
            Ok(c) => open.push(c),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let mut closed = 0;
    if refused.is_none() {
        for c in open.iter_mut() {
            if c.send_text(r#"{"type":"request","id":1,"op":"ping"}"#)
                .await
                .is_err()
                || c.recv(Duration::from_millis(200)).await.is_err()
            {
                closed += 1;
            }
        }
    }
    let n = open.len();
    for c in open {
        c.close().await;
    }
    ensure!(
        refused.is_some() || closed > 0,
        "{n} sockets from one address were all accepted and kept open"
    );
    Ok(())
}

/// Output the backend must have been made to queue before keeping a
/// non-reading socket open counts as buffering: well past what kernel
/// socket buffers on both ends can hold (a few MiB each on loopback).
const UNREAD_TARGET: usize = 16 << 20;

async fn non_reading(
    ctx: &Ctx<'_>,
    a: &mut Conn,
    cid: &str,
    token: &str,
) -> Result<Outcome, String> {
    // Grow the contact's attributes as far as the backend allows, so every
    // update makes it send a large contact_updated and a large response.
    let mut size = 0usize;
    let mut n = 0;
    let mut first_key = None;
    for per_request in [4, 1] {
        loop {
            let attrs: serde_json::Map<String, Value> = (0..per_request)
                .map(|i| (format!("bulk{n}_{i}"), Value::String("b".repeat(4000))))
                .collect();
            n += 1;
            let r = a
                .request(
                    "update_attributes",
                    json!({"contact_id": cid, "attributes": attrs}),
                )
                .await?;
            match r.response["result"]["attributes"].as_object() {
                Some(all) if n < 200 => {
                    size = Value::Object(all.clone()).to_string().len();
                    first_key.get_or_insert_with(|| format!("bulk{}_0", n - 1));
                }
                _ => break,
            }
        }
    }
    let Some(key) = first_key else {
        return Ok(Outcome::Skip(
            "the backend refused every attribute, so its answers cannot be made large".into(),
        ));
    };
    // Each update is answered twice over: the event and the response.
    let per_update = 2 * size.max(1) + 1000;
    let updates = (UNREAD_TARGET / per_update + 1).min(600);
    let user = &ctx.t.agents[0].username;
    let mut slow =
        Conn::open_with(&ctx.t.endpoint, &format!("{user}#slow"), &ctx.v, Some(4096)).await?;
    slow.hello(token, None).await?;
    let mut sent = 0usize;
    let mut refused = None;
    for i in 0..updates {
        let v = if i % 2 == 0 { "x" } else { "y" };
        let frame = json!({"type": "request", "id": 100 + i, "op": "update_attributes",
            "contact_id": cid, "attributes": {key.clone(): v.repeat(4000)}});
        if let Err(e) = slow.send_text(&frame.to_string()).await {
            refused = Some(e);
            break;
        }
        sent += 1;
    }
    // Still not reading: a backend with only a write deadline needs time
    // to notice. Writes start failing once it has closed the socket.
    if refused.is_none() {
        for i in 0..12 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let ping = json!({"type": "request", "id": 100_000 + i, "op": "ping"});
            if let Err(e) = slow.send_text(&ping.to_string()).await {
                refused = Some(e);
                break;
            }
        }
    }
    let (mut answered, mut bytes) = (0usize, 0usize);
    let mut ended = refused;
    if ended.is_none() {
        // Now read: a backend that buffered everything delivers it all.
        loop {
            match slow.recv(Duration::from_secs(3)).await {
                Ok(Some(f)) => {
                    bytes += f.to_string().len();
                    if f["type"] == "response" {
                        answered += 1;
                    }
                }
                Ok(None) => break,
                Err(c) => {
                    ended = Some(c.to_string());
                    break;
                }
            }
        }
    }
    slow.close().await;
    // Take the agent's stream back for the rest of the call.
    let mut back = Conn::open(&ctx.t.endpoint, &format!("{user}#back"), &ctx.v).await?;
    back.hello(token, None).await?;
    let old = std::mem::replace(a, back);
    old.close().await;
    if ended.is_some() {
        return Ok(Outcome::Pass);
    }
    if bytes < UNREAD_TARGET / 2 {
        return Ok(Outcome::Skip(format!(
            "{sent} updates made the backend send only {} KiB, too little to tell buffering from kernel buffers",
            bytes / 1024
        )));
    }
    Ok(Outcome::Fail(format!(
        "{sent} updates were sent without reading; the backend kept the socket open 12 s and then delivered {answered} responses ({} MiB): it buffered them",
        bytes >> 20
    )))
}
