//! SIP over TCP (issue 13): the gateway's `listen_tcp` and a trunk's
//! `transport = "tcp"`, against software nobody here wrote and against a
//! raw `TcpStream` playing the trunk. baresip calls in over TCP (its
//! account and dial URI say `;transport=tcp`; the gateway's TCP port is not
//! its UDP port, so the call cannot have come over UDP) and an agent
//! answers, audio checked both ways by correlation; the agent dials a TCP
//! trunk (SIPp `-t t1` answering 486, and a raw listener that checks our
//! Via, Contact, the ACK on the same connection and that timer A is not
//! run over TCP); Kamailio takes our REGISTER over TCP and challenges it;
//! garbage, oversized and unframeable input closes the connection and
//! changes nothing; unknown peers are refused at accept; idle connections
//! and too many connections are closed; a caller whose connection was
//! closed gets our BYE on a new one to its Via. A missing tool fails the
//! test.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use protocol::wire::Op;
use switchboard_tests::sip::{self, *};
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A free TCP port on 127.0.0.1 (bound, read and released).
fn free_tcp_port() -> u16 {
    for _ in 0..50 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        drop(l);
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

/// The gateway with a TCP listener on its own port `tcp_port` (so nothing
/// sent to it can have come over UDP), trunk `allow` and `sip_extra`
/// lines in `[sip]`, and `trunk_extra` lines in the trunk.
fn tcp_config(
    dir: &Path,
    tcp_port: u16,
    allow: &str,
    sip_extra: &str,
    trunk_extra: &str,
) -> server::config::Config {
    let base = test_config_with_caller_id();
    let text = format!(
        "{base}\n[sip]\nlisten_udp = \"127.0.0.1:0\"\nlisten_tcp = \"127.0.0.1:{tcp_port}\"\n\
rtp_ports = [36000, 36999]\n{sip_extra}\n\
[[sip.trunks]]\nname = \"tcp\"\nallow = [\"{allow}\"]\ncodecs = [\"PCMU\", \"PCMA\", \"telephone-event\"]\n\
{trunk_extra}\n[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
    );
    load_config(dir, &text)
}

/// The gateway of [`tcp_config`] taking calls from 127.0.0.1, with
/// `sip_extra` lines in `[sip]`.
async fn start_tcp(dir: &Path, tcp_port: u16, sip_extra: &str) -> server::Running {
    server::start(tcp_config(dir, tcp_port, "127.0.0.1", sip_extra, ""))
        .await
        .expect("start")
}

/// Reads one SIP message off a stream (framed by Content-Length), within
/// 5 s; `None` when the peer closed.
async fn read_msg(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    let n = n.trim().to_ascii_lowercase();
                    (n == "content-length" || n == "l").then(|| v.trim().parse().ok())?
                })
                .expect("Content-Length on a stream");
            if buf.len() >= end + 4 + len {
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Some(String::from_utf8_lossy(&msg).into_owned());
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("a message in time")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the peer closes `stream` within `within` (reading and dropping
/// whatever it sends first).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether the kernel has an established IPv4 TCP connection to
/// 127.0.0.1:`port` (read from /proc/net/tcp: no tool needed).
fn tcp_established_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[2] == remote && f[3] == "01"
    })
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn tcp_invite(local: SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE sip:{DID}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{CALLER}@127.0.0.1>;tag=f1\r\nTo: <sip:{DID}@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{local};transport=tcp>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// The caller's OPTIONS over TCP (see [`sip::options`]).
fn options(local: SocketAddr, n: u32) -> String {
    sip::options("TCP", local, n)
}

/// Whether an OPTIONS on `stream` is answered 200.
async fn ping_ok(stream: &mut TcpStream, n: u32) -> bool {
    ping(stream, n)
        .await
        .is_some_and(|r| r.starts_with("SIP/2.0 200 "))
}

/// Sends an OPTIONS on `stream` and returns the answer.
async fn ping(stream: &mut TcpStream, n: u32) -> Option<String> {
    let local = stream.local_addr().expect("addr");
    stream
        .write_all(options(local, n).as_bytes())
        .await
        .expect("write");
    read_msg(stream, &mut Vec::new()).await
}

/// The caller's ACK over TCP from `via` (its Via's address) of the
/// INVITE `call_id`'s 2xx, whose To header was `to`, sent to our TCP
/// listener on `tcp_port`.
fn tcp_ack(tcp_port: u16, via: SocketAddr, call_id: &str, to: &str) -> String {
    format!(
        "ACK sip:switchboard@127.0.0.1:{tcp_port};transport=tcp SIP/2.0\r\n\
Via: SIP/2.0/TCP {via};branch=z9hG4bKa1\r\nMax-Forwards: 70\r\n\
From: <sip:{CALLER}@127.0.0.1>;tag=f1\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Our 200 to the gateway's BYE `bye` (text) of the call `call_id`, its
/// Via `our_via`, From, To and CSeq copied.
fn ok_to_bye(bye: &str, our_via: &str, call_id: &str) -> String {
    format!(
        "SIP/2.0 200 OK\r\nVia: {our_via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(bye, "from").expect("From"),
        header(bye, "to").expect("To"),
        header(bye, "cseq").expect("CSeq"),
    )
}

/// A TCP connection to the gateway's listener on `tcp_port`.
async fn connect(tcp_port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", tcp_port))
        .await
        .expect("connect")
}

/// Waits until an INVITE's 200 comes on `s` (the responses before it
/// skipped); the 200.
async fn read_until_200(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        let m = read_msg(s, buf).await.expect("responses");
        if m.starts_with("SIP/2.0 200 ") {
            return m;
        }
    }
}

// ---- raw TCP: a call in, on its own connection ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_tcp_is_answered_on_its_connection_with_a_tcp_contact() {
    let dir = temp_dir("sip-tcp-raw-in");
    let tcp_port = free_tcp_port();
    let (running, sip, mut alice) =
        gateway_with_alice(tcp_config(&dir, tcp_port, "127.0.0.1", "", "")).await;
    assert_ne!(sip.port(), tcp_port);
    let mut s = connect(tcp_port).await;
    let local = s.local_addr().expect("addr");
    s.write_all(tcp_invite(local, "t1").as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    let trying = read_msg(&mut s, &mut buf).await.expect("100 Trying");
    assert!(trying.starts_with("SIP/2.0 100 "), "{trying}");
    // A response's Via is the requester's, untouched.
    let via = format!("SIP/2.0/TCP {local};branch=z9hG4bKt1");
    assert_eq!(header(&trying, "via"), Some(via.as_str()), "{trying}");
    let c = alice.first_contact("the TCP call rings").await;
    let (_, customer) = alice.accept_with_leg(&c).await;
    let mut seen = Vec::new();
    let ok = loop {
        let m = read_msg(&mut s, &mut buf).await.expect("responses");
        seen.push(m.lines().next().unwrap_or_default().to_owned());
        if m.starts_with("SIP/2.0 200 ") {
            break m;
        }
        assert!(seen.len() < 5, "no 200: {seen:?}");
    };
    assert!(
        seen.iter().any(|l| l.starts_with("SIP/2.0 180 ")),
        "{seen:?}"
    );
    // Our Contact names the TCP listener, with transport=tcp.
    let contact = format!("<sip:switchboard@127.0.0.1:{tcp_port};transport=tcp>");
    assert_eq!(header(&ok, "contact"), Some(contact.as_str()), "{ok}");
    let to = header(&ok, "to").expect("To").to_owned();
    s.write_all(tcp_ack(tcp_port, local, "t1", &to).as_bytes())
        .await
        .expect("ack");
    // The agent hangs up: our BYE comes on the same connection, with our
    // Via saying TCP and our TCP address.
    alice
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: customer,
        })
        .await;
    let bye = loop {
        let m = read_msg(&mut s, &mut buf).await.expect("our BYE");
        if m.starts_with("BYE ") {
            break m;
        }
        assert!(m.starts_with("SIP/2.0 200 "), "only 200s before: {m}");
    };
    let our_via = header(&bye, "via").expect("Via");
    assert!(
        our_via.starts_with(&format!("SIP/2.0/TCP 127.0.0.1:{tcp_port};branch=z9hG4bK")),
        "{bye}"
    );
    assert_eq!(header(&bye, "call-id"), Some("t1"));
    s.write_all(ok_to_bye(&bye, our_via, "t1").as_bytes())
        .await
        .expect("200");
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.customer_number, CALLER);
    assert_eq!(r.disconnect_reason.as_deref(), Some("agent_disconnect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_callers_connection_closes_our_bye_reopens_one_to_its_via() {
    let dir = temp_dir("sip-tcp-reopen");
    let tcp_port = free_tcp_port();
    let (running, _, mut alice) = gateway_with_alice(tcp_config(
        &dir,
        tcp_port,
        "127.0.0.1",
        "tcp_idle_timeout_s = 1",
        "",
    ))
    .await;
    // The caller listens for new connections where its Via says.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let listens = listener.local_addr().expect("addr");
    let mut s = connect(tcp_port).await;
    assert_ne!(s.local_addr().expect("addr"), listens);
    s.write_all(tcp_invite(listens, "r1").as_bytes())
        .await
        .expect("write");
    let c = alice.first_contact("the TCP call rings").await;
    let (_, customer) = alice.accept_with_leg(&c).await;
    let ok = read_until_200(&mut s, &mut Vec::new()).await;
    let to = header(&ok, "to").expect("To").to_owned();
    s.write_all(tcp_ack(tcp_port, listens, "r1", &to).as_bytes())
        .await
        .expect("ack");
    // Nothing more is said: the gateway closes the idle connection.
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "the idle connection is closed"
    );
    alice
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: customer,
        })
        .await;
    let (mut back, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the gateway connects back to the caller's Via")
        .expect("accept");
    let bye = read_msg(&mut back, &mut Vec::new()).await.expect("our BYE");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header(&bye, "call-id"), Some("r1"));
    let our_via = header(&bye, "via").expect("Via");
    assert!(our_via.starts_with("SIP/2.0/TCP "), "{bye}");
    back.write_all(ok_to_bye(&bye, our_via, "r1").as_bytes())
        .await
        .expect("200");
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("agent_disconnect"));
}

