//! A conference whose talkers take turns: a listener who gets a mix
//! (every party here: none announces `media_legs`) is sent the one
//! active talker's own packets, or canned silence, instead of a fresh
//! encode whenever everyone else it hears is silent. Judged from the
//! outside, on what each party hears: the right talkers at their level,
//! never themselves, one continuous stream (sequence and timestamps),
//! through the switches between a mix and a lone talker both ways.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use media::codec::{Decoder, Encoder, EncoderSettings};
use media::frame::PACKET;
use protocol::media::{decode_media_frame, encode_media_frame, MediaHeader};
use switchboard_tests::audio::*;
use switchboard_tests::*;
use tokio_tungstenite::tungstenite::Message;

/// One party's microphone: a tone while it talks, digital silence (what
/// a muted or denoised microphone sends) while it does not, one stream.
struct Voice {
    enc: Encoder,
    hz: f32,
    leg: u32,
    seq: u32,
}

impl Voice {
    fn new(hz: f32, leg: u32) -> Voice {
        Voice {
            enc: Encoder::new(EncoderSettings::default()).expect("encoder"),
            hz,
            leg,
            seq: 0,
        }
    }

    fn frame(&mut self, talking: bool) -> Vec<u8> {
        self.frame_and_payload(talking).0
    }

    /// A frame and the Opus packet in it.
    fn frame_and_payload(&mut self, talking: bool) -> (Vec<u8>, Vec<u8>) {
        let mut pcm = [0.0f32; PACKET];
        if talking {
            for (i, x) in pcm.iter_mut().enumerate() {
                let n = self.seq as usize * PACKET + i;
                *x = 0.2 * (2.0 * std::f32::consts::PI * self.hz * n as f32 / 48_000.0).sin();
            }
        }
        let payload = self.enc.encode(&pcm).expect("encode").to_vec();
        let mut frame = Vec::new();
        let header = MediaHeader {
            flags: 0,
            leg: self.leg,
            sequence: self.seq,
            timestamp: self.seq.wrapping_mul(PACKET as u32),
        };
        encode_media_frame(&header, &payload, &mut frame);
        self.seq += 1;
        (frame, payload)
    }
}

/// The frames of one stream, in arrival order: checks that it is one
/// continuous stream (each frame on in sequence, and on in timestamp by
/// the packets' durations, a gap where a loaded machine dropped a frame
/// kept as a gap in both) and decodes it.
fn decode_stream(frames: &[Vec<u8>], leg: u32, who: &str) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut out = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    let mut last: Option<(u32, u32, u32)> = None;
    let mut gaps = 0;
    for f in frames {
        let frame = decode_media_frame(f).expect("frame");
        assert_eq!(frame.header.leg, leg, "{who}: one leg");
        let n = dec.decode_len(frame.payload, &mut pcm).expect("decode");
        if let Some((seq, ts, dur)) = last {
            let step = frame.header.sequence.wrapping_sub(seq);
            assert!(
                (1..=50).contains(&step),
                "{who}: sequence continuous, {seq} then {}",
                frame.header.sequence
            );
            gaps += usize::from(step > 1);
            assert_eq!(
                frame.header.timestamp,
                ts.wrapping_add(dur * step),
                "{who}: timestamps continuous"
            );
        }
        last = Some((frame.header.sequence, frame.header.timestamp, n as u32));
        out.extend_from_slice(&pcm[..n]);
    }
    assert!(
        gaps * 20 <= frames.len(),
        "{who}: {gaps} gaps in {} frames",
        frames.len()
    );
    out
}

/// What a listener hears of each talker in `x`: (300 Hz, 1 kHz, 2 kHz)
/// shares and the level.
fn heard(x: &[f32]) -> String {
    format!(
        "300 {:.2} 1k {:.2} 2k {:.2} level {:.1} dB",
        tone_share(x, 300.0),
        tone_share(x, 1000.0),
        tone_share(x, 2000.0),
        level_db(x)
    )
}

/// Checks one listener's phase: the tones in `hears` are there, the ones
/// in `not` are not, and the level is that of the talkers (one tone at
/// 0.2 is about -17 dBFS; two about -14).
fn judge(x: &[f32], who: &str, hears: &[f32], not: &[f32]) {
    assert!(x.len() >= 48_000 / 2, "{who}: at least 0.5 s to judge");
    for &f in hears {
        assert!(tone_share(x, f) > 0.2, "{who} hears {f} Hz: {}", heard(x));
    }
    for &f in not {
        assert!(
            tone_share(x, f) < 0.05,
            "{who} does not hear {f} Hz: {}",
            heard(x)
        );
    }
    let want = -17.0 + 10.0 * (hears.len() as f64).log10();
    let level = level_db(x);
    assert!(
        (level - want).abs() < 3.0,
        "{who}: level {level:.1} dB, the talkers' is {want:.1}: {}",
        heard(x)
    );
}

