//! Early media for a waiting SIP caller (issue 13, "Inbound": while
//! queued the caller hears the queue's audio): the gateway answers 200
//! only when an agent accepts, so while the call waits it sends `183
//! Session Progress` with its SDP, and the RTP it streams carries what the
//! queue plays. A raw UDP caller dials a number whose flow sets a queue
//! flow (a WAV prompt of espeak-ng speech) and queues the call with no
//! agent available: the RTP before any 200 must correlate with the
//! prompt; baresip calling the same number records (sndfile) the prompt
//! as it decodes it, before any answer. With `Require: 100rel` (RFC 3262)
//! the 183 is reliable: re-sent until PRACKed, and the 200 waits for the
//! PRACK.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use protocol::media::Codec;
use server::sip::msg::{Message, Start};
use switchboard_tests::sip::{self, *};
use switchboard_tests::*;
use tokio::net::UdpSocket;

const ENTRY: &str = "+15550177";

/// The test center with a trunk, an entry point whose flow queues the
/// call with a queue flow playing `prompt` (a WAV), and nobody available.
fn early_config(dir: &Path, prompt: &Path) -> server::config::Config {
    std::fs::create_dir_all(dir.join("flows")).expect("dir");
    std::fs::write(
        dir.join("flows/queue-in.toml"),
        "name = \"Queue with music (test)\"\ntype = \"inbound\"\nstart = \"work\"\n\n\
[blocks.work]\ntype = \"set_working_queue\"\nqueue = \"support\"\nnext = \"music\"\n\n\
[blocks.music]\ntype = \"set_queue_flow\"\nflow = \"waiting\"\nnext = \"go\"\n\n\
[blocks.go]\ntype = \"transfer_to_queue\"\nerror = \"bye\"\n\n\
[blocks.bye]\ntype = \"disconnect\"\n",
    )
    .expect("flow");
    std::fs::write(
        dir.join("flows/waiting.toml"),
        format!(
            "name = \"Waiting (test)\"\ntype = \"customer_queue\"\nstart = \"msg\"\n\n\
[blocks.msg]\ntype = \"play_prompt\"\nwav = \"{}\"\n",
            prompt.display()
        ),
    )
    .expect("queue flow");
    let text = format!(
        "{TEST_CONFIG}\n[[flows]]\nfile = \"flows/queue-in.toml\"\n\n[[flows]]\nfile = \"flows/waiting.toml\"\n\n\
[[entry_points]]\nnumber = \"{ENTRY}\"\nflow = \"queue-in\"\n\n\
[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [39000, 39999]\n\
[[sip.trunks]]\nname = \"test\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\"]\n\
[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
    );
    load_config(dir, &text)
}

/// Everything the caller's two sockets get for `d`: SIP messages, and the
/// μ-law payloads of RTP (payload type 0) decoded to 8 kHz.
async fn listen(sock: &UdpSocket, rtp: &UdpSocket, d: Duration) -> (Vec<Message>, Vec<f32>) {
    let end = tokio::time::Instant::now() + d;
    let (mut sip_buf, mut rtp_buf) = (vec![0u8; 8192], vec![0u8; 2048]);
    let (mut msgs, mut pcm) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            r = sock.recv_from(&mut sip_buf) => {
                if let Ok((n, _)) = r {
                    msgs.push(Message::parse(&sip_buf[..n]).expect("well-formed SIP"));
                }
            }
            r = rtp.recv_from(&mut rtp_buf) => {
                if let Ok((n, _)) = r {
                    if n > 12 && rtp_buf[1] & 0x7f == 0 {
                        let mut packet = Vec::new();
                        media::g711::decode(Codec::Pcmu, &rtp_buf[12..n], &mut packet);
                        pcm.extend_from_slice(&packet);
                    }
                }
            }
        }
    }
    (msgs, pcm)
}

fn codes(msgs: &[Message]) -> Vec<u16> {
    msgs.iter()
        .filter_map(|m| match m.start {
            Start::Response { code } => Some(code),
            _ => None,
        })
        .collect()
}

