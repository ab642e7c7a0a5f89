//! Shared helpers of the SIP gateway's integration tests (`sip_*.rs`),
//! the signalling side: a raw UDP caller (INVITE with SDP, ACK, BYE,
//! OPTIONS, reading what the gateway sends), the gateway and its agent set
//! up as most tests do, the contact's stored record and the agent's view
//! of it, and the real peers (baresip, SIPp; Kamailio in
//! [`crate::sip_kamailio`], re-exported here). Plain functions
//! over `tokio::net::UdpSocket` and strings, so a test over another
//! transport can build the same messages and send them its own way. The
//! media side (RTP, media frames, speech and correlation) is in
//! [`crate::sip_media`], re-exported here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use server::sip::msg::{Message, Start};
use tokio::net::UdpSocket;

pub use crate::sip_kamailio::*;
pub use crate::sip_media::*;
use crate::{Client, TEST_CONFIG};

/// The DID the tests' trunks map to the support queue.
pub const DID: &str = "+15550100";
/// The raw caller's number (in From).
pub const CALLER: &str = "+15557654321";
/// The number agents dial to reach the far-end phone in the tests.
pub const CALLEE: &str = "+15550142";
/// A PCMU offer at 127.0.0.1:40000.
pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// An offer at 127.0.0.1:`port` with payload types `pts` (e.g. `"0 101"`)
/// and extra `attrs` lines (each ending in CRLF).
pub fn sdp(port: u16, pts: &str, attrs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n{attrs}"
    )
}

/// The test center ([`TEST_CONFIG`]) with `sip` (TOML: `[sip]` and its
/// trunks) appended, its store in `dir`.
pub fn config(dir: &Path, sip: &str) -> server::config::Config {
    let text = format!("{TEST_CONFIG}\n{sip}");
    let mut cfg = server::config::Config::parse(&text, "test").expect("sip test config");
    cfg.data_dir = dir.to_path_buf();
    cfg.public_dir = dir.join("public");
    cfg
}

/// An INVITE from [`CALLER`] (tag `f1`) at `local` to [`DID`], CSeq 1,
/// with `headers` (each line ending in CRLF) and the SDP body `sdp`.
pub fn invite(local: SocketAddr, call_id: &str, headers: &str, sdp: &str) -> String {
    invite_to(DID, local, call_id, headers, sdp)
}

/// [`invite`] to `number` (a DID, a flow's entry point, an unknown one).
pub fn invite_to(
    number: &str,
    local: SocketAddr,
    call_id: &str,
    headers: &str,
    sdp: &str,
) -> String {
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{CALLER}@127.0.0.1>;tag=f1\r\nTo: <sip:{number}@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{local}>\r\n{headers}\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The ACK of the INVITE with CSeq `cseq`, `to` being the To header's
/// value from the gateway's 2xx (with its tag).
pub fn ack(local: SocketAddr, call_id: &str, to: &str, cseq: u32) -> String {
    format!(
        "ACK sip:{DID}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKack{call_id}{cseq}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{CALLER}@127.0.0.1>;tag=f1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A request `method` of the caller in the dialog (`to` as for [`ack`]),
/// with `headers` (lines ending in CRLF) and `body` (SDP when not empty).
#[allow(clippy::too_many_arguments)]
pub fn in_dialog(
    method: &str,
    sip: SocketAddr,
    local: SocketAddr,
    call_id: &str,
    to: &str,
    cseq: u32,
    headers: &str,
    body: &str,
) -> String {
    let kind = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} sip:switchboard@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{method}{call_id}{cseq}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{CALLER}@127.0.0.1>;tag=f1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\nContact: <sip:c@{local}>\r\n{headers}{kind}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The caller's BYE in the dialog (`to` as for [`ack`]).
pub fn bye(sip: SocketAddr, local: SocketAddr, call_id: &str, to: &str, cseq: u32) -> String {
    in_dialog("BYE", sip, local, call_id, to, cseq, "", "")
}

/// The next datagram as text (5 s at most).
pub async fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 8192];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("the gateway answered in time")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Sends `msg` and returns the next datagram as text.
pub async fn exchange(sock: &UdpSocket, to: SocketAddr, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), to).await.expect("send");
    recv_text(sock).await
}

/// The next SIP message (8 s at most).
pub async fn next(sock: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 8192];
    let (n, _) = tokio::time::timeout(Duration::from_secs(8), sock.recv_from(&mut buf))
        .await
        .expect("the gateway sent something in time")
        .expect("recv");
    Message::parse(&buf[..n]).expect("well-formed SIP from the gateway")
}

