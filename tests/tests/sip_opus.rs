//! Opus trunk legs (issue 13, "Media"; RFC 7587) and the codec matrix of
//! the inbound audio test: a trunk whose codecs list Opus first gets an
//! Opus leg when the far end offers `opus/48000/2`, and the gateway
//! forwards the Opus packets between the RTP stream and the agent's
//! engine without transcoding.
//!
//! - A raw UDP trunk sends RTP whose Opus payloads are byte patterns no
//!   encoder would produce (a valid TOC byte, then a pattern): the agent
//!   must get them unchanged as Opus media frames, 10 and 20 ms packets
//!   alike on the 48 kHz clock, and its own frames must reach the trunk
//!   as RTP payloads unchanged.
//! - baresip (its opus module) calls in from speech, and is called by the
//!   agent; audio both ways by correlation, as the PCMU tests do. PCMA
//!   gets the same inbound test.
//! - RFC 4733 events beside Opus (§2.1, §7.1.1): the raw trunk offers
//!   `telephone-event` at 8 and 48 kHz; the answer keeps the 48 kHz one
//!   (the audio's clock); the agent's key reaches the trunk as events
//!   whose timestamp is on the audio's clock and whose duration, in
//!   48 kHz units, spans the key's 100 ms; the trunk's key sent at 48 kHz
//!   reaches the agent as the right digit.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use protocol::media::{decode_media_frame, Codec};
use protocol::wire::{Event, Op};
use streams_sdk::Output;
use switchboard_tests::sip::{self, *};
use switchboard_tests::*;

/// A gateway whose trunk prefers `codecs` (TOML list items); calls from
/// 127.0.0.1 to the DID reach the support queue; with `address`, dials
/// go there.
fn opus_config(dir: &Path, codecs: &str, address: Option<SocketAddr>) -> server::config::Config {
    let address = address
        .map(|a| format!("address = \"{a}\"\n"))
        .unwrap_or_default();
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [37000, 37999]\n\
[[sip.trunks]]\nname = \"opus\"\n{address}allow = [\"127.0.0.1\"]\ncodecs = [{codecs}]\n\
[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
        ),
    )
}

