//! Binary media frames: a fixed 16-byte header and one Opus packet.
//!
//! ```text
//!  0      1      2             4                8                12               16
//!  +------+------+-------------+----------------+----------------+----------------+---------
//!  | ver  | flags|codec| 0   | leg id (u32)   | sequence (u32) | timestamp (u32)| opus...
//!  +------+------+-------------+----------------+----------------+----------------+---------
//! ```
//! All integers are big-endian. The timestamp counts 48 kHz samples and
//! wraps; the sequence increases by one per packet and wraps. Byte 2 names
//! the payload's [`Codec`] (0, Opus, in every frame from before it had a
//! meaning; G.711 for a telephone leg forwarded untouched); byte 3 is
//! reserved, zero.

use crate::error::{ErrorBody, ErrorCode};

/// Header length in bytes.
pub const HEADER_LEN: usize = 16;
/// The only media frame version so far.
pub const MEDIA_VERSION: u8 = 1;
/// An Opus packet is at most 1275 bytes (RFC 6716 section 3.2.1).
pub const MAX_OPUS_PACKET: usize = 1275;

/// Flag: the packet carries in-band FEC for the previous frame.
pub const FLAG_FEC: u8 = 0b0000_0001;
/// Flag: first packet after silence (a talk spurt starts).
pub const FLAG_MARKER: u8 = 0b0000_0010;
/// Flag: comfort noise / DTX frame.
pub const FLAG_DTX: u8 = 0b0000_0100;
const KNOWN_FLAGS: u8 = FLAG_FEC | FLAG_MARKER | FLAG_DTX;

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHeader {
    /// Flag bits (`FLAG_*`).
    pub flags: u8,
    /// The call leg the packet belongs to, assigned by the backend.
    pub leg: u32,
    /// Packet sequence number.
    pub sequence: u32,
    /// 48 kHz sample timestamp of the packet's first sample.
    pub timestamp: u32,
}

/// A media frame borrowed from the socket buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFrame<'a> {
    /// Its header.
    pub header: MediaHeader,
    /// The packet (Opus unless `codec` says otherwise).
    pub payload: &'a [u8],
    /// The payload's codec (header byte 2; 0 is Opus).
    pub codec: Codec,
}

/// The codec of a media frame's payload: header byte 2. Every frame from
/// before the byte had a meaning carries 0, Opus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// Opus (RFC 6716), 10 or 20 ms: id 0.
    #[default]
    Opus,
    /// G.711 mu-law at 8 kHz, one byte per sample: id 1 (`"pcmu"`).
    Pcmu,
    /// G.711 A-law at 8 kHz, one byte per sample: id 2 (`"pcma"`).
    Pcma,
}

impl Codec {
    /// The header byte's value.
    pub fn id(self) -> u8 {
        match self {
            Codec::Opus => 0,
            Codec::Pcmu => 1,
            Codec::Pcma => 2,
        }
    }

    /// The codec of a header byte, `None` for an unknown id.
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::Opus),
            1 => Some(Codec::Pcmu),
            2 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Its name in `hello`'s and `welcome`'s `codecs`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
        }
    }

    /// The codec a `codecs` name stands for (case-insensitive).
    pub fn from_name(name: &str) -> Option<Codec> {
        [Codec::Opus, Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// Whether this is G.711 (8 kHz, a byte a sample).
    pub fn is_g711(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma)
    }

    /// How many 48 kHz samples a payload holds: from the TOC for Opus, six
    /// per byte for G.711 (one 8 kHz sample a byte). `None` for an empty
    /// or malformed payload.
    pub fn payload_samples(self, payload: &[u8]) -> Option<u32> {
        match self {
            Codec::Opus => opus_packet_samples(payload),
            _ if payload.is_empty() || payload.len() > MAX_G711_PAYLOAD => None,
            _ => Some(payload.len() as u32 * 6),
        }
    }
}

/// The largest G.711 payload a frame carries: 120 ms at 8 kHz, the
/// longest packet Opus allows too.
pub const MAX_G711_PAYLOAD: usize = 960;

