//! A call with real audio through the backend's media bridge: the
//! simulated caller plays a 300 Hz tone, the agent's client sends a 1 kHz
//! tone as Opus frames on its socket. Checked on the audio itself: the
//! agent hears the caller; the caller hears the agent; on hold the caller
//! hears the hold tone and not the agent; muted, the caller hears nothing
//! of the agent; DTMF "5" reaches the caller as 770 + 1336 Hz; the
//! contact's recording (per-party Ogg Opus files referenced from its
//! record) mixes on demand into both sides, for an agent who took part.

use std::time::Duration;

use media::codec::Decoder;
use media::frame::PACKET;
use protocol::media::decode_media_frame;
use protocol::wire::Op;
use switchboard_tests::audio::*;
use switchboard_tests::*;

/// A backend in `dir` with `audio/tone300.wav`, the 300 Hz tone the
/// simulated callers play.
async fn start_with_caller_tone(dir: &std::path::Path) -> server::Running {
    let cfg = test_config(dir);
    write_tone_wav(
        &cfg.public_dir.join("audio/tone300.wav"),
        300.0,
        0.2,
        30_000,
    );
    server::start(cfg).await.expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_flows_both_ways_with_hold_mute_dtmf_and_recording() {
    let dir = temp_dir("media");
    let running = start_with_caller_tone(&dir).await;
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;

    let body = r#"{"from":"+819012345678","queue":"support","play":"audio/tone300.wav"}"#;
    let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(body)).await;
    assert_eq!(status, 201, "{json}");
    let c = json["contact_id"].as_str().expect("id").to_owned();
    alice
        .wait_for("ring", |a| a.state().contacts.contains_key(&c))
        .await;
    let (leg, customer) = alice.accept_with_leg(&c).await;

    // The agent's "microphone": a 1 kHz tone, Opus-encoded, paced at 20 ms.
    let mut next = tone_frames(1000.0, leg);
    let phase = Duration::from_millis(2000);
    alice.stream_media(phase, &mut next).await; // talking
    let heard_by_agent = alice.media_in.len();
    alice
        .ok(Op::Hold {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice.stream_media(phase, &mut next).await; // hold
    alice
        .ok(Op::Resume {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice.ok(Op::Mute).await;
    alice.stream_media(phase, &mut next).await; // muted
    alice.ok(Op::Unmute).await;
    alice
        .ok(Op::SendDigits {
            contact_id: c.clone(),
            connection_id: customer.clone(),
            digits: "5".into(),
        })
        .await;
    alice
        .stream_media(Duration::from_millis(1000), &mut next)
        .await; // DTMF
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(status, 204);

    // What the agent heard: the caller's 300 Hz.
    let mut dec = Decoder::new().expect("decoder");
    let mut agent_heard = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for f in &alice.media_in[..heard_by_agent] {
        let frame = decode_media_frame(f).expect("valid frames from the bridge");
        assert_eq!(frame.header.leg, leg);
        dec.decode(frame.payload, &mut pcm).expect("decode");
        agent_heard.extend_from_slice(&pcm);
    }
    assert!(
        heard_by_agent > 60,
        "the agent received audio frames: {heard_by_agent}"
    );
    let tail = &agent_heard[agent_heard.len() / 2..];
    eprintln!(
        "agent hears: 300 Hz share {:.2}, level {:.1} dB",
        tone_share(tail, 300.0),
        level_db(tail)
    );
    assert!(
        tone_share(tail, 300.0) > 0.5,
        "the agent hears the caller's tone"
    );

    // What the caller heard, phase by phase (skipping 400 ms around each change).
    let heard = caller_heard(addr, &c).await;
    let seg = |from_ms: usize, to_ms: usize| {
        &heard[(from_ms * 48).min(heard.len())..(to_ms * 48).min(heard.len())]
    };
    let talking = seg(600, 1800);
    let hold = seg(2600, 3800);
    let muted = seg(4600, 5800);
    // DTMF lasts 100 ms: the strongest 50 ms window around it.
    let dtmf_window = |f: f32| {
        let d = seg(5800, 7000);
        d.chunks(2400).map(|w| tone_share(w, f)).fold(0.0, f64::max)
    };
    eprintln!(
        "caller hears: talking 1k {:.2}; hold 1k {:.2} level {:.1} dB; muted {:.1} dB; dtmf 770 {:.3} 1336 {:.3}",
        tone_share(talking, 1000.0), tone_share(hold, 1000.0), level_db(hold), level_db(muted),
        dtmf_window(770.0), dtmf_window(1336.0)
    );
    assert!(
        tone_share(talking, 1000.0) > 0.5,
        "the caller hears the agent"
    );
    assert!(
        tone_share(hold, 1000.0) < 0.05,
        "on hold the agent's microphone is not sent"
    );
    assert!(
        level_db(hold) > -40.0,
        "on hold the caller hears hold music"
    );
    assert!(
        level_db(muted) < -60.0,
        "muted: nothing of the agent reaches the caller"
    );
    assert!(
        dtmf_window(770.0) > 0.1 && dtmf_window(1336.0) > 0.1,
        "DTMF 5 is audible"
    );

    // The contact's recording is on disk (one Ogg Opus file per party and
    // a manifest, referenced from the record), and its mix is made when an
    // agent who took part fetches it.
    let record = stored_contact(&running, &c);
    let rec_dir = std::path::PathBuf::from(
        record
            .recording
            .expect("recording referenced from the record"),
    );
    let path = format!("/v1/contacts/{c}/recording");
    let (status, _) = server::sim::http_request_bytes(addr, "GET", &path, &[])
        .await
        .expect("http");
    assert_eq!(status, 401, "a recording needs a token");
    let bob_token = login(addr, "bob", "bob-pass").await;
    let bob_auth = format!("Bearer {bob_token}");
    let (status, _) =
        server::sim::http_request_bytes(addr, "GET", &path, &[("Authorization", &bob_auth)])
            .await
            .expect("http");
    assert_eq!(status, 404, "an agent who took no part gets nothing");
    let alice_auth = format!("Bearer {}", login(addr, "alice", "alice-pass").await);
    let (status, wav) =
        server::sim::http_request_bytes(addr, "GET", &path, &[("Authorization", &alice_auth)])
            .await
            .expect("http");
    assert_eq!(status, 200);
    let rec = wav_samples(&wav);
    assert!(
        rec.len() > 48_000 * 5,
        "recording covers the call: {} samples",
        rec.len()
    );
    // The mix holds both sides: the caller's 300 Hz and the agent's 1 kHz
    // while both talk (the first phase, skipping its edges).
    let talking = &rec[(600 * 48).min(rec.len())..(1800 * 48).min(rec.len())];
    assert!(
        tone_share(talking, 300.0) > 0.1 && tone_share(talking, 1000.0) > 0.1,
        "the mix has both parties: 300 Hz {:.2}, 1 kHz {:.2}",
        tone_share(talking, 300.0),
        tone_share(talking, 1000.0)
    );
    let files: Vec<String> = std::fs::read_dir(&rec_dir)
        .expect("recording dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().filter(|f| f.ends_with(".opus")).count() == 2
            && files.iter().any(|f| f == "manifest.jsonl")
            && !files.iter().any(|f| f.ends_with(".wav")),
        "one Ogg file per party and a manifest, no WAV: {files:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A conference: the caller, alice and bob all hear each other. Alice
/// consults bob (the caller goes on hold), then conferences everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conference_mixes_every_party_for_every_other() {
    let dir = temp_dir("conference");
    let running = start_with_caller_tone(&dir).await;
    let addr = running.addr;
    let mut alice = Client::connect(addr, &login(addr, "alice", "alice-pass").await).await;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    alice.set_available().await;
    let body = r#"{"from":"+819012345678","queue":"support","play":"audio/tone300.wav"}"#;
    let (_, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(body)).await;
    let c = json["contact_id"].as_str().expect("id").to_owned();
    alice.accept_when_ringing(&c).await;
    bob.set_available().await;
    let bob_leg = alice.conference_in(&mut bob, &c, "qc-bob").await;
    let alice_leg = alice.state().contacts[&c]
        .agent_connection()
        .and_then(|k| k.media_leg)
        .expect("alice's leg");

    // Alice says 1 kHz, bob 2 kHz, the caller 300 Hz, for three seconds.
    let mut a_next = tone_frames(1000.0, alice_leg);
    let mut b_next = tone_frames(2000.0, bob_leg);
    alice.media_in.clear();
    bob.media_in.clear();
    tokio::join!(
        alice.stream_media(Duration::from_millis(3000), &mut a_next),
        bob.stream_media(Duration::from_millis(3000), &mut b_next),
    );
    let decode_tail = |frames: &[Vec<u8>]| {
        let mut dec = Decoder::new().expect("decoder");
        let mut out = Vec::new();
        let mut pcm = [0.0f32; PACKET];
        for f in frames {
            let frame = decode_media_frame(f).expect("frame");
            dec.decode(frame.payload, &mut pcm).expect("decode");
            out.extend_from_slice(&pcm);
        }
        out[out.len() / 3..].to_vec()
    };
    let alice_hears = decode_tail(&alice.media_in);
    let bob_hears = decode_tail(&bob.media_in);
    let share = |x: &[f32], f: f32| tone_share(x, f);
    eprintln!(
        "alice hears 300 {:.2} 2k {:.2} 1k {:.2}; bob hears 300 {:.2} 1k {:.2} 2k {:.2}",
        share(&alice_hears, 300.0),
        share(&alice_hears, 2000.0),
        share(&alice_hears, 1000.0),
        share(&bob_hears, 300.0),
        share(&bob_hears, 1000.0),
        share(&bob_hears, 2000.0)
    );
    assert!(
        share(&alice_hears, 300.0) > 0.2 && share(&alice_hears, 2000.0) > 0.2,
        "alice hears the caller and bob"
    );
    assert!(
        share(&alice_hears, 1000.0) < 0.05,
        "alice does not hear herself"
    );
    assert!(
        share(&bob_hears, 300.0) > 0.2 && share(&bob_hears, 1000.0) > 0.2,
        "bob hears the caller and alice"
    );
    assert!(
        share(&bob_hears, 2000.0) < 0.05,
        "bob does not hear himself"
    );
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = caller_heard(addr, &c).await;
    let tail = &heard[heard.len().saturating_sub(48_000 * 2)..];
    eprintln!(
        "caller hears 1k {:.2} 2k {:.2}",
        share(tail, 1000.0),
        share(tail, 2000.0)
    );
    assert!(
        share(tail, 1000.0) > 0.2 && share(tail, 2000.0) > 0.2,
        "the caller hears both agents"
    );
    let _ = std::fs::remove_dir_all(dir);
}