// ---- raw TCP: what cannot be framed, unknown peers, limits ---------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_oversized_tcp_input_closes_the_connection_and_changes_nothing() {
    let dir = temp_dir("sip-tcp-bad");
    let tcp_port = free_tcp_port();
    let running = start_tcp(&dir, tcp_port, "").await;
    let before = contact_count(&running);
    let invite = tcp_invite("127.0.0.1:5999".parse().expect("addr"), "bad");
    let no_length = invite.replace(&format!("Content-Length: {}\r\n", SDP.len()), "");
    assert_ne!(no_length, invite);
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("binary", vec![0, 1, 2, 0xff, 0xfe, 13, 10, 13, 10]),
        ("not SIP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("no Content-Length", no_length.into_bytes()),
        (
            "negative Content-Length",
            invite
                .replace(
                    &format!("Content-Length: {}", SDP.len()),
                    "Content-Length: -1",
                )
                .into_bytes(),
        ),
        (
            "two Content-Lengths",
            invite
                .replace("Content-Type:", "l: 3\r\nContent-Type:")
                .into_bytes(),
        ),
        (
            "a 1 MB body announced",
            invite
                .replace(
                    &format!("Content-Length: {}", SDP.len()),
                    "Content-Length: 1000000",
                )
                .into_bytes(),
        ),
        (
            "20 KiB of headers",
            invite
                .replacen(
                    "Max-Forwards: 70\r\n",
                    &"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(500),
                    1,
                )
                .into_bytes(),
        ),
        ("a start line without end", vec![b'A'; 3000]),
    ];
    for (what, bytes) in &table {
        let mut s = connect(tcp_port).await;
        // The gateway may close while we still write: that is the point.
        let _ = s.write_all(bytes).await;
        assert!(
            closed_within(&mut s, Duration::from_secs(3)).await,
            "{what}: the connection is closed"
        );
    }
    // Well framed but not valid SIP: answered 400 (as over UDP) when it
    // can be, and the connection stays up.
    let mut s = connect(tcp_port).await;
    let local = s.local_addr().expect("addr");
    let bad_cseq = tcp_invite(local, "b1").replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    s.write_all(bad_cseq.as_bytes()).await.expect("write");
    let r = read_msg(&mut s, &mut Vec::new()).await.expect("an answer");
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    let r = ping(&mut s, 1).await.expect("OPTIONS answered");
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    // A CRLF CRLF keep-alive is answered with one CRLF (RFC 5626).
    s.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut pong))
        .await
        .expect("pong in time")
        .expect("pong");
    assert_eq!(&pong, b"\r\n");
    assert_eq!(contact_count(&running), before, "bad input created nothing");
    // UDP works beside TCP, on its own port.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ulocal = udp.local_addr().expect("addr");
    let uopt = options(ulocal, 9).replace("SIP/2.0/TCP", "SIP/2.0/UDP");
    udp.send_to(uopt.as_bytes(), running.sip_addr.expect("sip"))
        .await
        .expect("send");
    let mut ubuf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut ubuf))
        .await
        .expect("UDP answered in time")
        .expect("recv");
    assert!(ubuf[..n].starts_with(b"SIP/2.0 200 "), "OPTIONS over UDP");
    // A message cut into single bytes is still one message.
    let mut s2 = connect(tcp_port).await;
    let local2 = s2.local_addr().expect("addr");
    for b in options(local2, 2).as_bytes() {
        s2.write_all(&[*b]).await.expect("write");
    }
    let r = read_msg(&mut s2, &mut Vec::new()).await.expect("answered");
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_unknown_addresses_are_closed_at_accept() {
    let dir = temp_dir("sip-tcp-unknown");
    let tcp_port = free_tcp_port();
    // Only 127.0.0.9 may call; we connect from 127.0.0.1.
    let running = server::start(tcp_config(&dir, tcp_port, "127.0.0.9", "", ""))
        .await
        .expect("start");
    let before = contact_count(&running);
    for n in 0..20u32 {
        let mut s = connect(tcp_port).await;
        let local = s.local_addr().expect("addr");
        let _ = s
            .write_all(tcp_invite(local, &format!("u{n}")).as_bytes())
            .await;
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut got)).await;
        assert!(closed.is_ok(), "connection {n} is closed");
        assert!(
            got.is_empty(),
            "nothing is answered: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    assert_eq!(contact_count(&running), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_and_idle_ones_closed() {
    let dir = temp_dir("sip-tcp-max");
    let tcp_port = free_tcp_port();
    let running = start_tcp(&dir, tcp_port, "tcp_max_connections = 2").await;
    let mut a = connect(tcp_port).await;
    let mut b = connect(tcp_port).await;
    assert!(ping_ok(&mut a, 1).await);
    assert!(ping_ok(&mut b, 2).await);
    let mut c = connect(tcp_port).await;
    let local = c.local_addr().expect("addr");
    let _ = c.write_all(options(local, 3).as_bytes()).await;
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut got)).await;
    assert!(
        closed.is_ok() && got.is_empty(),
        "a third connection is refused"
    );
    // Closing one frees its slot.
    drop(a);
    let mut ok = false;
    for n in 0..50u32 {
        let mut d = connect(tcp_port).await;
        if ping_ok(&mut d, 10 + n).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a slot is free again after a connection closed");
    assert!(ping(&mut b, 4).await.is_some(), "b still works");
    drop(running);

    // Idle connections are closed after tcp_idle_timeout_s.
    let dir = temp_dir("sip-tcp-idle");
    let tcp_port = free_tcp_port();
    let _running = start_tcp(&dir, tcp_port, "tcp_idle_timeout_s = 1").await;
    let mut idle = connect(tcp_port).await;
    assert!(ping(&mut idle, 1).await.is_some());
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "an idle connection is closed"
    );
    // A message left unfinished does not keep it open either.
    let mut half = connect(tcp_port).await;
    half.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1\r\n")
        .await
        .expect("write");
    assert!(closed_within(&mut half, Duration::from_secs(5)).await);
}

