// Mouth-to-ear delay of a trunk call (issue 13), both ways: baresip calls
// the backend's SIP port (PCMU) and an agent in the CCP (real Chromium)
// answers. baresip's microphone file has an up-chirp every second, the
// agent's fake microphone a down-chirp every second. Each chirp is found
// by a matched filter where it leaves one side and where it reaches the
// other, and both places are put on the host's wall clock:
//   - baresip: its sndfile recordings (`*-enc.wav`, what it encoded from
//     its file; `*-dec.wav`, what it decoded from the backend's RTP) are
//     written as the audio goes; the bench polls their sizes every 2 ms,
//     so sample n was written by the first poll that saw it.
//   - the agent: the engine's tap (`__switchboardTap`: its microphone
//     input and its playout, on the audio clock, posted in 0.5 s chunks);
//     the page logs when each chunk arrived (performance.timeOrigin + now).
// A sample's time is n/rate plus the least-delayed observation's offset
// within 2 s of it. So the figures are from baresip's encoder input to
// the agent's engine output (what the worklet hands to the audio device,
// before the device's own buffer), and from the engine's microphone input
// to baresip's decoder output (before baresip's jitter buffer and device).
// The tap's chunk messages add a few ms of bias (they can only be late).
//
// Run: `node tests/bench/sip-mouth-to-ear.mjs` after `cargo build -p
// switchboard-server` and the CCP (`cargo xtask bench sip-m2e` does all).
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, statSync, readFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBackend, tappedPage } from '../browser/harness.mjs';
import { CcpPage } from '../browser/pages.mjs';
import { baresipPath, freeSipPort, trunkConfig, baresipCalls } from '../browser/baresip.mjs';

const CALL_S = Number(process.env.SIP_M2E_SECONDS || 15);
// `opus` makes baresip call with opus/48000/2 and the trunk prefer Opus
// (an Opus trunk leg, forwarded without transcoding); default PCMU.
const OPUS = process.env.SIP_M2E_CODEC === 'opus';
const CHIRP_S = 0.03;

if (!baresipPath()) {
  console.error('baresip is not installed (Debian baresip-core; `cargo xtask install` installs it)');
  process.exit(2);
}

/** A Hann-windowed linear chirp from f0 to f1 Hz at `rate`. */
function chirp(rate, f0, f1) {
  const n = Math.round(CHIRP_S * rate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 1) {
    const t = i / rate;
    const phase = 2 * Math.PI * (f0 * t + ((f1 - f0) / (2 * CHIRP_S)) * t * t);
    out[i] = 0.5 * Math.sin(phase) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
  }
  return out;
}

/** `seconds` of silence at `rate` with `marker` every second from `at` s. */
function markerTrack(rate, seconds, marker, at) {
  const x = new Float32Array(rate * seconds);
  for (let s = at; s + CHIRP_S < seconds; s += 1) x.set(marker, Math.round(s * rate));
  return x;
}

function writeWav(path, samples, rate, channels = 1) {
  if (channels === 2) samples = Float32Array.from({ length: samples.length * 2 }, (_, i) => samples[i >> 1]);
  const b = Buffer.alloc(44 + samples.length * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + samples.length * 2, 4); b.write('WAVE', 8);
  b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2 * channels, 28); b.writeUInt16LE(2 * channels, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(samples.length * 2, 40);
  samples.forEach((v, i) => b.writeInt16LE(Math.max(-32767, Math.min(32767, Math.round(v * 32767))), 44 + 2 * i));
  writeFileSync(path, b);
}

