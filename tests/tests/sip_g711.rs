//! G.711 forwarded to the agent's engine (issue 13, docs/protocol.md
//! section 8, "Telephone legs"): a raw UDP trunk calls in with PCMU and
//! streams RTP whose payload bytes are a pattern no codec would produce.
//! An agent whose `hello` announced `"codecs": ["pcmu", "pcma"]` must get
//! those bytes unchanged in media frames whose codec byte is 1, and its
//! own PCMU frames must reach the trunk as RTP payloads unchanged; the
//! call's recording holds the caller's bytes as they came (a μ-law WAV).
//! An agent that did not announce G.711 gets Opus (transcoded) and still
//! hears the caller.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use media::codec::Decoder;
use media::frame::PACKET;
use protocol::media::{decode_media_frame, Codec};
use protocol::wire::Op;
// `pattern(side, n)`: payload `n` of the trunk (`side` 0) or of the agent
// (`side` 1), bytes no encoder would make, so only forwarding keeps them.
use switchboard_tests::sip::{
    self, codec_frames, g711_agent, gateway, payloads_of, pcmu_pattern as pattern, pcmu_peer,
    rtp_peer, udp_socket, DID,
};
use switchboard_tests::*;

/// RTP packets the trunk sends (20 ms each).
const PACKETS: u16 = 75;

fn sip_config(dir: &Path) -> server::config::Config {
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [33000, 33999]\n\
[[sip.trunks]]\nname = \"test\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\", \"telephone-event\"]\n\
[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
        ),
    )
}

/// A 440 Hz tone as μ-law, 20 ms packet `n`.
fn tone_packet(n: u16) -> Vec<u8> {
    let pcm: Vec<f32> = (0..160)
        .map(|k| {
            let t = (f32::from(n) * 160.0 + k as f32) / 8000.0;
            0.4 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
        })
        .collect();
    let mut out = Vec::new();
    media::g711::encode(Codec::Pcmu, &pcm, &mut out);
    out
}

/// A PCMU RTP packet `seq` of 20 ms.
fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    sip::rtp(0, seq, u32::from(seq) * 160, 0x1234_5678, payload)
}

/// INVITE with PCMU to the DID, the agent answers, 200 (its SDP gives the
/// gateway's RTP address), ACK. Returns the contact, the customer's
/// connection, the agent's leg and the gateway's RTP address.
async fn answered_call(
    sock: &tokio::net::UdpSocket,
    sip: SocketAddr,
    agent: &mut Client,
    call_id: &str,
    rtp_port: u16,
) -> (String, String, u32, SocketAddr) {
    let offer = sip::sdp(rtp_port, "0", "");
    let a = sip::answered_call(sock, sip, agent, call_id, "", &offer).await;
    (a.contact, a.customer, a.leg, a.rtp)
}

/// Sends `payload(n)` as RTP every 20 ms from `rtp` to `to` ([`PACKETS`]
/// of them), and gathers the payloads of every RTP packet of payload type
/// 0 that comes back.
fn trunk_media(
    rtp: tokio::net::UdpSocket,
    to: SocketAddr,
    payload: fn(u16) -> Vec<u8>,
) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
    pcmu_peer(rtp, to, PACKETS, 600, 0x1234_5678, payload)
}