/// Opus packet `n` of `side` (0 the trunk, 1 the agent): a TOC byte for
/// one SILK wideband frame of `ms` (10 or 20), then 40 pattern bytes.
fn pattern(side: u8, n: u16, ms: u32) -> Vec<u8> {
    let config: u8 = if ms == 10 { 8 } else { 9 };
    let mut p = vec![config << 3];
    p.extend((0..40u16).map(|k| (n.wrapping_mul(31).wrapping_add(k * 7) as u8) ^ (side * 0x5a)));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_packets_are_forwarded_unchanged_both_ways() {
    let dir = temp_dir("sip-opus-forward");
    let (running, sip, mut alice) =
        gateway_with_alice(opus_config(&dir, "\"Opus\", \"PCMU\"", None)).await;
    let (sock, _) = udp_socket().await;
    let (rtp, rtp_addr) = udp_socket().await;
    let port = rtp_addr.port();
    // PCMU first in the offer: the trunk's order (Opus first) decides.
    let offer = sip::sdp(
        port,
        "0 96",
        "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n",
    );
    let call = answered_call(&sock, sip, &mut alice, "opus1", "", &offer).await;
    let answer = String::from_utf8_lossy(&call.ok.body).into_owned();
    assert!(
        answer.contains("m=audio ") && answer.contains(" RTP/AVP 96\r\n"),
        "Opus chosen at the offer's payload type: {answer}"
    );
    assert!(answer.contains("a=rtpmap:96 opus/48000/2\r\n"), "{answer}");
    assert!(answer.contains("a=maxptime:20\r\n"), "{answer}");

    // The trunk: 40 packets of 20 ms, then 40 of 10 ms, on the 48 kHz
    // clock; packet 5 is lost on the way. Everything that comes back is
    // kept.
    let (mut ts, mut n, mut wait) = (90_000u32, 0u16, 0u32);
    let send = move || {
        if wait > 0 {
            wait -= 1;
            return None;
        }
        if n >= 80 {
            return None;
        }
        let ms = if n < 40 { 20 } else { 10 };
        let p = (n != 5).then(|| sip::rtp(96, 1000 + n, ts, 0xabcd, &pattern(0, n, ms)));
        ts = ts.wrapping_add(ms * 48);
        n += 1;
        wait = ms / 10 - 1;
        p
    };
    let trunk = rtp_peer(rtp, call.rtp, (10, 2600), None, send);
    // The agent sends its own pattern, 20 ms a frame.
    let leg = call.leg;
    let mut next = codec_frames(leg, Codec::Opus, |seq| pattern(1, seq as u16, 20));
    alice
        .stream_media(Duration::from_millis(2400), &mut next)
        .await;
    let at_trunk = trunk.await.expect("trunk");

    // Trunk -> agent: the payloads as sent, in order, as Opus frames whose
    // timestamps step as the RTP ones did (960 for 20 ms, 480 for 10 ms,
    // 1920 across the lost packet) and whose numbering keeps the gap.
    let frames: Vec<(u32, u32, Vec<u8>)> = alice
        .media_in
        .iter()
        .filter_map(|b| decode_media_frame(b).ok())
        .filter(|f| f.codec == Codec::Opus && f.header.leg == leg)
        .map(|f| (f.header.sequence, f.header.timestamp, f.payload.to_vec()))
        .collect();
    let sent: Vec<(u16, Vec<u8>)> = (0..80u16)
        .filter(|n| *n != 5)
        .map(|n| (n, pattern(0, n, if n < 40 { 20 } else { 10 })))
        .collect();
    let mine: Vec<(u16, u32, u32)> = frames
        .iter()
        .filter_map(|(s, t, p)| sent.iter().find(|(_, q)| q == p).map(|(n, _)| (*n, *s, *t)))
        .collect();
    assert!(
        mine.len() * 10 >= sent.len() * 9,
        "{} of {} trunk payloads reached the agent unchanged ({} frames)",
        mine.len(),
        sent.len(),
        frames.len()
    );
    assert_eq!(
        mine.len(),
        frames.len(),
        "every frame the agent got is one of the trunk's packets (nothing transcoded)"
    );
    let samples_before = |n: u16| -> u32 {
        (0..n)
            .map(|k| if k < 40 { 960u32 } else { 480 })
            .sum::<u32>()
    };
    for w in mine.windows(2) {
        let ((n0, s0, t0), (n1, s1, t1)) = (w[0], w[1]);
        assert!(n1 > n0, "in order: {mine:?}");
        assert_eq!(s1.wrapping_sub(s0), u32::from(n1 - n0), "numbering");
        assert_eq!(
            t1.wrapping_sub(t0),
            samples_before(n1) - samples_before(n0),
            "48 kHz timestamps between packets {n0} and {n1}"
        );
    }

    // Agent -> trunk: Opus RTP (payload type 96) carrying the agent's
    // payloads unchanged, 960 apart on the RTP clock.
    let theirs: Vec<Vec<u8>> = (0..200).map(|n| pattern(1, n, 20)).collect();
    let back: Vec<&RtpIn> = at_trunk.iter().filter(|p| p.pt == 96).collect();
    let through = back.iter().filter(|p| theirs.contains(&p.payload)).count();
    assert!(
        through >= 80,
        "{through} of the agent's payloads reached the trunk unchanged ({} RTP packets back)",
        at_trunk.len()
    );
    assert_eq!(
        through,
        back.len(),
        "every RTP packet back is one of the agent's payloads"
    );
    for w in back.windows(2) {
        if w[1].seq == w[0].seq.wrapping_add(1) {
            assert_eq!(w[1].ts.wrapping_sub(w[0].ts), 960, "20 ms at 48 kHz");
        }
    }
    sock.send_to(
        sip::bye(sip, sock.local_addr().expect("addr"), "opus1", &call.to, 2).as_bytes(),
        sip,
    )
    .await
    .expect("bye");
    let r = wait_ended(&running, &call.contact).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("customer_disconnect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_events_on_an_opus_leg_count_on_the_48_khz_clock() {
    let dir = temp_dir("sip-opus-dtmf");
    let (running, sip, mut alice) = gateway_with_alice(opus_config(
        &dir,
        "\"Opus\", \"PCMU\", \"telephone-event\"",
        None,
    ))
    .await;
    let (sock, _) = udp_socket().await;
    let (rtp, rtp_addr) = udp_socket().await;
    let port = rtp_addr.port();
    // Events at both clocks, the 8 kHz one first.
    let offer = sip::sdp(
        port,
        "96 101 97",
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
a=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-15\r\n",
    );
    let call = answered_call(&sock, sip, &mut alice, "opusdtmf", "", &offer).await;
    let answer = String::from_utf8_lossy(&call.ok.body).into_owned();
    assert!(
        answer.contains(" RTP/AVP 96 97\r\n")
            && answer.contains("a=rtpmap:97 telephone-event/48000\r\n")
            && !answer.contains("telephone-event/8000"),
        "the events on the audio's clock: {answer}"
    );

    // The trunk: Opus every 20 ms on the 48 kHz clock; at packet 20 it
    // presses 7 (100 ms: 5 packets of growing duration, 3 end packets,
    // on the 48 kHz clock, replacing the voice of those slots).
    let (mut ts, mut key_ts, mut n) = (90_000u32, 0u32, 0u16);
    let send = move || {
        let p = match n {
            20..=27 => {
                if n == 20 {
                    key_ts = ts;
                }
                let i = n - 20;
                let duration = 960 * (i.min(4) + 1);
                let flags: u8 = if i >= 5 { 0x80 | 10 } else { 10 };
                let mut ev = vec![7, flags];
                ev.extend_from_slice(&duration.to_be_bytes());
                let mut p = sip::rtp(97, 1000 + n, key_ts, 0xabcd, &ev);
                if i == 0 {
                    p[1] |= 0x80;
                }
                p
            }
            _ => sip::rtp(96, 1000 + n, ts, 0xabcd, &pattern(0, n, 20)),
        };
        ts = ts.wrapping_add(960);
        n = n.wrapping_add(1);
        Some(p)
    };
    let trunk = rtp_peer(rtp, call.rtp, (20, 3000), None, send);
    let leg = call.leg;
    let mut next = codec_frames(leg, Codec::Opus, |seq| pattern(1, seq as u16, 20));
    alice
        .stream_media(Duration::from_millis(800), &mut next)
        .await;
    // The agent's keypad: 5 to the trunk.
    alice
        .ok(Op::SendDigits {
            contact_id: call.contact.clone(),
            connection_id: call.customer.clone(),
            digits: "5".into(),
        })
        .await;
    alice
        .stream_media(Duration::from_millis(1800), &mut next)
        .await;
    let at_trunk = trunk.await.expect("trunk");

    // Trunk -> agent: the 48 kHz key is the caller's 7, once.
    let digits: Vec<String> = alice
        .log
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Digits { digits, .. }) => Some(digits.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        digits.first().map(String::as_str),
        Some("7"),
        "the trunk's key reached the agent: {digits:?}"
    );
    let r = record(&running, &call.contact);
    let caller_keys: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.event == "caller_digits")
        .map(|e| e.detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(caller_keys, ["7"], "{:?}", r.events);

    // Agent -> trunk: events at payload type 97 only, all for key 5, one
    // timestamp on the audio's clock, the last durations 100 ms at 48 kHz.
    assert!(
        !at_trunk.iter().any(|p| p.pt == 101),
        "nothing at the 8 kHz event type"
    );
    let events: Vec<&RtpIn> = at_trunk.iter().filter(|p| p.pt == 97).collect();
    assert!(
        events.len() >= 5,
        "the key went out as events: {} of {} packets",
        events.len(),
        at_trunk.len()
    );
    assert!(
        events
            .iter()
            .all(|e| e.payload.len() == 4 && e.payload[0] == 5),
        "key 5"
    );
    let key_ts = events[0].ts;
    assert!(events.iter().all(|e| e.ts == key_ts), "one event timestamp");
    let duration = |e: &RtpIn| u32::from(u16::from_be_bytes([e.payload[2], e.payload[3]]));
    let durations: Vec<u32> = events.iter().map(|e| duration(e)).collect();
    let ended: Vec<u32> = events
        .iter()
        .filter(|e| e.payload[1] & 0x80 != 0)
        .map(|e| duration(e))
        .collect();
    assert!(!ended.is_empty(), "end packets: {durations:?}");
    assert!(
        ended.iter().all(|d| (100 * 48..200 * 48).contains(d)),
        "the key's 100 ms in 48 kHz units: {durations:?}"
    );
    assert!(
        durations.windows(2).all(|w| w[1] >= w[0]) && durations[0] >= 20 * 48,
        "durations grow from one 20 ms packet on the 48 kHz clock: {durations:?}"
    );
    // The event's timestamp sits on the audio's 48 kHz timeline: after
    // the voice packet sent before it, by less than half a second, and the
    // voice after the key continues past it.
    let first_seq = events[0].seq;
    let voice: Vec<&RtpIn> = at_trunk.iter().filter(|p| p.pt == 96).collect();
    let before = voice
        .iter()
        .filter(|v| v.seq.wrapping_sub(first_seq) > 0x8000)
        .min_by_key(|v| first_seq.wrapping_sub(v.seq))
        .map(|v| v.ts)
        .expect("voice before the key");
    let ahead = key_ts.wrapping_sub(before);
    assert!(
        ahead > 0 && ahead <= 24_000,
        "event timestamp {key_ts} is {ahead} after the voice before it ({before})"
    );
    let after = voice
        .iter()
        .filter(|v| v.seq.wrapping_sub(first_seq) < 0x8000)
        .map(|v| v.ts.wrapping_sub(key_ts))
        .max()
        .expect("voice after the key");
    assert!(
        (4800..0x8000_0000).contains(&after),
        "voice after the key continues the timeline ({after} past it)"
    );
    sock.send_to(
        sip::bye(
            sip,
            sock.local_addr().expect("addr"),
            "opusdtmf",
            &call.to,
            2,
        )
        .as_bytes(),
        sip,
    )
    .await
    .expect("bye");
    wait_ended(&running, &call.contact).await;
}

/// baresip calls in with `codec` from speech; the agent answers and
/// talks; the caller's file ends and baresip hangs up. Audio both ways by
/// correlation.
async fn inbound_audio(codec: &str, name: &str) {
    let dir = temp_dir(name);
    let opus = codec.starts_with("opus");
    let (caller8, agent8, agent48) = two_voices(
        &dir,
        "caller",
        "This is the caller. The quick brown fox jumps over the lazy dog.",
        1,
        "Hello, this is the agent. Please state your order number.",
    );
    // baresip's Opus source must be 48 kHz stereo.
    let source = if opus {
        resample(&dir, &caller8, "caller_48k2.wav", 48_000, 2, 0)
    } else {
        caller8.clone()
    };
    let (running, sip, mut alice) = gateway_with_alice(opus_config(
        &dir,
        "\"Opus\", \"PCMA\", \"PCMU\", \"telephone-event\"",
        None,
    ))
    .await;
    let bdir = dir.join("baresip");
    let mut phone = baresip_caller(&bdir, codec, &source, sip, 30);
    let (c, leg, _) = agent_answers(&mut alice).await;
    let ended = speak_until_ended(&mut alice, &running, &c, leg, &agent48, 20).await;
    assert!(ended, "the caller's BYE ended the contact");
    let _ = tokio::time::timeout(Duration::from_secs(10), phone.kill()).await;
    let log = std::fs::read_to_string(bdir.join("baresip.log")).unwrap_or_default();
    let codecs: Vec<Codec> = alice
        .media_in
        .iter()
        .filter_map(|b| decode_media_frame(b).ok().map(|f| f.codec))
        .collect();
    assert!(
        codecs.iter().all(|c| *c == Codec::Opus),
        "an Opus agent gets Opus"
    );
    let heard8 = agent_heard_8k(&alice.media_in);
    HeardBothWays::measure(&caller8, &agent8, &heard8, &baresip_heard(&bdir), 40_000)
        .assert_both_ways(&format!("{codec} inbound"), "caller", 0.2, &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_in_with_opus_audio_both_ways() {
    inbound_audio("opus/48000/2", "sip-opus-in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_in_with_pcma_audio_both_ways() {
    inbound_audio("pcma", "sip-pcma-in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dials_baresip_with_opus_audio_both_ways() {
    let dir = temp_dir("sip-opus-out");
    let (callee8, agent8, agent48) = two_voices(
        &dir,
        "callee",
        "Hello, this is the customer answering. The quick brown fox jumps over the lazy dog.",
        1,
        "Hello, this is the agent calling about your order number.",
    );
    let source = resample(&dir, &callee8, "callee_48k2.wav", 48_000, 2, 0);
    let bdir = dir.join("baresip");
    let (mut phone, phone_sip) = auto_answer_phone(&bdir, "opus/48000/2", "", &source);
    let port = phone_sip.port();
    let phone_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let running = server::start(opus_config(
        &dir,
        "\"Opus\", \"PCMU\", \"telephone-event\"",
        Some(phone_addr),
    ))
    .await
    .expect("start");
    let mut alice = Client::available(running.addr, "alice", "alice-pass").await;
    let log = wait_baresip_ready(&bdir).await;
    let c = dial(&mut alice, CALLEE).await;
    let leg = wait_far_end_answers(&mut alice, &c).await;
    let ended = speak_until_ended(&mut alice, &running, &c, leg, &agent48, 30).await;
    assert!(ended, "the callee's BYE (end of its file) ended the call");
    let _ = tokio::time::timeout(Duration::from_secs(10), phone.kill()).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.to_ascii_lowercase().contains("opus"),
        "baresip's call was Opus: {text}"
    );
    let heard8 = agent_heard_8k(&alice.media_in);
    HeardBothWays::measure(&callee8, &agent8, &heard8, &baresip_heard(&bdir), 8_000)
        .assert_both_ways("outbound Opus", "callee", 0.0, "");
}
