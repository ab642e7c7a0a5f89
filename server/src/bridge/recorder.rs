//! Recording files behind one small interface, so the bridge does not care
//! what the container is: today a 48 kHz mono 16-bit WAV whose header is
//! rewritten as the audio grows (see [`crate::bridge::wav::WavWriter`]);
//! tomorrow perhaps Ogg Opus per party, whose pages survive truncation
//! without any header to fix.
//!
//! The contract every writer keeps: after [`Recorder::write`] returns, a
//! process killed at any instant (`kill -9`, a panic, the OOM killer)
//! leaves a file a player reads up to at most [`CHECKPOINT_MS`] before
//! the kill; [`Recorder::finish`] completes the file and syncs it to disk.

use std::path::Path;

use super::wav::WavWriter;

/// How much audio a writer may hold before the file on disk describes it:
/// at most this much is lost when the process dies.
pub const CHECKPOINT_MS: u32 = 500;

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The file or its directory could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing, updating the header or syncing failed.
    #[error("cannot write the recording: {0}")]
    Write(#[from] std::io::Error),
}

/// A recording being written as the call happens.
pub trait Recorder: Send {
    /// Appends 48 kHz mono samples; makes the file on disk describe them
    /// at least every [`CHECKPOINT_MS`] of audio.
    fn write(&mut self, pcm: &[f32]) -> Result<(), RecordError>;

    /// Writes everything out, completes the file and syncs it to disk.
    fn finish(self: Box<Self>) -> Result<(), RecordError>;

    /// Samples written so far.
    fn samples(&self) -> u64;
}

/// Opens a recording at `path` (creating its directory).
pub fn create(path: &Path) -> Result<Box<dyn Recorder>, RecordError> {
    WavWriter::create(path)
        .map(|w| Box::new(w) as Box<dyn Recorder>)
        .map_err(|source| RecordError::Create {
            path: path.display().to_string(),
            source,
        })
}
