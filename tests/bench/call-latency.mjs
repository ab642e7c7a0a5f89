// Call benchmarks in headless Chromium against the real backend:
//  - mouth-to-ear: the agent's fake microphone speaks into a call whose
//    simulated caller is an echo line, so the lag between the microphone
//    and what the agent's page plays is the round trip agent -> backend
//    -> caller -> backend -> agent; one way is half. Measured from the
//    capture track (what the user's voice actually waits for: the CCP
//    captures from it directly), its chunks' timestamps against the
//    rendered audio on the page's clock (tests/bench/capture-track.mjs,
//    as `bench webrtc` does), and, beside it, from the AudioContext tap
//    (the worklet's microphone input and output on one clock), which on
//    the direct path runs behind the real input by Chromium's capture
//    hand-off (also reported). `SB_M2E_CALLS` (default 3) echo calls.
//  - call set-up: from the click on Accept to the caller's prompt
//    playing in the agent's page (five calls; the CCP prepares the engine
//    while the call rings, so this is what is left after accepting).
// Run by `cargo xtask bench calls` (which builds what it needs).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser, api } from '../browser/harness.mjs';
import { CcpPage } from '../browser/pages.mjs';
import { loadavg } from 'node:os';
import { speechWav, medianLagMs } from '../browser/audio.mjs';
import { PAGE_HELPERS, watchEngineMedia, engineTrackPair } from './capture-track.mjs';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-'));
const mic = speechWav(dir, 'agent', 'This is a latency measurement. One, two, three, four, five, six, seven, eight, nine, ten.');
const backend = await startBackend();


// `SB_CALLS_AB=1`: the call set-up alternates (ten calls) between the
// CCP as it is (the media socket opened while the call rings) and the
// media socket opened once the engine has started, as before; each half
// is reported on its own.
const AB = process.env.SB_CALLS_AB === '1';

