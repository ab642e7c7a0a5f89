//! The engine's face to the AudioWorklet: plain C-ABI exports and no
//! imports, so the module instantiates with `WebAssembly.instantiate(module,
//! {})` inside AudioWorkletGlobalScope, where wasm-bindgen's generated glue
//! cannot run (it needs TextDecoder, which that scope lacks).
//!
//! One engine per instance, held in a thread-local. Buffers are exchanged
//! through fixed regions of linear memory whose addresses the exports hand
//! out: the processor writes 128 microphone samples at `sb_input`, calls
//! `sb_process`, reads 128 output samples at `sb_output` and, when the call
//! returned a length, the media frame at `sb_packet`. Incoming frames are
//! written at `sb_frame_in` before `sb_receive(len)`. No allocation happens
//! per call.
#![allow(unsafe_code)] // `#[no_mangle]` exports only; no unsafe blocks.

use std::cell::RefCell;

use protocol::media::{HEADER_LEN, MAX_OPUS_PACKET};

use crate::codec::EncoderSettings;
use crate::engine::Engine;
use crate::frame::QUANTUM;
use crate::jitter::JitterSettings;

/// Number of values `sb_stats` writes.
pub const STATS_LEN: usize = 19;

struct Handle {
    engine: Engine,
    input: Box<[f32; QUANTUM]>,
    output: Box<[f32; QUANTUM]>,
    packet: Box<[u8; HEADER_LEN + MAX_OPUS_PACKET]>,
    frame_in: Box<[u8; HEADER_LEN + MAX_OPUS_PACKET]>,
    stats: Box<[f64; STATS_LEN]>,
}

thread_local! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

fn with<R>(default: R, f: impl FnOnce(&mut Handle) -> R) -> R {
    HANDLE.with(|h| h.borrow_mut().as_mut().map_or(default, f))
}

/// Creates the engine. `echo` 0 turns echo cancellation off (a loopback
/// test, where the output *is* the input delayed, would otherwise be
/// treated as echo). Returns 0, or -1 when the codec cannot start.
#[no_mangle]
pub extern "C" fn sb_init(leg: u32, bitrate_bps: i32, fec: u32, dtx: u32, echo: u32) -> i32 {
    let settings = EncoderSettings {
        bitrate_bps,
        fec: fec != 0,
        dtx: dtx != 0,
        ..EncoderSettings::default()
    };
    match Engine::new(leg, settings, JitterSettings::default()) {
        Ok(mut engine) => {
            engine.send_chain().enable_echo = echo != 0;
            // The CCP announces `media_legs`: a conference's talkers may
            // come on legs of their own, mixed here.
            engine.enable_legs(leg);
            HANDLE.with(|h| {
                *h.borrow_mut() = Some(Handle {
                    engine,
                    input: Box::new([0.0; QUANTUM]),
                    output: Box::new([0.0; QUANTUM]),
                    packet: Box::new([0; HEADER_LEN + MAX_OPUS_PACKET]),
                    frame_in: Box::new([0; HEADER_LEN + MAX_OPUS_PACKET]),
                    stats: Box::new([0.0; STATS_LEN]),
                })
            });
            0
        }
        Err(_) => -1,
    }
}

/// Sets the packet duration, 10 or 20 ms. Returns 0, or -1 when refused
/// (another duration, or no engine) and nothing changed.
#[no_mangle]
pub extern "C" fn sb_set_packet_ms(ms: u32) -> i32 {
    with(-1, |h| match h.engine.set_packet_ms(ms) {
        Ok(()) => 0,
        Err(_) => -1,
    })
}

/// Address of the 128-sample microphone buffer.
#[no_mangle]
pub extern "C" fn sb_input() -> usize {
    with(0, |h| h.input.as_ptr() as usize)
}

/// Address of the 128-sample output buffer.
#[no_mangle]
pub extern "C" fn sb_output() -> usize {
    with(0, |h| h.output.as_ptr() as usize)
}

/// Address of the outgoing media frame.
#[no_mangle]
pub extern "C" fn sb_packet() -> usize {
    with(0, |h| h.packet.as_ptr() as usize)
}

/// Address where an incoming media frame is written.
#[no_mangle]
pub extern "C" fn sb_frame_in() -> usize {
    with(0, |h| h.frame_in.as_ptr() as usize)
}

/// Capacity of the frame buffers, bytes.
#[no_mangle]
pub extern "C" fn sb_frame_capacity() -> usize {
    HEADER_LEN + MAX_OPUS_PACKET
}

/// Runs one render quantum. Returns the length of a media frame written at
/// `sb_packet`, 0 when none, -1 on an encoder failure.
#[no_mangle]
pub extern "C" fn sb_process() -> i32 {
    with(-1, |h| {
        let Handle {
            engine,
            input,
            output,
            packet,
            ..
        } = h;
        match engine.process_quantum(&input[..], &mut output[..]) {
            Ok(Some(frame)) => {
                packet[..frame.len()].copy_from_slice(frame);
                frame.len() as i32
            }
            Ok(None) => 0,
            Err(_) => -1,
        }
    })
}

