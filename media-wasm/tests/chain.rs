//! The whole send chain as the caller hears the agent: echo cancellation,
//! noise suppression, gain control and Opus, decoded again, judged from
//! the first second (issue 16, "the chain's quality, judged as a whole").
//! English and Japanese speech from espeak-ng (it reads kana), echo paths
//! from 30 to 250 ms, double talk, a noisy near end with a noise-only
//! lead-in, and a headset with no echo at all. The echo and noise scenes
//! run in both packet modes (10 and 20 ms).
//!
//! Thresholds, from the goals:
//! - ERLE of the chain at least 25 dB in every second from the second on,
//!   and at least 35 dB in steady state, at every echo path;
//! - near end lost in double talk: no more than 8 dB;
//! - no sample at or above full scale, ever;
//! - the gain never rises while only the far end speaks, and moves by no
//!   more than 3 dB within any second;
//! - noise suppression in the chain within 1 dB of the suppressor alone
//!   (SI-SDR), and a noise-only lead-in not lifted by the gain.

mod support;

use media::codec::EncoderSettings;
use media::denoise::NoiseSuppressor;
use media::frame::{BLOCK, PACKET};
use media::send::SendChain;
use protocol::media::decode_media_frame;
use support::*;

const RATE: usize = 48_000;

const FAR_EN: &str = "Thank you for calling the order desk. Your hoodie shipped on the twelfth \
    of November. It should arrive within three business days. Is there anything else I can help \
    you with today? We can also change the delivery address or the size before it leaves.";
const NEAR_EN: &str =
    "Yes, I would like to change the size to medium please, and the colour to blue.";
const FAR_JA: &str = "おでんわ ありがとう ございます。 ごちゅうもんの しなものは じゅうににちに \
    はっそう されました。 みっかいないに おとどけ します。 ほかに ごようけんは ございますか。 \
    おとどけさきの ごへんこうも うけたまわります。";
const NEAR_JA: &str = "はい、 サイズを エムに かえて ください。 いろは あおで おねがいします。";
const NEAR_EN_2: &str = "I have a question about my invoice from last month. The total looks \
    higher than the quote I was given on the phone, so could you check it for me?";

/// What the chain produced: the decoded audio aligned to the microphone
/// (sample i is what became of mic sample i), and the gain per block.
struct Heard {
    audio: Vec<f32>,
    gain_db: Vec<f32>,
}

/// Runs `mic` (with `far` played) through a fresh send chain and an Opus
/// decoder. `setup` switches stages for reference runs.
fn chain(far: &[f32], mic: &[f32], setup: impl FnOnce(&mut SendChain)) -> Heard {
    chain_at(20, far, mic, setup)
}

/// As [`chain`], with packets of `packet_ms` (10 or 20).
fn chain_at(packet_ms: u32, far: &[f32], mic: &[f32], setup: impl FnOnce(&mut SendChain)) -> Heard {
    let mut send = SendChain::new(1, EncoderSettings::default()).expect("chain");
    send.set_packet_ms(packet_ms).expect("10 or 20 ms");
    setup(&mut send);
    let mut decoder = media::codec::Decoder::new().expect("decoder");
    let delay = send.processing_delay_samples();
    let blocks = mic.len() / BLOCK;
    let mut decoded = Vec::with_capacity(mic.len() + delay + PACKET);
    let mut gain_db = Vec::with_capacity(blocks);
    let mut pcm = [0.0f32; PACKET];
    // Run past the end so the delayed tail comes out too.
    let extra = delay.div_ceil(BLOCK) + PACKET / BLOCK;
    for b in 0..blocks + extra {
        let r = b * BLOCK..(b + 1) * BLOCK;
        let pick = |x: &[f32]| -> [f32; BLOCK] {
            let mut block = [0.0f32; BLOCK];
            if r.end <= x.len() {
                block.copy_from_slice(&x[r.clone()]);
            }
            block
        };
        send.far_end(&pick(far));
        let mut block = pick(mic);
        if let Some(frame) = send.process_block(&mut block).expect("encode") {
            let frame = decode_media_frame(frame).expect("own frame");
            let n = frame.header.timestamp as usize;
            let len = decoder.decode_len(frame.payload, &mut pcm).expect("decode");
            assert_eq!(len, packet_ms as usize * BLOCK / 10, "packet duration");
            assert_eq!(n, decoded.len(), "timestamps count samples");
            decoded.extend_from_slice(&pcm[..len]);
        }
        if b < blocks {
            gain_db.push(send.gain_db());
        }
    }
    let mut audio = decoded[delay.min(decoded.len())..].to_vec();
    audio.resize(blocks * BLOCK, 0.0);
    Heard { audio, gain_db }
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

fn place(total: usize, at: usize, speech: &[f32], gain: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; total];
    for (i, s) in speech.iter().enumerate() {
        if at + i < total {
            out[at + i] = s * gain;
        }
    }
    out
}

