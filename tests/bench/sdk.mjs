// SDK benchmarks (`cargo xtask bench sdk`):
//  - what a CRM page loads for frame mode: the SDK module (and the Streams
//    facade for Streams integrations), gzip -9, no audio engine;
//  - from `init()` to a ready, logged-in session on loopback: the demo CRM
//    page times its own `init` (iframe load, CCP wasm start, handshake, the
//    CCP's backend connection and first snapshot), over reloads of a page
//    whose hidden CCP already holds a login.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { startBackend, launchBrowser, ROOT } from '../browser/harness.mjs';
import { CrmPage } from '../browser/pages.mjs';

const gz = (file) => gzipSync(readFileSync(join(ROOT, 'dist/sdk', file)), { level: 9 }).length;
const sdk = gz('switchboard.js');
const facade = gz('connect-streams.js');
console.log(`frame-mode SDK (switchboard.js): ${(sdk / 1024).toFixed(1)} KB gzip`);
console.log(`with the Streams facade (+ connect-streams.js): ${((sdk + facade) / 1024).toFixed(1)} KB gzip`);

const backend = await startBackend('', { crm: true });
const browser = await launchBrowser();
try {
  const page = await (await browser.newContext()).newPage();
  const crm = new CrmPage(page, backend.crmUrl);
  await crm.open();
  const coldMs = await page.evaluate(() => window.sdkInitMs);
  await crm.loginByPopup('alice', 'alice-pass', backend.url);
  await crm.setStatus('Available');
  const times = [];
  for (let i = 0; i < 15; i += 1) {
    await page.reload();
    await page.locator('body[data-ready="true"]').waitFor();
    const [ms, loggedIn] = await page.evaluate(() => [window.sdkInitMs, window.crmSession.loggedIn]);
    if (!loggedIn) throw new Error('the reloaded page was not logged in');
    times.push(ms);
  }
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  console.log(`init -> ready (not logged in, first load): ${coldMs.toFixed(0)} ms`);
  console.log(`init -> ready, logged in (${times.length} reloads): p50 ${q(0.5).toFixed(0)} ms, p95 ${q(0.95).toFixed(0)} ms, min ${times[0].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms`);
} finally {
  await browser.close();
  backend.stop();
}
