// The engine's send half in a Worker (Chromium): the microphone's
// MediaStreamTrackProcessor stream is read here, and every AudioData chunk
// goes through echo cancellation, noise suppression, gain and the Opus
// encoder at once, in this Worker's own instance of the engine, and the
// packet leaves from here: to the media worker's socket when it is open,
// else to the page. Neither the AudioContext (whose capture hand-off costs
// 15-20 ms) nor the render clock (a chunk would wait for the quanta that
// take it) nor the page's main thread is on the way.
//
// The AudioWorklet then only plays (worklet.js, split mode); it posts each
// quantum it played here, as the echo reference, on its own port. The
// reference is rendered before the device plays it, so it always leads the
// echo the microphone picks up; AEC3's delay estimator takes the rest.
//
//   worker.postMessage({ type: 'prepare', module, readable, reference }, [readable, reference]);
//   worker.postMessage({ type: 'init', leg, bitrate, fec, dtx, echo, packetMs });
//   worker.postMessage({ type: 'net', port }, [port]);   // the media worker's
//   worker.postMessage({ type: 'mute', muted });
//
// Messages to the page: { type: 'ready' }, { type: 'packet', frame },
// { type: 'ended', message } (the track failed or ended: the page goes
// back to the worklet's own capture), { type: 'error', code, message }.
//
// Packet boundaries: the echo canceller works in 4 ms chunks (192
// samples) and a 10 ms block ends inside one every other time (480 is two
// and a half chunks), so that block waits for the next chunk's samples;
// here the next samples come with the next 10 ms track chunk, a whole
// chunk later. Starting the engine 96 samples (2 ms) of silence ahead of
// the first chunk puts every block's end at most 96 samples before a
// track chunk's end, so each packet waits exactly 2 ms instead of 0 or
// 10 ms by turns.

const RATE = 48000;
const QUANTUM = 128;
// Where a track chunk must end, in the engine's samples, modulo a block.
const ALIGN = 96;

// resampler(): onto the engine's 48 kHz, shared with the other worker.
importScripts('resample.js');

let module = null;
let x = null;
let warmed = null;
let readable = null;
let net = null;
let netOpen = false;
let fed = 0;
let aligned = false;
let stopped = false;
let stats = { packets: 0, chunks: 0, gaps: 0, lostMs: 0 };
// Where the next chunk should start (AudioData timestamp, us).
let expectedUs = null;
// Capture lost over the last two seconds (ms, per chunk), and when the
// call's send half started (ms): on a machine so busy that this Worker,
// which has no real-time priority, loses more than GIVE_UP_MS of the
// microphone in two seconds, capture goes back to the worklet (whose
// thread has it). The first second is spared: the code's first runs.
const GIVE_UP_MS = 60;
let recentLoss = [];
let startedAt = 0;
// The send half's own statistics (sb_stats' layout, worklet.js), posted
// once a second: the worklet's engine only plays, so these are the call's.
const SEND_FIELDS = { erleDb: 9, inputDbfs: 10, packetsSent: 13, overruns: 14, muted: 15 };
let lastStats = 0;

function send(n) {
  const frame = new Uint8Array(x.memory.buffer, x.sb_packet(), n).slice();
  stats.packets += 1;
  if (netOpen && net) net.postMessage(frame.buffer, [frame.buffer]);
  else postMessage({ type: 'packet', frame: frame.buffer }, [frame.buffer]);
}

/** `samples` (48 kHz) through the send half, a quantum or less at a time. */
function capture(samples) {
  for (let at = 0; at < samples.length; at += QUANTUM) {
    const len = Math.min(QUANTUM, samples.length - at);
    new Float32Array(x.memory.buffer, x.sb_input(), len).set(samples.subarray(at, at + len));
    const n = x.sb_capture(len);
    if (n > 0 && n <= x.sb_frame_capacity()) send(n);
    else if (n < 0) postMessage({ type: 'error', code: 'encoder_failed', message: 'the encoder failed' });
  }
  fed += samples.length;
}

function onReference(e) {
  if (!x || !(e.data instanceof ArrayBuffer)) return;
  const s = new Float32Array(e.data);
  for (let at = 0; at < s.length; at += QUANTUM) {
    const len = Math.min(QUANTUM, s.length - at);
    new Float32Array(x.memory.buffer, x.sb_input(), len).set(s.subarray(at, at + len));
    x.sb_far_end(len);
  }
}

