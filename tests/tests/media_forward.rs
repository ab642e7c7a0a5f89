//! Forwarding without transcoding: an agent on an echo line gets its own
//! Opus packets back byte for byte (no decode, no encode in the backend),
//! on its own leg, with the sequence gaps it made kept (so a receiver's
//! FEC still works) and a marker on the first packet of a new source;
//! while the caller is held the agent gets the backend's canned silence,
//! and on resume forwarding continues the same numbering. The backend's
//! media stats count the forwarded frames and their delay inside it.

use std::time::Duration;

use media::codec::{Encoder, EncoderSettings};
use media::frame::PACKET;
use protocol::media::{decode_media_frame, encode_media_frame, MediaHeader, FLAG_MARKER};
use protocol::wire::Op;
use switchboard_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_line_gets_the_agents_own_packets_back_untouched() {
    let dir = temp_dir("media-forward");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let (c, leg, customer) = alice.accept_echo_call(addr).await;
    let view = alice.state().contacts[&c].clone();

    // Distinct packets (a tone whose frequency moves), numbered from an
    // arbitrary place, every fifth one never sent.
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut sent: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut n = 0u32;
    let base = 4_000_000_000u32;
    let mut next = move || -> (u32, Vec<u8>, Vec<u8>) {
        let mut pcm = [0.0f32; PACKET];
        for (i, x) in pcm.iter_mut().enumerate() {
            let hz = 400.0 + 10.0 * (n % 50) as f32;
            *x = 0.2 * (2.0 * std::f32::consts::PI * hz * i as f32 / 48_000.0).sin();
        }
        let payload = enc.encode(&pcm).expect("encode").to_vec();
        let seq = base.wrapping_add(n);
        let header = MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq.wrapping_mul(PACKET as u32),
        };
        let mut frame = Vec::new();
        encode_media_frame(&header, &payload, &mut frame);
        n += 1;
        (seq, payload, frame)
    };
    // Phase 1: talking to the echo line; every fifth packet is lost on
    // the way in (never sent), so the stream has gaps.
    alice
        .stream_media(Duration::from_millis(1500), &mut || {
            let (seq, payload, frame) = next();
            if seq % 5 != 0 {
                sent.push((seq, payload));
                return frame;
            }
            let (seq, payload, frame) = next();
            sent.push((seq, payload));
            frame
        })
        .await;
    // Let the last packets come back (the filler continues the numbers).
    alice
        .stream_media(
            Duration::from_millis(200),
            &mut silent_frames(leg, base.wrapping_add(1_000)),
        )
        .await;

    let back = alice.media_frames_in();
    assert!(back.iter().all(|(h, _)| h.leg == leg), "all on alice's leg");
    // Every packet alice sent came back byte for byte, in order, with
    // sequence numbers that keep alice's gaps.
    let mut matched: Vec<(u32, &MediaHeader)> = Vec::new();
    for (seq, payload) in &sent {
        if let Some((h, _)) = back.iter().find(|(_, p)| p == payload) {
            matched.push((*seq, h));
        }
    }
    assert!(
        matched.len() + 2 >= sent.len(),
        "{} of {} packets came back unchanged",
        matched.len(),
        sent.len()
    );
    for w in matched.windows(2) {
        let (s0, h0) = w[0];
        let (s1, h1) = w[1];
        assert_eq!(
            h1.sequence.wrapping_sub(h0.sequence),
            s1.wrapping_sub(s0),
            "gaps kept"
        );
        assert_eq!(
            h1.timestamp.wrapping_sub(h0.timestamp),
            s1.wrapping_sub(s0).wrapping_mul(PACKET as u32),
            "timestamps follow"
        );
    }
    let first = back
        .iter()
        .position(|(_, p)| Some(p) == sent.first().map(|s| &s.1))
        .expect("the first packet came back");
    assert!(
        back[first].0.flags & FLAG_MARKER != 0
            || back[..first]
                .iter()
                .any(|(h, _)| h.flags & FLAG_MARKER != 0),
        "the switch to the forwarded source is marked"
    );

    // Hold the echo line: alice now hears canned silence from the backend,
    // continuing her leg's numbering; on resume, forwarding again.
    let before_hold = alice.media_in.len();
    alice
        .ok(Op::Hold {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    let mut held_frame = silent_frames(leg, 0);
    alice
        .stream_media(Duration::from_millis(600), &mut held_frame)
        .await;
    let during_hold: Vec<MediaHeader> = alice.media_in[before_hold..]
        .iter()
        .map(|b| decode_media_frame(b).expect("valid").header)
        .collect();
    assert!(
        during_hold.len() >= 15,
        "the backend kept sending while the line was held: {}",
        during_hold.len()
    );
    let before_resume = alice.media_in.len();
    alice
        .ok(Op::Resume {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice
        .stream_media(Duration::from_millis(600), &mut held_frame)
        .await;
    let all: Vec<MediaHeader> = alice.media_in[before_hold.saturating_sub(1)..]
        .iter()
        .map(|b| decode_media_frame(b).expect("valid").header)
        .collect();
    // One stream throughout: every step forward is one packet and 20 ms
    // (alice's held frames are consecutive), with markers at the switches.
    let steps: Vec<u32> = all
        .windows(2)
        .map(|w| w[1].sequence.wrapping_sub(w[0].sequence))
        .collect();
    assert!(
        steps.iter().all(|&d| d == 1),
        "sequence continuous across hold and resume: {steps:?}"
    );
    let markers = all.iter().filter(|h| h.flags & FLAG_MARKER != 0).count();
    assert!(markers >= 2, "marked at hold and at resume: {markers}");
    let after: Vec<&[u8]> = alice.media_in[before_resume..]
        .iter()
        .map(|b| &b[protocol::media::HEADER_LEN..])
        .collect();
    assert!(
        after.iter().filter(|p| **p == [0xf8, 0xff, 0xfe]).count() >= 10,
        "forwarded again after resume"
    );

    let (status, stats) = sim_http(addr, "GET", "/v1/sim/media-stats", None).await;
    assert_eq!(status, 200);
    assert!(
        stats["frames_forwarded"].as_u64().unwrap_or(0) >= 60,
        "{stats}"
    );
    assert!(stats["delay_frames"].as_u64().unwrap_or(0) >= 60, "{stats}");

    // The recording without decoding: alice's packets as received, in an
    // Ogg Opus file of her own, with the manifest of the call.
    let agent_conn = view
        .agent_connection()
        .expect("alice's connection")
        .connection_id
        .clone();
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(status, 204);
    let rec_dir = dir.join("recordings").join(&c);
    let manifest = rec_dir.join("manifest.jsonl");
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&manifest).unwrap_or_default();
        if text.contains("\"end\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let said = |party: &str, event: &str| {
        events
            .iter()
            .any(|e| e["party"] == party && e["event"] == event)
    };
    assert_eq!(events[0]["event"], "start", "{text}");
    assert!(
        said(&agent_conn, "join") && said(&agent_conn, "talking"),
        "{text}"
    );
    assert!(said(&customer, "held"), "{text}");
    assert!(said(&agent_conn, "leave"), "{text}");
    assert_eq!(events.last().expect("events")["event"], "end", "{text}");
    let file = std::fs::read(rec_dir.join(format!("{agent_conn}.opus"))).expect("alice's file");
    let packets = server::bridge::ogg::read_packets(&file);
    assert_eq!(&packets[0][..8], b"OpusHead");
    let audio: Vec<&Vec<u8>> = packets[2..].iter().filter(|p| p.len() > 1).collect();
    let mine = sent.iter().filter(|(_, p)| audio.contains(&p)).count();
    assert!(
        mine + 2 >= sent.len(),
        "{mine} of {} packets recorded as sent",
        sent.len()
    );
    // The losses are in the file as concealment, not closed up.
    let fillers = packets[2..].iter().filter(|p| p.len() == 1).count();
    assert!(fillers >= sent.len() / 5, "{fillers} fillers");
    if std::path::Path::new("/usr/bin/opusinfo").exists() {
        let out = std::process::Command::new("opusinfo")
            .arg(rec_dir.join(format!("{agent_conn}.opus")))
            .output()
            .expect("opusinfo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
