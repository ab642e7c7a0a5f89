//! The softphone's audio engine. Not started: issue 3 builds the DSP core
//! (echo cancellation, noise suppression, gain, Opus with FEC, jitter
//! buffer) here, and the AudioWorklet glue around it. The media frame
//! header it will speak is already defined in `protocol::media`.