async function readTrack() {
  const reader = readable.getReader();
  const resample = resampler();
  for (;;) {
    let step;
    try {
      step = await reader.read();
    } catch (err) {
      postMessage({ type: 'ended', message: String(err) });
      return;
    }
    if (step.done || stopped) {
      if (!stopped) postMessage({ type: 'ended', message: 'the track ended' });
      return;
    }
    const data = step.value;
    // A stalled Worker gets the track's chunks late, and the browser drops
    // the oldest once its queue is full: the audio those carried is lost.
    // Skipped in the stream (sb_skip), the receiver conceals it as loss;
    // unaccounted, everything after it would play that much later.
    const durationUs = (data.numberOfFrames * 1e6) / data.sampleRate;
    let lostUs = 0;
    if (expectedUs !== null && data.timestamp - expectedUs > durationUs / 2) lostUs = data.timestamp - expectedUs;
    expectedUs = data.timestamp + durationUs;
    let samples;
    try {
      const raw = new Float32Array(data.numberOfFrames);
      data.copyTo(raw, { planeIndex: 0, format: 'f32-planar' });
      samples = resample(raw, data.sampleRate);
    } catch (err) {
      postMessage({ type: 'ended', message: String(err) });
      return;
    } finally {
      data.close();
    }
    if (!x) continue; // not started yet: the call's audio begins at init
    stats.chunks += 1;
    if (lostUs > 0 && aligned) {
      stats.gaps += 1;
      stats.lostMs += lostUs / 1000;
      x.sb_skip(Math.round((lostUs * RATE) / 1e6));
      const now = performance.now();
      recentLoss.push([now, lostUs / 1000]);
      recentLoss = recentLoss.filter(([t]) => now - t < 2000);
      const lost = recentLoss.reduce((a, [, ms]) => a + ms, 0);
      if (now - startedAt > 1000 && lost > GIVE_UP_MS) {
        // The worklet continues the stream where this one stops.
        postMessage({ type: 'ended', message: `the capture worker lost ${Math.round(lost)} ms of audio in 2 s`,
          seq: x.sb_send_position(0), ts: x.sb_send_position(1) });
        postStats();
        stopped = true;
        x = null;
        return;
      }
    }
    if (!aligned) {
      // Silence ahead of the first chunk, so that chunks end ALIGN
      // samples past a block boundary (see the top of the file).
      const pad = (((ALIGN - samples.length) % 480) + 480) % 480;
      if (pad) capture(new Float32Array(pad));
      aligned = true;
    }
    capture(samples);
    if (stats.chunks - lastStats >= 100) {
      lastStats = stats.chunks;
      postStats();
    }
  }
}

function postStats() {
  if (!x) return;
  const values = new Float64Array(x.memory.buffer, x.sb_stats(), 19);
  const out = { sendChunks: stats.chunks, sendFed: fed, captureGaps: stats.gaps, captureLostMs: stats.lostMs };
  for (const [k, i] of Object.entries(SEND_FIELDS)) out[k] = values[i];
  postMessage({ type: 'stats', stats: out });
}

/** Compiles the engine's code ahead (see worklet.js, warm). */
function warm() {
  warmed = WebAssembly.instantiate(module, {}).then((instance) => {
    const w = instance.exports;
    if (w.sb_init(1, 32000, 1, 0, 1) !== 0) return w;
    let seed = 1;
    for (const ms of [20, 10]) {
      w.sb_set_packet_ms(ms);
      for (let q = 0; q < 60; q++) {
        const mic = new Float32Array(w.memory.buffer, w.sb_input(), QUANTUM);
        for (let i = 0; i < QUANTUM; i++) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          mic[i] = 0.1 * Math.sin((q * QUANTUM + i) * 0.06) + 0.01 * (seed / 4294967296 - 0.5);
        }
        w.sb_far_end(QUANTUM);
        w.sb_capture(QUANTUM);
      }
    }
    return w;
  });
  warmed.catch(() => {});
}

onmessage = (e) => {
  const m = e.data || {};
  if (m.type === 'prepare') {
    module = m.module;
    readable = m.readable;
    if (m.reference) m.reference.onmessage = onReference;
    warm();
    readTrack();
  } else if (m.type === 'init') {
    const made = warmed || WebAssembly.instantiate(module, {}).then((i) => i.exports);
    made.catch(() => WebAssembly.instantiate(module, {}).then((i) => i.exports)).then((w) => {
      if (w.sb_init(m.leg >>> 0, m.bitrate | 0, m.fec ? 1 : 0, m.dtx ? 1 : 0, m.echo === false ? 0 : 1) !== 0
          || w.sb_set_packet_ms(m.packetMs === 10 ? 10 : 20) !== 0) {
        postMessage({ type: 'error', code: 'engine_init_failed', message: 'the send half could not start' });
        return;
      }
      x = w;
      startedAt = performance.now();
      postMessage({ type: 'ready' });
    }, (err) => postMessage({ type: 'error', code: 'engine_init_failed', message: String(err) }));
  } else if (m.type === 'net' && m.port) {
    net = m.port;
    netOpen = false;
    net.onmessage = (n) => {
      const d = n.data || {};
      if (d.type === 'open') netOpen = true;
      else if (d.type === 'closed') { netOpen = false; net = null; }
    };
  } else if (m.type === 'mute') {
    if (x) x.sb_set_muted(m.muted ? 1 : 0);
  } else if (m.type === 'stats') {
    postStats();
  } else if (m.type === 'stop') {
    stopped = true;
    x = null;
  }
};
