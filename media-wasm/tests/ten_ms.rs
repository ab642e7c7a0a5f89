//! 10 ms packets (issue 16's decision): Opus at 32 kb/s codes 10 ms SILK
//! wideband frames with in-band FEC, a lost 10 ms frame rebuilt from the
//! next packet's FEC reaches about 10 dB SNR against a loss-free decode on
//! this test's speech (concealment alone: about 3.5 dB), the receive chain plays 10 ms packets
//! (and a stream that switches between 10 and 20 ms) sample-exact, and the
//! engine at 10 ms sends 100 packets a second with a declared latency that
//! a loopback measures.

mod support;

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::engine::Engine;
use media::frame::{BLOCK, PACKET, PACKET_10MS, QUANTUM};
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;
use support::*;

const TEXT: &str =
    "Your order number is one hundred. The hoodie is dark blue, size large, and it shipped \
    on the twelfth of November from our warehouse in Osaka. Please keep the receipt for returns.";

/// Encodes `pcm` in packets of `n` samples with the engine's defaults.
fn packets(pcm: &[f32], n: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    pcm.chunks_exact(n)
        .map(|c| enc.encode_samples(c).expect("encode").to_vec())
        .collect()
}

/// A loss-free decode, packet by packet.
fn reference_decode(packets: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut out = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for p in packets {
        let n = dec.decode_len(p, &mut pcm).expect("decode");
        out.extend_from_slice(&pcm[..n]);
    }
    out
}

#[test]
fn ten_ms_packets_are_silk_wideband_and_carry_fec() {
    let pcm = speech("loss", "en-us", TEXT);
    let pk = packets(&pcm, PACKET_10MS);
    // TOC configuration 8 is SILK wideband 10 ms (RFC 6716 table 2:
    // configurations 8-11 are SILK WB at 10, 20, 40, 60 ms).
    let silk_wb_10 = pk.iter().filter(|p| p[0] >> 3 == 8).count();
    assert!(
        silk_wb_10 * 10 >= pk.len() * 9,
        "{silk_wb_10} of {} packets are SILK WB 10 ms",
        pk.len()
    );
    for p in &pk {
        assert_eq!(protocol::media::opus_packet_samples(p), Some(480));
    }
    let kbps = pk.iter().map(Vec::len).sum::<usize>() as f64 * 8.0 / (pk.len() as f64 * 10.0);
    eprintln!("10 ms packets: {kbps:.1} kb/s");
}

/// SNR over the lost slots of `lost`, rebuilding each from the next
/// packet's FEC (`fec`) or concealing it.
fn lost_slot_snr(pk: &[Vec<u8>], reference: &[f32], lost: &[bool], fec: bool) -> (f64, usize) {
    let mut dec = Decoder::new().expect("decoder");
    let mut pcm = [0.0f32; PACKET];
    let (mut e_ref, mut e_err, mut slots) = (0.0, 0.0, 0);
    for (k, p) in pk.iter().enumerate() {
        if lost[k] {
            if fec && k + 1 < pk.len() {
                dec.decode_fec_len(&pk[k + 1], PACKET_10MS, &mut pcm)
                    .expect("fec decode");
            } else {
                dec.conceal_len(PACKET_10MS, &mut pcm);
            }
            let r = &reference[k * PACKET_10MS..(k + 1) * PACKET_10MS];
            if energy(r) > 1e-4 {
                e_ref += energy(r);
                e_err += r
                    .iter()
                    .zip(&pcm[..PACKET_10MS])
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum::<f64>();
                slots += 1;
            }
        } else {
            let n = dec.decode_len(p, &mut pcm).expect("decode");
            assert_eq!(n, PACKET_10MS);
        }
    }
    (db(e_ref / e_err.max(1e-20)), slots)
}

