// Audio helpers for browser tests: test speech from espeak-ng, WAV
// parsing, and envelope cross-correlation (10 ms RMS envelopes, robust to
// what Opus, echo cancellation, noise suppression and gain do to a
// waveform, while still pinning down timing).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Speaks `text` into a 48 kHz mono 16-bit WAV in `dir`; returns its path. */
export function speechWav(dir, name, text, voice = 'en-us') {
  const raw = join(dir, `${name}-raw.wav`);
  const out = join(dir, `${name}.wav`);
  execFileSync('espeak-ng', ['-v', voice, '-s', '150', '-w', raw, text]);
  execFileSync('sox', ['-D', raw, '-r', '48000', '-c', '1', '-b', '16', out, 'pad', '0', '0.5']);
  return out;
}

/** 16-bit PCM samples (first channel) and rate of a WAV file or buffer. */
export function readWav(pathOrBuffer) {
  const b = typeof pathOrBuffer === 'string' ? readFileSync(pathOrBuffer) : Buffer.from(pathOrBuffer);
  let i = 12; let rate = 0; let channels = 1;
  while (i + 8 <= b.length) {
    const id = b.toString('ascii', i, i + 4);
    const len = b.readUInt32LE(i + 4);
    if (id === 'fmt ') { channels = b.readUInt16LE(i + 10); rate = b.readUInt32LE(i + 12); }
    if (id === 'data') {
      const n = Math.floor(Math.min(len, b.length - i - 8) / (2 * channels));
      const s = new Float32Array(n);
      for (let k = 0; k < n; k += 1) s[k] = b.readInt16LE(i + 8 + 2 * channels * k) / 32768;
      return { samples: s, rate };
    }
    i += 8 + len + (len & 1);
  }
  throw new Error('no data chunk');
}

/** RMS per 10 ms. */
export function envelope(samples, rate) {
  const hop = Math.round(rate / 100);
  const out = new Float32Array(Math.floor(samples.length / hop));
  for (let f = 0; f < out.length; f += 1) {
    let e = 0;
    for (let k = 0; k < hop; k += 1) { const v = samples[f * hop + k]; e += v * v; }
    out[f] = Math.sqrt(e / hop);
  }
  return out;
}

/**
 * Best normalised correlation of envelope `seg` against `ref` (looped, as
 * a fake microphone loops its file) over every lag; returns { corr, lag }.
 */
export function bestEnvelopeMatch(seg, ref) {
  let best = { corr: -1, lag: 0 };
  const mean = (x) => x.reduce((a, v) => a + v, 0) / x.length;
  const ms = mean(seg);
  for (let lag = 0; lag < ref.length; lag += 1) {
    const window = Array.from(seg, (_, i) => ref[(lag + i) % ref.length]);
    const mr = mean(window);
    let num = 0; let es = 0; let er = 0;
    for (let i = 0; i < seg.length; i += 1) {
      const a = seg[i] - ms; const r = window[i] - mr;
      num += a * r; es += a * a; er += r * r;
    }
    const c = num / Math.sqrt(es * er || 1);
    if (c > best.corr) best = { corr: c, lag };
  }
  return best;
}

/** The lag (in samples, 0..maxLag) at which `b` best matches `a`. */
export function bestLag(a, b, maxLag) {
  let best = { lag: 0, corr: -1 };
  const n = Math.min(a.length, b.length - maxLag);
  for (let lag = 0; lag <= maxLag; lag += 1) {
    let num = 0; let ea = 0; let eb = 0;
    for (let i = 0; i < n; i += 1) { const x = a[i]; const y = b[i + lag]; num += x * y; ea += x * x; eb += y * y; }
    const c = num / Math.sqrt(ea * eb || 1);
    if (c > best.corr) best = { lag, corr: c };
  }
  return best;
}

/**
 * How far `output` lags `input` (both 48 kHz, one clock), in ms: the median
 * over half-second windows with speech in them, matched at 24 kHz up to
 * `maxMs`. Returns { ms, windows }.
 */
export function medianLagMs(input, output, { skipS = 3, maxMs = 300 } = {}) {
  const dec = (x, a, n) => Array.from({ length: n / 2 }, (_, i) => x[a + 2 * i]);
  const maxLag = Math.round(maxMs * 24);
  const lags = [];
  for (let from = 48000 * skipS; from + 24000 + maxLag * 2 <= Math.min(input.length, output.length); from += 24000) {
    let e = 0; for (let i = from; i < from + 24000; i += 1) e += input[i] * input[i];
    if (e / 24000 < 1e-4) continue;
    const m = bestLag(dec(input, from, 24000), dec(output, from, 24000 + maxLag * 2), maxLag);
    if (m.corr > 0.5) lags.push((m.lag * 2) / 48);
  }
  lags.sort((a, b) => a - b);
  return { ms: lags[Math.floor(lags.length / 2)], windows: lags.length };
}