/// Decodes a binary frame without copying. Never panics.
pub fn decode_media_frame(bytes: &[u8]) -> Result<MediaFrame<'_>, ErrorBody> {
    let bad = |m: String| ErrorBody::new(ErrorCode::BadMediaFrame, m);
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "media frame of {} bytes is shorter than its header",
            bytes.len()
        )));
    }
    let (head, payload) = bytes.split_at(HEADER_LEN);
    if head[0] != MEDIA_VERSION {
        return Err(bad(format!(
            "media frame version {} is not {MEDIA_VERSION}",
            head[0]
        )));
    }
    if head[1] & !KNOWN_FLAGS != 0 {
        return Err(bad(format!("unknown media flags {:#04x}", head[1])));
    }
    if Codec::from_id(head[2]).is_none() {
        return Err(bad(format!("unknown media codec id {}", head[2])));
    }
    if head[3] != 0 {
        return Err(bad("reserved media header bytes must be zero".into()));
    }
    if head[2] != 0 && payload.len() > MAX_G711_PAYLOAD {
        return Err(ErrorBody::new(
            ErrorCode::FrameTooLarge,
            format!(
                "G.711 payload of {} bytes exceeds {MAX_G711_PAYLOAD}",
                payload.len()
            ),
        ));
    }
    if payload.len() > MAX_OPUS_PACKET {
        return Err(ErrorBody::new(
            ErrorCode::FrameTooLarge,
            format!(
                "opus packet of {} bytes exceeds {MAX_OPUS_PACKET}",
                payload.len()
            ),
        ));
    }
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    Ok(MediaFrame {
        header: MediaHeader {
            flags: head[1],
            leg: word(4),
            sequence: word(8),
            timestamp: word(12),
        },
        payload,
        codec: Codec::from_id(head[2]).unwrap_or(Codec::Opus),
    })
}

/// Writes a frame into `out` (cleared first), reusing its allocation.
pub fn encode_media_frame(header: &MediaHeader, payload: &[u8], out: &mut Vec<u8>) {
    encode_media_frame_codec(header, Codec::Opus, payload, out);
}

/// Like [`encode_media_frame`], for a payload in `codec` (header byte 2).
pub fn encode_media_frame_codec(
    header: &MediaHeader,
    codec: Codec,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.push(MEDIA_VERSION);
    out.push(header.flags & KNOWN_FLAGS);
    out.extend_from_slice(&[codec.id(), 0]);
    out.extend_from_slice(&header.leg.to_be_bytes());
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(payload);
}

