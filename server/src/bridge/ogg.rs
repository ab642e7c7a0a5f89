//! Ogg Opus files written from Opus packets as they arrive, without
//! decoding (RFC 3533 pages, RFC 7845 encapsulation): the building block
//! for recording each party without decoding.
//!
//! The file starts with an `OpusHead` page (beginning of stream) and an
//! `OpusTags` page; audio pages follow, each ended after about a second
//! of packets ([`PAGE_PACKETS`]) so a process killed at any instant leaves
//! a file that plays up to its last complete page. A page's granule
//! position is every sample of the packets that end on it or before
//! (RFC 7845 §4; the player drops the first [`PRE_SKIP`] of them, the
//! encoder's look-ahead). Gaps (lost packets, a held party, the time
//! before the party joined) are filled with packets of zero-length frames
//! in the last packet's mode (a one-byte packet per frame, RFC 6716
//! §3.2.1: the decoder conceals them), so timing holds in every player and
//! each party's file can start at the call's start.

use std::io::Write;

use protocol::media::opus_packet_samples;

/// Packets on one audio page: 50 packets of 20 ms = about one second.
pub const PAGE_PACKETS: usize = 50;

/// Samples the decoder drops at the start (RFC 7845 §5.1: the encoder's
/// look-ahead; 312 at 48 kHz for the usual Opus encoder).
pub const PRE_SKIP: u16 = 312;

/// The TOC of a filler packet when nothing was received yet: CELT
/// fullband 20 ms, code 0 (one frame), here of zero length.
const SILENT_TOC: u8 = 31 << 3;

/// CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, initial 0.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04C1_1DB7
            } else {
                r << 1
            };
            k += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
};

fn crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |c, &b| {
        (c << 8) ^ CRC_TABLE[((c >> 24) as u8 ^ b) as usize]
    })
}

/// Why a packet could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OggError {
    /// Not an Opus packet (empty, or its TOC makes no sense).
    #[error("not an opus packet")]
    BadPacket,
    /// Writing failed.
    #[error("cannot write the ogg file: {0}")]
    Write(#[from] std::io::Error),
}

/// The packets waiting for a page, kept as the page will hold them: their
/// lacing values and their bytes one after the other (no allocation per
/// packet; the buffers are cleared, not freed, at each page).
#[derive(Default)]
struct Waiting {
    lacing: Vec<u8>,
    body: Vec<u8>,
    count: usize,
}

impl Waiting {
    fn add(&mut self, packet: &[u8]) {
        self.lacing
            .extend(std::iter::repeat_n(255u8, packet.len() / 255));
        self.lacing.push((packet.len() % 255) as u8);
        self.body.extend_from_slice(packet);
        self.count += 1;
    }

    fn clear(&mut self) {
        self.lacing.clear();
        self.body.clear();
        self.count = 0;
    }
}

/// An Ogg Opus stream being written to `W`.
pub struct OggOpusWriter<W: Write> {
    out: W,
    serial: u32,
    page_seq: u32,
    /// Samples of audio so far (without the pre-skip).
    samples: u64,
    /// Packets waiting for the current page.
    waiting: Waiting,
    /// The page being written (reused).
    page: Vec<u8>,
    /// The TOC of the last real packet, for filler packets.
    last_toc: u8,
}

