//! Opus trunk legs (RFC 7587): a trunk that negotiated `opus/48000/2`
//! sends and receives RTP whose payload is one Opus packet, on a 48 kHz
//! timestamp clock. The bridge and the agents' engines carry Opus too, so
//! the gateway forwards the packets both ways without transcoding: an RTP
//! payload becomes a media frame's payload as it came, and a media frame
//! from the bridge (the agent's voice, a conference mix, hold music)
//! becomes an RTP payload as it came. Only the headers are rewritten.
//!
//! Timing: a media frame's timestamp is 48 kHz samples, the same clock as
//! Opus RTP, so the trunk's timestamp steps (20 ms = 960, 10 ms = 480, a
//! gap after DTX or loss) carry over one for one, and the frame sequence
//! follows the RTP sequence (a lost packet stays a gap the engine can see
//! and conceal or rebuild from FEC). Packets are at most 20 ms: our SDP
//! asks for `ptime:20` and `maxptime:20`, and the engine decodes at most
//! 20 ms a packet, so a longer one (40, 60 ms) is dropped and counted
//! rather than handed to a decoder that would refuse it.
//!
//! G.711 from the bridge cannot normally reach an Opus leg (its socket
//! announces no G.711), but after a re-INVITE changed the codec a frame
//! or two might: those are decoded, resampled to 48 kHz and encoded.

use media::g711;
use protocol::media::{decode_media_frame, opus_packet_samples, Codec};

use super::{rtp_payload, Media};
use crate::config::SipCodec;

/// Longest Opus packet forwarded: 20 ms at 48 kHz (the engine's limit).
pub(super) const MAX_SAMPLES: u32 = 960;
/// An RTP sequence jump larger than this is a restart (a new source after
/// a re-INVITE, a far end's reset), not loss: numbering goes on from the
/// last frame rather than leaving a gap of that size.
const MAX_GAP: u16 = 100;

/// The Opus side of a [`Media`]: where the trunk's stream stands.
#[derive(Debug, Default)]
pub(super) struct OpusLeg {
    /// The last RTP sequence and timestamp forwarded.
    last: Option<(u16, u32)>,
    /// G.711 from the bridge waiting for 20 ms (48 kHz, after resampling).
    wide: Vec<f32>,
    /// Samples the last frame to the bridge advanced the clock by.
    last_samples: u32,
    /// Packets dropped for being longer than 20 ms or not Opus.
    pub(super) dropped: u64,
}

/// The media frame codecs a leg of `codec` takes from the bridge besides
/// Opus: G.711 for a G.711 trunk (an agent's engine answering a forwarded
/// leg in kind), none for an Opus trunk.
pub(super) fn bridge_codecs(codec: SipCodec) -> &'static [Codec] {
    match codec {
        SipCodec::Opus => &[],
        _ => &[Codec::Pcmu, Codec::Pcma],
    }
}

/// An RTP packet from the trunk to (at most) one Opus media frame.
pub(super) fn frames_of_rtp(m: &mut Media, packet: &[u8], out: &mut Vec<Vec<u8>>) {
    let Some(payload) = rtp_payload(packet, m.pt) else {
        return;
    };
    let Some(samples) = opus_packet_samples(payload).filter(|n| (1..=MAX_SAMPLES).contains(n))
    else {
        m.opus.dropped += 1;
        return;
    };
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    if let Some((last_seq, last_ts)) = m.opus.last {
        let step = seq.wrapping_sub(last_seq);
        if step == 0 || step > u16::MAX / 2 {
            return; // a duplicate or a late packet: already past it
        }
        if step <= MAX_GAP {
            // Lost packets stay a gap in both the numbering and the clock.
            m.frame_seq = m.frame_seq.wrapping_add(u32::from(step - 1));
            let dt = ts.wrapping_sub(last_ts);
            if dt > 0 && dt < 48_000 * 5 {
                m.frame_ts = m
                    .frame_ts
                    .wrapping_sub(m.opus.last_samples)
                    .wrapping_add(dt);
            }
        }
    }
    m.opus.last = Some((seq, ts));
    m.forwarded += 1;
    m.frame(Codec::Opus, payload, samples, out);
    m.opus.last_samples = samples;
}