// ---- outbound: the agent dials a TCP trunk --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_invite_to_a_tcp_trunk_uses_one_connection_and_no_timer_a() {
    let dir = temp_dir("sip-tcp-raw-out");
    let tcp_port = free_tcp_port();
    let trunk = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let trunk_addr = trunk.local_addr().expect("addr");
    let (_running, _, mut alice) = gateway_with_alice(tcp_config(
        &dir,
        tcp_port,
        "127.0.0.1",
        "",
        &format!("address = \"{trunk_addr}\"\ntransport = \"tcp\""),
    ))
    .await;
    let c = dial(&mut alice, CALLEE).await;
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), trunk.accept())
        .await
        .expect("the gateway connects to the trunk")
        .expect("accept");
    let mut buf = Vec::new();
    let invite = read_msg(&mut s, &mut buf).await.expect("INVITE");
    assert!(
        invite.starts_with(&format!("INVITE sip:{CALLEE}@{trunk_addr} SIP/2.0\r\n")),
        "{invite}"
    );
    let via = header(&invite, "via").expect("Via").to_owned();
    assert!(
        via.starts_with(&format!("SIP/2.0/TCP 127.0.0.1:{tcp_port};branch=z9hG4bK")),
        "{via}"
    );
    let contact = format!("<sip:switchboard@127.0.0.1:{tcp_port};transport=tcp>");
    assert_eq!(header(&invite, "contact"), Some(contact.as_str()));
    // Timer A is not run over TCP: nothing more within 2.2 s (over UDP it
    // would have resent at 0.5 and 1.5 s).
    let mut more = [0u8; 1];
    let quiet = tokio::time::timeout(Duration::from_millis(2200), s.read(&mut more)).await;
    assert!(quiet.is_err(), "no retransmission over TCP");
    let field = |n: &str| header(&invite, n).expect(n).to_owned();
    let busy = format!(
        "SIP/2.0 486 Busy Here\r\nVia: {via}\r\nFrom: {}\r\nTo: {};tag=callee\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        field("from"),
        field("to"),
        field("call-id"),
        field("cseq"),
    );
    s.write_all(busy.as_bytes()).await.expect("486");
    let ack = read_msg(&mut s, &mut buf)
        .await
        .expect("our ACK, on the same connection");
    assert!(ack.starts_with("ACK "), "{ack}");
    assert_eq!(
        header(&ack, "via"),
        Some(via.as_str()),
        "the ACK of a non-2xx reuses the branch"
    );
    assert_dial_fails(&mut alice, &c, "busy").await;
    // Still one connection: nothing else was opened.
    let other = tokio::time::timeout(Duration::from_millis(300), trunk.accept()).await;
    assert!(other.is_err(), "one connection, reused");
}