fn noise(n: usize, seed: u64, amplitude: f32) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.signed() * amplitude).collect()
}

/// Gain checks over blocks `from..to`: never rising (within float noise).
fn assert_gain_never_rises(gain: &[f32], from: usize, to: usize, what: &str) {
    for b in from.max(1)..to.min(gain.len()) {
        assert!(
            gain[b] <= gain[b - 1] + 1e-4,
            "{what}: gain rose from {:.2} to {:.2} dB at {:.2} s while only the far end spoke",
            gain[b - 1],
            gain[b],
            b as f32 / 100.0
        );
    }
}

/// The gain's largest range within any one-second window, dB.
fn gain_moved_per_second(gain: &[f32]) -> f32 {
    let per_second = RATE / BLOCK;
    let mut worst = 0.0f32;
    for start in 0..gain.len().saturating_sub(per_second) {
        let w = &gain[start..start + per_second];
        let (lo, hi) = w
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &g| (l.min(g), h.max(g)));
        worst = worst.max(hi - lo);
    }
    worst
}

/// "A few dB per second": the gain moves at most 3 dB within any second.
fn assert_gain_is_slow(worst: f32, what: &str) {
    assert!(
        worst <= 3.0,
        "{what}: the gain moved {worst:.2} dB within one second"
    );
}

/// Projection gain of `out` onto `reference` over `range`, as dB lost,
/// with `out` searched for the best alignment within +-`search` samples.
fn loss_db(reference: &[f32], out: &[f32], range: std::ops::Range<usize>, search: usize) -> f64 {
    let from = range.start.saturating_sub(search);
    let (lag, corr) = best_lag(&reference[range.clone()], &out[from..], 2 * search);
    let shift = from + lag;
    assert!(
        corr > 0.5,
        "near-end speech recognisable in the output (correlation {corr:.2})"
    );
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (k, i) in range.enumerate() {
        if shift + k < out.len() {
            num += f64::from(reference[i]) * f64::from(out[shift + k]);
            den += f64::from(reference[i]).powi(2);
        }
    }
    -20.0 * (num / den).abs().max(1e-9).log10()
}

