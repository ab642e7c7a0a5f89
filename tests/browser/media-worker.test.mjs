// Media frames off the page's main thread (issue 16: "media frames do not
// wait on the page's main thread where the browser lets them avoid it";
// docs/protocol.md section 8, "Media socket"). During a CCP call the page
// asks the control socket for a media ticket and a Worker opens the media
// socket; frames then go worklet <-> worker <-> socket. The page's main
// thread is then blocked for 300 ms, eight times, and the engine's own
// counters must show no frame held (`netHolds`: a frame reaching the
// worklet over 200 ms after the one before) more often than the same busy
// loops run in a Worker cause: neither direction waited on the main
// thread (the caller is an echo line, so the agent's own packets come
// back: a held send shows up as a held arrival too). With the worker path
// turned off (the fallback, frames over the control socket on the main
// thread) the same counter sees every stall, which shows the measure can
// fail, and the call still has audio both ways. Late frames and jitter
// buffer growth are logged for comparison, not judged: load alone makes
// them on this two-core machine.
//
// The microphone does not wait on the main thread either (issue 16): the
// CCP captures directly by default (the capture track's
// MediaStreamTrackProcessor stream, transferred to a Worker, which
// Chromium then feeds on that Worker's thread; each chunk goes to the
// audio thread, is processed there and sent), so under the same stalls no
// capture chunk is held (`captureHolds`) and no more microphone audio is
// lost (`captureLostMs`, the audio in the chunks the engine never got)
// than the same busy loops in a Worker cause.
// `SB_STALL_CAPTURE=worklet,worker`
// also runs the other capture paths (the AudioContext's microphone, the
// engine split) under the stalls and logs their figures, for comparing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { speechWav } from './audio.mjs';
import { before, after } from 'node:test';

let backend;
let browser;

before(async () => {
  backend = await startBackend();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-mw-'));
  const wav = speechWav(dir, 'agent', 'One two three four five six seven eight nine ten. The order shipped on Monday and should arrive on Thursday.');
  browser = await launchBrowser([`--use-file-for-fake-audio-capture=${wav}`]);
});

after(async () => {
  await browser?.close();
  backend?.stop();
});

/** The engine's next stats report (posted once a second), after now. */
async function freshStats(page) {
  await page.evaluate(() => { globalThis.__statsSeen = globalThis.__switchboardStats; });
  await page.waitForFunction(() => globalThis.__switchboardStats !== globalThis.__statsSeen, null, { timeout: 10000, polling: 50 });
  return page.evaluate(() => ({ ...globalThis.__switchboardStats }));
}

/** Blocks the page's main thread `times` x 300 ms, 200 ms apart. */
async function stallMainThread(page, times) {
  await page.evaluate((n) => new Promise((resolve) => {
    let left = n;
    const stall = () => {
      const t = performance.now();
      while (performance.now() - t < 300) { /* a long task */ }
      left -= 1;
      if (left === 0) resolve();
      else setTimeout(stall, 200);
    };
    setTimeout(stall, 0);
  }), times);
}

// The same busy loops in a Worker of the page: as much CPU taken from
// the machine's two cores, with the main thread free. What the stalls
// make late beyond this is what waited on the main thread.
const STALL_WORKER = `onmessage = (e) => {
  let left = e.data;
  const stall = () => {
    const t = performance.now();
    while (performance.now() - t < 300) { /* a long task */ }
    left -= 1;
    if (left === 0) postMessage('done');
    else setTimeout(stall, 200);
  };
  setTimeout(stall, 0);
};`;

/** `times` x 300 ms busy loops, 200 ms apart, in a Worker (served same-origin for the CSP). */
async function stallWorker(page, times) {
  await page.evaluate((n) => new Promise((resolve, reject) => {
    const w = new Worker('/__stall-worker.js');
    w.onmessage = () => { w.terminate(); resolve(); };
    w.onerror = (e) => reject(new Error(`stall worker: ${e.message}`));
    w.postMessage(n);
  }), times);
}