/// A SIPp callee over TCP (`-t t1`, `tests/sip/uas_busy.xml`) answering
/// one INVITE with 486; its address once it listens.
async fn sipp_busy_tcp(dir: &Path) -> (tokio::process::Child, SocketAddr) {
    let port = free_tcp_port();
    let sipp = sipp(dir, "uas_busy.xml", &["-t", "t1"], port, 1, 20);
    // Listening once the port cannot be bound any more.
    for _ in 0..100 {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (sipp, format!("127.0.0.1:{port}").parse().expect("addr"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dials_a_tcp_trunk_sipp_answers_busy_a_typed_failure() {
    let dir = temp_dir("sip-tcp-sipp");
    let (sipp, address) = sipp_busy_tcp(&dir).await;
    let tcp_port = free_tcp_port();
    let (running, _, mut alice) = gateway_with_alice(tcp_config(
        &dir,
        tcp_port,
        "127.0.0.1",
        "",
        &format!("address = \"{address}\"\ntransport = \"tcp\""),
    ))
    .await;
    let c = dial(&mut alice, CALLEE).await;
    assert_dial_fails(&mut alice, &c, "busy").await;
    // SIPp's TCP callee saw the INVITE, sent 486 and got our ACK.
    sipp_passed(sipp, &dir).await;
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("busy"));
}

// ---- baresip over TCP -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_in_over_tcp_audio_both_ways() {
    let dir = temp_dir("sip-tcp-baresip");
    let (caller8, agent8, agent48) = two_voices(
        &dir,
        "caller",
        "This is the caller over TCP. The quick brown fox jumps over the lazy dog.",
        1,
        "Hello, this is the agent. Please state your order number.",
    );
    let tcp_port = free_tcp_port();
    let (running, _, mut alice) =
        gateway_with_alice(tcp_config(&dir, tcp_port, "127.0.0.1", "", "")).await;
    let bdir = dir.join("baresip");
    let port = free_udp_port_pair();
    // The gateway's TCP port is not its UDP port: this call can only come
    // over TCP.
    let mut phone = baresip_with(
        &bdir,
        port,
        &format!(
            "<sip:{CALLER}@127.0.0.1:{port};transport=tcp>;regint=0;audio_codecs=pcmu;audio_source=aufile,{}",
            caller8.display()
        ),
        Some(format!("/dial sip:{DID}@127.0.0.1:{tcp_port};transport=tcp")),
        30,
        "",
    );
    let (c, leg, _) = agent_answers(&mut alice).await;
    let ended = speak_until_ended(&mut alice, &running, &c, leg, &agent48, 20).await;
    let log = std::fs::read_to_string(bdir.join("baresip.log")).unwrap_or_default();
    assert!(
        ended,
        "the caller's BYE (over TCP) ended the contact: {log}"
    );
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.customer_number, CALLER);
    assert_eq!(r.disconnect_reason.as_deref(), Some("customer_disconnect"));
    assert_events(&r, &["sip_bye"]);
    let _ = tokio::time::timeout(Duration::from_secs(10), phone.kill()).await;

    let heard8 = agent_heard_8k(&alice.media_in);
    // baresip's file starts when it dials: search 5 s (as sip_trunk does).
    HeardBothWays::measure(&caller8, &agent8, &heard8, &baresip_heard(&bdir), 40_000)
        .assert_both_ways("TCP call", "caller", 0.2, "");
}

// ---- Kamailio over TCP ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_over_tcp_registers_and_calls_pass_its_challenges_both_ways() {
    let dir = temp_dir("sip-tcp-kamailio");
    let kport = free_udp_port_pair();
    // Stopped with SIGTERM even when the test fails (see stop_kamailio).
    let (mut kam, klog, _guard) = start_kamailio(&dir, &kamailio_registrar_config(kport, true));
    // Ready when it answers an OPTIONS ping over TCP.
    let mut ready = false;
    for i in 0..50u32 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", kport)).await {
            let local = s.local_addr().expect("addr");
            let probe = kamailio_probe("TCP", local, kport, i, 1);
            if s.write_all(probe.as_bytes()).await.is_ok() {
                let mut buf = Vec::new();
                if let Ok(Some(r)) =
                    tokio::time::timeout(Duration::from_millis(500), read_msg(&mut s, &mut buf))
                        .await
                {
                    if r.starts_with("SIP/2.0 200") {
                        ready = true;
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "kamailio answers over TCP: {}",
        std::fs::read_to_string(&klog).unwrap_or_default()
    );
    let tcp_port = free_tcp_port();
    let running = server::start(tcp_config(
        &dir,
        tcp_port,
        "127.0.0.1",
        "",
        &format!(
            "address = \"127.0.0.1:{kport}\"\ntransport = \"tcp\"\nusername = \"switchboard\"\n\
password = \"switchboard-secret\"\nrealm = \"sip.test\"\nregister = true\nregister_expires_s = 60"
        ),
    ))
    .await
    .expect("start");
    // REGISTER over TCP: challenged, then registered with our TCP Contact.
    // We ask 60 s, Kamailio grants 10 (its max_expires) in our Contact's
    // `expires`, which we must find by our TCP address to refresh within
    // 10 s (at half of it) rather than at 30.
    wait_log(
        &klog,
        "CHALLENGED REGISTER proto=tcp",
        1,
        "our REGISTER over TCP",
    )
    .await;
    let contact = format!("sip:switchboard@127.0.0.1:{tcp_port};transport=tcp");
    wait_log(
        &klog,
        &format!("au=switchboard proto=tcp ct=<{contact}>"),
        1,
        "registered",
    )
    .await;
    // An outbound call over TCP passes its 407; nobody registered the
    // number, so Kamailio then answers 404: a typed failure.
    let mut alice = Client::available(running.addr, "alice", "alice-pass").await;
    let c = dial(&mut alice, CALLEE).await;
    assert_dial_fails(&mut alice, &c, "number_not_found").await;
    assert!(count_in(&klog, "CHALLENGED INVITE proto=tcp") >= 1);
    assert!(count_in(&klog, "AUTHENTICATED INVITE from switchboard") >= 1);
    alice
        .ok(Op::Clear {
            contact_id: c.clone(),
            wrap_up_code: None,
        })
        .await;
    alice
        .wait_for("the failed contact is cleared", |a| {
            a.state().contacts.is_empty()
        })
        .await;

    // Inbound: a caller (baresip, over UDP) passes Kamailio's 407; Kamailio
    // routes the DID to our registration, whose Contact says TCP, so it
    // connects to our TCP listener and the call reaches the agent.
    let (caller8, _) = speech(&dir, "caller", "This is the caller through Kamailio.", 1);
    let mut caller = caller_through_kamailio(&dir, kport, &caller8);
    let (c2, leg, _) = agent_answers(&mut alice).await;
    assert!(
        count_in(
            &klog,
            &format!("AUTHENTICATED INVITE from {CALLER} to sip:{DID}")
        ) >= 1,
        "the caller's INVITE passed the 407 challenge"
    );
    assert!(
        tcp_established_to(tcp_port),
        "Kamailio connected to our TCP listener"
    );
    let mut next = speech_frames(Vec::new(), leg);
    let ended = talk_until_ended(&mut alice, &running, &c2, &mut next, 20).await;
    assert!(ended, "the caller's BYE came through Kamailio over TCP");
    let r = wait_ended(&running, &c2).await;
    assert_eq!(r.customer_number, CALLER);
    assert_eq!(r.disconnect_reason.as_deref(), Some("customer_disconnect"));
    assert!(!alice.media_in.is_empty(), "the agent heard the caller");
    wait_log(
        &klog,
        "au=switchboard proto=tcp",
        2,
        "the registration refreshed",
    )
    .await;
    let _ = caller.kill().await;
    drop(running);
    stop_kamailio(&mut kam).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dials_baresip_over_tcp_audio_both_ways() {
    let dir = temp_dir("sip-tcp-out-baresip");
    let (callee8, agent8, agent48) = two_voices(
        &dir,
        "callee",
        "Hello, this is the customer answering over TCP. The quick brown fox jumps over the lazy dog.",
        1,
        "Hello, this is the agent calling about your order number.",
    );
    let bdir = dir.join("baresip");
    let (mut phone, phone_sip) = auto_answer_phone(&bdir, "pcmu", ";transport=tcp", &callee8);
    let port = phone_sip.port();
    let tcp_port = free_tcp_port();
    let (running, _, mut alice) = gateway_with_alice(tcp_config(
        &dir,
        tcp_port,
        "127.0.0.1",
        "",
        &format!("address = \"127.0.0.1:{port}\"\ntransport = \"tcp\""),
    ))
    .await;
    let log = wait_baresip_ready(&bdir).await;
    let c = dial(&mut alice, CALLEE).await;
    let leg = wait_far_end_answers(&mut alice, &c).await;
    // The signaling runs on a TCP connection to baresip's SIP port.
    assert!(
        tcp_established_to(port),
        "an established TCP connection to 127.0.0.1:{port}"
    );
    let ended = speak_until_ended(&mut alice, &running, &c, leg, &agent48, 30).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ended, "the callee's BYE over TCP ended the contact: {text}");
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.customer_number, CALLEE);
    assert_eq!(r.disconnect_reason.as_deref(), Some("customer_disconnect"));
    let _ = tokio::time::timeout(Duration::from_secs(10), phone.kill()).await;

    let heard8 = agent_heard_8k(&alice.media_in);
    HeardBothWays::measure(&callee8, &agent8, &heard8, &baresip_heard(&bdir), 8_000)
        .assert_both_ways("outbound TCP", "callee", 0.0, "");
}
