// Side by side with Chromium's own WebRTC audio stack (`cargo xtask bench
// webrtc [RUNS]`): the same fake microphone (speech), the same measurement
// (median lag between the microphone and what plays, over half-second
// windows of speech), RUNS (default 5) interleaved runs of each, each run
// in a fresh browser.
//  - ours: our engine's whole send chain with its echo canceller and noise
//    suppression ON (as the browser's are below), its packets straight back
//    into its receive chain (through a Worker, as the CCP's media worker
//    carries them; `main` as the third argument: over the page's main
//    thread, as before), out through the worklet; three ways of capturing
//    per run: the engine split (`capture: 'worker'`, the send half in a
//    Worker reading the capture track), direct capture (`'direct'`: the
//    track's chunks processed by the worklet as they arrive), and the
//    AudioContext's microphone (`'worklet'`);
//  - WebRTC: two RTCPeerConnections in one page over loopback, the browser's
//    echo cancellation, noise suppression and gain on (what a WebRTC
//    softphone uses), Opus at its defaults. Its jitter buffer delay comes
//    from getStats().
// Two reference points, both reported:
//  - capture track: MediaStreamTrackProcessor on the microphone's own track
//    (AudioData timestamps, which Chromium gives on the page's performance
//    clock) to the moment the played audio is produced: for WebRTC the
//    remote track's AudioData timestamps; for ours the worklet's output,
//    its AudioContext time mapped to the performance clock with
//    getOutputTimestamp() less the output latency (the device's own delay
//    counts for neither). This is what the user's voice waits for: WebRTC
//    reads the capture track directly, our engine only once Chromium has
//    handed the microphone to the AudioContext (the hand-off, reported).
//  - AudioContext tap: an AudioWorklet sees the microphone and the played
//    audio on the audio clock (the engine's own tap for ours, a recorder
//    worklet for WebRTC). Both already paid the capture hand-off.
// Neither path has a network, so the difference is the two stacks' own
// processing and buffering.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser } from '../browser/harness.mjs';
import { speechWav, medianLagMs } from '../browser/audio.mjs';
import { PAGE_HELPERS, directCaptureWaits, describeWaits } from './capture-track.mjs';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-webrtc-'));
const mic = speechWav(dir, 'mic', 'Thank you for calling the order desk. Your hoodie shipped on the twelfth of November. Is there anything else I can help you with today?');
const backend = await startBackend('', { crm: true });
const SECONDS = 10;
const RUNS = Math.max(1, Number(process.argv[2]) || 5);
// Our packet duration (`node tests/bench/webrtc.mjs RUNS PACKET_MS`): 10 ms
// by default, what the CCP sends when the backend grants it (the
// `welcome`'s `packet_ms`, which our backend grants to every client that
// offers 10); 20 to compare with the figures taken before 10 ms packets.
const PACKET_MS = Number(process.argv[3]) === 20 ? 20 : 10;

// Page-side helpers (trackRecorder, trackPair, contextClock,
// placeRendered), installed before either stack starts: shared with
// `bench calls` (tests/bench/capture-track.mjs).

// Our loopback's network: a Worker that sends every packet straight back
// (worklet or send worker -> MessagePort -> this Worker -> MessagePort ->
// worklet), as the CCP's media worker carries them to and from its socket,
// so no packet waits on the page's main thread (WebRTC's go over UDP on
// loopback, off the main thread too). `node tests/bench/webrtc.mjs RUNS
// PACKET_MS main` keeps the old main-thread loop for comparison.
const LOOP = process.argv[4] === 'main' ? 'main' : 'worker';
const ECHO_WORKER = `onmessage = (e) => {
  const { port, send } = e.data || {};
  if (!port) return;
  const back = (m) => { if (m.data instanceof ArrayBuffer) port.postMessage(m.data, [m.data]); };
  port.onmessage = back;
  if (send) { send.onmessage = back; send.postMessage({ type: 'open' }); }
  port.postMessage({ type: 'open' });
  postMessage({ type: 'open' });
};`;