/** Samples of a 16-bit mono WAV and the byte offset of its data. */
function readPcm(path) {
  const b = readFileSync(path);
  let i = 12;
  while (i + 8 <= b.length) {
    const id = b.toString('ascii', i, i + 4);
    const len = b.readUInt32LE(i + 4);
    if (id === 'data') {
      const n = Math.floor((b.length - i - 8) / 2);
      const s = new Float32Array(n);
      for (let k = 0; k < n; k += 1) s[k] = b.readInt16LE(i + 8 + 2 * k) / 32768;
      return { samples: s, dataAt: i + 8 };
    }
    i += 8 + len + (len & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

/** Where `marker` occurs in `x` (normalised matched filter above `min`), one per second at most. */
function findMarkers(x, marker, min = 0.5) {
  const m = marker.length;
  const em = Math.sqrt(marker.reduce((a, v) => a + v * v, 0));
  const score = new Float32Array(Math.max(0, x.length - m));
  let ex = 0;
  for (let i = 0; i < m && i < x.length; i += 1) ex += x[i] * x[i];
  for (let n = 0; n < score.length; n += 1) {
    let dot = 0;
    for (let i = 0; i < m; i += 1) dot += x[n + i] * marker[i];
    score[n] = ex > 1e-9 ? dot / (em * Math.sqrt(ex)) : 0;
    ex += x[n + m] * x[n + m] - x[n] * x[n];
  }
  const found = [];
  let n = 0;
  while (n < score.length) {
    if (score[n] < min) { n += 1; continue; }
    // The best score within the next 300 ms.
    let best = n;
    for (let k = n; k < Math.min(score.length, n + 2400); k += 1) if (score[k] > score[best]) best = k;
    found.push({ at: best, score: score[best] });
    n = best + 4000;
  }
  return found;
}

/** Wall time (ms) of sample `n` of a stream at `rate` from its growth log [[wallMs, count]]. */
function wallOf(log, n, rate) {
  let offset = Infinity;
  for (const [w, c] of log) {
    if (c > n && c - n < 2 * rate) offset = Math.min(offset, w - (c * 1000) / rate);
  }
  return Number.isFinite(offset) ? offset + (n * 1000) / rate : NaN;
}

/** Each sent marker paired with the first received one 0..900 ms after it: delays in ms. */
function pair(sentMs, gotMs) {
  const d = [];
  for (const s of sentMs) {
    const g = gotMs.find((t) => t > s && t - s < 900);
    if (g !== undefined) d.push(g - s);
  }
  console.log(`  in call order: ${d.map((v) => v.toFixed(0)).join(' ')}`);
  return d.sort((a, b) => a - b);
}

const stat = (d) => (d.length ? {
  n: d.length, median: d[d.length >> 1], min: d[0], max: d[d.length - 1],
} : { n: 0 });

const dir = mkdtempSync(join(tmpdir(), 'switchboard-sip-m2e-'));
const up8 = chirp(8000, 500, 3000);
const down8 = chirp(8000, 3000, 500);
const callerWav = join(dir, OPUS ? 'caller-48k2.wav' : 'caller-8k.wav');
if (OPUS) writeWav(callerWav, markerTrack(48000, CALL_S + 20, chirp(48000, 500, 3000), 0.25), 48000, 2);
else writeWav(callerWav, markerTrack(8000, CALL_S + 20, up8, 0.25), 8000);
const agentWav = join(dir, 'agent-48k.wav');
writeWav(agentWav, markerTrack(48000, 10, chirp(48000, 3000, 500), 0.75), 48000);

const load = loadavg().map((v) => v.toFixed(2)).join(' ');
const sipPort = await freeSipPort();
const backend = await startBackend('', {
  extraConfig: OPUS ? trunkConfig(sipPort, undefined, '"Opus", "PCMU", "telephone-event"') : trunkConfig(sipPort),
});
const { browser, page } = await tappedPage(agentWav);
let phone;
try {
  await page.addInitScript(() => {
    globalThis.__tapLog = [];
    let last = 0;
    setInterval(() => {
      const n = (globalThis.__switchboardTapOutput || []).length;
      if (n !== last) { globalThis.__tapLog.push([performance.timeOrigin + performance.now(), n]); last = n; }
    }, 2);
  });
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  const phoneDir = join(dir, 'phone');
  mkdirSync(phoneDir, { recursive: true });
  phone = await baresipCalls(phoneDir, callerWav, sipPort, CALL_S + 60, OPUS ? 'opus/48000/2' : 'pcmu');
  // baresip's recordings grow as the audio goes: their sizes, every 2 ms.
  const fileLog = { enc: [], dec: [] };
  const lastSize = { enc: 0, dec: 0 };
  const files = {};
  const poller = setInterval(() => {
    for (const kind of ['enc', 'dec']) {
      if (!files[kind]) {
        const name = (() => { try { return readdirSync(phone.recDir).find((f) => f.endsWith(`-${kind}.wav`)); } catch { return null; } })();
        if (!name) continue;
        files[kind] = join(phone.recDir, name);
      }
      let size = 0;
      try { size = statSync(files[kind]).size; } catch { continue; }
      if (size !== lastSize[kind]) { fileLog[kind].push([performance.timeOrigin + performance.now(), size]); lastSize[kind] = size; }
    }
  }, 2);
  await ccp.expectContactState('incoming');
  await ccp.click('accept');
  await ccp.expectContactState('connected');
  await page.waitForFunction((s) => (globalThis.__switchboardTapOutput || []).length >= 48000 * s, CALL_S, { timeout: 120000, polling: 500 });
  // The page's tap at 8 kHz (mean of 6: the chirps are below 3 kHz), as
  // base64 16-bit: a few hundred thousand numbers as JSON are slow.
  const tap = await page.evaluate(() => {
    const pack = (x) => {
      const n = Math.floor(x.length / 6);
      const b = new Int16Array(n);
      for (let i = 0; i < n; i += 1) {
        let s = 0;
        for (let k = 0; k < 6; k += 1) s += x[6 * i + k];
        b[i] = Math.max(-32767, Math.min(32767, Math.round((s / 6) * 32767)));
      }
      let str = '';
      const bytes = new Uint8Array(b.buffer);
      for (let i = 0; i < bytes.length; i += 8192) str += String.fromCharCode(...bytes.subarray(i, i + 8192));
      return btoa(str);
    };
    return {
      input: pack(globalThis.__switchboardTapInput),
      output: pack(globalThis.__switchboardTapOutput),
      log: globalThis.__tapLog,
      stats: globalThis.__switchboardStats,
    };
  });
  await ccp.endAndClear();
  await phone.stop();
  clearInterval(poller);

  const unpack = (s) => {
    const b = Buffer.from(s, 'base64');
    const x = new Float32Array(b.length / 2);
    for (let i = 0; i < x.length; i += 1) x[i] = b.readInt16LE(2 * i) / 32768;
    return x;
  };
  // The tap log counts 48 kHz samples; the tap is at 8 kHz here.
  const tapLog = tap.log.map(([w, c]) => [w, c / 6]);
  // baresip records what its codec runs at: 8 kHz mono for G.711, 48 kHz
  // stereo for Opus, brought to 8 kHz mono (mean of 6 frames) here.
  const per8k = OPUS ? 12 : 1;
  const to8k = (r) => {
    if (per8k === 1) return r;
    const n = Math.floor(r.samples.length / per8k);
    const s = new Float32Array(n);
    for (let i = 0; i < n; i += 1) {
      let a = 0;
      for (let k = 0; k < per8k; k += 1) a += r.samples[per8k * i + k];
      s[i] = a / per8k;
    }
    return { samples: s, dataAt: r.dataAt };
  };
  const enc = to8k(readPcm(files.enc));
  const dec = to8k(readPcm(files.dec));
  const sizeLog = (log, dataAt) => log.map(([w, size]) => [w, Math.max(0, (size - dataAt) / 2 / per8k)]);
  const times = (markers, log) => markers.map((m) => wallOf(log, m.at + up8.length, 8000)).filter(Number.isFinite);
  // A marker's time is that of its last sample (when all of it was there).
  const sentUp = times(findMarkers(enc.samples, up8), sizeLog(fileLog.enc, enc.dataAt));
  const gotUp = times(findMarkers(unpack(tap.output), up8), tapLog);
  const sentDown = times(findMarkers(unpack(tap.input), down8), tapLog);
  const gotDown = times(findMarkers(dec.samples, down8), sizeLog(fileLog.dec, dec.dataAt));
  const toAgent = stat(pair(sentUp, gotUp));
  const toPhone = stat(pair(sentDown, gotDown));
  const fmt = (s) => (s.n ? `median ${s.median.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)}, ${s.n} markers)` : 'no markers matched');
  console.log(`codec: ${OPUS ? 'Opus (opus/48000/2)' : 'PCMU'}`);
  console.log(`load average at start: ${load}; at end: ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  console.log(`markers: baresip sent ${sentUp.length}, agent played ${gotUp.length}; agent's microphone ${sentDown.length}, baresip decoded ${gotDown.length}`);
  console.log(`baresip -> agent playout: ${fmt(toAgent)}`);
  console.log(`agent microphone -> baresip decoder: ${fmt(toPhone)}`);
  if (toAgent.n && toPhone.n) console.log(`round trip (sum of medians): ${(toAgent.median + toPhone.median).toFixed(0)} ms`);
  console.log(`engine stats at the end: ${JSON.stringify(tap.stats)}`);
} finally {
  await phone?.stop();
  await browser.close();
  backend.stop();
}