#[test]
fn a_lost_ten_ms_frame_is_rebuilt_from_fec_far_better_than_concealed() {
    let pcm = speech("loss", "en-us", TEXT);
    let pk = packets(&pcm, PACKET_10MS);
    let reference = reference_decode(&pk);
    // 10% isolated losses (a lost packet's successor always arrives: it is
    // the one carrying the FEC), none in the first half second.
    let mut rng = Rng(0x10_4d5);
    let mut lost = vec![false; pk.len()];
    for k in 50..pk.len() - 1 {
        if !lost[k - 1] && rng.unit() < 0.10 {
            lost[k] = true;
        }
    }
    let (fec, slots) = lost_slot_snr(&pk, &reference, &lost, true);
    let (plc, _) = lost_slot_snr(&pk, &reference, &lost, false);
    eprintln!("10 ms, {slots} lost speech frames: FEC {fec:.1} dB, concealment {plc:.1} dB");
    assert!(slots >= 20, "lost speech frames: {slots}");
    // The decision quotes about 12 dB rebuilt against 3 dB
    // concealed, measured on another 35 s of speech; on this sentence the
    // same settings (32 kb/s, 15% expected loss, complexity 5) give 10.2 dB
    // (10.4 on 33 s of English and Japanese; 20 ms packets: 11.8; 12.3 dB
    // would take 40 kb/s). The threshold keeps that with a margin for
    // another espeak-ng build, and FEC must beat concealment by 6 dB.
    assert!(fec >= 9.5, "FEC SNR {fec:.1} dB < 9.5 dB");
    assert!(
        fec >= plc + 6.0,
        "FEC {fec:.1} dB is no better than PLC {plc:.1} dB"
    );
}

/// Plays packets of the given durations (samples each) through a receive
/// chain on a jitter-free virtual clock, skipping `lost`; the audio out.
fn play(pk: &[Vec<u8>], lost: &[bool]) -> (Vec<f32>, ReceiveChain) {
    let mut chain = ReceiveChain::new(None, JitterSettings::default()).expect("chain");
    let mut ts = Vec::with_capacity(pk.len());
    let mut t = 0u32;
    for p in pk {
        ts.push(t);
        t += protocol::media::opus_packet_samples(p).expect("toc");
    }
    let total = t as usize / BLOCK + 8;
    let mut out = Vec::new();
    let mut next = 0;
    for b in 0..total {
        // Stop once every packet's slot has been decoded: pulls past the
        // stream's end would only conceal.
        let s = chain.stats();
        if (s.played + s.lost()) as usize >= pk.len() {
            break;
        }
        let now = b as f64 * 10.0;
        // Each packet arrives 30 ms after its media time.
        while next < pk.len() && f64::from(ts[next]) / 48.0 + 30.0 <= now {
            if !lost[next] {
                chain.push_packet(next as u32, ts[next], &pk[next], now);
            }
            next += 1;
        }
        let mut block = [0.0f32; BLOCK];
        chain.next_block(&mut block, now);
        out.extend_from_slice(&block);
    }
    (out, chain)
}

#[test]
fn ten_ms_and_switching_streams_play_sample_exact() {
    let pcm = speech("loss", "en-us", TEXT);
    // 10 ms packets, then 20 ms ones from 1 s on (a forwarded leg whose
    // source changed), from one encoder state each side.
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut pk = Vec::new();
    let mut at = 0;
    while at + PACKET <= pcm.len() {
        let n = if at < 48_000 { PACKET_10MS } else { PACKET };
        pk.push(
            enc.encode_samples(&pcm[at..at + n])
                .expect("encode")
                .to_vec(),
        );
        at += n;
    }
    let reference = reference_decode(&pk);
    let (played, chain) = play(&pk, &vec![false; pk.len()]);
    let (lag, corr) = best_lag(&reference[..24_000], &played, 9_600);
    assert!(corr > 0.99, "played audio is the decode ({corr:.3})");
    let n = reference.len().min(played.len() - lag);
    let first_diff = (0..n).find(|&i| played[lag + i] != reference[i]);
    let s = chain.stats();
    assert_eq!(first_diff, None, "sample-exact from {lag} ({s:?})");
    assert_eq!(s.played as usize, pk.len(), "{s:?}");
    assert_eq!(
        (s.concealed, s.fec_recovered, s.late, s.shrinks, s.grows),
        (0, 0, 0, 0, 0)
    );
}

