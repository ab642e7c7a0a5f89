//! The receive chain's playout window (what the bridge's mixer uses to
//! send a lone talker's own packets instead of re-encoding them): the
//! packets it names must be what the window played (each packet once, in
//! order, over consecutive windows), and it must name none when the
//! window holds anything else (a concealed or FEC-rebuilt packet).

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::frame::{BLOCK, PACKET, PACKET_10MS};
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;

/// `n` packets of `samples` each, of a 440 Hz tone.
fn tone_packets(n: usize, samples: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    (0..n)
        .map(|k| {
            let pcm: Vec<f32> = (0..samples)
                .map(|i| {
                    let t = (k * samples + i) as f32 / 48_000.0;
                    0.2 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                })
                .collect();
            enc.encode_samples(&pcm).expect("encode").to_vec()
        })
        .collect()
}

/// One 20 ms window: two blocks at `now` and `now + 10`.
fn play_window(chain: &mut ReceiveChain, now: f64) -> Vec<f32> {
    chain.start_window();
    let mut out = Vec::new();
    for k in 0..2 {
        let mut b = [0.0f32; BLOCK];
        chain.next_block(&mut b, now + 10.0 * k as f64);
        out.extend_from_slice(&b);
    }
    out
}

fn window(chain: &ReceiveChain) -> Option<Vec<Vec<u8>>> {
    chain
        .window_packets()
        .map(|it| it.map(<[u8]>::to_vec).collect())
}

#[test]
fn a_window_of_whole_packets_names_them_and_they_decode_to_what_it_played() {
    let pk = tone_packets(60, PACKET);
    let settings = JitterSettings {
        margin_ms: 0.0,
        ..JitterSettings::default()
    };
    let mut chain = ReceiveChain::new(None, settings).expect("chain");
    // A decoder fed exactly the packets the windows name, in order, plays
    // what the chain played, as long as it has seen every packet the
    // chain decoded (every window so far named).
    let mut mirror = Decoder::new().expect("decoder");
    let mut in_sync = true;
    let (mut named, mut whole) = (0, 0);
    let mut next_index: Option<usize> = None;
    for (k, p) in pk.iter().enumerate() {
        let now = 20.0 * k as f64;
        chain.push_packet(k as u32, (k * PACKET) as u32, p, now);
        let played = play_window(&mut chain, now);
        let Some(packets) = window(&chain) else {
            in_sync &= next_index.is_none();
            continue;
        };
        named += packets.len();
        whole += 1;
        let mut heard = Vec::new();
        for q in &packets {
            let i = pk
                .iter()
                .position(|x| x == q)
                .expect("a packet that arrived");
            if let Some(want) = next_index {
                assert_eq!(i, want, "window {k}: packets named in order, none skipped");
            }
            next_index = Some(i + 1);
            let mut pcm = [0.0f32; PACKET];
            let n = mirror.decode_len(q, &mut pcm).expect("decode");
            heard.extend_from_slice(&pcm[..n]);
        }
        assert_eq!(heard.len(), played.len(), "the window's duration");
        if in_sync {
            let diff = heard
                .iter()
                .zip(&played)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "window {k}: differs by {diff}");
        }
    }
    assert!(
        whole >= 50,
        "most windows of a steady stream are whole packets: {whole} of 60"
    );
    assert_eq!(named, whole, "one 20 ms packet per 20 ms window");
}

#[test]
fn ten_ms_packets_are_named_two_to_a_window() {
    let pk = tone_packets(80, PACKET_10MS);
    let settings = JitterSettings {
        margin_ms: 0.0,
        ..JitterSettings::default()
    };
    let mut chain = ReceiveChain::new(None, settings).expect("chain");
    let mut twos = 0;
    for k in 0..40 {
        let now = 20.0 * k as f64;
        for j in [2 * k, 2 * k + 1] {
            chain.push_packet(j as u32, (j * PACKET_10MS) as u32, &pk[j], now);
        }
        play_window(&mut chain, now);
        if let Some(p) = window(&chain) {
            assert_eq!(p.len(), 2, "two 10 ms packets make a 20 ms window");
            twos += 1;
        }
    }
    assert!(twos >= 30, "{twos} of 40 windows");
}

#[test]
fn a_lost_packet_makes_no_window_and_straddling_windows_name_each_packet_once() {
    let pk = tone_packets(40, PACKET);
    let settings = JitterSettings {
        margin_ms: 0.0,
        ..JitterSettings::default()
    };
    let mut chain = ReceiveChain::new(None, settings).expect("chain");
    let mut after_loss = None;
    for (k, p) in pk.iter().enumerate() {
        let now = 20.0 * k as f64;
        // Packet 20 never arrives: its window is concealed (or rebuilt
        // from the next packet's FEC), never named.
        if k != 20 {
            chain.push_packet(k as u32, (k * PACKET) as u32, p, now);
        }
        play_window(&mut chain, now);
        let named = window(&chain);
        if let Some(packets) = &named {
            assert!(
                !packets.contains(&pk[20]),
                "the lost packet cannot be named"
            );
        }
        if k == 20 {
            after_loss = Some(named.is_none());
        }
    }
    assert_eq!(after_loss, Some(true), "the concealed window is not named");

    // Windows half a packet off the packets' edges: each names the one
    // packet decoded in it, each packet once, in order, so the packets
    // named still make the talker's whole stream.
    let mut chain = ReceiveChain::new(None, settings).expect("chain");
    chain.push_packet(0, 0, &pk[0], 0.0);
    let mut b = [0.0f32; BLOCK];
    chain.next_block(&mut b, 0.0);
    let mut named = Vec::new();
    for (k, p) in pk.iter().enumerate().skip(1).take(10) {
        let now = 20.0 * k as f64;
        chain.push_packet(k as u32, (k * PACKET) as u32, p, now);
        play_window(&mut chain, now);
        let packets = window(&chain).expect("a plain window straddling packets");
        assert_eq!(packets.len(), 1, "window {k}: one packet decoded in it");
        named.extend(packets);
    }
    assert_eq!(named, pk[1..11].to_vec(), "every packet once, in order");
}