/// How many 48 kHz samples an Opus packet holds, from its TOC byte and
/// frame count (RFC 6716 section 3.1): 2.5 to 60 ms a frame, up to 120 ms
/// a packet. `None` for an empty or malformed packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame length in 48 kHz samples per configuration range.
    let frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames: u32 = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = frame * frames;
    (frames > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = MediaHeader {
            flags: FLAG_FEC,
            leg: 7,
            sequence: u32::MAX,
            timestamp: 960,
        };
        let mut buf = Vec::new();
        encode_media_frame(&h, &[1, 2, 3], &mut buf);
        assert_eq!(buf.len(), HEADER_LEN + 3);
        let f = decode_media_frame(&buf).expect("valid");
        assert_eq!(f.header, h);
        assert_eq!(f.payload, &[1, 2, 3]);
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let mut buf = Vec::new();
        encode_media_frame(
            &MediaHeader {
                flags: 0,
                leg: 1,
                sequence: 1,
                timestamp: 1,
            },
            &[],
            &mut buf,
        );
        assert_eq!(
            decode_media_frame(&buf[..5]).expect_err("short").code,
            ErrorCode::BadMediaFrame
        );
        let mut wrong_version = buf.clone();
        wrong_version[0] = 2;
        assert_eq!(
            decode_media_frame(&wrong_version).expect_err("ver").code,
            ErrorCode::BadMediaFrame
        );
        let mut flags = buf.clone();
        flags[1] = 0x80;
        assert_eq!(
            decode_media_frame(&flags).expect_err("flags").code,
            ErrorCode::BadMediaFrame
        );
        let mut big = buf.clone();
        big.extend(std::iter::repeat_n(0u8, MAX_OPUS_PACKET + 1));
        assert_eq!(
            decode_media_frame(&big).expect_err("big").code,
            ErrorCode::FrameTooLarge
        );
    }
    #[test]
    fn the_codec_byte_is_read_and_written_and_zero_is_opus() {
        let h = MediaHeader {
            flags: FLAG_MARKER,
            leg: 3,
            sequence: 4,
            timestamp: 960,
        };
        let mut buf = Vec::new();
        // A frame from before the codec byte: byte 2 zero, Opus.
        encode_media_frame(&h, &[0x48, 1], &mut buf);
        assert_eq!(&buf[2..4], &[0, 0]);
        assert_eq!(decode_media_frame(&buf).expect("opus").codec, Codec::Opus);
        let ulaw = [0xffu8; 160];
        encode_media_frame_codec(&h, Codec::Pcmu, &ulaw, &mut buf);
        assert_eq!(&buf[2..4], &[1, 0]);
        let f = decode_media_frame(&buf).expect("pcmu");
        assert_eq!((f.codec, f.header, f.payload), (Codec::Pcmu, h, &ulaw[..]));
        encode_media_frame_codec(&h, Codec::Pcma, &ulaw, &mut buf);
        assert_eq!(buf[2], 2);
        assert_eq!(decode_media_frame(&buf).expect("pcma").codec, Codec::Pcma);
        // An unknown codec id, or a non-zero byte 3, is a bad frame.
        let mut unknown = buf.clone();
        unknown[2] = 3;
        assert_eq!(
            decode_media_frame(&unknown).expect_err("id").code,
            ErrorCode::BadMediaFrame
        );
        let mut reserved = buf.clone();
        reserved[3] = 1;
        assert_eq!(
            decode_media_frame(&reserved).expect_err("byte 3").code,
            ErrorCode::BadMediaFrame
        );
        // Durations: 160 G.711 bytes are 20 ms, 960 samples at 48 kHz.
        assert_eq!(Codec::Pcmu.payload_samples(&ulaw), Some(960));
        assert_eq!(Codec::Pcma.payload_samples(&ulaw[..80]), Some(480));
        assert_eq!(Codec::Pcmu.payload_samples(&[]), None);
        assert_eq!(Codec::Opus.payload_samples(&[31 << 3]), Some(960));
        assert_eq!(Codec::from_name("PCMU"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_name("g729"), None);
    }

    #[test]
    fn packet_durations_come_from_the_toc() {
        // SILK narrowband 10/20/40/60 ms, one frame (code 0).
        assert_eq!(opus_packet_samples(&[0 << 3]), Some(480));
        assert_eq!(opus_packet_samples(&[1 << 3]), Some(960));
        assert_eq!(opus_packet_samples(&[3 << 3]), Some(2880));
        // Hybrid 10/20 ms; CELT 2.5/5/10/20 ms.
        assert_eq!(opus_packet_samples(&[12 << 3]), Some(480));
        assert_eq!(opus_packet_samples(&[15 << 3]), Some(960));
        assert_eq!(opus_packet_samples(&[16 << 3]), Some(120));
        assert_eq!(opus_packet_samples(&[30 << 3]), Some(480));
        assert_eq!(opus_packet_samples(&[31 << 3]), Some(960));
        // Two frames (codes 1 and 2), and code 3 with its count byte.
        assert_eq!(opus_packet_samples(&[(31 << 3) | 1, 0]), Some(1920));
        assert_eq!(opus_packet_samples(&[(30 << 3) | 2, 0]), Some(960));
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 3]), Some(2880));
        // Empty, a code 3 without its count, zero frames, over 120 ms.
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3]), None);
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 0]), None);
        assert_eq!(opus_packet_samples(&[(3 << 3) | 3, 3]), None);
    }
}