/// A raw caller's SIP socket, and its RTP socket and port.
async fn caller_sockets() -> (tokio::net::UdpSocket, tokio::net::UdpSocket, u16) {
    let (sock, _) = udp_socket().await;
    let (rtp, rtp_addr) = udp_socket().await;
    (sock, rtp, rtp_addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g711_agent_gets_the_trunks_rtp_payload_unchanged_both_ways() {
    let dir = temp_dir("sip-g711-forward");
    let (running, sip) = gateway(sip_config(&dir)).await;
    let mut alice = g711_agent(running.addr).await;
    let (sock, rtp, rtp_port) = caller_sockets().await;
    let (c, customer, leg, gateway_rtp) =
        answered_call(&sock, sip, &mut alice, "g711-1", rtp_port).await;
    let trunk = trunk_media(rtp, gateway_rtp, |n| pattern(0, n));
    // The agent answers in PCMU, its own pattern, 20 ms a frame.
    let mut next = codec_frames(leg, Codec::Pcmu, |seq| pattern(1, seq as u16));
    alice
        .stream_media(
            Duration::from_millis(u64::from(PACKETS) * 20 + 400),
            &mut next,
        )
        .await;
    let at_trunk = trunk.await.expect("trunk task");

    // Trunk -> agent: G.711 frames on the agent's leg carrying the RTP
    // payloads byte for byte, in order, 48 kHz timestamps 960 apart.
    let frames: Vec<_> = alice
        .media_in
        .iter()
        .filter_map(|b| {
            decode_media_frame(b)
                .ok()
                .map(|f| (f.codec, f.header, f.payload.to_vec()))
        })
        .collect();
    let g711: Vec<_> = frames
        .iter()
        .filter(|(c, _, _)| *c == Codec::Pcmu)
        .collect();
    let sent: Vec<Vec<u8>> = (0..PACKETS).map(|n| pattern(0, n)).collect();
    let unchanged = g711.iter().filter(|(_, _, p)| sent.contains(p)).count();
    assert!(
        unchanged * 10 >= sent.len() * 8,
        "{unchanged} of {} RTP payloads reached the agent unchanged ({} frames, {} G.711)",
        sent.len(),
        frames.len(),
        g711.len()
    );
    assert!(
        g711.iter()
            .all(|(_, h, p)| h.leg == leg && sent.contains(p)),
        "every G.711 frame is one of the trunk's payloads, on the agent's leg"
    );
    let order: Vec<usize> = g711
        .iter()
        .filter_map(|(_, _, p)| sent.iter().position(|s| s == p))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {order:?}");
    for w in g711.windows(2) {
        let (a, b) = (&w[0].1, &w[1].1);
        if b.sequence == a.sequence.wrapping_add(1) {
            assert_eq!(
                b.timestamp.wrapping_sub(a.timestamp),
                960,
                "20 ms at 48 kHz"
            );
        }
    }

    // Agent -> trunk: RTP payloads are the agent's frames, unchanged.
    // (The closure counted its frames on a copy of `seq`: every pattern
    // it can have sent in the time.)
    let mine: Vec<Vec<u8>> = (0..400).map(|n| pattern(1, n)).collect();
    let through = at_trunk.iter().filter(|p| mine.contains(p)).count();
    assert!(
        through * 10 >= (PACKETS as usize) * 8,
        "{through} of the agent's payloads reached the trunk unchanged ({} RTP packets back)",
        at_trunk.len()
    );

    // The agent hangs up; the recording holds the caller's bytes as they
    // came, in a μ-law WAV beside the (unused) Ogg file.
    alice
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    let wav = dir
        .join("recordings")
        .join(&c)
        .join(format!("{customer}.wav"));
    let mut bytes = Vec::new();
    for _ in 0..100 {
        bytes = std::fs::read(&wav).unwrap_or_default();
        // Finished: the header's data size is written.
        if bytes.len() > 58
            && u32::from_le_bytes([bytes[54], bytes[55], bytes[56], bytes[57]]) as usize
                == bytes.len() - 58
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bytes.len() > 58, "{} was written", wav.display());
    assert_eq!(u16::from_le_bytes([bytes[20], bytes[21]]), 7, "a μ-law WAV");
    let data = &bytes[58..];
    let recorded = sent
        .iter()
        .filter(|p| data.windows(160).any(|w| w == p.as_slice()))
        .count();
    assert!(
        recorded * 10 >= sent.len() * 8,
        "{recorded} of the caller's payloads are in the recording as they came"
    );
    // The on-demand mixdown decodes it.
    let mix = server::bridge::mixdown::mix_dir(&dir.join("recordings").join(&c)).expect("mixdown");
    assert!(mix.len() >= 48_000, "{} samples mixed", mix.len());
}

/// Power of `freq` in `x` (48 kHz), Goertzel.
fn power(x: &[f32], freq: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / 48_000.0;
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_g711_still_hears_the_caller_transcoded() {
    let dir = temp_dir("sip-g711-opus-agent");
    // A client that says nothing about codecs: Opus only.
    let (_running, sip, mut alice) = sip::gateway_with_alice(sip_config(&dir)).await;
    let (sock, rtp, rtp_port) = caller_sockets().await;
    let (_, _, leg, gateway_rtp) = answered_call(&sock, sip, &mut alice, "g711-2", rtp_port).await;
    let trunk = trunk_media(rtp, gateway_rtp, tone_packet);
    let mut quiet =
        media::codec::Encoder::new(media::codec::EncoderSettings::default()).expect("enc");
    let mut next = codec_frames(leg, Codec::Opus, move |_| {
        quiet.encode(&[0.0; PACKET]).expect("encode").to_vec()
    });
    alice
        .stream_media(
            Duration::from_millis(u64::from(PACKETS) * 20 + 400),
            &mut next,
        )
        .await;
    let _ = trunk.await;
    let frames: Vec<_> = alice
        .media_in
        .iter()
        .filter_map(|b| {
            decode_media_frame(b)
                .ok()
                .map(|f| (f.codec, f.payload.to_vec()))
        })
        .collect();
    assert!(
        frames.len() >= 40,
        "{} frames reached the agent",
        frames.len()
    );
    assert!(
        frames.iter().all(|(c, _)| *c == Codec::Opus),
        "no G.711 to a client that did not announce it"
    );
    let mut dec = Decoder::new().expect("decoder");
    let mut heard = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for (_, p) in &frames {
        let n = dec.decode_len(p, &mut pcm).unwrap_or(PACKET);
        heard.extend_from_slice(&pcm[..n]);
    }
    // The caller's 440 Hz tone, well above a tone it did not send.
    let (at, off) = (power(&heard, 440.0), power(&heard, 1000.0));
    assert!(at > 100.0 * off, "440 Hz {at} vs 1 kHz {off}");
    let rms = (heard.iter().map(|x| x * x).sum::<f32>() / heard.len() as f32).sqrt();
    assert!(rms > 0.05, "the tone is audible: rms {rms}");
}

/// A trunk sending 30 ms packets (240 bytes, as SIPp's G.711 pcap does):
/// all of its audio must reach the agent, whether forwarded (cut into a
/// 20 ms and a 10 ms frame, bytes unchanged) or transcoded. Before, the
/// gateway made one 20 ms frame per RTP packet whatever its length and
/// dropped the rest when it piled up: a third of a 30 ms trunk's audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_ms_rtp_packets_reach_the_agent_whole_both_paths() {
    for g711 in [true, false] {
        let dir = temp_dir(if g711 {
            "sip-ptime30-fwd"
        } else {
            "sip-ptime30-opus"
        });
        let (running, sip) = gateway(sip_config(&dir)).await;
        let mut alice = if g711 {
            g711_agent(running.addr).await
        } else {
            Client::available(running.addr, "alice", "alice-pass").await
        };
        let (sock, rtp, rtp_port) = caller_sockets().await;
        let (_, _, leg, gateway_rtp) =
            answered_call(&sock, sip, &mut alice, "ptime30", rtp_port).await;
        // 50 packets of 30 ms (1.5 s): a tone, with a pattern on top so
        // the forwarded bytes can be told apart.
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(30));
            for n in 0..50u16 {
                tick.tick().await;
                let mut payload = tone_packet(n * 3 / 2);
                payload.extend_from_slice(&tone_packet(n * 3 / 2 + 1)[..80]);
                let mut p = vec![0x80, 0];
                p.extend_from_slice(&n.to_be_bytes());
                p.extend_from_slice(&(u32::from(n) * 240).to_be_bytes());
                p.extend_from_slice(&7u32.to_be_bytes());
                p.extend_from_slice(&payload);
                let _ = rtp.send_to(&p, gateway_rtp).await;
            }
        });
        // The agent sends silence in what it may send: PCMU when it
        // announced it, Opus otherwise.
        let (codec, silence) = if g711 {
            (Codec::Pcmu, vec![0xffu8; 160])
        } else {
            let mut enc = media::codec::Encoder::new(media::codec::EncoderSettings::default())
                .expect("encoder");
            (
                Codec::Opus,
                enc.encode(&[0.0; PACKET]).expect("opus").to_vec(),
            )
        };
        let mut next = codec_frames(leg, codec, move |_| silence.clone());
        alice
            .stream_media(Duration::from_millis(1500 + 600), &mut next)
            .await;
        sender.await.expect("sender");
        // Samples of audio the agent got (48 kHz), by each frame's codec.
        let mut dec = Decoder::new().expect("decoder");
        let mut pcm = [0.0f32; PACKET];
        let mut samples = 0usize;
        for b in &alice.media_in {
            let Ok(f) = decode_media_frame(b) else {
                continue;
            };
            samples += match f.codec {
                Codec::Opus => dec.decode_len(f.payload, &mut pcm).unwrap_or(0),
                _ => f.payload.len() * 6,
            };
        }
        let sent = 50 * 240 * 6;
        assert!(
            samples * 10 >= sent * 9,
            "{} path: the agent got {samples} of {sent} samples",
            if g711 { "forwarded" } else { "transcoded" }
        );
    }
}

