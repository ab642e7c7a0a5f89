// Measuring from the capture track, shared by the benches that report
// mouth to ear from what the user's voice actually waits for
// (tests/bench/webrtc.mjs, tests/bench/call-latency.mjs): a
// MediaStreamTrackProcessor reader on the microphone's own track keeps
// every chunk with its AudioData timestamp (Chromium gives them on the
// page's performance clock, us), and the audio an AudioWorklet plays is
// put on that clock through the AudioContext's own mapping of its clock
// to the device's (getOutputTimestamp()), less the output latency: the
// moment it is rendered (the device's own delays count for neither end).
// Both then go onto one 48 kHz timeline, and medianLagMs
// (tests/browser/audio.mjs) finds the lag between them.
//
// `PAGE_HELPERS` runs in the page (page.evaluate or addInitScript) and
// installs window.trackRecorder, window.smooth, window.timeline,
// window.trackPair, window.contextClock and window.placeRendered.
// `watchEngineMedia` (an init script, for a page that starts its own
// engine, as the CCP does) records the first microphone track any
// getUserMedia returns and the clock of every AudioContext made.

export const PAGE_HELPERS = () => {
  /** Every chunk of `track` with its timestamp (us) and rate, as it comes. */
  window.trackRecorder = (track) => {
    const chunks = [];
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const data = new Float32Array(value.numberOfFrames);
        value.copyTo(data, { planeIndex: 0, format: 'f32-planar' });
        chunks.push({ ts: value.timestamp, rate: value.sampleRate, data });
        value.close();
      }
    })().catch(() => {});
    return chunks;
  };
  // A track's chunks are contiguous audio, but some tracks' timestamps
  // (a MediaStreamAudioDestinationNode's) jitter by +-1.5 ms with the
  // delivery: chunk i is placed at its neighbourhood's median offset
  // (timestamp less the samples before it, over half a second either
  // side) plus the samples before it, so jitter neither overlaps nor gaps
  // the timeline, and a chunk the device really dropped (the offset steps
  // by a chunk and stays) moves what follows by as much.
  window.smooth = (chunks) => {
    let cum = 0;
    const offsets = chunks.map((c) => { const o = c.ts - (cum * 1e6) / c.rate; cum += c.data.length; return o; });
    const SIDE = 50;
    cum = 0;
    return chunks.map((c, i) => {
      const near = offsets.slice(Math.max(0, i - SIDE), i + SIDE + 1).sort((a, b) => a - b);
      const ts = near[Math.floor(near.length / 2)] + (cum * 1e6) / c.rate;
      cum += c.data.length;
      return { ...c, ts };
    });
  };
  // Linear interpolation of each chunk onto 48 kHz samples from t0 (us);
  // gaps stay silent.
  window.timeline = (chunks, t0, n) => {
    const out = new Float32Array(n);
    for (const c of window.smooth(chunks)) {
      const first = Math.max(0, Math.ceil(((c.ts - t0) * 48000) / 1e6));
      const last = Math.min(n - 1, Math.floor(((c.ts - t0) * 48000) / 1e6 + (c.data.length - 1) * (48000 / c.rate)));
      for (let j = first; j <= last; j += 1) {
        const pos = ((t0 + (j * 1e6) / 48000 - c.ts) * c.rate) / 1e6;
        const i = Math.floor(pos);
        const f = pos - i;
        out[j] = i + 1 < c.data.length ? c.data[i] * (1 - f) + c.data[i + 1] * f : c.data[i];
      }
    }
    return out;
  };
  /**
   * `input` and `output` (chunks) on one 48 kHz timeline of `seconds`,
   * from t0 (us; default the first input chunk), as plain arrays.
   */
  window.trackPair = (input, output, seconds, t0) => {
    const from = t0 === undefined ? window.smooth(input)[0].ts : t0;
    const n = Math.round(48000 * seconds);
    return { input: Array.from(window.timeline(input, from, n)), output: Array.from(window.timeline(output, from, n)) };
  };
  /**
   * Samples `ctx`'s mapping of its clock onto the performance clock
   * (performanceTime - contextTime, ms) every 100 ms; the median is used.
   */
  window.contextClock = (ctx) => {
    const offsets = [];
    const sample = () => {
      if (ctx.state === 'closed') return;
      const o = ctx.getOutputTimestamp();
      if (o.performanceTime > 0) offsets.push(o.performanceTime - 1000 * o.contextTime);
    };
    const timer = setInterval(sample, 100);
    ctx.addEventListener('statechange', () => { if (ctx.state === 'closed') clearInterval(timer); });
    return offsets;
  };
  /**
   * Chunks `{ time (s, the AudioContext's clock), data }` an AudioWorklet
   * rendered, as track chunks on the performance clock (us): played at
   * the device less the output latency.
   */
  window.placeRendered = (chunks, ctx, offsets) => {
    const sorted = offsets.slice().sort((a, b) => a - b);
    const offsetMs = sorted[Math.floor(sorted.length / 2)];
    const outputLatencyMs = 1000 * (ctx.outputLatency || 0);
    return chunks.map((c) => ({ ts: 1000 * (1000 * c.time + offsetMs - outputLatencyMs), rate: 48000, data: c.data }));
  };
};