async function callUnderStalls({ mainThreadOnly, capture }) {
  const context = await browser.newContext();
  await context.route('**/__stall-worker.js', (route) => route.fulfill({ status: 200, contentType: 'text/javascript', body: STALL_WORKER }));
  await context.addInitScript(({ main, capture }) => {
    globalThis.__switchboardTap = true;
    if (main) globalThis.__switchboardMainThreadMedia = true;
    if (capture) globalThis.__switchboardCapture = capture;
  }, { main: mainThreadOnly, capture });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, backend.url);
  try {
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    await ccp.answerSimCall({ play: 'echo' });
    if (!mainThreadOnly) {
      await page.waitForFunction(() => globalThis.__switchboardMediaPath === 'worker', null, { timeout: 20000, polling: 50 });
    }
    // Well past the start-up (the steady state is reached within 2 s).
    await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 5, null, { timeout: 30000, polling: 100 });
    // The same stalls in a Worker first: what taking that much CPU from
    // this (loaded, two-core) machine makes late on its own.
    const base = await freshStats(page);
    await stallWorker(page, 8);
    await freshStats(page);
    const before = await freshStats(page);
    await stallMainThread(page, 8);
    const during = await freshStats(page);
    const after = await freshStats(page);
    const heardFrom = await page.evaluate(() => globalThis.__switchboardTapOutput.length);
    await page.waitForFunction((n) => globalThis.__switchboardTapOutput.length >= n + 48000 * 2, heardFrom, { timeout: 20000, polling: 100 });
    const tail = await page.evaluate((n) => globalThis.__switchboardTapOutput.slice(n, n + 48000 * 2), heardFrom);
    const level = 10 * Math.log10(tail.reduce((s, v) => s + v * v, 0) / tail.length + 1e-12);
    const path = await page.evaluate(() => globalThis.__switchboardMediaPath || 'main');
    await ccp.endAndClear();
    assert.deepEqual(errors, []);
    return { base, before, during, after, level, path };
  } finally {
    await context.close();
  }
}

const summary = (r) => `late ${r.after.late - r.before.late} (${r.before.late - r.base.late} with the stalls in a Worker), `
  + `grows ${r.after.grows - r.before.grows} (${r.before.grows - r.base.grows}), `
  + `buffer delay ${r.before.bufferDelayMs.toFixed(1)} -> ${r.during.bufferDelayMs.toFixed(1)} -> ${r.after.bufferDelayMs.toFixed(1)} ms, `
  + `received ${r.after.received - r.before.received}, echo level ${r.level.toFixed(1)} dB, path ${r.path}, `
  + `capture ${r.after.capture}, capture gaps ${gaps(r.after) - gaps(r.before)} (${gaps(r.before) - gaps(r.base)}) holding ${(lostAudio(r.after) - lostAudio(r.before)).toFixed(0)} ms (${(lostAudio(r.before) - lostAudio(r.base)).toFixed(0)}), `
  + `capture chunks over 40 ms after the previous one ${stalled(r.after) - stalled(r.before)} (${stalled(r.before) - stalled(r.base)}), `
  + `holds: network ${netHolds(r.after) - netHolds(r.before)} (${netHolds(r.before) - netHolds(r.base)}), `
  + `capture ${captureHolds(r.after) - captureHolds(r.before)} (${captureHolds(r.before) - captureHolds(r.base)})`;

/** Capture chunks that reached the worklet over 40 ms after the one before (direct capture). */
const stalled = (s) => s.captureStalls || 0;

/** Capture chunks lost so far (the direct path counts them; the split's Worker too). */
const gaps = (s) => s.captureGaps || 0;

/** Milliseconds of microphone audio those gaps held (direct capture). */
const lostAudio = (s) => s.captureLostMs || 0;

/** Network frames that reached the worklet over 200 ms after the one before. */
const netHolds = (s) => s.netHolds || 0;

/** Direct capture chunks that reached the worklet over 200 ms after the one before. */
const captureHolds = (s) => s.captureHolds || 0;

