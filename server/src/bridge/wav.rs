//! WAV files: reading a prompt for a simulated caller (16-bit PCM, any
//! rate, mono or stereo, brought to 48 kHz mono). Recordings are Ogg Opus
//! ([`super::parties`]); a WAV is written only as a fetched mixdown
//! ([`super::mixdown::wav_bytes`]).

use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back() {
        let dir = std::env::temp_dir().join(format!("sb-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.wav");
        let tone: Vec<f32> = (0..4800).map(|i| 0.5 * (i as f32 * 0.1).sin()).collect();
        std::fs::write(&path, super::super::mixdown::wav_bytes(&tone)).expect("write");
        let back = read_48k_mono(&path).expect("read");
        assert_eq!(back.len(), 4800);
        assert!(back.iter().zip(&tone).all(|(a, b)| (a - b).abs() < 1e-3));
        assert!(parse(b"RIFF....WAVEjunk").is_err());
        assert!(parse(b"nope").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn other_rates_are_brought_to_48k() {
        let at_16k = [0.0f32, 0.5, 1.0, 0.5];
        let up = resample_linear(&at_16k, 16_000, 48_000);
        assert_eq!(up.len(), 12);
        assert!((up[3] - 0.5).abs() < 1e-6 && (up[6] - 1.0).abs() < 1e-6);
    }
}
