//! Packet loss: at 10% random loss, the audio on the lost packets' time
//! slots (rebuilt from FEC or concealed) keeps at least 6 dB SNR against a
//! loss-free decode; at 0% the receive chain is sample-exact to a plain
//! decode of the same packets.

mod support;

use media::codec::{Decoder, Encoder, EncoderSettings};
use media::frame::{BLOCK, PACKET};
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;
use support::*;

const TEXT: &str =
    "Your order number is one hundred. The hoodie is dark blue, size large, and it shipped \
    on the twelfth of November from our warehouse in Osaka. Please keep the receipt for returns.";

fn packets(pcm: &[f32]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    pcm.chunks_exact(PACKET)
        .map(|c| {
            enc.encode(c.try_into().expect("packet"))
                .expect("encode")
                .to_vec()
        })
        .collect()
}

/// Plays `packets` (skipping `lost`) through a receive chain on a virtual
/// clock with no jitter; returns the audio and the chain's start offset.
fn play(packets: &[Vec<u8>], lost: &[bool]) -> (Vec<f32>, ReceiveChain) {
    let mut chain = ReceiveChain::new(None, JitterSettings::default()).expect("chain");
    let mut out = Vec::new();
    // Pulls until every packet's slot was taken, and no more: pulls past
    // the end would conceal (the last packet's tail may be cut).
    let mut next_packet = 0;
    for b in 0.. {
        let s = chain.stats();
        if s.played + s.fec_recovered + s.concealed >= packets.len() as u64 {
            break;
        }
        let now = b as f64 * 10.0;
        // Packet k is sent at k*20 ms and arrives 30 ms later.
        while next_packet < packets.len() && next_packet as f64 * 20.0 + 30.0 <= now {
            if !lost[next_packet] {
                chain.push_packet(
                    next_packet as u32,
                    (next_packet * PACKET) as u32,
                    &packets[next_packet],
                    now,
                );
            }
            next_packet += 1;
        }
        let mut block = [0.0f32; BLOCK];
        chain.next_block(&mut block, now);
        out.extend_from_slice(&block);
    }
    (out, chain)
}

fn reference_decode(packets: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut out = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for p in packets {
        dec.decode(p, &mut pcm).expect("decode");
        out.extend_from_slice(&pcm);
    }
    out
}

/// Where the reference's first sample appears in the chain's output.
fn offset(reference: &[f32], played: &[f32]) -> usize {
    let (lag, corr) = best_lag(&reference[..48_000], played, 9_600);
    assert!(
        corr > 0.99,
        "played audio matches the decode (correlation {corr:.3})"
    );
    lag
}

#[test]
fn no_loss_is_transparent() {
    let pcm = speech("loss", "en-us", TEXT);
    let pk = packets(&pcm);
    let reference = reference_decode(&pk);
    let (played, chain) = play(&pk, &vec![false; pk.len()]);
    let at = offset(&reference, &played);
    // Playout starts on the jitter buffer's target to the sample (tested
    // in tests/jitter.rs), not on a packet boundary of the output.
    let n = reference.len().min(played.len() - at);
    let s = chain.stats();
    let first_diff = (0..n).find(|&i| played[at + i] != reference[i]);
    assert_eq!(
        first_diff, None,
        "sample-exact from offset {at} (stats {s:?})"
    );
    assert_eq!(
        (s.concealed, s.fec_recovered, s.late, s.shrinks, s.grows),
        (0, 0, 0, 0, 0)
    );
}

#[test]
fn ten_percent_loss_keeps_lost_slots_intelligible() {
    let pcm = speech("loss", "en-us", TEXT);
    let pk = packets(&pcm);
    let reference = reference_decode(&pk);
    let mut rng = Rng(0x1055);
    // Never lose the first packets: the offset is found from them.
    let lost: Vec<bool> = (0..pk.len()).map(|i| i > 60 && rng.unit() < 0.10).collect();
    let (played, chain) = play(&pk, &lost);
    let clean = play(&pk, &vec![false; pk.len()]).0;
    let at = offset(&reference, &clean);
    let s = chain.stats();
    eprintln!(
        "lost {} of {} packets: {} rebuilt from FEC, {} concealed; {} shrinks {} grows",
        lost.iter().filter(|l| **l).count(),
        pk.len(),
        s.fec_recovered,
        s.concealed,
        s.shrinks,
        s.grows
    );
    assert!(s.fec_recovered > 0, "FEC was used");
    // The chain moves playout by whole 10 ms blocks (one packet is added
    // for FEC once losses start), so for each lost slot find the block
    // offset that matches the packets just before it, then measure the slot.
    let (mut e_ref, mut e_err, mut slots) = (0.0, 0.0, 0);
    for (k, l) in lost.iter().enumerate() {
        if !l || k < 80 || lost[k - 1] || lost[k - 2] {
            continue;
        }
        let r = &reference[k * PACKET..(k + 1) * PACKET];
        if energy(r) < 1e-4 {
            continue;
        }
        let before = &reference[(k - 2) * PACKET..k * PACKET];
        let shift = (0..8usize)
            .map(|m| at + m * BLOCK)
            .filter(|o| o + (k + 1) * PACKET <= played.len())
            .min_by(|a, b| {
                let err = |o: usize| snr_db(before, &played[o + (k - 2) * PACKET..o + k * PACKET]);
                err(*b).total_cmp(&err(*a))
            });
        let Some(o) = shift else { continue };
        let p = &played[o + k * PACKET..o + (k + 1) * PACKET];
        e_ref += energy(r);
        e_err += r
            .iter()
            .zip(p)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>();
        slots += 1;
    }
    let snr = db(e_ref / e_err);
    eprintln!("SNR on {slots} lost speech slots: {snr:.1} dB");
    assert!(slots > 10);
    assert!(snr >= 6.0, "SNR on lost slots {snr:.1} dB < 6 dB");
}
