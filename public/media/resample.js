// The capture workers' streaming resampler (capture-worker.js and
// send-worker.js load it with importScripts): a track at another rate than
// the engine's 48 kHz (Chromium's fake device runs at 44.1 kHz, so do some
// microphones) is brought onto 48 kHz by cubic (Catmull-Rom)
// interpolation, flat within 1 dB up to the 8 kHz the wideband codec
// keeps. It keeps the few samples the next chunk needs, so chunk
// boundaries leave no seam.

/* exported resampler */
const RATE_48K = 48000;

/** Streaming resampler onto 48 kHz: keeps the samples the next chunk needs. */
function resampler() {
  let pending = new Float32Array(0);
  let pos = 1;
  return (input, rate) => {
    if (rate === RATE_48K) return input;
    const x = new Float32Array(pending.length + input.length);
    x.set(pending);
    x.set(input, pending.length);
    const step = rate / RATE_48K;
    const out = new Float32Array(Math.ceil((x.length - pos) / step) + 1);
    let n = 0;
    while (pos + 2 < x.length) {
      const i = Math.floor(pos);
      const t = pos - i;
      const y0 = x[i - 1];
      const y1 = x[i];
      const y2 = x[i + 1];
      const y3 = x[i + 2];
      out[n++] = y1 + 0.5 * t * (y2 - y0 + t * (2 * y0 - 5 * y1 + 4 * y2 - y3 + t * (3 * (y1 - y2) + y3 - y0)));
      pos += step;
    }
    const keep = Math.max(0, Math.floor(pos) - 1);
    pending = x.slice(keep);
    pos -= keep;
    return out.slice(0, n);
  };
}
