//! The softphone's audio engine, in pure Rust so it runs natively (tests,
//! benchmarks) and in WebAssembly inside an AudioWorklet.
//!
//! Send: capture -> [`echo`] (against exactly what was played) ->
//! [`denoise`] -> [`gain`] -> [`codec`] (Opus, FEC) -> media frames.
//! Receive: media frames -> [`jitter`] -> [`codec`] (decode, FEC,
//! concealment) -> playout. [`send`] and [`receive`] are the two chains;
//! [`engine`] runs both on the render-quantum clock and spreads their work
//! so no quantum carries a whole frame's cost; [`legs`] mixes the other
//! legs of a conference when the backend forwards each talker apart. [`quality`] turns the
//! counters into a MOS for the call-quality indicator.

pub mod band_split;
pub mod bench;
pub mod codec;
pub mod denoise;
pub mod echo;
pub mod engine;
pub mod frame;
pub mod g711;
pub mod gain;
pub mod jitter;
pub mod legs;
pub mod quality;
pub mod receive;
pub mod send;
pub mod telephone;
#[cfg(target_arch = "wasm32")]
pub mod worklet;

pub use engine::{Engine, EngineStats};