/// Split driving, playout half (the capture runs in a Worker's engine,
/// `sb_capture`): one quantum of playout into `sb_output`, no capture and
/// no echo reference of its own; the processor posts what it played to
/// that Worker, which hands it to `sb_far_end`.
#[no_mangle]
pub extern "C" fn sb_play() {
    with((), |h| h.engine.play_quantum(&mut h.output[..]));
}

/// One quantum of playout into `sb_output` with this engine's own echo
/// reference, no capture: the capture comes through `sb_capture` as the
/// track delivers it, on the same engine (the worklet's 'direct' capture).
#[no_mangle]
pub extern "C" fn sb_play_local() {
    with((), |h| h.engine.play_local_quantum(&mut h.output[..]));
}

/// Split driving, capture half: the first `len` (at most 128) samples at
/// `sb_input` through the send chain. Returns the length of a media frame
/// written at `sb_packet`, 0 when none, -1 on an encoder failure.
#[no_mangle]
pub extern "C" fn sb_capture(len: usize) -> i32 {
    with(-1, |h| {
        let Handle {
            engine,
            input,
            packet,
            ..
        } = h;
        let len = len.min(input.len());
        match engine.capture_quantum(&input[..len]) {
            Ok(Some(frame)) => {
                packet[..frame.len()].copy_from_slice(frame);
                frame.len() as i32
            }
            Ok(None) => 0,
            Err(_) => -1,
        }
    })
}

/// Split driving: `samples` of capture were lost (dropped track chunks);
/// whole packets of them are skipped in the stream.
#[no_mangle]
pub extern "C" fn sb_skip(samples: usize) {
    with((), |h| h.engine.skip_capture(samples));
}

/// The send chain's next sequence number (`which` 0) or timestamp (1).
#[no_mangle]
pub extern "C" fn sb_send_position(which: u32) -> u32 {
    with(0, |h| {
        let (seq, ts) = h.engine.send_chain().position();
        if which == 0 {
            seq
        } else {
            ts
        }
    })
}

/// Continues the stream another engine's send chain began (capture moved
/// from a Worker back to the worklet): its next sequence number and
/// timestamp.
#[no_mangle]
pub extern "C" fn sb_continue_stream(seq: u32, ts: u32) {
    with((), |h| h.engine.send_chain().continue_from(seq, ts));
}

/// Split driving: the first `len` (at most 128) samples at `sb_input` are
/// the far end as the playout half played them: the echo reference.
#[no_mangle]
pub extern "C" fn sb_far_end(len: usize) {
    with((), |h| {
        let len = len.min(h.input.len());
        h.engine.far_end_reference(&h.input[..len]);
    });
}

/// Takes the `len`-byte frame at `sb_frame_in`. 0, or -1 when it is malformed.
#[no_mangle]
pub extern "C" fn sb_receive(len: usize) -> i32 {
    with(-1, |h| {
        let len = len.min(h.frame_in.len());
        match h.engine.receive(&h.frame_in[..len]) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// Mutes (1) or unmutes (0) the microphone.
#[no_mangle]
pub extern "C" fn sb_set_muted(muted: u32) {
    with((), |h| h.engine.set_muted(muted != 0));
}

/// Writes the statistics and returns their address (`STATS_LEN` f64s):
/// received, lost, concealed, fec_recovered, late, duplicates, jitter ms,
/// buffer delay ms, target delay ms, ERLE dB, input dBFS, output dBFS,
/// MOS, packets sent, overruns, muted.
#[no_mangle]
pub extern "C" fn sb_stats() -> usize {
    with(0, |h| {
        let s = h.engine.stats();
        let j = s.jitter;
        let values = [
            j.received as f64,
            j.lost() as f64,
            j.concealed as f64,
            j.fec_recovered as f64,
            j.late as f64,
            j.duplicates as f64,
            f64::from(j.jitter_ms),
            f64::from(s.buffer_delay_ms),
            f64::from(s.target_delay_ms),
            s.erle_db,
            f64::from(s.input_dbfs),
            f64::from(s.output_dbfs),
            s.mos,
            s.packets_sent as f64,
            s.overruns as f64,
            if s.muted { 1.0 } else { 0.0 },
            j.shrinks as f64,
            j.grows as f64,
            j.restarts as f64,
        ];
        h.stats.copy_from_slice(&values);
        h.stats.as_ptr() as usize
    })
}

/// The engine's own latency, ms: capture-to-packet + packet-to-playout.
#[no_mangle]
pub extern "C" fn sb_added_latency_ms() -> f64 {
    with(0.0, |h| {
        let (s, r) = h.engine.added_latency_ms();
        s + r
    })
}

thread_local! {
    static BENCH: RefCell<Option<crate::bench::StageBench>> = const { RefCell::new(None) };
}

/// Benchmarks only: runs one unit of stage `stage` (see `bench::STAGES`).
/// Returns 0, or -1 when the stage bench cannot start.
#[no_mangle]
pub extern "C" fn sb_bench(stage: u32) -> i32 {
    BENCH.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_none() {
            *b = crate::bench::StageBench::new().ok();
        }
        match b.as_mut() {
            Some(bench) => {
                bench.run(stage as usize);
                0
            }
            None => -1,
        }
    })
}