/// Hold, resume and the agent's DTMF on a forwarded call: on hold the
/// trunk hears the backend's hold music (Opus from the mixer, transcoded
/// by the gateway) and the agent's leg carries Opus; on resume both
/// directions are forwarded G.711 again; a digit reaches the trunk as
/// RFC 4733 events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_call_holds_resumes_and_sends_dtmf() {
    let dir = temp_dir("sip-g711-hold");
    let (running, sip) = gateway(sip_config(&dir)).await;
    let mut alice = g711_agent(running.addr).await;
    let (sock, rtp, rtp_port) = caller_sockets().await;
    // The offer has telephone-event too.
    let offer = sip::sdp(
        rtp_port,
        "0 101",
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
    );
    let call = sip::answered_call(&sock, sip, &mut alice, "hold1", "", &offer).await;
    let (c, leg, customer) = (call.contact, call.leg, call.customer);
    let gateway_rtp = call.rtp;
    // The trunk: its pattern every 20 ms for 3.4 s; every packet back is
    // kept as (payload type, payload) in arrival order.
    let mut n = 0u16;
    let send = move || {
        let p = self::rtp(n, &pattern(0, n));
        n += 1;
        Some(p)
    };
    let trunk = rtp_peer(rtp, gateway_rtp, (20, 3400), None, send);
    let mut next = codec_frames(leg, Codec::Pcmu, |seq| pattern(1, seq as u16));
    let talk = Duration::from_millis(700);
    alice.stream_media(talk, &mut next).await;
    let before_hold = alice.media_in.len();
    alice
        .ok(Op::Hold {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice.stream_media(talk, &mut next).await;
    let before_resume = alice.media_in.len();
    alice
        .ok(Op::Resume {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice.stream_media(talk, &mut next).await;
    alice
        .ok(Op::SendDigits {
            contact_id: c.clone(),
            connection_id: customer.clone(),
            digits: "5".into(),
        })
        .await;
    alice.stream_media(talk, &mut next).await;
    let at_trunk = trunk.await.expect("trunk");

    // The agent: forwarded G.711 before the hold, none of the trunk's
    // bytes while it holds (its leg carries Opus), G.711 again after.
    let codec_of = |b: &Vec<u8>| decode_media_frame(b).ok().map(|f| f.codec);
    let g711_in = |r: std::ops::Range<usize>| {
        alice.media_in[r]
            .iter()
            .filter(|b| codec_of(b) == Some(Codec::Pcmu))
            .count()
    };
    let held = &alice.media_in[before_hold..before_resume];
    assert!(g711_in(0..before_hold) >= 10, "forwarded before the hold");
    // Allow the frames in flight when the hold took effect.
    let g711_held = held
        .iter()
        .filter(|b| codec_of(b) == Some(Codec::Pcmu))
        .count();
    assert!(g711_held <= 10, "{g711_held} G.711 frames while holding");
    assert!(
        held.iter()
            .filter(|b| codec_of(b) == Some(Codec::Opus))
            .count()
            >= 10,
        "the held leg carries the backend's Opus"
    );
    assert!(
        g711_in(before_resume..alice.media_in.len()) >= 10,
        "forwarded again after resume"
    );

    // The trunk: the agent's bytes, then hold music (PCMU that is not
    // the agent's), then the agent's bytes again, and event 5.
    let mine: Vec<Vec<u8>> = (0..400).map(|n| pattern(1, n)).collect();
    let voice: Vec<bool> = payloads_of(&at_trunk, 0)
        .iter()
        .map(|p| mine.contains(p))
        .collect();
    let first = voice
        .iter()
        .position(|&m| m)
        .expect("the agent's bytes reached the trunk");
    let last = voice.iter().rposition(|&m| m).expect("and again");
    let longest_other = voice[first..=last]
        .split(|&m| m)
        .map(<[bool]>::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_other >= 15,
        "hold music between the agent's talk: longest run {longest_other}"
    );
    let events = payloads_of(&at_trunk, 101);
    assert!(
        events.iter().any(|p| p.first() == Some(&5)),
        "RFC 4733 event 5 reached the trunk ({} events)",
        events.len()
    );
}
