//! The media side of the SIP gateway's integration tests, re-exported by
//! [`crate::sip`]: RTP packets and a raw peer that plays and records an
//! RTP stream, the agent's media frames (patterns, speech, what it
//! heard), and audio checks (espeak-ng/sox speech, WAV reading, the
//! correlation that judges whether each end of a call heard the other).
//! The signalling side (raw SIP messages, the gateway's set-up, baresip,
//! SIPp and Kamailio) stays in [`crate::sip`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::sip::baresip_dec_wav;

// ---- RTP packets and a raw RTP peer ----------------------------------------

/// An RTP packet (version 2, no marker).
pub fn rtp(pt: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// One RTP packet a raw peer received.
pub struct RtpIn {
    /// When it came.
    pub at: tokio::time::Instant,
    /// Its payload type (marker bit cleared).
    pub pt: u8,
    /// Its sequence number.
    pub seq: u16,
    /// Its timestamp.
    pub ts: u32,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A raw peer's RTP side for `ms.1` milliseconds: every `ms.0` ms it
/// sends `next()` to `to` (nothing when it gives `None`), and keeps every
/// RTP packet that comes back, in arrival order; with `stop`, ends early
/// once it turns true.
pub fn rtp_peer(
    rtp: UdpSocket,
    to: SocketAddr,
    ms: (u64, u64),
    mut stop: Option<tokio::sync::watch::Receiver<bool>>,
    mut next: impl FnMut() -> Option<Vec<u8>> + Send + 'static,
) -> tokio::task::JoinHandle<Vec<RtpIn>> {
    let (tick_ms, duration_ms) = ms;
    tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        let end = tokio::time::Instant::now() + Duration::from_millis(duration_ms);
        let stopped = |s: &Option<tokio::sync::watch::Receiver<bool>>| {
            s.as_ref().is_some_and(|s| *s.borrow())
        };
        while tokio::time::Instant::now() < end && !stopped(&stop) {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(p) = next() {
                        let _ = rtp.send_to(&p, to).await;
                    }
                }
                r = rtp.recv_from(&mut buf) => {
                    if let Ok((len, _)) = r {
                        if len > 12 {
                            got.push(RtpIn {
                                at: tokio::time::Instant::now(),
                                pt: buf[1] & 0x7f,
                                seq: u16::from_be_bytes([buf[2], buf[3]]),
                                ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                                payload: buf[12..len].to_vec(),
                            });
                        }
                    }
                }
                _ = async {
                    match stop.as_mut() {
                        Some(s) => {
                            let _ = s.changed().await;
                        }
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        got
    })
}

/// The payloads of the RTP packets of payload type `pt` in `got`.
pub fn payloads_of(got: &[RtpIn], pt: u8) -> Vec<Vec<u8>> {
    got.iter()
        .filter(|p| p.pt == pt)
        .map(|p| p.payload.clone())
        .collect()
}

/// The agent's media frames on `leg` in `codec`, 20 ms apart (48 kHz
/// timestamps), frame `n` carrying `payload(n)`.
pub fn codec_frames(
    leg: u32,
    codec: protocol::media::Codec,
    mut payload: impl FnMut(u32) -> Vec<u8>,
) -> impl FnMut() -> Vec<u8> {
    let mut seq = 0u32;
    move || {
        let mut f = Vec::new();
        let header = protocol::media::MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq * media::frame::PACKET as u32,
        };
        protocol::media::encode_media_frame_codec(&header, codec, &payload(seq), &mut f);
        seq += 1;
        f
    }
}

/// 160 bytes of side `side`'s packet `n` (0 the trunk or caller, 1 the
/// agent or the other party): a G.711 payload no encoder would make from
/// audio, so only forwarding keeps it.
pub fn pcmu_pattern(side: u8, n: u16) -> Vec<u8> {
    (0..160u16)
        .map(|k| ((n.wrapping_mul(37)).wrapping_add(k.wrapping_mul(11)) as u8) ^ (side * 0x5a))
        .collect()
}

/// A raw peer sending `payload(n)` as PCMU RTP (SSRC `ssrc`, 20 ms a
/// packet) from `socket` to `to`, `packets` of them, and listening
/// `linger_ms` longer; the payloads of the PCMU RTP that came back.
pub fn pcmu_peer(
    socket: UdpSocket,
    to: SocketAddr,
    packets: u16,
    linger_ms: u64,
    ssrc: u32,
    mut payload: impl FnMut(u16) -> Vec<u8> + Send + 'static,
) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
    let mut n = 0u16;
    let send = move || {
        let p = (n < packets).then(|| rtp(0, n, u32::from(n) * 160, ssrc, &payload(n)));
        n = n.saturating_add(1);
        p
    };
    let ms = u64::from(packets) * 20 + linger_ms;
    let peer = rtp_peer(socket, to, (20, ms), None, send);
    tokio::spawn(async move { payloads_of(&peer.await.expect("RTP peer"), 0) })
}

