//! Split driving: the playout half in one engine (the AudioWorklet's), the
//! capture half in another (a Worker's, fed the microphone's track chunks
//! as they come, not on the render clock), with the played audio handed
//! across as the echo reference. The echo must still go, the near end must
//! still come through, and nothing the playout half does may send.

mod support;

use media::codec::{Decoder, EncoderSettings};
use media::engine::Engine;
use media::frame::{PACKET, QUANTUM};
use media::jitter::JitterSettings;
use protocol::media::HEADER_LEN;
use support::*;

const RATE: usize = 48_000;

/// A room with a bulk delay and three reflections (sparse, so the echo is
/// computed sample by sample as the playout half plays).
fn room(delay_ms: usize) -> Vec<(usize, f32)> {
    let d = delay_ms * 48;
    vec![(d, 0.5), (d + 37, -0.25), (d + 113, 0.12), (d + 400, 0.05)]
}

/// Far-end speech packets (a sending engine, no echo cancellation: its
/// microphone is the far end's voice).
fn far_packets(far: &[f32]) -> Vec<(usize, Vec<u8>)> {
    let mut sender =
        Engine::new(2, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    sender.send_chain().enable_echo = false;
    sender.set_packet_ms(10).expect("10 ms");
    let mut scratch = [0.0f32; QUANTUM];
    let mut out = Vec::new();
    for (q, mic) in far.chunks_exact(QUANTUM).enumerate() {
        if let Some(f) = sender.process_quantum(mic, &mut scratch).expect("encode") {
            out.push(((q + 1) * QUANTUM, f.to_vec()));
        }
    }
    out
}

/// Decodes our own media frames, in order, into one signal.
fn decode(frames: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut pcm = [0.0f32; PACKET];
    let mut all = Vec::new();
    for f in frames {
        let n = dec.decode_len(&f[HEADER_LEN..], &mut pcm).expect("decodes");
        all.extend_from_slice(&pcm[..n]);
    }
    all
}

struct Scene {
    /// What the microphone captured (echo, plus the near end when asked).
    mic: Vec<f32>,
    /// The echo alone.
    echo: Vec<f32>,
    /// What the capture half sent, decoded.
    sent: Vec<f32>,
}

/// Plays far-end speech for `seconds` and captures its echo (and `near`),
/// either with one engine doing both (`split` false: the worklet path) or
/// split, the capture half fed 10 ms track chunks in slices of at most a
/// quantum, each after the reference played up to its end.
fn scene(split: bool, reference: bool, seconds: usize, near: &[f32]) -> Scene {
    scene_with(split, reference, false, seconds, near)
}

/// `direct`: split in time only: one engine plays quanta
/// (`play_local_quantum`, its own reference) and takes the track chunks
/// as they come (`capture_quantum`), as the worklet's direct capture does.
fn scene_with(split: bool, reference: bool, direct: bool, seconds: usize, near: &[f32]) -> Scene {
    let far_voice = speech(
        "split-far",
        "en-us",
        "Thank you for calling the order desk. Your hoodie shipped on the twelfth of November. \
         Is there anything else I can help you with today?",
    );
    let total = seconds * RATE / 480 * 480;
    let mut far = vec![0.0f32; total];
    for (i, x) in far.iter_mut().enumerate() {
        *x = far_voice[i % far_voice.len()];
    }
    let packets = far_packets(&far);
    let h = room(60);
    let mut player =
        Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    let mut capture =
        Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    for e in [&mut player, &mut capture] {
        e.set_packet_ms(10).expect("10 ms");
    }
    let mut played: Vec<f32> = Vec::with_capacity(total);
    let mut mic = Vec::with_capacity(total);
    let mut echo = Vec::with_capacity(total);
    let mut sent = Vec::new();
    let mut next_packet = 0;
    let mut out = [0.0f32; QUANTUM];
    let mut mic_q = [0.0f32; QUANTUM];
    // The split capture half's pending track chunk (10 ms).
    let mut chunk: Vec<f32> = Vec::with_capacity(480);
    for q in 0..total / QUANTUM {
        while next_packet < packets.len() && packets[next_packet].0 <= q * QUANTUM {
            player.receive(&packets[next_packet].1).expect("valid");
            next_packet += 1;
        }
        // The echo of what was played (before this quantum: the device
        // delay is at least the room's bulk delay).
        for (i, m) in mic_q.iter_mut().enumerate() {
            let t = q * QUANTUM + i;
            let e: f32 = h
                .iter()
                .filter(|(d, _)| *d <= t && t - d < played.len())
                .map(|(d, g)| g * played[t - d])
                .sum();
            echo.push(e);
            *m = e + near.get(t).copied().unwrap_or(0.0);
        }
        mic.extend_from_slice(&mic_q);
        if split {
            if direct {
                player.play_local_quantum(&mut out);
            } else {
                player.play_quantum(&mut out);
                if reference {
                    capture.far_end_reference(&out);
                }
            }
            chunk.extend_from_slice(&mic_q);
            if chunk.len() >= 480 {
                let rest = chunk.split_off(480);
                let sender = if direct { &mut player } else { &mut capture };
                for piece in chunk.chunks(QUANTUM) {
                    if let Some(f) = sender.capture_quantum(piece).expect("capture") {
                        sent.push(f.to_vec());
                    }
                }
                chunk = rest;
            }
        } else {
            if let Some(f) = player.process_quantum(&mic_q, &mut out).expect("process") {
                sent.push(f.to_vec());
            }
        }
        played.extend_from_slice(&out);
    }
    if split && !direct {
        assert_eq!(
            player.stats().packets_sent,
            0,
            "the playout half sends nothing"
        );
    }
    Scene {
        mic,
        echo,
        sent: decode(&sent),
    }
}

/// ERLE from the third second on, over the 10 ms blocks that carry echo.
fn erle(s: &Scene) -> f64 {
    let (mut e_in, mut e_out) = (0.0, 0.0);
    let end = s.mic.len().min(s.sent.len()) - 480;
    for b in (3 * RATE / 480)..(end / 480) {
        let r = b * 480..(b + 1) * 480;
        if db(energy(&s.echo[r.clone()]) / 480.0) > -50.0 {
            e_in += energy(&s.mic[r.clone()]);
            // The sent audio lags the microphone by the chain's delay
            // (under 30 ms); compare like with like over whole blocks.
            e_out += energy(&s.sent[r.start + 480..r.end + 480]);
        }
    }
    db(e_in / e_out.max(1e-30))
}

#[test]
fn split_driving_cancels_echo_like_the_worklet_path() {
    let whole = scene(false, true, 8, &[]);
    let split = scene(true, true, 8, &[]);
    let blind = scene(true, false, 8, &[]);
    let direct = scene_with(true, true, true, 8, &[]);
    let (w, s, b, d) = (erle(&whole), erle(&split), erle(&blind), erle(&direct));
    eprintln!(
        "ERLE from the third second: one engine {w:.1} dB, split {s:.1} dB, split without the reference {b:.1} dB, \
         direct capture {d:.1} dB"
    );
    assert!(d >= 25.0 && d >= w - 3.0, "direct capture: ERLE {d:.1} dB");
    assert!(
        b < s - 15.0,
        "the handed-over reference is what cancels the echo ({b:.1} dB without it)"
    );
    assert!(s >= 25.0, "split driving: ERLE {s:.1} dB < 25 dB");
    assert!(
        s >= w - 3.0,
        "split driving cancels as well as one engine ({s:.1} against {w:.1} dB)"
    );
}

#[test]
fn split_driving_passes_the_near_end() {
    let voice = speech(
        "split-near",
        "en+f3",
        "I would like to change the delivery address for my order please.",
    );
    let mut near = vec![0.0f32; 2 * RATE];
    near.extend(voice.iter().map(|x| x * 0.7));
    let s = scene(true, true, 2 + voice.len() / RATE + 1, &near);
    // The far end talks throughout, so this is double talk: the near end
    // must come through, a little later than it was spoken.
    let from = 2 * RATE + RATE / 2;
    let len = RATE;
    let (lag, corr) = best_lag(&near[from..from + len], &s.sent[from..], 4_800);
    eprintln!("near end through split driving: correlation {corr:.2} at {lag} samples");
    assert!(corr > 0.5, "near end recognisable (correlation {corr:.2})");
    assert!(lag < 2_400, "near end delayed {lag} samples");
}

#[test]
fn the_stream_goes_on_when_capture_moves_back_and_lost_capture_is_skipped() {
    use protocol::media::decode_media_frame;
    let mut worker =
        Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    worker.set_packet_ms(10).expect("10 ms");
    let tone: Vec<f32> = (0..480).map(|i| 0.1 * (i as f32 * 0.05).sin()).collect();
    let mut headers = Vec::new();
    let feed = |e: &mut Engine, headers: &mut Vec<(u32, u32)>| {
        for piece in tone.chunks(QUANTUM) {
            if let Some(f) = e.capture_quantum(piece).expect("capture") {
                let h = decode_media_frame(f).expect("our frame").header;
                headers.push((h.sequence, h.timestamp));
            }
        }
    };
    for _ in 0..10 {
        feed(&mut worker, &mut headers);
    }
    // 25 ms of capture lost: two whole packets skipped, 5 ms carried.
    worker.skip_capture(1_200);
    for _ in 0..3 {
        feed(&mut worker, &mut headers);
    }
    let (seq, ts) = worker.send_chain().position();
    // The worklet's engine takes over the same stream.
    let mut worklet =
        Engine::new(1, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    worklet.set_packet_ms(10).expect("10 ms");
    worklet.send_chain().continue_from(seq, ts);
    let mut out = [0.0f32; QUANTUM];
    for _ in 0..40 {
        let mic = [0.05f32; QUANTUM];
        if let Some(f) = worklet.process_quantum(&mic, &mut out).expect("process") {
            let h = decode_media_frame(f).expect("our frame").header;
            headers.push((h.sequence, h.timestamp));
        }
    }
    assert!(headers.len() > 14, "{} packets", headers.len());
    for w in headers.windows(2) {
        let (ds, dt) = (w[1].0.wrapping_sub(w[0].0), w[1].1.wrapping_sub(w[0].1));
        assert_eq!(dt, ds * 480, "timestamps follow sequence numbers: {w:?}");
        assert!(ds == 1 || ds == 3, "one stream, no restart: {w:?}");
    }
    assert_eq!(
        headers
            .windows(2)
            .filter(|w| w[1].0.wrapping_sub(w[0].0) == 3)
            .count(),
        1,
        "the lost 25 ms skip two packets, once"
    );
}