/// The next request `method` (others skipped, at most 30 messages).
pub async fn next_request(sock: &UdpSocket, method: &str) -> Message {
    for _ in 0..30 {
        let m = next(sock).await;
        if matches!(&m.start, Start::Request { method: x, .. } if x == method) {
            return m;
        }
    }
    panic!("no {method} among 30 messages");
}

/// The next response `code` (others skipped, at most 30 messages).
pub async fn next_response(sock: &UdpSocket, code: u16) -> Message {
    for _ in 0..30 {
        let m = next(sock).await;
        if m.start == (Start::Response { code }) {
            return m;
        }
    }
    panic!("no {code} among 30 messages");
}

/// A raw call the agent answered and the caller ACKed.
pub struct Answered {
    /// The contact.
    pub contact: String,
    /// The agent's media leg.
    pub leg: u32,
    /// The agent's customer connection.
    pub customer: String,
    /// The gateway's 200.
    pub ok: Message,
    /// The 200's To header value (the gateway's tag in it).
    pub to: String,
    /// Where the gateway wants RTP (its answer's address and port).
    pub rtp: SocketAddr,
}

/// INVITE (`headers`, `sdp`) to `number` from `sock`; `agent` accepts
/// the contact it is offered; the 200 comes and is ACKed.
pub async fn answered_call_to(
    number: &str,
    sock: &UdpSocket,
    sip: SocketAddr,
    agent: &mut Client,
    call_id: &str,
    headers: &str,
    sdp: &str,
) -> Answered {
    let local = sock.local_addr().expect("addr");
    let msg = invite_to(number, local, call_id, headers, sdp);
    sock.send_to(msg.as_bytes(), sip).await.expect("send");
    let contact = agent.first_contact("the SIP call rings").await;
    let (leg, customer) = agent.accept_with_leg(&contact).await;
    let ok = next_response(sock, 200).await;
    let to = ok.header("to").expect("a 200 with To").to_owned();
    assert!(to.contains("tag="), "a 200 with a To tag");
    let rtp = answer_rtp(&ok);
    sock.send_to(ack(local, call_id, &to, 1).as_bytes(), sip)
        .await
        .expect("ack");
    Answered {
        contact,
        leg,
        customer,
        ok,
        to,
        rtp,
    }
}

/// [`answered_call_to`] the [`DID`].
pub async fn answered_call(
    sock: &UdpSocket,
    sip: SocketAddr,
    agent: &mut Client,
    call_id: &str,
    headers: &str,
    sdp: &str,
) -> Answered {
    answered_call_to(DID, sock, sip, agent, call_id, headers, sdp).await
}

/// The RTP address in a message's SDP body (c= and m=audio).
pub fn answer_rtp(m: &Message) -> SocketAddr {
    let body = String::from_utf8_lossy(&m.body);
    let port: u16 = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("the SDP has an audio port");
    let ip: std::net::IpAddr = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or([127, 0, 0, 1].into());
    SocketAddr::new(ip, port)
}

/// The contact's stored record (the same read as the media tests').
pub use crate::stored_contact as record;

