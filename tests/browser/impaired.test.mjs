// A call over an impaired network: the backend (test-only setting) drops
// 10% of the frames it sends the agent, seeded, and delays the rest by up
// to 60 ms (so they also arrive out of order). The caller's speech must
// still reach the agent, and the engine's quality statistics must report
// the loss.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, api, ROOT, tappedPage } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { speechWav, readWav, envelope, bestEnvelopeMatch } from './audio.mjs';

let backend;
let agentWav;

before(async () => {
  backend = await startBackend('impair_loss_percent = 10\nimpair_jitter_ms = 60\nimpair_seed = 7');
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-impaired-'));
  agentWav = speechWav(dir, 'agent', 'Hello, this is Alice.');
});

after(() => backend?.stop());

test('speech arrives through 10% loss and 60 ms of jitter, and the statistics report the loss', async () => {
  const { browser, page } = await tappedPage(agentWav);
  try {
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
    await ccp.expectContactState('incoming');
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 8, null, { timeout: 30000, polling: 250 });
    await page.waitForFunction(() => globalThis.__switchboardStats && globalThis.__switchboardStats.received > 300, null, { timeout: 10000 });
    const { out, stats } = await page.evaluate(() => ({ out: globalThis.__switchboardTapOutput.slice(0, 48000 * 8), stats: globalThis.__switchboardStats }));
    const prompt = readWav(join(ROOT, 'public/audio/caller-prompt.wav'));
    const match = bestEnvelopeMatch(envelope(out, 48000).slice(300, 600), envelope(prompt.samples, prompt.rate));
    console.log(`impaired: envelope correlation ${match.corr.toFixed(3)}; stats ${JSON.stringify(stats)}`);
    assert.ok(match.corr > 0.6, `the caller's speech still arrives (${match.corr.toFixed(3)})`);
    const lossPercent = (100 * stats.lost) / (stats.received + stats.lost);
    assert.ok(stats.lost > 0 && lossPercent > 4 && lossPercent < 20, `the engine reports the loss (${lossPercent.toFixed(1)}%)`);
    assert.ok(stats.fecRecovered > 0, 'FEC rebuilt some of the lost packets');
    assert.ok(stats.mos < 4.3, `MOS reflects the impairment (${stats.mos.toFixed(2)})`);
  } finally {
    await browser.close();
  }
});
