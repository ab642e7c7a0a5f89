// Side by side with Chromium's own WebRTC audio stack (`cargo xtask bench
// webrtc`): the same fake microphone (speech), the same page clock, the
// same measurement (median lag between the microphone and what plays, over
// half-second windows of speech).
//  - ours: /ccp/media/loopback.html, our engine's whole send chain (no echo
//    canceller, as it is a loopback), packets straight back into its
//    receive chain, out through the worklet;
//  - WebRTC: two RTCPeerConnections in one page over loopback, the browser's
//    echo cancellation, noise suppression and gain on (what a WebRTC
//    softphone uses), Opus at its defaults, the remote track played through
//    the same AudioContext. Its jitter buffer delay comes from getStats().
// Both paths include the browser's capture and playout; neither has a
// network, so the difference is the two stacks' own processing and
// buffering.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser } from '../browser/harness.mjs';
import { speechWav, medianLagMs } from '../browser/audio.mjs';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-webrtc-'));
const mic = speechWav(dir, 'mic', 'Thank you for calling the order desk. Your hoodie shipped on the twelfth of November. Is there anything else I can help you with today?');
const backend = await startBackend();
const SECONDS = 10;

async function ours() {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${mic}`]);
  try {
    const page = await browser.newPage();
    await page.goto(`${backend.url}/ccp/media/loopback.html?autostart`);
    await page.waitForFunction(() => window.loopback.ready || window.loopback.error, null, { timeout: 20000 });
    await page.waitForFunction((n) => window.loopback.output.length >= n, 48000 * SECONDS, { timeout: 60000, polling: 250 });
    return await page.evaluate((n) => ({ input: window.loopback.input.slice(0, n), output: window.loopback.output.slice(0, n) }), 48000 * SECONDS);
  } finally {
    await browser.close();
  }
}

async function webrtc() {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${mic}`]);
  try {
    const page = await browser.newPage();
    await page.goto(`${backend.url}/healthz`); // any page on a trustworthy origin
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
      rec.port.onmessage = (e) => { window.rec.input.push(...e.data[0]); window.rec.output.push(...e.data[1]); };
      await ctx.resume();
    });
    await page.waitForFunction((n) => window.rec.output.length >= n, 48000 * SECONDS, { timeout: 60000, polling: 250 });
    return await page.evaluate(async (n) => {
      let jitterBufferMs = null;
      (await window.rec.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.jitterBufferEmittedCount) {
          jitterBufferMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
        }
      });
      return { input: window.rec.input.slice(0, n), output: window.rec.output.slice(0, n), jitterBufferMs };
    }, 48000 * SECONDS);
  } finally {
    await browser.close();
  }
}

try {
  const mine = await ours();
  const m = medianLagMs(mine.input, mine.output);
  console.log(`ours (Switchboard engine, loopback): ${m.ms?.toFixed(1)} ms mic -> playout (median of ${m.windows} windows)`);
  const theirs = await webrtc();
  const w = medianLagMs(theirs.input, theirs.output);
  console.log(`Chromium WebRTC (AEC/NS/AGC on, loopback peer connection): ${w.ms?.toFixed(1)} ms mic -> playout (median of ${w.windows} windows); its jitter buffer averaged ${theirs.jitterBufferMs?.toFixed(1)} ms`);
} finally {
  backend.stop();
}