/// An echo scene: far-end speech from the first moment, through a room of
/// `delay_ms`, the near end joining at 7 s (double talk). Checks ERLE per
/// second, steady ERLE, double-talk loss, peaks and the gain.
fn echo_scene(lang: &str, delay_ms: f32, seed: u64, packet_ms: u32) {
    let (far, near) = match lang {
        "en" => (
            speech("chain-far-en", "en-us", FAR_EN),
            speech("chain-near-en", "en+f3", NEAR_EN),
        ),
        _ => (
            speech("chain-far-ja", "ja", FAR_JA),
            speech("chain-near-ja", "ja", NEAR_JA),
        ),
    };
    let dt_start = 7 * RATE;
    let total = (dt_start + near.len().min(4 * RATE)) / BLOCK * BLOCK;
    let far = place(total, 0, &far, 1.0);
    let near = place(total, dt_start, &near, 1.0);
    let echo = convolve(&far, &room_impulse(delay_ms, 60.0, -6.0, seed));
    let floor = noise(total, seed ^ 0xabc, 0.0005);
    let mic: Vec<f32> = (0..total).map(|i| echo[i] + near[i] + floor[i]).collect();
    let heard = chain_at(packet_ms, &far, &mic, |_| {});
    let out = &heard.audio;

    // ERLE in each second of far-end-only speech, over the blocks where
    // the echo is present.
    let mut per_second = Vec::new();
    for second in 0..dt_start / RATE {
        let (mut e_in, mut e_out) = (0.0, 0.0);
        for b in (second * RATE / BLOCK)..((second + 1) * RATE / BLOCK) {
            let r = b * BLOCK..(b + 1) * BLOCK;
            if db(energy(&echo[r.clone()]) / BLOCK as f64) > -50.0 {
                e_in += energy(&mic[r.clone()]);
                e_out += energy(&out[r]);
            }
        }
        if e_in > 0.0 {
            per_second.push((second, db(e_in / e_out.max(1e-30))));
        }
    }
    let (mut s_in, mut s_out) = (0.0, 0.0);
    for b in (4 * RATE / BLOCK)..(dt_start / BLOCK) {
        let r = b * BLOCK..(b + 1) * BLOCK;
        if db(energy(&echo[r.clone()]) / BLOCK as f64) > -50.0 {
            s_in += energy(&mic[r.clone()]);
            s_out += energy(&out[r]);
        }
    }
    let steady = db(s_in / s_out.max(1e-30));
    let dt_loss = loss_db(&near, out, dt_start..total, 480);
    let worst_move = gain_moved_per_second(&heard.gain_db);
    eprintln!(
        "{lang} echo {delay_ms} ms, {packet_ms} ms packets: ERLE per second {}; steady {steady:.1} dB; double-talk loss \
         {dt_loss:.1} dB; peak {:.3}; gain {:.1}..{:.1} dB, most moved in a second {worst_move:.2} dB",
        per_second
            .iter()
            .map(|(s, e)| format!("{s}s {e:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        peak(out),
        heard.gain_db.iter().cloned().fold(f32::MAX, f32::min),
        heard.gain_db.iter().cloned().fold(f32::MIN, f32::max),
    );
    for (second, erle) in per_second.iter().filter(|(s, _)| *s >= 1) {
        assert!(
            *erle >= 25.0,
            "{lang} echo {delay_ms} ms: ERLE {erle:.1} dB < 25 dB in second {}",
            second + 1
        );
    }
    assert!(
        steady >= 35.0,
        "{lang} echo {delay_ms} ms: steady ERLE {steady:.1} dB < 35 dB"
    );
    assert!(
        dt_loss <= 8.0,
        "{lang} echo {delay_ms} ms: near end lost {dt_loss:.1} dB in double talk"
    );
    assert!(peak(out) < 1.0, "a sample at or above full scale");
    assert_gain_never_rises(&heard.gain_db, 0, dt_start / BLOCK, lang);
    assert_gain_is_slow(worst_move, lang);
}

#[test]
fn english_echo_is_removed_from_the_first_seconds_at_every_path() {
    for (delay, seed) in [(30.0, 1), (90.0, 2), (150.0, 3), (250.0, 4)] {
        echo_scene("en", delay, seed, 20);
    }
}

#[test]
fn japanese_echo_is_removed_from_the_first_seconds_at_every_path() {
    for (delay, seed) in [(30.0, 5), (90.0, 6), (150.0, 7), (250.0, 8)] {
        echo_scene("ja", delay, seed, 20);
    }
}

#[test]
fn english_echo_is_removed_at_every_path_with_10_ms_packets() {
    for (delay, seed) in [(30.0, 1), (90.0, 2), (150.0, 3), (250.0, 4)] {
        echo_scene("en", delay, seed, 10);
    }
}

#[test]
fn japanese_echo_is_removed_at_every_path_with_10_ms_packets() {
    for (delay, seed) in [(30.0, 5), (90.0, 6), (150.0, 7), (250.0, 8)] {
        echo_scene("ja", delay, seed, 10);
    }
}

/// SI-SDR of `test` against `reference` (both aligned already), dB.
fn si_sdr(reference: &[f32], test: &[f32]) -> f64 {
    let dot: f64 = reference
        .iter()
        .zip(test)
        .map(|(&r, &t)| f64::from(r) * f64::from(t))
        .sum();
    let alpha = dot / energy(reference).max(1e-30);
    let err: f64 = reference
        .iter()
        .zip(test)
        .map(|(&r, &t)| (alpha * f64::from(r) - f64::from(t)).powi(2))
        .sum();
    db(alpha * alpha * energy(reference) / err.max(1e-30))
}

/// `test` shifted by its best lag (up to `max_lag` later) against
/// `reference`, over `range`.
fn aligned(reference: &[f32], test: &[f32], range: std::ops::Range<usize>, max_lag: usize) -> f64 {
    let (lag, _) = best_lag(&reference[range.clone()], &test[range.start..], max_lag);
    let t: Vec<f32> = range
        .clone()
        .map(|i| test.get(i + lag).copied().unwrap_or(0.0))
        .collect();
    si_sdr(&reference[range], &t)
}

/// A noisy near end (no echo, the far end silent): 1.5 s of noise alone,
/// then speech at 5 dB SNR. Opus and the echo canceller's filter bank
/// change the waveform whatever the noise (Opus alone costs the suppressor
/// about 1.3 dB of SI-SDR against clean speech), so each side is judged
/// against clean speech through its own transparent path: the whole chain
/// against clean speech through the chain with suppression and gain off,
/// the suppressor alone (then Opus) against clean speech through Opus.
/// The chain is within 1 dB of the suppressor alone, so echo cancellation
/// and gain cost the suppression no more than that; and the gain does not
/// lift the noise-only lead-in.
fn noisy_scene(lang: &str, packet_ms: u32) {
    let near = match lang {
        "en" => speech("chain-near-en-2", "en-us", NEAR_EN_2),
        _ => speech("chain-far-ja", "ja", FAR_JA),
    };
    let lead = 3 * RATE / 2;
    let total = (lead + near.len().min(6 * RATE)) / BLOCK * BLOCK;
    let clean = place(total, lead, &near, 1.0);
    // White noise 5 dB under the speech's level (-20 dBFS RMS).
    let amplitude = 0.1 * 10f32.powf(-5.0 / 20.0) * 3f32.sqrt();
    let n = noise(total, 77, amplitude);
    let mic: Vec<f32> = (0..total).map(|i| clean[i] + n[i]).collect();
    let silent = vec![0.0f32; total];

    let mut ns = NoiseSuppressor::new();
    let mut alone = Vec::with_capacity(total);
    for c in mic.chunks_exact(BLOCK) {
        let mut b: [f32; BLOCK] = c.try_into().expect("block");
        ns.process(&mut b);
        alone.extend_from_slice(&b);
    }
    let heard = chain_at(packet_ms, &silent, &mic, |_| {});
    let reference = chain_at(packet_ms, &silent, &clean, |c| {
        c.enable_denoise = false;
        c.enable_gain = false;
    });
    let speech_range = lead..total;
    let alone_sdr = aligned(&clean, &alone, speech_range.clone(), BLOCK + 64);
    // The suppressor alone as the caller would hear it: through Opus,
    // judged against clean speech through Opus.
    let alone_heard = chain_at(packet_ms, &silent, &mic, |c| {
        c.enable_echo = false;
        c.enable_gain = false;
    });
    let opus_only = chain_at(packet_ms, &silent, &clean, |c| {
        c.enable_echo = false;
        c.enable_denoise = false;
        c.enable_gain = false;
    });
    let alone_heard_sdr = aligned(
        &opus_only.audio,
        &alone_heard.audio,
        speech_range.clone(),
        BLOCK + 64,
    );
    // The reference skips the suppressor, so its declared delay is one
    // block shorter than the chain's: search past it.
    let chain_sdr = aligned(
        &reference.audio,
        &heard.audio,
        speech_range.clone(),
        BLOCK + 64,
    );
    let lead_range = RATE / 2..lead;
    let lead_alone = db(energy(&alone[lead_range.clone()]));
    let lead_chain = db(energy(&heard.audio[lead_range.clone()]));
    let lead_in = db(energy(&mic[lead_range]));
    eprintln!(
        "{lang} noisy near end, {packet_ms} ms packets: SI-SDR suppressor alone {alone_sdr:.1} dB (through Opus \
         {alone_heard_sdr:.1} dB), chain {chain_sdr:.1} dB; lead-in noise reduced {:.1} dB alone, \
         {:.1} dB in the chain; peak {:.3}",
        lead_in - lead_alone,
        lead_in - lead_chain,
        peak(&heard.audio)
    );
    assert!(
        chain_sdr >= alone_heard_sdr - 1.0,
        "{lang}: chain SI-SDR {chain_sdr:.1} dB, suppressor alone through Opus {alone_heard_sdr:.1} dB"
    );
    assert!(
        lead_chain <= lead_alone + 1.0,
        "{lang}: the chain lifted the noise-only lead-in ({:.1} dB more than the suppressor alone)",
        lead_chain - lead_alone
    );
    assert!(peak(&heard.audio) < 1.0, "a sample at or above full scale");
    assert_gain_is_slow(gain_moved_per_second(&heard.gain_db), "noisy near end");
}

#[test]
fn a_noisy_near_end_keeps_the_suppressors_quality_in_the_chain() {
    noisy_scene("en", 20);
    noisy_scene("ja", 20);
}

#[test]
fn a_noisy_near_end_keeps_the_suppressors_quality_with_10_ms_packets() {
    noisy_scene("en", 10);
    noisy_scene("ja", 10);
}

/// A headset: no echo at all. The caller and a quiet agent (-32 dBFS)
/// talk at once from the first moment; the caller stops at 4 s and the
/// agent goes on. The agent is not swallowed (no more than the 8 dB of
/// double talk, suppressor onset and Opus included), the gain holds while the
/// caller may be heard and then lifts the quiet agent slowly, and nothing
/// clips.
#[test]
fn a_headset_with_no_echo_keeps_and_levels_the_agent() {
    let far = speech("chain-far-en", "en-us", FAR_EN);
    let mut agent = speech("chain-near-en-2", "en-us", NEAR_EN_2);
    agent.extend(speech("chain-near-en", "en+f3", NEAR_EN));
    let total = agent.len().min(14 * RATE) / BLOCK * BLOCK;
    let far = place(total, 0, &far[..(4 * RATE).min(far.len())], 1.0);
    let quiet = 10f32.powf(-12.0 / 20.0);
    let near = place(total, 0, &agent, quiet);
    let floor = noise(total, 99, 0.0003);
    let mic: Vec<f32> = (0..total).map(|i| near[i] + floor[i]).collect();
    let heard = chain(&far, &mic, |_| {});
    let out = &heard.audio;
    let early = loss_db(&near, out, 0..2 * RATE, 480);
    let mid = loss_db(&near, out, 2 * RATE..4 * RATE, 480);
    let end_gain = *heard.gain_db.last().expect("blocks");
    let worst = gain_moved_per_second(&heard.gain_db);
    eprintln!(
        "headset: agent lost {early:.1} dB in 0-2 s, {mid:.1} dB in 2-4 s; gain at the end \
         {end_gain:.1} dB; most moved in a second {worst:.2} dB; peak {:.3}",
        peak(out)
    );
    assert!(
        early <= 8.0 && mid <= 8.0,
        "agent attenuated while the caller talked"
    );
    // The caller may be heard until 4 s plus the hangover.
    assert_gain_never_rises(&heard.gain_db, 0, 4 * RATE / BLOCK + 60, "headset");
    assert!(
        end_gain >= 3.0,
        "a quiet agent is lifted once the caller is silent (gain {end_gain:.1} dB)"
    );
    assert!(peak(out) < 1.0, "a sample at or above full scale");
    assert_gain_is_slow(worst, "headset");
}

/// An agent who speaks softly for a while (the gain lifts them) and then
/// leans in and speaks loudly, peaks near full scale, on a headset: no
/// sample reaches full scale after the chain, from the loud sentence's
/// first block on.
#[test]
fn a_loud_agent_after_a_quiet_one_never_reaches_full_scale() {
    let soft = speech("chain-near-en-2", "en-us", NEAR_EN_2);
    let loud = speech("chain-near-ja", "ja", NEAR_JA);
    let soft_len = soft.len().min(7 * RATE);
    let total = (soft_len + loud.len()) / BLOCK * BLOCK;
    let mut mic = place(total, 0, &soft[..soft_len], 10f32.powf(-16.0 / 20.0));
    let loud_gain = 0.99 / peak(&loud);
    for (i, s) in loud.iter().enumerate() {
        if soft_len + i < total {
            mic[soft_len + i] = s * loud_gain;
        }
    }
    let silent = vec![0.0f32; total];
    let heard = chain(&silent, &mic, |_| {});
    let gain_before = heard.gain_db[soft_len / BLOCK - 1];
    eprintln!(
        "loud after soft: gain {gain_before:.1} dB before the loud sentence; input peak {:.3}, \
         output peak {:.3}",
        peak(&mic),
        peak(&heard.audio)
    );
    assert!(gain_before > 6.0, "the soft talker was lifted first");
    assert!(
        peak(&heard.audio) < 1.0,
        "output peak {:.3}",
        peak(&heard.audio)
    );
}