impl<W: Write> OggOpusWriter<W> {
    /// Starts a mono 48 kHz stream: writes its two header pages.
    pub fn new(mut out: W, serial: u32) -> Result<Self, OggError> {
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes()); // original rate
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // channel mapping family 0
        let vendor = b"switchboard";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes()); // no comments
        let mut w = OggOpusWriter {
            out: Vec::new(),
            serial,
            page_seq: 0,
            samples: 0,
            waiting: Waiting::default(),
            page: Vec::new(),
            last_toc: SILENT_TOC,
        };
        let mut pages = Vec::new();
        let mut one = Waiting::default();
        one.add(&head);
        w.page(&mut pages, &one, 0x02, 0);
        one.clear();
        one.add(&tags);
        w.page(&mut pages, &one, 0x00, 0);
        out.write_all(&pages)?;
        out.flush()?;
        Ok(OggOpusWriter {
            out,
            serial,
            page_seq: w.page_seq,
            samples: 0,
            waiting: Waiting::default(),
            page: Vec::new(),
            last_toc: SILENT_TOC,
        })
    }

    /// Samples written so far (from the stream's start, without pre-skip).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Appends one packet as received.
    pub fn packet(&mut self, packet: &[u8]) -> Result<(), OggError> {
        let n = opus_packet_samples(packet).ok_or(OggError::BadPacket)?;
        self.last_toc = packet[0];
        self.push(packet, n)
    }

    /// Fills `samples` of silence (concealment) in the last packet's mode,
    /// frame by frame; a remainder shorter than one frame is left out.
    pub fn gap(&mut self, samples: u64) -> Result<(), OggError> {
        // One frame of the last mode, as a code 0 packet with no frame data.
        let toc = self.last_toc & !3;
        let frame = u64::from(opus_packet_samples(&[toc]).unwrap_or(960));
        for _ in 0..samples / frame {
            self.push(&[toc], frame as u32)?;
        }
        Ok(())
    }

    /// Fills with silence up to `position` samples from the stream start
    /// (nothing if the stream is already there).
    pub fn fill_to(&mut self, position: u64) -> Result<(), OggError> {
        self.gap(position.saturating_sub(self.samples))
    }

    fn push(&mut self, packet: &[u8], samples: u32) -> Result<(), OggError> {
        self.samples += u64::from(samples);
        self.waiting.add(packet);
        if self.waiting.count >= PAGE_PACKETS || self.waiting.lacing.len() > 200 {
            self.flush_page(false)?;
        }
        Ok(())
    }

    /// Writes the packets waiting as one page (the last one if `end`).
    fn flush_page(&mut self, end: bool) -> Result<(), OggError> {
        if self.waiting.count == 0 && !end {
            return Ok(());
        }
        let waiting = std::mem::take(&mut self.waiting);
        let mut page = std::mem::take(&mut self.page);
        page.clear();
        // RFC 7845 §4: the granule counts every sample the packets decode
        // to, the pre-skip included (the player drops that many).
        let granule = self.samples;
        self.page(&mut page, &waiting, if end { 0x04 } else { 0 }, granule);
        self.waiting = waiting;
        self.waiting.clear();
        let written = self.out.write_all(&page).and_then(|()| self.out.flush());
        self.page = page;
        written?;
        Ok(())
    }

    /// Appends one page holding the `waiting` packets (each whole) to `buf`.
    fn page(&mut self, buf: &mut Vec<u8>, waiting: &Waiting, flags: u8, granule: u64) {
        let start = buf.len();
        buf.extend_from_slice(b"OggS");
        buf.push(0);
        buf.push(flags);
        buf.extend_from_slice(&granule.to_le_bytes());
        buf.extend_from_slice(&self.serial.to_le_bytes());
        buf.extend_from_slice(&self.page_seq.to_le_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]); // CRC, filled below
        buf.push(waiting.lacing.len() as u8);
        buf.extend_from_slice(&waiting.lacing);
        buf.extend_from_slice(&waiting.body);
        let sum = crc(&buf[start..]);
        buf[start + 22..start + 26].copy_from_slice(&sum.to_le_bytes());
        self.page_seq += 1;
    }

    /// Writes what is waiting and the end-of-stream page.
    pub fn finish(mut self) -> Result<W, OggError> {
        self.flush_page(true)?;
        Ok(self.out)
    }
}