/// The prompt: espeak-ng speech at 8 kHz (its own reference).
fn prompt(dir: &Path) -> (std::path::PathBuf, Vec<f32>) {
    let (wav, _) = speech(
        dir,
        "queue",
        "Thank you for calling. All our agents are busy. Please stay on the line.",
        0,
    );
    let (_, pcm) = read_wav_pcm16(&wav);
    (wav, pcm)
}

/// The gateway of [`early_config`] playing the [`prompt`]: it, its SIP
/// address, the prompt's file and its samples.
async fn early_gateway(dir: &Path) -> (server::Running, SocketAddr, std::path::PathBuf, Vec<f32>) {
    let (wav, reference) = prompt(dir);
    let (running, sip) = gateway(early_config(dir, &wav)).await;
    (running, sip, wav, reference)
}

/// A raw caller's SIP socket, its RTP socket, its SIP address and its
/// PCMU offer (the RTP socket's port).
async fn sockets() -> (UdpSocket, UdpSocket, SocketAddr, String) {
    let (sock, local) = udp_socket().await;
    let (rtp, rtp_addr) = udp_socket().await;
    (sock, rtp, local, sip::sdp(rtp_addr.port(), "0", ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_caller_gets_183_and_hears_the_queue_audio_before_any_answer() {
    let dir = temp_dir("sip-early-media");
    let (running, sip, _, reference) = early_gateway(&dir).await;
    let (sock, rtp, local, offer) = sockets().await;
    let invite = invite_to(ENTRY, local, "early1", "", &offer);
    sock.send_to(invite.as_bytes(), sip).await.expect("send");
    let (msgs, heard) = listen(&sock, &rtp, Duration::from_secs(6)).await;
    let seen = codes(&msgs);
    assert!(!seen.contains(&200), "nobody answered: {seen:?}");
    let progress = msgs
        .iter()
        .find(|m| m.start == (Start::Response { code: 183 }))
        .unwrap_or_else(|| panic!("a 183 while queued: {seen:?}"));
    assert!(progress.to_tag().is_some(), "the 183 has our tag");
    assert!(
        progress.header("rseq").is_none(),
        "unreliable without Require: 100rel"
    );
    let body = String::from_utf8_lossy(&progress.body);
    assert!(
        body.contains("m=audio ") && body.contains("RTP/AVP 0"),
        "{body}"
    );
    // The RTP before any answer is the queue flow's prompt.
    let (_, control) = read_wav_pcm16(
        &speech(
            &dir,
            "control",
            "Hello, this is the agent. Please state your order number.",
            0,
        )
        .0,
    );
    let ncc = ncc_windows(&reference, &heard, 24_000);
    let wrong = ncc_windows(&control, &heard, 24_000);
    eprintln!(
        "early media: {} samples heard, ncc {ncc:.3} (control {wrong:.3})",
        heard.len()
    );
    assert!(ncc > 0.6, "the caller hears the queue's prompt: ncc {ncc}");
    assert!(wrong + 0.2 < ncc, "control {wrong}, prompt {ncc}");
    assert_eq!(contact_count(&running), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_100rel_the_183_is_resent_until_prack_and_the_200_waits_for_it() {
    let dir = temp_dir("sip-early-prack");
    let (running, sip, _, _) = early_gateway(&dir).await;
    let (sock, rtp, local, offer) = sockets().await;
    let invite = invite_to(
        ENTRY,
        local,
        "early2",
        "Require: 100rel\r\nSupported: 100rel\r\n",
        &offer,
    );
    sock.send_to(invite.as_bytes(), sip).await.expect("send");
    // Not PRACKed: the same reliable 183 comes again (T1 later).
    let (msgs, _) = listen(&sock, &rtp, Duration::from_millis(1500)).await;
    let reliable: Vec<&Message> = msgs
        .iter()
        .filter(|m| m.start == (Start::Response { code: 183 }))
        .collect();
    assert!(
        reliable.len() >= 2,
        "re-sent until PRACKed: {:?}",
        codes(&msgs)
    );
    assert!(
        !codes(&msgs).contains(&180),
        "no unreliable 180 with 100rel"
    );
    let first = reliable[0];
    assert_eq!(first.header("require"), Some("100rel"));
    let rseq = first.header("rseq").expect("RSeq").to_owned();
    assert!(reliable.iter().all(|m| m.header("rseq") == Some(&rseq)));
    // An agent accepts before the PRACK: no 200 may overtake it.
    let mut alice = Client::available(running.addr, "alice", "alice-pass").await;
    let c = alice.first_contact("the queued call rings").await;
    alice.accept_with_leg(&c).await;
    let (msgs, _) = listen(&sock, &rtp, Duration::from_millis(600)).await;
    assert!(
        !codes(&msgs).contains(&200),
        "no 200 before the PRACK: {:?}",
        codes(&msgs)
    );
    let to = first.header("to").expect("To").to_owned();
    // A PRACK naming another RSeq is refused; the right one is answered.
    let prack = |rack: &str, cseq: u32| {
        sip::in_dialog(
            "PRACK",
            sip,
            local,
            "early2",
            &to,
            cseq,
            &format!("RAck: {rack}\r\n"),
            "",
        )
    };
    let bad: u32 = rseq.parse::<u32>().expect("number") + 1;
    sock.send_to(prack(&format!("{bad} 1 INVITE"), 2).as_bytes(), sip)
        .await
        .expect("send");
    let r = next(&sock).await;
    assert_eq!(r.start, Start::Response { code: 481 }, "{:?}", r.cseq());
    sock.send_to(prack(&format!("{rseq} 1 INVITE"), 3).as_bytes(), sip)
        .await
        .expect("send");
    // Its 200, then the INVITE's 200 (the agent accepted already).
    let mut prack_ok = false;
    let mut ok = None;
    for _ in 0..20 {
        let m = next(&sock).await;
        match (m.start.clone(), m.cseq()) {
            (Start::Response { code: 200 }, Some((3, "PRACK"))) => prack_ok = true,
            (Start::Response { code: 200 }, Some((1, "INVITE"))) => {
                ok = Some(m);
                break;
            }
            _ => {}
        }
    }
    assert!(prack_ok, "the PRACK is answered 200");
    let ok = ok.expect("the INVITE's 200 after the PRACK");
    let to = ok.header("to").expect("To").to_owned();
    sock.send_to(ack(local, "early2", &to, 1).as_bytes(), sip)
        .await
        .expect("ack");
    wait_event(&running, &c, "sip_early_media").await;
    sock.send_to(bye(sip, local, "early2", &to, 4).as_bytes(), sip)
        .await
        .expect("bye");
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("customer_disconnect"));
}

/// The same with a real phone: baresip calls the queue (nobody answers)
/// and quits after a few seconds; what its decoder recorded (sndfile)
/// before any answer is the queue's prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_hears_the_queue_audio_as_early_media() {
    let dir = temp_dir("sip-early-baresip");
    let (running, sip, wav, reference) = early_gateway(&dir).await;
    let bdir = dir.join("baresip");
    let port = free_udp_port_pair();
    let mut phone = baresip_with(
        &bdir,
        port,
        &format!(
            "<sip:{CALLER}@127.0.0.1:{port}>;regint=0;audio_codecs=pcmu;audio_source=aufile,{}",
            wav.display()
        ),
        Some(format!("/dial sip:{ENTRY}@{sip}")),
        9,
        "",
    );
    // baresip quits by itself (-t 9), closing its recordings.
    tokio::time::timeout(Duration::from_secs(30), phone.wait())
        .await
        .expect("baresip quit in time")
        .expect("baresip ran");
    let log = std::fs::read_to_string(bdir.join("baresip.log")).unwrap_or_default();
    assert_eq!(contact_count(&running), 1, "the call was placed");
    let heard = baresip_heard(&bdir);
    let ncc = ncc_windows(&reference, &heard, 24_000);
    eprintln!(
        "baresip early media: {} samples decoded, ncc {ncc:.3}",
        heard.len()
    );
    assert!(
        ncc > 0.6,
        "baresip heard the queue's prompt before any answer: ncc {ncc}; {log}"
    );
}
