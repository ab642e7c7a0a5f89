//! Listening to a recording on demand: the backend records packets only
//! (one Ogg Opus file per party, see [`super::parties`]); a mixed file is
//! made when someone fetches it. Each party's file starts at the call's
//! start and keeps time through its gaps, so decoding every file and
//! summing them sample by sample gives the call as it sounded. The same
//! decoder turns a simulated caller's "heard" file (the packets it was
//! sent) into audio for the tests.
//!
//! This runs on a blocking thread of the HTTP handler that asked, never on
//! the mixer threads or the sockets' runtime: decoding is the one thing
//! the live call path no longer does.

use std::path::Path;

use media::codec::Decoder;
use media::frame::PACKET;

use super::ogg;

/// Why a recording could not be made into audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MixdownError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not an Ogg Opus stream (no `OpusHead`).
    #[error("{path} is not an Ogg Opus file")]
    NotOpus {
        /// The file.
        path: String,
    },
    /// A party's `.wav` is not a G.711 WAV (μ-law or A-law, with a
    /// `data` chunk).
    #[error("{path} is not a G.711 WAV file")]
    NotG711 {
        /// The file.
        path: String,
    },
    /// The Opus decoder could not start.
    #[error("decoder: {0}")]
    Decoder(String),
    /// The recording is longer than a mix may be.
    #[error("the recording is longer than {MAX_SECONDS} s")]
    TooLong,
}

/// The longest mix made on demand (the WAV is 96 KB a second).
pub const MAX_SECONDS: usize = 4 * 3600;

/// Whether an Ogg file ends with its end-of-stream page (the writer has
/// finished it).
pub fn finished(bytes: &[u8]) -> bool {
    // Walk the pages from the start: their lengths are in their headers.
    let mut pos = 0;
    let mut last_flags = None;
    while bytes.len() >= pos + 27 && &bytes[pos..pos + 4] == b"OggS" {
        let n = bytes[pos + 26] as usize;
        let Some(lacing) = bytes.get(pos + 27..pos + 27 + n) else {
            break;
        };
        let body: usize = lacing.iter().map(|&l| l as usize).sum();
        last_flags = Some(bytes[pos + 5]);
        pos += 27 + n + body;
    }
    pos == bytes.len() && last_flags.is_some_and(|f| f & 0x04 != 0)
}

/// Decodes one Ogg Opus stream to 48 kHz mono samples from its start
/// (the pre-skip is kept, so files of one call stay aligned). One-byte
/// filler packets (a gap) decode as the decoder's concealment, as a
/// receiver would play them.
pub fn decode(bytes: &[u8], path: &str) -> Result<Vec<f32>, MixdownError> {
    let packets = ogg::read_packets(bytes);
    if !packets.first().is_some_and(|p| p.starts_with(b"OpusHead")) {
        return Err(MixdownError::NotOpus { path: path.into() });
    }
    let mut dec = Decoder::new().map_err(|e| MixdownError::Decoder(e.0))?;
    let mut out = Vec::with_capacity(packets.len().saturating_sub(2) * PACKET);
    let mut pcm = [0.0f32; PACKET];
    for p in packets.iter().skip(2) {
        let samples = protocol::media::opus_packet_samples(p).unwrap_or(PACKET as u32) as usize;
        if out.len() + samples > MAX_SECONDS * 48_000 {
            return Err(MixdownError::TooLong);
        }
        if p.len() <= 1 || dec.decode(p, &mut pcm).is_err() {
            dec.conceal(&mut pcm);
        }
        // Our packets are 10 or 20 ms; the decoder fills `samples` of them.
        out.extend_from_slice(&pcm[..samples.min(PACKET)]);
    }
    Ok(out)
}

/// Reads and decodes one file.
pub fn decode_file(path: &Path) -> Result<Vec<f32>, MixdownError> {
    let bytes = std::fs::read(path).map_err(|source| MixdownError::Read {
        path: path.display().to_string(),
        source,
    })?;
    decode(&bytes, &path.display().to_string())
}

/// Decodes a party's G.711 WAV ([`super::parties`]: 8 kHz μ-law or
/// A-law, as the trunk sent it) to 48 kHz mono from the call's start. A
/// file cut short (its sizes not yet written) reads to its end.
pub fn decode_g711(bytes: &[u8], path: &str) -> Result<Vec<f32>, MixdownError> {
    let not = || MixdownError::NotG711 { path: path.into() };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(not());
    }
    let (mut pos, mut law, mut data) = (12usize, None, None);
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = &bytes[pos + 8..(pos + 8).saturating_add(size).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 2 => {
                law = match u16::from_le_bytes([body[0], body[1]]) {
                    6 => Some(protocol::media::Codec::Pcma),
                    7 => Some(protocol::media::Codec::Pcmu),
                    _ => None,
                };
            }
            b"data" => {
                data = Some(body);
                break;
            }
            _ => {}
        }
        pos = pos + 8 + size + (size & 1);
    }
    let (Some(law), Some(data)) = (law, data) else {
        return Err(not());
    };
    if data.len() > MAX_SECONDS * 8000 {
        return Err(MixdownError::TooLong);
    }
    let mut narrow = Vec::new();
    media::g711::decode(law, data, &mut narrow);
    let mut wide = Vec::new();
    media::g711::Resampler::default().up(&narrow, &mut wide);
    Ok(wide)
}

fn decode_g711_file(path: &Path) -> Result<Vec<f32>, MixdownError> {
    let bytes = std::fs::read(path).map_err(|source| MixdownError::Read {
        path: path.display().to_string(),
        source,
    })?;
    decode_g711(&bytes, &path.display().to_string())
}