/// One RTP packet of Opus `payload` lasting `samples`.
fn rtp_packet(m: &mut Media, payload: &[u8], samples: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    let marker = if m.rtp_seq == 0 { 0x80 } else { 0 };
    p.push(0x80);
    p.push(marker | m.pt);
    p.extend_from_slice(&m.rtp_seq.to_be_bytes());
    p.extend_from_slice(&m.rtp_ts.to_be_bytes());
    p.extend_from_slice(&m.ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    m.rtp_seq = m.rtp_seq.wrapping_add(1);
    m.rtp_ts = m.rtp_ts.wrapping_add(samples);
    p
}

/// A media frame from the bridge to RTP packets for an Opus trunk: Opus
/// goes out as it came; G.711 is transcoded (see the module doc).
pub(super) fn rtp_of_frame(m: &mut Media, frame: &[u8], out: &mut Vec<Vec<u8>>) {
    let Ok(f) = decode_media_frame(frame) else {
        return;
    };
    if f.codec == Codec::Opus {
        let Some(samples) = opus_packet_samples(f.payload).filter(|n| *n > 0) else {
            return;
        };
        out.push(rtp_packet(m, f.payload, samples));
        return;
    }
    if !f.codec.is_g711() {
        return;
    }
    let mut narrow = Vec::new();
    g711::decode(f.codec, f.payload, &mut narrow);
    let mut wide = Vec::new();
    m.up.up(&narrow, &mut wide);
    m.opus.wide.extend_from_slice(&wide);
    if m.opus.wide.len() > 4 * media::frame::PACKET {
        m.opus.wide.clear(); // bounded: a burst is dropped
        return;
    }
    while m.opus.wide.len() >= media::frame::PACKET {
        let mut chunk = [0.0f32; media::frame::PACKET];
        chunk.copy_from_slice(&m.opus.wide[..media::frame::PACKET]);
        m.opus.wide.drain(..media::frame::PACKET);
        if m.enc.is_none() {
            m.enc = media::codec::Encoder::new(media::codec::EncoderSettings::default()).ok();
        }
        let Some(Ok(packet)) = m.enc.as_mut().map(|e| e.encode(&chunk).map(<[u8]>::to_vec)) else {
            return;
        };
        m.transcoded += 1;
        out.push(rtp_packet(m, &packet, media::frame::PACKET as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::media::{encode_media_frame_codec, MediaHeader};

    /// An Opus packet of `ms` milliseconds (SILK wideband, code 0: one
    /// frame), its byte pattern `fill`.
    fn opus(ms: u32, fill: u8) -> Vec<u8> {
        // TOC config 8 is SILK WB 10 ms, 9 is 20 ms, 10 is 40 ms, 11 60 ms.
        let config = match ms {
            10 => 8u8,
            20 => 9,
            40 => 10,
            _ => 11,
        };
        let mut p = vec![config << 3];
        p.extend(std::iter::repeat_n(fill, 30));
        p
    }

    fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&9u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn frames(m: &mut Media, packets: &[Vec<u8>]) -> Vec<(u32, u32, Codec, Vec<u8>)> {
        let mut out = Vec::new();
        for p in packets {
            m.frames_of_rtp(p, true, &mut out);
        }
        out.iter()
            .map(|b| {
                let f = decode_media_frame(b).expect("frame");
                (
                    f.header.sequence,
                    f.header.timestamp,
                    f.codec,
                    f.payload.to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn rtp_payloads_become_opus_frames_unchanged_on_the_trunks_clock() {
        let mut m = Media::new(SipCodec::Opus, 111, 4);
        let base = 1_000_000u32;
        let got = frames(
            &mut m,
            &[
                rtp(7, base, &opus(20, 1)),
                rtp(8, base + 960, &opus(20, 2)),
                // 9 lost: a gap of one in the numbering, 960 in the clock.
                rtp(10, base + 2880, &opus(10, 3)),
                rtp(11, base + 3360, &opus(10, 4)),
                // A duplicate and a late packet add nothing.
                rtp(11, base + 3360, &opus(10, 4)),
                rtp(9, base + 1920, &opus(20, 9)),
                // 40 ms: more than the engine decodes, dropped and counted.
                rtp(12, base + 3840, &opus(40, 5)),
            ],
        );
        let summary: Vec<(u32, u32)> = got.iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(summary, [(0, 0), (1, 960), (3, 2880), (4, 3360)]);
        assert!(got.iter().all(|g| g.2 == Codec::Opus));
        assert_eq!(got[2].3, opus(10, 3), "payload as it came");
        assert_eq!(m.opus.dropped, 1);
        assert_eq!(m.forwarded, 4);
        // Not Opus at all (an empty payload has no TOC): dropped too.
        assert!(frames(&mut m, &[rtp(13, base + 4320, &[])]).is_empty());
    }

    #[test]
    fn bridge_frames_go_out_as_rtp_with_the_packets_own_duration() {
        let mut m = Media::new(SipCodec::Opus, 111, 4);
        let mut out = Vec::new();
        for (i, ms) in [20u32, 20, 10, 10, 20].iter().enumerate() {
            let mut f = Vec::new();
            let h = MediaHeader {
                flags: 0,
                leg: 4,
                sequence: i as u32,
                timestamp: 0,
            };
            encode_media_frame_codec(&h, Codec::Opus, &opus(*ms, i as u8), &mut f);
            m.rtp_of_frame(&f, &mut out);
        }
        let ts: Vec<u32> = out
            .iter()
            .map(|p| u32::from_be_bytes([p[4], p[5], p[6], p[7]]))
            .collect();
        assert_eq!(ts, [0, 960, 1920, 2400, 2880], "48 kHz clock");
        assert!(out.iter().all(|p| p[1] & 0x7f == 111));
        assert_eq!(&out[2][12..], opus(10, 2).as_slice(), "payload unchanged");
        let seqs: Vec<u16> = out
            .iter()
            .map(|p| u16::from_be_bytes([p[2], p[3]]))
            .collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn g711_from_the_bridge_is_transcoded_to_20_ms_opus() {
        let mut m = Media::new(SipCodec::Opus, 111, 4);
        let mut out = Vec::new();
        for i in 0..4u32 {
            let mut f = Vec::new();
            let h = MediaHeader {
                flags: 0,
                leg: 4,
                sequence: i,
                timestamp: i * 480,
            };
            // 10 ms of PCMU each: two make one Opus packet.
            encode_media_frame_codec(&h, Codec::Pcmu, &[0xff; 80], &mut f);
            m.rtp_of_frame(&f, &mut out);
        }
        assert_eq!(out.len(), 2);
        for p in &out {
            assert_eq!(opus_packet_samples(&p[12..]), Some(960));
        }
        assert_eq!(m.transcoded, 2);
    }
}
