//! WAV files: reading a prompt for a simulated caller (16-bit PCM, any
//! rate, mono or stereo, brought to 48 kHz mono), and writing recordings as
//! they happen (16-bit mono 48 kHz, header kept up to date as they grow).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::recorder::{RecordError, Recorder, CHECKPOINT_MS};

/// Reads a 16-bit PCM WAV as 48 kHz mono floats.
pub fn read_48k_mono(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a WAV file".into());
    }
    let (mut channels, mut rate, mut bits) = (0u16, 0u32, 0u16);
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        let body = &bytes[i + 8..(i + 8 + len).min(bytes.len())];
        if id == b"fmt " && body.len() >= 16 {
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            if bits != 16 || channels == 0 || rate == 0 {
                return Err(format!(
                    "need 16-bit PCM, got {bits} bits, {channels} channels, {rate} Hz"
                ));
            }
            let frames: Vec<f32> = body
                .chunks_exact(2 * channels as usize)
                .map(|f| f32::from(i16::from_le_bytes([f[0], f[1]])) / 32768.0)
                .collect();
            return Ok(resample_linear(&frames, rate, 48_000));
        }
        i += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// Linear-interpolation resampling: fine for prompts and test signals.
fn resample_linear(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() {
        return x.to_vec();
    }
    let n = (x.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..n)
        .map(|i| {
            let pos = i as f64 * f64::from(from) / f64::from(to);
            let k = pos as usize;
            let frac = (pos - k as f64) as f32;
            let a = x[k.min(x.len() - 1)];
            let b = x[(k + 1).min(x.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// A 48 kHz mono 16-bit WAV written as audio arrives. The header is
/// rewritten every [`CHECKPOINT_MS`] of audio, after the samples it
/// describes have been handed to the kernel, so a file left by a killed
/// process is a valid WAV of everything up to the last checkpoint (the
/// header never claims bytes that are not there).
pub struct WavWriter {
    file: File,
    /// Samples not yet written to the file.
    pending: Vec<u8>,
    samples: u32,
    /// Samples the header on disk describes.
    committed: u32,
}

/// Samples between header rewrites.
const CHECKPOINT_SAMPLES: u32 = 48 * CHECKPOINT_MS;
/// The most samples a WAV's 32-bit sizes can describe.
const MAX_SAMPLES: u32 = (u32::MAX - 36) / 2;

impl WavWriter {
    /// Creates the file (and its directory) with a header for no audio.
    pub fn create(path: &Path) -> std::io::Result<WavWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = File::create(path)?;
        file.write_all(&header(0))?;
        Ok(WavWriter {
            file,
            pending: Vec::with_capacity(2 * CHECKPOINT_SAMPLES as usize),
            samples: 0,
            committed: 0,
        })
    }

    /// Appends samples; writes them out and rewrites the header once
    /// [`CHECKPOINT_MS`] of audio has gathered.
    pub fn write(&mut self, pcm: &[f32]) -> std::io::Result<()> {
        // A WAV's sizes are 32-bit: past about 12 hours the file stops
        // growing rather than wrapping its header.
        let room = (MAX_SAMPLES - self.samples) as usize;
        let pcm = &pcm[..pcm.len().min(room)];
        for &s in pcm {
            let v = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
            self.pending.extend_from_slice(&v.to_le_bytes());
        }
        self.samples += pcm.len() as u32;
        if self.samples - self.committed >= CHECKPOINT_SAMPLES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Writes pending samples, then the sizes that describe them. The
    /// order matters: a kill between the two leaves a header that claims
    /// less than the file holds, which players accept.
    fn checkpoint(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.pending)?;
        self.pending.clear();
        let data = self.samples * 2;
        self.file.seek(SeekFrom::Start(4))?;
        self.file.write_all(&(data + 36).to_le_bytes())?;
        self.file.seek(SeekFrom::Start(40))?;
        self.file.write_all(&data.to_le_bytes())?;
        self.file.seek(SeekFrom::End(0))?;
        self.committed = self.samples;
        Ok(())
    }

    /// Samples written so far.
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// Completes the header, syncs the file to disk and closes it.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.checkpoint()?;
        self.file.sync_data()
    }
}

impl Drop for WavWriter {
    /// A writer dropped without `finish` (a call torn down by a panic)
    /// still leaves a valid file.
    fn drop(&mut self) {
        if self.samples != self.committed || !self.pending.is_empty() {
            let _ = self.checkpoint();
        }
    }
}

impl Recorder for WavWriter {
    fn write(&mut self, pcm: &[f32]) -> Result<(), RecordError> {
        Ok(WavWriter::write(self, pcm)?)
    }

    fn finish(self: Box<Self>) -> Result<(), RecordError> {
        Ok(WavWriter::finish(*self)?)
    }

    fn samples(&self) -> u64 {
        u64::from(WavWriter::samples(self))
    }
}

fn header(samples: u32) -> [u8; 44] {
    let data = samples.saturating_mul(2);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&48_000u32.to_le_bytes());
    h[28..32].copy_from_slice(&96_000u32.to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back() {
        let dir = std::env::temp_dir().join(format!("sb-wav-{}", std::process::id()));
        let path = dir.join("x.wav");
        let mut w = WavWriter::create(&path).expect("create");
        let tone: Vec<f32> = (0..4800).map(|i| 0.5 * (i as f32 * 0.1).sin()).collect();
        w.write(&tone).expect("write");
        w.finish().expect("finish");
        let back = read_48k_mono(&path).expect("read");
        assert_eq!(back.len(), 4800);
        assert!(back.iter().zip(&tone).all(|(a, b)| (a - b).abs() < 1e-3));
        assert!(parse(b"RIFF....WAVEjunk").is_err());
        assert!(parse(b"nope").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn sizes(bytes: &[u8]) -> (u32, u32) {
        let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let data = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
        (riff, data)
    }

    #[test]
    fn a_writer_killed_mid_call_leaves_a_valid_file_up_to_its_last_checkpoint() {
        let dir = std::env::temp_dir().join(format!("sb-wav-kill-{}", std::process::id()));
        let path = dir.join("x.wav");
        let mut w = WavWriter::create(&path).expect("create");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(
            (bytes.len(), sizes(&bytes)),
            (44, (36, 0)),
            "empty but valid"
        );
        // 1.26 s in 20 ms packets, as the bridge writes.
        let packet: Vec<f32> = (0..960).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        for _ in 0..63 {
            w.write(&packet).expect("write");
        }
        // What a `kill -9` leaves: no finish, no drop.
        std::mem::forget(w);
        let bytes = std::fs::read(&path).expect("read");
        let (riff, data) = sizes(&bytes);
        assert_eq!(
            data as usize,
            bytes.len() - 44,
            "the header describes the file"
        );
        assert_eq!(riff, data + 36);
        let claimed_ms = data / 96;
        assert!(
            (1260 - CHECKPOINT_MS..=1260).contains(&claimed_ms),
            "at most {CHECKPOINT_MS} ms lost, claimed {claimed_ms} ms"
        );
        let back = read_48k_mono(&path).expect("readable");
        assert_eq!(back.len() as u32, data / 2);
        assert!((back[100] - packet[100]).abs() < 1e-3);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_dropped_writer_completes_its_header() {
        let dir = std::env::temp_dir().join(format!("sb-wav-drop-{}", std::process::id()));
        let path = dir.join("x.wav");
        let mut w = WavWriter::create(&path).expect("create");
        w.write(&[0.25; 1000]).expect("write");
        drop(w);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(sizes(&bytes), (2036, 2000));
        assert_eq!(bytes.len(), 2044);
        let _ = std::fs::remove_dir_all(dir);
    }
}
