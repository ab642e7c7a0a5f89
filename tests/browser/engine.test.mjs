// The audio engine in headless Chromium: a known spoken WAV is the fake
// microphone; the engine's packets loop straight back into its receive
// chain; the worklet taps the microphone and the output on the same clock.
// The speech must come through (cross-correlation of output against
// input), and the measured delay is the engine's own end-to-end delay.
// Also: a denied microphone is a clear error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser } from './harness.mjs';

let backend;
let dir;

before(async () => {
  backend = await startBackend('', { crm: true });
  dir = mkdtempSync(join(tmpdir(), 'switchboard-engine-'));
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '150', '-w', join(dir, 'raw.wav'),
    'Hello, this is the audio engine test. One two three four five. The order shipped on the twelfth of November.']);
  execFileSync('sox', ['-D', join(dir, 'raw.wav'), '-r', '48000', '-c', '1', '-b', '16', join(dir, 'mic.wav'), 'pad', '0', '1']);
});

after(() => backend?.stop());

/** Best lag (output later than input) and normalised correlation. */
function bestLag(a, b, maxLag) {
  let best = { lag: 0, corr: -1 };
  const n = Math.min(a.length, b.length - maxLag);
  for (let lag = 0; lag <= maxLag; lag += 1) {
    let num = 0; let ea = 0; let eb = 0;
    for (let i = 0; i < n; i += 1) {
      const x = a[i]; const y = b[i + lag];
      num += x * y; ea += x * x; eb += y * y;
    }
    const c = num / Math.sqrt(ea * eb || 1);
    if (c > best.corr) best = { lag, corr: c };
  }
  return best;
}

for (const capture of ['worklet', 'track', 'worker', 'direct']) test(`speech through the whole send and receive chain comes out, with the engine delay measured (${capture} capture)`, async () => {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${join(dir, 'mic.wav')}`]);
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${backend.crmUrl}/phone/loopback.html?autostart&capture=${capture}`);
    await page.waitForFunction(() => window.loopback.ready || window.loopback.error, null, { timeout: 20000 });
    assert.equal(await page.evaluate(() => window.loopback.error), null);
    // Chromium has MediaStreamTrackProcessor: the track and worker paths run there.
    assert.equal(await page.evaluate(() => window.loopback.capture), capture);
    // Six seconds of audio.
    await page.waitForFunction(() => window.loopback.output.length >= 48000 * 6, null, { timeout: 30000, polling: 200 });
    const { input, output, stats, addedLatencyMs } = await page.evaluate(() => {
      window.loopback.engine.requestStats();
      return new Promise((r) => setTimeout(() => r({
        input: window.loopback.input.slice(0, 48000 * 6),
        output: window.loopback.output.slice(0, 48000 * 6),
        stats: window.loopback.stats,
        addedLatencyMs: window.loopback.addedLatencyMs,
      }), 300));
    });
    const energy = (x) => x.reduce((s, v) => s + v * v, 0) / x.length;
    assert.ok(energy(input) > 1e-5, 'the fake microphone delivered the WAV');
    // Compare a 2-second stretch of the microphone with the output up to
    // 300 ms later, decimated by 2 for speed.
    // Half-second windows of microphone from 2 s on, each matched against
    // the output up to 300 ms later (decimated by 2 for speed). The jitter
    // buffer may move playout by 10 ms between windows, so each window
    // finds its own lag; quiet windows (pauses in the file) are skipped.
    const dec = (x, a, n) => Array.from({ length: n / 2 }, (_, i) => x[a + 2 * i]);
    const windows = [];
    for (let from = 48000 * 2; from + 24000 + 14400 <= input.length; from += 24000) {
      if (energy(input.slice(from, from + 24000)) < 1e-4) continue;
      const a = dec(input, from, 24000);
      const b = dec(output, from, 24000 + 14400);
      windows.push(bestLag(a, b, 7200));
    }
    windows.sort((p, q) => q.corr - p.corr);
    assert.ok(windows.length >= 3, 'the microphone carried speech');
    const { lag, corr } = windows[Math.floor(windows.length / 2)]; // the median window
    const delayMs = (lag * 2) / 48;
    console.log(`loopback (${capture} capture): correlation ${corr.toFixed(3)} at ${delayMs.toFixed(1)} ms (engine declares ${addedLatencyMs.toFixed(1)} ms + jitter buffer); stats ${JSON.stringify(stats)}`);
    assert.ok(corr > 0.5, `speech came through (correlation ${corr.toFixed(3)})`);
    assert.ok(delayMs > 20 && delayMs < 200, `plausible engine delay ${delayMs} ms`);
    assert.ok(stats && stats.packetsSent > 100 && stats.received > 100, 'packets flowed');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a denied microphone is a clear error', async () => {
  const browser = await launchBrowser(['--deny-permission-prompts']);
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Without the fake-UI flag's auto-accept, deny explicitly.
    await context.grantPermissions([], { origin: backend.crmUrl });
    await page.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));
    });
    await page.goto(`${backend.crmUrl}/phone/loopback.html?autostart`);
    await page.waitForFunction(() => window.loopback.error, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => window.loopback.error), 'microphone_denied');
  } finally {
    await browser.close();
  }
});
