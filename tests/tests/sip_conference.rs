//! A SIP caller in a three-party conference (issue 13, "In the call"):
//! a raw PCMU trunk caller is answered by alice (whose client announces
//! G.711, so the two-party call is forwarded), who conferences in bob
//! (`Client::conference_in`, as the WebSocket conference tests do). Each
//! party talks a tone of its own (the caller 300 Hz, alice 1 kHz, bob
//! 2 kHz); each must hear the other two and not itself, judged from the
//! outside: the trunk side's PCMU RTP decoded, each agent's media frames
//! decoded, and the tones' shares of what each heard measured.

use std::time::Duration;

use media::codec::Decoder;
use media::frame::PACKET;
use protocol::media::{decode_media_frame, Codec};
use switchboard_tests::audio::*;
use switchboard_tests::sip::{self, *};
use switchboard_tests::*;
use tokio::sync::watch;

/// What an agent heard on `leg`, at 48 kHz: Opus frames decoded, G.711
/// frames (a forwarded two-party leg) expanded and repeated to 48 kHz.
fn agent_heard(frames: &[Vec<u8>], leg: u32) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut heard = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for f in frames {
        let Ok(frame) = decode_media_frame(f) else {
            continue;
        };
        if frame.header.leg != leg {
            continue;
        }
        match frame.codec {
            Codec::Opus => {
                let n = dec.decode_len(frame.payload, &mut pcm).unwrap_or(PACKET);
                heard.extend_from_slice(&pcm[..n]);
            }
            Codec::Pcmu => heard.extend(
                frame
                    .payload
                    .iter()
                    .flat_map(|b| std::iter::repeat_n(media::g711::ulaw_decode(*b), 6)),
            ),
            _ => {}
        }
    }
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_caller_and_two_agents_each_hear_the_other_two() {
    let dir = temp_dir("sip-conference");
    let running = server::start(sip::config(
        &dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [38000, 38999]\n\
[[sip.trunks]]\nname = \"g711\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\"]\n\
[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
        ),
    ))
    .await
    .expect("start");
    let sip = running.sip_addr.expect("sip");
    // Alice's client announces G.711, as the CCP does: the two-party call
    // is forwarded in PCMU until bob joins and the bridge mixes.
    let mut alice = g711_agent(running.addr).await;
    let (sock, _) = udp_socket().await;
    let (rtp, rtp_addr) = udp_socket().await;
    let port = rtp_addr.port();
    let call = answered_call(
        &sock,
        sip,
        &mut alice,
        "conf1",
        "",
        &sip::sdp(port, "0", ""),
    )
    .await;

    // The trunk caller: a 300 Hz tone as PCMU every 20 ms until told to
    // stop (at most 20 s); what comes back is kept with its arrival time.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut n = 0u32;
    let send = move || {
        let payload: Vec<u8> = (0..160u32)
            .map(|i| {
                let k = (n * 160 + i) as f32;
                let x = 0.2 * (2.0 * std::f32::consts::PI * 300.0 * k / 8000.0).sin();
                media::g711::ulaw_encode(x)
            })
            .collect();
        let p = sip::rtp(0, n as u16, n * 160, 0x5eed, &payload);
        n += 1;
        Some(p)
    };
    let trunk = rtp_peer(rtp, call.rtp, (20, 20000), Some(stop_rx), send);

    // Two parties: the caller's G.711 reaches alice as it came.
    let mut a_next = tone_frames(1000.0, call.leg);
    alice
        .stream_media(Duration::from_millis(600), &mut a_next)
        .await;
    let forwarded = alice
        .media_in
        .iter()
        .filter_map(|f| decode_media_frame(f).ok())
        .filter(|f| f.header.leg == call.leg && f.codec == Codec::Pcmu)
        .count();
    assert!(
        forwarded > 0,
        "before the conference alice gets the trunk's PCMU forwarded"
    );

    // Alice conferences bob in.
    let mut bob =
        Client::connect(running.addr, &login(running.addr, "bob", "bob-pass").await).await;
    bob.set_available().await;
    let bob_leg = alice.conference_in(&mut bob, &call.contact, "qc-bob").await;
    let alice_leg = call.leg;

    // Alice says 1 kHz, bob 2 kHz, for three seconds; the first second
    // (the mix settling, jitter buffers filling) is not judged.
    let mut b_next = tone_frames(2000.0, bob_leg);
    alice.media_in.clear();
    bob.media_in.clear();
    let talk_start = tokio::time::Instant::now();
    tokio::join!(
        alice.stream_media(Duration::from_millis(3000), &mut a_next),
        bob.stream_media(Duration::from_millis(3000), &mut b_next),
    );
    let _ = stop_tx.send(true);
    let at_trunk = trunk.await.expect("trunk");

    let tail = |x: Vec<f32>| x[x.len() / 3..].to_vec();
    let alice_hears = tail(agent_heard(&alice.media_in, alice_leg));
    let bob_hears = tail(agent_heard(&bob.media_in, bob_leg));
    let trunk_hears: Vec<f32> = at_trunk
        .iter()
        .filter(|p| p.pt == 0 && p.at >= talk_start + Duration::from_millis(1000))
        .flat_map(|p| p.payload.iter().map(|b| media::g711::ulaw_decode(*b)))
        .collect();
    let shares = |x: &[f32], rate: f32| {
        (
            tone_share_at(x, 300.0, rate),
            tone_share_at(x, 1000.0, rate),
            tone_share_at(x, 2000.0, rate),
            level_db(x),
        )
    };
    let (a300, a1k, a2k, a_db) = shares(&alice_hears, 48_000.0);
    let (b300, b1k, b2k, b_db) = shares(&bob_hears, 48_000.0);
    let (t300, t1k, t2k, t_db) = shares(&trunk_hears, 8_000.0);
    eprintln!(
        "shares of 300 Hz / 1 kHz / 2 kHz, level: alice {a300:.2} {a1k:.2} {a2k:.2} {a_db:.1} dB \
({} samples); bob {b300:.2} {b1k:.2} {b2k:.2} {b_db:.1} dB ({}); trunk {t300:.2} {t1k:.2} \
{t2k:.2} {t_db:.1} dB ({} samples)",
        alice_hears.len(),
        bob_hears.len(),
        trunk_hears.len()
    );
    assert!(
        alice_hears.len() >= 48_000 && bob_hears.len() >= 48_000,
        "both agents got audio"
    );
    assert!(trunk_hears.len() >= 8_000, "the trunk got audio");
    assert!(a300 > 0.2 && a2k > 0.2, "alice hears the caller and bob");
    assert!(a1k < 0.05, "alice does not hear herself");
    assert!(b300 > 0.2 && b1k > 0.2, "bob hears the caller and alice");
    assert!(b2k < 0.05, "bob does not hear himself");
    assert!(t1k > 0.2 && t2k > 0.2, "the caller hears both agents");
    assert!(t300 < 0.05, "the caller does not hear itself");
    for (who, db) in [("alice", a_db), ("bob", b_db), ("the caller", t_db)] {
        assert!(
            db > -40.0,
            "{who} hears the others at a usable level: {db:.1} dB"
        );
    }

    sock.send_to(
        sip::bye(sip, sock.local_addr().expect("addr"), "conf1", &call.to, 2).as_bytes(),
        sip,
    )
    .await
    .expect("bye");
    let r = wait_ended(&running, &call.contact).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("customer_disconnect"));
}