async function call(play, seconds, { socketAtStart = false, track = false } = {}) {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${mic}`]);
  const context = await browser.newContext();
  if (track) {
    await context.addInitScript(PAGE_HELPERS);
    await context.addInitScript(watchEngineMedia);
  }
  await context.addInitScript((atStart) => {
    if (atStart) globalThis.__switchboardMediaSocketAtStart = true;
    globalThis.__switchboardTap = true;
    // The click itself (Playwright's own checks before it are not the agent's wait).
    document.addEventListener('click', (e) => {
      if (e.target.closest && e.target.closest('[data-testid="accept"]') && globalThis.__clickAt === undefined) {
        globalThis.__clickAt = performance.now();
      }
    }, true);
    // The first media frame the page's socket receives after the click.
    const Native = WebSocket;
    globalThis.WebSocket = function Timed(url, protocols) {
      const ws = new Native(url, protocols);
      ws.addEventListener('message', (e) => {
        if (typeof e.data !== 'string' && globalThis.__acceptAt !== undefined && globalThis.__firstWire === undefined) {
          globalThis.__firstWire = performance.now();
        }
      });
      return ws;
    };
    Object.assign(globalThis.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
    globalThis.WebSocket.prototype = Native.prototype;
  }, socketAtStart);
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+15550001111', queue: 'support', ...(play === undefined ? {} : { play }) });
  await ccp.expectContactState('incoming');
  const acceptAt = await page.evaluate(() => { globalThis.__acceptAt = performance.now(); return globalThis.__acceptAt; });
  await ccp.click('accept');
  await page.waitForFunction((n) => (globalThis.__switchboardTapOutput || []).length >= n, 48000 * seconds, { timeout: 60000, polling: 250 });
  const r = await page.evaluate(() => ({
    input: globalThis.__switchboardTapInput.slice(), output: globalThis.__switchboardTapOutput.slice(),
    startedAt: globalThis.__switchboardEngineStartedAt, stats: globalThis.__switchboardStats,
    timeline: { ...globalThis.__switchboardTimeline, firstWire: globalThis.__firstWire, clickAt: globalThis.__clickAt },
  }));
  if (track) {
    // The capture track against what was rendered (playout), and against
    // the tap's microphone input (the AudioContext's capture hand-off).
    const tapTime = r.timeline.tapTime;
    const s = Math.floor(r.output.length / 48000);
    r.track = await page.evaluate(engineTrackPair, { tapTime, output: r.output, seconds: s });
    r.handoff = await page.evaluate(engineTrackPair, { tapTime, output: r.input, seconds: s });
  }
  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await browser.close();
  await api(backend.url, 'DELETE', `/v1/sim/calls/${placed.json.contact_id}`);
  return { ...r, acceptAt };
}

// Mouth-to-ear through an echo line.
{
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  const median = (xs) => {
    const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const calls = Math.max(1, Number(process.env.SB_M2E_CALLS) || 3);
  const fromTrack = [];
  const fromTap = [];
  console.log(`load average at the start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (let i = 1; i <= calls; i += 1) {
    const { input, output, stats, track, handoff } = await call('echo', 10, { track: true });
    const tap = medianLagMs(input, output, { maxMs: 600 });
    const k = medianLagMs(track.input, track.output, { maxMs: 600 });
    const h = medianLagMs(handoff.input, handoff.output, { maxMs: 600 });
    fromTrack.push(k.ms / 2);
    fromTap.push(tap.ms / 2);
    console.log(`call ${i} (capture ${stats?.capture}): round trip agent -> backend -> echo caller -> agent from the capture track ${f(k.ms)} ms (${k.windows} windows), one way ${f(k.ms / 2)} ms; `
      + `from the AudioContext tap ${f(tap.ms)} ms (${tap.windows} windows), one way ${f(tap.ms / 2)} ms; capture track -> AudioContext tap input ${f(h.ms)} ms; `
      + `agent jitter buffer target ${f(stats?.targetDelayMs)} ms, delay ${f(stats?.bufferDelayMs)} ms`);
  }
  console.log(`mouth to ear one way over ${calls} calls: from the capture track median ${f(median(fromTrack))} ms (${fromTrack.map(f).join(', ')}); `
    + `from the AudioContext tap median ${f(median(fromTap))} ms (${fromTap.map(f).join(', ')}); load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

// Call set-up: accept -> the caller's prompt audible in the agent's page.
const halves = AB ? [{ socketAtStart: false, runs: [], steps: [] }, { socketAtStart: true, runs: [], steps: [] }]
  : [{ socketAtStart: false, runs: [], steps: [] }];
for (let i = 0; i < 5; i += 1) {
  for (const half of halves) {
    const { runs, steps } = half;
    const { output, startedAt, acceptAt, timeline: t } = await call(undefined, 3, half);
    const first = output.findIndex((v) => Math.abs(v) > 0.01);
    runs.push(startedAt - acceptAt + (first / 48));
    // Each step since the click, on the page's clock; the first audible
    // sample is put on it through the audio clock at the engine's start.
    const at = (v) => (v === undefined ? NaN : v - t.clickAt);
    const onPage = (audioTime) => t.ready + (audioTime - t.readyAudioTime) * 1000;
    const audible = onPage(t.tapTime + first / 48000);
    steps.push({
      click: t.clickAt - acceptAt, leg: at(t.start), prepared: at(t.prepared), ready: at(t.ready),
      wire: at(t.firstWire), frame: at(onPage(t.firstFrameAudioTime)), sent: at(t.firstSent), audible: at(audible),
    });
  }
}
for (const { socketAtStart, runs, steps } of halves) {
  if (AB) console.log(socketAtStart ? 'media socket opened once the engine started (as before):' : 'media socket opened while the call rings:');
  const names = ['click', 'leg', 'prepared', 'ready', 'wire', 'frame', 'sent', 'audible'];
  console.log('accept: Playwright\'s click (from its call to the click event) | then from the click event: leg known | prepared engine awaited | engine ready | first frame on the page\'s socket (NaN: none, all came on the media socket) | first frame into the worklet (either path) | first packet sent | first caller audio played');
  for (const s of steps) console.log(`  ${names.map((n) => s[n].toFixed(0)).join(' | ')}`);
  const med = (k) => steps.map((s) => s[k]).sort((a, b) => a - b)[2];
  console.log(`  medians: ${names.map((n) => `${n} ${med(n).toFixed(0)}`).join(', ')}`);
  runs.sort((a, b) => a - b);
  console.log(`accept -> first caller audio at the agent: ${runs.map((v) => v.toFixed(0)).join(', ')} ms (median ${runs[2].toFixed(0)} ms)`);
}
backend.stop();