/// The packets of an Ogg Opus stream, in order, with the granule position
/// of each page (for reading back a recording to mix it). Pages whose CRC
/// does not match end the read (a file cut by a crash).
pub fn read_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut partial: Vec<u8> = Vec::new();
    while bytes.len() >= pos + 27 && &bytes[pos..pos + 4] == b"OggS" {
        let n = bytes[pos + 26] as usize;
        let Some(lacing) = bytes.get(pos + 27..pos + 27 + n) else {
            break;
        };
        let body_len: usize = lacing.iter().map(|&l| l as usize).sum();
        let end = pos + 27 + n + body_len;
        let Some(page) = bytes.get(pos..end) else {
            break;
        };
        let mut check = page.to_vec();
        check[22..26].fill(0);
        if crc(&check).to_le_bytes() != page[22..26] {
            break;
        }
        let mut at = pos + 27 + n;
        for &l in lacing {
            partial.extend_from_slice(&bytes[at..at + l as usize]);
            at += l as usize;
            if l < 255 {
                out.push(std::mem::take(&mut partial));
            }
        }
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::codec::{Decoder, Encoder, EncoderSettings};
    use media::frame::PACKET;

    fn tone_packets(n: usize) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
        (0..n)
            .map(|k| {
                let mut pcm = [0.0f32; PACKET];
                for (i, x) in pcm.iter_mut().enumerate() {
                    let t = (k * PACKET + i) as f32 / 48_000.0;
                    *x = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
                }
                enc.encode(&pcm).expect("encode").to_vec()
            })
            .collect()
    }

    #[test]
    fn crc_matches_the_ogg_definition() {
        // The CRC of "OggS" followed by zeros is fixed by the polynomial;
        // a one-bit change changes it, and the empty input gives 0.
        assert_eq!(crc(&[]), 0);
        assert_ne!(crc(b"OggS\0"), crc(b"OggS\x01"));
        // Known value for the ASCII string "123456789" with this
        // (non-reflected, init 0, no final xor) CRC-32/MPEG-2-like
        // variant used by Ogg: 0x89A1897F.
        assert_eq!(crc(b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn headers_pages_granules_and_gaps_follow_rfc_7845() {
        let packets = tone_packets(120);
        let mut w = OggOpusWriter::new(Vec::new(), 7).expect("writer");
        // The party joined 1 s after the call started.
        w.fill_to(48_000).expect("fill");
        for p in &packets[..60] {
            w.packet(p).expect("packet");
        }
        // 5 packets lost.
        w.gap(5 * 960).expect("gap");
        for p in &packets[65..] {
            w.packet(p).expect("packet");
        }
        assert_eq!(w.samples(), 48_000 + 120 * 960);
        let bytes = w.finish().expect("finish");
        // Pages: OpusHead (BOS), OpusTags, then audio; the last is EOS.
        let back = read_packets(&bytes);
        assert_eq!(&back[0][..8], b"OpusHead");
        assert_eq!(back[0][9], 1, "mono");
        assert_eq!(u16::from_le_bytes([back[0][10], back[0][11]]), PRE_SKIP);
        assert_eq!(&back[1][..8], b"OpusTags");
        let audio = &back[2..];
        assert_eq!(
            audio.len(),
            50 + 120,
            "50 fillers for the late join, 120 packets"
        );
        assert_eq!(&audio[50..110], &packets[..60]);
        assert_eq!(
            audio[110..115].iter().map(Vec::len).collect::<Vec<_>>(),
            [1; 5]
        );
        assert_eq!(&audio[115..], &packets[65..]);
        // Page flags and granules.
        let mut pos = 0;
        let mut pages = Vec::new();
        while pos < bytes.len() {
            let n = bytes[pos + 26] as usize;
            let body: usize = bytes[pos + 27..pos + 27 + n]
                .iter()
                .map(|&l| l as usize)
                .sum();
            let granule = u64::from_le_bytes(bytes[pos + 6..pos + 14].try_into().expect("8"));
            pages.push((bytes[pos + 5], granule, n));
            pos += 27 + n + body;
        }
        assert_eq!(pages[0].0, 0x02, "beginning of stream");
        assert_eq!(pages.last().expect("pages").0, 0x04, "end of stream");
        assert_eq!(pages.last().expect("pages").1, 48_000 + 120 * 960);
        assert!(pages[2..].iter().all(|p| p.2 <= 255));
        assert!(
            pages.len() >= 2 + 3,
            "about a page a second: {}",
            pages.len()
        );

        // Decoded: silence for the first second, the tone after, timing kept.
        let mut dec = Decoder::new().expect("decoder");
        let mut pcm = Vec::new();
        let mut out = [0.0f32; PACKET];
        for p in audio {
            if p.len() <= 1 {
                dec.conceal(&mut out);
            } else {
                dec.decode(p, &mut out).expect("decode");
            }
            pcm.extend_from_slice(&out);
        }
        assert_eq!(pcm.len(), 48_000 + 120 * 960);
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        assert!(rms(&pcm[..40_000]) < 0.01, "silent before the join");
        assert!(rms(&pcm[60_000..100_000]) > 0.1, "the tone after");
    }

    #[test]
    fn a_file_cut_mid_page_reads_up_to_its_last_whole_page() {
        let packets = tone_packets(160);
        let mut w = OggOpusWriter::new(Vec::new(), 1).expect("writer");
        for p in &packets {
            w.packet(p).expect("packet");
        }
        // Not finished: 3 full pages are out, 10 packets wait.
        let bytes = w.out.clone();
        let cut = &bytes[..bytes.len() - 7];
        let back = read_packets(cut);
        assert_eq!(back.len(), 2 + 100, "headers and two whole pages");
        assert_eq!(read_packets(&bytes).len(), 2 + 150);
        assert!(matches!(
            OggOpusWriter::new(Vec::new(), 1).expect("w").packet(&[]),
            Err(OggError::BadPacket)
        ));
    }

    /// With Debian's opus-tools installed (`cargo xtask test` installs
    /// them), the file passes `opusinfo` and decodes with `opusdec` to the
    /// expected length.
    #[test]
    fn opus_tools_accept_the_file() {
        if !std::path::Path::new("/usr/bin/opusinfo").exists() {
            eprintln!("opus-tools not installed (cargo xtask test installs them): skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ogg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("party.opus");
        let packets = tone_packets(150);
        let file = std::fs::File::create(&path).expect("create");
        let mut w = OggOpusWriter::new(file, 42).expect("writer");
        w.fill_to(24_000).expect("fill");
        for p in &packets[..100] {
            w.packet(p).expect("packet");
        }
        w.gap(10 * 960).expect("gap");
        for p in &packets[110..] {
            w.packet(p).expect("packet");
        }
        w.finish().expect("finish");
        let info = std::process::Command::new("opusinfo")
            .arg(&path)
            .output()
            .expect("opusinfo runs");
        let text = String::from_utf8_lossy(&info.stdout).to_string()
            + &String::from_utf8_lossy(&info.stderr);
        assert!(info.status.success(), "{text}");
        assert!(
            !text.contains("WARNING") && !text.contains("ERROR"),
            "{text}"
        );
        // 3.5 s of packets less the pre-skip.
        assert!(text.contains("Playback length: 0m:03.493s"), "{text}");
        let wav = dir.join("party.wav");
        let dec = std::process::Command::new("opusdec")
            .args(["--quiet", "--rate", "48000"])
            .arg(&path)
            .arg(&wav)
            .status()
            .expect("opusdec runs");
        assert!(dec.success());
        let len = std::fs::metadata(&wav).expect("wav").len();
        // 3.5 s less the pre-skip, 16-bit mono at 48 kHz, plus the header.
        let pcm_bytes = (168_000 - u64::from(PRE_SKIP)) * 2;
        assert!((pcm_bytes..pcm_bytes + 200).contains(&len), "{len}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