#[test]
fn ten_percent_loss_at_ten_ms_is_rebuilt_through_the_chain() {
    let pcm = speech("loss", "en-us", TEXT);
    let pk = packets(&pcm, PACKET_10MS);
    let mut rng = Rng(0x0a11);
    let lost: Vec<bool> = (0..pk.len())
        .map(|i| i > 100 && rng.unit() < 0.10)
        .collect();
    let (_, chain) = play(&pk, &lost);
    let s = chain.stats();
    let n_lost = lost.iter().filter(|l| **l).count() as u64;
    eprintln!(
        "lost {n_lost}: {} rebuilt from FEC, {} concealed",
        s.fec_recovered, s.concealed
    );
    assert_eq!(
        s.played + n_lost,
        pk.len() as u64,
        "every packet sent is played: {s:?}"
    );
    assert_eq!(s.lost(), n_lost, "every lost slot is filled: {s:?}");
    // Isolated losses have their successor at hand (the buffer keeps one
    // more packet once losses start).
    assert!(s.fec_recovered * 10 >= n_lost * 7, "{s:?}");
}

/// A loopback engine at `packet_ms`; the output and the engine.
fn loopback(mic_all: &[f32], packet_ms: u32) -> (Vec<f32>, Engine) {
    let mut engine =
        Engine::new(9, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    engine.set_packet_ms(packet_ms).expect("10 or 20 ms");
    let mut out_all = Vec::with_capacity(mic_all.len());
    let mut out = [0.0f32; QUANTUM];
    for mic in mic_all.chunks_exact(QUANTUM) {
        let frame = engine
            .process_quantum(mic, &mut out)
            .expect("process")
            .map(<[u8]>::to_vec);
        if let Some(f) = frame {
            engine.receive(&f).expect("own frames are valid");
        }
        out_all.extend_from_slice(&out);
    }
    (out_all, engine)
}

#[test]
fn the_engine_refuses_other_packet_durations() {
    let mut engine =
        Engine::new(9, EncoderSettings::default(), JitterSettings::default()).expect("engine");
    for bad in [0, 5, 15, 30, 40, 60, u32::MAX] {
        assert!(engine.set_packet_ms(bad).is_err(), "{bad} ms accepted");
    }
    let before = engine.added_latency_ms();
    assert!(engine.set_packet_ms(25).is_err());
    assert_eq!(
        engine.added_latency_ms(),
        before,
        "a refused duration changes nothing"
    );
}

#[test]
fn at_ten_ms_the_engine_sends_100_packets_a_second_and_declares_its_latency() {
    let speech = speech(
        "engine-latency",
        "en-us",
        "Thank you for calling the order desk. Your hoodie shipped on the twelfth of November.",
    );
    let mut mic = vec![0.0f32; 48_000];
    while mic.len() < 48_000 * 8 {
        mic.extend_from_slice(&speech);
    }
    mic.truncate(48_000 * 8 / QUANTUM * QUANTUM);
    let (out, engine) = loopback(&mic, 10);
    let s = engine.stats();
    assert!(
        (795..=800).contains(&s.packets_sent),
        "packets: {}",
        s.packets_sent
    );
    assert_eq!(s.jitter.late, 0);
    let (send10, _) = engine.added_latency_ms();
    let (_, e20) = loopback(&mic[..48_000 / QUANTUM * QUANTUM], 20);
    let (send20, _) = e20.added_latency_ms();
    assert!(
        (send20 - send10 - 9.0).abs() < 0.5,
        "10 ms packets save 10 ms less the chunk alignment: {send20:.1} -> {send10:.1}"
    );
    let mut lags = Vec::new();
    let window = 12_000;
    let mut from = 48_000 * 3;
    while from + window + 9_600 < mic.len() {
        if energy(&mic[from..from + window]) / window as f64 > 1e-4 {
            let a = &mic[from..from + window];
            let (lag, corr) = best_lag(a, &out[from..], 9_600);
            if corr > 0.6 {
                lags.push(lag as f64 / 48.0);
            }
        }
        from += window;
    }
    lags.sort_by(f64::total_cmp);
    assert!(lags.len() >= 5, "speech windows matched: {lags:?}");
    let measured = lags[lags.len() / 2];
    let buffer = f64::from(s.buffer_delay_ms);
    let declared = send10 + buffer;
    eprintln!("10 ms loopback: measured {measured:.1} ms, declared {send10:.1} + {buffer:.1} = {declared:.1} ms");
    assert!(
        (measured - declared).abs() <= 6.0,
        "measured {measured:.1} ms against declared {declared:.1} ms"
    );
}