async function ours(capture = 'worklet') {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${mic}`]);
  try {
    const page = await browser.newPage();
    // The demo origin serves the engine at /media/ (the loopback page's).
    await page.goto(`${backend.crmUrl}/phone/loopback.html`);
    await page.evaluate(PAGE_HELPERS);
    const latency = await page.evaluate(async ({ capture, packetMs, loop, echoWorker }) => {
      const { startEngine } = await import('/media/engine.js');
      window.rec = { input: [], output: [], engine: null, tapIn: [], tapOut: [], waits: [] };
      const engine = await startEngine({
        wasmUrl: '/media/engine.wasm', workletUrl: '/media/worklet.js', leg: 1, tapSeconds: 1, echo: true, capture, packetMs,
        onPacket: (frame) => { if (window.rec.engine) window.rec.engine.receive(frame); },
        onStats: (st) => { window.rec.stats = st; if (window.rec.statsResolve) { window.rec.statsResolve(st); window.rec.statsResolve = null; } },
        onTap: (inp, out, time, capture) => {
          window.rec.input.push(...inp);
          window.rec.output.push(...out);
          // Direct capture: where each chunk waited (worklet.js, onDirect).
          if (capture) window.rec.waits.push(...capture);
          if (typeof time !== 'number') return;
          window.rec.tapIn.push({ time, rate: 48000, data: inp });
          window.rec.tapOut.push({ time, rate: 48000, data: out });
        },
      });
      window.rec.engine = engine;
      // The tap's chunks go onto the performance clock through the
      // context's own mapping of its clock to the device's.
      window.rec.offsets = window.contextClock(engine.context);
      window.rec.loop = 'main';
      if (loop === 'worker') {
        const workerUrl = URL.createObjectURL(new Blob([echoWorker], { type: 'text/javascript' }));
        window.rec.loop = await engine.useMediaSocket({ url: 'ws://127.0.0.1:9/unused', ticket: 'loopback', workerUrl });
      }
      engine.onStatsWanted = () => new Promise((resolve) => { window.rec.statsResolve = resolve; engine.requestStats(); });
      window.rec.trackIn = window.trackRecorder(engine.stream.getAudioTracks()[0]);
      window.rec.trackOut = window.rec.tapOut;
      window.rec.capture = engine.capture;
      return engine.addedLatencyMs;
    }, { capture, packetMs: PACKET_MS, loop: LOOP, echoWorker: ECHO_WORKER });
    await page.waitForFunction((n) => window.rec.output.length >= n + 48000, 48000 * SECONDS, { timeout: 60000, polling: 250 });
    const r = await page.evaluate((s) => {
      const { context } = window.rec.engine;
      const outputLatencyMs = 1000 * (context.outputLatency || 0);
      // Rendered = played at the device less the output latency.
      const place = (chunks) => window.placeRendered(chunks, context, window.rec.offsets);
      return {
        waits: window.rec.waits.slice(),
        input: window.rec.input.slice(0, 48000 * s),
        output: window.rec.output.slice(0, 48000 * s),
        track: window.trackPair(window.rec.trackIn, place(window.rec.tapOut), s),
        handoff: window.trackPair(window.rec.trackIn, place(window.rec.tapIn), s),
        outputLatencyMs,
      };
    }, SECONDS);
    const mode = await page.evaluate(() => window.rec.engine.capture);
    const loop = await page.evaluate(() => window.rec.loop);
    const stats = await page.evaluate(() => window.rec.engine.onStatsWanted());
    return { ...r, latency, mode, loop, stats };
  } finally {
    await browser.close();
  }
}

async function webrtc() {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${mic}`]);
  try {
    const page = await browser.newPage();
    await page.goto(`${backend.url}/healthz`); // any page on a trustworthy origin
    await page.evaluate(PAGE_HELPERS);
    await page.evaluate(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      const a = new RTCPeerConnection();
      const b = new RTCPeerConnection();
      a.onicecandidate = (e) => { if (e.candidate) b.addIceCandidate(e.candidate); };
      b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate); };
      const remote = new Promise((resolve) => { b.ontrack = (e) => resolve(e.streams[0]); });
      for (const t of stream.getAudioTracks()) a.addTrack(t, stream);
      await a.setLocalDescription(await a.createOffer());
      await b.setRemoteDescription(a.localDescription);
      await b.setLocalDescription(await b.createAnswer());
      await a.setRemoteDescription(b.localDescription);
      const remoteStream = await remote;
      // Chromium only feeds a remote track into Web Audio while a media
      // element plays it.
      const sink = new Audio();
      sink.muted = true;
      sink.srcObject = remoteStream;
      await sink.play();
      const ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
      const code = `registerProcessor('rec', class extends AudioWorkletProcessor {
        process(inputs) {
          const z = new Float32Array(128);
          this.port.postMessage([(inputs[0][0] || z).slice(), (inputs[1][0] || z).slice()]);
          return true;
        }
      });`;
      await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
      const rec = new AudioWorkletNode(ctx, 'rec', { numberOfInputs: 2, numberOfOutputs: 1 });
      ctx.createMediaStreamSource(stream).connect(rec, 0, 0);
      ctx.createMediaStreamSource(remoteStream).connect(rec, 0, 1);
      const mute = ctx.createGain();
      mute.gain.value = 0;
      rec.connect(mute).connect(ctx.destination);
      window.rec = { input: [], output: [], pc: b };
      window.rec.trackIn = window.trackRecorder(stream.getAudioTracks()[0]);
      window.rec.trackOut = window.trackRecorder(remoteStream.getAudioTracks()[0]);
      rec.port.onmessage = (e) => { window.rec.input.push(...e.data[0]); window.rec.output.push(...e.data[1]); };
      await ctx.resume();
    });
    await page.waitForFunction((n) => window.rec.output.length >= n && window.rec.trackOut.length >= n / 480 + 50, 48000 * SECONDS, { timeout: 60000, polling: 250 });
    return await page.evaluate(async (s) => {
      let jitterBufferMs = null;
      (await window.rec.pc.getStats()).forEach((st) => {
        if (st.type === 'inbound-rtp' && st.kind === 'audio' && st.jitterBufferEmittedCount) {
          jitterBufferMs = (1000 * st.jitterBufferDelay) / st.jitterBufferEmittedCount;
        }
      });
      return {
        input: window.rec.input.slice(0, 48000 * s),
        output: window.rec.output.slice(0, 48000 * s),
        track: window.trackPair(window.rec.trackIn, window.rec.trackOut, s),
        jitterBufferMs,
      };
    }, SECONDS);
  } finally {
    await browser.close();
  }
}

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
// The receive side's stages at the end of a run (the engine's stats).
const stagesOf = (r) => {
  const s = r.stats || {};
  return `jitter buffer: delay ${f(s.bufferDelayMs)} ms, target ${f(s.targetDelayMs)} ms, jitter ${f(s.jitterMs)} ms, late ${s.late}, grows ${s.grows}, shrinks ${s.shrinks}`;
};