async fn media_stats(addr: std::net::SocketAddr) -> serde_json::Value {
    sim_http(addr, "GET", "/v1/sim/media-stats", None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_whose_other_talkers_are_silent_becomes_the_lone_talkers_packets_and_stays_right() {
    let dir = temp_dir("mix-lone");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::connect(addr, &login(addr, "alice", "alice-pass").await).await;
    alice.set_available().await;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;

    // A customer phone dials in.
    let (mut phone, _, phone_leg, alice_leg, bob_leg) =
        phone_conference(addr, &mut alice, &mut bob).await;
    let before = media_stats(addr).await;

    // Three phases of 1.5 s: alice talks (1 kHz) while bob is silent;
    // both talk; bob talks (2 kHz) while alice is silent. The phone says
    // 300 Hz throughout. Every party gets a mix.
    const PHASE: Duration = Duration::from_millis(1500);
    let phone_task = tokio::spawn(async move {
        let mut voice = Voice::new(300.0, phone_leg);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut heard: Vec<(Instant, Vec<u8>)> = Vec::new();
        let end = tokio::time::Instant::now() + 3 * PHASE + Duration::from_millis(200);
        while tokio::time::Instant::now() < end {
            tokio::select! {
                _ = tick.tick() => {
                    phone.send(Message::Binary(voice.frame(true).into())).await.expect("phone sends");
                }
                msg = phone.next() => {
                    if let Some(Ok(Message::Binary(b))) = msg {
                        heard.push((Instant::now(), b.to_vec()));
                    }
                }
            }
        }
        heard
    });
    let mut a = Voice::new(1000.0, alice_leg);
    let mut b = Voice::new(2000.0, bob_leg);
    alice.media_in.clear();
    bob.media_in.clear();
    let mut marks = vec![(Instant::now(), alice.media_in.len(), bob.media_in.len())];
    for (a_talks, b_talks) in [(true, false), (true, true), (false, true)] {
        let mut a_next = || a.frame(a_talks);
        let mut b_next = || b.frame(b_talks);
        tokio::join!(
            alice.stream_media(PHASE, &mut a_next),
            bob.stream_media(PHASE, &mut b_next),
        );
        marks.push((Instant::now(), alice.media_in.len(), bob.media_in.len()));
    }
    let phone_heard = phone_task.await.expect("phone task");
    let after = media_stats(addr).await;
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let saved = n(&after, "mix_encodes_saved") - n(&before, "mix_encodes_saved");
    let encoded = n(&after, "mix_encodes") - n(&before, "mix_encodes");
    eprintln!("mixes sent without an encode: {saved}, encoded: {encoded}");

    // Each party's whole stream is one continuous stream through every
    // switch between a mix and a lone talker's packets.
    let phone_frames: Vec<Vec<u8>> = phone_heard.iter().map(|(_, f)| f.clone()).collect();
    let phone_pcm = decode_stream(&phone_frames, phone_leg, "the phone");
    let alice_pcm = decode_stream(&alice.media_in, alice_leg, "alice");
    let bob_pcm = decode_stream(&bob.media_in, bob_leg, "bob");

    // Each phase, judged from 400 ms after it starts (the mixer's jitter
    // buffer and a silent talker's 200 ms hangover) to its end.
    const SKIP: usize = 20;
    let expect: [[&[f32]; 6]; 3] = [
        // phone hears / not, alice hears / not, bob hears / not
        [
            &[1000.0],
            &[2000.0, 300.0],
            &[300.0],
            &[2000.0, 1000.0],
            &[300.0, 1000.0],
            &[2000.0],
        ],
        [
            &[1000.0, 2000.0],
            &[300.0],
            &[300.0, 2000.0],
            &[1000.0],
            &[300.0, 1000.0],
            &[2000.0],
        ],
        [
            &[2000.0],
            &[1000.0, 300.0],
            &[300.0, 2000.0],
            &[1000.0],
            &[300.0],
            &[1000.0, 2000.0],
        ],
    ];
    // Frames are 20 ms here (the mixer's and the agents' own).
    let pcm_of = |pcm: &[f32], from: usize, to: usize| {
        pcm[(from * PACKET).min(pcm.len())..(to * PACKET).min(pcm.len())].to_vec()
    };
    for (k, [ph, ph_not, al, al_not, bo, bo_not]) in expect.iter().enumerate() {
        let (t0, a0, b0) = marks[k];
        let (t1, a1, b1) = marks[k + 1];
        let from = phone_heard.partition_point(|(t, _)| *t < t0) + SKIP;
        let to = phone_heard.partition_point(|(t, _)| *t < t1);
        judge(
            &pcm_of(&phone_pcm, from, to),
            &format!("the phone, phase {k}"),
            ph,
            ph_not,
        );
        judge(
            &pcm_of(&alice_pcm, a0 + SKIP, a1),
            &format!("alice, phase {k}"),
            al,
            al_not,
        );
        judge(
            &pcm_of(&bob_pcm, b0 + SKIP, b1),
            &format!("bob, phase {k}"),
            bo,
            bo_not,
        );
    }
    // The shortcut was taken (so the phases above judged it): in the
    // phases with a silent agent, the phone's and one agent's mixes.
    assert!(
        saved >= 50,
        "mixes replaced by a lone talker's packets: {saved} (encoded {encoded})"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The conference as the backend's load shape has it (docs/protocol.md
/// section 8): both agents announce `media_legs`, so only the customer's
/// phone gets a mix. One agent talks; the other agent and the phone send
/// digital silence, all at a steady 50 frames a second. Then what the
/// phone hears is the talker's own packets, byte for byte and in the
/// talker's order, and the mixer encodes (almost) nothing for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_conference_agents_the_customer_hears_the_lone_talkers_own_packets_without_an_encode()
{
    let dir = temp_dir("mix-lone-legs");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice =
        Client::connect_mixing_legs(addr, &login(addr, "alice", "alice-pass").await).await;
    alice.set_available().await;
    let mut bob = Client::connect_mixing_legs(addr, &login(addr, "bob", "bob-pass").await).await;

    let (mut phone, _, phone_leg, alice_leg, bob_leg) =
        phone_conference(addr, &mut alice, &mut bob).await;
    let before = media_stats(addr).await;

    // Two seconds: alice talks (1 kHz), bob and the phone are silent.
    const TALK: Duration = Duration::from_millis(2000);
    let phone_task = tokio::spawn(async move {
        let mut voice = Voice::new(300.0, phone_leg);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut heard: Vec<Vec<u8>> = Vec::new();
        let end = tokio::time::Instant::now() + TALK + Duration::from_millis(100);
        while tokio::time::Instant::now() < end {
            tokio::select! {
                _ = tick.tick() => {
                    phone.send(Message::Binary(voice.frame(false).into())).await.expect("phone sends");
                }
                msg = phone.next() => {
                    if let Some(Ok(Message::Binary(b))) = msg {
                        heard.push(b.to_vec());
                    }
                }
            }
        }
        heard
    });
    let mut a = Voice::new(1000.0, alice_leg);
    let mut b = Voice::new(2000.0, bob_leg);
    let mut said: Vec<Vec<u8>> = Vec::new();
    let mut a_next = || {
        let (frame, payload) = a.frame_and_payload(true);
        said.push(payload);
        frame
    };
    let mut b_next = || b.frame(false);
    tokio::join!(
        alice.stream_media(TALK, &mut a_next),
        bob.stream_media(TALK, &mut b_next),
    );
    let heard = phone_task.await.expect("phone task");
    let after = media_stats(addr).await;
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let saved = n(&after, "mix_encodes_saved") - n(&before, "mix_encodes_saved");
    let encoded = n(&after, "mix_encodes") - n(&before, "mix_encodes");

    // After the first 400 ms (the mixer's jitter buffer, and the 200 ms
    // a talker stays active after its last loud packet), every packet
    // the phone gets should be one alice sent, in her order.
    let payloads: Vec<&[u8]> = heard
        .iter()
        .map(|f| decode_media_frame(f).expect("frame"))
        .inspect(|f| assert_eq!(f.header.leg, phone_leg, "the phone's own leg"))
        .map(|f| f.payload)
        .skip(20)
        .collect();
    let mut next = 0;
    let mut hers = 0;
    for p in &payloads {
        if let Some(k) = said[next..].iter().position(|q| q.as_slice() == *p) {
            next += k + 1;
            hers += 1;
        }
    }
    eprintln!(
        "the phone got {} packets after the warm-up, {hers} of them alice's own in her order; mixes encoded {encoded}, sent without an encode {saved}",
        payloads.len()
    );
    assert!(payloads.len() >= 50, "the phone hears: {}", payloads.len());
    assert!(
        hers * 10 >= payloads.len() * 9,
        "the phone hears alice's own packets: {hers} of {}",
        payloads.len()
    );
    assert!(
        saved >= 3 * encoded && saved >= 50,
        "no encode for a lone talker: {encoded} encoded, {saved} not"
    );
    let _ = std::fs::remove_dir_all(dir);
}