// ---- audio files and correlation -------------------------------------------

/// Runs a tool to completion; a missing tool fails the test.
pub fn run(cmd: &str, args: &[&str]) {
    let ok = std::process::Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (cargo xtask test installs it): {e}"))
        .success();
    assert!(ok, "{cmd} {args:?} failed");
}

/// A 16-bit PCM WAV's rate and its samples (interleaved when stereo).
pub fn read_wav_pcm16(path: &Path) -> (u32, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    // Find the data chunk (sox and baresip may add others).
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        if &bytes[i..i + 4] == b"data" {
            let end = (i + 8 + len).min(bytes.len());
            let pcm = bytes[i + 8..end]
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect();
            return (rate, pcm);
        }
        i += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// A WAV's channel count.
pub fn wav_channels(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    u16::from_le_bytes([bytes[22], bytes[23]])
}

/// Speech from espeak-ng, as `<name>_8k.wav` (the G.711 caller's file)
/// and `<name>_48k.wav` (mono), padded with `pad_s` seconds of silence.
pub fn speech(dir: &Path, name: &str, text: &str, pad_s: u32) -> (PathBuf, PathBuf) {
    let raw = dir.join(format!("{name}_raw.wav"));
    run("espeak-ng", &["-w", raw.to_str().expect("path"), text]);
    let n8 = resample(dir, &raw, &format!("{name}_8k.wav"), 8000, 1, pad_s);
    let n48 = resample(dir, &raw, &format!("{name}_48k.wav"), 48_000, 1, pad_s);
    (n8, n48)
}

/// `raw` as `dir/out` at `rate` with `channels`, normalised to -3 dB and
/// padded with `pad_s` seconds (baresip's Opus source is 48 kHz stereo).
pub fn resample(dir: &Path, raw: &Path, out: &str, rate: u32, channels: u8, pad_s: u32) -> PathBuf {
    let path = dir.join(out);
    run(
        "sox",
        &[
            raw.to_str().expect("path"),
            "-r",
            &rate.to_string(),
            "-c",
            &channels.to_string(),
            "-b",
            "16",
            "-e",
            "signed",
            path.to_str().expect("path"),
            "norm",
            "-3",
            "pad",
            "0",
            &pad_s.to_string(),
        ],
    );
    path
}

/// Normalised correlation of `rec` against `reference` at `lag`
/// (positive: `rec` is late).
pub fn ncc_at(reference: &[f32], rec: &[f32], lag: i64) -> f64 {
    let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
    let mut overlap = 0usize;
    for (i, &x) in reference.iter().enumerate() {
        let j = i as i64 + lag;
        if j < 0 {
            continue;
        }
        let Some(&y) = rec.get(j as usize) else { break };
        let (x, y) = (f64::from(x), f64::from(y));
        xy += x * y;
        xx += x * x;
        yy += y * y;
        overlap += 1;
    }
    // A lag at the recording's edge overlaps a few samples, whose
    // correlation is near +-1 whatever they hold: it says nothing. Only a
    // lag where most of the reference lies inside the recording counts.
    if overlap * 4 < reference.len() * 3 {
        return 0.0;
    }
    if xx > 0.0 && yy > 0.0 {
        xy / (xx * yy).sqrt()
    } else {
        0.0
    }
}

/// Best normalised cross-correlation of `rec` against `reference` within
/// +-`max_lag` samples of `centre`, and its lag: a coarse search on 5 ms
/// energy envelopes, then every lag within 10 ms of the three best coarse
/// ones (a full search is too slow in a debug build).
pub fn ncc(reference: &[f32], rec: &[f32], centre: i64, max_lag: usize) -> (f64, i64) {
    const BLOCK: usize = 40;
    let env = |x: &[f32]| -> Vec<f32> {
        x.chunks(BLOCK)
            .map(|c| c.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect()
    };
    let (er, ec) = (env(reference), env(rec));
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len().max(1) as f32;
    let (mr, mc) = (mean(&er), mean(&ec));
    let er: Vec<f32> = er.iter().map(|v| v - mr).collect();
    let ec: Vec<f32> = ec.iter().map(|v| v - mc).collect();
    let blocks = (max_lag / BLOCK) as i64;
    let c = centre / BLOCK as i64;
    let mut coarse: Vec<(f64, i64)> = (c - blocks..=c + blocks)
        .map(|l| (ncc_at(&er, &ec, l), l))
        .collect();
    coarse.sort_by(|a, b| b.0.total_cmp(&a.0));
    // The fine search around the three best envelope lags.
    coarse
        .iter()
        .take(3)
        .flat_map(|&(_, l)| {
            let centre = l * BLOCK as i64;
            centre - 2 * BLOCK as i64..=centre + 2 * BLOCK as i64
        })
        .map(|l| (ncc_at(reference, rec, l), l))
        .fold((-1.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// The mean of the better half, over the reference's voiced 1 s windows
/// (8 kHz), of each window's best correlation in `rec`: robust to a lost
/// or late packet shifting the rest of a recording (which a single global
/// lag is not), and to the first second being lost while the call's media
/// route is set up on a loaded machine; still needs half the speech intact.
pub fn ncc_windows(reference: &[f32], rec: &[f32], max_lag: usize) -> f64 {
    const WINDOW: usize = 8000;
    let mut scores: Vec<f64> = reference
        .chunks_exact(WINDOW)
        .enumerate()
        .filter(|(_, w)| (w.iter().map(|v| v * v).sum::<f32>() / WINDOW as f32).sqrt() > 0.02)
        .map(|(k, w)| ncc(w, rec, (k * WINDOW) as i64, max_lag).0)
        .collect();
    assert!(scores.len() >= 2, "the reference has speech");
    scores.sort_by(|a, b| b.total_cmp(a));
    let half = scores.len().div_ceil(2);
    scores[..half].iter().sum::<f64>() / half as f64
}

/// 48 kHz audio (mono, or stereo when `channels` is 2) to 8 kHz mono,
/// averaging each 6 samples (enough for a correlation of speech).
pub fn to_8k(pcm48: &[f32], channels: usize) -> Vec<f32> {
    pcm48
        .chunks_exact(6 * channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

// ---- audio both ways, judged by correlation --------------------------------

/// How well the two ends of a call heard each other: the better half of
/// 1 s windows' correlations ([`ncc_windows`]) at 8 kHz.
pub struct HeardBothWays {
    /// The far end's speech in what the agent heard.
    pub at_agent: f64,
    /// The agent's own speech in what the agent heard (the wrong
    /// reference, the same kind of voice): a control.
    pub control: f64,
    /// The agent's speech in what the far end's phone decoded.
    pub at_phone: f64,
}

impl HeardBothWays {
    /// Correlates what the agent heard (`heard8`, 8 kHz) with the far
    /// end's speech (`far8`, the 8 kHz WAV its phone played), searching
    /// +-`agent_lag` samples (a caller's file starts when it dials, not
    /// when the agent answers), and what the phone decoded (`phone_heard`)
    /// with the agent's speech (`agent8`) within +-1 s.
    pub fn measure(
        far8: &Path,
        agent8: &Path,
        heard8: &[f32],
        phone_heard: &[f32],
        agent_lag: usize,
    ) -> HeardBothWays {
        let (_, far_ref) = read_wav_pcm16(far8);
        let (_, agent_ref) = read_wav_pcm16(agent8);
        HeardBothWays {
            at_agent: ncc_windows(&far_ref, heard8, agent_lag),
            control: ncc_windows(&agent_ref, heard8, agent_lag),
            at_phone: ncc_windows(&agent_ref, phone_heard, 8_000),
        }
    }

    /// Prints the figures under `label`, then asserts that the agent
    /// hears the far end (`far` names it) and the far end the agent
    /// (ncc > 0.6 each way), and that the control scores below the far
    /// end's speech by more than `control_margin`; `context` (a log) is
    /// shown when the far end does not hear the agent.
    pub fn assert_both_ways(&self, label: &str, far: &str, control_margin: f64, context: &str) {
        let HeardBothWays {
            at_agent,
            control,
            at_phone,
        } = *self;
        eprintln!(
            "{label} ncc: {far}->agent {at_agent:.4} (control {control:.4}); agent->{far} {at_phone:.4}"
        );
        assert!(at_agent > 0.6, "the agent hears the {far}: ncc {at_agent}");
        assert!(
            control + control_margin < at_agent,
            "the wrong speech (control) scores {control}, the {far}'s {at_agent}"
        );
        assert!(
            at_phone > 0.6,
            "the {far} hears the agent: ncc {at_phone}; {context}"
        );
    }
}

/// The usual two voices of a call test: the far end's `far_text` as
/// `dir/<far>_8k.wav` padded with `far_pad_s` seconds, and the agent's
/// `agent_text` (8 kHz and 48 kHz mono).
pub fn two_voices(
    dir: &Path,
    far: &str,
    far_text: &str,
    far_pad_s: u32,
    agent_text: &str,
) -> (PathBuf, PathBuf, PathBuf) {
    let (far8, _) = speech(dir, far, far_text, far_pad_s);
    let (agent8, agent48) = speech(dir, "agent", agent_text, 0);
    (far8, agent8, agent48)
}

// ---- the test agent's side of the audio -----------------------------------

/// Media frames of `pcm` (48 kHz) on `leg`, Opus-encoded 20 ms a frame,
/// then silence.
pub fn speech_frames(pcm: Vec<f32>, leg: u32) -> impl FnMut() -> Vec<u8> {
    use media::codec::{Encoder, EncoderSettings};
    use media::frame::PACKET;
    let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
    let mut seq = 0u32;
    move || {
        let mut chunk = [0.0f32; PACKET];
        let at = seq as usize * PACKET;
        for (i, x) in chunk.iter_mut().enumerate() {
            *x = pcm.get(at + i).copied().unwrap_or(0.0);
        }
        let payload = enc.encode(&chunk).expect("encode").to_vec();
        let mut frame = Vec::new();
        let header = protocol::media::MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq.wrapping_mul(PACKET as u32),
        };
        protocol::media::encode_media_frame(&header, &payload, &mut frame);
        seq += 1;
        frame
    }
}

/// What the agent heard (its Opus media frames decoded, each for as long
/// as its packet lasts), at 48 kHz.
pub fn agent_heard_48k(frames: &[Vec<u8>]) -> Vec<f32> {
    use media::frame::PACKET;
    let mut dec = media::codec::Decoder::new().expect("decoder");
    let mut heard = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for f in frames {
        let frame = protocol::media::decode_media_frame(f).expect("frame");
        let n = dec.decode_len(frame.payload, &mut pcm).unwrap_or(PACKET);
        heard.extend_from_slice(&pcm[..n]);
    }
    heard
}

/// [`agent_heard_48k`] at 8 kHz.
pub fn agent_heard_8k(frames: &[Vec<u8>]) -> Vec<f32> {
    to_8k(&agent_heard_48k(frames), 1)
}

/// What baresip decoded (sndfile's `*-dec.wav`), at 8 kHz mono.
pub fn baresip_heard(bdir: &Path) -> Vec<f32> {
    let wav = baresip_dec_wav(bdir);
    let (rate, pcm) = read_wav_pcm16(&wav);
    let channels = usize::from(wav_channels(&wav));
    match rate {
        8000 if channels == 1 => pcm,
        48_000 => to_8k(&pcm, channels),
        other => panic!("baresip recorded {other} Hz with {channels} channels"),
    }
}