console.log(`our engine sends ${PACKET_MS} ms packets; its loopback goes through ${LOOP === 'main' ? "the page's main thread" : 'a Worker'}`);
try {
  const rows = { ours: { tap: [], track: [] }, oursTrack: { tap: [], track: [] }, oursSplit: { tap: [], track: [] }, webrtc: { tap: [], track: [] } };
  for (let run = 1; run <= RUNS; run += 1) {
    // Our engine with track capture (MediaStreamTrackProcessor in a
    // Worker, straight to the worklet), then the AudioContext capture,
    // then WebRTC.
    // The split engine: capture, send chain and packets in a Worker
    // reading the capture track; the worklet only plays.
    const split = await ours('worker');
    const sk = medianLagMs(split.track.input, split.track.output, { maxMs: 600 });
    const st = medianLagMs(split.input, split.output, { maxMs: 600 });
    rows.oursSplit.track.push(sk.ms);
    rows.oursSplit.tap.push(st.ms);
    console.log(`run ${run} ours, send half in a Worker (${split.mode}, loop ${split.loop}; declares ${f(split.latency)} ms): capture track -> playout ${f(sk.ms)} ms (${sk.windows} windows); AudioContext tap ${f(st.ms)} ms; ${stagesOf(split)}`);
    const viaTrack = await ours('direct');
    const vk = medianLagMs(viaTrack.track.input, viaTrack.track.output, { maxMs: 600 });
    const vt = medianLagMs(viaTrack.input, viaTrack.output, { maxMs: 600 });
    rows.oursTrack.track.push(vk.ms);
    rows.oursTrack.tap.push(vt.ms);
    console.log(`run ${run} ours, direct capture (${viaTrack.mode}, loop ${viaTrack.loop}; ${stagesOf(viaTrack)}; declares ${f(viaTrack.latency)} ms): capture track -> playout ${f(vk.ms)} ms (${vk.windows} windows); `
      // The tap's input is the AudioContext's microphone, which direct
      // capture does not use: the hand-off is the AudioContext's, and the
      // direct path's own waits come from the engine's records.
      + `AudioContext tap ${f(vt.ms)} ms; the AudioContext's hand-off (not on this path) ${f(medianLagMs(viaTrack.handoff.input, viaTrack.handoff.output, { maxMs: 600 }).ms)} ms; `
      + `direct path: ${describeWaits(directCaptureWaits(viaTrack.waits))}`);
    const mine = await ours();
    const mt = medianLagMs(mine.input, mine.output, { maxMs: 600 });
    const mk = medianLagMs(mine.track.input, mine.track.output, { maxMs: 600 });
    const mh = medianLagMs(mine.handoff.input, mine.handoff.output, { maxMs: 600 });
    rows.ours.tap.push(mt.ms);
    rows.ours.track.push(mk.ms);
    console.log(`run ${run} ours (engine loopback, AEC+NS on, loop ${mine.loop}; ${stagesOf(mine)}; declares ${f(mine.latency)} ms): capture track -> playout ${f(mk.ms)} ms (${mk.windows} windows); AudioContext tap ${f(mt.ms)} ms (${mt.windows} windows); capture hand-off ${f(mh.ms)} ms; output latency ${f(mine.outputLatencyMs)} ms`);
    const theirs = await webrtc();
    const wt = medianLagMs(theirs.input, theirs.output, { maxMs: 600 });
    const wk = medianLagMs(theirs.track.input, theirs.track.output, { maxMs: 600 });
    rows.webrtc.tap.push(wt.ms);
    rows.webrtc.track.push(wk.ms);
    console.log(`run ${run} Chromium WebRTC (AEC/NS/AGC on, loopback peer connection): capture track -> playout ${f(wk.ms)} ms (${wk.windows} windows); AudioContext tap ${f(wt.ms)} ms (${wt.windows} windows); jitter buffer ${f(theirs.jitterBufferMs)} ms`);
  }
  for (const point of ['track', 'tap']) {
    const o = median(rows.oursSplit[point]);
    const w = median(rows.webrtc[point]);
    const pairs = rows.oursSplit[point].map((x, i) => x / rows.webrtc[point][i]);
    console.log(`${point === 'track' ? 'capture track' : 'AudioContext tap'}, ours with the send half in a Worker: median ${f(o)} ms, WebRTC median ${f(w)} ms over ${RUNS} interleaved runs; ratio of medians ${(o / w).toFixed(2)}, per-run ratios ${pairs.map((x) => x.toFixed(2)).join(' ')}`);
  }
  {
    const o = median(rows.oursTrack.track);
    const w = median(rows.webrtc.track);
    const pairs = rows.oursTrack.track.map((x, i) => x / rows.webrtc.track[i]);
    console.log(`capture track, ours with direct capture: median ${f(o)} ms, WebRTC median ${f(w)} ms over ${RUNS} interleaved runs; ratio of medians ${(o / w).toFixed(2)}, per-run ratios ${pairs.map((x) => x.toFixed(2)).join(' ')}`);
  }
  for (const point of ['track', 'tap']) {
    const o = median(rows.ours[point]);
    const w = median(rows.webrtc[point]);
    const pairs = rows.ours[point].map((x, i) => x / rows.webrtc[point][i]);
    console.log(`${point === 'track' ? 'capture track' : 'AudioContext tap'}: ours median ${f(o)} ms, WebRTC median ${f(w)} ms over ${RUNS} interleaved runs; ratio of medians ${(o / w).toFixed(2)}, per-run ratios ${pairs.map((x) => x.toFixed(2)).join(' ')}`);
  }
} finally {
  backend.stop();
}