/// Waits (at most 5 s) for the contact's event `event`.
pub async fn wait_event(running: &server::Running, c: &str, event: &str) {
    for _ in 0..200 {
        if record(running, c).events.iter().any(|e| e.event == event) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {event}: {:?}", record(running, c).events);
}

/// Waits (at most 10 s) for the contact to end; its record.
pub async fn wait_ended(running: &server::Running, c: &str) -> server::store::ContactRecord {
    wait_ended_within(running, c, Duration::from_secs(10)).await
}

/// Waits (at most `within`, polling every 50 ms) for the contact to end;
/// its record.
pub async fn wait_ended_within(
    running: &server::Running,
    c: &str,
    within: Duration,
) -> server::store::ContactRecord {
    let step = Duration::from_millis(50);
    for _ in 0..within.as_millis() / step.as_millis() {
        let r = record(running, c);
        if r.ended_at.is_some() {
            return r;
        }
        tokio::time::sleep(step).await;
    }
    panic!("contact {c} did not end within {within:?}");
}

// ---- real phones (baresip) ------------------------------------------------

/// A free UDP port P whose TCP P and P+1 are free too.
pub fn free_udp_port_pair() -> u16 {
    // baresip binds P (UDP and TCP) and P+1 (TLS); ctrl_tcp takes a TCP
    // port from here too. All three must be free: a TCP port P in use by
    // some outgoing connection made baresip fail to start ("Address
    // already in use") on the busy machine.
    for _ in 0..50 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let p = s.local_addr().expect("addr").port();
        if p < 65_000
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair");
}

/// A baresip in `dir` on `port` with one account line; `dial` is an
/// optional command run at start; `extra_modules` are config lines added
/// at the end. Loads g711 and opus. Quits after `seconds`.
pub fn baresip_with(
    dir: &Path,
    port: u16,
    account: &str,
    dial: Option<String>,
    seconds: u32,
    extra_modules: &str,
) -> tokio::process::Child {
    let rtp = 33_000 + (port % 500) * 2;
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).expect("mkdir");
    let config = format!(
        "poll_method\tepoll\nsip_listen\t127.0.0.1:{port}\ncall_local_timeout\t120\ncall_max_calls\t4\n\
audio_player\talsa,null\naudio_source\talsa,null\naudio_alert\talsa,null\n\
ausrc_format\ts16\nauplay_format\ts16\nauenc_format\ts16\naudec_format\ts16\naudio_buffer\t20-160\n\
rtp_ports\t{rtp}-{}\nrtcp_mux\tno\njitter_buffer_delay\t5-10\nnet_interface\t127.0.0.1\n\
module_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule\topus.so\nmodule\talsa.so\nmodule\taufile.so\nmodule\tsndfile.so\n\
module_tmp\tuuid.so\nmodule_tmp\taccount.so\nmodule_app\tmenu.so\nsnd_path\t{}\nopus_bitrate\t32000\n{extra_modules}",
        rtp + 20,
        rec.display()
    );
    std::fs::write(dir.join("config"), config).expect("config");
    std::fs::write(dir.join("accounts"), format!("{account}\n")).expect("accounts");
    let log = std::fs::File::create(dir.join("baresip.log")).expect("log");
    let mut cmd = tokio::process::Command::new("baresip");
    cmd.args([
        "-4",
        "-f",
        dir.to_str().expect("path"),
        "-t",
        &seconds.to_string(),
    ]);
    if let Some(d) = dial {
        cmd.arg("-e").arg(d);
    }
    cmd.stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("baresip must be installed (baresip-core; cargo xtask test installs it)")
}

/// A baresip that dials [`DID`] at `target` as [`CALLER`], playing
/// `source` in `codec` (`pcmu`, `pcma` or `opus/48000/2`, whose source
/// must be 48 kHz stereo).
pub fn baresip_caller(
    dir: &Path,
    codec: &str,
    source: &Path,
    target: SocketAddr,
    seconds: u32,
) -> tokio::process::Child {
    let port = free_udp_port_pair();
    baresip_with(
        dir,
        port,
        &format!(
            "<sip:{CALLER}@127.0.0.1:{port}>;regint=0;audio_codecs={codec};audio_source=aufile,{}",
            source.display()
        ),
        Some(format!("/dial sip:{DID}@{target}")),
        seconds,
        "",
    )
}

/// A baresip that answers calls to [`CALLEE`] at once, playing `source` in
/// `codec` (`pcmu`, `pcma`, `opus/48000/2`), with `uri_params` added to its
/// URI (`;transport=tcp` to take calls over TCP); quits after 40 s.
/// Returns it and its SIP address.
pub fn auto_answer_phone(
    dir: &Path,
    codec: &str,
    uri_params: &str,
    source: &Path,
) -> (tokio::process::Child, SocketAddr) {
    let port = free_udp_port_pair();
    std::fs::create_dir_all(dir).expect("mkdir");
    let phone = baresip_with(
        dir,
        port,
        &format!(
            "<sip:{CALLEE}@127.0.0.1:{port}{uri_params}>;regint=0;answermode=auto;audio_codecs={codec};audio_source=aufile,{}",
            source.display()
        ),
        None,
        40,
        "",
    );
    (phone, format!("127.0.0.1:{port}").parse().expect("addr"))
}

/// The file baresip's sndfile module wrote for what it decoded
/// (`*-dec.wav`), once it exists.
pub fn baresip_dec_wav(bdir: &Path) -> PathBuf {
    std::fs::read_dir(bdir.join("rec"))
        .expect("recordings")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .expect("baresip recorded what it heard")
}