/**
 * Init script (after PAGE_HELPERS) for a page whose own code starts the
 * engine (the CCP): the engine's microphone (the getUserMedia asked for
 * with the browser's own processing off, engine.js) has its track
 * recorded (window.__captureTrack: its chunks, the latest such call's),
 * and the engine's AudioContext (made at 48 kHz) has its clock sampled
 * (window.__engineContext: { ctx, offsets }).
 */
export const watchEngineMedia = () => {
  const media = navigator.mediaDevices;
  const ask = media.getUserMedia.bind(media);
  media.getUserMedia = async (constraints) => {
    const stream = await ask(constraints);
    const track = stream.getAudioTracks()[0];
    const audio = constraints && constraints.audio;
    if (track && audio && audio.echoCancellation === false) window.__captureTrack = window.trackRecorder(track);
    return stream;
  };
  const Native = window.AudioContext;
  window.AudioContext = class extends Native {
    constructor(options, ...rest) {
      super(options, ...rest);
      if (options && options.sampleRate === 48000) window.__engineContext = { ctx: this, offsets: window.contextClock(this) };
    }
  };
};

/**
 * In the page (after watchEngineMedia): the capture track and what the
 * engine rendered from `tapTime` (s, the AudioContext's clock; `output`,
 * contiguous 48 kHz samples, the engine's tap) on one timeline of
 * `seconds` from the tap's start, for medianLagMs.
 */
export const engineTrackPair = ({ tapTime, output, seconds }) => {
  const { ctx, offsets } = window.__engineContext;
  const rendered = window.placeRendered([{ time: tapTime, data: Float32Array.from(output) }], ctx, offsets);
  return window.trackPair(window.__captureTrack, rendered, seconds, rendered[0].ts);
};

/**
 * Where direct capture's chunks waited (Node side), from the records the
 * engine's tap hook gives (engine.js onTap's fourth argument: six numbers
 * a chunk, ms since the epoch except the length): from the chunk's
 * timestamp (its first sample's capture time as Chromium estimates it;
 * Chromium's fake device stamps a chunk when it reads it, so its samples
 * are all older than that) to the capture Worker's post, to the
 * worklet's receipt, and to its packet leaving. The first `skip` chunks
 * are left out (the stream's start: a few chunks queued on the page
 * before the transfer, stamped on the page's clock). Returns
 * { chunks, read, arrived, sent }, each { p50, p90, max } in ms.
 */
export function directCaptureWaits(records, skip = 10) {
  const rows = [];
  for (let i = 0; i + 5 < records.length; i += 6) rows.push(records.slice(i, i + 6));
  const used = rows.slice(skip).filter(([captured]) => Number.isFinite(captured));
  const spread = (xs) => {
    const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
    const at = (p) => v[Math.min(v.length - 1, Math.floor(p * v.length))];
    return { p50: at(0.5), p90: at(0.9), max: v[v.length - 1] };
  };
  return {
    chunks: used.length,
    read: spread(used.map(([captured, , posted]) => posted - captured)),
    arrived: spread(used.map(([captured, , , got]) => got - captured)),
    sent: spread(used.filter((r) => r[4] > 0).map(([captured, , , , , left]) => left - captured)),
  };
}

/** One line for directCaptureWaits' result. */
export function describeWaits(w) {
  const g = ({ p50, p90, max }) => `${p50?.toFixed(1)}/${p90?.toFixed(1)}/${max?.toFixed(1)}`;
  return `after the chunk's timestamp (p50/p90/max ms over ${w.chunks} chunks): read by the capture Worker ${g(w.read)}, `
    + `at the worklet ${g(w.arrived)}, its packet sent ${g(w.sent)}`;
}