/// The mix of every party file (`*.opus`, and `*.wav` for G.711) in a call's recording
/// directory, as long as the longest.
pub fn mix_dir(dir: &Path) -> Result<Vec<f32>, MixdownError> {
    let read_err = |source| MixdownError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "opus" || x == "wav"))
        .collect();
    files.sort();
    let mut mix: Vec<f32> = Vec::new();
    for f in files {
        let pcm = if f.extension().is_some_and(|x| x == "wav") {
            decode_g711_file(&f)?
        } else {
            decode_file(&f)?
        };
        if mix.len() < pcm.len() {
            mix.resize(pcm.len(), 0.0);
        }
        for (m, x) in mix.iter_mut().zip(pcm) {
            *m += x;
        }
    }
    for m in &mut mix {
        *m = m.clamp(-1.0, 1.0);
    }
    Ok(mix)
}

/// A 16-bit mono 48 kHz WAV of `pcm`.
pub fn wav_bytes(pcm: &[f32]) -> Vec<u8> {
    let data = (pcm.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + pcm.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&48_000u32.to_le_bytes());
    b.extend_from_slice(&96_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for x in pcm {
        let s = (x.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::codec::{Encoder, EncoderSettings};

    fn tone_file(freq: f32, lead: u64, packets: usize, serial: u32) -> Vec<u8> {
        let mut enc = Encoder::new(EncoderSettings::default()).expect("encoder");
        let mut w = ogg::OggOpusWriter::new(Vec::new(), serial).expect("writer");
        w.fill_to(lead).expect("fill");
        for k in 0..packets {
            let mut pcm = [0.0f32; PACKET];
            for (i, x) in pcm.iter_mut().enumerate() {
                let t = (k * PACKET + i) as f32 / 48_000.0;
                *x = 0.25 * (2.0 * std::f32::consts::PI * freq * t).sin();
            }
            w.packet(enc.encode(&pcm).expect("encode")).expect("packet");
        }
        w.finish().expect("finish")
    }

    /// Power of `freq` in `x` (Goertzel), relative to the signal's.
    fn share(x: &[f32], freq: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * freq / 48_000.0;
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let e: f32 = x.iter().map(|v| v * v).sum();
        2.0 * p / (x.len() as f32 * e.max(1e-12))
    }

    #[test]
    fn two_party_files_mix_in_time() {
        let dir = std::env::temp_dir().join(format!("mixdown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // Party a: 440 Hz from the start for 1 s; party b: 1 kHz from
        // 1 s to 2 s (its file starts with 1 s of fillers).
        let a = tone_file(440.0, 0, 50, 1);
        let b = tone_file(1000.0, 48_000, 50, 2);
        assert!(finished(&a) && finished(&b));
        assert!(!finished(&a[..a.len() - 10]), "a cut file is not finished");
        std::fs::write(dir.join("a.opus"), &a).expect("write");
        std::fs::write(dir.join("b.opus"), &b).expect("write");
        std::fs::write(dir.join("manifest.jsonl"), "{}\n").expect("write");
        let mix = mix_dir(&dir).expect("mix");
        assert!(mix.len() >= 2 * 48_000, "{}", mix.len());
        let first = &mix[10_000..40_000];
        let second = &mix[58_000..88_000];
        assert!(share(first, 440.0) > 0.5, "{}", share(first, 440.0));
        assert!(share(first, 1000.0) < 0.05);
        assert!(share(second, 1000.0) > 0.5, "{}", share(second, 1000.0));
        assert!(share(second, 440.0) < 0.05);
        let wav = wav_bytes(&mix);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + mix.len() * 2);
        // Not Ogg: a typed error.
        std::fs::write(dir.join("c.opus"), b"not ogg").expect("write");
        assert!(matches!(mix_dir(&dir), Err(MixdownError::NotOpus { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_g711_party_mixes_with_an_opus_party_in_time() {
        let dir = std::env::temp_dir().join(format!("mixdown-g711-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // Party a: Opus 440 Hz for 1 s from the start; party b: a μ-law
        // WAV as the recorder writes it, 1 s of silence then 1 kHz.
        let a = tone_file(440.0, 0, 50, 1);
        std::fs::write(dir.join("a.opus"), &a).expect("write");
        let mut ulaw = vec![0xffu8; 8000];
        let tone: Vec<f32> = (0..8000)
            .map(|n| 0.3 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin())
            .collect();
        let mut coded = Vec::new();
        media::g711::encode(protocol::media::Codec::Pcmu, &tone, &mut coded);
        ulaw.extend_from_slice(&coded);
        let mut b =
            super::super::parties::g711_wav_header(protocol::media::Codec::Pcmu, ulaw.len() as u32)
                .to_vec();
        b.extend_from_slice(&ulaw);
        std::fs::write(dir.join("b.wav"), &b).expect("write");
        let mix = mix_dir(&dir).expect("mix");
        assert!(mix.len() >= 2 * 48_000, "{}", mix.len());
        let (first, second) = (&mix[10_000..40_000], &mix[58_000..88_000]);
        assert!(share(first, 440.0) > 0.5, "{}", share(first, 440.0));
        assert!(share(first, 1000.0) < 0.05);
        assert!(share(second, 1000.0) > 0.5, "{}", share(second, 1000.0));
        // A WAV that is not G.711 is a typed error, not a panic.
        std::fs::write(dir.join("c.wav"), b"RIFF\0\0\0\0WAVEjunk").expect("write");
        assert!(matches!(mix_dir(&dir), Err(MixdownError::NotG711 { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
