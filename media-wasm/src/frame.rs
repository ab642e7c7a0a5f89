//! The engine's time units. Everything runs at 48 kHz mono. DSP stages work
//! on 10 ms blocks (what echo cancellation and noise suppression are built
//! for), Opus on 10 or 20 ms packets (negotiated; [`PACKET`] is the longer
//! one, and every packet buffer is sized for it), and the AudioWorklet calls
//! in 128-sample render quanta.

/// Samples per second.
pub const SAMPLE_RATE: u32 = 48_000;
/// One DSP block: 10 ms.
pub const BLOCK: usize = 480;
/// One Opus packet: 20 ms (the longest the engine sends or plays).
pub const PACKET: usize = 960;
/// A short Opus packet: 10 ms.
pub const PACKET_10MS: usize = 480;
/// One AudioWorklet render quantum.
pub const QUANTUM: usize = 128;
/// Milliseconds per block.
pub const BLOCK_MS: u32 = 10;
/// Milliseconds per packet.
pub const PACKET_MS: u32 = 20;

/// Level of a signal in dB relative to full scale (RMS; -120 for silence).
pub fn rms_dbfs(x: &[f32]) -> f32 {
    if x.is_empty() {
        return -120.0;
    }
    let power = x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32;
    if power <= 1e-12 {
        -120.0
    } else {
        10.0 * power.log10()
    }
}

/// Raised-cosine crossfade weight for sample `i` of `n` (0 -> 1).
pub fn fade_in(i: usize, n: usize) -> f32 {
    let x = (i as f32 + 0.5) / n as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}