/// Waits (bounded) until the baresip in `dir` listens; its log.
pub async fn wait_baresip_ready(dir: &Path) -> PathBuf {
    let log = dir.join("baresip.log");
    for _ in 0..100 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("baresip is ready")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log
}

// ---- outbound: the agent dials, a raw socket plays the trunk ---------------

/// The agent dials `number`; the contact id.
pub async fn dial(client: &mut Client, number: &str) -> String {
    match client
        .ok(protocol::wire::Op::Connect {
            endpoint: protocol::endpoint::Endpoint::phone_number(number),
        })
        .await
    {
        protocol::wire::OpResult::ContactCreated { contact_id } => contact_id,
        other => panic!("connect: {other:?}"),
    }
}

/// Waits until the far end answers the agent's outbound contact `c`
/// (connected, with a media leg); the leg.
pub async fn wait_far_end_answers(client: &mut Client, c: &str) -> u32 {
    let leg_of = |a: &Client| {
        a.state()
            .contacts
            .get(c)
            .filter(|v| v.state.name() == "connected")
            .and_then(|v| v.agent_connection()?.media_leg)
    };
    client
        .wait_for("the far end answers", |a| leg_of(a).is_some())
        .await;
    leg_of(client).expect("media leg")
}

/// The agent talks (`next`'s frames every 20 ms) in 500 ms steps, at most
/// `steps` of them, until the far end hangs up and the contact `c` is
/// ended in the store; whether it was.
pub async fn talk_until_ended(
    client: &mut Client,
    running: &server::Running,
    c: &str,
    next: &mut dyn FnMut() -> Vec<u8>,
    steps: u32,
) -> bool {
    for _ in 0..steps {
        client.stream_media(Duration::from_millis(500), next).await;
        if record(running, c).ended_at.is_some() {
            return true;
        }
    }
    false
}

/// The agent's contact's error reason, once it failed.
pub fn error_reason(client: &Client, c: &str) -> Option<String> {
    match &client.state().contacts.get(c)?.state {
        protocol::contact::ContactState::Error { reason, .. } => Some(reason.clone()),
        _ => None,
    }
}

/// The next SIP request `trunk` receives and where it came from
/// (responses and garbage skipped; 5 s a datagram, at most 50).
pub async fn trunk_request(trunk: &UdpSocket) -> (Message, SocketAddr) {
    let mut buf = vec![0u8; 8192];
    for _ in 0..50 {
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), trunk.recv_from(&mut buf))
            .await
            .expect("the gateway sent something in time")
            .expect("recv");
        if let Ok(m) = Message::parse(&buf[..n]) {
            if matches!(m.start, Start::Request { .. }) {
                return (m, from);
            }
        }
    }
    panic!("no request among 50 datagrams");
}

// ---- SIPp -------------------------------------------------------------------

/// A SIPp UAS running `tests/sip/<scenario>` for `calls` calls, started
/// in `dir` (its logs go there); its address.
pub fn sipp_uas(dir: &Path, scenario: &str, calls: u32) -> (tokio::process::Child, SocketAddr) {
    let port = free_udp_port_pair();
    let sipp = sipp(dir, scenario, &[], port, calls, 30);
    (sipp, format!("127.0.0.1:{port}").parse().expect("addr"))
}

/// SIPp running `tests/sip/<scenario>` in `dir` (its logs go there) on
/// 127.0.0.1:`port` for `calls` calls, each failing after `timeout_s`;
/// `args` come first (`-s <user> <host>` for a UAC, `-t t1` for TCP).
pub fn sipp(
    dir: &Path,
    scenario: &str,
    args: &[&str],
    port: u16,
    calls: u32,
    timeout_s: u32,
) -> tokio::process::Child {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip")
        .join(scenario);
    tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args(["-sf", path.to_str().expect("path")])
        .args(args)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
            "-nostdin",
            "-timeout",
            &timeout_s.to_string(),
            "-timeout_error",
            "-trace_err",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp must be installed (sip-tester; cargo xtask test installs it)")
}