test('with the media worker and direct capture, 300 ms main-thread stalls hold no frame and lose no capture', async () => {
  const r = await callUnderStalls({ mainThreadOnly: false });
  console.log(`worker path under 8 x 300 ms stalls: ${summary(r)}`);
  assert.equal(r.path, 'worker', 'the frames went over the media socket');
  assert.equal(r.after.mediaPath, 'worker', 'the worklet sent over the worker');
  assert.equal(r.after.capture, 'direct', 'the CCP captures directly from the track');
  // What crosses a blocked main thread is held for the whole 300 ms
  // stall (the fallback test below shows it: one hold per stall). Here
  // neither the network frames nor the microphone chunks may be held
  // more often than the same busy loops run in a Worker hold them, give
  // or take one. Late frames and jitter-buffer growth are logged, not
  // judged: on this two-core machine a busy loop on either thread makes
  // some late, and by how many varies with the load.
  assert.equal(typeof r.after.netHolds, 'number', 'the worklet counts held network frames');
  assert.equal(typeof r.after.captureHolds, 'number', 'the direct path counts held capture chunks');
  const netHeld = netHolds(r.after) - netHolds(r.before);
  const netHeldBase = netHolds(r.before) - netHolds(r.base);
  assert.ok(netHeld <= netHeldBase + 1,
    `no network frame held by the main thread (${netHeld}; ${netHeldBase} with the stalls in a Worker)`);
  const captureHeld = captureHolds(r.after) - captureHolds(r.before);
  const captureHeldBase = captureHolds(r.before) - captureHolds(r.base);
  assert.ok(captureHeld <= captureHeldBase + 1,
    `no microphone chunk held by the main thread (${captureHeld}; ${captureHeldBase} with the stalls in a Worker)`);
  // Lost audio is judged by its duration, not by the count of gaps: on a
  // loaded machine Chromium's fake capture device itself skips a 10 ms
  // chunk now and then when its thread wakes late (one gap each, seen
  // 1-5 times per eight stalls whichever thread is busy), while a reader
  // held up by the main thread loses most of each 300 ms stall (a 250 ms
  // stall left a 255-287 ms hole when the track was read on the page).
  // Allowed: 100 ms beyond the Worker control.
  const lostMs = lostAudio(r.after) - lostAudio(r.before);
  const baseLostMs = lostAudio(r.before) - lostAudio(r.base);
  assert.equal(typeof r.after.captureLostMs, 'number', 'the direct path reports the audio its gaps held');
  assert.ok(lostMs <= baseLostMs + 100,
    `no microphone audio lost to the main thread (${lostMs.toFixed(0)} ms in ${gaps(r.after) - gaps(r.before)} gaps; ${baseLostMs.toFixed(0)} ms with the stalls in a Worker)`);
  assert.ok(r.after.received - r.before.received > 150, 'frames kept coming during the stalls');
  assert.ok(r.level > -45, `the echo line is heard (${r.level.toFixed(1)} dB)`);
});

test('without the worker (the fallback), frames take the main thread: each stall holds them, and the call still has audio', async () => {
  const r = await callUnderStalls({ mainThreadOnly: true });
  console.log(`main-thread path under 8 x 300 ms stalls: ${summary(r)}`);
  assert.equal(r.path, 'main');
  assert.equal(r.after.mediaPath, 'main');
  // The measure the worker path is judged by sees the main thread: frames
  // over the control socket wait out each 300 ms stall.
  const held = netHolds(r.after) - netHolds(r.before);
  assert.ok(held >= 6, `the main thread's stalls held the frames (${held} holds for 8 stalls)`);
  assert.ok(r.after.received - r.before.received > 100, 'frames flowed');
  assert.ok(r.level > -45, `the echo line is heard (${r.level.toFixed(1)} dB)`);
});

// For comparing the capture paths under the same stalls (figures in
// docs/benchmarks.md): `SB_STALL_CAPTURE=worklet,worker,direct`.
for (const capture of (process.env.SB_STALL_CAPTURE || '').split(',').filter(Boolean)) {
  test(`${capture} capture under main-thread stalls (measurement)`, async () => {
    const r = await callUnderStalls({ mainThreadOnly: false, capture });
    console.log(`${capture} capture, worker path, under 8 x 300 ms stalls: ${summary(r)}`);
    assert.ok(r.level > -45, `the echo line is heard (${r.level.toFixed(1)} dB)`);
  });
}
