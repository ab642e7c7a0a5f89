//! A 10 ms call through the backend: the client offers `packet_ms` in its
//! `hello` and the `welcome` grants 10 ms; the agent's 10 ms packets, sent
//! every 10 ms with gaps, come back from an echo line untouched, with
//! timestamps stepping 480 samples a packet; played through the engine's
//! receive chain they are the sent audio, the gaps rebuilt from FEC; and
//! the recording holds them at their own duration (its length in samples
//! is their media time, gaps included, not twice it).

use std::time::Duration;

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::frame::{BLOCK, PACKET, PACKET_10MS};
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;
use protocol::media::{encode_media_frame, MediaHeader};
use switchboard_tests::*;

/// The lag (samples, `b` later than `a`) within `max_lag` that best aligns
/// `b` to `a`, with its normalised correlation.
fn best_lag(a: &[f32], b: &[f32], max_lag: usize) -> (usize, f64) {
    let mut best = (0, f64::MIN);
    for lag in 0..=max_lag {
        let n = a.len().min(b.len().saturating_sub(lag));
        let (mut num, mut ea, mut eb) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (x, y) = (f64::from(a[i]), f64::from(b[i + lag]));
            num += x * y;
            ea += x * x;
            eb += y * y;
        }
        let c = num / (ea * eb).sqrt().max(1e-30);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_ms_call_is_forwarded_played_and_recorded_at_ten_ms() {
    let dir = temp_dir("media-10ms");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    assert_eq!(alice.session.packet_ms(), 20, "the SDK offers 20 ms first");
    // A client whose engine takes the grant offers 10 ms first.
    alice.session.offer_packet_ms(&[10, 20]);
    alice.reconnect(addr).await;
    assert_eq!(alice.session.packet_ms(), 10, "the welcome granted 10 ms");

    let (c, leg, _customer) = alice.accept_echo_call(addr).await;
    let view = alice.state().contacts[&c].clone();

    // A tone whose frequency moves, in 10 ms packets; every seventh packet
    // is never sent (lost on the way in).
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut all: Vec<Vec<u8>> = Vec::new();
    let mut sent: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut n = 0u32;
    let mut next = || -> Vec<u8> {
        loop {
            let mut pcm = [0.0f32; PACKET_10MS];
            for (i, x) in pcm.iter_mut().enumerate() {
                let hz = 300.0 + 20.0 * ((n / 10) % 20) as f32;
                let t = (n as usize * PACKET_10MS + i) as f32 / 48_000.0;
                *x = 0.2 * (2.0 * std::f32::consts::PI * hz * t).sin();
            }
            let payload = enc.encode_samples(&pcm).expect("encode").to_vec();
            all.push(payload.clone());
            let seq = n;
            n += 1;
            if seq % 7 == 3 {
                continue;
            }
            let mut frame = Vec::new();
            encode_media_frame(
                &MediaHeader {
                    flags: 0,
                    leg,
                    sequence: seq,
                    timestamp: seq * PACKET_10MS as u32,
                },
                &payload,
                &mut frame,
            );
            sent.push((seq, payload));
            return frame;
        }
    };
    alice
        .stream_media_every(
            Duration::from_millis(1500),
            Duration::from_millis(10),
            &mut next,
        )
        .await;
    // Let the last packets come back: silence, continuing the numbers.
    let mut fill = n;
    alice
        .stream_media_every(
            Duration::from_millis(200),
            Duration::from_millis(10),
            &mut || {
                let mut f = Vec::new();
                encode_media_frame(
                    &MediaHeader {
                        flags: 0,
                        leg,
                        sequence: fill,
                        timestamp: fill * PACKET_10MS as u32,
                    },
                    // SILK WB 10 ms, an empty (DTX) frame.
                    &[8 << 3],
                    &mut f,
                );
                fill += 1;
                f
            },
        )
        .await;

    let back = alice.media_frames_in();
    let matched: Vec<(u32, MediaHeader)> = sent
        .iter()
        .filter_map(|(seq, p)| back.iter().find(|(_, q)| q == p).map(|(h, _)| (*seq, *h)))
        .collect();
    // The backend drops frames to a backed-up socket rather than queue
    // them (4 frames: 40 ms at 10 ms packets); on a loaded machine a few go.
    assert!(
        matched.len() * 10 >= sent.len() * 9,
        "{} of {} 10 ms packets came back untouched",
        matched.len(),
        sent.len()
    );
    for w in matched.windows(2) {
        let ((s0, h0), (s1, h1)) = (&w[0], &w[1]);
        assert_eq!(h1.sequence.wrapping_sub(h0.sequence), s1 - s0, "gaps kept");
        assert_eq!(
            h1.timestamp.wrapping_sub(h0.timestamp),
            (s1 - s0) * PACKET_10MS as u32,
            "timestamps step 480 samples a packet"
        );
    }

    // Played by the engine's receive chain, on a clock that follows the
    // packets' own times, the returned stream is the sent audio: the gaps
    // are rebuilt from the next packet's FEC.
    let mut chain = ReceiveChain::new(Some(leg), JitterSettings::default()).expect("chain");
    let first_ts = matched.first().expect("packets came back").1.timestamp;
    let mut played = Vec::new();
    let mut k = 0;
    let blocks = (n as usize * PACKET_10MS) / BLOCK + 6;
    for b in 0..blocks {
        let now = b as f64 * 10.0;
        while k < matched.len()
            && f64::from(matched[k].1.timestamp.wrapping_sub(first_ts)) / 48.0 + 20.0 <= now
        {
            let h = matched[k].1;
            let p = &sent
                .iter()
                .find(|(s, _)| *s == matched[k].0)
                .expect("sent")
                .1;
            chain.push_packet(h.sequence, h.timestamp, p, now);
            k += 1;
        }
        let mut block = [0.0f32; BLOCK];
        chain.next_block(&mut block, now);
        played.extend_from_slice(&block);
    }
    let s = chain.stats();
    assert!(s.fec_recovered >= 10, "gaps rebuilt from FEC: {s:?}");
    assert_eq!(s.late, 0, "{s:?}");
    let mut dec = Decoder::new().expect("decoder");
    let mut reference = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    let first_seq = matched[0].0 as usize;
    for p in &all[first_seq..] {
        let got = dec.decode_len(p, &mut pcm).expect("decode");
        assert_eq!(got, PACKET_10MS);
        reference.extend_from_slice(&pcm[..got]);
    }
    let window = &reference[4_800..4_800 + 24_000];
    let (lag, corr) = best_lag(window, &played, 9_600);
    eprintln!("10 ms call played back: lag {lag} samples, correlation {corr:.3}; {s:?}");
    assert!(corr > 0.9, "the played audio is the sent audio ({corr:.3})");

    // The recording: alice's packets in her own Ogg Opus file, whose
    // granule position counts 480 samples for each 10 ms packet.
    let agent_conn = view
        .agent_connection()
        .expect("alice's connection")
        .connection_id
        .clone();
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(status, 204);
    let rec_dir = dir.join("recordings").join(&c);
    let manifest = rec_dir.join("manifest.jsonl");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        if text.contains("\"end\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let file = std::fs::read(rec_dir.join(format!("{agent_conn}.opus"))).expect("alice's file");
    let packets = server::bridge::ogg::read_packets(&file);
    let audio: Vec<&Vec<u8>> = packets[2..].iter().filter(|p| p.len() > 1).collect();
    let mine = sent.iter().filter(|(_, p)| audio.contains(&p)).count();
    assert!(mine + 2 >= sent.len(), "{mine} of {} recorded", sent.len());
    // From alice's first packet to her last, the file's media time is
    // exactly hers: 480 samples a packet, each gap filled with one 10 ms
    // filler (not a 20 ms one, which would stretch the recording).
    let (first, last) = (sent.first().expect("sent"), sent.last().expect("sent"));
    let i0 = packets
        .iter()
        .position(|p| *p == first.1)
        .expect("first recorded");
    let i1 = packets
        .iter()
        .rposition(|p| *p == last.1)
        .expect("last recorded");
    let samples: u64 = packets[i0..=i1]
        .iter()
        .map(|p| u64::from(protocol::media::opus_packet_samples(p).unwrap_or(0)))
        .sum();
    let media = u64::from(last.0 - first.0 + 1) * PACKET_10MS as u64;
    assert_eq!(samples, media, "recorded samples against 10 ms media time");
}