/// Waits (at most 40 s) for SIPp to finish and asserts that every call
/// went as its scenario says (exit 0), showing its errors otherwise.
pub async fn sipp_passed(sipp: tokio::process::Child, dir: &Path) {
    let out = tokio::time::timeout(Duration::from_secs(40), sipp.wait_with_output())
        .await
        .expect("SIPp finished in time")
        .expect("sipp ran");
    let errors: String = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with("_errors.log"))
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "SIPp's scenario failed: {}\n{errors}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many times `needle` occurs in the file at `path` (0 when unreadable).
pub fn count_in(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// Waits (up to 15 s) until `needle` occurs `times` times in the log at
/// `path`; `what` names the wait in the panic that ends a timeout.
pub async fn wait_log(path: &Path, needle: &str, times: usize, what: &str) {
    for _ in 0..300 {
        if count_in(path, needle) >= times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what}: `{needle}` x{times} not in {}:\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

// ---- the gateway and its agent, set up as most tests do -------------------

/// Starts the backend with `cfg`; it and its SIP (UDP) address.
pub async fn gateway(cfg: server::config::Config) -> (server::Running, SocketAddr) {
    let running = server::start(cfg).await.expect("start");
    let sip = running.sip_addr.expect("the gateway listens");
    (running, sip)
}

/// [`gateway`] with alice logged in and Available.
pub async fn gateway_with_alice(
    cfg: server::config::Config,
) -> (server::Running, SocketAddr, Client) {
    let (running, sip) = gateway(cfg).await;
    let alice = Client::available(running.addr, "alice", "alice-pass").await;
    (running, sip, alice)
}

/// An agent (alice) whose `hello` announced G.711 (`pcmu`, `pcma`), as
/// the CCP does, set Available: the gateway forwards a G.711 trunk's
/// payloads to it unchanged.
pub async fn g711_agent(addr: SocketAddr) -> Client {
    let token = crate::login(addr, "alice", "alice-pass").await;
    let mut agent = Client::open(addr, &token).await;
    agent.session.announce_codecs(&["pcmu", "pcma"]);
    agent.hello().await;
    agent
        .ok(protocol::wire::Op::SetAgentState {
            state: "Available".into(),
        })
        .await;
    agent
}

/// A UDP socket on 127.0.0.1 (a free port) and its address: a raw
/// caller's SIP socket, or its RTP one.
pub async fn udp_socket() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = sock.local_addr().expect("addr");
    (sock, local)
}

/// How many contacts the store holds.
pub fn contact_count(running: &server::Running) -> u64 {
    let center = running.state.center.lock().expect("lock");
    center.store().contact_count().expect("count")
}

/// [`TEST_CONFIG`] with the support queue's outbound caller ID set
/// (`+15550100`, "Support Line"), for tests where the agent dials out.
pub fn test_config_with_caller_id() -> String {
    let base = TEST_CONFIG.replacen(
        "id = \"support\"\n",
        "id = \"support\"\noutbound_caller_id_number = \"+15550100\"\noutbound_caller_id_name = \"Support Line\"\n",
        1,
    );
    assert_ne!(base, TEST_CONFIG, "the support queue is in the test config");
    base
}

/// Writes the whole configuration `text` to `dir/main.toml` and loads it
/// from there (so the flow files it names resolve beside it), its store
/// in `dir`.
pub fn load_config(dir: &Path, text: &str) -> server::config::Config {
    let main = dir.join("main.toml");
    std::fs::write(&main, text).expect("config");
    let mut cfg = server::config::Config::load(&main).expect("sip test config file");
    cfg.data_dir = dir.to_path_buf();
    cfg.public_dir = dir.join("public");
    cfg
}

/// Waits until a contact rings at `client` and accepts it: the contact,
/// the agent's media leg and the customer's connection.
pub async fn agent_answers(client: &mut Client) -> (String, u32, String) {
    let c = client.first_contact("the SIP call rings").await;
    let (leg, customer) = client.accept_with_leg(&c).await;
    (c, leg, customer)
}

/// The agent's contact `c`: its state name and reason, if any.
pub fn contact_state(client: &Client, c: &str) -> Option<(String, Option<String>)> {
    let v = client.state().contacts.get(c)?;
    let reason = match &v.state {
        protocol::contact::ContactState::Error { reason, .. }
        | protocol::contact::ContactState::Ended { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    Some((v.state.name().to_owned(), reason))
}

/// Waits until the agent's contact `c` failed, and asserts its typed
/// reason is `reason` (`busy`, `number_not_found`...).
pub async fn assert_dial_fails(client: &mut Client, c: &str, reason: &str) {
    client
        .wait_for("the typed failure", |a| {
            contact_state(a, c).is_some_and(|(s, _)| s == "error")
        })
        .await;
    assert_eq!(
        contact_state(client, c),
        Some(("error".into(), Some(reason.into())))
    );
}

/// The agent adds the number `number` to contact `c` (a transfer or a
/// conference through the trunk); the new connection's id.
pub async fn add_number(client: &mut Client, c: &str, number: &str) -> String {
    match client
        .ok(protocol::wire::Op::AddConnection {
            contact_id: c.to_owned(),
            endpoint: protocol::endpoint::Endpoint::phone_number(number),
        })
        .await
    {
        protocol::wire::OpResult::ConnectionAdded { connection_id } => connection_id,
        other => panic!("add_connection: {other:?}"),
    }
}

/// The agent streams `next`'s frames in steps of `step`, at most `steps`
/// of them, until `done` holds (checked before each step); whether it did.
pub async fn talk_until(
    client: &mut Client,
    next: &mut dyn FnMut() -> Vec<u8>,
    steps: u32,
    step: Duration,
    mut done: impl FnMut(&Client) -> bool,
) -> bool {
    for _ in 0..steps {
        if done(client) {
            return true;
        }
        client.stream_media(step, next).await;
    }
    done(client)
}

/// Whether the contact's record holds the event `event` yet.
pub fn has_event(running: &server::Running, c: &str, event: &str) -> bool {
    record(running, c).events.iter().any(|e| e.event == event)
}

/// Asserts that every event of `want` is in the record `r`.
pub fn assert_events(r: &server::store::ContactRecord, want: &[&str]) {
    let events: Vec<&str> = r.events.iter().map(|e| e.event.as_str()).collect();
    for w in want {
        assert!(events.contains(w), "{w} in {events:?}");
    }
}

// ---- raw SIP messages beyond the caller's dialog ---------------------------

/// The caller's OPTIONS to the gateway over `transport` (`UDP`, `TCP`)
/// from `local`, number `n` (branch `z9hG4bKo<n>`, From tag `f<n>`,
/// Call-ID `o<n>`).
pub fn options(transport: &str, local: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{DID}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKo{n}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{CALLER}@127.0.0.1>;tag=f{n}\r\nTo: <sip:{DID}@127.0.0.1>\r\n\
Call-ID: o{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The 200 a raw peer sends to `request` (text): its Via, From, To,
/// Call-ID and CSeq copied, no body.
pub fn ok_to(request: &str) -> String {
    let copied = request
        .lines()
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    format!("SIP/2.0 200 OK\r\n{copied}\r\nContent-Length: 0\r\n\r\n")
}

// ---- outbound calls the agent placed ---------------------------------------

/// Waits until the agent's contact `c` is connected (`what` names the
/// wait: the far end answered).
pub async fn wait_connected(client: &mut Client, c: &str, what: &str) {
    client
        .wait_for(what, |a| {
            a.state()
                .contacts
                .get(c)
                .is_some_and(|v| v.state.name() == "connected")
        })
        .await;
}

/// The agent hangs up the far end of its outbound contact `c` (ends the
/// outbound connection).
pub async fn end_outbound(client: &mut Client, c: &str) {
    let k = client.state().contacts[c]
        .connections
        .iter()
        .find(|k| k.kind == protocol::contact::ConnectionKind::Outbound)
        .map(|k| k.connection_id.clone());
    let Some(k) = k else {
        panic!("no far-end connection: {:?}", client.state().contacts[c]);
    };
    client
        .ok(protocol::wire::Op::EndConnection {
            contact_id: c.to_owned(),
            connection_id: k,
        })
        .await;
}

/// The agent clears its (ended or failed) contact `c` and waits until it
/// is gone from its view.
pub async fn clear_contact(client: &mut Client, c: &str) {
    client
        .ok(protocol::wire::Op::Clear {
            contact_id: c.to_owned(),
            wrap_up_code: None,
        })
        .await;
    client
        .wait_for("the contact is gone", |a| {
            !a.state().contacts.contains_key(c)
        })
        .await;
}

/// The agent speaks `speech48` (a 48 kHz WAV) on `leg` until the far end
/// hangs up and the contact `c` ended ([`talk_until_ended`], at most
/// `steps` 500 ms steps); whether it did.
pub async fn speak_until_ended(
    client: &mut Client,
    running: &server::Running,
    c: &str,
    leg: u32,
    speech48: &Path,
    steps: u32,
) -> bool {
    let (_, pcm) = read_wav_pcm16(speech48);
    let mut next = speech_frames(pcm, leg);
    talk_until_ended(client, running, c, &mut next, steps).await
}
