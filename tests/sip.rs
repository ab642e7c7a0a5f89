//! Shared helpers of the SIP gateway's integration tests (`sip_*.rs`):
//! a raw UDP caller (INVITE with SDP, ACK, BYE, reading what the gateway
//! sends), RTP packets, the contact's stored record, and the real-phone
//! side (baresip, espeak-ng/sox speech, WAV reading and correlation).
//! Plain functions over `tokio::net::UdpSocket` and strings, so a test
//! over another transport can build the same messages and send them its
//! own way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use server::sip::msg::{Message, Start};
use tokio::net::UdpSocket;

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

/// An RTP packet (version 2, no marker).
pub fn rtp(pt: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The contact's stored record.
pub fn record(running: &server::Running, c: &str) -> server::store::ContactRecord {
    running
        .state
        .center
        .lock()
        .expect("lock")
        .store()
        .contact(c)
        .expect("store")
        .expect("contact record")
}

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
    for _ in 0..200 {
        let r = record(running, c);
        if r.ended_at.is_some() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("contact {c} did not end");
}

// ---- real phones and audio ------------------------------------------------

/// Runs a tool to completion; a missing tool fails the test.
pub fn run(cmd: &str, args: &[&str]) {
    let ok = std::process::Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (cargo xtask test installs it): {e}"))
        .success();
    assert!(ok, "{cmd} {args:?} failed");
}

/// A 16-bit PCM WAV's rate and its samples (interleaved when stereo).
pub fn read_wav_pcm16(path: &Path) -> (u32, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    // Find the data chunk (sox and baresip may add others).
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        if &bytes[i..i + 4] == b"data" {
            let end = (i + 8 + len).min(bytes.len());
            let pcm = bytes[i + 8..end]
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect();
            return (rate, pcm);
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// A WAV's channel count.
pub fn wav_channels(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    u16::from_le_bytes([bytes[22], bytes[23]])
}

/// Speech from espeak-ng, as `<name>_8k.wav` (the G.711 caller's file)
/// and `<name>_48k.wav` (mono), padded with `pad_s` seconds of silence.
pub fn speech(dir: &Path, name: &str, text: &str, pad_s: u32) -> (PathBuf, PathBuf) {
    let raw = dir.join(format!("{name}_raw.wav"));
    run("espeak-ng", &["-w", raw.to_str().expect("path"), text]);
    let n8 = resample(dir, &raw, &format!("{name}_8k.wav"), 8000, 1, pad_s);
    let n48 = resample(dir, &raw, &format!("{name}_48k.wav"), 48_000, 1, pad_s);
    (n8, n48)
}

/// `raw` as `dir/out` at `rate` with `channels`, normalised to -3 dB and
/// padded with `pad_s` seconds (baresip's Opus source is 48 kHz stereo).
pub fn resample(dir: &Path, raw: &Path, out: &str, rate: u32, channels: u8, pad_s: u32) -> PathBuf {
    let path = dir.join(out);
    run(
        "sox",
        &[
            raw.to_str().expect("path"),
            "-r",
            &rate.to_string(),
            "-c",
            &channels.to_string(),
            "-b",
            "16",
            "-e",
            "signed",
            path.to_str().expect("path"),
            "norm",
            "-3",
            "pad",
            "0",
            &pad_s.to_string(),
        ],
    );
    path
}

/// Normalised correlation of `rec` against `reference` at `lag`
/// (positive: `rec` is late).
pub fn ncc_at(reference: &[f32], rec: &[f32], lag: i64) -> f64 {
    let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
    let mut overlap = 0usize;
    for (i, &x) in reference.iter().enumerate() {
        let j = i as i64 + lag;
        if j < 0 {
            continue;
        }
        let Some(&y) = rec.get(j as usize) else { break };
        let (x, y) = (f64::from(x), f64::from(y));
        xy += x * y;
        xx += x * x;
        yy += y * y;
        overlap += 1;
    }
    // A lag at the recording's edge overlaps a few samples, whose
    // correlation is near +-1 whatever they hold: it says nothing. Only a
    // lag where most of the reference lies inside the recording counts.
    if overlap * 4 < reference.len() * 3 {
        return 0.0;
    }
    if xx > 0.0 && yy > 0.0 {
        xy / (xx * yy).sqrt()
    } else {
        0.0
    }
}

/// Best normalised cross-correlation of `rec` against `reference` within
/// +-`max_lag` samples of `centre`, and its lag: a coarse search on 5 ms
/// energy envelopes, then every lag within 10 ms of the three best coarse
/// ones (a full search is too slow in a debug build).
pub fn ncc(reference: &[f32], rec: &[f32], centre: i64, max_lag: usize) -> (f64, i64) {
    const BLOCK: usize = 40;
    let env = |x: &[f32]| -> Vec<f32> {
        x.chunks(BLOCK)
            .map(|c| c.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect()
    };
    let (er, ec) = (env(reference), env(rec));
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len().max(1) as f32;
    let (mr, mc) = (mean(&er), mean(&ec));
    let er: Vec<f32> = er.iter().map(|v| v - mr).collect();
    let ec: Vec<f32> = ec.iter().map(|v| v - mc).collect();
    let blocks = (max_lag / BLOCK) as i64;
    let c = centre / BLOCK as i64;
    let mut coarse: Vec<(f64, i64)> = (c - blocks..=c + blocks)
        .map(|l| (ncc_at(&er, &ec, l), l))
        .collect();
    coarse.sort_by(|a, b| b.0.total_cmp(&a.0));
    // The fine search around the three best envelope lags.
    coarse
        .iter()
        .take(3)
        .flat_map(|&(_, l)| {
            let centre = l * BLOCK as i64;
            centre - 2 * BLOCK as i64..=centre + 2 * BLOCK as i64
        })
        .map(|l| (ncc_at(reference, rec, l), l))
        .fold((-1.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// The mean of the better half, over the reference's voiced 1 s windows
/// (8 kHz), of each window's best correlation in `rec`: robust to a lost
/// or late packet shifting the rest of a recording (which a single global
/// lag is not), and to the first second being lost while the call's media
/// route is set up on a loaded machine; still needs half the speech intact.
pub fn ncc_windows(reference: &[f32], rec: &[f32], max_lag: usize) -> f64 {
    const WINDOW: usize = 8000;
    let mut scores: Vec<f64> = reference
        .chunks_exact(WINDOW)
        .enumerate()
        .filter(|(_, w)| (w.iter().map(|v| v * v).sum::<f32>() / WINDOW as f32).sqrt() > 0.02)
        .map(|(k, w)| ncc(w, rec, (k * WINDOW) as i64, max_lag).0)
        .collect();
    assert!(scores.len() >= 2, "the reference has speech");
    scores.sort_by(|a, b| b.total_cmp(a));
    let half = scores.len().div_ceil(2);
    scores[..half].iter().sum::<f64>() / half as f64
}

/// 48 kHz audio (mono, or stereo when `channels` is 2) to 8 kHz mono,
/// averaging each 6 samples (enough for a correlation of speech).
pub fn to_8k(pcm48: &[f32], channels: usize) -> Vec<f32> {
    pcm48
        .chunks_exact(6 * channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

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

// ---- the test agent's side of the audio -----------------------------------

/// Media frames of `pcm` (48 kHz) on `leg`, Opus-encoded 20 ms a frame,
/// then silence.
pub fn speech_frames(pcm: Vec<f32>, leg: u32) -> impl FnMut() -> Vec<u8> {
    use media::codec::{Encoder, EncoderSettings};
    use media::frame::PACKET;
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut seq = 0u32;
    move || {
        let mut chunk = [0.0f32; PACKET];
        let at = seq as usize * PACKET;
        for (i, x) in chunk.iter_mut().enumerate() {
            *x = pcm.get(at + i).copied().unwrap_or(0.0);
        }
        let payload = enc.encode(&chunk).expect("encode").to_vec();
        let mut frame = Vec::new();
        let header = protocol::media::MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq.wrapping_mul(PACKET as u32),
        };
        protocol::media::encode_media_frame(&header, &payload, &mut frame);
        seq += 1;
        frame
    }
}

/// What the agent heard (its Opus media frames decoded, each for as long
/// as its packet lasts), at 48 kHz.
pub fn agent_heard_48k(frames: &[Vec<u8>]) -> Vec<f32> {
    use media::frame::PACKET;
    let mut dec = media::codec::Decoder::new().expect("decoder");
    let mut heard = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for f in frames {
        let frame = protocol::media::decode_media_frame(f).expect("frame");
        let n = dec.decode_len(frame.payload, &mut pcm).unwrap_or(PACKET);
        heard.extend_from_slice(&pcm[..n]);
    }
    heard
}

/// [`agent_heard_48k`] at 8 kHz.
pub fn agent_heard_8k(frames: &[Vec<u8>]) -> Vec<f32> {
    to_8k(&agent_heard_48k(frames), 1)
}

/// What baresip decoded (sndfile's `*-dec.wav`), at 8 kHz mono.
pub fn baresip_heard(bdir: &Path) -> Vec<f32> {
    let wav = baresip_dec_wav(bdir);
    let (rate, pcm) = read_wav_pcm16(&wav);
    let channels = usize::from(wav_channels(&wav));
    match rate {
        8000 if channels == 1 => pcm,
        48_000 => to_8k(&pcm, channels),
        other => panic!("baresip recorded {other} Hz with {channels} channels"),
    }
}

// ---- SIPp -------------------------------------------------------------------

/// A SIPp UAS running `tests/sip/<scenario>` for `calls` calls, started
/// in `dir` (its logs go there); its address.
pub fn sipp_uas(dir: &Path, scenario: &str, calls: u32) -> (tokio::process::Child, SocketAddr) {
    let port = free_udp_port_pair();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sip")
        .join(scenario);
    let sipp = tokio::process::Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sf",
            path.to_str().expect("path"),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
            "-nostdin",
            "-timeout",
            "30",
            "-timeout_error",
            "-trace_err",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp must be installed (sip-tester; cargo xtask test installs it)");
    (sipp, format!("127.0.0.1:{port}").parse().expect("addr"))
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

/// A Kamailio registrar/proxy on 127.0.0.1:`port` (UDP, and TCP on the
/// same port when `with_tcp`) with digest auth and no database, as a
/// provider's SIP edge: user X's password is "X-secret"; REGISTER is
/// challenged with 401 and everything else out of dialog with 407; calls
/// to [`DID`] go to the binding of user `switchboard` (how a provider
/// routes a DID to an account); registrations last at most 10 s so a
/// refresh happens within a test. The log says `CHALLENGED <method>
/// proto=..`, `REGISTERED <To> au=.. proto=.. ct=<Contact>` and
/// `AUTHENTICATED <method> from <user> to <R-URI> proto=..`.
pub fn kamailio_registrar_config(port: u16, with_tcp: bool) -> String {
    let transports = if with_tcp {
        format!("tcp_children=2\nlisten=udp:127.0.0.1:{port}\nlisten=tcp:127.0.0.1:{port}")
    } else {
        format!("disable_tcp=yes\nlisten=udp:127.0.0.1:{port}")
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
{transports}
alias="127.0.0.1:{port}"
alias="sip.test"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 5)
modparam("registrar", "max_expires", 10)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{ sl_send_reply("200", "Keepalive"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ route(RELAY); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
    if (!is_method("ACK")) {{ t_check_trans(); }}
    $var(pw) = $au + "-secret";
    if (is_method("REGISTER")) {{
        if (!pv_auth_check("sip.test", "$var(pw)", "0", "1")) {{
            xlog("L_NOTICE", "CHALLENGED REGISTER proto=$pr\n");
            auth_challenge("sip.test", "0"); exit;
        }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); exit; }}
        xlog("L_NOTICE", "REGISTERED $tu au=$au proto=$pr ct=$ct\n");
        exit;
    }}
    if (!pv_auth_check("sip.test", "$var(pw)", "0", "0")) {{
        xlog("L_NOTICE", "CHALLENGED $rm proto=$pr\n");
        auth_challenge("sip.test", "0"); exit;
    }}
    consume_credentials();
    xlog("L_NOTICE", "AUTHENTICATED $rm from $au to $ru proto=$pr\n");
    if (is_method("INVITE")) {{ record_route(); }}
    if ($rU == "{DID}") {{ $rU = "switchboard"; }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    route(RELAY);
}}
route[RELAY] {{ if (!t_relay()) {{ sl_reply_error(); }} exit; }}
"#
    )
}

/// A baresip phone, account [`CALLER`] at Kamailio (127.0.0.1:`kport`,
/// over UDP, with its password from [`kamailio_registrar_config`]),
/// dialing [`DID`] through it and playing `source`, for up to 30 s; its
/// files in `dir/caller`.
pub fn caller_through_kamailio(dir: &Path, kport: u16, source: &Path) -> tokio::process::Child {
    let adir = dir.join("caller");
    std::fs::create_dir_all(&adir).expect("mkdir");
    baresip_with(
        &adir,
        free_udp_port_pair(),
        &format!(
            "<sip:{CALLER}@sip.test;transport=udp>;auth_pass={CALLER}-secret;outbound=\"sip:127.0.0.1:{kport};lr\";\
regint=0;audio_codecs=pcmu;audio_source=aufile,{}",
            source.display()
        ),
        Some(format!("/dial sip:{DID}@sip.test")),
        30,
        "",
    )
}

/// Starts Kamailio in the foreground with `config` (written to
/// `dir/kam/kamailio.cfg`), logging to the returned path; the guard stops
/// it (and its forked workers) when the test ends, even by a panic.
pub fn start_kamailio(dir: &Path, config: &str) -> (tokio::process::Child, PathBuf, KamailioGuard) {
    let kdir = dir.join("kam");
    std::fs::create_dir_all(kdir.join("run")).expect("mkdir");
    std::fs::write(kdir.join("kamailio.cfg"), config).expect("cfg");
    let klog = kdir.join("kamailio.log");
    let log = std::fs::File::create(&klog).expect("log");
    let kam = tokio::process::Command::new("kamailio")
        .args([
            "-f",
            kdir.join("kamailio.cfg").to_str().expect("path"),
            "-DD",
            "-E",
            "-Y",
            kdir.join("run").to_str().expect("path"),
            "-m",
            "64",
            "-M",
            "8",
        ])
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("kamailio must be installed (cargo xtask test installs it)");
    let guard = KamailioGuard(kam.id());
    (kam, klog, guard)
}

/// Sends Kamailio SIGTERM when dropped (a failing test unwinds through
/// it), so its forked workers never outlive the test.
pub struct KamailioGuard(pub Option<u32>);

impl Drop for KamailioGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// Stops Kamailio with SIGTERM, which makes its main process stop its
/// forked workers too (SIGKILL, what `kill_on_drop` sends, would leave
/// the workers running).
pub async fn stop_kamailio(kam: &mut tokio::process::Child) {
    if let Some(pid) = kam.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), kam.wait()).await;
}
